//! The runtime: builds the workers, drives `block_on`, shuts everything down.

pub(crate) mod background;
mod blocking;
mod builder;
// The registry is process-wide std state that loom cannot (and need not) model.
pub(crate) mod context;
pub(crate) mod coop;
#[cfg(not(loom))]
mod dump_signal;
pub(crate) mod handle;
pub(crate) mod metrics;
pub(crate) mod task;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

pub use crate::observe::histogram::DurationHistogram;
pub use builder::Builder;
pub use handle::{EnterGuard, Handle, TryCurrentError};
pub use metrics::RuntimeMetrics;

use crate::loom::sync::Arc;
use crate::runtime::task::JoinHandle;
use crate::scheduler::worker::{Worker, WorkerContext};
use crate::scheduler::{queue, Config, Shared};

/// Callbacks run on every runtime thread.
#[derive(Clone, Default)]
pub(crate) struct ThreadHooks {
    pub(crate) on_start: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    pub(crate) on_stop: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
}

/// A uringo runtime: worker threads, each with an io_uring ring and a Go-style run
/// queue, plus a pool for blocking code.
///
/// Dropping it cancels every task (their futures are dropped; in-flight I/O is
/// cancelled and its buffers freed once the kernel is done), then waits for blocking
/// threads up to [`Builder::shutdown_timeout`].
///
/// ```
/// let rt = uringo::Runtime::new()?;
/// let answer = rt.block_on(async {
///     uringo::spawn(async { 21 * 2 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    handle: Handle,
    workers: Vec<std::thread::JoinHandle<()>>,
    shutdown_timeout: Duration,
    schedtrace: Option<background::BackgroundThread>,
    monitor: Option<background::BackgroundThread>,
    #[cfg(not(loom))]
    dump_signal: Option<dump_signal::Registration>,
}

impl Runtime {
    /// A runtime with the default configuration (see [`Builder`]).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    fn from_builder(b: &Builder) -> io::Result<Runtime> {
        crate::observe::wait::install();
        let cpus = allowed_cpus();
        let n = b
            .worker_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pin = b.pin_workers.unwrap_or(n <= cpus.len());
        let config = Config {
            global_queue_interval: b.global_queue_interval,
            event_interval: b.event_interval,
            max_runnext_polls: b.max_runnext_polls,
            poll_timing: b.poll_timing.map(crate::observe::clock::Sampling::one_in),
            task_registry: b.task_registry,
            search_spin: b.search_spin,
            instruments: crate::trace::Instruments::new(
                n,
                b.trace_path
                    .clone()
                    .map(|path| crate::trace::RecorderConfig {
                        path,
                        events_per_worker: b.trace_events_per_worker,
                    })
                    .or_else(|| crate::trace::RecorderConfig::from_env(b.trace_events_per_worker)),
                &b.task_hooks,
            ),
        };
        let (locals, steals): (Vec<_>, Vec<_>) = (0..n).map(|_| queue::local()).unzip();
        #[cfg(not(feature = "test-util"))]
        let clock = crate::time::clock::Clock::System;
        #[cfg(feature = "test-util")]
        let clock = crate::time::clock::Clock::Pausable(std::sync::Arc::new(
            crate::time::clock::PausableClock::new(b.start_paused),
        ));
        let shared = Arc::new(Shared::new(steals, config, clock));
        let blocking = blocking::BlockingPool::new(
            b.max_blocking_threads,
            b.thread_keep_alive,
            format!("{}-blocking", b.thread_name),
            b.hooks.clone(),
        );
        let handle = Handle::new(shared.clone(), blocking);

        let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<()>)>();
        let mut workers = Vec::with_capacity(n);
        for (index, local) in locals.into_iter().enumerate() {
            let handle = handle.clone();
            let ready = ready_tx.clone();
            let cpu = pin
                .then(|| cpus.get(index % cpus.len().max(1)).copied())
                .flatten();
            let ring = b.ring_builder();
            let hooks = b.hooks.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", b.thread_name))
                .spawn(move || worker_main(handle, index, local, ring, cpu, ready, hooks));
            match spawned {
                Ok(thread) => workers.push(thread),
                Err(err) => {
                    shared.begin_shutdown();
                    return Err(err);
                }
            }
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((index, Err(err))) => {
                    tracing::error!(worker = index, %err, "worker could not create its io_uring ring");
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(io::Error::other("a worker thread died during startup"));
                }
            }
        }
        let mut rt = Runtime {
            handle,
            workers,
            shutdown_timeout: b.shutdown_timeout,
            schedtrace: None,
            monitor: None,
            #[cfg(not(loom))]
            dump_signal: None,
        };
        if let Some(err) = failure {
            drop(rt);
            return Err(err);
        }
        if let Some(n) = b.task_count_warning {
            shared
                .next_task_warning
                .store(n.max(1), crate::loom::sync::Ordering::Relaxed);
        }
        // loom cannot model a free-running std thread next to its own.
        #[cfg(not(loom))]
        if let Some(threshold) = b.stuck_poll_threshold {
            rt.monitor = Some(crate::observe::monitor::start(shared.clone(), threshold)?);
        }
        if let Some((interval, detail)) = b.schedtrace.or_else(crate::observe::schedtrace::from_env)
        {
            rt.schedtrace = Some(crate::observe::schedtrace::start(
                rt.handle.clone(),
                interval,
                detail,
            )?);
        }
        #[cfg(not(loom))]
        if let Some(on) = b
            .dump_on_signal
            .map(|(signal, full)| dump_signal::DumpOn { signal, full })
            .or_else(dump_signal::from_env)
        {
            rt.dump_signal = Some(dump_signal::register(&rt.handle, &b.thread_name, on)?);
        }
        tracing::debug!(workers = n, pinned = pin, "uringo runtime started");
        Ok(rt)
    }

    /// A handle that spawns onto this runtime from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task onto the runtime's workers.
    ///
    /// ```
    /// let rt = uringo::Runtime::new()?;
    /// let handle = rt.spawn(async { "done" });
    /// assert_eq!(rt.block_on(handle).unwrap(), "done");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the blocking pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Drives `future` to completion on the calling thread; tasks it spawns run on the
    /// workers. The calling thread has no ring of its own: its I/O is submitted through
    /// a worker's ring.
    ///
    /// # Panics
    /// When called from a thread that already drives uringo tasks (a worker, or inside
    /// another `block_on`).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Counters of what the scheduler did.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    /// Shuts down, waiting up to `timeout` for blocking threads (async tasks are
    /// cancelled, not waited for).
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown_timeout = timeout;
        drop(self);
    }

    /// Shuts down without waiting for blocking threads.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    fn shut_down(&mut self) {
        if !self.workers.is_empty() && context::is_driving() && !std::thread::panicking() {
            panic!(
                "Cannot drop a uringo runtime from a thread that is driving uringo tasks (a \
                 worker thread, or inside `block_on`): shutting down waits for the workers, \
                 which would wait for this thread. Drop it outside the runtime, or move it \
                 to `spawn_blocking`."
            );
        }
        let started = Instant::now();
        #[cfg(not(loom))]
        drop(self.dump_signal.take());
        if let Some(mut trace) = self.schedtrace.take() {
            trace.stop();
        }
        if let Some(mut monitor) = self.monitor.take() {
            monitor.stop();
        }
        let shared = self.handle.shared();
        shared.begin_shutdown();
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("a worker thread panicked during shutdown");
            }
        }
        // Tasks spawned from non-worker threads during shutdown, and injector entries.
        shared.owned.close_and_shutdown_all();
        shared.drain_orphaned_queues();
        if let Some(recorder) = &shared.config.instruments.recorder {
            recorder.write_at_shutdown();
        }
        let blocking_done = self.handle.blocking().shutdown(Some(self.shutdown_timeout));
        tracing::debug!(
            elapsed = ?started.elapsed(),
            blocking_done,
            "uringo runtime shut down"
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

fn worker_main(
    handle: Handle,
    index: usize,
    local: queue::Local<crate::runtime::task::Notified>,
    ring: uringo_uring::RingBuilder,
    cpu: Option<usize>,
    ready: mpsc::Sender<(usize, io::Result<()>)>,
    hooks: ThreadHooks,
) {
    if let Some(cpu) = cpu {
        pin_to_cpu(index, cpu);
    }
    let ring = match ring.build() {
        Ok(ring) => ring,
        Err(err) => {
            let _ = ready.send((index, Err(err)));
            return;
        }
    };
    let shared = handle.shared().clone();
    let _ = shared.remotes[index].ring.set(ring.handle());
    let cx = WorkerContext::new(shared, index, local);
    // Other threads can unpark the worker from here on, before the runtime is handed out.
    let mut worker = Worker::new(&cx, ring);
    let _ = ready.send((index, Ok(())));
    drop(ready);
    if let Some(start) = &hooks.on_start {
        start();
    }
    {
        let _span = tracing::info_span!("worker", index).entered();
        let _driving = context::enter_driving();
        let _current = context::set_current(handle);
        let _worker = context::set_worker(&cx);
        let _ring = worker.driver().enter();
        worker.run();
    }
    // Dropping the ring cancels what is still in flight and waits for the CQEs; wakes
    // that causes go to the (closed) injector, since this is no longer a worker.
    drop(worker);
    drop(cx);
    if let Some(stop) = &hooks.on_stop {
        stop();
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

fn pin_to_cpu(worker: usize, cpu: usize) {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    let result = set
        .set(cpu)
        .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set));
    match result {
        Ok(()) => tracing::debug!(worker, cpu, "worker pinned"),
        Err(err) => tracing::warn!(worker, cpu, %err, "cannot pin worker; running unpinned"),
    }
}

/// Drives a future on the current thread, parking it between polls.
pub(crate) fn block_on_thread<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    /// Unparks the thread; `woken` says a wake came since the last poll, so a future
    /// that woke itself (a yield) is polled again without the thread ever waiting.
    struct Unparker {
        thread: std::thread::Thread,
        woken: std::sync::atomic::AtomicBool,
        /// Paused time counts this thread as a participant (`time/auto_advance.rs`):
        /// the wake makes it active again at once, not when it gets to run.
        #[cfg(feature = "test-util")]
        participant: (Arc<Shared>, crate::time::auto_advance::Participant),
    }
    impl Wake for Unparker {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
            #[cfg(feature = "test-util")]
            self.participant.0.paused_time.wake(&self.participant.1);
            self.thread.unpark();
        }
    }
    let unparker = std::sync::Arc::new(Unparker {
        thread: std::thread::current(),
        woken: std::sync::atomic::AtomicBool::new(false),
        #[cfg(feature = "test-util")]
        participant: (shared.clone(), shared.paused_time.enter()),
    });
    #[cfg(not(feature = "test-util"))]
    let _ = shared;
    /// Stops counting the thread as a participant, even if the future panics.
    #[cfg(feature = "test-util")]
    struct Leave<'a>(&'a Unparker);
    #[cfg(feature = "test-util")]
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            let (shared, who) = &self.0.participant;
            shared.paused_time.leave(who);
        }
    }
    #[cfg(feature = "test-util")]
    let _leave = Leave(&unparker);
    let waker = Waker::from(unparker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = coop::budget(|| future.as_mut().poll(&mut cx)) {
            return output;
        }
        while !unparker
            .woken
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            #[cfg(feature = "test-util")]
            shared.paused_time.wait(shared, &unparker.participant.1);
            if !unparker.woken.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::park();
            }
            #[cfg(feature = "test-util")]
            shared.paused_time.wake(&unparker.participant.1);
        }
    }
}
