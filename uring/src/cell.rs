//! Completion cells: where a CQE meets the future waiting for it.
//!
//! An op's task may be stolen by another worker between submission and completion
//! (design invariant 1), so the place the result lands must be shareable across
//! threads. Each in-flight op owns one `Arc` allocation holding its state word
//! ([`crate::state`]), its result, its waker and its data (buffers, socket addresses,
//! paths: everything the kernel reads or writes). The ring's slab holds one reference
//! until the final CQE and the waiting future holds the other, so whichever side lets
//! go last frees the data — and the slab never lets go before the kernel has.

use std::io;
use std::task::{Context, Poll};

use crossbeam_queue::SegQueue;

use crate::atomic_waker::AtomicWaker;
use crate::buf_ring::BufSelect;
use crate::cqe::Cqe;
use crate::operation::{MultishotOperation, Operation};
use crate::state::{CANCEL_REQUESTED, COMPLETE, MORE_SEEN, NOT_SUBMITTED, ORPHANED};
use crate::sync::{AtomicI32, AtomicU32, AtomicU64, Ordering, UnsafeCell};

/// The type-erased face of a cell, as the ring owner sees it: the slab stores
/// `Arc<dyn Completion>` keyed by user_data.
pub(crate) trait Completion: Send + Sync {
    /// The user_data this op was submitted with (its slab key).
    fn key(&self) -> u64;
    /// Records the key; called by the owner before the SQE is pushed.
    fn set_key(&self, key: u64);
    /// Records one CQE. `last` is false while the kernel promises more CQEs
    /// (`IORING_CQE_F_MORE`). Runs on the owner thread.
    fn complete(&self, cqe: Cqe, last: bool);
    /// Completes an op whose SQE never reached the kernel, because of `err`. Runs on
    /// the owner thread, or on any thread once the ring is closed.
    fn fail_unsubmitted(&self, err: &io::Error);
    /// Marks that a cancel has been requested. Returns false when one already was, or
    /// when the op has completed (so there is nothing to cancel).
    fn mark_cancel(&self) -> bool;
    /// The buffer pool the op selects from, if any (multishot ops only, see
    /// [`MultishotOperation::buf_select`]).
    fn buf_select(&self) -> Option<&BufSelect> {
        None
    }
}

/// Shared state of a single-shot op.
pub(crate) struct OpCell<T> {
    state: AtomicU32,
    result: AtomicI32,
    flags: AtomicU32,
    key: AtomicU64,
    waker: AtomicWaker,
    /// The op's data. Owned by the submitter until the SQE is pushed, by the kernel until
    /// the final CQE, then by whichever party the state word names (see `state.rs`).
    data: UnsafeCell<Option<T>>,
}

// SAFETY: `data` is only accessed by the one party the state protocol gives it to (see
// the field doc); everything else is atomic. `T: Send` lets the data move to that party.
unsafe impl<T: Send> Sync for OpCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for OpCell<T> {}

impl<T: Operation> OpCell<T> {
    pub(crate) fn new(data: T) -> Self {
        Self {
            state: AtomicU32::new(0),
            result: AtomicI32::new(0),
            flags: AtomicU32::new(0),
            key: AtomicU64::new(u64::MAX),
            waker: AtomicWaker::new(),
            data: UnsafeCell::new(Some(data)),
        }
    }

    /// Builds the SQE from the data at its final address.
    ///
    /// # Safety
    /// Must be called before the op is visible to the owner or the kernel (nobody else
    /// touches `data` yet), at most once.
    pub(crate) unsafe fn build_sqe(&self) -> io_uring::squeue::Entry {
        // SAFETY: guaranteed by the caller: the submitter has exclusive access.
        self.data.with_mut(|data| unsafe {
            (*data)
                .as_mut()
                .expect("op data is present until completion")
                .build()
        })
    }

    /// Takes the data back when the op could not be submitted at all.
    ///
    /// # Safety
    /// Only before the SQE was handed to the ring (the kernel never saw the data).
    pub(crate) unsafe fn take_unsubmitted(&self) -> T {
        // SAFETY: guaranteed by the caller.
        self.data
            .with_mut(|data| unsafe { (*data).take() })
            .expect("op data is present until completion")
    }

    /// Waiter side: returns the output once the final CQE is in.
    pub(crate) fn poll_complete(&self, cx: &mut Context<'_>) -> Poll<T::Output> {
        if self.state.load(Ordering::Acquire) & COMPLETE == 0 {
            self.waker.register(cx.waker());
            if self.state.load(Ordering::Acquire) & COMPLETE == 0 {
                return Poll::Pending;
            }
        }
        let state = self.state.load(Ordering::Acquire);
        // SAFETY: COMPLETE is set (Acquire pairs with the owner's AcqRel), so the owner
        // and the kernel are done with the data; the waiter is its only user now.
        let data = self.data.with_mut(|data| unsafe { (*data).take() });
        let data = data.expect("op polled after it returned Ready");
        Poll::Ready(if state & NOT_SUBMITTED != 0 {
            data.not_submitted(self.submit_error())
        } else {
            data.complete(self.cqe())
        })
    }

    /// Waiter side, on drop: gives up the result. Returns true when the op is still in
    /// flight, so the caller should request its cancellation.
    pub(crate) fn orphan(&self) -> bool {
        drop(self.waker.take());
        let prev = self.state.fetch_or(ORPHANED, Ordering::AcqRel);
        // Mutation point: not checking COMPLETE frees data the kernel owns.
        let prev = if mutation!("orphan_check") {
            prev | COMPLETE
        } else {
            prev
        };
        if prev & COMPLETE != 0 {
            // The CQE came in but nobody took it: we release what it produced.
            // SAFETY: COMPLETE and ORPHANED are both set and we set the second one: the
            // data is ours alone.
            self.release(prev);
            return false;
        }
        true
    }

    /// Releases the data of a completed op nobody waits for. Only the party that set
    /// the second of COMPLETE and ORPHANED calls it, with the state it saw.
    fn release(&self, state: u32) {
        // SAFETY: guaranteed by the caller: the data is ours alone.
        let Some(data) = self.data.with_mut(|data| unsafe { (*data).take() }) else {
            return;
        };
        if state & NOT_SUBMITTED != 0 {
            drop(data.not_submitted(self.submit_error()));
        } else {
            data.orphaned(self.cqe());
        }
    }

    /// Why the SQE never reached the kernel (recorded as a CQE result).
    fn submit_error(&self) -> io::Error {
        io::Error::from_raw_os_error(-self.result.load(Ordering::Relaxed))
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    fn cqe(&self) -> Cqe {
        Cqe {
            result: self.result.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
        }
    }
}

impl<T: Operation> Completion for OpCell<T> {
    fn key(&self) -> u64 {
        self.key.load(Ordering::Relaxed)
    }

    fn set_key(&self, key: u64) {
        self.key.store(key, Ordering::Relaxed);
    }

    fn complete(&self, cqe: Cqe, last: bool) {
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
        let prev = self.state.fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & ORPHANED != 0 {
            // The waiter is gone (ORPHANED) and the kernel is done (final CQE): the data
            // is ours alone.
            self.release(prev | COMPLETE);
        } else {
            self.waker.wake();
        }
    }

    fn fail_unsubmitted(&self, err: &io::Error) {
        self.result
            .store(Cqe::from_error(err).result, Ordering::Relaxed);
        let prev = self
            .state
            .fetch_or(COMPLETE | NOT_SUBMITTED, Ordering::AcqRel);
        if prev & ORPHANED != 0 {
            // The waiter is gone and the kernel never had the data: it is ours alone.
            self.release(prev | COMPLETE | NOT_SUBMITTED);
        } else {
            self.waker.wake();
        }
    }

    fn mark_cancel(&self) -> bool {
        let prev = self.state.fetch_or(CANCEL_REQUESTED, Ordering::AcqRel);
        prev & (CANCEL_REQUESTED | COMPLETE) == 0
    }
}

/// Shared state of a multishot op: a queue of CQEs instead of one result.
pub(crate) struct MultishotCell<T> {
    state: AtomicU32,
    key: AtomicU64,
    items: SegQueue<Cqe>,
    waker: AtomicWaker,
    /// Anything the op pins for its whole life (none of the current multishot ops needs
    /// more than an fd, but the data stays alive until the final CQE regardless).
    data: T,
}

impl<T: MultishotOperation> MultishotCell<T> {
    pub(crate) fn new(data: T) -> Self {
        Self {
            state: AtomicU32::new(0),
            key: AtomicU64::new(u64::MAX),
            items: SegQueue::new(),
            waker: AtomicWaker::new(),
            data,
        }
    }

    pub(crate) fn build_sqe(&self) -> io_uring::squeue::Entry {
        self.data.build()
    }

    /// Makes an item of a CQE that did not come from the kernel (a submission error).
    pub(crate) fn item_for(&self, cqe: Cqe) -> T::Item {
        self.data.item(cqe)
    }

    /// Waiter side: the next item, `None` once the final CQE has been consumed.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<T::Item>> {
        if let Some(cqe) = self.items.pop() {
            return Poll::Ready(Some(self.data.item(cqe)));
        }
        self.waker.register(cx.waker());
        // The owner pushes before it sets COMPLETE, so after seeing COMPLETE one more pop
        // finds anything pushed with the final CQE.
        let complete = self.state.load(Ordering::Acquire) & COMPLETE != 0;
        match self.items.pop() {
            Some(cqe) => Poll::Ready(Some(self.data.item(cqe))),
            None if complete => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Waiter side, on drop. Returns true when the caller should request cancellation.
    pub(crate) fn orphan(&self) -> bool {
        drop(self.waker.take());
        let prev = self.state.fetch_or(ORPHANED, Ordering::AcqRel);
        self.release_items();
        prev & COMPLETE == 0
    }

    fn release_items(&self) {
        while let Some(cqe) = self.items.pop() {
            self.data.orphaned_item(cqe);
        }
    }
}

impl<T: MultishotOperation> Completion for MultishotCell<T> {
    fn key(&self) -> u64 {
        self.key.load(Ordering::Relaxed)
    }

    fn buf_select(&self) -> Option<&BufSelect> {
        self.data.buf_select()
    }

    fn set_key(&self, key: u64) {
        self.key.store(key, Ordering::Relaxed);
    }

    fn fail_unsubmitted(&self, err: &io::Error) {
        self.complete(Cqe::from_error(err), true);
    }

    fn complete(&self, cqe: Cqe, last: bool) {
        self.items.push(cqe);
        // An RMW even for intermediate CQEs: it orders the push before the waiter's
        // `orphan` (or makes us see ORPHANED), so an item is never stranded.
        let prev = self
            .state
            .fetch_or(if last { COMPLETE } else { 0 }, Ordering::AcqRel);
        if prev & ORPHANED != 0 {
            self.release_items();
        } else {
            self.waker.wake();
        }
    }

    fn mark_cancel(&self) -> bool {
        let prev = self.state.fetch_or(CANCEL_REQUESTED, Ordering::AcqRel);
        prev & (CANCEL_REQUESTED | COMPLETE) == 0
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! Where a CQE meets the future waiting for it. The op's data (the buffer the kernel
    //! writes) is released exactly once, and only after the final CQE, whoever goes
    //! last: the waiter that takes the output, the waiter that drops the future
    //! (orphan), or the owner's CQE after an orphan.
    //!
    //! The buffer is a loom cell that the "kernel" (the owner thread, just before it
    //! reaps the CQE) writes and that releasing the data writes too, so loom flags any
    //! release not ordered after the kernel's write. Mutation `orphan_check` (the
    //! orphaning waiter releases the data without checking COMPLETE) frees a buffer the
    //! kernel still writes.

    use std::sync::Arc as StdArc;
    use std::task::{Context, Poll, Waker};

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    use super::{Completion, OpCell};
    use crate::cqe::Cqe;
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
                // SAFETY: loom checks this access is exclusive and ordered after the
                // kernel's.
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

    struct Setup {
        cell: StdArc<OpCell<Buf>>,
        kernel: Arc<Mem>,
        released: Arc<AtomicUsize>,
    }

    fn setup() -> Setup {
        let kernel = Arc::new(Mem(UnsafeCell::new(0u8)));
        let released = Arc::new(AtomicUsize::new(0));
        let cell = StdArc::new(OpCell::new(Buf {
            mem: kernel.clone(),
            released: released.clone(),
        }));
        Setup {
            cell,
            kernel,
            released,
        }
    }

    /// The ring owner: the kernel fills the buffer, then the owner reaps the final CQE.
    fn spawn_owner(cell: StdArc<OpCell<Buf>>, kernel: Arc<Mem>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            kernel.0.with_mut(|p| {
                // SAFETY: the kernel owns the buffer until the CQE (loom checks it).
                unsafe { *p = 7 }
            });
            drop(kernel);
            cell.complete(
                Cqe {
                    result: 1,
                    flags: 0,
                },
                true,
            );
        })
    }

    #[test]
    fn orphan_racing_the_cqe_releases_exactly_once() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.cell.clone(), s.kernel);
            s.cell.orphan();
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
        });
    }

    #[test]
    fn cqe_racing_a_poll_wakes_the_waiter() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.cell.clone(), s.kernel);
            let out = loom::future::block_on(std::future::poll_fn(|cx| s.cell.poll_complete(cx)));
            assert_eq!(out, 7);
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
        });
    }

    /// The future is polled on one worker, then its task is stolen and the future
    /// dropped on another, while the owner reaps the CQE: the data is released once,
    /// after the CQE.
    #[test]
    fn poll_then_drop_on_another_thread_vs_cqe() {
        model(|| {
            let s = setup();
            let owner = spawn_owner(s.cell.clone(), s.kernel);
            let first = {
                let cell = s.cell.clone();
                thread::spawn(move || cell.poll_complete(&mut Context::from_waker(Waker::noop())))
            };
            match first.join().unwrap() {
                Poll::Ready(out) => assert_eq!(out, 7),
                // The task moved to this thread, which drops the future.
                Poll::Pending => {
                    s.cell.orphan();
                }
            }
            owner.join().unwrap();
            assert_eq!(s.released.load(SeqCst), 1);
        });
    }
}
