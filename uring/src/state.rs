//! The state word of an in-flight operation, as bit constants.
//!
//! One `AtomicU32` per op (the [`crate::cell::Header`] of its cell) is shared by two
//! parties: the *waiter* (the `Op` future, on whichever thread its task runs now) and
//! the *owner* (the thread that owns the ring the op was submitted on). Every transition
//! is a single read-modify-write, so each side learns in one step what the other had
//! already done, and exactly one side performs each piece of clean-up.
//!
//! A bit that only one party sets, and only once (COMPLETE, NOT_SUBMITTED, ORPHANED),
//! or whose value its only writer knows (AWAITER), is set or cleared with `fetch_add` or
//! `fetch_sub`, the same transition as an `or`/`and` on a bit known to be clear/set: on
//! x86 that is one `lock xadd`, where an `or`/`and` whose old value is used compiles to
//! a CAS loop.
//!
//! The low byte holds the flags below; the rest counts the references to the cell
//! ([`REFERENCE`]), so one word says both where the op is and who still holds its
//! memory. A single-shot op's waker slot is handed over through [`AWAITER`] in the same
//! word, so registering a waker, completing and letting go cost one RMW each.
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

/// Set by the waiter of a single-shot op after it wrote its waker into the cell's slot;
/// cleared only by the waiter, when it takes the slot back to put another waker in (or
/// drops it, on orphaning). While it is set the slot is the owner's to read: the owner's
/// COMPLETE RMW that sees it takes the waker out and wakes it, and from then on the
/// waiter never touches the slot again (it sees COMPLETE in its own RMW). While it is
/// clear and COMPLETE is not set, the slot is the waiter's alone. Multishot cells keep
/// their waker in an `AtomicWaker` and never set this bit. The first poll of an `Op`
/// fills the slot and sets the bit before the cell is shared at all
/// (`OpRef::register_unshared`), with plain writes: nobody else can see the cell yet.
pub(crate) const AWAITER: u32 = 1 << 5;

/// One reference to the cell: the bits from here up count them. The waiter holds one
/// from the cell's creation until it takes the output or is dropped, the ring holds one
/// from submission until the op's final CQE (in its in-flight table, or in a mailbox request on the
/// way there), and a cancel request travelling through a mailbox, or a round of
/// `ring/lost.rs`, holds one while it does. Added with `fetch_add`, dropped with
/// `fetch_sub`; whoever drops the last one frees the cell. A party that loads the word
/// (Acquire) and finds its own the only reference left may free without an RMW: nobody
/// else can reach the cell to change it.
pub(crate) const REFERENCE: u32 = 1 << 8;

/// The reference count's bits.
pub(crate) const REFS: u32 = !(REFERENCE - 1);
