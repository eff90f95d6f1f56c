//! The task allocation: one `Cell<F, S>` per task, reached through a type-erased header.
//!
//! ```text
//! Cell<F, S> (repr(C), one allocation from cell_pool.rs)
//! ├── Header   state word, vtable, id, spawn location,  ← RawTask points here
//! │           registry slot, the scheduler's stamps
//! ├── Core     scheduler handle, Stage: Running(F) | Finished(output) | Consumed
//! └── Trailer  the JoinHandle's waker
//! ```
//!
//! The header is first, so a pointer to the cell is a pointer to the header; the vtable's
//! functions are monomorphized for `F` and `S` and know where the core and trailer are.

use std::alloc::Layout;
use std::future::Future;
use std::panic::Location;
use std::ptr::NonNull;
// Not loom atomics: the stamps are statistics read by dumps and metrics, not part of
// any protocol a model checks.
use std::sync::atomic::{AtomicU16, AtomicU64};
use std::task::Waker;

use super::cell_pool;
use super::state::State;
use super::{Id, JoinError, Schedule};
use crate::loom::sync::{AtomicBool, AtomicU32, UnsafeCell};

/// The part of a task every party reads. Kept to 56 bytes so that the whole cell of a
/// small task (header, scheduler handle, future-or-output, join waker) stays within 120
/// bytes: glibc serves and frees such blocks from its fastbins, without taking an arena
/// lock even when another thread frees them — and a task spawned on one worker and
/// completed on another is the common case. 8 bytes more made spawn_many_local ~1.8x
/// slower here (glibc 2.41, 2 workers). Data only dumps read (spawn time, name) lives
/// in the registry entry instead (`owned.rs`), and `JoinError` is two words.
pub(crate) struct Header {
    pub state: State,
    pub vtable: &'static Vtable,
    pub id: Id,
    /// Where the task was spawned (`#[track_caller]` through the spawn path), for the
    /// monitor's stuck-task report and the dump.
    pub location: &'static Location<'static>,
    /// Slot of this task in the owned-task registry (its key in the shard's slab;
    /// `u32::MAX`: not registered), written under the shard's lock.
    pub owned_key: AtomicU32,
    /// Index of the worker that polled it last; `u16::MAX` until polled.
    pub last_worker: AtomicU16,
    /// Set once the task is no longer counted among the live tasks (it completed, or
    /// shutdown drained it from the registry): whoever sets it decrements the count, so
    /// it is decremented exactly once. Starts set; registration clears it.
    pub counted_out: AtomicBool,
    /// Clock ticks (`observe/clock.rs`) of the task's latest scheduling event: when it
    /// was made runnable (spawned or woken; written by the scheduler) until a worker
    /// starts polling it, then the start of that poll (written by the worker, which
    /// first reads the wake stamp for the scheduling-latency histogram). So a dump reads
    /// "runnable since" for a scheduled task and "last polled at" for the others. The
    /// queue hand-off orders the scheduler's write before the worker's read.
    pub stamp: AtomicU64,
    /// What its latest poll left it waiting on (`observe/wait.rs` encoding, 0: not a
    /// uringo op, timer or join handle). Cleared at the start of each poll.
    pub wait: AtomicU64,
}

pub(crate) struct Vtable {
    /// Polls (or cancels) the task; consumes the caller's `Notified` reference.
    pub poll: unsafe fn(NonNull<Header>),
    /// Hands a `Notified` (reference already counted) to the task's scheduler.
    pub schedule: unsafe fn(NonNull<Header>),
    /// Frees the allocation; the reference count is zero.
    pub dealloc: unsafe fn(NonNull<Header>),
    /// Moves the output into `*dst` (a `Poll<Result<T, JoinError>>`) if complete, else
    /// registers the waker.
    pub try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// The `JoinHandle` is dropped; releases its reference.
    pub drop_join_handle: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: cancels the task if idle, marks it cancelled otherwise.
    pub shutdown: unsafe fn(NonNull<Header>),
}

#[repr(C)]
pub(crate) struct Cell<F: Future, S> {
    pub header: Header,
    pub core: Core<F, S>,
    pub trailer: Trailer,
}

pub(crate) struct Core<F: Future, S> {
    pub scheduler: S,
    /// Accessed only by the party holding RUNNING, or by the `JoinHandle` once COMPLETE
    /// is set and JOIN_INTEREST says it wants the output.
    pub stage: UnsafeCell<Stage<F>>,
}

pub(crate) enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

pub(crate) struct Trailer {
    /// The JoinHandle's waker; who may touch it is decided by JOIN_WAKER (state.rs).
    pub waker: UnsafeCell<Option<Waker>>,
}

impl<F: Future, S: Schedule> Cell<F, S> {
    pub(crate) fn new(
        future: F,
        scheduler: S,
        id: Id,
        location: &'static Location<'static>,
    ) -> Self {
        Cell {
            header: Header {
                state: State::new(),
                vtable: &Self::VTABLE,
                id,
                location,
                owned_key: AtomicU32::new(u32::MAX),
                last_worker: AtomicU16::new(u16::MAX),
                counted_out: AtomicBool::new(true),
                stamp: AtomicU64::new(0),
                wait: AtomicU64::new(0),
            },
            core: Core {
                scheduler,
                stage: UnsafeCell::new(Stage::Running(future)),
            },
            trailer: Trailer {
                waker: UnsafeCell::new(None),
            },
        }
    }

    /// What `cell_pool.rs` allocates for the cell (a small one gets a slot whose cache
    /// lines no other task shares).
    pub(crate) const LAYOUT: Layout = Layout::new::<Self>();

    const VTABLE: Vtable = Vtable {
        poll: super::harness::poll::<F, S>,
        schedule: super::harness::schedule::<F, S>,
        dealloc: super::harness::dealloc::<F, S>,
        try_read_output: super::harness::try_read_output::<F, S>,
        drop_join_handle: super::harness::drop_join_handle::<F, S>,
        shutdown: super::harness::shutdown::<F, S>,
    };
}

/// A type-erased, non-owning pointer to a task. Whoever holds one must also hold (or
/// account for) a reference.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

// SAFETY: a RawTask is only a pointer; the task it points to is Send (its future and
// output are Send) and all shared access goes through the atomic state word.
unsafe impl Send for RawTask {}
// SAFETY: as above.
unsafe impl Sync for RawTask {}

impl RawTask {
    pub(crate) fn new<F: Future, S: Schedule>(
        future: F,
        scheduler: S,
        id: Id,
        location: &'static Location<'static>,
    ) -> RawTask {
        let ptr = cell_pool::alloc(Cell::<F, S>::LAYOUT).cast::<Cell<F, S>>();
        // SAFETY: `ptr` is fresh memory of the cell's layout, ours alone.
        unsafe { ptr.write(Cell::new(future, scheduler, id, location)) };
        RawTask { ptr: ptr.cast() }
    }

    /// # Safety
    /// `ptr` must point at the header of a live task.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header_ptr(self) -> NonNull<Header> {
        self.ptr
    }

    pub(crate) fn header(&self) -> &Header {
        // A RawTask is only used while its holder keeps a reference.
        // SAFETY: so the allocation is alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn state(&self) -> &State {
        &self.header().state
    }

    pub(crate) fn id(&self) -> Id {
        self.header().id
    }

    /// # Safety
    /// The caller gives up one reference (a `Notified`'s).
    pub(crate) unsafe fn poll(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.poll)(self.ptr) }
    }

    /// # Safety
    /// The caller hands over one reference to become the scheduled `Notified`.
    pub(crate) unsafe fn schedule(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.schedule)(self.ptr) }
    }

    /// # Safety
    /// The reference count must be zero.
    pub(crate) unsafe fn dealloc(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.dealloc)(self.ptr) }
    }

    /// # Safety
    /// `dst` must point at a `Poll<Result<T, JoinError>>` where `T` is the task's
    /// output type; only the `JoinHandle` calls this.
    pub(crate) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// # Safety
    /// Only the `JoinHandle`, once, on drop.
    pub(crate) unsafe fn drop_join_handle(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.drop_join_handle)(self.ptr) }
    }

    /// # Safety
    /// The caller holds a reference for the duration of the call.
    pub(crate) unsafe fn shutdown(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// Drops one reference, freeing the task if it was the last.
    pub(crate) fn drop_reference(self) {
        if self.state().ref_dec() {
            // SAFETY: that was the last reference.
            unsafe { self.dealloc() }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// See `Header`: a task with a small future must fit a 120-byte block.
    #[test]
    fn a_small_task_fits_a_glibc_fastbin_block() {
        assert!(std::mem::size_of::<Header>() <= 56);
        type Small = std::future::Ready<[u64; 2]>;
        type Sched = crate::loom::sync::Arc<crate::scheduler::Shared>;
        let size = std::mem::size_of::<Cell<Small, Sched>>();
        assert!(
            size <= 120,
            "a task with a 24-byte future takes {size} bytes"
        );
    }
}
