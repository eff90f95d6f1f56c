//! Getting SQEs to the kernel.
//!
//! Only the owner pushes to the SQ (design invariant 3), so pushing is a plain write and
//! the kernel sees a batch at the next `io_uring_enter`. A worker enters once per tick
//! (invariant 5): SQEs pushed while tasks ran go out together with the reap. The SQ is
//! bounded, so a push into a full SQ submits early rather than fail the op. The kernel
//! may refuse an enter with EBUSY or EAGAIN when its CQ is full; the remedy is to make
//! room by moving CQEs out to the backlog and try again, never to drop work.
//!
//! Threads that do not own the ring reach it through its mailbox: their submissions and
//! cancel requests are drained here, on the owner, before each enter.

use std::io;
use std::time::Duration;

use io_uring::{opcode, squeue};

use super::inner::{same_op, RingInner};
use crate::cell::{CellHandle, Header, Resubmit};
use crate::cqe::token;
use crate::metrics::Counters;
use crate::shared::Request;
use crate::sync::Ordering;
use crate::sys::{self, GeteventsArg, KernelTimespec};

impl Resubmit for RingInner {
    fn submit_cell(
        &self,
        sqe: &mut squeue::Entry,
        op: CellHandle,
    ) -> Result<(), (io::Error, CellHandle)> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err((io::Error::from_raw_os_error(libc::ECANCELED), op));
        }
        self.submit(sqe, op)
    }
}

impl RingInner {
    /// Submits a user op: assigns its user_data and queues its SQE. On error the op was
    /// not queued and the kernel never saw its data.
    ///
    /// The SQE is taken by reference and finished in place: it is 64 bytes, and each
    /// move on its way to the SQ was a copy.
    ///
    /// On error the ring's reference comes back with it, so that a caller holding no
    /// other can still take its data back.
    pub(crate) fn submit(
        &self,
        sqe: &mut squeue::Entry,
        op: CellHandle,
    ) -> Result<(), (io::Error, CellHandle)> {
        if let Some(select) = op.buf_select() {
            // The pool's buffer ring must exist on this ring before the kernel sees an SQE
            // naming its group; registering here, on the owner, covers remote submissions.
            let uring = self.uring.borrow();
            let bound =
                self.buf_rings
                    .borrow_mut()
                    .bind(self.shared.id, &uring, select, &self.faults);
            if let Err(err) = bound {
                drop(uring);
                return Err((err, op));
            }
            if select.takes_bundles() {
                sys::mark_recv_bundle(sqe);
            }
        }
        let key = self.slots.borrow().vacant_key() as u64;
        op.set_key(key);
        sys::set_user_data(sqe, key);
        if let Err(err) = self.push_sqe(sqe) {
            return Err((err, op));
        }
        let in_flight = {
            let mut slots = self.slots.borrow_mut();
            let actual = slots.insert(op) as u64;
            debug_assert_eq!(actual, key);
            slots.len() as u64
        };
        Counters::bump(&self.shared.counters.submitted, 1);
        // The in-flight gauge (`publish_in_flight`), from the borrow we already hold.
        self.shared
            .counters
            .in_flight
            .store(in_flight, Ordering::Relaxed);
        tracing::trace!(ring = self.shared.id, user_data = key, "op submitted");
        Ok(())
    }

    /// Requests cancellation of `op` if it is still in flight on this ring.
    pub(crate) fn cancel(&self, op: &Header) {
        // A remote submission of this op may still sit in the mailbox.
        if !self.shared.mailbox.is_empty() {
            self.drain_mailbox();
        }
        let key = op.key();
        let live = usize::try_from(key).ok().is_some_and(|key| {
            self.slots
                .borrow()
                .get(key)
                .is_some_and(|slot| same_op(slot, op))
        });
        if !live || !op.mark_cancel() {
            return;
        }
        Counters::bump(&self.shared.counters.cancels, 1);
        tracing::trace!(ring = self.shared.id, user_data = key, "cancel requested");
        let sqe = opcode::AsyncCancel::new(key)
            .build()
            .flags(squeue::Flags::SKIP_SUCCESS)
            .user_data(token::IGNORE);
        if let Err(err) = self.push_sqe(&sqe) {
            tracing::warn!(ring = self.shared.id, %err, "cannot queue a cancel SQE");
        }
    }

    /// Queues an SQE; when the SQ is full, submits it to make room.
    pub(super) fn push_sqe(&self, sqe: &squeue::Entry) -> io::Result<()> {
        if let Some(errno) = self.faults.push() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        loop {
            {
                let mut uring = self.uring.borrow_mut();
                // Every pointer in an SQE we push refers to memory owned by an op cell that
                // the slab (or, for internal SQEs, the ring) keeps alive until the SQE's
                // final CQE.
                // SAFETY: so the kernel may use it until then.
                if unsafe { uring.submission().push(sqe) }.is_ok() {
                    return Ok(());
                }
            }
            Counters::bump(&self.shared.counters.sq_full_submits, 1);
            self.enter_kernel(0, None)?;
        }
    }

    /// `io_uring_enter`: submits everything in the SQ, runs completion work, waits for
    /// `min_complete` CQEs (bounded by `timeout`). EINTR and ETIME count as success.
    pub(super) fn enter_kernel(
        &self,
        mut min_complete: u32,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let mut arg = GeteventsArg::default();
        let ts = timeout.map(KernelTimespec::from).unwrap_or_default();
        let use_arg = timeout.is_some() && min_complete > 0;
        if use_arg {
            arg.ts = &ts as *const KernelTimespec as u64;
        }
        let mut flags = sys::ENTER_GETEVENTS;
        if use_arg {
            flags |= sys::ENTER_EXT_ARG;
        }
        let mut busy_retries = 0;
        loop {
            if self.faults.overflows() {
                self.overflow_cq();
            }
            let to_submit = self.uring.borrow_mut().submission().len() as u32;
            Counters::bump(&self.shared.counters.enters, 1);
            let would_wait = || min_complete > 0 && self.uring.borrow_mut().completion().is_empty();
            let result = match self.faults.enter(would_wait) {
                Some(errno) => self.fail_enter(errno),
                // `arg` (and the timespec it points to) live on this stack frame for the
                // whole call.
                // SAFETY: and EXT_ARG is set exactly when we pass it.
                None => unsafe {
                    sys::enter(
                        self.enter_target,
                        to_submit,
                        min_complete,
                        flags,
                        use_arg.then_some(&arg),
                    )
                },
            };
            match result {
                Ok(_) => return Ok(()),
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ETIME) => return Ok(()),
                    // Handled, not passed on: the kernel dropped a CQE (`lost.rs`).
                    Some(libc::EBADR) => {
                        self.cqe_lost();
                        return Ok(());
                    }
                    // The CQ is full and the kernel would not take more work: make room.
                    Some(libc::EBUSY) | Some(libc::EAGAIN) if busy_retries < 64 => {
                        busy_retries += 1;
                        self.move_cq_to_backlog();
                        // What a park waits for may be among the CQEs just set aside:
                        // waiting on would sleep with completions in the backlog. The
                        // retry only submits, and the caller dispatches them.
                        if min_complete > 0 && !self.backlog.borrow().is_empty() {
                            min_complete = 0;
                        }
                        if busy_retries > 1 {
                            std::thread::yield_now();
                        }
                    }
                    _ => return Err(err),
                },
            }
        }
    }

    /// An enter the kernel refuses with `errno` (an injected fault): for EBUSY and
    /// EAGAIN it runs completion work first and submits nothing, as the kernel does when
    /// it refuses submissions while completions wait.
    fn fail_enter(&self, errno: i32) -> io::Result<u32> {
        if errno == libc::EBUSY || errno == libc::EAGAIN {
            // SAFETY: no argument is passed, and none is announced in the flags.
            unsafe { sys::enter(self.enter_target, 0, 0, sys::ENTER_GETEVENTS, None) }?;
        }
        Err(io::Error::from_raw_os_error(errno))
    }

    /// Fills the CQ with no-op completions of the ring's own until the kernel overflows
    /// it (an injected fault): the completions that follow wait in the kernel's overflow
    /// list until the ring flushes them.
    fn overflow_cq(&self) {
        let nop = opcode::Nop::new().build().user_data(token::IGNORE);
        let mut left = self.features.cq_entries as usize + 1;
        while left > 0 {
            let to_submit = {
                let mut uring = self.uring.borrow_mut();
                let mut sq = uring.submission();
                // SAFETY: a NOP points at no memory.
                while left > 0 && unsafe { sq.push(&nop) }.is_ok() {
                    left -= 1;
                }
                sq.len() as u32
            };
            let submitted =
                // SAFETY: no argument is passed, and none is announced in the flags.
                unsafe { sys::enter(self.enter_target, to_submit, 0, sys::ENTER_GETEVENTS, None) };
            if submitted.is_err() {
                return;
            }
        }
    }

    /// Takes every queued remote request and acts on it.
    pub(super) fn drain_mailbox(&self) {
        // Most ticks find it empty, which this tells for less than a failed pop. A push
        // it misses is followed by a wake, so the next tick takes it.
        if self.shared.mailbox.is_empty() {
            return;
        }
        while let Some(request) = self.shared.mailbox.pop() {
            match request {
                Request::Submit { mut sqe, op } => {
                    if let Err((err, _)) = self.submit(&mut sqe, op.cell().clone()) {
                        tracing::warn!(ring = self.shared.id, %err, "remote submission failed");
                        op.fail_unsubmitted(&err);
                    }
                }
                Request::Cancel(op) => self.cancel(op.cell()),
            }
        }
    }

    pub(super) fn submit_and_reap(&self) -> io::Result<usize> {
        // Buffers returned from other threads go back before this tick's SQEs reach the
        // kernel, so a recv re-armed after ENOBUFS finds them.
        self.buf_rings.borrow().drain_returns();
        self.drain_mailbox();
        self.ensure_eventfd_armed();
        let must_enter = {
            let mut uring = self.uring.borrow_mut();
            let sq = uring.submission();
            !sq.is_empty() || sq.cq_overflow() || sq.taskrun()
        };
        if must_enter {
            self.enter_kernel(0, None)?;
        }
        Ok(self.drain_cq())
    }
}
