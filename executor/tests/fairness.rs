//! Fairness: a task that yields, spends its budget or wakes itself is polled again
//! while other tasks keep its worker busy (the bound is in `scheduler/worker/mod.rs`).
//!
//! Each test runs one worker, so nothing can rescue a starved task by stealing it: the
//! worker's own loop must come back to it. The busy load is a pair of tasks that
//! ping-pong through a `futures` channel forever, so the worker's local queue never
//! empties; the task under test must finish a fixed number of rounds anyway.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_channel::mpsc;
use futures_util::StreamExt;
use uringo::{Builder, Runtime};

const ROUNDS: u64 = 1_000;

fn one_worker() -> Runtime {
    Builder::new().worker_threads(1).build().unwrap()
}

/// Spawns two tasks that pass a token back and forth until `stop` is set; returns the
/// number of round trips made so far.
fn ping_pong(rt: &Runtime, stop: &Arc<AtomicBool>) -> Arc<AtomicU64> {
    let trips = Arc::new(AtomicU64::new(0));
    let (to_b, mut b_rx) = mpsc::unbounded::<u64>();
    let (to_a, mut a_rx) = mpsc::unbounded::<u64>();
    to_b.unbounded_send(0).unwrap();
    let stop_a = stop.clone();
    let trips_a = trips.clone();
    rt.spawn(async move {
        while let Some(n) = a_rx.next().await {
            trips_a.fetch_add(1, Ordering::Relaxed);
            if stop_a.load(Ordering::Relaxed) || to_b.unbounded_send(n + 1).is_err() {
                return;
            }
        }
    });
    rt.spawn(async move {
        while let Some(n) = b_rx.next().await {
            if to_a.unbounded_send(n + 1).is_err() {
                return;
            }
        }
    });
    trips
}

/// Runs `task` beside a ping-ponging pair on one worker; it must complete while the
/// pair is still running (the pair would otherwise run forever).
fn completes_beside_a_busy_pair<F>(name: &str, task: F)
where
    F: Future<Output = u64> + Send + 'static,
{
    let name = name.to_string();
    common::with_watchdog(&name.clone(), move || {
        let rt = one_worker();
        let stop = Arc::new(AtomicBool::new(false));
        let trips = ping_pong(&rt, &stop);
        // The pair is running before the task under test is spawned.
        common::wait_for("the pair to start", || trips.load(Ordering::Relaxed) > 100);
        let rounds = rt.block_on(rt.spawn(task)).unwrap();
        assert_eq!(rounds, ROUNDS, "{name}");
        assert!(
            !stop.load(Ordering::Relaxed),
            "the pair was stopped before the task finished: the test proves nothing"
        );
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn a_task_that_yields_is_polled_while_its_worker_stays_busy() {
    completes_beside_a_busy_pair("yield_now", async {
        let mut rounds = 0;
        while rounds < ROUNDS {
            uringo::task::yield_now().await;
            rounds += 1;
        }
        rounds
    });
}

/// Wakes its own task during the poll and returns `Pending` once (what `compat` does
/// after a retried write, and what many hand-written futures do).
struct WakeSelf(bool);

impl Future for WakeSelf {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_task_that_wakes_itself_is_polled_while_its_worker_stays_busy() {
    completes_beside_a_busy_pair("wake_by_ref", async {
        let mut rounds = 0;
        while rounds < ROUNDS {
            WakeSelf(false).await;
            rounds += 1;
        }
        rounds
    });
}

#[test]
fn a_task_that_spends_its_budget_is_polled_while_its_worker_stays_busy() {
    completes_beside_a_busy_pair("budget", async {
        // Each await of an elapsed sleep is ready at once and spends one unit of the
        // 128-unit budget, so the task is forced to yield every 128 rounds.
        let mut rounds = 0;
        while rounds < ROUNDS * 10 {
            uringo::time::sleep(std::time::Duration::ZERO).await;
            rounds += 1;
        }
        rounds / 10
    });
}
