//! The executor end to end: spawning, waking, stealing, panics, abort, shutdown.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{oneshot, with_watchdog, DropCounter};
use uringo::{Builder, Handle, Runtime};

fn rt(workers: usize) -> Runtime {
    common::watch(Builder::new().worker_threads(workers).build().unwrap())
}

#[test]
fn spawn_and_block_on() {
    let rt = rt(2);
    assert_eq!(rt.block_on(async { 1 }), 1);
    let h = rt.spawn(async { "from spawn" });
    assert_eq!(rt.block_on(h).unwrap(), "from spawn");
    rt.block_on(async {
        let inner = uringo::spawn(async { uringo::spawn(async { 5 }).await.unwrap() * 2 });
        assert_eq!(inner.await.unwrap(), 10);
    });
}

#[test]
fn spawn_100_000_tasks_from_inside_and_outside() {
    with_watchdog("spawn_100k", || {
        let rt = rt(2);
        let done = Arc::new(AtomicUsize::new(0));
        // From outside the runtime (the injector path).
        let handles: Vec<_> = (0..100_000)
            .map(|_| {
                let done = done.clone();
                rt.spawn(async move {
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(done.load(Ordering::Relaxed), 100_000);
        // From inside (local queue, runnext, overflow into the injector).
        let done2 = done.clone();
        rt.block_on(rt.spawn(async move {
            let handles: Vec<_> = (0..100_000)
                .map(|_| {
                    let done = done2.clone();
                    uringo::spawn(async move {
                        done.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        }))
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 200_000);
        assert_eq!(rt.metrics().num_alive_tasks(), 0);
    });
}

#[test]
fn full_local_queue_overflows_half_into_the_injector() {
    with_watchdog("overflow", || {
        // One worker: nobody steals, so 1000 spawns from a task that does not yield
        // must overflow its 256-slot queue, and every task must still run.
        let rt = rt(1);
        let done = Arc::new(AtomicUsize::new(0));
        let d2 = done.clone();
        rt.block_on(rt.spawn(async move {
            let handles: Vec<_> = (0..1000)
                .map(|_| {
                    let done = d2.clone();
                    uringo::spawn(async move {
                        done.fetch_add(1, Ordering::Relaxed);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        }))
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 1000);
        let m = rt.metrics();
        assert!(m.worker_overflow_count(0) >= 3, "{m:?}");
        assert!(
            m.worker_injector_pop_count(0) > 0,
            "overflowed tasks came back"
        );
    });
}

#[test]
fn spawn_chain_1000_deep() {
    fn chain(n: usize) -> uringo::JoinHandle<usize> {
        uringo::spawn(async move {
            if n == 0 {
                0
            } else {
                chain(n - 1).await.unwrap() + 1
            }
        })
    }
    with_watchdog("chain", || {
        let rt = rt(2);
        assert_eq!(rt.block_on(async { chain(1000).await.unwrap() }), 1000);
    });
}

#[test]
fn ping_pong_pairs_across_workers() {
    with_watchdog("ping_pong", || {
        let rt = rt(2);
        rt.block_on(async {
            let mut pairs = Vec::new();
            for _ in 0..1000 {
                let (ping_tx, ping_rx) = oneshot::<u32>();
                let (pong_tx, pong_rx) = oneshot::<u32>();
                let pong = uringo::spawn(async move {
                    let v = ping_rx.await.unwrap();
                    pong_tx.send(v + 1);
                });
                let ping = uringo::spawn(async move {
                    ping_tx.send(41);
                    pong_rx.await.unwrap()
                });
                pairs.push((ping, pong));
            }
            for (ping, pong) in pairs {
                assert_eq!(ping.await.unwrap(), 42);
                pong.await.unwrap();
            }
        });
    });
}

#[test]
fn task_woken_from_a_foreign_thread_100_000_times_never_hangs() {
    with_watchdog("foreign_wakes", || {
        let rt = rt(2);
        let shared: Arc<Mutex<(u32, Option<std::task::Waker>)>> = Arc::new(Mutex::new((0, None)));
        let target = 100_000;
        let s2 = shared.clone();
        let task = rt.spawn(std::future::poll_fn(move |cx| {
            let mut g = s2.lock().unwrap();
            if g.0 >= target {
                return std::task::Poll::Ready(g.0);
            }
            g.1 = Some(cx.waker().clone());
            std::task::Poll::Pending
        }));
        let waker_thread = std::thread::spawn(move || {
            for _ in 0..target {
                let waker = loop {
                    let mut g = shared.lock().unwrap();
                    if let Some(w) = g.1.take() {
                        g.0 += 1;
                        break w;
                    }
                    drop(g);
                    std::thread::yield_now();
                };
                waker.wake();
            }
        });
        assert_eq!(rt.block_on(task).unwrap(), target);
        waker_thread.join().unwrap();
    });
}

#[test]
fn panicking_task_is_a_join_error_and_the_runtime_keeps_serving() {
    let rt = rt(2);
    rt.block_on(async {
        for i in 0..100 {
            let err = uringo::spawn(async move {
                if i >= 0 {
                    panic!("task {i} blew up");
                }
            })
            .await
            .unwrap_err();
            assert!(err.is_panic());
            assert!(!err.is_cancelled());
            assert!(err.to_string().contains("blew up"), "{err}");
            let payload = err.into_panic();
            assert_eq!(
                payload.downcast_ref::<String>().unwrap(),
                &format!("task {i} blew up")
            );
        }
        assert_eq!(
            uringo::spawn(async { 7 }).await.unwrap(),
            7,
            "workers survived"
        );
    });
}

#[test]
fn abort_pending_and_running_tasks() {
    let rt = rt(2);
    rt.block_on(async {
        // Pending (never woken) task.
        let drops = DropCounter::new();
        let guard = drops.track();
        let pending = uringo::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        uringo::task::yield_now().await;
        pending.abort();
        let err = pending.await.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(drops.live(), 0, "the aborted future was dropped");

        // Running task: aborted while inside its poll; cancelled when the poll returns.
        let (started_tx, started_rx) = oneshot::<()>();
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r2 = release.clone();
        let running = uringo::spawn(async move {
            started_tx.send(());
            while !r2.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            uringo::task::yield_now().await;
            "not reached"
        });
        started_rx.await.unwrap();
        let abort = running.abort_handle();
        abort.abort();
        release.store(true, Ordering::SeqCst);
        assert!(running.await.unwrap_err().is_cancelled());
        assert!(abort.is_finished());

        // Abort after completion changes nothing.
        let done = uringo::spawn(async { 3 });
        while !done.is_finished() {
            uringo::task::yield_now().await;
        }
        done.abort();
        assert_eq!(done.await.unwrap(), 3);
    });
}

#[test]
fn shutdown_with_tasks_blocked_on_io_frees_them() {
    let drops = DropCounter::new();
    let (keep_a, keep_b) = std::os::unix::net::UnixStream::pair().unwrap();
    {
        let rt = rt(2);
        let listener =
            rt.block_on(async { uringo::net::TcpListener::bind("127.0.0.1:0").unwrap() });
        let listener = Arc::new(listener);
        for _ in 0..100 {
            let guard = drops.track();
            let listener = listener.clone();
            rt.spawn(async move {
                let _guard = guard;
                // Never completes: nobody connects.
                let _ = listener.accept().await;
            });
        }
        for _ in 0..100 {
            let guard = drops.track();
            rt.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        // Let every task reach its await.
        rt.block_on(async {
            for _ in 0..10 {
                uringo::task::yield_now().await;
            }
        });
        assert_eq!(drops.live(), 200);
        assert_eq!(rt.metrics().num_alive_tasks(), 200);
    }
    assert_eq!(
        drops.live(),
        0,
        "every task's future was dropped at shutdown"
    );
    drop((keep_a, keep_b));
}

#[test]
fn tasks_spawned_on_one_worker_are_stolen_by_the_other() {
    with_watchdog("steal", || {
        let rt = rt(2);
        let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let t2 = threads.clone();
        rt.block_on(rt.spawn(async move {
            // One task spawns CPU-bound children onto its own worker's queue; the idle
            // worker must steal some.
            let handles: Vec<_> = (0..200)
                .map(|_| {
                    let threads = t2.clone();
                    uringo::spawn(async move {
                        let start = std::time::Instant::now();
                        while start.elapsed() < Duration::from_micros(200) {
                            std::hint::spin_loop();
                        }
                        threads.lock().unwrap().insert(std::thread::current().id());
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        }))
        .unwrap();
        let m = rt.metrics();
        let steals: u64 = (0..2).map(|w| m.worker_steal_count(w)).sum();
        assert!(steals > 0, "no task was stolen: {m:?}");
        assert_eq!(
            threads.lock().unwrap().len(),
            2,
            "tasks finished on both workers"
        );
    });
}

#[test]
#[should_panic(expected = "Cannot start a runtime from within a runtime")]
fn block_on_inside_block_on_panics_clearly() {
    let rt = rt(1);
    let handle = rt.handle().clone();
    rt.block_on(async move {
        handle.block_on(async {});
    });
}

#[test]
fn block_on_from_a_worker_panics_clearly() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    let err = rt
        .block_on(rt.spawn(async move {
            handle.block_on(async {});
        }))
        .unwrap_err();
    assert!(err.is_panic());
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(
        msg.contains("Cannot start a runtime from within a runtime"),
        "{msg}"
    );
}

#[test]
fn handle_current_and_try_current() {
    assert!(Handle::try_current().is_err());
    let rt = rt(1);
    rt.block_on(async {
        let h = Handle::current();
        assert_eq!(h.spawn(async { 1 }).await.unwrap(), 1);
    });
    let _enter = rt.handle().enter();
    assert!(Handle::try_current().is_ok());
    let h = uringo::spawn(async { 2 });
    assert_eq!(rt.block_on(h).unwrap(), 2);
}

#[test]
fn spawn_blocking_runs_on_the_pool_and_idle_threads_exit() {
    let rt = Builder::new()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(50))
        .build()
        .unwrap();
    let v = rt.block_on(async {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                uringo::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    assert!(std::thread::current().name().unwrap().contains("blocking"));
                    i * 2
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(v, 56);
    assert!(rt.metrics().num_blocking_threads() >= 1);
    let start = std::time::Instant::now();
    while rt.metrics().num_blocking_threads() > 0 {
        assert!(
            start.elapsed() < common::HANG,
            "idle blocking threads never exited"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = rt.block_on(rt.spawn_blocking(|| panic!("blocking boom")));
    assert!(p.unwrap_err().is_panic());
}

/// A task that wakes itself inside its poll runs again, however it wakes itself: by
/// reference, by value, through a clone, twice, or by waking another task's waker on
/// the way (that one must run too: only the polled task's own wakes are noted aside,
/// `runtime/task/waker.rs`). An abort during such a poll still cancels the task.
#[test]
#[allow(clippy::waker_clone_wake)] // waking by value is what is tested
fn a_task_that_wakes_itself_during_its_poll_runs_again() {
    use std::future::poll_fn;
    use std::task::{Poll, Waker};

    /// Returns Pending `rounds` times, waking itself with `wake` before each.
    async fn woken_by(rounds: usize, wake: fn(&Waker)) -> usize {
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            if polls > rounds {
                return Poll::Ready(polls);
            }
            wake(cx.waker());
            Poll::Pending
        })
        .await
    }

    let rt = rt(1);
    let wakes: [fn(&Waker); 4] = [
        |w| w.wake_by_ref(),
        |w| w.clone().wake(),
        |w| {
            w.wake_by_ref();
            w.clone().wake();
        },
        |w| {
            let clone = w.clone();
            clone.wake_by_ref();
            drop(clone);
        },
    ];
    for wake in wakes {
        let polls = rt.block_on(rt.spawn(woken_by(1000, wake))).unwrap();
        assert_eq!(polls, 1001);
    }

    // A second task parked on a channel is woken from inside the first one's poll,
    // which also wakes itself.
    let (tx, rx) = oneshot::<()>();
    let other = rt.spawn(async move { rx.await.unwrap() });
    let mut tx = Some(tx);
    let first = rt.spawn(poll_fn(move |cx| match tx.take() {
        Some(tx) => {
            tx.send(());
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        None => Poll::Ready(()),
    }));
    rt.block_on(async {
        first.await.unwrap();
        other.await.unwrap();
    });

    // Aborted by its own poll, after it woke itself: cancelled, not polled again.
    let polls = Arc::new(AtomicUsize::new(0));
    let handle = Arc::new(Mutex::new(None::<uringo::task::AbortHandle>));
    let task = rt.spawn({
        let (polls, handle) = (polls.clone(), handle.clone());
        poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            if let Some(handle) = handle.lock().unwrap().as_ref() {
                handle.abort();
            }
            Poll::<()>::Pending
        })
    });
    *handle.lock().unwrap() = Some(task.abort_handle());
    let err = rt.block_on(task).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    let polls = polls.load(Ordering::SeqCst);
    assert!(polls >= 1, "it was polled");
    rt.block_on(async { uringo::task::yield_now().await });
    assert_eq!(
        Arc::strong_count(&handle),
        1,
        "the cancelled future was dropped"
    );
}

#[test]
fn budget_makes_a_busy_task_yield() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        // 1000 already-finished JoinHandles: each await is ready at once, so without a
        // budget this loop would never yield.
        let mut handles = Vec::new();
        for _ in 0..1000 {
            handles.push(uringo::spawn(async {}));
        }
        for _ in 0..10 {
            uringo::task::yield_now().await;
        }
        for h in handles {
            h.await.unwrap();
        }
    }))
    .unwrap();
    assert!(rt.metrics().worker_budget_forced_yield_count(0) > 0);
}

#[test]
fn dropping_the_runtime_waits_for_blocking_threads_up_to_the_timeout() {
    let rt = Builder::new()
        .worker_threads(1)
        .shutdown_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = finished.clone();
    rt.spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(20));
        f2.store(true, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(5));
    drop(rt);
    assert!(
        finished.load(Ordering::SeqCst),
        "drop waited for the blocking task"
    );
}

#[test]
fn thread_hooks_and_names() {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (starts.clone(), stops.clone());
    let rt = Builder::new()
        .worker_threads(2)
        .thread_name("hooked")
        .on_thread_start(move || {
            s1.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move || {
            s2.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let name = rt
        .block_on(rt.spawn(async { std::thread::current().name().unwrap().to_string() }))
        .unwrap();
    assert!(name.starts_with("hooked-"), "{name}");
    drop(rt);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(stops.load(Ordering::SeqCst), 2);
}

#[uringo::test(worker_threads = 2)]
async fn the_test_macro_runs_on_a_runtime() {
    assert_eq!(uringo::spawn(async { 1 }).await.unwrap(), 1);
    assert_eq!(Handle::current().metrics().num_workers(), 2);
}

#[test]
fn dropping_a_runtime_inside_another_runtimes_task_panics_clearly() {
    let outer = rt(1);
    let inner = rt(1);
    let err = outer
        .block_on(outer.spawn(async move {
            drop(inner);
        }))
        .unwrap_err();
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("Cannot drop a uringo runtime"), "{msg}");
}
