//! A waker slot that one thread fills and another empties, without a lock.
//!
//! This is the classic three-state protocol (the one `futures::task::AtomicWaker` uses),
//! written against [`crate::sync`] so loom can check it. `register` is called by the
//! op's waiter (one at a time: it holds `&mut` on the future), `take` by the ring owner
//! when the CQE arrives. A wake that races a registration is never lost: whoever sees
//! the other side's bit is responsible for waking.

use std::task::Waker;

use crate::sync::{AtomicU32, Ordering::AcqRel, Ordering::Acquire, Ordering::Release, UnsafeCell};

/// No one is touching the slot.
const IDLE: u32 = 0;
/// The waiter is writing a new waker into the slot.
const REGISTERING: u32 = 1;
/// The owner is taking the waker out (or asked for it while a registration ran).
const WAKING: u32 = 2;

pub(crate) struct AtomicWaker {
    state: AtomicU32,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the `waker` slot is only touched by the party that moved `state` out of IDLE
// (REGISTERING for the waiter, WAKING for the owner), so accesses never overlap.
unsafe impl Send for AtomicWaker {}
// SAFETY: as above; `Waker` itself is Send + Sync.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(IDLE),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` to be woken by the next [`AtomicWaker::wake`].
    pub(crate) fn register(&self, waker: &Waker) {
        match self
            .state
            .compare_exchange(IDLE, REGISTERING, Acquire, Acquire)
            .unwrap_or_else(|actual| actual)
        {
            IDLE => {
                // SAFETY: we moved the state to REGISTERING, so the owner will not touch
                // the slot until we move it back.
                self.waker.with_mut(|slot| unsafe {
                    match &*slot {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *slot = Some(waker.clone()),
                    }
                });
                if let Err(actual) = self
                    .state
                    .compare_exchange(REGISTERING, IDLE, AcqRel, Acquire)
                {
                    // A wake arrived while we were registering: it could not take the
                    // waker, so we wake it ourselves.
                    debug_assert_eq!(actual, REGISTERING | WAKING);
                    // SAFETY: the state is still REGISTERING|WAKING, which the owner
                    // treats as "hands off", so the slot is ours.
                    let waker = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                    self.state.swap(IDLE, AcqRel);
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
            }
            WAKING => {
                // The owner is waking right now; whatever it wakes may be stale, so
                // wake the current waker too.
                waker.wake_by_ref();
                crate::sync::spin_loop();
            }
            state => {
                // Only one waiter registers at a time (it holds `&mut` on the op).
                debug_assert!(state == REGISTERING || state == REGISTERING | WAKING);
            }
        }
    }

    /// Takes the registered waker out, if there is one and no registration is running.
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, AcqRel) {
            IDLE => {
                // SAFETY: we moved the state from IDLE to WAKING; the waiter will not
                // touch the slot until we clear the bit.
                let waker = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                self.state.fetch_and(!WAKING, Release);
                waker
            }
            _ => None,
        }
    }

    /// Wakes the registered waker, if any.
    pub(crate) fn wake(&self) {
        if let Some(waker) = self.take() {
            waker.wake();
        }
    }
}
