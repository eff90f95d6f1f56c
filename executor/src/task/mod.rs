//! Tasks: spawn them, join them (one by one or as a [`JoinSet`]), abort them, let them
//! yield, give them task-local values ([`task_local!`](crate::task_local)).
//!
//! A task is one allocation holding its header, future and output
//! (`runtime/task/` has the machinery: state word, wakers, registry); this module is
//! its public face.

mod builder;
mod join_set;
mod task_local;

use std::future::Future;

pub use crate::runtime::task::{
    AbortHandle, Id, JoinError, JoinHandle, TaskDump, TaskGroup, TaskInfo, TaskState, WaitingOn,
};
pub use builder::Builder;
pub use join_set::JoinSet;
pub use task_local::{AccessError, LocalKey};

/// Futures this module returns, for naming their types.
pub mod futures {
    pub use super::task_local::TaskLocalFuture;
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
    let location = std::panic::Location::caller();
    crate::runtime::context::with_current_handle(|handle| match handle {
        Some(handle) => handle.spawn_at(future, location),
        None => {
            // Panics with the message (and at the caller) `Handle::current` gives.
            let _ = crate::Handle::current();
            unreachable!("no runtime is current")
        }
    })
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
