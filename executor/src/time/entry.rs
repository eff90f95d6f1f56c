//! A timer's shared state: what the worker that owns the wheel and the `Sleep` (on
//! whatever thread its task runs now) both see.

use std::task::Waker;

use uringo_timers::TimerKey;

use crate::loom::sync::{Arc, AtomicU32, Mutex, MutexGuard, Ordering};

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
    slot: Mutex<Slot>,
    /// Deadline tick, for the owner (remote registrations carry it here).
    pub deadline_tick: u64,
}

#[derive(Default)]
struct Slot {
    waker: Option<Waker>,
    /// The wheel key of a timer registered by a thread without a wheel, set by the
    /// owner when it inserts the timer: that thread learns it here when it cancels.
    key: Option<TimerKey>,
}

impl TimerEntry {
    pub(crate) fn new(deadline_tick: u64) -> TimerEntry {
        TimerEntry {
            state: AtomicU32::new(PENDING),
            slot: Mutex::new(Slot::default()),
            deadline_tick,
        }
    }

    /// An entry whose waiter is `waker` from the start: for a `Sleep` armed on the
    /// worker that owns the wheel, which stores it before the entry is inserted, so no
    /// fire can come before it.
    pub(crate) fn with_waker(deadline_tick: u64, waker: Waker) -> TimerEntry {
        TimerEntry {
            state: AtomicU32::new(PENDING),
            slot: Mutex::new(Slot {
                waker: Some(waker),
                key: None,
            }),
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
            let mut slot = self.lock();
            match &slot.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => slot.waker = Some(waker.clone()),
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
            let waker = self.lock().waker.take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Waiter: gives the timer up. Returns true if it had not fired (the wheel may still
    /// hold it).
    pub(crate) fn cancel(&self) -> bool {
        self.cancel_taking_key().0
    }

    /// Owner: inserts a timer that a thread without a wheel registered, unless it was
    /// cancelled first, and keeps its key for that thread's cancel
    /// ([`TimerEntry::cancel_adopted`]). Under the entry's lock, so that a cancel either
    /// comes first and is seen here, or comes after and finds the key.
    pub(crate) fn adopt(entry: Arc<TimerEntry>, insert: impl FnOnce(Arc<TimerEntry>) -> TimerKey) {
        let mut slot = entry.lock();
        if !entry.is_cancelled() {
            slot.key = Some(insert(entry.clone()));
        }
    }

    /// Waiter of a timer the owner adopts: gives it up, and returns its wheel key if it
    /// had not fired and the owner had already inserted it (the owner must then remove
    /// it; otherwise it never enters the wheel).
    pub(crate) fn cancel_adopted(&self) -> Option<TimerKey> {
        match self.cancel_taking_key() {
            (true, key) => key,
            (false, _) => None,
        }
    }

    fn cancel_taking_key(&self) -> (bool, Option<TimerKey>) {
        let was_pending = self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let mut slot = self.lock();
        drop(slot.waker.take());
        (was_pending, slot.key.take())
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}
