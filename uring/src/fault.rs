//! Making a ring fail on purpose, so the paths that handle kernel failures can be tested.
//!
//! A healthy kernel almost never refuses an enter, drops a CQE or fails to register a
//! buffer ring, so the code that handles those cases would otherwise never run before it
//! is needed. With the `fault-injection` feature (test builds only, see the crate docs)
//! [`crate::Ring::inject`] arms a [`Fault`], and the ring's own code meets it at the
//! point where the kernel's failure would surface: the next enter, push, CQE or
//! registration. Each fault imitates what the kernel does, not just the errno it
//! returns, so the ring's handling is tested against the situation it will really meet.
//!
//! Without the feature, [`Faults`] is empty and every check is a constant the compiler
//! removes.

#[cfg(feature = "fault-injection")]
use std::cell::{Cell, RefCell};
#[cfg(feature = "fault-injection")]
use std::collections::VecDeque;

/// A failure to inject into a ring (test builds only; see the crate docs).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The next `io_uring_enter` fails with this errno. For EBUSY and EAGAIN the kernel
    /// first runs completion work, as it does when it refuses new submissions while CQEs
    /// wait: the enter posts pending completions to the CQ, submits nothing, and fails.
    /// Any other errno (ENOMEM, EINTR, ...) fails without entering. Injecting it `n`
    /// times fails the next `n` enters.
    Enter(i32),
    /// The next SQE the ring queues (an op's or its own) fails with this errno, as if the
    /// SQ were full and the enter that would make room failed.
    Push(i32),
    /// The next CQE of a user op is lost, and the next enter that would wait for a
    /// completion fails once with EBADR: what the kernel does when the CQ is full and it
    /// cannot allocate an overflow entry (the one exception to `IORING_FEAT_NODROP`).
    DropCqe,
    /// The next enter first fills the CQ with the ring's own no-op completions and
    /// more, so the kernel overflows it and keeps the rest, including the completions
    /// that follow, in its overflow list.
    CqOverflow,
    /// The next buffer-ring registration fails with this errno.
    BufRingRegister(i32),
}

/// A ring's armed faults. Empty, and free, without the `fault-injection` feature.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "fault-injection")]
    enter: RefCell<VecDeque<i32>>,
    #[cfg(feature = "fault-injection")]
    push: RefCell<VecDeque<i32>>,
    #[cfg(feature = "fault-injection")]
    drop_cqe: Cell<bool>,
    /// A CQE was dropped and no enter has reported it yet (the kernel's
    /// `IO_CHECK_CQ_DROPPED_BIT`).
    #[cfg(feature = "fault-injection")]
    dropped: Cell<bool>,
    #[cfg(feature = "fault-injection")]
    overflow: Cell<bool>,
    #[cfg(feature = "fault-injection")]
    buf_ring_register: RefCell<VecDeque<i32>>,
}

#[cfg(feature = "fault-injection")]
impl Faults {
    pub(crate) fn arm(&self, fault: Fault) {
        match fault {
            Fault::Enter(errno) => self.enter.borrow_mut().push_back(errno),
            Fault::Push(errno) => self.push.borrow_mut().push_back(errno),
            Fault::DropCqe => self.drop_cqe.set(true),
            Fault::CqOverflow => self.overflow.set(true),
            Fault::BufRingRegister(errno) => self.buf_ring_register.borrow_mut().push_back(errno),
        }
    }

    /// The errno the next enter fails with, if any. `would_wait` says whether the enter
    /// would wait for a completion with none in the CQ: only then does a dropped CQE
    /// surface, once, as EBADR.
    pub(crate) fn enter(&self, would_wait: impl FnOnce() -> bool) -> Option<i32> {
        if let Some(errno) = self.enter.borrow_mut().pop_front() {
            return Some(errno);
        }
        (self.dropped.get() && would_wait() && self.dropped.replace(false)).then_some(libc::EBADR)
    }

    /// The errno the next push fails with, if any.
    pub(crate) fn push(&self) -> Option<i32> {
        self.push.borrow_mut().pop_front()
    }

    /// Whether the CQE of a user op leaving the CQ now is lost.
    pub(crate) fn drops_user_cqe(&self) -> bool {
        let drop = self.drop_cqe.replace(false);
        if drop {
            self.dropped.set(true);
        }
        drop
    }

    /// Whether this enter must overflow the CQ first.
    pub(crate) fn overflows(&self) -> bool {
        self.overflow.replace(false)
    }

    /// The errno the next buffer-ring registration fails with, if any.
    pub(crate) fn buf_ring_register(&self) -> Option<i32> {
        self.buf_ring_register.borrow_mut().pop_front()
    }
}

#[cfg(not(feature = "fault-injection"))]
impl Faults {
    #[inline(always)]
    pub(crate) fn enter(&self, _would_wait: impl FnOnce() -> bool) -> Option<i32> {
        None
    }

    #[inline(always)]
    pub(crate) fn push(&self) -> Option<i32> {
        None
    }

    #[inline(always)]
    pub(crate) fn drops_user_cqe(&self) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn overflows(&self) -> bool {
        false
    }

    #[inline(always)]
    pub(crate) fn buf_ring_register(&self) -> Option<i32> {
        None
    }
}
