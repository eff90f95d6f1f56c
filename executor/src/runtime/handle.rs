//! `Handle`: spawn onto a runtime from anywhere.

use std::fmt;
use std::future::Future;
use std::panic::Location;

use super::blocking::BlockingPool;
use super::{context, RuntimeMetrics};
use crate::loom::sync::{Arc, Ordering};
use crate::runtime::task::{Id, JoinHandle};
use crate::scheduler::Shared;

/// A cloneable, `Send + Sync` reference to a runtime: spawns tasks onto it, enters it,
/// reads its metrics. Obtained with [`Runtime::handle`](super::Runtime::handle) or,
/// inside the runtime, [`Handle::current`].
///
/// ```
/// let rt = uringo::Runtime::new()?;
/// let handle = rt.handle().clone();
/// let from_thread = std::thread::spawn(move || handle.spawn(async { 7 }))
///     .join()
///     .unwrap();
/// assert_eq!(rt.block_on(from_thread).unwrap(), 7);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    blocking: BlockingPool,
}

/// `Handle::try_current` outside a runtime.
#[derive(Debug)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("there is no uringo runtime on this thread (not a worker, not inside block_on or Handle::enter)")
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>, blocking: BlockingPool) -> Handle {
        Handle {
            inner: std::sync::Arc::new(Inner { shared, blocking }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn blocking(&self) -> &BlockingPool {
        &self.inner.blocking
    }

    /// The runtime current on this thread.
    ///
    /// # Panics
    /// Outside a runtime; see [`Handle::try_current`].
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(err) => panic!(
                "{err}: uringo::spawn and Handle::current must be called from a uringo runtime"
            ),
        }
    }

    /// The runtime current on this thread, if any.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current_handle().ok_or(TryCurrentError(()))
    }

    /// Spawns a task onto the runtime. From one of its workers, the task goes to that
    /// worker's runnext slot (it runs next, like a Go `go` statement); from elsewhere,
    /// to the global queue.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(future, None)
    }

    /// Spawns a task onto worker `worker` (`0..workers`): its first poll runs on that
    /// worker, so the I/O it starts there (a listener's multishot accept, say) is on
    /// that worker's ring. One `SO_REUSEPORT` listener per worker is then really one
    /// per ring.
    ///
    /// The task waits in the worker's inbox, which only that worker reads, at the head
    /// of its next tick. After its first poll it is an ordinary task: if it is woken
    /// while that worker is busy, an idle sibling may steal it and poll it there; its
    /// in-flight operations still complete on the ring they were submitted to, and
    /// their completions wake it wherever it is. If the worker is stuck inside another
    /// task's poll, the placed task waits until that poll returns (the monitor reports
    /// the stuck poll; nothing else takes the task).
    ///
    /// # Panics
    ///
    /// If `worker` is not below the runtime's worker count.
    ///
    /// ```
    /// let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
    /// let handle = rt.handle();
    /// let ran_on = rt.block_on(handle.spawn_on(1, async {
    ///     std::thread::current().name().map(str::to_owned)
    /// }));
    /// assert!(ran_on.unwrap().unwrap().ends_with("-1"));
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let workers = self.shared().remotes.len();
        assert!(
            worker < workers,
            "Handle::spawn_on: worker {worker} does not exist (the runtime has {workers})"
        );
        self.spawn_placed(future, None, Some(worker), Location::caller())
    }

    /// `spawn`, with the task's name (`task::Builder`).
    #[track_caller]
    pub(crate) fn spawn_with<F>(&self, future: F, name: Option<Box<str>>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_placed(future, name, None, Location::caller())
    }

    /// `spawn`, recording `location` as where the task was spawned (for `uringo::spawn`,
    /// which calls this inside a closure, where `#[track_caller]` does not reach).
    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_placed(future, None, None, location)
    }

    fn spawn_placed<F>(
        &self,
        future: F,
        name: Option<Box<str>>,
        worker: Option<usize>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        use crate::scheduler::schedule;
        let shared = self.shared();
        let id = Id::next();
        let meta = crate::trace::TaskMeta::new(id, location);
        // One lookup of the spawning worker serves the live count and the placement.
        schedule::with_current_worker(shared, |cx| {
            let init = crate::runtime::task::owned::TaskInit {
                id,
                counted_on: cx.map(|cx| cx.index),
                name,
                spawned_at: crate::observe::clock::recent(),
                location,
            };
            let (join, notified) = shared.owned.bind(future, shared.clone(), init);
            let mark = shared.next_task_warning.load(Ordering::Relaxed);
            if mark != usize::MAX && shared.owned.len() >= mark {
                crate::observe::leak::passed_watermark(shared);
            }
            schedule::spawned(shared, cx, meta, notified, worker);
            join
        })
    }

    /// Every live task with its id, spawn location and state, for finding what a
    /// program is waiting on or leaking (see [`TaskDump`](crate::runtime::task::TaskDump); print
    /// it with `{}` for counts per spawn location, `{:#}` for every task).
    pub fn dump(&self) -> crate::runtime::task::TaskDump {
        let shared = self.shared();
        crate::runtime::task::TaskDump::of(&shared.owned, shared.config.poll_timing.is_some())
    }

    /// Runs a blocking closure on the blocking pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.blocking().spawn(f, self)
    }

    /// Drives `future` on the calling thread (see [`Runtime::block_on`](super::Runtime::block_on)).
    ///
    /// # Panics
    /// When called from a thread that already drives uringo tasks.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driving = context::enter_driving();
        let _current = context::set_current(self.clone());
        let _fallback = self.fallback_ring().map(uringo_uring::set_fallback);
        super::block_on_thread(self.shared(), future)
    }

    /// Makes this runtime current on this thread (for `uringo::spawn` and I/O) until
    /// the guard is dropped.
    pub fn enter(&self) -> EnterGuard {
        EnterGuard {
            _current: context::set_current(self.clone()),
            _fallback: self.fallback_ring().map(uringo_uring::set_fallback),
        }
    }

    /// Counters of what the scheduler did.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(self.clone())
    }

    /// Writes the events recorded so far as `<path>.json` (Chrome Trace Event format,
    /// for Perfetto or `chrome://tracing`) and `<path>.html` (a self-contained
    /// timeline); see [`crate::trace`]. Fails when the runtime was built without
    /// [`Builder::trace_recorder`](crate::Builder::trace_recorder) (or `URINGO_TRACE`).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("uringo-doc-trace-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let rt = uringo::Builder::new()
    ///     .worker_threads(2)
    ///     .trace_recorder(dir.join("at-shutdown"))
    ///     .build()?;
    /// rt.block_on(rt.spawn(async { 1 + 1 })).unwrap();
    /// rt.handle().write_trace(dir.join("now"))?;
    /// assert!(dir.join("now.json").exists() && dir.join("now.html").exists());
    /// # drop(rt);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_trace(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        match &self.shared().config.instruments.recorder {
            Some(recorder) => recorder.write_files(path.as_ref()),
            None => Err(std::io::Error::other(
                "scheduler trace recording is off: enable it with Builder::trace_recorder \
                 or the URINGO_TRACE environment variable",
            )),
        }
    }

    pub(crate) fn fallback_ring(&self) -> Option<uringo_uring::RingHandle> {
        self.shared().fallback_ring()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared().remotes.len())
            .finish_non_exhaustive()
    }
}

/// Keeps a runtime current on this thread; see [`Handle::enter`].
#[must_use = "the runtime stops being current when the guard is dropped"]
pub struct EnterGuard {
    _current: context::SetCurrentGuard,
    _fallback: Option<uringo_uring::FallbackGuard>,
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
