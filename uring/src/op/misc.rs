//! Ops that are neither file nor socket I/O: nop, splice, timeouts, cancellation,
//! ring-to-ring messages, readiness polling.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

use super::future::{into_op_future, Multishot};
use crate::cqe::{token, Cqe};
use crate::handle::RingHandle;
use crate::operation::{MultishotOperation, Operation};

/// `IORING_OP_NOP`: completes at once; measures the ring's round trip.
#[derive(Debug, Default)]
pub struct Nop {
    _private: (),
}

impl Nop {
    /// A no-op.
    pub fn new() -> Self {
        Self::default()
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Nop {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_SPLICE`: moves up to `len` bytes between two fds, one of which must be a
/// pipe, without copying them through user space.
#[derive(Debug)]
pub struct Splice {
    fd_in: RawFd,
    off_in: i64,
    fd_out: RawFd,
    off_out: i64,
    len: u32,
    flags: u32,
}

impl Splice {
    /// Splices from `fd_in` to `fd_out` (offsets: `None` for pipes and sockets).
    pub fn new(
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len: u32,
    ) -> Self {
        Self {
            fd_in,
            off_in: off_in.map_or(-1, |o| o as i64),
            fd_out,
            off_out: off_out.map_or(-1, |o| o as i64),
            len,
            flags: 0,
        }
    }

    /// `SPLICE_F_*` flags.
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Splice {
    type Output = io::Result<usize>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Splice::new(
            types::Fd(self.fd_in),
            self.off_in,
            types::Fd(self.fd_out),
            self.off_out,
            self.len,
        )
        .flags(self.flags)
        .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(|n| n as usize)
    }
}

/// `IORING_OP_TIMEOUT`: completes after a duration. Expiry is `Ok(())`; cancellation is
/// `ECANCELED`.
#[derive(Debug)]
pub struct Timeout {
    timespec: types::Timespec,
}

impl Timeout {
    /// Fires after `duration`.
    pub fn new(duration: Duration) -> Self {
        Self {
            timespec: types::Timespec::new()
                .sec(duration.as_secs())
                .nsec(duration.subsec_nanos()),
        }
    }
}

// SAFETY: the timespec lives in the op until the CQE.
unsafe impl Operation for Timeout {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Timeout::new(&self.timespec).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        match cqe.result {
            r if r == -libc::ETIME => Ok(()),
            _ => cqe.io_result().map(drop),
        }
    }
}

/// `IORING_OP_ASYNC_CANCEL`, by fd: cancels every op in flight on an fd, on the ring
/// this op is submitted to. Yields how many were cancelled.
///
/// (Cancelling one particular op needs no user_data: call `Op::cancel` or drop it.)
#[derive(Debug)]
pub struct AsyncCancel {
    fd: RawFd,
}

impl AsyncCancel {
    /// Cancels all ops in flight on `fd`.
    pub fn fd(fd: RawFd) -> Self {
        Self { fd }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for AsyncCancel {
    type Output = io::Result<usize>;

    fn build(&mut self) -> squeue::Entry {
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(self.fd)).all()).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        match cqe.result {
            // Nothing was in flight on the fd.
            r if r == -libc::ENOENT => Ok(0),
            _ => cqe.io_result().map(|n| n as usize),
        }
    }
}

/// `IORING_OP_MSG_RING`: posts a wake-up CQE into another ring, making its `park`
/// return. Completes once the CQE is posted.
#[derive(Debug)]
pub struct MsgRing {
    target: RingHandle,
}

impl MsgRing {
    /// Wakes the ring behind `target`.
    pub fn wake(target: &RingHandle) -> Self {
        Self {
            target: target.clone(),
        }
    }
}

// SAFETY: the SQE carries the target's ring fd, kept open by the handle in the op.
unsafe impl Operation for MsgRing {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        use std::os::fd::AsRawFd;
        opcode::MsgRingData::new(
            types::Fd(self.target.shared.ring_fd.as_raw_fd()),
            0,
            token::WAKE,
            None,
        )
        .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_POLL_ADD`: waits until `fd` is ready for the `POLL*` events in `mask`;
/// yields the events that fired.
#[derive(Debug)]
pub struct PollAdd {
    fd: RawFd,
    mask: u32,
}

impl PollAdd {
    /// Waits for `mask` (e.g. `libc::POLLIN as u32`) on `fd`.
    pub fn new(fd: RawFd, mask: u32) -> Self {
        Self { fd, mask }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for PollAdd {
    type Output = io::Result<u32>;

    fn build(&mut self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd), self.mask).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result()
    }
}

/// Multishot `IORING_OP_POLL_ADD`: a readiness event each time `fd` becomes ready.
#[derive(Debug)]
pub struct PollAddMulti {
    fd: RawFd,
    mask: u32,
}

impl PollAddMulti {
    /// Streams readiness events for `mask` on `fd`.
    pub fn new(fd: RawFd, mask: u32) -> Multishot<PollAddMulti> {
        Multishot::new(Self { fd, mask })
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl MultishotOperation for PollAddMulti {
    type Item = io::Result<u32>;

    fn build(&self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd), self.mask)
            .multi(true)
            .build()
    }

    fn item(&self, cqe: Cqe) -> Self::Item {
        cqe.io_result()
    }
}

into_op_future!(Nop, Splice, Timeout, AsyncCancel, MsgRing, PollAdd);
