//! Scheduler shapes, after tokio's `benches/rt_multi_threaded.rs`.
//!
//! Each shape is written once, generic over [`Rt`], and instantiated for both runtimes
//! in [`shapes`]: both peers run the same code, the same hand-written oneshot and the
//! same completion signal (a `std::sync::mpsc` channel whose receiver blocks the
//! benchmark's main thread, which belongs to neither runtime's workers).
//!
//! Deviations from tokio's file, all applied to both peers alike:
//! - spawn_many_local spawns its 10 000 tasks from a task (tokio's spawns them from
//!   `block_on`, which on a multi-threaded runtime is not a worker, so its spawns
//!   are remote too); here they really go to a worker's local queue.
//! - ping_pong, chained_spawn and spawn_many_local start their root task with
//!   `spawn_remote` and wait on the channel outside the runtime, rather than spawning
//!   it from `block_on` and blocking inside it: the same path into the global queue,
//!   without blocking a thread that the runtime believes is driving a future.
//! - ping_pong uses [`oneshot`] instead of `tokio::sync::oneshot`.
//! - spawn_many_remote_busy keeps each worker busy with one task looping on
//!   `yield_now`; tokio's exact `spawn_many_remote_busy1` (two tasks per worker, each
//!   burning 10 µs between yields) is `spawn_many_remote_busy1`.
//!
//! Beside those variants run the three shapes exactly as tokio's file writes them
//! (`*_as_tokio`): everything from inside `block_on`, which then blocks on the channel,
//! so spawn_many_local's spawns are remote. spawn_many_remote_idle,
//! spawn_many_remote_busy1 and yield_many need no such twin: they are tokio's already.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::oneshot;
use crate::peers::Rt;
use crate::runner::{Bencher, Shape};

/// Tasks spawn_many_local (and the remote spawn shapes) spawn per iteration.
pub const NUM_SPAWN: usize = 10_000;
const NUM_PINGS: usize = 1_000;
/// Tasks yield_many spawns per iteration.
pub const YIELD_TASKS: usize = 200;
/// Times each yield_many task yields.
pub const NUM_YIELD: usize = 1_000;
/// Links in one chained_spawn iteration.
pub const CHAIN: usize = 1_000;
/// How long a busy task burns CPU between yields (tokio's `STALL_DUR`).
const STALL: Duration = Duration::from_micros(10);

/// The scheduler shapes, each with its uringo and tokio instantiation side by side.
/// Iteration counts keep each round under about a second on a 2-core machine (the
/// runner's budget cuts a round short when a peer is far slower than that).
pub fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "spawn_many_local",
            iters: 80,
            uringo: spawn_many_local::<uringo::Runtime>,
            tokio: spawn_many_local::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "spawn_many_local_as_tokio",
            iters: 80,
            uringo: spawn_many_local_as_tokio::<uringo::Runtime>,
            tokio: spawn_many_local_as_tokio::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "spawn_many_remote_idle",
            iters: 80,
            uringo: spawn_many_remote_idle::<uringo::Runtime>,
            tokio: spawn_many_remote_idle::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "spawn_many_remote_busy",
            iters: 40,
            uringo: spawn_many_remote_busy::<uringo::Runtime>,
            tokio: spawn_many_remote_busy::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "spawn_many_remote_busy1",
            iters: 10,
            uringo: spawn_many_remote_busy1::<uringo::Runtime>,
            tokio: spawn_many_remote_busy1::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "ping_pong",
            iters: 400,
            uringo: ping_pong::<uringo::Runtime>,
            tokio: ping_pong::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "ping_pong_as_tokio",
            iters: 400,
            uringo: ping_pong_as_tokio::<uringo::Runtime>,
            tokio: ping_pong_as_tokio::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "yield_many",
            iters: 40,
            uringo: yield_many::<uringo::Runtime>,
            tokio: yield_many::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "chained_spawn",
            iters: 1000,
            uringo: chained_spawn::<uringo::Runtime>,
            tokio: chained_spawn::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "chained_spawn_as_tokio",
            iters: 1000,
            uringo: chained_spawn_as_tokio::<uringo::Runtime>,
            tokio: chained_spawn_as_tokio::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
    ]
}

/// One task spawns 10 000 tasks onto its own worker; each decrements a counter and the
/// last one signals. Measures local spawn, local queue overflow and stealing.
fn spawn_many_local<R: Rt>(rt: &R, b: &mut Bencher) {
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    b.iter(|| {
        rem.store(NUM_SPAWN, Relaxed);
        let tx = tx.clone();
        let rem = rem.clone();
        // Detached: the signal, not the join handle, says when the work is done.
        drop(rt.spawn_remote(async move {
            for _ in 0..NUM_SPAWN {
                let tx = tx.clone();
                let rem = rem.clone();
                drop(R::spawn_local(async move {
                    if rem.fetch_sub(1, Relaxed) == 1 {
                        tx.send(()).unwrap();
                    }
                }));
            }
        }));
        rx.recv().unwrap();
    });
}

/// 10 000 empty tasks spawned from outside into an idle runtime, then joined from
/// `block_on`. Measures the global queue and waking parked workers.
fn spawn_many_remote_idle<R: Rt>(rt: &R, b: &mut Bencher) {
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    b.iter(|| {
        for _ in 0..NUM_SPAWN {
            handles.push(rt.spawn_remote(async {}));
        }
        rt.block_on(async {
            for handle in handles.drain(..) {
                handle.await.unwrap();
            }
        });
    });
}

/// As [`spawn_many_remote_idle`], while each worker is kept busy by one task looping
/// on `yield_now`. Measures how soon busy workers look at the global queue.
fn spawn_many_remote_busy<R: Rt>(rt: &R, b: &mut Bencher) {
    remote_busy(rt, b, 1, false);
}

/// tokio's `spawn_many_remote_busy1` exactly: 2 tasks per worker loop "yield, then burn
/// 10 µs". If a yield only sent the task to the back of the local queue, busy yielders
/// would keep that queue full and the injector would starve (seconds per iteration);
/// a yielding task goes behind a share of the injector instead (the scheduler's
/// fairness rule).
fn spawn_many_remote_busy1<R: Rt>(rt: &R, b: &mut Bencher) {
    remote_busy(rt, b, 2, true);
}

/// The busy load starts before warm-up and is stopped and joined after the last
/// measured iteration, before the runner drops the runtime.
fn remote_busy<R: Rt>(rt: &R, b: &mut Bencher, per_worker: usize, burn: bool) {
    let flag = Arc::new(AtomicBool::new(true));
    let busy: Vec<_> = (0..per_worker * b.workers())
        .map(|_| {
            let flag = flag.clone();
            rt.spawn_remote(async move {
                while flag.load(Relaxed) {
                    R::yield_now().await;
                    if burn {
                        stall();
                    }
                }
            })
        })
        .collect();

    let mut handles = Vec::with_capacity(NUM_SPAWN);
    b.iter(|| {
        for _ in 0..NUM_SPAWN {
            handles.push(rt.spawn_remote(async {}));
        }
        rt.block_on(async {
            for handle in handles.drain(..) {
                handle.await.unwrap();
            }
        });
    });

    flag.store(false, Relaxed);
    rt.block_on(async {
        for handle in busy {
            handle.await.unwrap();
        }
    });
}

/// A task spawns 1 000 tasks; each spawns a partner and they exchange one message each
/// way through [`oneshot`]; the last pair to finish signals. Measures wake-ups.
fn ping_pong<R: Rt>(rt: &R, b: &mut Bencher) {
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    b.iter(|| {
        let done_tx = done_tx.clone();
        let rem = rem.clone();
        rem.store(NUM_PINGS, Relaxed);
        drop(rt.spawn_remote(async move {
            for _ in 0..NUM_PINGS {
                let rem = rem.clone();
                let done_tx = done_tx.clone();
                drop(R::spawn_local(ping::<R>(rem, done_tx)));
            }
        }));
        done_rx.recv().unwrap();
    });
}

/// 200 tasks spawned from outside, each yielding 1 000 times. Measures the cost of a
/// reschedule through the local queue.
fn yield_many<R: Rt>(rt: &R, b: &mut Bencher) {
    let (tx, rx) = mpsc::sync_channel(YIELD_TASKS);
    b.iter(|| {
        for _ in 0..YIELD_TASKS {
            let tx = tx.clone();
            drop(rt.spawn_remote(async move {
                for _ in 0..NUM_YIELD {
                    R::yield_now().await;
                }
                tx.send(()).unwrap();
            }));
        }
        for _ in 0..YIELD_TASKS {
            rx.recv().unwrap();
        }
    });
}

/// A chain of 1 000 tasks, each spawning the next and completing; the last signals.
/// Measures spawn-to-run latency on one worker (the runnext / LIFO slot).
fn chained_spawn<R: Rt>(rt: &R, b: &mut Bencher) {
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    b.iter(|| {
        let done_tx = done_tx.clone();
        drop(rt.spawn_remote(async move { link::<R>(done_tx, CHAIN) }));
        done_rx.recv().unwrap();
    });
}

/// One ping-pong of tokio's `ping_pong`: a pong task answers through oneshots; the
/// last pair to finish signals.
async fn ping<R: Rt>(rem: Arc<AtomicUsize>, done_tx: mpsc::SyncSender<()>) {
    let (tx1, rx1) = oneshot::channel();
    let (tx2, rx2) = oneshot::channel();
    drop(R::spawn_local(async move {
        rx1.await.unwrap();
        tx2.send(()).unwrap();
    }));
    tx1.send(()).unwrap();
    rx2.await.unwrap();
    if rem.fetch_sub(1, Relaxed) == 1 {
        done_tx.send(()).unwrap();
    }
}

/// One link of a chain: spawns the next, or signals at the end (tokio's `iter`).
fn link<R: Rt>(done_tx: mpsc::SyncSender<()>, n: usize) {
    if n == 0 {
        done_tx.send(()).unwrap();
    } else {
        drop(R::spawn_local(async move { link::<R>(done_tx, n - 1) }));
    }
}

/// tokio's `spawn_many_local` as written: 10 000 spawns from inside `block_on` (remote
/// on a multi-threaded runtime), then a blocking wait inside it.
fn spawn_many_local_as_tokio<R: Rt>(rt: &R, b: &mut Bencher) {
    let (tx, rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    b.iter(|| {
        rem.store(NUM_SPAWN, Relaxed);
        rt.block_on(async {
            for _ in 0..NUM_SPAWN {
                let tx = tx.clone();
                let rem = rem.clone();
                drop(R::spawn_local(async move {
                    if 1 == rem.fetch_sub(1, Relaxed) {
                        tx.send(()).unwrap();
                    }
                }));
            }
            rx.recv().unwrap();
        });
    });
}

/// tokio's `ping_pong` as written: the root spawned from inside `block_on`, which then
/// blocks on the channel.
fn ping_pong_as_tokio<R: Rt>(rt: &R, b: &mut Bencher) {
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    b.iter(|| {
        let done_tx = done_tx.clone();
        let rem = rem.clone();
        rem.store(NUM_PINGS, Relaxed);
        rt.block_on(async {
            drop(R::spawn_local(async move {
                for _ in 0..NUM_PINGS {
                    let rem = rem.clone();
                    let done_tx = done_tx.clone();
                    drop(R::spawn_local(ping::<R>(rem, done_tx)));
                }
            }));
            done_rx.recv().unwrap();
        });
    });
}

/// tokio's `chained_spawn` as written: the first link spawned from inside `block_on`,
/// which then blocks on the channel.
fn chained_spawn_as_tokio<R: Rt>(rt: &R, b: &mut Bencher) {
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    b.iter(|| {
        let done_tx = done_tx.clone();
        rt.block_on(async {
            drop(R::spawn_local(async move { link::<R>(done_tx, CHAIN) }));
            done_rx.recv().unwrap();
        });
    });
}

/// Burns [`STALL`] of wall time, yielding the thread like tokio's `stall`.
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL {
        std::thread::yield_now();
    }
}
