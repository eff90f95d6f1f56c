//! The state word of an in-flight operation, as bit constants.
//!
//! One `AtomicU32` per op ([`crate::cell::CompletionCell`]) is shared by two parties:
//! the *waiter* (the `Op` future, on whichever thread its task runs now) and the *owner*
//! (the thread that owns the ring the op was submitted on). Every transition is a single
//! `fetch_or`, so each side learns in one step what the other had already done, and
//! exactly one side performs each piece of clean-up.
//!
//! ```text
//!            owner: final CQE                 waiter: takes result
//!  (0) ─────────────────────────▶ COMPLETE ──────────────────────▶ (future returns)
//!   │                                 │
//!   │ waiter: dropped                 │ waiter: dropped before taking it
//!   ▼                                 ▼
//! ORPHANED ──owner: final CQE──▶ ORPHANED|COMPLETE   (whoever set the second bit cleans up)
//! ```

/// Set by the owner when the op's final CQE (the one without `IORING_CQE_F_MORE`) has
/// been recorded in the cell. After it is set the owner never touches the op's data
/// again, and the kernel has released every buffer the op was given.
pub(crate) const COMPLETE: u32 = 1 << 0;

/// Set by the waiter when it is dropped before taking the result. From then on nobody
/// will read the result: the side that completes the `ORPHANED|COMPLETE` pair releases
/// what the kernel produced (an accepted or opened fd is closed).
pub(crate) const ORPHANED: u32 = 1 << 1;

/// Set once a cancellation (`IORING_OP_ASYNC_CANCEL`) has been requested for this op, so
/// that a second `cancel()` or a drop after `cancel()` does not queue another one.
pub(crate) const CANCEL_REQUESTED: u32 = 1 << 2;

/// Set by the owner when it recorded a CQE that carried `IORING_CQE_F_MORE` for a
/// single-shot op (`send_zc`'s first CQE: the byte count, with the buffer still pinned
/// until the notification CQE). The final CQE then keeps that result and only adds its
/// flags. Only the owner reads or writes this bit.
pub(crate) const MORE_SEEN: u32 = 1 << 3;

/// Set by the owner together with COMPLETE when the op's SQE never reached the kernel
/// (a submission from another thread that the owner could not push, or that found the
/// ring closed). The data then goes back through `Operation::not_submitted`, which
/// knows that nothing the op hands the kernel (an fd to close, say) was taken.
pub(crate) const NOT_SUBMITTED: u32 = 1 << 4;
