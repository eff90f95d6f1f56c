//! `task::JoinSet`: joins tasks in the order they finish, cancels them on `abort_all`,
//! `shutdown` and drop, counts what it holds, and hears from tasks that finish on
//! other threads.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use common::{oneshot, runtime, wait_for, with_watchdog, DropCounter};
use uringo::task::{yield_now, AbortHandle, JoinSet};

/// Adds `n` tasks that never finish, each holding one of `live`'s tracked values.
fn spawn_pending<T: Send + 'static>(set: &mut JoinSet<T>, live: &DropCounter, n: usize) {
    for _ in 0..n {
        let tracked = live.track();
        set.spawn(async move {
            let _tracked = tracked;
            std::future::pending().await
        });
    }
}

/// Yields until the task behind `handle` has finished.
async fn finished(handle: &AbortHandle) {
    while !handle.is_finished() {
        yield_now().await;
    }
}

#[test]
fn join_next_returns_tasks_in_the_order_they_finish() {
    with_watchdog("join order", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            let mut release = Vec::new();
            for i in 0..3 {
                let (tx, rx) = oneshot::<()>();
                release.push(Some(tx));
                set.spawn(async move {
                    rx.await;
                    i
                });
            }
            // Each join waits while only the task just released can finish: a set that
            // waited on its tasks in spawn order would hang on task 0.
            for i in [2, 0, 1] {
                release[i].take().unwrap().send(());
                assert_eq!(set.join_next().await.unwrap().unwrap(), i);
            }
        });
    });
}

#[test]
fn an_empty_set_joins_to_none() {
    with_watchdog("empty", || {
        let rt = runtime(1);
        rt.block_on(async {
            let mut set = JoinSet::<u8>::new();
            assert!(set.join_next().await.is_none());
            assert!(set.try_join_next().is_none());
            set.spawn(async { 1 });
            assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
            assert!(set.join_next().await.is_none(), "drained: None again");
        });
    });
}

#[test]
fn len_counts_tasks_until_they_are_joined_or_detached() {
    with_watchdog("len", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            assert_eq!((set.len(), set.is_empty()), (0, true));
            let (tx_done, rx_done) = oneshot::<()>();
            let (tx_detached, rx_detached) = oneshot::<()>();
            let (tx_ran, rx_ran) = oneshot::<&str>();
            let done = set.spawn(async move {
                rx_done.await;
                "done"
            });
            set.spawn(async move {
                rx_detached.await;
                tx_ran.send("detached task ran on");
                "detached"
            });
            set.spawn(std::future::pending());
            assert_eq!((set.len(), set.is_empty()), (3, false));

            tx_done.send(());
            finished(&done).await;
            assert_eq!(set.len(), 3, "finished but not joined still counts");
            assert_eq!(set.try_join_next().unwrap().unwrap(), "done");
            assert_eq!(set.len(), 2);
            assert!(set.try_join_next().is_none(), "nothing else finished");
            assert_eq!(set.len(), 2);

            set.detach_all();
            assert_eq!((set.len(), set.is_empty()), (0, true));
            tx_detached.send(());
            assert_eq!(rx_ran.await, Some("detached task ran on"));
        });
    });
}

#[test]
fn abort_all_cancels_unfinished_tasks_and_drops_their_futures() {
    with_watchdog("abort_all", || {
        let rt = runtime(2);
        let live = DropCounter::new();
        rt.block_on(async {
            let mut set = JoinSet::new();
            spawn_pending(&mut set, &live, 8);
            let early = set.spawn(async { 7 });
            finished(&early).await;
            set.abort_all();
            let (mut outputs, mut cancelled) = (Vec::new(), 0);
            while let Some(res) = set.join_next().await {
                match res {
                    Ok(output) => outputs.push(output),
                    Err(err) => {
                        assert!(err.is_cancelled(), "{err}");
                        cancelled += 1;
                    }
                }
            }
            assert_eq!(outputs, [7], "a task that finished first keeps its output");
            assert_eq!(cancelled, 8);
            assert_eq!(live.live(), 0, "a cancelled task's future is gone");
        });
    });
}

#[test]
fn one_abort_handle_cancels_only_its_task() {
    with_watchdog("abort one", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            let forever = set.spawn(std::future::pending());
            let forever_id = forever.id();
            set.spawn(async { "kept" });
            forever.abort();
            let mut results = Vec::new();
            while let Some(res) = set.join_next_with_id().await {
                results.push(
                    res.map(|(_, out)| out)
                        .map_err(|e| (e.id(), e.is_cancelled())),
                );
            }
            results.sort();
            assert_eq!(results, [Ok("kept"), Err((forever_id, true))]);
        });
    });
}

#[test]
fn dropping_the_set_aborts_tasks_even_ones_that_never_stop_running() {
    with_watchdog("drop", || {
        let rt = runtime(2);
        let live = DropCounter::new();
        let spins = Arc::new(AtomicU64::new(0));
        rt.block_on(async {
            let mut set = JoinSet::new();
            spawn_pending(&mut set, &live, 1);
            let (tracked, spun) = (live.track(), spins.clone());
            set.spawn(async move {
                let _tracked = tracked;
                loop {
                    spun.fetch_add(1, Ordering::Relaxed);
                    yield_now().await;
                }
            });
            while spins.load(Ordering::Relaxed) == 0 {
                yield_now().await;
            }
            drop(set);
        });
        // The runtime lives on: only the aborts can have dropped these futures.
        wait_for("the set's futures dropped", || live.live() == 0);
        drop(rt);
    });
}

#[test]
fn shutdown_cancels_and_waits_for_every_task() {
    with_watchdog("shutdown", || {
        let rt = runtime(2);
        let live = DropCounter::new();
        rt.block_on(async {
            let mut set = JoinSet::<()>::new();
            spawn_pending(&mut set, &live, 4);
            set.shutdown().await;
            assert!(set.is_empty());
            assert_eq!(live.live(), 0);
        });
    });
}

#[test]
fn tasks_finishing_on_worker_threads_wake_a_joiner_elsewhere() {
    with_watchdog("other workers", || {
        let rt = runtime(4);
        let joiner = std::thread::current().id();
        rt.block_on(async {
            let mut set = JoinSet::new();
            for i in 0..200u64 {
                set.spawn(async move {
                    for _ in 0..i % 4 {
                        yield_now().await;
                    }
                    if i % 3 == 0 {
                        uringo::time::sleep(std::time::Duration::from_micros(i)).await;
                    }
                    (i, std::thread::current().id())
                });
            }
            let mut joined = HashSet::new();
            let mut threads = HashSet::new();
            while let Some(res) = set.join_next().await {
                let (i, thread) = res.unwrap();
                assert!(joined.insert(i), "task {i} joined twice");
                threads.insert(thread);
            }
            assert_eq!(joined.len(), 200);
            assert!(
                !threads.contains(&joiner),
                "every task ran on a worker, none on the joining thread"
            );
        });
    });
}

#[test]
fn a_panicking_task_is_a_join_error_and_join_all_rethrows_it() {
    with_watchdog("panic", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { panic!("boom") });
            set.spawn(async { "fine" });
            let (mut panics, mut outputs) = (Vec::new(), Vec::new());
            while let Some(res) = set.join_next().await {
                match res {
                    Ok(output) => outputs.push(output),
                    Err(err) => {
                        assert!(err.is_panic(), "{err}");
                        panics.push(*err.into_panic().downcast::<&str>().unwrap());
                    }
                }
            }
            assert_eq!((panics, outputs), (vec!["boom"], vec!["fine"]));
        });

        let mut set = JoinSet::new();
        set.spawn_on(async { panic!("again") }, rt.handle());
        set.spawn_on(async {}, rt.handle());
        let payload =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(set.join_all())))
                .unwrap_err();
        assert_eq!(*payload.downcast::<&str>().unwrap(), "again");
    });
}

#[test]
fn try_join_next_keeps_the_wake_up_of_a_pending_poll_join_next() {
    with_watchdog("mixed polls", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut set = JoinSet::new();
            let (tx, rx) = oneshot::<()>();
            set.spawn(async move {
                rx.await;
                7
            });
            let mut release = Some(tx);
            // A hand-written future that registers through `poll_join_next` and then
            // peeks with `try_join_next`: the task finishing afterwards must still wake
            // it, or this hangs.
            let out = std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = set.poll_join_next(cx) {
                    return Poll::Ready(out);
                }
                assert!(set.try_join_next().is_none());
                if let Some(tx) = release.take() {
                    tx.send(());
                }
                Poll::Pending
            })
            .await;
            assert_eq!(out.unwrap().unwrap(), 7);
        });
    });
}
