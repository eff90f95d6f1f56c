//! A timer's shared state: what the worker that owns the wheel and the `Sleep` (on
//! whatever thread its task runs now) both see.

use std::task::Waker;

use uringo_timers::TimerKey;

use crate::loom::sync::{AtomicU32, Mutex, MutexGuard, Ordering};

/// Waiting in a wheel (or about to be inserted into one).
const PENDING: u32 = 0;
/// The owner saw the deadline pass and woke the waiter. Final for this timer (the
/// slot's next timer starts at PENDING again, once both holders let go).
const FIRED: u32 = 1;
/// The `Sleep` was dropped or reset before firing; the owner removes or skips it.
/// Final for this timer, like FIRED.
const CANCELLED: u32 = 2;

/// One timer's state, in a slot of its worker's [`TimerSlots`](super::slots::TimerSlots):
/// the wheel holds the slot until it fires or removes the timer, the `Sleep` until it
/// completes or is dropped (`holders`; see `time/slots.rs` for how the slot is reused).
pub(crate) struct TimerEntry {
    state: AtomicU32,
    /// How many of the wheel and the `Sleep` still hold the slot (2 once armed). Set
    /// by whoever arms it, which holds it alone; lowered by each holder as it lets go;
    /// the one that takes it to 0 owns the slot alone and gives it back.
    holders: AtomicU32,
    /// A per-entry lock: the waiter stores its waker, the owner takes it to fire. No
    /// two timers ever share a lock.
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    waker: Option<Waker>,
    /// The wheel key of a timer registered by a thread without a wheel, set by the
    /// owner when it inserts the timer: that thread learns it here when it cancels.
    key: Option<TimerKey>,
}

impl TimerEntry {
    /// A slot nobody holds.
    pub(crate) fn vacant() -> TimerEntry {
        TimerEntry {
            state: AtomicU32::new(PENDING),
            holders: AtomicU32::new(0),
            slot: Mutex::new(Slot::default()),
        }
    }

    /// Arms a slot just taken from the free list, so nobody else can see it until the
    /// caller hands its index on (which publishes these writes). `waker` is the
    /// waiter's from the start for a `Sleep` armed on the worker that owns the wheel,
    /// which stores it before the entry is inserted, so no fire can come before it.
    pub(crate) fn arm(&self, waker: Option<Waker>) {
        debug_assert_eq!(self.holders.load(Ordering::Relaxed), 0, "armed a held slot");
        self.state.store(PENDING, Ordering::Relaxed);
        self.holders.store(2, Ordering::Relaxed);
        *self.lock() = Slot { waker, key: None };
    }

    /// A holder lets go. Returns true for the last one, which then owns the slot alone:
    /// it takes any waker still stored ([`TimerEntry::take_waker`]) and gives the slot
    /// back.
    #[must_use = "the last holder gives the slot back"]
    pub(crate) fn release(&self) -> bool {
        // AcqRel, as `Arc`'s drop: the last holder sees every write the other made.
        let last = self.holders.fetch_sub(1, Ordering::AcqRel) == 1;
        // Mutation point: every holder taking itself for the last gives the slot back
        // twice.
        last || crate::loom::mutation!("slot_last_release")
    }

    /// The waker still stored, for the last holder to drop once it holds no borrow of
    /// the wheel (dropping a task's last waker frees the task, and with it whatever
    /// its output holds, `Sleep`s included). Only a poll that stored its waker just as
    /// the timer fired leaves one: a cancel and a fire each take it.
    pub(crate) fn take_waker(&self) -> Option<Waker> {
        self.lock().waker.take()
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
    /// comes first and is seen here, or comes after and finds the key. Returns false
    /// when it was cancelled (the wheel's hold is then the caller's to release).
    pub(crate) fn adopt(&self, insert: impl FnOnce() -> TimerKey) -> bool {
        let mut slot = self.lock();
        if self.is_cancelled() {
            return false;
        }
        slot.key = Some(insert());
        true
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
