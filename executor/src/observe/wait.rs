//! What the task being polled is waiting on, for task dumps.
//!
//! While a worker polls a task it points a thread-local *slot* at the word in the
//! task's header ([`watching`]); uringo's futures that return `Pending` write what they
//! wait on there ([`record`]): timers and join handles directly, uring ops through the
//! hook `uringo-uring` calls ([`install`]). Only the first record of a poll counts, so
//! `timeout(read)` shows the read rather than the timer. Outside a `watching` call
//! nothing is recorded, and recording costs a thread-local read.
//!
//! A slot is one `AtomicU64` (written by the polling thread, read by whoever takes a
//! dump), so a [`Wait`] is packed into 64 bits: a 2-bit kind and 62 bits of payload.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use uringo_uring::PendingOp;

const KIND_SHIFT: u32 = 62;
const PAYLOAD: u64 = (1 << KIND_SHIFT) - 1;
const KIND_OP: u64 = 1;
const KIND_TIMER: u64 = 2;
const KIND_TASK: u64 = 3;

/// Something a task can wait on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// An io_uring operation.
    Op(PendingOp),
    /// A timer due `at` nanoseconds after the clock's origin (62 bits).
    Timer { at: u64 },
    /// Another task's completion (a join handle), by task id (62 bits).
    Task { id: u64 },
}

impl Wait {
    /// Packs into a slot word; never 0 (the empty slot).
    pub(crate) fn encode(self) -> u64 {
        match self {
            Wait::Op(op) => {
                KIND_OP << KIND_SHIFT | u64::from(op.opcode) << 32 | u64::from(op.fd as u32)
            }
            Wait::Timer { at } => KIND_TIMER << KIND_SHIFT | (at & PAYLOAD),
            Wait::Task { id } => KIND_TASK << KIND_SHIFT | (id & PAYLOAD),
        }
    }

    /// Unpacks a slot word; `None` for the empty slot.
    pub(crate) fn decode(word: u64) -> Option<Wait> {
        let payload = word & PAYLOAD;
        match word >> KIND_SHIFT {
            KIND_OP => Some(Wait::Op(PendingOp {
                opcode: (payload >> 32) as u8,
                fd: payload as u32 as i32,
            })),
            KIND_TIMER => Some(Wait::Timer { at: payload }),
            KIND_TASK => Some(Wait::Task { id: payload }),
            _ => None,
        }
    }
}

crate::loom::thread_locals! {
    static SLOT: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// Has `uringo-uring` report the ops that polls leave pending here. The first hook a
/// process installs stays, so this is the one unless another user of `uringo-uring`
/// got there first (its dumps then show no ops).
pub(crate) fn install() {
    fn record_op(op: PendingOp) {
        record(Wait::Op(op));
    }
    uringo_uring::set_pending_hook(record_op);
}

/// Runs `f` with `slot` receiving what the futures polled inside wait on (see the
/// module doc). Nested calls restore the outer slot when they return, or unwind.
///
/// # Safety
/// `slot` must point at an `AtomicU64` that stays valid until `f` returns (it is
/// written from this thread while `f` runs, and never afterwards).
#[inline]
pub(crate) unsafe fn watching<R>(slot: *const AtomicU64, f: impl FnOnce() -> R) -> R {
    struct Restore(*const AtomicU64);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            SLOT.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SLOT.with(|s| s.replace(slot)));
    f()
}

/// Notes that the future being polled waits on `wait`, if a task is being watched and
/// nothing else was noted during this poll.
#[inline]
pub(crate) fn record(wait: Wait) {
    let slot = SLOT.with(Cell::get);
    if slot.is_null() {
        return;
    }
    // SAFETY: a non-null slot was set by `watching`, whose caller keeps it valid until
    // `watching` returns; we are inside that call on this thread.
    let slot = unsafe { &*slot };
    if slot.load(Ordering::Relaxed) == 0 {
        slot.store(wait.encode(), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const RECV: u8 = uringo_uring::opcodes::Recv::CODE;

    #[test]
    fn waits_round_trip_through_a_slot_word() {
        for wait in [
            Wait::Op(PendingOp {
                opcode: RECV,
                fd: 7,
            }),
            Wait::Op(PendingOp {
                opcode: uringo_uring::opcodes::Nop::CODE,
                fd: -1,
            }),
            Wait::Timer { at: 123_456_789 },
            Wait::Task { id: 42 },
        ] {
            assert_ne!(wait.encode(), 0);
            assert_eq!(Wait::decode(wait.encode()), Some(wait));
        }
        assert_eq!(Wait::decode(0), None);
    }

    #[test]
    fn the_first_wait_of_a_poll_wins_and_nothing_is_recorded_outside() {
        record(Wait::Task { id: 1 });
        let recv = Wait::Op(PendingOp {
            opcode: RECV,
            fd: 3,
        });
        let slot = AtomicU64::new(0);
        // SAFETY: `slot` outlives both calls.
        unsafe {
            watching(&slot, || {
                record(recv);
                record(Wait::Timer { at: 9 });
            })
        };
        assert_eq!(Wait::decode(slot.load(Ordering::Relaxed)), Some(recv));
        let inner = AtomicU64::new(0);
        // SAFETY: as above.
        unsafe {
            watching(&slot, || {
                watching(&inner, || record(Wait::Task { id: 5 }));
                slot.store(0, Ordering::Relaxed);
                record(Wait::Task { id: 6 });
            })
        };
        assert_eq!(
            Wait::decode(inner.load(Ordering::Relaxed)),
            Some(Wait::Task { id: 5 })
        );
        assert_eq!(
            Wait::decode(slot.load(Ordering::Relaxed)),
            Some(Wait::Task { id: 6 })
        );
    }
}
