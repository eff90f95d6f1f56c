//! The real scheduling loop under loom: `Worker::run` and its steps, on loom threads,
//! over the real `Shared` (run queues, injector, idle accounting, registry, tasks and
//! wakers), with a [`LoomDriver`](crate::loom::LoomDriver) for a kernel. What that
//! leaves out is listed in `loom/model.rs`.
//!
//! Mutations caught here: `remote_notify` (a remote spawn wakes nobody: the worker
//! sleeps beside its task) and `searcher_handoff` (the last searcher is never told to
//! look again: both workers sleep while a task waits in a blocked worker's queue).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};

use crate::loom::model::{as_worker, finish_shutdown, model, runtime, spawn, start_worker};

/// A flag a task sets when it runs, that a thread can wait for.
#[derive(Default)]
struct Done {
    done: Mutex<bool>,
    cond: Condvar,
}

impl Done {
    fn set(&self) {
        *self.done.lock().unwrap() = true;
        self.cond.notify_all();
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cond.wait(done).unwrap();
        }
    }
}

fn poll_now<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// A remote spawn racing a worker's park: the worker runs the task. The worker's loop
/// is reduced to its own queue, the injector and parking; a lost wake-up leaves it
/// asleep beside the task: a deadlock.
#[test]
fn parking_worker_sees_injected_work() {
    model(|| {
        let (shared, mut locals) = runtime(2);
        // Worker 1 is busy elsewhere (unparked, not searching); worker 0 has nothing.
        let local = locals.remove(0);
        let worker = {
            let shared = shared.clone();
            loom::thread::spawn(move || {
                as_worker(&shared, 0, local, |w| loop {
                    if let Some(task) = w.next_local_task() {
                        w.run_task(task);
                        return;
                    }
                    w.park();
                })
            })
        };
        let ran = Arc::new(Done::default());
        let mut join = {
            let ran = ran.clone();
            spawn(&shared, 1, async move { ran.set() })
        };
        worker.join().unwrap();
        ran.wait();
        assert!(poll_now(&mut join).is_ready());
        shared.begin_shutdown();
        drop(locals);
        finish_shutdown(&shared);
    });
}

/// Worker 1 queues a task locally and then blocks (a task stuck in a blocking call)
/// while worker 0 searches (steal, spin, park: the end of the real loop). The spawn
/// wakes nobody because someone searches, so the last searcher must look at every
/// queue before it sleeps, whether or not its spin saw the task.
#[test]
fn last_searcher_hands_off() {
    model(|| {
        let (shared, mut locals) = runtime(2);
        let local1 = locals.pop().unwrap();
        let local0 = locals.pop().unwrap();
        // Worker 0 has run out of work and is searching.
        assert!(shared.idle.transition_worker_to_searching());
        let searcher = {
            let shared = shared.clone();
            loom::thread::spawn(move || {
                as_worker(&shared, 0, local0, |w| {
                    w.core.is_searching = true;
                    loop {
                        if let Some(task) = w.steal_work() {
                            w.run_task(task);
                            return;
                        }
                        if w.spin_for_work() {
                            crate::loom::retry_soon();
                            continue;
                        }
                        w.park();
                    }
                })
            })
        };
        // Worker 1 (this thread) spawns onto its own queue, then blocks until the task
        // has run: only a sibling can run it.
        let ran = Arc::new(Done::default());
        let mut join = as_worker(&shared, 1, local1, |_| {
            let join = {
                let ran = ran.clone();
                spawn(&shared, 1, async move { ran.set() })
            };
            ran.wait();
            join
        });
        searcher.join().unwrap();
        assert!(poll_now(&mut join).is_ready());
        shared.begin_shutdown();
        finish_shutdown(&shared);
    });
}

/// Spawned from outside, run by whichever worker gets it, joined from outside; then a
/// clean shutdown of both loops.
#[test]
fn spawn_and_join_with_two_workers() {
    model(|| {
        let (shared, locals) = runtime(2);
        let workers: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(i, local)| start_worker(&shared, i, local))
            .collect();
        let ran = Arc::new(Done::default());
        let mut join = {
            let ran = ran.clone();
            spawn(&shared, 1, async move {
                ran.set();
                7
            })
        };
        ran.wait();
        shared.begin_shutdown();
        for worker in workers {
            worker.join().unwrap();
        }
        finish_shutdown(&shared);
        assert!(matches!(poll_now(&mut join), Poll::Ready(Ok(7))));
    });
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Never completes, and keeps no waker: only shutdown can end it.
struct Forever(#[allow(dead_code)] Counted);

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Shutdown while a task is queued or parked forever: both loops stop, the task is
/// cancelled and its future dropped exactly once, and everything is freed (the tasks
/// hold the runtime's loom `Arc`, which loom reports if leaked).
#[test]
fn shutdown_with_a_pending_task() {
    model(|| {
        let (shared, locals) = runtime(2);
        let workers: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(i, local)| start_worker(&shared, i, local))
            .collect();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut join = spawn(&shared, 1, Forever(Counted(drops.clone())));
        shared.begin_shutdown();
        for worker in workers {
            worker.join().unwrap();
        }
        finish_shutdown(&shared);
        assert_eq!(
            drops.load(SeqCst),
            1,
            "the pending task was not cancelled once"
        );
        assert!(matches!(poll_now(&mut join), Poll::Ready(Err(e)) if e.is_cancelled()));
    });
}

/// Pending until a thread outside the runtime wakes it, after yielding twice on its
/// own: the yield path (back of the queue) races a remote wake (the injector).
struct YieldThenWait {
    yields: usize,
    slot: Arc<Mutex<Option<Waker>>>,
    woken: Arc<AtomicUsize>,
}

impl Future for YieldThenWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yields > 0 {
            self.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.woken.load(SeqCst) > 0 {
            return Poll::Ready(());
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        // Checked again after publishing the waker: a wake in between is not lost.
        if self.woken.load(SeqCst) > 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// One worker runs its real loop; its task yields (goes to the back of the queue),
/// then waits for a wake from a thread outside the runtime (the injector, and an
/// unpark if the worker sleeps). The task completes, and the loop shuts down cleanly.
#[test]
fn a_task_that_yields_then_waits_for_an_outside_wake_completes() {
    model(|| {
        let (shared, mut locals) = runtime(1);
        let worker = start_worker(&shared, 0, locals.remove(0));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let woken = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(Done::default());
        let join = {
            let (slot, woken, ran) = (slot.clone(), woken.clone(), ran.clone());
            spawn(&shared, 1, async move {
                YieldThenWait {
                    yields: 2,
                    slot,
                    woken,
                }
                .await;
                ran.set();
            })
        };
        woken.store(1, SeqCst);
        if let Some(waker) = slot.lock().unwrap().take() {
            waker.wake();
        }
        ran.wait();
        drop(join);
        shared.begin_shutdown();
        worker.join().unwrap();
        finish_shutdown(&shared);
    });
}

/// A task spawns a child on its worker (the runnext slot) while the other worker's
/// loop looks for work to steal (runnext included): the child runs exactly once,
/// whoever takes it, and both loops stop cleanly.
#[test]
fn a_child_spawned_into_runnext_runs_once_while_a_sibling_steals() {
    model(|| {
        let (shared, locals) = runtime(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(Done::default());
        let mut locals = locals.into_iter();
        let (local0, local1) = (locals.next().unwrap(), locals.next().unwrap());
        let sibling = start_worker(&shared, 1, local1);
        let parent = {
            let (shared, runs, ran) = (shared.clone(), runs.clone(), ran.clone());
            loom::thread::spawn(move || {
                as_worker(&shared.clone(), 0, local0, |w| {
                    let inner = shared.clone();
                    let child = spawn(&shared, 1, async move {
                        let child = spawn(&inner, 2, async move {
                            runs.fetch_add(1, SeqCst);
                            ran.set();
                        });
                        drop(child);
                    });
                    drop(child);
                    w.run();
                })
            })
        };
        ran.wait();
        shared.begin_shutdown();
        parent.join().unwrap();
        sibling.join().unwrap();
        finish_shutdown(&shared);
        assert_eq!(runs.load(SeqCst), 1);
    });
}

/// A task sleeps on its worker's wheel; the worker parks with the timer's deadline as
/// its timeout (the loom driver moves the manual clock past it), fires the timer and
/// runs the task again: timers are part of the loop, not a side path.
#[test]
fn a_sleeping_task_is_woken_by_its_timer() {
    model(|| {
        let (shared, mut locals) = runtime(1);
        let worker = start_worker(&shared, 0, locals.remove(0));
        let ran = Arc::new(Done::default());
        let join = {
            let ran = ran.clone();
            spawn(&shared, 1, async move {
                crate::time::sleep(Duration::from_millis(5)).await;
                ran.set();
            })
        };
        ran.wait();
        drop(join);
        shared.begin_shutdown();
        worker.join().unwrap();
        finish_shutdown(&shared);
    });
}

/// A task that keeps awaiting ready uringo futures spends its 128-unit budget, is made
/// to yield (the back of the queue) and finishes on later polls, while a task spawned
/// from outside also runs: the budget's forced yield goes through the real loop.
#[test]
fn a_task_out_of_budget_yields_and_finishes() {
    model(|| {
        let (shared, mut locals) = runtime(1);
        let worker = start_worker(&shared, 0, locals.remove(0));
        let busy_done = Arc::new(Done::default());
        let other_done = Arc::new(Done::default());
        let busy = {
            let done = busy_done.clone();
            spawn(&shared, 1, async move {
                for _ in 0..crate::runtime::coop::INITIAL as usize + 2 {
                    crate::time::sleep(Duration::ZERO).await;
                }
                done.set();
            })
        };
        let other = {
            let done = other_done.clone();
            spawn(&shared, 2, async move { done.set() })
        };
        busy_done.wait();
        other_done.wait();
        drop((busy, other));
        shared.begin_shutdown();
        worker.join().unwrap();
        finish_shutdown(&shared);
        assert!(
            shared.remotes[0]
                .metrics
                .budget_forced_yields
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1,
            "the busy task never ran out of budget"
        );
    });
}
