//! Runtime configuration.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::ThreadHooks;

/// Builds a [`Runtime`](super::Runtime) with non-default settings.
///
/// ```
/// let rt = uringo::Builder::new()
///     .worker_threads(2)
///     .ring_entries(128)
///     .thread_name("my-app")
///     .build()?;
/// assert_eq!(rt.metrics().num_workers(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) worker_threads: Option<usize>,
    pub(crate) pin_workers: Option<bool>,
    pub(crate) ring_entries: u32,
    /// Optional kernel features the worker rings leave unused.
    avoided: Vec<uringo_uring::KernelFeature>,
    pub(crate) global_queue_interval: u32,
    pub(crate) event_interval: u32,
    pub(crate) max_runnext_polls: u32,
    pub(crate) max_blocking_threads: usize,
    pub(crate) thread_keep_alive: Duration,
    pub(crate) thread_name: String,
    pub(crate) hooks: ThreadHooks,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) schedtrace: Option<(Duration, bool)>,
    pub(crate) stuck_poll_threshold: Option<Duration>,
    pub(crate) task_count_warning: Option<usize>,
    pub(crate) trace_path: Option<std::path::PathBuf>,
    pub(crate) trace_events_per_worker: usize,
    pub(crate) task_hooks: crate::trace::TaskHooks,
    /// `None`: off; `Some(n)`: one scheduling event in `n` timed.
    pub(crate) poll_timing: Option<u32>,
    pub(crate) task_registry: bool,
    pub(crate) search_spin: Duration,
    pub(crate) dump_on_signal: Option<(i32, bool)>,
    #[cfg(feature = "test-util")]
    pub(crate) start_paused: bool,
}

/// See [`Builder::search_spin`]: catches most of a sibling's hand-offs in
/// `chained_spawn`, and with the backoff costs no measurable CPU when work arrives
/// sporadically (the `trickle` bench; benches/README.md).
const DEFAULT_SEARCH_SPIN: Duration = Duration::from_micros(5);

/// `URINGO_POLL_TIMING`: `0` turns poll timing off, a number `n` times one scheduling
/// event in `n`; unset or anything else leaves the default (one in 32).
fn poll_timing_from_env(value: Option<String>) -> Option<u32> {
    let default = Some(crate::observe::clock::DEFAULT_SAMPLE);
    match value.as_deref().map(str::trim).map(str::parse::<u32>) {
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        _ => default,
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            worker_threads: None,
            pin_workers: None,
            ring_entries: 256,
            avoided: Vec::new(),
            global_queue_interval: 61,
            event_interval: 61,
            max_runnext_polls: 3,
            max_blocking_threads: 512,
            thread_keep_alive: Duration::from_secs(10),
            thread_name: "uringo-worker".to_string(),
            hooks: ThreadHooks::default(),
            shutdown_timeout: Duration::from_secs(10),
            schedtrace: None,
            stuck_poll_threshold: Some(Duration::from_millis(10)),
            task_count_warning: None,
            trace_path: None,
            trace_events_per_worker: 1 << 16,
            task_hooks: Default::default(),
            poll_timing: poll_timing_from_env(std::env::var("URINGO_POLL_TIMING").ok()),
            task_registry: true,
            search_spin: std::env::var("URINGO_SEARCH_SPIN_NS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map_or(DEFAULT_SEARCH_SPIN, Duration::from_nanos),
            dump_on_signal: None,
            #[cfg(feature = "test-util")]
            start_paused: false,
        }
    }
}

impl Builder {
    /// A builder with the defaults (see each method).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Number of worker threads, each with its own io_uring ring and run queue
    /// (Go's `GOMAXPROCS`). Default: the number of CPUs this process may run on.
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        assert!(n > 0, "worker_threads must be at least 1");
        self.worker_threads = Some(n);
        self
    }

    /// Whether to pin worker `i` to the `i`-th CPU the process may use
    /// (`sched_setaffinity`). Default: on when there are no more workers than CPUs.
    pub fn pin_workers(&mut self, pin: bool) -> &mut Self {
        self.pin_workers = Some(pin);
        self
    }

    /// Leaves an optional kernel feature unused on every worker's ring, even where the
    /// kernel has it: to compare the two paths, or to steer clear of a kernel bug in
    /// the feature. Required features cannot be avoided (the call is ignored for them).
    ///
    /// ```
    /// use uringo::{Builder, KernelFeature};
    ///
    /// let rt = Builder::new()
    ///     .worker_threads(1)
    ///     .avoid_kernel_feature(KernelFeature::RecvBundle)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn avoid_kernel_feature(&mut self, feature: uringo_uring::KernelFeature) -> &mut Self {
        self.avoided.push(feature);
        self
    }

    /// The ring builder each worker uses.
    pub(crate) fn ring_builder(&self) -> uringo_uring::RingBuilder {
        let mut ring = uringo_uring::Ring::builder();
        ring.sq_entries(self.ring_entries);
        for feature in &self.avoided {
            ring.avoid(*feature);
        }
        ring
    }

    /// Submission queue size of each worker's ring (default 256; the CQ is 4× that).
    pub fn ring_entries(&mut self, n: u32) -> &mut Self {
        self.ring_entries = n.max(1);
        self
    }

    /// Every this many ticks a worker takes a task from the global queue before its
    /// own (Go checks every 61 schedticks; default 61).
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn global_queue_interval(&mut self, n: u32) -> &mut Self {
        assert!(n > 0, "global_queue_interval must be at least 1");
        self.global_queue_interval = n;
        self
    }

    /// Every this many ticks a worker reaps its ring even when its queue is not empty
    /// (default 61), so completions are not starved by CPU-bound tasks.
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn event_interval(&mut self, n: u32) -> &mut Self {
        assert!(n > 0, "event_interval must be at least 1");
        self.event_interval = n;
        self
    }

    /// Maximum threads in the `spawn_blocking` pool (default 512).
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        assert!(n > 0, "max_blocking_threads must be at least 1");
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before exiting (default 10 s).
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.thread_keep_alive = d;
        self
    }

    /// Name prefix of the runtime's threads: workers are `{name}-{i}`, blocking threads
    /// `{name}-blocking-{i}` (default `uringo-worker`).
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.thread_name = name.into();
        self
    }

    /// Runs `f` on every runtime thread (workers and blocking threads) when it starts.
    pub fn on_thread_start<F: Fn() + Send + Sync + 'static>(&mut self, f: F) -> &mut Self {
        self.hooks.on_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` on every runtime thread when it stops.
    pub fn on_thread_stop<F: Fn() + Send + Sync + 'static>(&mut self, f: F) -> &mut Self {
        self.hooks.on_stop = Some(Arc::new(f));
        self
    }

    /// How long dropping the runtime waits for blocking threads to finish (default
    /// 10 s). Async tasks are cancelled, not waited for.
    pub fn shutdown_timeout(&mut self, d: Duration) -> &mut Self {
        self.shutdown_timeout = d;
        self
    }

    /// Prints one line of scheduler state to stderr every `interval`, as Go's
    /// `GODEBUG=schedtrace` does, plus a line per worker when `detail` is set. The
    /// environment does the same without code: `URINGO_SCHEDTRACE=<ms>` and
    /// `URINGO_SCHEDTRACE_DETAIL=1` (this method wins over them).
    ///
    /// ```text
    /// SCHED 1000ms: workers=2 searching=0 idle=1 injector=0 runq=[12 0] runnext=[1 0] inflight=[230 4] timers=[1000 3] steals=[0 57] blocking=0/512
    /// ```
    ///
    /// ```
    /// let rt = uringo::Builder::new()
    ///     .schedtrace(std::time::Duration::from_secs(1), false)
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn schedtrace(&mut self, interval: Duration, detail: bool) -> &mut Self {
        assert!(!interval.is_zero(), "schedtrace interval must be > 0");
        self.schedtrace = Some((interval, detail));
        self
    }

    /// Writes a [task dump](crate::runtime::task::TaskDump) of this runtime to stderr whenever the
    /// process gets `signal`, as Go prints its goroutines on `SIGQUIT`: a header line
    /// naming the signal, the runtime's [`thread_name`](Self::thread_name) and the time,
    /// then the tasks grouped by spawn location, or one line per task when `full` is
    /// set. The environment does the same without code: `URINGO_DUMP_ON=SIGUSR1` (or
    /// `SIGUSR2`, `USR1`, `USR2`, a signal number), with `:full` appended for the full
    /// form (this method wins over it; an invalid value there is ignored with a
    /// warning). Off by default.
    ///
    /// It installs a process-wide handler for `signal`, replacing the signal's previous
    /// disposition (for `SIGUSR1`/`SIGUSR2`, terminating the process), and it stays
    /// installed after the runtime is gone. [`build`](Self::build) fails with
    /// [`InvalidInput`](std::io::ErrorKind::InvalidInput) for a signal that cannot be
    /// caught or that something else relies on: `SIGKILL`, `SIGSTOP`, the crash
    /// signals (`SIGSEGV`, `SIGABRT`...), `SIGINT`, `SIGTERM`, `SIGQUIT`, `SIGCHLD`,
    /// `SIGPIPE` and job control.
    ///
    /// ```
    /// let rt = uringo::Builder::new()
    ///     .thread_name("doc-dump")
    ///     .dump_on_signal(libc::SIGUSR2, false)
    ///     .build()?;
    /// // `kill -USR2 <pid>` now prints `uringo: SIGUSR2: task dump of runtime "doc-dump" ...`.
    /// # drop(rt);
    /// let refused = uringo::Builder::new().dump_on_signal(libc::SIGKILL, false).build();
    /// assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump_on_signal(&mut self, signal: i32, full: bool) -> &mut Self {
        self.dump_on_signal = Some((signal, full));
        self
    }

    /// How long one task poll may run before the monitor thread (Go's sysmon) calls its
    /// worker stuck: it then logs a warning naming the task and where it was spawned,
    /// and hands the worker's runnext task and queue to other workers (see
    /// `scheduler/monitor.rs`). Default 10 ms; `None` runs no monitor thread.
    ///
    /// ```
    /// let rt = uringo::Builder::new()
    ///     .stuck_poll_threshold(Some(std::time::Duration::from_millis(50)))
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stuck_poll_threshold(&mut self, threshold: Option<Duration>) -> &mut Self {
        self.stuck_poll_threshold = threshold;
        self
    }

    /// Records scheduler events (spawns, polls, wakes, steals, parks, ring reaps,
    /// timer fires, monitor retakes) and writes them at shutdown as `path` with the
    /// extension `json` (Chrome Trace Event format: open it in Perfetto) and `html` (a
    /// self-contained, zoomable timeline). `URINGO_TRACE=<path>` does the same without
    /// code (this method wins). Off by default; see [`crate::trace`] for the format and
    /// the cost.
    ///
    /// ```
    /// let base = std::env::temp_dir().join(format!("uringo-doc-rec-{}", std::process::id()));
    /// let rt = uringo::Builder::new()
    ///     .worker_threads(2)
    ///     .trace_recorder(&base)
    ///     .build()?;
    /// rt.block_on(async { uringo::spawn(async {}).await }).unwrap();
    /// drop(rt); // writes the files
    /// assert!(base.with_extension("html").exists());
    /// # std::fs::remove_file(base.with_extension("json"))?;
    /// # std::fs::remove_file(base.with_extension("html"))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trace_recorder(&mut self, path: impl Into<std::path::PathBuf>) -> &mut Self {
        self.trace_path = Some(path.into());
        self
    }

    /// How many events each worker's recorder buffer keeps (default 65 536, 40 bytes
    /// each); older events are dropped and counted. Rounded up to a power of two.
    pub fn trace_events_per_worker(&mut self, n: usize) -> &mut Self {
        self.trace_events_per_worker = n.max(2);
        self
    }

    /// Runs `f` whenever a task is spawned onto this runtime (on the spawning thread,
    /// before the task can run). Not called for `spawn_blocking` closures. `f` must not
    /// panic; keep it short. See [`TaskMeta`](crate::TaskMeta) for an example.
    pub fn on_task_spawn<F: Fn(&crate::TaskMeta) + Send + Sync + 'static>(
        &mut self,
        f: F,
    ) -> &mut Self {
        self.task_hooks.on_spawn = Some(Arc::new(f));
        self
    }

    /// Runs `f` when a task completes, panics or is cancelled (once per spawned task,
    /// on the thread that finishes it, before its `JoinHandle` can see the result).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let done = std::sync::Arc::new(AtomicUsize::new(0));
    /// let counter = done.clone();
    /// let rt = uringo::Builder::new()
    ///     .on_task_terminate(move |_| { counter.fetch_add(1, Ordering::Relaxed); })
    ///     .build()?;
    /// rt.block_on(rt.spawn(async {})).unwrap();
    /// assert_eq!(done.load(Ordering::Relaxed), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_task_terminate<F: Fn(&crate::TaskMeta) + Send + Sync + 'static>(
        &mut self,
        f: F,
    ) -> &mut Self {
        self.task_hooks.on_terminate = Some(Arc::new(f));
        self
    }

    /// Runs `f` on the worker right before each poll of a task.
    pub fn on_before_task_poll<F: Fn(&crate::TaskMeta) + Send + Sync + 'static>(
        &mut self,
        f: F,
    ) -> &mut Self {
        self.task_hooks.before_poll = Some(Arc::new(f));
        self
    }

    /// Runs `f` on the worker right after each poll of a task returns.
    pub fn on_after_task_poll<F: Fn(&crate::TaskMeta) + Send + Sync + 'static>(
        &mut self,
        f: F,
    ) -> &mut Self {
        self.task_hooks.after_poll = Some(Arc::new(f));
        self
    }

    /// Warns (`tracing`, once) when the number of live tasks reaches `n`, naming the
    /// spawn locations that hold the most tasks — the usual sign of a task leak — and
    /// again each time the count reaches twice the last warning's mark. Off by default.
    /// Costs a spawn two relaxed loads.
    ///
    /// ```
    /// let rt = uringo::Builder::new().task_count_warning(100_000).build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn task_count_warning(&mut self, n: usize) -> &mut Self {
        self.task_count_warning = Some(n);
        self
    }

    /// Whether polls are timed: the scheduling-latency and poll-time histograms of
    /// [`RuntimeMetrics`](crate::RuntimeMetrics) (`worker_sched_latency`,
    /// `worker_poll_time`), the `schedlat_p99=` of the schedtrace line and the
    /// time-since-last-poll of a task dump. On by default, for a random sample of one
    /// poll in 32 (see [`poll_timing_sample`](Self::poll_timing_sample)): a timed poll
    /// reads the time-stamp counter twice (about 10 ns each, see `observe/clock.rs`),
    /// the others not at all. `URINGO_POLL_TIMING=0` in the environment turns it off
    /// without a rebuild, `URINGO_POLL_TIMING=n` samples one poll in `n` (this method
    /// and `poll_timing_sample` win).
    ///
    /// ```
    /// let rt = uringo::Builder::new().poll_timing(false).build()?;
    /// rt.block_on(async { uringo::spawn(async {}).await.unwrap() });
    /// assert_eq!(rt.metrics().worker_sched_latency(0).count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_timing(&mut self, on: bool) -> &mut Self {
        self.poll_timing = on.then(|| {
            self.poll_timing
                .unwrap_or(crate::observe::clock::DEFAULT_SAMPLE)
        });
        self
    }

    /// Times one poll in `one_in`, picked at random when the task is made runnable, and
    /// turns poll timing on. The histograms then hold a uniform sample of the polls:
    /// their quantiles estimate those of every poll, their counts are about one in
    /// `one_in` of the polls. Default 32 (Go samples its scheduling latencies one in
    /// 8, `gTrackingPeriod`, but a goroutine switch costs several times a uringo poll);
    /// 1 times every poll, as tokio's poll-time histogram does when enabled, for a
    /// clock read per poll.
    ///
    /// A timed poll's latency runs from the wake itself (the waking thread reads the
    /// clock), so it is exact; an untimed wake is stamped with the worker's latest
    /// reading, which only a dump's "runnable since" uses.
    ///
    /// ```
    /// let rt = uringo::Builder::new().worker_threads(1).poll_timing_sample(1).build()?;
    /// rt.block_on(async {
    ///     for _ in 0..100 {
    ///         uringo::spawn(uringo::task::yield_now()).await.unwrap();
    ///     }
    /// });
    /// // Every poll timed: two per task.
    /// assert!(rt.metrics().worker_sched_latency(0).count() >= 200);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Panics
    /// When `one_in` is 0.
    pub fn poll_timing_sample(&mut self, one_in: u32) -> &mut Self {
        assert!(
            one_in > 0,
            "poll_timing_sample(0): use poll_timing(false) to turn timing off"
        );
        self.poll_timing = Some(one_in);
        self
    }

    /// Starts the runtime with time paused (feature `test-util`; see
    /// [`time::pause`](crate::time::pause)): its timers read a frozen clock that
    /// moves by [`time::advance`](crate::time::advance), or to the next timer once
    /// every worker is idle.
    ///
    /// ```
    /// let rt = uringo::Builder::new().start_paused(true).build()?;
    /// rt.block_on(async {
    ///     // Completes at once: the clock jumps to the timer when nothing else runs.
    ///     uringo::time::sleep(std::time::Duration::from_secs(30)).await;
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "test-util")]
    pub fn start_paused(&mut self, paused: bool) -> &mut Self {
        self.start_paused = paused;
        self
    }

    /// How long a worker that searched its siblings' queues and found nothing keeps
    /// watching for work before it parks (default 5 µs). Go's spinning M: a task handed
    /// off by a sibling in the meantime is taken without a park, a wake-up syscall and
    /// two context switches (several µs each). Only the one worker allowed to search
    /// spins, never longer than until its next timer, and only in runtimes with more
    /// than one worker; zero turns it off. `URINGO_SEARCH_SPIN_NS` in the environment
    /// sets it without a rebuild (this method wins).
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = uringo::Builder::new()
    ///     .worker_threads(2)
    ///     .search_spin(Duration::ZERO)
    ///     .build()?;
    /// rt.block_on(async { uringo::spawn(async {}).await.unwrap() });
    /// assert_eq!(rt.metrics().worker_search_spin_count(0), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn search_spin(&mut self, spin: Duration) -> &mut Self {
        self.search_spin = spin;
        self
    }

    /// Benchmarks only: spawns tasks without entering them in the live-task registry,
    /// to measure what the registry costs a spawn. Without it shutdown cannot cancel
    /// (or free) tasks that wait on something, a dump is empty and the live-task count
    /// stays 0.
    #[doc(hidden)]
    pub fn __without_task_registry(&mut self) -> &mut Self {
        self.task_registry = false;
        self
    }

    /// Starts the workers. Fails if a worker cannot create its io_uring ring; the error
    /// then says why io_uring is unavailable and how to fix it.
    pub fn build(&mut self) -> io::Result<super::Runtime> {
        super::Runtime::from_builder(self)
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("worker_threads", &self.worker_threads)
            .field("pin_workers", &self.pin_workers)
            .field("ring_entries", &self.ring_entries)
            .field("avoided", &self.avoided)
            .field("global_queue_interval", &self.global_queue_interval)
            .field("event_interval", &self.event_interval)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_name", &self.thread_name)
            .finish_non_exhaustive()
    }
}
