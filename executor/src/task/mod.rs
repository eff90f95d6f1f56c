//! Tasks: one allocation each, a state word that decides every race, wakers without
//! allocation, and the handles that point at them.
//!
//! | handle | holds a reference | who has it |
//! |---|---|---|
//! | `Notified` | yes | a run queue (at most one per task) |
//! | `Task` | yes | the owned-task registry, until completion (or, if the `JoinHandle` still wants the output, until it takes it or is dropped) |
//! | [`JoinHandle`] | yes | the spawner |
//! | `Waker` | yes | whatever the task waits on |
//!
//! `state.rs` is the state machine, `raw.rs` the memory layout, `harness.rs` what poll,
//! complete and cancel do, `waker.rs` the wakers, `owned.rs` the registry, `dump.rs` what
//! a dump of the registry shows, `builder.rs` spawning with a name.

mod builder;
pub(crate) mod dump;
mod error;
pub(crate) mod handles;
mod harness;
mod join;
pub(crate) mod owned;
pub(crate) mod raw;
pub(crate) mod state;
mod waker;

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;

pub use builder::Builder;
pub use dump::{TaskDump, TaskGroup, TaskInfo, TaskState, WaitingOn};
pub use error::JoinError;
pub(crate) use handles::{new_task, Notified, Schedule, Task};
pub use join::{AbortHandle, JoinHandle};
pub(crate) use owned::OwnedTasks;
pub(crate) use raw::RawTask;

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

    /// The id of a number that came from [`Id::as_u64`] (`None` for 0).
    pub(crate) fn from_raw(id: u64) -> Option<Id> {
        NonZeroU64::new(id).map(Id)
    }

    /// A chosen id: loom models need the same ids (so the same registry shards) in every
    /// execution they explore, which the global counter of `next` does not give.
    #[cfg(loom)]
    pub(crate) fn from_u64(id: u64) -> Id {
        Id(NonZeroU64::new(id).expect("task ids start at 1"))
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
