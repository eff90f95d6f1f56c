//! The idle protocol (`executor/src/scheduler/idle.rs`) with the injector and the run
//! queues: a worker going to sleep never sleeps while work it should run is pending.
//!
//! * `parking_worker_never_misses_published_work`: the Dekker pairing alone. The task
//!   queue is a relaxed atomic on purpose: the ordering must come from `Idle`'s fences.
//!   Mutation `idle_fence` (the producer's SeqCst fence removed) is caught here.
//! * `parking_worker_sees_injected_work`: the same race over the real injector and real
//!   tasks: a remote spawn (`Shared::schedule_remote`) racing a worker's park.
//! * `last_searcher_hands_off`: a worker that queued a task locally and then blocks
//!   (a task stuck in a blocking call) relies on the searching worker: the producer's
//!   `notify_parked` wakes nobody because someone searches, so the last searcher must
//!   look at every queue before it sleeps. Mutation `searcher_handoff` (the last searcher
//!   is never told) leaves both workers asleep: loom reports the deadlock.

use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::{Arc, Condvar, Mutex};
use uringo::__loom::{Idle, LoomRing};
use uringo_loom_tests::worker::ModelWorker;
use uringo_loom_tests::{finish_shutdown, model, runtime, spawn, spawn_local};

#[test]
fn parking_worker_never_misses_published_work() {
    model(|| {
        // Worker 1 is busy elsewhere; worker 0 is about to park.
        let idle = Arc::new(Idle::new(2));
        let queue = Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(LoomRing::default());

        let producer = {
            let (idle, queue, ring) = (idle.clone(), queue.clone(), ring.clone());
            loom::thread::spawn(move || {
                queue.store(1, Relaxed);
                if let Some(worker) = idle.worker_to_notify() {
                    assert_eq!(worker, 0);
                    ring.wake();
                }
            })
        };

        // Worker 0: announce, last look, sleep until kicked.
        idle.transition_worker_to_parked(0, false);
        if queue.load(Relaxed) == 0 {
            ring.park();
        }
        idle.transition_worker_from_parked(0);
        producer.join().unwrap();
        assert_eq!(queue.load(Relaxed), 1);
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

#[test]
fn parking_worker_sees_injected_work() {
    model(|| {
        let (shared, mut locals) = runtime(2);
        // Worker 1 is busy elsewhere (unparked, not searching); worker 0 has nothing.
        let mut w0 = ModelWorker::new(0, shared.clone(), locals.remove(0));
        let ran = Arc::new(Done::default());
        let worker = loom::thread::spawn(move || loop {
            // The worker's loop, reduced to its own queue and the injector: look, park
            // if nothing is visible. A lost wake-up leaves it asleep: a deadlock.
            if let Some(task) = w0.next_local_task() {
                w0.run_task(task);
                return w0;
            }
            w0.park();
        });
        let join = {
            let ran = ran.clone();
            spawn(&shared, 1, async move { ran.set() })
        };
        let w0 = worker.join().unwrap();
        ran.wait();
        assert!(join.is_finished());
        drop(join);
        shared.begin_shutdown();
        drop(w0);
        drop(locals);
        finish_shutdown(&shared);
    });
}

#[test]
fn last_searcher_hands_off() {
    model(|| {
        let (shared, mut locals) = runtime(2);
        let mut w1 = ModelWorker::new(1, shared.clone(), locals.pop().unwrap());
        let mut w0 = ModelWorker::new(0, shared.clone(), locals.pop().unwrap());
        // Worker 0 has run out of work and is searching.
        assert!(shared.idle.transition_worker_to_searching());
        w0.is_searching = true;

        // Steal, spin (one look), park: the end of the real loop.
        let searcher = loom::thread::spawn(move || loop {
            if let Some(task) = w0.steal_work() {
                w0.run_task(task);
                return w0;
            }
            if w0.spin_for_work() {
                continue;
            }
            w0.park();
        });
        // Worker 1 spawns a task onto its own queue, then blocks until it has run.
        let ran = Arc::new(Done::default());
        let join = {
            let ran = ran.clone();
            spawn_local(&mut w1, 1, async move { ran.set() })
        };
        ran.wait();
        let w0 = searcher.join().unwrap();
        assert!(join.is_finished());
        drop(join);
        shared.begin_shutdown();
        drop((w0, w1));
        finish_shutdown(&shared);
    });
}
