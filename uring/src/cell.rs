//! Completion cells: where a CQE meets the future waiting for it.
//!
//! An op's task may be stolen by another worker between submission and completion
//! (design invariant 1), so the place the result lands must be shareable across
//! threads. Each in-flight op owns one allocation, its *cell*: a [`Header`] holding its
//! state word ([`crate::state`]), its result and its waker, followed by its data
//! (buffers, socket addresses, paths: everything the kernel reads or writes). The
//! ring's in-flight table holds one reference ([`CellHandle`]) until the final CQE and the waiting
//! future holds the other ([`OpRef`], [`MultishotRef`]), so whichever side lets go last
//! frees the data — and the table never lets go before the kernel has.
//!
//! What a submitted op costs is kept to the minimum the protocol needs:
//!
//! - no allocation in steady state: cells come from a per-thread cache of blocks by
//!   size class (`cell/cache.rs`);
//! - no dynamic dispatch on the completion path: the header is the same for every op
//!   type, so recording a CQE, waking the waiter and counting references are plain
//!   code; the one table of functions per type ([`VTable`]) is only reached to release
//!   an orphaned op's data, to free the cell, and for multishot ops;
//! - one atomic word: the reference count lives in the state word, and so does the
//!   hand-over of a single-shot op's waker slot ([`AWAITER`]), so registering a waker,
//!   completing and each release is one RMW, and the last party to let go frees the cell
//!   without one when it can see it is alone.

mod cache;
mod handled;

pub(crate) use handled::submit_on as submit_handled_on;
pub use handled::{Dispatch, Handled};

use std::alloc::Layout;
use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use crate::atomic_waker::AtomicWaker;
use crate::buf_ring::BufSelect;
use crate::cqe::Cqe;
use crate::operation::{MultishotOperation, Operation};
use crate::pending::PendingOp;
use crate::state::{
    AWAITER, CANCEL_REQUESTED, COMPLETE, MORE_SEEN, NOT_SUBMITTED, ORPHANED, REFERENCE, REFS,
};
use crate::sync::{Arc, AtomicI32, AtomicU32, AtomicU64, Mutex, Ordering, UnsafeCell};

/// What depends on the op's type, one static table per type. None of it is on the
/// path of an op that is awaited to completion, except `dealloc`, once.
pub(crate) struct VTable {
    /// Multishot cells have a queue of CQEs and an `AtomicWaker` after the header.
    multishot: bool,
    /// Releases what a completed op nobody waits for produced (an accepted fd is
    /// closed). `state` is what the releasing party saw. Only the party that set the
    /// second of COMPLETE and ORPHANED calls it (for multishot ops: whoever drains the
    /// queue after ORPHANED).
    release: unsafe fn(&Header, u32),
    /// Drops the cell in place and frees its memory; called by whoever drops the last
    /// reference.
    dealloc: unsafe fn(NonNull<Header>),
    /// The pool a multishot op selects buffers from.
    buf_select: Option<for<'a> unsafe fn(&'a Header) -> Option<&'a BufSelect>>,
    /// A handled op's reaction to its CQEs (`cell/handled.rs`), which the ring calls in
    /// place of [`Header::complete_at`].
    handler: Option<Handler>,
}

/// How the ring hands a CQE to a handled op: the cell, the ring dispatching, the CQE,
/// where its bytes start in their provided buffer, and whether it is the final one.
pub(crate) type Handler = unsafe fn(&Header, &dyn Resubmit, Cqe, u32, bool);

/// What a handled op may ask of the ring that dispatches its CQE. The ring implements
/// it, so that the cells, which sit below the ring, need not know it.
pub(crate) trait Resubmit {
    /// Submits the op of `op`'s cell with the SQE `write` writes into the place it is
    /// given: the SQ itself where the ring can (`ring/sq.rs`). Refuses once the ring is
    /// closing. Returns what a task dump shows the op waiting on; on error, `op` comes
    /// back. `write` runs once, and must not submit.
    fn submit_cell_written(
        &self,
        write: &mut dyn FnMut(&mut std::mem::MaybeUninit<io_uring::squeue::Entry>),
        op: CellHandle,
    ) -> Result<PendingOp, (io::Error, CellHandle)>;
}

/// Submits `op` on `ring` with the SQE `build` makes, built in place where the ring can.
#[inline]
pub(crate) fn submit_built<R: Resubmit + ?Sized>(
    ring: &R,
    build: impl FnOnce() -> io_uring::squeue::Entry,
    op: CellHandle,
) -> Result<PendingOp, (io::Error, CellHandle)> {
    let mut build = Some(build);
    let mut write = |place: &mut std::mem::MaybeUninit<io_uring::squeue::Entry>| {
        place.write(build.take().expect("an SQE is built once")());
    };
    ring.submit_cell_written(&mut write, op)
}

/// The identity of a waker (`Waker::will_wake` compares exactly these).
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId(*const (), *const RawWakerVTable);

impl WakerId {
    #[inline]
    fn of(waker: &Waker) -> WakerId {
        WakerId(waker.data(), waker.vtable())
    }
}

/// The part of a cell that does not depend on the op's type: everything the ring and
/// the completion path touch. It is the first field of every cell (`repr(C)`), so a
/// pointer to it is a pointer to the cell.
#[repr(C)]
pub(crate) struct Header {
    /// Flags and reference count (`state.rs`).
    state: AtomicU32,
    /// Written by the owner before it sets COMPLETE, read by the waiter after.
    result: AtomicI32,
    flags: AtomicU32,
    /// The user_data this op was submitted with (its in-flight key); owner only.
    key: AtomicU64,
    vtable: &'static VTable,
    /// A single-shot op's waker. Whose it is, is said by AWAITER (`state.rs`).
    waker: UnsafeCell<Option<Waker>>,
    /// Which waker the waiter last put in the slot; the waiter's alone, so a poll with
    /// the same waker costs no RMW and never reads the slot.
    registered: UnsafeCell<Option<WakerId>>,
}

// SAFETY: `waker` and `registered` are only accessed by the party the state protocol
// gives them to (see their docs and `state.rs`); everything else is atomic.
unsafe impl Sync for Header {}
// SAFETY: as above; a `Waker` is `Send`.
unsafe impl Send for Header {}

impl Header {
    #[inline]
    fn new(vtable: &'static VTable, refs: u32) -> Header {
        Header {
            state: AtomicU32::new(refs * REFERENCE),
            result: AtomicI32::new(0),
            flags: AtomicU32::new(0),
            key: AtomicU64::new(u64::MAX),
            vtable,
            waker: UnsafeCell::new(None),
            registered: UnsafeCell::new(None),
        }
    }

    /// The user_data this op was submitted with (its in-flight key).
    #[inline]
    pub(crate) fn key(&self) -> u64 {
        self.key.load(Ordering::Relaxed)
    }

    /// Records the key; called by the owner before the SQE is pushed.
    #[inline]
    pub(crate) fn set_key(&self, key: u64) {
        self.key.store(key, Ordering::Relaxed);
    }

    /// Another reference to this cell (the caller holds one, so it is alive).
    #[inline]
    pub(crate) fn handle(&self) -> CellHandle {
        self.state.fetch_add(REFERENCE, Ordering::Relaxed);
        CellHandle {
            ptr: NonNull::from(self),
        }
    }

    /// The handler of a handled op (`cell/handled.rs`), `None` for ops a future awaits.
    #[inline]
    pub(crate) fn handler(&self) -> Option<Handler> {
        self.vtable.handler
    }

    /// The buffer pool the op selects from, if any (multishot ops only, see
    /// [`MultishotOperation::buf_select`]).
    #[inline]
    pub(crate) fn buf_select(&self) -> Option<&BufSelect> {
        // SAFETY: the table is the one of this cell's type.
        self.vtable.buf_select.and_then(|f| unsafe { f(self) })
    }

    /// Records one CQE. `last` is false while the kernel promises more CQEs
    /// (`IORING_CQE_F_MORE`). Runs on the owner thread, which holds a reference.
    #[inline]
    #[cfg(all(test, loom))]
    pub(crate) fn complete(&self, cqe: Cqe, last: bool) {
        self.complete_at(cqe, last, 0);
    }

    /// [`Header::complete`] for a CQE whose bytes start `buf_start` bytes into their
    /// provided buffer (incremental buffer rings; see `BufSelect::on_cqe`). A multishot
    /// op's item is made with it ([`MultishotOperation::item_at`]).
    #[inline]
    pub(crate) fn complete_at(&self, cqe: Cqe, last: bool, buf_start: u32) {
        if self.vtable.multishot {
            self.multishot().complete(self, (cqe, buf_start), last);
            return;
        }
        // Only the owner writes result/flags/MORE_SEEN, so plain loads are exact here.
        let more_seen = self.state.load(Ordering::Relaxed) & MORE_SEEN != 0;
        if !more_seen {
            self.result.store(cqe.result, Ordering::Relaxed);
        }
        self.flags.store(
            self.flags.load(Ordering::Relaxed) | cqe.flags,
            Ordering::Relaxed,
        );
        if !last {
            self.state.fetch_or(MORE_SEEN, Ordering::Relaxed);
            return;
        }
        self.finish(COMPLETE);
    }

    /// Completes an op whose SQE never reached the kernel, because of `err`. Runs on
    /// the owner thread, or on any thread once the ring is closed.
    pub(crate) fn fail_unsubmitted(&self, err: &io::Error) {
        if self.vtable.multishot {
            self.multishot()
                .complete(self, (Cqe::from_error(err), 0), true);
            return;
        }
        self.result
            .store(Cqe::from_error(err).result, Ordering::Relaxed);
        self.finish(COMPLETE | NOT_SUBMITTED);
    }

    /// Owner side of a single-shot op: sets COMPLETE (with `bits`), then releases the
    /// data if the waiter is gone, or wakes it if it left a waker.
    #[inline]
    fn finish(&self, bits: u32) {
        // An add, not an or: `bits` are set once, by this call, so they are clear here,
        // and an add whose old value is used is one `lock xadd` where an or is a CAS
        // loop.
        let prev = self.state.fetch_add(bits, Ordering::AcqRel);
        debug_assert_eq!(prev & bits, 0, "an op completed twice");
        if prev & ORPHANED != 0 {
            // The waiter is gone (ORPHANED) and the kernel is done (final CQE): the data
            // is ours alone.
            // SAFETY: we set the second of COMPLETE and ORPHANED.
            unsafe { (self.vtable.release)(self, prev | bits) };
        } else if prev & AWAITER != 0 {
            // AWAITER was set when we set COMPLETE: the slot is ours, and the waiter, which
            // will see COMPLETE, never touches it again (`state.rs`).
            // SAFETY: so the slot is ours to take from.
            let waker = self.waker.with_mut(|slot| unsafe { (*slot).take() });
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Marks that a cancel has been requested. Returns false when one already was, or
    /// when the op has completed (so there is nothing to cancel).
    pub(crate) fn mark_cancel(&self) -> bool {
        let prev = self.state.fetch_or(CANCEL_REQUESTED, Ordering::AcqRel);
        prev & (CANCEL_REQUESTED | COMPLETE) == 0
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// Waiter side of a single-shot op, when its `state` (just loaded) says it is not
    /// complete: leaves `waker` for the owner. Returns the state after, in which COMPLETE
    /// may now be set (then the output is ready and nobody will wake the waker).
    #[inline]
    fn register(&self, waker: &Waker, state: u32) -> u32 {
        let id = WakerId::of(waker);
        if state & AWAITER != 0 {
            // SAFETY: `registered` is the waiter's alone.
            let same = self.registered.with_mut(|r| unsafe { *r == Some(id) });
            if same {
                // The slot holds this very waker (or the owner is taking it to wake it).
                return state;
            }
            // Take the slot back to put the new waker in. AWAITER is set (we saw it, and
            // only we clear it), so subtracting it clears it, in one `lock xadd`.
            let prev = self.state.fetch_sub(AWAITER, Ordering::Acquire);
            if prev & COMPLETE != 0 {
                // The owner has the slot and wakes the old waker; the output is in.
                return prev;
            }
        }
        // AWAITER is clear and COMPLETE was not set when it was cleared, so the owner will
        // not touch the slot unless it sees AWAITER, which we set below.
        let waker = waker.clone();
        // SAFETY: so the slot is ours to fill.
        self.waker.with_mut(|slot| unsafe { *slot = Some(waker) });
        // SAFETY: `registered` is the waiter's alone.
        self.registered.with_mut(|r| unsafe { *r = Some(id) });
        // Release: the owner that sees AWAITER sees the waker. If COMPLETE is already
        // set, the owner saw no AWAITER and wakes nobody: the caller returns Ready.
        // AWAITER is clear (only we set it), so an add sets it.
        self.state.fetch_add(AWAITER, Ordering::AcqRel) | AWAITER
    }

    fn multishot(&self) -> &MultishotCore {
        debug_assert!(self.vtable.multishot);
        // The cell is a `MultishotCell`, whose `repr(C)` prefix is a header followed by the
        // core; `MultishotPrefix` has the same prefix.
        // SAFETY: so the cast reads the core where it is.
        unsafe { &(*(self as *const Header).cast::<MultishotPrefix>()).core }
    }

    /// Drops one reference; the last one frees the cell.
    ///
    /// # Safety
    /// The caller owns a reference to `ptr`'s cell and does not use it afterwards.
    #[inline]
    unsafe fn release_ref(ptr: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the cell alive until this RMW.
        let header = unsafe { ptr.as_ref() };
        let prev = header.state.fetch_sub(REFERENCE, Ordering::AcqRel);
        if prev & REFS == REFERENCE {
            // That was the last reference; every other party's accesses happen before
            // their releases, which our AcqRel RMW read.
            // SAFETY: so nobody can reach the cell any more.
            unsafe { (header.vtable.dealloc)(ptr) };
        }
    }

    /// Drops one reference, freeing the cell without an RMW when the caller can see it
    /// holds the only one.
    ///
    /// # Safety
    /// As for [`Header::release_ref`].
    /// `dealloc` is the cell's own (its type's `VTable::dealloc`), named by a caller
    /// that knows the type, so freeing is a direct call.
    #[inline]
    unsafe fn release_ref_last_likely(ptr: NonNull<Header>, dealloc: unsafe fn(NonNull<Header>)) {
        // SAFETY: the caller's reference keeps the cell alive.
        let header = unsafe { ptr.as_ref() };
        if header.state.load(Ordering::Acquire) & REFS == REFERENCE {
            // Ours is the only reference: nobody else can reach the cell, and the Acquire
            // load ordered their accesses before their releases, before this.
            // SAFETY: so the cell is ours to free.
            unsafe { dealloc(ptr) };
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { Header::release_ref(ptr) };
        }
    }
}

/// An untyped, counted reference to a cell: what the ring holds (its in-flight table), and what
/// travels through a mailbox. Dropping it drops the reference.
pub(crate) struct CellHandle {
    ptr: NonNull<Header>,
}

// SAFETY: a handle is a counted reference to a `Send + Sync` header; the data behind it
// is only reached through the state protocol.
unsafe impl Send for CellHandle {}
// SAFETY: as above.
unsafe impl Sync for CellHandle {}

impl CellHandle {
    /// The cell's address, keeping the reference: whoever holds the pointer owns it,
    /// and gives it back with [`CellHandle::from_raw`].
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        std::mem::ManuallyDrop::new(self).ptr
    }

    /// Takes back a reference given out by [`CellHandle::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw`, and its reference is taken back once.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> CellHandle {
        CellHandle { ptr }
    }
}

impl std::ops::Deref for CellHandle {
    type Target = Header;

    #[inline]
    fn deref(&self) -> &Header {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for CellHandle {
    fn clone(&self) -> Self {
        self.handle()
    }
}

impl Drop for CellHandle {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own a reference and are done with it.
        unsafe { Header::release_ref(self.ptr) };
    }
}

/// A cell as another thread's mailbox carries it (`shared.rs`): the rare path of
/// submissions and cancels from threads that do not own the ring, so a boxed trait
/// object is fine there.
pub(crate) trait Completion: Send + Sync {
    /// The cell.
    fn cell(&self) -> &CellHandle;
    /// Completes an op whose SQE never reached the kernel, because of `err`. Runs on
    /// the owner thread, or on any thread once the ring is closed.
    fn fail_unsubmitted(&self, err: &io::Error);
}

impl Completion for CellHandle {
    fn cell(&self) -> &CellHandle {
        self
    }

    fn fail_unsubmitted(&self, err: &io::Error) {
        Header::fail_unsubmitted(self, err);
    }
}

/// Wraps `cell` for a mailbox.
pub(crate) fn remote(cell: CellHandle) -> Arc<dyn Completion> {
    Arc::new(cell)
}

/// A single-shot op's cell.
#[repr(C)]
struct OpCell<T> {
    header: Header,
    /// The op's data. Owned by the submitter until the SQE is pushed, by the kernel until
    /// the final CQE, then by whichever party the state word names (see `state.rs`).
    data: UnsafeCell<Option<T>>,
}

/// The waiter's reference to a single-shot op's cell.
///
/// Its `Send`/`Sync` impls ask for nothing but `T: Send` (no `Operation` bound, which
/// would bring `'static` along): an async block holding an op must be provably `Send`
/// for every lifetime the compiler erased in it, as it was with `Arc<OpCell<T>>`.
pub(crate) struct OpRef<T> {
    ptr: NonNull<OpCell<T>>,
    _data: PhantomData<T>,
}

// SAFETY: the waiter's reference moves with its future; `T: Send` lets the data move
// to whichever thread takes it.
unsafe impl<T: Send> Send for OpRef<T> {}
// SAFETY: `&OpRef` only reads atomics; the data is reached through `&self` methods the
// state protocol gives to one party at a time.
unsafe impl<T: Send> Sync for OpRef<T> {}

impl<T: Operation> OpCell<T> {
    const VTABLE: VTable = VTable {
        multishot: false,
        release: Self::release,
        dealloc: Self::dealloc,
        buf_select: None,
        handler: None,
    };

    /// Releases the data of a completed op nobody waits for.
    ///
    /// # Safety
    /// Only the party that set the second of COMPLETE and ORPHANED calls it, with the
    /// state it saw: the data is its alone.
    unsafe fn release(header: &Header, state: u32) {
        // SAFETY: `header` is the first field of an `OpCell<T>` (the table is its type's).
        let cell = unsafe { &*(header as *const Header).cast::<OpCell<T>>() };
        // SAFETY: guaranteed by the caller: the data is ours alone.
        let Some(data) = cell.data.with_mut(|data| unsafe { (*data).take() }) else {
            return;
        };
        if state & NOT_SUBMITTED != 0 {
            drop(data.not_submitted(submit_error(header)));
        } else {
            data.orphaned(cqe(header));
        }
    }
}

impl<T> OpCell<T> {
    /// # Safety
    /// The last reference to the cell is gone.
    #[inline(never)]
    unsafe fn dealloc(ptr: NonNull<Header>) {
        let ptr = ptr.cast::<OpCell<T>>();
        // The waker and the data are taken through their cells first so the loom models
        // see the free as an access ordered after every other party's. Those two are all
        // an `OpCell` has to drop (the rest of the header is atomics, a `&'static` and a
        // `Copy` id), so nothing is left for a `drop_in_place`.
        // SAFETY: no reference is left, so nobody else touches the cell: it is ours.
        unsafe {
            let cell = ptr.as_ref();
            drop(cell.header.waker.with_mut(|slot| (*slot).take()));
            drop(cell.data.with_mut(|data| (*data).take()));
            cache::free(ptr.cast(), Layout::new::<OpCell<T>>());
        }
    }
}

impl<T: Operation> OpRef<T> {
    /// A cell for `data`, with two references: the waiter's, and one for the ring,
    /// which the caller hands over with the SQE.
    pub(crate) fn new(data: T) -> (OpRef<T>, CellHandle) {
        let ptr = cache::alloc(Layout::new::<OpCell<T>>()).cast::<OpCell<T>>();
        // SAFETY: a fresh block with the size and alignment of an `OpCell<T>`.
        unsafe {
            ptr.as_ptr().write(OpCell {
                header: Header::new(&OpCell::<T>::VTABLE, 2),
                data: UnsafeCell::new(Some(data)),
            })
        };
        let handle = CellHandle { ptr: ptr.cast() };
        (
            OpRef {
                ptr,
                _data: PhantomData,
            },
            handle,
        )
    }

    fn cell(&self) -> &OpCell<T> {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.cell().header
    }

    /// Builds the SQE from the data at its final address.
    ///
    /// # Safety
    /// Must be called before the op is visible to the owner or the kernel (nobody else
    /// touches `data` yet), at most once.
    pub(crate) unsafe fn build_sqe(&self) -> io_uring::squeue::Entry {
        // SAFETY: guaranteed by the caller: the submitter has exclusive access.
        self.cell().data.with_mut(|data| unsafe {
            (*data)
                .as_mut()
                .expect("op data is present until completion")
                .build()
        })
    }

    /// Leaves `waker` for the owner before the op is shared: plain writes, no RMW, so
    /// the first poll of a submitted op costs none (the waiter then finds its own waker
    /// registered).
    ///
    /// # Safety
    /// Must be called before the op is visible to the owner or the kernel, at most once.
    pub(crate) unsafe fn register_unshared(&self, waker: &Waker) {
        let header = self.header();
        let (waker, id) = (waker.clone(), WakerId::of(waker));
        // SAFETY: guaranteed by the caller: nobody else can reach the cell yet.
        header.waker.with_mut(|slot| unsafe { *slot = Some(waker) });
        // SAFETY: as above.
        header.registered.with_mut(|r| unsafe { *r = Some(id) });
        // Not shared yet: a load and a store are the whole protocol.
        let state = header.state.load(Ordering::Relaxed);
        header.state.store(state | AWAITER, Ordering::Relaxed);
    }

    /// Takes the data back when the op could not be submitted at all.
    ///
    /// # Safety
    /// Only before the SQE was handed to the ring (the kernel never saw the data).
    pub(crate) unsafe fn take_unsubmitted(&self) -> T {
        let data = &self.cell().data;
        // SAFETY: guaranteed by the caller.
        data.with_mut(|data| unsafe { (*data).take() })
            .expect("op data is present until completion")
    }

    /// Waiter side: returns the output once the final CQE is in.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<T::Output> {
        let header = self.header();
        let mut state = header.state.load(Ordering::Acquire);
        if state & COMPLETE == 0 {
            state = header.register(cx.waker(), state);
            if state & COMPLETE == 0 {
                return Poll::Pending;
            }
        }
        // COMPLETE is set (our Acquire pairs with the owner's AcqRel), so the owner and the
        // kernel are done with the data.
        // SAFETY: so the waiter is its only user now.
        let data = self.cell().data.with_mut(|data| unsafe { (*data).take() });
        let data = data.expect("op polled after it returned Ready");
        Poll::Ready(if state & NOT_SUBMITTED != 0 {
            data.not_submitted(submit_error(header))
        } else {
            data.complete(cqe(header))
        })
    }

    /// Waiter side, on drop: gives up the result. Returns true when the op is still in
    /// flight, so the caller should request its cancellation.
    pub(crate) fn orphan(&self) -> bool {
        let header = self.header();
        // One RMW sets ORPHANED and takes the waker slot back (clears AWAITER). Only the
        // waiter changes either bit, so it knows both: ORPHANED is clear (orphaning
        // happens once) and AWAITER is what it last left, and one add does both.
        let awaiter = header.state.load(Ordering::Relaxed) & AWAITER;
        let prev = header
            .state
            .fetch_add(ORPHANED.wrapping_sub(awaiter), Ordering::AcqRel);
        // Mutation point: not checking COMPLETE frees data the kernel owns.
        let prev = if mutation!("orphan_check") {
            prev | COMPLETE
        } else {
            prev
        };
        if prev & COMPLETE != 0 {
            // The CQE came in but nobody took it: we release what it produced.
            // COMPLETE and ORPHANED are both set and we set the second one.
            // SAFETY: so the data is ours alone.
            unsafe { OpCell::<T>::release(header, prev) };
            return false;
        }
        if prev & AWAITER != 0 {
            // We cleared AWAITER before COMPLETE was set: the owner will see no AWAITER.
            // SAFETY: so the slot is ours.
            drop(header.waker.with_mut(|slot| unsafe { (*slot).take() }));
        }
        true
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.header().is_complete()
    }
}

impl<T> Drop for OpRef<T> {
    fn drop(&mut self) {
        // Usually the owner let go first (it completed the op before waking us), so this
        // is the last reference.
        // The cell is an `OpCell<T>`, so its `dealloc` is that type's.
        // SAFETY: we give up the waiter's reference with the future.
        unsafe { Header::release_ref_last_likely(self.ptr.cast(), OpCell::<T>::dealloc) };
    }
}

/// Why the SQE never reached the kernel (recorded as a CQE result).
#[inline]
fn submit_error(header: &Header) -> io::Error {
    io::Error::from_raw_os_error(-header.result.load(Ordering::Relaxed))
}

#[inline]
fn cqe(header: &Header) -> Cqe {
    Cqe {
        result: header.result.load(Ordering::Relaxed),
        flags: header.flags.load(Ordering::Relaxed),
    }
}

/// What every multishot cell has after its header: a queue of CQEs instead of one
/// result, and its waker.
///
/// The queue is a mutex around a `VecDeque` with its length beside it, not a lock-free
/// queue: the waiter polls a stream far more often than it finds an item (every poll of
/// a task that waits on several things), and a lock-free queue's empty pop costs a full
/// fence, where `queued` answers with one load; and an idle connection's stream carries
/// 40 bytes of queue instead of 256 of cache-padded indices. The owner and the waiter
/// rarely meet in the lock.
struct MultishotCore {
    /// Each CQE with where its bytes start in their provided buffer.
    items: Mutex<VecDeque<(Cqe, u32)>>,
    /// How many CQEs `items` holds, changed only under its lock, so it is exact
    /// whenever the lock is free. The owner raises it with each push; the waiter (or
    /// whoever releases the items of an orphaned stream) lowers it with each pop. A
    /// reader without the lock sees a count that was true at some point: zero means
    /// "nothing queued as of the owner's last publication", and the waker protocol
    /// (register, then look again) covers a push that lands right after.
    queued: AtomicU32,
    waker: AtomicWaker,
}

impl MultishotCore {
    fn push(&self, item: (Cqe, u32)) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.push_back(item);
        self.queued.fetch_add(1, Ordering::Release);
    }

    fn pop(&self) -> Option<(Cqe, u32)> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let cqe = items.pop_front()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Some(cqe)
    }

    /// Owner side: queues one CQE and wakes the waiter (or releases the item if the
    /// waiter is gone).
    fn complete(&self, header: &Header, item: (Cqe, u32), last: bool) {
        self.push(item);
        // An RMW even for intermediate CQEs: it orders the push before the waiter's
        // `orphan` (or makes us see ORPHANED), so an item is never stranded. An add (one
        // `lock xadd`, where an or whose result is used is a CAS loop): COMPLETE is set
        // once, by the final CQE.
        let prev = header
            .state
            .fetch_add(if last { COMPLETE } else { 0 }, Ordering::AcqRel);
        if prev & ORPHANED != 0 {
            // SAFETY: the waiter is gone; whoever drains the queue releases the items.
            unsafe { (header.vtable.release)(header, prev) };
        } else {
            self.waker.wake();
        }
    }
}

/// The type-independent prefix of a [`MultishotCell`].
#[repr(C)]
struct MultishotPrefix {
    header: Header,
    core: MultishotCore,
}

/// A multishot op's cell.
#[repr(C)]
struct MultishotCell<T> {
    prefix: MultishotPrefix,
    /// Anything the op pins for its whole life (none of the current multishot ops needs
    /// more than an fd, but the data stays alive until the final CQE regardless).
    data: T,
}

impl<T: MultishotOperation> MultishotCell<T> {
    const VTABLE: VTable = VTable {
        multishot: true,
        release: Self::release,
        dealloc: Self::dealloc,
        buf_select: Some(Self::buf_select),
        handler: None,
    };

    fn of(header: &Header) -> &MultishotCell<T> {
        // The table that leads here is a `MultishotCell<T>`'s.
        // SAFETY: so `header` is the first field of a `MultishotCell<T>`.
        unsafe { &*(header as *const Header).cast::<MultishotCell<T>>() }
    }

    /// # Safety
    /// Only after ORPHANED is set (the items are nobody's).
    unsafe fn release(header: &Header, _state: u32) {
        Self::of(header).release_items();
    }

    /// # Safety
    /// Only on a `MultishotCell<T>`'s header.
    unsafe fn buf_select(header: &Header) -> Option<&BufSelect> {
        Self::of(header).data.buf_select()
    }

    /// # Safety
    /// The last reference to the cell is gone.
    unsafe fn dealloc(ptr: NonNull<Header>) {
        let ptr = ptr.cast::<MultishotCell<T>>();
        // SAFETY: no reference is left, so nobody else touches the cell.
        unsafe {
            std::ptr::drop_in_place(ptr.as_ptr());
            cache::free(ptr.cast(), Layout::new::<MultishotCell<T>>());
        }
    }

    fn release_items(&self) {
        while let Some((cqe, buf_start)) = self.prefix.core.pop() {
            self.data.orphaned_item_at(cqe, buf_start);
        }
    }
}

/// The waiter's reference to a multishot op's cell (bounds as for [`OpRef`]).
pub(crate) struct MultishotRef<T> {
    ptr: NonNull<MultishotCell<T>>,
    _data: PhantomData<T>,
}

// SAFETY: the data of a multishot op is `Send + Sync`; the rest is atomic.
unsafe impl<T: Send + Sync> Send for MultishotRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for MultishotRef<T> {}

impl<T: MultishotOperation> MultishotRef<T> {
    /// A cell for `data`, with the waiter's reference and one for the ring.
    pub(crate) fn new(data: T) -> (MultishotRef<T>, CellHandle) {
        let ptr = cache::alloc(Layout::new::<MultishotCell<T>>()).cast::<MultishotCell<T>>();
        // SAFETY: a fresh block with the size and alignment of a `MultishotCell<T>`.
        unsafe {
            ptr.as_ptr().write(MultishotCell {
                prefix: MultishotPrefix {
                    header: Header::new(&MultishotCell::<T>::VTABLE, 2),
                    core: MultishotCore {
                        items: Mutex::new(VecDeque::new()),
                        queued: AtomicU32::new(0),
                        waker: AtomicWaker::new(),
                    },
                },
                data,
            })
        };
        let handle = CellHandle { ptr: ptr.cast() };
        (
            MultishotRef {
                ptr,
                _data: PhantomData,
            },
            handle,
        )
    }

    fn cell(&self) -> &MultishotCell<T> {
        // SAFETY: our reference keeps the cell alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.cell().prefix.header
    }

    pub(crate) fn build_sqe(&self) -> io_uring::squeue::Entry {
        self.cell().data.build()
    }

    /// Makes an item of a CQE that did not come from the kernel (a submission error).
    pub(crate) fn item_for(&self, cqe: Cqe) -> T::Item {
        self.cell().data.item(cqe)
    }

    /// Waiter side: the next item, `None` once the final CQE has been consumed.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        let cell = self.cell();
        let core = &cell.prefix.core;
        if let Some((cqe, buf_start)) = core.pop() {
            return Poll::Ready(Some(cell.data.item_at(cqe, buf_start)));
        }
        core.waker.register(cx.waker());
        // Mutation point: not looking again after registering misses a CQE queued (and
        // its wake spent) in between.
        if mutation!("multishot_recheck") {
            return Poll::Pending;
        }
        // The owner pushes before it sets COMPLETE, so after seeing COMPLETE one more pop
        // finds anything pushed with the final CQE.
        let complete = self.header().is_complete();
        match core.pop() {
            Some((cqe, buf_start)) => Poll::Ready(Some(cell.data.item_at(cqe, buf_start))),
            None if complete => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Waiter side, on drop. Returns true when the caller should request cancellation.
    pub(crate) fn orphan(&self) -> bool {
        let cell = self.cell();
        drop(cell.prefix.core.waker.take());
        // ORPHANED is set once, here: an add is one `lock xadd`.
        let prev = self.header().state.fetch_add(ORPHANED, Ordering::AcqRel);
        cell.release_items();
        prev & COMPLETE == 0
    }
}

impl<T> Drop for MultishotRef<T> {
    fn drop(&mut self) {
        // SAFETY: the waiter's reference, given up with the stream.
        unsafe { Header::release_ref(self.ptr.cast()) };
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! Where a CQE meets the future waiting for it. The op's data (the buffer the kernel
    //! writes) is released exactly once, and only after the final CQE, whoever goes
    //! last: the waiter that takes the output, the waiter that drops the future
    //! (orphan), or the owner's CQE after an orphan. The cell itself is freed exactly
    //! once, by whoever drops the last reference, after everyone else is done with it:
    //! freeing takes the waker slot and the data through their loom cells, so loom
    //! flags a free not ordered after the other party's last access. And a waiter that
    //! returned Pending is always woken, through whichever waker it left last.
    //!
    //! The buffer is a loom cell that the "kernel" (the owner thread, just before it
    //! reaps the CQE) writes and that releasing the data writes too, so loom flags any
    //! release not ordered after the kernel's write. Mutation `orphan_check` (the
    //! orphaning waiter releases the data without checking COMPLETE) frees a buffer the
    //! kernel still writes.

    use std::sync::Arc as StdArc;
    use std::task::{Context, Poll, Wake, Waker};

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    use super::{cache, CellHandle, MultishotRef, OpRef};
    use crate::cqe::Cqe;
    use crate::operation::MultishotOperation;
    use crate::operation::Operation;
    use crate::sync::model::model;

    /// The buffer's memory, shared by the op's data and the "kernel".
    struct Mem(UnsafeCell<u8>);

    // SAFETY: every access goes through loom's cell, which checks that accesses from
    // different threads are ordered (that is what the models test).
    unsafe impl Sync for Mem {}

    /// An op's data: a buffer the kernel writes, released exactly once.
    struct Buf {
        mem: Arc<Mem>,
        released: Arc<AtomicUsize>,
    }

    impl Drop for Buf {
        fn drop(&mut self) {
            // Freeing the buffer is a write to it as far as the kernel is concerned.
            self.mem.0.with_mut(|p| {
                // SAFETY: loom checks this access is exclusive and after the kernel's.
                unsafe { *p = 0 }
            });
            self.released.fetch_add(1, SeqCst);
        }
    }

    // SAFETY: the SQE carries no pointers (a NOP); the "kernel" of the models writes
    // `mem` through its own handle.
    unsafe impl Operation for Buf {
        type Output = u8;

        fn build(&mut self) -> io_uring::squeue::Entry {
            io_uring::opcode::Nop::new().build()
        }

        fn complete(self, _cqe: Cqe) -> u8 {
            self.mem.0.with(|p| {
                // SAFETY: loom checks the kernel's write happens-before this read.
                unsafe { *p }
            })
        }
    }

    /// A waker that records that it was woken.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: StdArc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    fn flag() -> (StdArc<Flag>, Waker) {
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        (flag.clone(), Waker::from(flag))
    }

    struct Setup {
        cell: OpRef<Buf>,
        ring: CellHandle,
        kernel: Arc<Mem>,
        released: Arc<AtomicUsize>,
        freed_before: usize,
    }

    fn setup() -> Setup {
        let kernel = Arc::new(Mem(UnsafeCell::new(0u8)));
        let released = Arc::new(AtomicUsize::new(0));
        let freed_before = cache::FREED.with(|n| n.get());
        let (cell, ring) = OpRef::new(Buf {
            mem: kernel.clone(),
            released: released.clone(),
        });
        Setup {
            cell,
            ring,
            kernel,
            released,
            freed_before,
        }
    }

    /// The cell was freed exactly once since `setup`.
    fn freed_once(freed_before: usize) {
        assert_eq!(cache::FREED.with(|n| n.get()) - freed_before, 1);
    }

    /// The ring owner: the kernel fills the buffer, then the owner reaps the final CQE
    /// and drops the table's reference.
    fn spawn_owner(ring: CellHandle, kernel: Arc<Mem>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            kernel.0.with_mut(|p| {
                // SAFETY: the kernel owns the buffer until the CQE (loom checks it).
                unsafe { *p = 7 }
            });
            drop(kernel);
            ring.complete(
                Cqe {
                    result: 1,
                    flags: 0,
                },
                true,
            );
            drop(ring);
        })
    }

    #[test]
    fn orphan_racing_the_cqe_releases_exactly_once() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.ring, s.kernel);
            s.cell.orphan();
            drop(s.cell);
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
            freed_once(s.freed_before);
        });
    }

    #[test]
    fn cqe_racing_a_poll_wakes_the_waiter() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.ring, s.kernel);
            let out = loom::future::block_on(std::future::poll_fn(|cx| s.cell.poll_complete(cx)));
            assert_eq!(out, 7);
            drop(s.cell);
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
            freed_once(s.freed_before);
        });
    }

    /// The future is polled on one worker, then its task is stolen and the future
    /// dropped on another, while the owner reaps the CQE: the data is released once,
    /// after the CQE, and the cell freed once, after both are done with it.
    #[test]
    fn poll_then_drop_on_another_thread_vs_cqe() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.ring, s.kernel);
            let cell = s.cell;
            let (first, cell) = thread::spawn(move || {
                let poll = cell.poll_complete(&mut Context::from_waker(Waker::noop()));
                (poll, cell)
            })
            .join()
            .unwrap();
            match first {
                Poll::Ready(out) => assert_eq!(out, 7),
                // The task moved to this thread, which drops the future.
                Poll::Pending => {
                    cell.orphan();
                }
            }
            drop(cell);
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
            freed_once(s.freed_before);
        });
    }

    /// The op is submitted with the first poll's waker already in its cell (as `Op`
    /// does); the task is polled again with that waker, then (stolen) with another,
    /// while the owner reaps the CQE: the waker slot changes hands without a race, and a
    /// poll that returned Pending is followed by a wake of the waker it left. Planting a
    /// re-registration that writes the slot without taking it back first (no
    /// `fetch_and(!AWAITER)`) makes loom flag the slot.
    #[test]
    fn poll_with_a_new_waker_vs_cqe() {
        model(|| {
            let s = setup();
            let (a, waker_a) = flag();
            let (b, waker_b) = flag();
            // SAFETY: the owner thread does not exist yet: the cell is not shared.
            unsafe { s.cell.register_unshared(&waker_a) };
            let owner = spawn_owner(s.ring, s.kernel);
            let first = s.cell.poll_complete(&mut Context::from_waker(&waker_a));
            let second = match first {
                Poll::Ready(out) => Poll::Ready(out),
                Poll::Pending => s.cell.poll_complete(&mut Context::from_waker(&waker_b)),
            };
            owner.join().unwrap();
            match second {
                Poll::Ready(out) => assert_eq!(out, 7),
                Poll::Pending => {
                    assert!(b.0.load(SeqCst), "the last waker left was never woken");
                    let out = s.cell.poll_complete(&mut Context::from_waker(&waker_b));
                    assert_eq!(out, Poll::Ready(7));
                }
            }
            let _ = a;
            drop(s.cell);
            assert_eq!(s.released.load(SeqCst), 1);
            freed_once(s.freed_before);
        });
    }

    /// The waiter takes the output and drops its reference while the owner is still
    /// waking it: the one that drops the last reference frees the cell, after the
    /// other's last access (the waiter frees without an RMW when it sees itself alone;
    /// planting a Relaxed load there makes loom flag the free).
    #[test]
    fn last_reference_frees_after_the_other_party() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.ring, s.kernel);
            let (_flag, waker) = flag();
            let mut cx = Context::from_waker(&waker);
            let cell = s.cell;
            loop {
                if let Poll::Ready(out) = cell.poll_complete(&mut cx) {
                    assert_eq!(out, 7);
                    break;
                }
                thread::yield_now();
            }
            drop(cell);
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
            freed_once(s.freed_before);
        });
    }

    /// A multishot op that yields each CQE's result.
    struct Results;

    // SAFETY: the SQE carries no pointers (a NOP).
    unsafe impl MultishotOperation for Results {
        type Item = i32;

        fn build(&self) -> io_uring::squeue::Entry {
            io_uring::opcode::Nop::new().build()
        }

        fn item(&self, cqe: Cqe) -> i32 {
            cqe.result
        }
    }

    /// The owner queues two CQEs, the second final, while the waiter polls the stream to
    /// its end: the waiter gets both, in order, then the end, and is never left waiting
    /// for a wake that was spent before it registered (mutation `multishot_recheck`
    /// leaves it so, and loom reports the deadlock).
    #[test]
    fn multishot_items_racing_the_waiter_are_all_delivered_in_order() {
        model(|| {
            let (stream, ring) = MultishotRef::new(Results);
            let owner = thread::spawn(move || {
                ring.complete(
                    Cqe {
                        result: 1,
                        flags: 0,
                    },
                    false,
                );
                ring.complete(
                    Cqe {
                        result: 2,
                        flags: 0,
                    },
                    true,
                );
                drop(ring);
            });
            let got = loom::future::block_on(async {
                let mut got = Vec::new();
                while let Some(item) = std::future::poll_fn(|cx| stream.poll_next(cx)).await {
                    got.push(item);
                }
                got
            });
            assert_eq!(got, [1, 2]);
            owner.join().unwrap();
            drop(stream);
        });
    }

    /// Stands for the ring in a handler's [`super::Dispatch`]: it takes no follow-up.
    struct NoRing;

    impl super::Resubmit for NoRing {
        fn submit_cell_written(
            &self,
            _write: &mut dyn FnMut(&mut std::mem::MaybeUninit<io_uring::squeue::Entry>),
            op: CellHandle,
        ) -> Result<crate::pending::PendingOp, (std::io::Error, CellHandle)> {
            Err((std::io::Error::from_raw_os_error(libc::ECANCELED), op))
        }
    }

    /// A handled op that reads its buffer where its CQE lands.
    struct Handled {
        buf: Buf,
        seen: Arc<AtomicUsize>,
    }

    // SAFETY: the SQE carries no pointers (a NOP).
    unsafe impl super::Handled for Handled {
        fn build(&mut self) -> io_uring::squeue::Entry {
            io_uring::opcode::Nop::new().build()
        }

        fn on_cqe(&mut self, _: &super::Dispatch<'_>, _: Cqe, _: u32, _: bool) {
            let byte = self.buf.mem.0.with(|p| {
                // SAFETY: loom checks the kernel's write happens-before this read.
                unsafe { *p }
            });
            self.seen.store(usize::from(byte), SeqCst);
        }
    }

    /// A handled op's final CQE is handled on the owner while the task drops its own
    /// reference to the cell (a relay's `HandledRef`) on another thread: the handler
    /// runs on live data and sees the kernel's write, the data is dropped once, after
    /// the handler, and the cell freed once. Mutation `handled_refs` creates the cell
    /// with the ring's reference only, so the task's drop frees it under the handler.
    #[test]
    fn handled_cqe_racing_the_last_outside_reference() {
        model(|| {
            let kernel = Arc::new(Mem(UnsafeCell::new(0u8)));
            let released = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(AtomicUsize::new(0));
            let freed_before = cache::FREED.with(|n| n.get());
            let op = Handled {
                buf: Buf {
                    mem: kernel.clone(),
                    released: released.clone(),
                },
                seen: seen.clone(),
            };
            let (ring, ours) = super::handled::new_handled(op);
            let owner = thread::spawn(move || {
                kernel.0.with_mut(|p| {
                    // SAFETY: the kernel owns the buffer until the CQE (loom checks it).
                    unsafe { *p = 7 }
                });
                drop(kernel);
                let handle = ring.handler().expect("a handled op's cell has a handler");
                let cqe = Cqe {
                    result: 0,
                    flags: 0,
                };
                // SAFETY: this thread stands for the op's ring, handing it its one CQE.
                unsafe { handle(&ring, &NoRing, cqe, 0, true) };
                drop(ring);
            });
            drop(ours);
            owner.join().unwrap();
            assert_eq!(seen.load(SeqCst), 7, "the handler ran on live data");
            assert_eq!(released.load(SeqCst), 1);
            freed_once(freed_before);
        });
    }
}
