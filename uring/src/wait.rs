//! What the task being polled is waiting on, for task dumps.
//!
//! An executor that wants to know points a thread-local *slot* at a word of its task
//! while it polls the task's future ([`watching`]); every [`Op`](crate::Op) or
//! [`Multishot`](crate::Multishot) that returns `Pending` inside that poll writes what it
//! waits on there ([`record`]) — unless something polled earlier in the same poll already
//! did, so `timeout(read)` shows the read rather than the timer. The executor's own
//! futures (timers, join handles) record through the same function. Outside a
//! `watching` call nothing is recorded, and recording costs a thread-local read.
//!
//! A slot is one `AtomicU64` (written by the polling thread, read by whoever takes a
//! dump), so a [`Wait`] is packed into 64 bits: a 2-bit kind and 62 bits of payload.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use io_uring::opcode;

const KIND_SHIFT: u32 = 62;
const PAYLOAD: u64 = (1 << KIND_SHIFT) - 1;
const KIND_OP: u64 = 1;
const KIND_TIMER: u64 = 2;
const KIND_TASK: u64 = 3;

/// Something a task can wait on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// An io_uring operation: its opcode and the file descriptor in its SQE (`-1` when
    /// it has none).
    Op {
        /// `IORING_OP_*`.
        opcode: u8,
        /// The SQE's fd field.
        fd: i32,
    },
    /// A timer that fires `at` nanoseconds after an origin of the caller's choosing
    /// (62 bits).
    Timer {
        /// Deadline, in nanoseconds since the caller's origin.
        at: u64,
    },
    /// Another task's completion (a join handle), by task id (62 bits).
    Task {
        /// The awaited task's id.
        id: u64,
    },
}

impl Wait {
    /// Packs into a slot word; never 0 (the empty slot).
    pub fn encode(self) -> u64 {
        match self {
            Wait::Op { opcode, fd } => {
                KIND_OP << KIND_SHIFT | u64::from(opcode) << 32 | u64::from(fd as u32)
            }
            Wait::Timer { at } => KIND_TIMER << KIND_SHIFT | (at & PAYLOAD),
            Wait::Task { id } => KIND_TASK << KIND_SHIFT | (id & PAYLOAD),
        }
    }

    /// Unpacks a slot word; `None` for the empty slot.
    pub fn decode(word: u64) -> Option<Wait> {
        let payload = word & PAYLOAD;
        match word >> KIND_SHIFT {
            KIND_OP => Some(Wait::Op {
                opcode: (payload >> 32) as u8,
                fd: payload as u32 as i32,
            }),
            KIND_TIMER => Some(Wait::Timer { at: payload }),
            KIND_TASK => Some(Wait::Task { id: payload }),
            _ => None,
        }
    }
}

/// Renders an op as `recv on fd 7`; timers and tasks are left to the executor, which
/// knows what their numbers mean.
impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Wait::Op { opcode, fd } if fd >= 0 => write!(f, "{} on fd {fd}", opcode_name(opcode)),
            Wait::Op { opcode, .. } => f.write_str(opcode_name(opcode)),
            Wait::Timer { at } => write!(f, "timer at {at} ns"),
            Wait::Task { id } => write!(f, "task {id}"),
        }
    }
}

thread_local! {
    static SLOT: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `slot` receiving what the futures polled inside wait on (see the
/// module doc). Nested calls restore the outer slot when they return, or unwind.
///
/// # Safety
/// `slot` must point at an `AtomicU64` that stays valid until `f` returns (it is
/// written from this thread while `f` runs, and never afterwards).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use uringo_uring::wait::{self, Wait};
///
/// let slot = AtomicU64::new(0);
/// // SAFETY: `slot` outlives the call.
/// unsafe { wait::watching(&slot, || wait::record(Wait::Task { id: 7 })) };
/// assert_eq!(Wait::decode(slot.load(Ordering::Relaxed)), Some(Wait::Task { id: 7 }));
/// ```
#[inline]
pub unsafe fn watching<R>(slot: *const AtomicU64, f: impl FnOnce() -> R) -> R {
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

/// Notes that the future being polled waits on `wait`, if an executor is watching and
/// nothing else was noted during this poll.
#[inline]
pub fn record(wait: Wait) {
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

/// The `Wait` an SQE's op stands for.
pub(crate) fn of_sqe(sqe: &io_uring::squeue::Entry) -> Wait {
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's `io_uring_sqe`, whose
    // layout is ABI: `opcode` is the byte at offset 0 and `fd` the i32 at offset 4.
    let (opcode, fd) = unsafe {
        let base = sqe as *const io_uring::squeue::Entry as *const u8;
        (*base, (base.add(4) as *const i32).read_unaligned())
    };
    Wait::Op { opcode, fd }
}

/// A short lowercase name for an `IORING_OP_*` code (`"recv"`, `"accept"`, ...).
pub fn opcode_name(code: u8) -> &'static str {
    match code {
        opcode::Nop::CODE => "nop",
        opcode::Readv::CODE => "readv",
        opcode::Writev::CODE => "writev",
        opcode::Fsync::CODE => "fsync",
        opcode::ReadFixed::CODE => "read_fixed",
        opcode::WriteFixed::CODE => "write_fixed",
        opcode::PollAdd::CODE => "poll",
        opcode::PollRemove::CODE => "poll_remove",
        opcode::SendMsg::CODE => "sendmsg",
        opcode::RecvMsg::CODE => "recvmsg",
        opcode::Timeout::CODE => "timeout",
        opcode::Accept::CODE => "accept",
        opcode::AsyncCancel::CODE => "cancel",
        opcode::Connect::CODE => "connect",
        opcode::Fallocate::CODE => "fallocate",
        opcode::OpenAt::CODE => "openat",
        opcode::Close::CODE => "close",
        opcode::Statx::CODE => "statx",
        opcode::Read::CODE => "read",
        opcode::Write::CODE => "write",
        opcode::Send::CODE => "send",
        opcode::Recv::CODE => "recv",
        opcode::Splice::CODE => "splice",
        opcode::Tee::CODE => "tee",
        opcode::Shutdown::CODE => "shutdown",
        opcode::RenameAt::CODE => "renameat",
        opcode::UnlinkAt::CODE => "unlinkat",
        opcode::MkDirAt::CODE => "mkdirat",
        opcode::MsgRingData::CODE => "msg_ring",
        opcode::Socket::CODE => "socket",
        opcode::SendZc::CODE => "send_zc",
        opcode::SendMsgZc::CODE => "sendmsg_zc",
        opcode::ReadMulti::CODE => "read_multishot",
        opcode::FutexWait::CODE => "futex_wait",
        opcode::Ftruncate::CODE => "ftruncate",
        _ => "op",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_trip_through_a_slot_word() {
        for wait in [
            Wait::Op {
                opcode: opcode::Recv::CODE,
                fd: 7,
            },
            Wait::Op {
                opcode: opcode::Nop::CODE,
                fd: -1,
            },
            Wait::Timer { at: 123_456_789 },
            Wait::Task { id: 42 },
        ] {
            assert_ne!(wait.encode(), 0);
            assert_eq!(Wait::decode(wait.encode()), Some(wait));
        }
        assert_eq!(Wait::decode(0), None);
        assert_eq!(
            Wait::Op {
                opcode: opcode::Recv::CODE,
                fd: 7
            }
            .to_string(),
            "recv on fd 7"
        );
    }

    #[test]
    fn the_first_wait_of_a_poll_wins_and_nothing_is_recorded_outside() {
        record(Wait::Task { id: 1 });
        let slot = AtomicU64::new(0);
        // SAFETY: `slot` outlives both calls.
        unsafe {
            watching(&slot, || {
                record(Wait::Op {
                    opcode: opcode::Recv::CODE,
                    fd: 3,
                });
                record(Wait::Timer { at: 9 });
            })
        };
        assert_eq!(
            Wait::decode(slot.load(Ordering::Relaxed)),
            Some(Wait::Op {
                opcode: opcode::Recv::CODE,
                fd: 3
            })
        );
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

    #[test]
    fn sqes_are_described_by_opcode_and_fd() {
        let sqe = opcode::Recv::new(io_uring::types::Fd(11), std::ptr::null_mut(), 0).build();
        assert_eq!(
            of_sqe(&sqe),
            Wait::Op {
                opcode: opcode::Recv::CODE,
                fd: 11
            }
        );
        assert_eq!(opcode_name(opcode::Accept::CODE), "accept");
    }
}
