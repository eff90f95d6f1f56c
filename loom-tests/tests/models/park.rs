//! The ring's park token (`uring/src/park.rs`): the owner never sleeps through a wake.
//! As in uringo's workers, the owner looks at its work (the executor's run queues)
//! *before* calling `Ring::park`, whose own last look only covers the ring's mailbox and
//! CQ; a wake that lands between the two is carried by the token (or by the kick, if
//! the owner already announced PARKED).
//!
//! Mutation `park_token` (begin_park overwrites a pending NOTIFIED) makes the owner
//! sleep with the wake consumed: loom reports the deadlock.

use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use uringo::__loom::LoomRing;
use uringo_loom_tests::model;
use uringo_uring::__loom::ParkState;

#[test]
fn wake_is_never_lost() {
    model(|| {
        let park = Arc::new(ParkState::new());
        let work = Arc::new(AtomicUsize::new(0));
        // The physical wake (eventfd read / MSG_RING CQE) is sticky: a CQE stays in the
        // ring until reaped.
        let kick = Arc::new(LoomRing::default());
        let waker = {
            let (park, work, kick) = (park.clone(), work.clone(), kick.clone());
            loom::thread::spawn(move || {
                work.store(1, SeqCst);
                if park.notify() {
                    kick.wake();
                }
            })
        };
        loop {
            // The executor's look at its queues.
            if work.load(SeqCst) == 1 {
                break;
            }
            // `Ring::park`: the mailbox and CQ are empty, so only a kick ends the wait
            // once PARKED is announced.
            if park.begin_park() {
                kick.park();
                park.end_park();
            }
        }
        waker.join().unwrap();
    });
}
