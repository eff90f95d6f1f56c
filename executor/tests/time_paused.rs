//! Time that tests control (feature `test-util`): `pause`, `advance`, `resume`,
//! `Builder::start_paused`, and the auto-advance that makes long timeouts instant.
//!
//! Run with `cargo test -p uringo --features test-util --test time_paused` (CI does).
//! No test asserts a wall-clock figure: the hour-long sleeps below would trip the
//! watchdog if paused time did not move by itself.
#![cfg(feature = "test-util")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::with_watchdog;
use uringo::net::{TcpListener, TcpStream};
use uringo::time::{advance, pause, resume, sleep, timeout};
use uringo::Builder;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_paused_runtime_runs_an_hour_of_sleep_at_once() {
    with_watchdog("start_paused", || {
        let rt = Builder::new()
            .worker_threads(2)
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            sleep(HOUR).await;
            // And from tasks on the workers, on both of them at once.
            let a = uringo::spawn(sleep(HOUR));
            let b = uringo::spawn(sleep(2 * HOUR));
            a.await.unwrap();
            b.await.unwrap();
        });
    });
}

#[test]
fn timers_on_different_workers_fire_in_deadline_order_under_auto_advance() {
    with_watchdog("order", || {
        let rt = Builder::new()
            .worker_threads(2)
            .start_paused(true)
            .build()
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let sleepers: Vec<_> = [5u64, 1, 4, 2, 3]
                .into_iter()
                .enumerate()
                .map(|(i, minutes)| {
                    let order = order.clone();
                    rt.handle().spawn_on(i % 2, async move {
                        sleep(Duration::from_secs(60 * minutes)).await;
                        order.lock().unwrap().push(minutes);
                    })
                })
                .collect();
            for s in sleepers {
                s.await.unwrap();
            }
        });
        assert_eq!(*order.lock().unwrap(), [1, 2, 3, 4, 5]);
    });
}

#[test]
fn advance_fires_what_became_due_and_nothing_else() {
    with_watchdog("advance", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        rt.block_on(async {
            pause();
            let thirty = uringo::spawn(sleep(Duration::from_secs(30)));
            let sixty = uringo::spawn(sleep(Duration::from_secs(60)));
            // Both are armed before time moves (a yield lets the workers poll them).
            while !rt_has_timers(2) {
                uringo::task::yield_now().await;
            }
            advance(Duration::from_secs(31)).await;
            thirty.await.unwrap();
            assert!(
                !sixty.is_finished(),
                "advanced 31 s, yet the 60 s sleep fired"
            );
            advance(Duration::from_secs(30)).await;
            sixty.await.unwrap();
            resume();
        });
    });
}

/// Whether the current runtime's wheels hold at least `n` timers.
fn rt_has_timers(n: usize) -> bool {
    let m = uringo::Handle::current().metrics();
    (0..m.num_workers())
        .map(|w| m.worker_timer_count(w))
        .sum::<usize>()
        >= n
}

#[test]
fn a_thirty_second_idle_timeout_is_tested_in_milliseconds() {
    with_watchdog("idle timeout", || {
        let rt = Builder::new()
            .worker_threads(2)
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // A server that drops a connection idle for 30 s, as a proxy would.
            let server = uringo::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let read = timeout(Duration::from_secs(30), stream.read(vec![0; 16])).await;
                assert!(read.is_err(), "the idle client sent something");
                drop(stream);
            });
            let client = TcpStream::connect(addr).await.unwrap();
            // The client sits idle; with every worker waiting, time jumps 30 s.
            let (n, _) = client.read(vec![0; 16]).await;
            assert_eq!(
                n.unwrap(),
                0,
                "the server should have closed the idle connection"
            );
            server.await.unwrap();
        });
    });
}

#[test]
fn resumed_time_runs_again() {
    with_watchdog("resume", || {
        let rt = Builder::new()
            .worker_threads(1)
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            resume();
            // Real time: a short sleep completes by itself.
            sleep(Duration::from_millis(5)).await;
            pause();
            sleep(HOUR).await;
        });
    });
}

#[test]
#[should_panic(expected = "time is already paused")]
fn pausing_twice_panics() {
    let rt = Builder::new()
        .worker_threads(1)
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async { pause() });
}

#[test]
#[should_panic(expected = "time is not paused")]
fn advancing_running_time_panics() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(advance(Duration::from_secs(1)));
}

#[test]
#[should_panic(expected = "outside a uringo runtime")]
fn pausing_outside_a_runtime_panics() {
    pause();
}
