//! A timer's shared state: what the worker that owns the wheel and the `Sleep` (on
//! whatever thread its task runs now) both see.

use std::task::Waker;

use crate::loom::sync::{AtomicU32, Mutex, Ordering};

/// Waiting in a wheel (or about to be inserted into one).
const PENDING: u32 = 0;
/// The owner saw the deadline pass and woke the waiter. Final.
const FIRED: u32 = 1;
/// The `Sleep` was dropped or reset before firing; the owner removes or skips it.
/// Final.
const CANCELLED: u32 = 2;

/// One armed timer. The wheel holds an `Arc` to it until it fires or is removed; the
/// `Sleep` holds the other.
pub(crate) struct TimerEntry {
    state: AtomicU32,
    /// A per-entry lock: the waiter stores its waker, the owner takes it to fire. No
    /// two timers ever share a lock.
    waker: Mutex<Option<Waker>>,
    /// Deadline tick, for the owner (remote registrations carry it here).
    pub deadline_tick: u64,
}

impl TimerEntry {
    pub(crate) fn new(deadline_tick: u64) -> TimerEntry {
        TimerEntry {
            state: AtomicU32::new(PENDING),
            waker: Mutex::new(None),
            deadline_tick,
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.state.load(Ordering::Acquire) == FIRED
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Waiter: stores the waker, then reports whether the timer fired. The store comes
    /// first so a concurrent fire either sees our waker or we see FIRED.
    pub(crate) fn register(&self, waker: &Waker) -> bool {
        if self.is_fired() {
            return true;
        }
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
        self.is_fired()
    }

    /// Owner: the deadline passed. Wakes the waiter unless the timer was cancelled.
    pub(crate) fn fire(&self) {
        let won = self
            .state
            .compare_exchange(PENDING, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        // Mutation point: firing without winning the CAS fires after a cancel.
        let won = won || crate::loom::mutation!("timer_fire_cas");
        if won {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Waiter: gives the timer up. Returns true if it had not fired (the wheel may still
    /// hold it).
    pub(crate) fn cancel(&self) -> bool {
        let was_pending = self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        drop(self.waker.lock().unwrap_or_else(|e| e.into_inner()).take());
        was_pending
    }
}
