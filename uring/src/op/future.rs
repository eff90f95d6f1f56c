//! The futures of submitted ops: [`Op`] for single-shot ops, [`Multishot`] for streams.
//!
//! Nothing is submitted until the first poll, because the ring an op goes to is the one
//! current on the thread that polls it (design invariant 1) and the op's data must first
//! reach its final address inside the completion cell. After that the future is only a
//! view on the cell: dropping it orphans the cell and asks the ring to cancel, and the
//! ring keeps the data alive until the kernel's final CQE.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use crate::cell::{self, CellHandle, Header, MultishotRef, OpRef};
use crate::context;
use crate::cqe::Cqe;
use crate::handle::RingHandle;
use crate::operation::{MultishotOperation, Operation};
use crate::pending::PendingOp;
use crate::shared;

/// The future of a submitted (or about to be submitted) [`Operation`].
///
/// Dropping it before completion cancels the op in the kernel; the op's buffers stay
/// alive until the CQE confirms the kernel is done with them.
pub struct Op<T: Operation> {
    state: OpState<T>,
}

enum OpState<T: Operation> {
    Unsubmitted(Option<T>),
    /// Cancelled before it was ever submitted: completes with ECANCELED.
    CancelledEarly(Option<T>),
    Submitted {
        cell: OpRef<T>,
        /// The id of the ring it was submitted on.
        ring: u32,
        /// What a task dump says the poller waits on while this is pending.
        wait: PendingOp,
    },
    Done,
}

impl<T: Operation> Op<T> {
    /// Wraps `data`; nothing is submitted until the first poll.
    pub fn new(data: T) -> Self {
        Op {
            state: OpState::Unsubmitted(Some(data)),
        }
    }

    /// Asks the kernel to cancel the op. The future still completes, normally with
    /// `ECANCELED` (or with the op's result if it won the race), and gives back its
    /// buffers. A no-op once the op has completed.
    pub fn cancel(&mut self) {
        match &mut self.state {
            OpState::Unsubmitted(data) => self.state = OpState::CancelledEarly(data.take()),
            OpState::Submitted { cell, ring, .. } => request_cancel(*ring, cell.header()),
            OpState::CancelledEarly(_) | OpState::Done => {}
        }
    }

    /// Whether the op has been submitted to a ring.
    pub fn is_submitted(&self) -> bool {
        matches!(self.state, OpState::Submitted { .. })
    }

    /// Whether the op's final CQE has arrived.
    pub fn is_complete(&self) -> bool {
        match &self.state {
            OpState::Submitted { cell, .. } => cell.is_complete(),
            OpState::Done => true,
            _ => false,
        }
    }
}

impl<T: Operation> Future for Op<T> {
    type Output = T::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        // The poll that waits on a submitted op, kept apart from the first one (which
        // builds and submits) so it stays small.
        let OpState::Submitted { cell, wait, .. } = &this.state else {
            return this.poll_unsubmitted(cx);
        };
        let Poll::Ready(output) = cell.poll_complete(cx) else {
            wait.report();
            return Poll::Pending;
        };
        this.state = OpState::Done;
        Poll::Ready(output)
    }
}

impl<T: Operation> Op<T> {
    /// A poll before submission: submits the op with the poller's waker already in its
    /// cell (or completes it, if it was cancelled first or cannot be submitted).
    #[inline(never)]
    fn poll_unsubmitted(&mut self, cx: &mut Context<'_>) -> Poll<T::Output> {
        match &mut self.state {
            OpState::Unsubmitted(data) => {
                let data = data.take().expect("op data present before submission");
                let (cell, handle) = OpRef::new(data);
                // This is the only registration before submission.
                // SAFETY: the cell is not shared yet.
                unsafe { cell.register_unshared(cx.waker()) };
                // The build runs before the SQE is queued; `submit` calls it once.
                // SAFETY: so the cell is still not shared when it runs.
                let build = || unsafe { cell.build_sqe() };
                match submit(build, handle) {
                    // The waker is in the cell: a CQE from now on wakes it.
                    Ok((ring, wait)) => {
                        wait.report();
                        self.state = OpState::Submitted { cell, ring, wait };
                        Poll::Pending
                    }
                    Err(err) => {
                        self.state = OpState::Done;
                        // SAFETY: submission failed, so the kernel never saw the data.
                        let data = unsafe { cell.take_unsubmitted() };
                        Poll::Ready(data.not_submitted(err))
                    }
                }
            }
            OpState::CancelledEarly(data) => {
                let data = data.take().expect("op data present before submission");
                self.state = OpState::Done;
                Poll::Ready(data.complete(Cqe {
                    result: -libc::ECANCELED,
                    flags: 0,
                }))
            }
            OpState::Submitted { .. } => unreachable!("handled by poll"),
            OpState::Done => panic!("uringo op polled after it completed"),
        }
    }
}

impl<T: Operation> Drop for Op<T> {
    #[inline]
    fn drop(&mut self) {
        // Inlined: most ops are dropped done, and that check is all they cost.
        if let OpState::Submitted { .. } = &self.state {
            self.drop_in_flight();
        }
    }
}

impl<T: Operation> Op<T> {
    /// Dropping an op still in flight: gives up its result and cancels it.
    #[cold]
    #[inline(never)]
    fn drop_in_flight(&mut self) {
        if let OpState::Submitted { cell, ring, .. } = &self.state {
            if cell.orphan() {
                request_cancel(*ring, cell.header());
            }
        }
    }
}

impl<T: Operation> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            OpState::Unsubmitted(_) => "unsubmitted",
            OpState::CancelledEarly(_) => "cancelled",
            OpState::Submitted { cell, .. } if cell.is_complete() => "complete",
            OpState::Submitted { .. } => "in flight",
            OpState::Done => "done",
        };
        f.debug_struct("Op")
            .field("type", &std::any::type_name::<T>())
            .field("state", &state)
            .finish()
    }
}

/// The stream of a [`MultishotOperation`]: yields an item per CQE, then `None` after
/// the CQE without `F_MORE`. Dropping it cancels the op; items that arrive afterwards are
/// released (accepted fds are closed).
pub struct Multishot<T: MultishotOperation> {
    state: MultishotState<T>,
}

enum MultishotState<T: MultishotOperation> {
    Unsubmitted(Option<T>),
    Submitted {
        cell: MultishotRef<T>,
        ring: u32,
        wait: PendingOp,
    },
    Failed,
    Finished,
}

impl<T: MultishotOperation> Multishot<T> {
    /// Wraps `data`; nothing is submitted until the first poll.
    pub fn new(data: T) -> Self {
        Multishot {
            state: MultishotState::Unsubmitted(Some(data)),
        }
    }

    /// Polls for the next item. A submission failure is reported once, as the error
    /// `T::item` makes of it, then the stream ends.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        loop {
            match &mut self.state {
                MultishotState::Unsubmitted(data) => {
                    let data = data.take().expect("op data present before submission");
                    let (cell, handle) = MultishotRef::new(data);
                    match submit(|| cell.build_sqe(), handle) {
                        Ok((ring, wait)) => {
                            self.state = MultishotState::Submitted { cell, ring, wait };
                        }
                        Err(err) => {
                            let item = cell.item_for(Cqe::from_error(&err));
                            self.state = MultishotState::Failed;
                            return Poll::Ready(Some(item));
                        }
                    }
                }
                MultishotState::Submitted { cell, wait, .. } => {
                    let Poll::Ready(item) = cell.poll_next(cx) else {
                        wait.report();
                        return Poll::Pending;
                    };
                    if item.is_none() {
                        self.state = MultishotState::Finished;
                    }
                    return Poll::Ready(item);
                }
                MultishotState::Failed | MultishotState::Finished => return Poll::Ready(None),
            }
        }
    }

    /// The next item, or `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<T::Item> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Asks the kernel to stop the op; the stream ends after the remaining CQEs.
    pub fn cancel(&mut self) {
        match &mut self.state {
            MultishotState::Submitted { cell, ring, .. } => request_cancel(*ring, cell.header()),
            MultishotState::Unsubmitted(_) => self.state = MultishotState::Finished,
            _ => {}
        }
    }
}

impl<T: MultishotOperation> Drop for Multishot<T> {
    fn drop(&mut self) {
        if let MultishotState::Submitted { cell, ring, .. } = &self.state {
            if cell.orphan() {
                request_cancel(*ring, cell.header());
            }
        }
    }
}

impl<T: MultishotOperation> fmt::Debug for Multishot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multishot")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Sends an op to the ring this thread submits to, handing it the ring's reference to
/// the cell; `build` makes its SQE, once. Returns the ring's id and what a task dump
/// shows the op waiting on. Inlined: it runs once per op, and the local path is a
/// handful of instructions besides the ring's own.
#[inline]
fn submit(build: impl FnOnce() -> squeue::Entry, op: CellHandle) -> io::Result<(u32, PendingOp)> {
    let mut args = Some((build, op));
    let local = context::with_local(|ring| {
        let (build, op) = args.take().expect("the op is taken once");
        let wait = ring.submit_in_place(build, op).map_err(|(err, _)| err)?;
        Ok((ring.shared.id, wait))
    });
    if let Some(submitted) = local {
        return submitted;
    }
    let (build, op) = args.expect("the op is still here when there is no local ring");
    let sqe = build();
    let wait = PendingOp::of_sqe(&sqe);
    submit_remote(&sqe, op).map(|ring| (ring, wait))
}

/// [`submit`] from a thread with no ring of its own: through its fallback's mailbox.
#[cold]
#[inline(never)]
fn submit_remote(sqe: &squeue::Entry, op: CellHandle) -> io::Result<u32> {
    let Some(shared) = context::fallback() else {
        panic!(
            "uringo: an io_uring op was polled on a thread with no ring; ops must run inside a \
             uringo runtime (or inside Ring::block_on / after Ring::enter)"
        )
    };
    let handle = RingHandle::new(shared);
    match handle.submit_remote(sqe.clone(), cell::remote(op)) {
        Ok(()) => Ok(handle.id()),
        // Same answer as for ops in flight when a ring is dropped.
        Err(_) => Err(io::Error::from_raw_os_error(libc::ECANCELED)),
    }
}

/// Cancels on the owner's ring directly when we are on its thread, else by mailbox (a
/// ring that is gone has cancelled everything itself).
pub(super) fn request_cancel(ring: u32, op: &Header) {
    if context::with_ring(ring, |local| local.cancel(op)).is_some() {
        return;
    }
    if let Some(shared) = shared::lookup(ring) {
        RingHandle::new(shared).cancel_remote(cell::remote(op.handle()));
    }
}

/// Implements `IntoFuture` for op structs so `ReadAt::new(..).await` works.
macro_rules! into_op_future {
    ($($ty:ident $(<$($gen:ident: $bound:path),*>)?),* $(,)?) => {$(
        impl$(<$($gen: $bound),*>)? std::future::IntoFuture for $ty$(<$($gen),*>)? {
            type Output = <Self as $crate::operation::Operation>::Output;
            type IntoFuture = $crate::op::future::Op<Self>;
            fn into_future(self) -> Self::IntoFuture {
                $crate::op::future::Op::new(self)
            }
        }
    )*};
}
pub(crate) use into_op_future;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::future::Future;
    use std::io;
    use std::sync::Arc;

    use crate::op::{Anchored, Nop, Op, Recv, SharedFd};
    use crate::IoBufMut;

    fn assert_send<F: Future + Send>(_: F) {}

    /// Awaits an op that holds a `SharedFd` (a `dyn` with an implied `'static`) while
    /// borrowing one, as the executor's socket helpers do.
    async fn read<B: IoBufMut>(fd: &SharedFd, buf: B) -> (io::Result<usize>, B) {
        let _ = Nop::new().await;
        Op::new(Anchored::new(Recv::new(fd.as_raw_fd(), buf), fd.clone())).await
    }

    /// A task that awaits such a helper must be provably `Send` for every lifetime the
    /// compiler erased in it: with an `Operation` bound (and so `'static`) on the cell
    /// reference's `Send` impl, the executor's `spawn(async move { f(&x).await })`
    /// failed with "implementation of `Send` is not general enough".
    #[test]
    fn op_futures_stay_send_across_borrows() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd: SharedFd = Arc::new(a);
        assert_send(async move { read(&fd, Vec::with_capacity(8)).await });
    }
}
