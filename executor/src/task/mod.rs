//! Tasks: one allocation each, a state word that decides every race, wakers without
//! allocation, and the handles that point at them.
//!
//! | handle | holds a reference | who has it |
//! |---|---|---|
//! | [`Notified`] | yes | a run queue (at most one per task) |
//! | [`Task`] | yes | the owned-task registry, until completion |
//! | [`JoinHandle`] | yes | the spawner |
//! | `Waker` | yes | whatever the task waits on |
//!
//! `state.rs` is the state machine, `raw.rs` the memory layout, `harness.rs` what poll,
//! complete and cancel do, `waker.rs` the wakers, `owned.rs` the registry.

mod error;
mod harness;
mod join;
mod owned;
mod raw;
mod state;
mod waker;

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::ptr::NonNull;

pub use error::JoinError;
pub use join::{AbortHandle, JoinHandle};
pub(crate) use owned::OwnedTasks;
pub(crate) use raw::RawTask;

use crate::scheduler::queue::QueueItem;

/// What a task needs from whoever runs it.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// Runs the task soon (it was woken).
    fn schedule(&self, task: Notified);

    /// Runs the task after others (it woke itself during its poll: a yield).
    fn yield_now(&self, task: Notified) {
        self.schedule(task);
    }

    /// The task completed: take it out of the registry, returning the registry's
    /// reference (`None` if it was never registered or shutdown took it already).
    fn release(&self, task: &RawTask) -> Option<Task>;

    /// The task completed or was cancelled (once per task, before `release`): for the
    /// task hooks and the event recorder.
    fn terminated(&self, _task: &RawTask) {}
}

/// A unique task id, in spawn order.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let a = uringo::spawn(async {});
///     let b = uringo::spawn(async {});
///     assert_ne!(a.id(), b.id());
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    pub(crate) fn next() -> Id {
        // Not a loom atomic: ids are not part of any protocol being modelled.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Id(NonZeroU64::new(id).expect("task id space exhausted"))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// A task ready to run: the one queue entry a task has while it is scheduled. Running
/// it consumes it.
pub(crate) struct Notified(RawTask);

impl Notified {
    /// The task's id and spawn location (for the monitor's stuck-task report).
    pub(crate) fn id_and_location(&self) -> (Id, &'static std::panic::Location<'static>) {
        let header = self.0.header();
        (header.id, header.location)
    }

    /// Polls the task (or cancels it, if that was requested).
    pub(crate) fn run(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: we give up the Notified's reference to the poll.
        unsafe { raw.poll() };
    }

    /// Cancels a task that will never run (shutdown of the blocking pool), consuming
    /// this entry's reference.
    pub(crate) fn shutdown(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: our reference is handed to shutdown, which releases it.
        unsafe { raw.shutdown() };
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // A queue entry dropped without running (shutdown): only its reference goes.
        self.0.drop_reference();
    }
}

// SAFETY: into_raw/from_raw move the one reference a Notified owns through the pointer.
unsafe impl QueueItem for Notified {
    fn into_raw(self) -> NonNull<()> {
        let ptr = self.0.header_ptr().cast();
        std::mem::forget(self);
        ptr
    }

    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: the pointer came from `into_raw` and carries its reference.
        Notified(unsafe { RawTask::from_raw(ptr.cast()) })
    }
}

/// The registry's reference to a task.
pub(crate) struct Task(RawTask);

impl Task {
    pub(crate) fn raw(&self) -> RawTask {
        self.0
    }

    /// Cancels the task if idle (see `harness::shutdown`), consuming this reference.
    pub(crate) fn shutdown(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: our reference is handed to shutdown, which releases it.
        unsafe { raw.shutdown() };
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.drop_reference();
    }
}

/// Allocates a task: the registry's handle, its first queue entry, its join handle.
#[track_caller]
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    id: Id,
) -> (Task, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let raw = RawTask::new(future, scheduler, id);
    (Task(raw), Notified(raw), JoinHandle::new(raw))
}

/// Spawns a task onto the current runtime (see [`crate::Handle::spawn`]).
///
/// # Panics
/// Outside a uringo runtime.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = uringo::spawn(async { 1 + 1 });
///     assert_eq!(handle.await.unwrap(), 2);
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::Handle::current().spawn(future)
}

/// Runs a blocking closure on the current runtime's blocking pool.
///
/// # Panics
/// Outside a uringo runtime.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let len = uringo::spawn_blocking(|| std::fs::read("/proc/self/stat").map(|b| b.len()));
///     assert!(len.await.unwrap().unwrap() > 0);
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    crate::Handle::current().spawn_blocking(f)
}

/// Runs `f`, which may block its thread, without stalling the tasks queued on this
/// worker: they are handed to other workers first (tokio's `block_in_place`).
///
/// Unlike tokio, the worker thread itself stays (its io_uring ring cannot move to a
/// replacement thread), so completions of I/O submitted on this worker's ring are
/// delivered when `f` returns; tasks woken meanwhile run on other workers. Prefer
/// [`spawn_blocking`] when the caller can await the result. Outside a worker (in
/// `block_on`, say) this just runs `f`.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let n = uringo::spawn(async {
///         uringo::task::block_in_place(|| std::fs::read("/proc/self/stat").unwrap().len())
///     });
///     assert!(n.await.unwrap() > 0);
/// });
/// ```
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    crate::scheduler::worker::block_in_place(f)
}

/// Yields to the scheduler: the task goes to the back of its worker's queue and other
/// tasks run first.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     uringo::task::yield_now().await;
/// });
/// ```
pub async fn yield_now() {
    struct YieldNow {
        yielded: bool,
    }
    impl Future for YieldNow {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.yielded {
                return std::task::Poll::Ready(());
            }
            self.yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow { yielded: false }.await
}
