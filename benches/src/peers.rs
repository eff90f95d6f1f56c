//! The two peers behind one tiny trait, so a scheduler shape is written once and both
//! runtimes run exactly the same code: any difference in the figures is the runtime's.
//!
//! Shapes that cannot be written generically (I/O, where uringo's completion-based API
//! differs from tokio's readiness-based one) skip this trait and give the runner two
//! plain functions instead; see [`crate::runner::Shape`].

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// What a scheduler shape needs from a runtime. Implemented for [`uringo::Runtime`] and
/// [`tokio::runtime::Runtime`] by forwarding to each one's own API, with no wrapping,
/// boxing or extra allocation on either side.
pub trait Rt: Sized + 'static {
    /// The runtime's join handle for a task of output `T`.
    type Join<T: Send + 'static>: Future<Output = Result<T, Self::JoinError>> + Send + 'static;
    /// Why a task did not complete.
    type JoinError: Debug;

    /// Spawns from outside the runtime (the benchmark's main thread): the task goes
    /// through the runtime's global queue.
    fn spawn_remote<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs `future` to completion on the calling thread.
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// Spawns from inside a task of this runtime (`uringo::spawn` / `tokio::spawn`):
    /// the task goes to the spawning worker's own queue.
    fn spawn_local<F>(future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// The runtime's `yield_now`.
    fn yield_now() -> impl Future<Output = ()> + Send;

    /// The runtime's `sleep_until` (its own timer implementation).
    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send;

    /// The runtime's `timeout`; `Err(())` when the deadline passed first.
    fn timeout<F: Future + Send>(
        d: Duration,
        f: F,
    ) -> impl Future<Output = Result<F::Output, ()>> + Send;

    /// Cancels the task behind `join`.
    fn abort<T: Send + 'static>(join: &Self::Join<T>);
}

impl Rt for uringo::Runtime {
    type Join<T: Send + 'static> = uringo::JoinHandle<T>;
    type JoinError = uringo::JoinError;

    fn spawn_remote<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        uringo::Runtime::block_on(self, future)
    }

    fn spawn_local<F>(future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        uringo::spawn(future)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        uringo::task::yield_now()
    }

    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send {
        uringo::time::sleep_until(deadline)
    }

    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Result<F::Output, ()> {
        uringo::time::timeout(d, f).await.map_err(drop)
    }

    fn abort<T: Send + 'static>(join: &Self::Join<T>) {
        join.abort();
    }
}

impl Rt for tokio::runtime::Runtime {
    type Join<T: Send + 'static> = tokio::task::JoinHandle<T>;
    type JoinError = tokio::task::JoinError;

    fn spawn_remote<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        tokio::runtime::Runtime::block_on(self, future)
    }

    fn spawn_local<F>(future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(future)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }

    fn sleep_until(deadline: Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(deadline.into())
    }

    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Result<F::Output, ()> {
        tokio::time::timeout(d, f).await.map_err(drop)
    }

    fn abort<T: Send + 'static>(join: &Self::Join<T>) {
        join.abort();
    }
}
