//! The idle protocol alone (`idle.rs`): a worker going to sleep and a producer that
//! publishes work cannot miss each other. The "queue" is a relaxed atomic on purpose:
//! the ordering must come from `Idle`'s fences. The protocol over the real queues and
//! the real loop is modelled in `worker/loom.rs`.
//!
//! Mutation `idle_fence` (the producer's SeqCst fence removed) is caught here: loom
//! reports the worker asleep with the producer gone.

use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::Arc;

use super::Idle;
use crate::loom::model::{driver, model, runtime};
use crate::scheduler::driver::Driver;

#[test]
fn parking_worker_never_misses_published_work() {
    model(|| {
        // Worker 1 is busy elsewhere; worker 0 is about to park.
        let idle = Arc::new(Idle::new(2));
        let queue = Arc::new(AtomicUsize::new(0));
        let (shared, _locals) = runtime(1);
        let ring = driver(&shared);
        let unpark = ring.unparker();

        let producer = {
            let (idle, queue) = (idle.clone(), queue.clone());
            loom::thread::spawn(move || {
                queue.store(1, Relaxed);
                if let Some(worker) = idle.worker_to_notify() {
                    assert_eq!(worker, 0);
                    unpark.unpark();
                }
            })
        };

        // Worker 0: announce, last look, sleep until kicked.
        idle.transition_worker_to_parked(0, false);
        if queue.load(Relaxed) == 0 {
            ring.park(None).unwrap();
        }
        idle.transition_worker_from_parked(0);
        producer.join().unwrap();
        assert_eq!(queue.load(Relaxed), 1);
    });
}
