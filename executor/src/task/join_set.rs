//! `JoinSet`: a set of tasks joined in the order they complete.
//!
//! The handles sit in a `FuturesUnordered`, whose per-entry wakers put an entry on a
//! ready list when its task completes: `join_next` polls only the handles whose tasks
//! woke them, so joining costs O(1) per completed task, however many are still running.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::{AbortHandle, Id, JoinError, JoinHandle};
use crate::runtime::coop;
use crate::Handle;

/// A set of tasks spawned on a uringo runtime, awaited in the order they complete
/// (tokio's `JoinSet`).
///
/// All tasks must have the same output type `T`. Dropping the set aborts every task
/// still in it; [`detach_all`](JoinSet::detach_all) lets them run on instead.
///
/// ```
/// use uringo::task::JoinSet;
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut set = JoinSet::new();
///     for i in 0..4u64 {
///         set.spawn(async move { i * 10 });
///     }
///     let mut sum = 0;
///     while let Some(res) = set.join_next().await {
///         sum += res.unwrap();
///     }
///     assert_eq!(sum, 60);
/// });
/// ```
pub struct JoinSet<T> {
    tasks: FuturesUnordered<Joining<T>>,
    /// The waker `poll_join_next` last registered: `try_join_next` registers it again,
    /// so a caller that mixes the two keeps its wake-up.
    waker: Option<Waker>,
}

/// A join handle that also yields its task's id.
struct Joining<T>(JoinHandle<T>);

impl<T> Future for Joining<T> {
    type Output = (Id, Result<T, JoinError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.0.id();
        Pin::new(&mut self.0).poll(cx).map(|res| (id, res))
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// ```
    /// let set = uringo::task::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: FuturesUnordered::new(),
            waker: None,
        }
    }

    /// How many tasks are in the set: spawned and not yet joined, whether or not they
    /// have finished.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(async {});
    ///     set.spawn(async {});
    ///     assert_eq!(set.len(), 2);
    ///     set.join_next().await;
    ///     assert_eq!(set.len(), 1);
    /// });
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(async {});
    ///     assert!(!set.is_empty());
    ///     set.join_next().await;
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Aborts every task in the set (see [`JoinHandle::abort`]). They stay in the set:
    /// joining them gives a cancelled [`JoinError`], or the output of a task that
    /// finished first.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(std::future::pending::<()>());
    ///     set.abort_all();
    ///     assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort_all(&mut self) {
        self.tasks.iter().for_each(|joining| joining.0.abort());
    }

    /// Empties the set without aborting its tasks: they run on, and their outputs are
    /// dropped.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let (tx, rx) = std::sync::mpsc::channel();
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(async move { tx.send("still ran").unwrap() });
    ///     set.detach_all();
    ///     drop(set);
    ///     assert_eq!(rx.recv().unwrap(), "still ran");
    /// });
    /// ```
    pub fn detach_all(&mut self) {
        self.tasks.clear();
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns `task` onto the current runtime and adds it to the set; the returned
    /// handle aborts it alone.
    ///
    /// # Panics
    /// Outside a uringo runtime.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     let forever = set.spawn(std::future::pending());
    ///     set.spawn(async { 1 });
    ///     forever.abort();
    ///     let mut outcomes = Vec::new();
    ///     while let Some(res) = set.join_next().await {
    ///         outcomes.push(res.map_err(|e| e.is_cancelled()));
    ///     }
    ///     outcomes.sort();
    ///     assert_eq!(outcomes, [Ok(1), Err(true)]);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.insert(crate::spawn(task))
    }

    /// Spawns `task` onto `handle`'s runtime and adds it to the set.
    ///
    /// ```
    /// let rt = uringo::Runtime::new()?;
    /// let handle = rt.handle().clone();
    /// let mut set = uringo::task::JoinSet::new();
    /// set.spawn_on(async { "from outside" }, &handle);
    /// let out = rt.block_on(set.join_next()).unwrap().unwrap();
    /// assert_eq!(out, "from outside");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&mut self, task: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.insert(handle.spawn(task))
    }

    /// Runs `f` on the current runtime's blocking pool and adds it to the set. Aborting
    /// it cancels it only if it has not started: a running closure cannot be stopped.
    ///
    /// # Panics
    /// Outside a uringo runtime.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn_blocking(|| std::fs::read("/proc/self/stat").map(|b| b.len()));
    ///     assert!(set.join_next().await.unwrap().unwrap().unwrap() > 0);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.insert(crate::spawn_blocking(f))
    }

    /// Runs `f` on `handle`'s blocking pool and adds it to the set.
    ///
    /// ```
    /// let rt = uringo::Runtime::new()?;
    /// let mut set = uringo::task::JoinSet::new();
    /// set.spawn_blocking_on(|| 2 + 2, rt.handle());
    /// assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.insert(handle.spawn_blocking(f))
    }

    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        self.tasks.push(Joining(handle));
        abort
    }

    /// Waits for the next task to finish and returns its output, or why there is none
    /// (it panicked or was cancelled); `None` once the set is empty. Tasks come out in
    /// the order they finish, not the order they were spawned.
    ///
    /// Cancel safe: dropping the future before it completes leaves every task in the
    /// set.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(async { panic!("boom") });
    ///     assert!(set.join_next().await.unwrap().unwrap_err().is_panic());
    ///     assert!(set.join_next().await.is_none());
    /// });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](JoinSet::join_next), with the id of the task that finished.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     let id = set.spawn(async { 5 }).id();
    ///     assert_eq!(set.join_next_with_id().await.unwrap().unwrap(), (id, 5));
    /// });
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// The output of a task that has already finished, without waiting; `None` if no
    /// task has finished (or the set is empty).
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     let task = set.spawn(async { 3 });
    ///     while !task.is_finished() {
    ///         uringo::task::yield_now().await;
    ///     }
    ///     assert_eq!(set.try_join_next().unwrap().unwrap(), 3);
    ///     assert!(set.try_join_next().is_none());
    /// });
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(without_id)
    }

    /// [`try_join_next`](JoinSet::try_join_next), with the id of the task that
    /// finished.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     let task = set.spawn(async { 3 });
    ///     while !task.is_finished() {
    ///         uringo::task::yield_now().await;
    ///     }
    ///     assert_eq!(set.try_join_next_with_id().unwrap().unwrap(), (task.id(), 3));
    /// });
    /// ```
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        let waker = self.waker.clone().unwrap_or_else(|| Waker::noop().clone());
        let mut cx = Context::from_waker(&waker);
        // Not a yield point, so the budget must not turn a finished task into `None`.
        match coop::unconstrained(|| self.tasks.poll_next_unpin(&mut cx)) {
            Poll::Ready(Some((id, res))) => Some(res.map(|output| (id, output))),
            Poll::Ready(None) | Poll::Pending => None,
        }
    }

    /// Aborts every task and waits for all of them to finish; the set is empty after.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(std::future::pending::<()>());
    ///     set.shutdown().await;
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs, in the order they finished.
    ///
    /// # Panics
    /// If a task panicked (with its payload) or was cancelled. Use
    /// [`join_next`](JoinSet::join_next) to handle those cases.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let set: uringo::task::JoinSet<u32> = (1..=3).map(|i| async move { i * i }).collect();
    ///     let mut squares = set.join_all().await;
    ///     squares.sort();
    ///     assert_eq!(squares, [1, 4, 9]);
    /// });
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len());
        while let Some(res) = self.join_next().await {
            match res {
                Ok(output) => outputs.push(output),
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("{err}"),
            }
        }
        outputs
    }

    /// Polls for the next task to finish: `Ready(None)` on an empty set, `Pending`
    /// (with `cx` woken when a task finishes) if none has. For hand-written futures;
    /// see [`join_next`](JoinSet::join_next).
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     set.spawn(async { 8 });
    ///     let out = std::future::poll_fn(|cx| set.poll_join_next(cx)).await;
    ///     assert_eq!(out.unwrap().unwrap(), 8);
    /// });
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|res| res.map(without_id))
    }

    /// [`poll_join_next`](JoinSet::poll_join_next), with the id of the task that
    /// finished.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut set = uringo::task::JoinSet::new();
    ///     let id = set.spawn(async { 8 }).id();
    ///     let out = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
    ///     assert_eq!(out.unwrap().unwrap(), (id, 8));
    /// });
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        self.tasks
            .poll_next_unpin(cx)
            .map(|next| next.map(|(id, res)| res.map(|output| (id, output))))
    }
}

fn without_id<T>(res: Result<(Id, T), JoinError>) -> Result<T, JoinError> {
    res.map(|(_, output)| output)
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

/// Spawns each future onto the current runtime (panics outside one).
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let set: uringo::task::JoinSet<_> = (0..3).map(|i| async move { i }).collect();
///     assert_eq!(set.len(), 3);
/// });
/// ```
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}

/// Spawns each future onto the current runtime (panics outside one).
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut set = uringo::task::JoinSet::new();
///     set.extend((0..3).map(|i| async move { i }));
///     assert_eq!(set.len(), 3);
/// });
/// ```
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for task in iter {
            self.spawn(task);
        }
    }
}
