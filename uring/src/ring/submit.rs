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
use std::mem::MaybeUninit;
use std::time::Duration;

use io_uring::{opcode, squeue};

use super::inner::RingInner;
use crate::buf_ring::BufSelect;
use crate::cell::{CellHandle, Header, Resubmit};
use crate::cqe::token;
use crate::metrics::Counters;
use crate::pending::PendingOp;
use crate::shared::Request;
use crate::sync::Ordering;
use crate::sys::{self, GeteventsArg, KernelTimespec};

impl Resubmit for RingInner {
    #[inline]
    fn submit_cell_written(
        &self,
        write: &mut dyn FnMut(&mut MaybeUninit<squeue::Entry>),
        op: CellHandle,
    ) -> Result<PendingOp, (io::Error, CellHandle)> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err((io::Error::from_raw_os_error(libc::ECANCELED), op));
        }
        self.submit_written(write, op)
    }
}

impl RingInner {
    /// Submits a user op whose SQE is already built: assigns its user_data and queues a
    /// copy of it. On error the op was not queued and the kernel never saw its data; the
    /// ring's reference comes back with the error, so that a caller holding no other can
    /// still take its data back.
    ///
    /// Ops a task or a handler submits go through [`RingInner::submit_in_place`]
    /// instead, which does not copy; this is for SQEs that exist before their ring is
    /// known (a mailbox's).
    #[inline]
    pub(crate) fn submit(
        &self,
        sqe: &mut squeue::Entry,
        op: CellHandle,
    ) -> Result<(), (io::Error, CellHandle)> {
        match self.prepare(&op) {
            Ok(bundle) => self.queue_copy(sqe, op, bundle),
            Err(err) => Err((err, op)),
        }
    }

    /// Queues a copy of `sqe` for a prepared op ([`RingInner::prepare`] said `bundle`).
    #[inline]
    fn queue_copy(
        &self,
        sqe: &mut squeue::Entry,
        op: CellHandle,
        bundle: bool,
    ) -> Result<(), (io::Error, CellHandle)> {
        if bundle {
            sys::mark_recv_bundle(sqe);
        }
        let key = self.in_flight.next_key();
        sys::set_user_data(sqe, key);
        if let Err(err) = self.push_sqe(sqe) {
            return Err((err, op));
        }
        self.track(key, op);
        Ok(())
    }

    /// Submits a user op, building its SQE with `build` straight into the SQ (`sq.rs`
    /// says why). Returns what a task dump shows the op waiting on. Errors as for
    /// [`RingInner::submit`].
    #[inline]
    pub(crate) fn submit_in_place(
        &self,
        build: impl FnOnce() -> squeue::Entry,
        op: CellHandle,
    ) -> Result<PendingOp, (io::Error, CellHandle)> {
        let mut build = Some(build);
        let mut write = |place: &mut MaybeUninit<squeue::Entry>| {
            place.write(build.take().expect("an SQE is built once")());
        };
        self.submit_written(&mut write, op)
    }

    /// [`RingInner::submit_in_place`] with the SQE written by `write` into the place it
    /// is given (a closure the caller monomorphizes, so the build is inlined into it and
    /// its stores land in the SQ even when `write` is reached through `dyn`).
    #[inline]
    pub(crate) fn submit_written<W>(
        &self,
        write: &mut W,
        op: CellHandle,
    ) -> Result<PendingOp, (io::Error, CellHandle)>
    where
        W: FnMut(&mut MaybeUninit<squeue::Entry>) + ?Sized,
    {
        let bundle = match self.prepare(&op) {
            Ok(bundle) => bundle,
            Err(err) => return Err((err, op)),
        };
        if let Some(errno) = self.faults.push() {
            return Err((io::Error::from_raw_os_error(errno), op));
        }
        let Some(mut slot) = self.sq.reserve() else {
            // The SQ is full: the copying path submits to make room.
            let mut sqe = MaybeUninit::uninit();
            write(&mut sqe);
            // SAFETY: `write` wrote a whole entry.
            let mut sqe = unsafe { sqe.assume_init() };
            let wait = PendingOp::of_sqe(&sqe);
            return self.queue_copy(&mut sqe, op, bundle).map(|()| wait);
        };
        write(slot.place());
        // SAFETY: `write` wrote a whole entry there.
        let sqe = unsafe { slot.written() };
        if bundle {
            sys::mark_recv_bundle(sqe);
        }
        let key = self.in_flight.next_key();
        sys::set_user_data(sqe, key);
        let wait = PendingOp::of_sqe(sqe);
        // SAFETY: the entry is written, user_data and flags included.
        unsafe { slot.publish() };
        self.track(key, op);
        Ok(wait)
    }

    /// What a user op needs before its SQE is queued: the buffer ring it selects from
    /// registered on this ring. Returns whether the SQE must be marked a bundle.
    #[inline(always)]
    fn prepare(&self, op: &CellHandle) -> io::Result<bool> {
        match op.buf_select() {
            None => Ok(false),
            Some(select) => self.bind_buf_ring(select),
        }
    }

    /// [`RingInner::prepare`] for an op that selects buffers.
    #[inline(never)]
    fn bind_buf_ring(&self, select: &BufSelect) -> io::Result<bool> {
        // The pool's buffer ring must exist on this ring before the kernel sees an SQE
        // naming its group; registering here, on the owner, covers remote submissions.
        let uring = self.uring.borrow();
        self.buf_rings
            .borrow_mut()
            .bind(self.shared.id, &uring, select, &self.faults)?;
        Ok(select.takes_bundles())
    }

    /// Records a queued op as in flight under `key`, with the ring's reference.
    #[inline(always)]
    fn track(&self, key: u64, op: CellHandle) {
        op.set_key(key);
        let actual = self.in_flight.insert(op);
        debug_assert_eq!(actual, key);
        let in_flight = self.in_flight.len() as u64;
        Counters::bump(&self.shared.counters.submitted, 1);
        // The in-flight gauge (`publish_in_flight`).
        self.shared
            .counters
            .in_flight
            .store(in_flight, Ordering::Relaxed);
        if tracing::level_enabled!(tracing::Level::TRACE) {
            self.trace_submitted(key);
        }
    }

    /// The trace event of a submission, kept out of the inlined submit path.
    #[cold]
    #[inline(never)]
    fn trace_submitted(&self, key: u64) {
        tracing::trace!(ring = self.shared.id, user_data = key, "op submitted");
    }

    /// Requests cancellation of `op` if it is still in flight on this ring.
    pub(crate) fn cancel(&self, op: &Header) {
        // A remote submission of this op may still sit in the mailbox.
        if !self.shared.mailbox.is_empty() {
            self.drain_mailbox();
        }
        let key = op.key();
        if !self.in_flight.holds(key, op) || !op.mark_cancel() {
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
    ///
    /// Inlined into the submit path, which runs once per op; a full SQ takes the
    /// outlined [`RingInner::push_sqe_full`].
    #[inline]
    pub(super) fn push_sqe(&self, sqe: &squeue::Entry) -> io::Result<()> {
        if let Some(errno) = self.faults.push() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if self.try_push_sqe(sqe) {
            return Ok(());
        }
        self.push_sqe_full(sqe)
    }

    /// Pushes an SQE if the SQ has room.
    #[inline]
    fn try_push_sqe(&self, sqe: &squeue::Entry) -> bool {
        self.sq.assert_unreserved();
        let mut uring = self.uring.borrow_mut();
        // Every pointer in an SQE we push refers to memory owned by an op cell that the
        // in-flight table (or, for internal SQEs, the ring) keeps alive until the SQE's
        // final CQE.
        // SAFETY: so the kernel may use it until then.
        let pushed = unsafe { uring.submission().push(sqe) }.is_ok();
        pushed
    }

    /// [`RingInner::push_sqe`] into a full SQ: submits to make room, then pushes.
    #[cold]
    #[inline(never)]
    fn push_sqe_full(&self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            Counters::bump(&self.shared.counters.sq_full_submits, 1);
            self.enter_kernel(0, None)?;
            if self.try_push_sqe(sqe) {
                return Ok(());
            }
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
