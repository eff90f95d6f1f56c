//! Keeping an fd open until the kernel is done with the op that names it.
//!
//! An SQE names its file by number, and the kernel looks the number up when it issues
//! the request — at the next `io_uring_enter` for most ops, later still for ops it runs
//! on an io-wq worker (splice, for one). If the future is dropped and its socket closed
//! before that, the number may already belong to a connection another thread just
//! accepted, and the orphaned op would read that connection's bytes. Holding the socket
//! (an `Arc` of it) in the op until the final CQE closes that window: the fd is closed
//! by whoever lets go last, and never while an SQE still names it.

use std::future::IntoFuture;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::squeue;

use super::future::{Multishot, Op};
use crate::cqe::Cqe;
use crate::operation::{MultishotOperation, Operation};

/// A socket or file as the ops in flight on it hold it: each op keeps a clone until its
/// final CQE, so the fd is closed only after the last of them.
pub type SharedFd = Arc<dyn AsRawFd + core::marker::Send + Sync>;

/// An op plus a value (the `anchor`) kept alive until the op's final CQE.
///
/// ```
/// use std::os::fd::AsRawFd;
/// use std::sync::Arc;
/// use uringo_uring::{op::{Anchored, Recv, Send}, Ring};
///
/// let ring = Ring::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// let b = Arc::new(b);
/// let (n, buf) = ring.block_on(async {
///     let _ = Send::new(a.as_raw_fd(), b"hi".to_vec()).await;
///     // Even if this future were dropped and every other `Arc` of `b` with it, the
///     // socket would stay open until the kernel finished the recv.
///     Anchored::new(Recv::new(b.as_raw_fd(), Vec::with_capacity(2)), b.clone()).await
/// });
/// assert_eq!(&buf[..n?], b"hi");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Anchored<T, A> {
    op: T,
    _anchor: A,
}

impl<T, A> Anchored<T, A> {
    /// Ties `anchor`'s lifetime to `op`'s.
    pub fn new(op: T, anchor: A) -> Self {
        Anchored {
            op,
            _anchor: anchor,
        }
    }
}

// SAFETY: delegates to `T`, whose SQE points only into `op`; `op` sits inside `self` in
// the op's cell until the final CQE, and the anchor adds no pointers to the SQE.
unsafe impl<T: Operation, A: core::marker::Send + Unpin + 'static> Operation for Anchored<T, A> {
    type Output = T::Output;

    fn build(&mut self) -> squeue::Entry {
        self.op.build()
    }

    fn complete(self, cqe: Cqe) -> T::Output {
        self.op.complete(cqe)
    }

    fn orphaned(self, cqe: Cqe) {
        self.op.orphaned(cqe)
    }

    fn not_submitted(self, err: std::io::Error) -> T::Output {
        self.op.not_submitted(err)
    }
}

// SAFETY: as above, for the multishot form.
unsafe impl<T: MultishotOperation, A: core::marker::Send + Sync + 'static> MultishotOperation
    for Anchored<T, A>
{
    type Item = T::Item;

    fn build(&self) -> squeue::Entry {
        self.op.build()
    }

    fn item(&self, cqe: Cqe) -> T::Item {
        self.op.item(cqe)
    }

    fn orphaned_item(&self, cqe: Cqe) {
        self.op.orphaned_item(cqe)
    }

    fn item_at(&self, cqe: Cqe, buf_start: u32) -> T::Item {
        self.op.item_at(cqe, buf_start)
    }

    fn orphaned_item_at(&self, cqe: Cqe, buf_start: u32) {
        self.op.orphaned_item_at(cqe, buf_start)
    }

    fn buf_select(&self) -> Option<&crate::buf_ring::BufSelect> {
        self.op.buf_select()
    }
}

impl<T: Operation, A: core::marker::Send + Unpin + 'static> IntoFuture for Anchored<T, A> {
    type Output = T::Output;
    type IntoFuture = Op<Self>;

    fn into_future(self) -> Op<Self> {
        Op::new(self)
    }
}

impl<T: MultishotOperation, A: core::marker::Send + Sync + 'static> Anchored<T, A> {
    /// The stream of a multishot op that keeps `anchor` alive.
    pub fn multishot(op: T, anchor: A) -> Multishot<Self> {
        Multishot::new(Anchored::new(op, anchor))
    }
}
