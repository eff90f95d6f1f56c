//! The scheduler with two workers, as far as loom can take it: two `ModelWorker`s
//! (the decisions of `worker.rs` over the real `Shared`: local queues, injector, idle
//! accounting, owned-task registry, real tasks and wakers) and a thread outside the
//! runtime that spawns, joins and shuts down. The io_uring ring is replaced by the
//! `LoomRing` kick (see `loom-tests/src/worker.rs` and README.md for what that leaves
//! out).
//!
//! Mutation `remote_notify` (a remote spawn does not wake a parked worker) strands the
//! spawned task while both workers sleep: loom reports the deadlock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use uringo_loom_tests::worker::ModelWorker;
use uringo_loom_tests::{finish_shutdown, model, runtime, spawn};

fn start_workers(
    shared: &Arc<uringo::__loom::Shared>,
    locals: Vec<uringo::__loom::Local<uringo::__loom::Notified>>,
) -> Vec<thread::JoinHandle<()>> {
    locals
        .into_iter()
        .enumerate()
        .map(|(i, local)| {
            let mut worker = ModelWorker::new(i, shared.clone(), local);
            thread::spawn(move || worker.run())
        })
        .collect()
}

/// Spawned from outside, run by whichever worker gets it, joined from outside; then a
/// clean shutdown.
#[test]
fn spawn_and_join_with_two_workers() {
    model(|| {
        let (shared, locals) = runtime(2);
        let workers = start_workers(&shared, locals);
        let ran = Arc::new(Done::default());
        let mut join = {
            let ran = ran.clone();
            spawn(&shared, 1, async move {
                ran.set();
                7
            })
        };
        // Waits like a blocked `block_on` would (loom's own `block_on` multiplies the
        // interleavings to explore).
        ran.wait();
        shared.begin_shutdown();
        for worker in workers {
            worker.join().unwrap();
        }
        finish_shutdown(&shared);
        let out = Pin::new(&mut join).poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(out, Poll::Ready(Ok(7))));
    });
}

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

/// Shutdown while a task is queued or parked forever: the workers stop, the task is
/// cancelled and its future dropped exactly once, and everything is freed (the tasks
/// hold the runtime's loom `Arc`, which loom reports if leaked).
#[test]
fn shutdown_with_a_pending_task() {
    model(|| {
        let (shared, locals) = runtime(2);
        let workers = start_workers(&shared, locals);
        let drops = Arc::new(AtomicUsize::new(0));
        let join = spawn(&shared, 1, Forever(Counted(drops.clone())));
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
        let out = Pin::new(&mut { join }).poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(out, Poll::Ready(Err(e)) if e.is_cancelled()));
    });
}
