//! Handled ops: ops whose CQEs are acted on where they land, on the ring's thread, with
//! no future waiting for them.
//!
//! ## The problem
//!
//! An awaited op costs a task wake and a poll per CQE. For most work that is the point:
//! the task has something to do with the result. A relay that receives a chunk and
//! sends it on has nothing to decide: the send could go out from the CQE itself, as a
//! hand-written io_uring loop does it. On a request/response proxy the wakes and polls
//! of the four CQEs of each round trip were most of the runtime's user time.
//!
//! ## What was rejected
//!
//! - Waking the task only for some CQEs (a send's, say, unless something waits behind
//!   it): it halves the wakes at best, and a pool buffer then stays with its send's
//!   future until the task next runs, which an idle connection may never do. Measured
//!   on the proxy: 1.5 points of its user time out of 9.
//! - A boxed callback per op: an allocation and a dynamic call per CQE, where a
//!   handled op is a cell from the same per-thread cache as any op and its handler one
//!   entry of its type's table.
//!
//! ## The rule
//!
//! A handled op ([`Handled`]) is a cell like any other: the ring's in-flight table holds it from
//! submission to its final CQE, so its data (the buffer a send reads, the socket it
//! names) lives until the kernel is done with it. But no waiter shares its state word.
//! The ring hands each CQE to [`Handled::on_cqe`] instead of recording it, on its own
//! thread, with a [`Dispatch`] through which the handler submits follow-up ops on the
//! same ring: a recv's CQE submits the send of its buffer, a send's CQE the next one.
//!
//! The data is the owner's alone from submission on: only the ring calls the handler,
//! one CQE at a time, and whoever else holds the cell (to cancel it) never touches the
//! data. So the handler gets it by `&mut`, and handlers talk to tasks through state of
//! their own (a mutex and a waker, say), not through the cell. The cell's state word
//! only counts references, with the same fences as any cell's (`state.rs`): whoever
//! drops the last one frees the data, after the final CQE's handler has run.
//!
//! A handled op is only ever submitted by the ring's owner, never through the mailbox
//! of another thread: its handler must run where its follow-ups can be submitted
//! directly. And once the ring is closing, [`Dispatch::submit`] refuses, so the drop
//! of a ring whose handlers keep submitting still ends.

use std::alloc::Layout;
use std::io;
use std::ptr::NonNull;

use io_uring::squeue;

use super::{cache, CellHandle, Header, Resubmit, VTable};
use crate::buf_ring::BufSelect;
use crate::cqe::Cqe;
use crate::pending::PendingOp;
use crate::sync::UnsafeCell;

/// An op whose CQEs are handled on the ring's thread as they are dispatched.
///
/// Submit one with [`crate::op::submit_handled`] from the ring's thread, or with
/// [`Dispatch::submit`] from another handler.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled};
/// use uringo_uring::{opcodes, Ring};
///
/// /// A nop whose CQE submits the next one, `left` more times.
/// struct Chain {
///     left: usize,
///     seen: Arc<AtomicUsize>,
/// }
///
/// // SAFETY: the SQE points at nothing.
/// unsafe impl Handled for Chain {
///     fn build(&mut self) -> io_uring::squeue::Entry {
///         opcodes::Nop::new().build()
///     }
///     fn on_cqe(&mut self, ring: &Dispatch<'_>, _: Cqe, _: u32, _: bool) {
///         self.seen.fetch_add(1, Ordering::Relaxed);
///         if self.left > 0 {
///             let next = Chain { left: self.left - 1, seen: self.seen.clone() };
///             assert!(ring.submit(next).is_ok());
///         }
///     }
/// }
///
/// let ring = Ring::new()?;
/// let _guard = ring.enter();
/// let seen = Arc::new(AtomicUsize::new(0));
/// submit_handled(Chain { left: 2, seen: seen.clone() }).map_err(|(_, err)| err)?;
/// while seen.load(Ordering::Relaxed) < 3 {
///     ring.submit_and_reap()?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Safety
/// `build` may return an SQE pointing into `self`: it is called once `self` sits at its
/// final address inside the op's cell, where it stays until the last reference to the
/// cell is gone, which is never before the op's final CQE. Every pointer in the SQE must
/// stay valid under that guarantee. `on_cqe` may move data out of `self` only once the
/// kernel is done with it (at the final CQE).
pub unsafe trait Handled: Send + 'static {
    /// Builds the SQE (user_data is set by the ring). The ring writes it straight into
    /// its SQ, so `build` must not submit another op: doing so panics.
    fn build(&mut self) -> squeue::Entry;

    /// Acts on one CQE, on the ring's thread. `buf_start` is where the CQE's bytes start
    /// in their provided buffer (see [`crate::op::MultishotOperation::item_at`]), `last`
    /// says the kernel is done with the op.
    fn on_cqe(&mut self, ring: &Dispatch<'_>, cqe: Cqe, buf_start: u32, last: bool);

    /// The pool the kernel picks this op's buffers from, if any (as
    /// [`crate::op::MultishotOperation::buf_select`]).
    fn buf_select(&self) -> Option<&BufSelect> {
        None
    }
}

/// The ring dispatching a handled op's CQE, as its handler sees it: see [`Handled`]'s
/// example.
pub struct Dispatch<'a> {
    ring: &'a dyn Resubmit,
}

impl Dispatch<'_> {
    /// Submits `op` on this ring, to go to the kernel with the ring's next enter. On
    /// error (the SQ could not take it, or the ring is closing) the op comes back
    /// unsubmitted, with why.
    pub fn submit<T: Handled>(&self, op: T) -> Result<(), (T, io::Error)> {
        // The ring's is the only reference: nobody cancels a follow-up.
        let cell = new_cell(op, 1);
        let ptr = cell.ptr;
        // The build runs before the SQE is queued, so the cell is not shared yet, and
        // the ring's reference keeps it alive.
        // SAFETY: so nobody else touches its data while `build` reads it.
        let build = || unsafe { HandledCell::<T>::of_ptr(ptr).build() };
        match super::submit_built(self.ring, build, cell) {
            Ok(_) => Ok(()),
            Err((err, cell)) => {
                // The ring gave back its reference, the only one; the kernel never saw
                // the data.
                // SAFETY: so the data is ours to take.
                let op = unsafe { HandledCell::<T>::of(&cell).take() };
                Err((op, err))
            }
        }
    }
}

/// Submits `op` on `ring`. On success, returns a reference to its cell (to cancel it
/// by) and what a task dump should say a poll waiting on it waits on; on error, the op.
#[inline]
pub(crate) fn submit_on<T: Handled, R: Resubmit + ?Sized>(
    ring: &R,
    op: T,
) -> Result<(CellHandle, PendingOp), (T, io::Error)> {
    let (ring_ref, ours) = new_handled(op);
    // The build runs before the SQE is queued, so the cell is not shared yet.
    // SAFETY: so nobody else touches its data while `build` reads it.
    let build = || unsafe { HandledCell::<T>::of(&ours).build() };
    match super::submit_built(ring, build, ring_ref) {
        Ok(pending) => Ok((ours, pending)),
        Err((err, ring_ref)) => {
            drop(ring_ref);
            // The submission failed and the ring let go of its reference; the kernel
            // never saw the data.
            // SAFETY: so ours is the only reference left.
            let op = unsafe { HandledCell::<T>::of(&ours).take() };
            Err((op, err))
        }
    }
}

/// A cell for handled op `op`, with two references: one the ring takes with the SQE,
/// and the caller's.
pub(super) fn new_handled<T: Handled>(op: T) -> (CellHandle, CellHandle) {
    // Mutation point: one reference for two handles lets the caller's drop free the
    // cell under the ring's handler.
    let refs = if mutation!("handled_refs") { 1 } else { 2 };
    let cell = new_cell(op, refs);
    let ptr = cell.ptr;
    std::mem::forget(cell);
    (CellHandle { ptr }, CellHandle { ptr })
}

/// A cell for handled op `op` holding `refs` references, the first of them returned.
fn new_cell<T: Handled>(op: T, refs: u32) -> CellHandle {
    let ptr = cache::alloc(Layout::new::<HandledCell<T>>()).cast::<HandledCell<T>>();
    // SAFETY: a fresh block with the size and alignment of a `HandledCell<T>`.
    unsafe {
        ptr.as_ptr().write(HandledCell {
            header: Header::new(&HandledCell::<T>::VTABLE, refs),
            data: UnsafeCell::new(Some(op)),
        })
    };
    CellHandle { ptr: ptr.cast() }
}

/// A handled op's cell.
#[repr(C)]
struct HandledCell<T> {
    header: Header,
    /// The op. `None` only once taken back from a failed submission.
    data: UnsafeCell<Option<T>>,
}

impl<T: Handled> HandledCell<T> {
    const VTABLE: VTable = VTable {
        multishot: false,
        release: Self::release,
        dealloc: Self::dealloc,
        buf_select: Some(Self::buf_select),
        handler: Some(Self::handle),
    };

    fn of(header: &Header) -> &HandledCell<T> {
        // The table that leads here is a `HandledCell<T>`'s.
        // SAFETY: so `header` is the first field of a `HandledCell<T>`.
        unsafe { &*(header as *const Header).cast::<HandledCell<T>>() }
    }

    /// [`HandledCell::of`] through a pointer to the header.
    ///
    /// # Safety
    /// `ptr` is a `HandledCell<T>`'s header, alive for `'a` (a reference is held).
    unsafe fn of_ptr<'a>(ptr: NonNull<Header>) -> &'a HandledCell<T> {
        // SAFETY: guaranteed by the caller.
        Self::of(unsafe { ptr.as_ref() })
    }

    /// # Safety
    /// Only before the cell is shared, once.
    unsafe fn build(&self) -> squeue::Entry {
        // SAFETY: guaranteed by the caller: nobody else touches the data.
        self.data.with_mut(|data| unsafe {
            (*data)
                .as_mut()
                .expect("a handled op's data is present until it is dropped")
                .build()
        })
    }

    /// # Safety
    /// Only after a failed submission, by the only holder of the cell.
    unsafe fn take(&self) -> T {
        // SAFETY: guaranteed by the caller.
        let op = self.data.with_mut(|data| unsafe { (*data).take() });
        op.expect("a handled op's data is taken back once")
    }

    /// # Safety
    /// Only by the ring that owns the op, one CQE at a time.
    unsafe fn handle(header: &Header, ring: &dyn Resubmit, cqe: Cqe, buf_start: u32, last: bool) {
        let dispatch = Dispatch { ring };
        // The data is the owner's alone while the op is in flight (module docs), and no
        // other CQE of it is being handled. The handler runs inside the cell's access, so
        // the loom models see it as one.
        Self::of(header).data.with_mut(|data| {
            // SAFETY: so this `&mut` is the only reference to it.
            if let Some(op) = unsafe { (*data).as_mut() } {
                op.on_cqe(&dispatch, cqe, buf_start, last);
            }
        });
    }

    /// Never called: nobody orphans a handled op, so ORPHANED is never set.
    unsafe fn release(_header: &Header, _state: u32) {}

    /// # Safety
    /// Only by the owner, while the op is in flight (the ring asks before it pushes the
    /// SQE and at each CQE, never while the handler runs).
    unsafe fn buf_select(header: &Header) -> Option<&BufSelect> {
        let data = &Self::of(header).data;
        // SAFETY: guaranteed by the caller: no `&mut` to the data is alive.
        let op = data.with_mut(|data| unsafe { (*data).as_ref() });
        op.and_then(|op| op.buf_select())
    }

    /// # Safety
    /// The last reference to the cell is gone.
    unsafe fn dealloc(ptr: NonNull<Header>) {
        let ptr = ptr.cast::<HandledCell<T>>();
        // The data is taken through its cell so loom sees the free ordered after every
        // access.
        // SAFETY: no reference is left, so nobody else touches the cell.
        unsafe {
            drop(ptr.as_ref().data.with_mut(|data| (*data).take()));
            cache::free(ptr.cast(), Layout::new::<HandledCell<T>>());
        }
    }
}
