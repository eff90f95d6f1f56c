//! The park/unpark handshake between a ring's owner and the threads that wake it.
//!
//! Kept alone in this file so it can be modelled with loom as it is. The owner announces
//! `PARKED` *before* its last look at its queues and its blocking `io_uring_enter`; a
//! waker swaps in `NOTIFIED` and, only if it saw `PARKED`, sends the physical wake-up (a
//! MSG_RING CQE or an eventfd write, both of which make the pending enter return). A
//! wake that lands while the owner is running leaves `NOTIFIED` behind, so the next park
//! returns at once instead of sleeping: a notification is a token, never lost, and any
//! number of wakes between two parks cost one atomic swap each and no syscall.

use crate::sync::{AtomicU32, Ordering::SeqCst};

/// The owner is running (or about to check its queues); wakers need not kick.
const RUNNING: u32 = 0;
/// The owner has committed to sleeping in the kernel; a waker must kick it.
const PARKED: u32 = 1;
/// A wake arrived since the owner last parked; the next park returns at once.
const NOTIFIED: u32 = 2;

#[derive(Debug)]
pub(crate) struct ParkState {
    state: AtomicU32,
}

impl ParkState {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(RUNNING),
        }
    }

    /// Owner: announces that it is going to sleep. Returns false (and consumes the
    /// token) when a wake is pending, in which case the owner must not sleep.
    pub(crate) fn begin_park(&self) -> bool {
        // Mutation point: parking over NOTIFIED sleeps through a wake.
        if mutation!("park_token") {
            return self.state.swap(PARKED, SeqCst) != PARKED;
        }
        match self.state.compare_exchange(RUNNING, PARKED, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(_) => {
                // Only the owner moves the state away from NOTIFIED, so it is NOTIFIED.
                self.state.store(RUNNING, SeqCst);
                false
            }
        }
    }

    /// Owner: back from the kernel (woken, timed out or interrupted).
    pub(crate) fn end_park(&self) {
        self.state.swap(RUNNING, SeqCst);
    }

    /// Waker: records the wake. Returns true when the owner is asleep (or committed to
    /// sleeping) and must be kicked out of the kernel.
    pub(crate) fn notify(&self) -> bool {
        self.state.swap(NOTIFIED, SeqCst) == PARKED
    }

    /// Whether the owner is currently parked (for metrics and tests).
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(SeqCst) == PARKED
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! The owner never sleeps through a wake. As in uringo's workers, the owner looks at
    //! its work (the executor's run queues) *before* calling `Ring::park`, whose own
    //! last look only covers the ring's mailbox and CQ; a wake that lands between the
    //! two is carried by the token, or by the kick if the owner already announced
    //! PARKED. Mutation `park_token` (`begin_park` overwrites a pending NOTIFIED) makes
    //! the owner sleep with the wake consumed: loom reports the deadlock.

    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Condvar, Mutex};
    use std::sync::atomic::Ordering::SeqCst;

    use super::ParkState;
    use crate::sync::model::model;

    /// The physical wake-up as loom sees it: the eventfd read or MSG_RING CQE that ends
    /// the owner's `io_uring_enter`. Sticky, like a CQE that stays in the CQ until
    /// reaped: a kick before the sleep ends it at once.
    #[derive(Default)]
    struct Kick {
        kicked: Mutex<bool>,
        cond: Condvar,
    }

    impl Kick {
        fn kick(&self) {
            *self.kicked.lock().unwrap() = true;
            self.cond.notify_all();
        }

        /// The blocking enter: sleeps until kicked, consuming the kick.
        fn sleep(&self) {
            let mut kicked = self.kicked.lock().unwrap();
            while !*kicked {
                kicked = self.cond.wait(kicked).unwrap();
            }
            *kicked = false;
        }
    }

    #[test]
    fn wake_is_never_lost() {
        model(|| {
            let park = Arc::new(ParkState::new());
            let work = Arc::new(AtomicUsize::new(0));
            let kick = Arc::new(Kick::default());
            let waker = {
                let (park, work, kick) = (park.clone(), work.clone(), kick.clone());
                loom::thread::spawn(move || {
                    work.store(1, SeqCst);
                    if park.notify() {
                        kick.kick();
                    }
                })
            };
            loop {
                // The executor's look at its queues.
                if work.load(SeqCst) == 1 {
                    break;
                }
                // `Ring::park`: the mailbox and CQ are empty, so only a kick ends the
                // wait once PARKED is announced.
                if park.begin_park() {
                    kick.sleep();
                    park.end_park();
                }
            }
            waker.join().unwrap();
        });
    }
}
