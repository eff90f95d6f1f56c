//! What an op is to the kernel: the two traits every typed op implements.
//!
//! The ring, the completion cells and the buffer rings only ever see an op through
//! these traits, and the typed ops in [`crate::op`] only implement them; keeping them
//! apart from both is what lets the cells sit below the ring and the ops above it
//! without either importing the other.

use std::io;

use io_uring::squeue;

use crate::buf_ring::BufSelect;
use crate::cqe::Cqe;

/// A single-shot io_uring operation with everything it lends the kernel.
///
/// # Safety
/// `build` may return an SQE pointing into `self`. The implementation relies on
/// `build` being called only once `self` sits at its final address (inside the op's
/// cell), where it is neither moved nor dropped until the op's final CQE; every pointer
/// in the SQE must stay valid under that guarantee.
pub unsafe trait Operation: core::marker::Send + Unpin + 'static {
    /// What awaiting the op yields.
    type Output;

    /// Builds the SQE (user_data is set by the ring). The ring writes it straight into
    /// its SQ, so `build` must not submit another op: doing so panics.
    fn build(&mut self) -> squeue::Entry;

    /// Turns the final CQE into the output, giving back any buffers.
    fn complete(self, cqe: Cqe) -> Self::Output;

    /// Called instead of `complete` when the future was dropped before taking the
    /// result. Ops that produce a resource (an accepted or opened fd) release it here.
    fn orphaned(self, cqe: Cqe)
    where
        Self: Sized,
    {
        let _ = cqe;
    }

    /// Called instead of `complete` when the SQE `build` returned never reached the
    /// kernel, because of `err`: whatever `build` handed over is still the op's. Ops
    /// that give the kernel something to consume (an fd to close) take it back here;
    /// the rest report `err`. Also called, with the output dropped, when nobody waits.
    fn not_submitted(self, err: io::Error) -> Self::Output
    where
        Self: Sized,
    {
        self.complete(Cqe::from_error(&err))
    }
}

/// A multishot operation: one SQE, a stream of CQEs until one without `F_MORE`.
///
/// # Safety
/// As for [`Operation`]: pointers in the SQE must stay valid while `self` sits in the
/// op's cell, until the final CQE.
pub unsafe trait MultishotOperation: core::marker::Send + Sync + 'static {
    /// What each CQE becomes.
    type Item;

    /// Builds the SQE (user_data is set by the ring). As for [`Operation::build`], it
    /// must not submit another op.
    fn build(&self) -> squeue::Entry;

    /// Turns one CQE into an item.
    fn item(&self, cqe: Cqe) -> Self::Item;

    /// Releases what an untaken CQE produced (the stream was dropped).
    fn orphaned_item(&self, cqe: Cqe) {
        let _ = cqe;
    }

    /// [`MultishotOperation::item`] for an op that selects buffers
    /// ([`MultishotOperation::buf_select`]): `buf_start` is where the CQE's bytes start
    /// in their buffer, nonzero only on an incremental buffer ring (pass it to
    /// [`BufSelect::take`]). The ring calls this one; by default it calls `item`. An op
    /// that wraps another must forward this and [`MultishotOperation::orphaned_item_at`]
    /// to it, or the wrapped op reads its bytes from the buffer's start.
    fn item_at(&self, cqe: Cqe, buf_start: u32) -> Self::Item {
        let _ = buf_start;
        self.item(cqe)
    }

    /// [`MultishotOperation::orphaned_item`] with the CQE's `buf_start` (see
    /// [`MultishotOperation::item_at`]).
    fn orphaned_item_at(&self, cqe: Cqe, buf_start: u32) {
        let _ = buf_start;
        self.orphaned_item(cqe)
    }

    /// The pool the kernel picks this op's buffers from (`IOSQE_BUFFER_SELECT`), if any.
    ///
    /// The ring asks right before it pushes the SQE, on its owner thread: it registers
    /// the pool's buffer ring on itself if this is the pool's first op there, and binds
    /// the selection to it. It also tells the selection about every CQE it dispatches, so
    /// the pool's count of free buffers is exact (see [`crate::BufPool`]).
    fn buf_select(&self) -> Option<&BufSelect> {
        None
    }
}
