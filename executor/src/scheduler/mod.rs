//! The scheduler: Go's P on every worker, with the ring's completion queue reaped in
//! the scheduling loop. One concept per file:
//!
//! | file | what |
//! |---|---|
//! | `queue.rs` | the P's 256-slot local run queue and runnext slot (`Local` / `Steal`) |
//! | `inject.rs` | the global injection queue |
//! | `idle.rs` | who sleeps, who searches (Go's spinning-M rule), no lost wake-ups |
//! | `worker.rs` | the scheduling loop (`findrunnable`) and parking |
//! | `metrics.rs` | per-worker counters |
//! | `monitor.rs` | Go's sysmon: finds a worker stuck in one poll, hands out its queue |

pub(crate) mod idle;
pub(crate) mod inject;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod queue;
pub(crate) mod worker;

use std::sync::OnceLock;
use std::time::Instant;

use uringo_uring::RingHandle;

use self::idle::Idle;
use self::inject::Injector;
use self::metrics::WorkerMetrics;
use self::queue::Steal;
use crate::loom::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::task::{Notified, OwnedTasks, RawTask, Schedule, Task};
use crate::time::{TimerEntry, TimerRemote};

/// Scheduler settings fixed at build time.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every this many ticks a worker looks at the injector before its own queue.
    pub global_queue_interval: u32,
    /// Every this many ticks a worker reaps its ring even when its queue is full.
    pub event_interval: u32,
    /// Consecutive runnext polls before the runnext task must go through the queue.
    pub max_runnext_polls: u32,
    /// Time every poll: scheduling-latency and poll-time histograms, last-poll stamps.
    pub poll_timing: bool,
    /// Enter tasks in the live-task registry (off only to measure what it costs).
    pub task_registry: bool,
    /// How long a searching worker that found nothing keeps looking before it parks.
    pub search_spin: std::time::Duration,
    /// The event recorder and task hooks (`trace/`); all `None` unless asked for.
    pub(crate) instruments: crate::trace::Instruments,
}

impl Default for Config {
    /// Go's constants: the injector every 61 ticks, the ring every 61 ticks, runnext at
    /// most 3 polls in a row; polls timed; no recorder, no hooks.
    fn default() -> Config {
        Config {
            global_queue_interval: 61,
            event_interval: 61,
            max_runnext_polls: 3,
            poll_timing: true,
            task_registry: true,
            search_spin: std::time::Duration::ZERO,
            instruments: crate::trace::Instruments::default(),
        }
    }
}

/// The parts of a worker that other threads touch.
pub struct Remote {
    pub steal: Steal<Notified>,
    /// Set once the worker thread has created its ring.
    pub ring: OnceLock<RingHandle>,
    pub metrics: WorkerMetrics,
    /// Timers other threads add to or remove from this worker's wheel.
    pub timers: TimerRemote,
    /// The task this worker is polling, for the monitor.
    pub poll_watch: monitor::PollWatch,
    /// Stands in for the ring under loom, which cannot model the kernel: a kick is a
    /// sticky flag the loom models' workers sleep on.
    #[cfg(loom)]
    pub loom_ring: crate::loom::LoomRing,
}

impl Remote {
    /// Kicks the worker out of its ring park (or makes its next park return at once).
    pub fn wake_ring(&self) {
        #[cfg(loom)]
        self.loom_ring.wake();
        if let Some(ring) = self.ring.get() {
            ring.waker().wake();
        }
    }
}

/// State shared by every worker of one runtime (Go's `sched`).
pub struct Shared {
    pub remotes: Box<[Remote]>,
    pub inject: Injector<Notified>,
    pub idle: Idle,
    pub owned: OwnedTasks,
    pub config: Config,
    shutdown: AtomicBool,
    /// Round-robin choice of the worker ring that a ring-less thread submits through.
    next_fallback: AtomicUsize,
    /// Tasks scheduled from outside the runtime's workers (into the injector).
    pub remote_schedules: AtomicU64,
    /// Tasks spawned from threads that are not workers.
    pub remote_spawns: AtomicU64,
    /// The live-task count at which the next leak warning fires (`usize::MAX`: off);
    /// doubled each time one fires (`Builder::task_count_warning`).
    pub(crate) next_task_warning: AtomicUsize,
    /// Tick 0 of every worker's timer wheel (shared, so ticks mean the same everywhere).
    pub clock_origin: Instant,
}

impl Shared {
    pub fn new(steals: Vec<Steal<Notified>>, config: Config) -> Shared {
        let n = steals.len();
        Shared {
            remotes: steals
                .into_iter()
                .map(|steal| Remote {
                    steal,
                    ring: OnceLock::new(),
                    metrics: WorkerMetrics::default(),
                    timers: TimerRemote::default(),
                    poll_watch: monitor::PollWatch::default(),
                    #[cfg(loom)]
                    loom_ring: crate::loom::LoomRing::default(),
                })
                .collect(),
            inject: Injector::new(),
            idle: Idle::new(n),
            owned: OwnedTasks::new(n, config.task_registry),
            config,
            shutdown: AtomicBool::new(false),
            next_fallback: AtomicUsize::new(0),
            remote_schedules: AtomicU64::new(0),
            remote_spawns: AtomicU64::new(0),
            next_task_warning: AtomicUsize::new(usize::MAX),
            clock_origin: Instant::now(),
        }
    }

    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts shutdown: no new work is accepted and every worker is woken to exit.
    pub fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!("runtime shutting down");
        self.inject.close();
        for remote in self.remotes.iter() {
            remote.wake_ring();
        }
    }

    /// A ring for a thread that has none (round robin over the workers).
    pub fn fallback_ring(&self) -> Option<RingHandle> {
        let i = self.next_fallback.fetch_add(1, Ordering::Relaxed) % self.remotes.len();
        self.remotes[i].ring.get().cloned()
    }

    /// Schedules a task from a thread that is not one of our workers.
    pub fn schedule_remote(&self, task: Notified) {
        self.remote_schedules.fetch_add(1, Ordering::Relaxed);
        if self.config.poll_timing {
            task.header().stamp.store(
                crate::runtime::clock::recent(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        if let Err(task) = self.inject.push(task) {
            // Shut down: the task has been (or will be) cancelled; drop the entry.
            drop(task);
            return;
        }
        // Mutation point (loom-tests): a remote spawn that wakes nobody can be stranded.
        if !cfg!(uringo_loom_mutation = "remote_notify") {
            self.notify_parked();
        }
    }

    /// New work was published: wake a parked worker if nobody is searching.
    pub fn notify_parked(&self) {
        // `worker_to_notify` fences our publication of work before its read of the
        // idle state (idle.rs, "No lost wake-up").
        if let Some(worker) = self.idle.worker_to_notify() {
            tracing::trace!(worker, "waking a parked worker");
            self.remotes[worker].wake_ring();
        }
    }

    /// Arms a timer for a thread that owns no wheel: a worker (round robin) inserts it
    /// on its next tick; it is woken so that a parked worker recomputes its timeout.
    pub fn register_remote_timer(&self, deadline: Instant) -> Arc<TimerEntry> {
        let tick = crate::time::deadline_tick(self.clock_origin, deadline);
        let entry = Arc::new(TimerEntry::new(tick));
        let worker = self.next_fallback.fetch_add(1, Ordering::Relaxed) % self.remotes.len();
        let remote = &self.remotes[worker];
        remote.timers.registrations.push(entry.clone());
        remote.wake_ring();
        entry
    }

    /// Whether any queue holds a task (the last searcher's check before parking).
    pub fn any_work_queued(&self) -> bool {
        !self.inject.is_empty() || self.remotes.iter().any(|r| !r.steal.is_empty())
    }
}

/// The runtime's tasks carry an `Arc<Shared>` as their scheduler.
impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Notified) {
        worker::wake(self, task, false);
    }

    fn yield_now(&self, task: Notified) {
        worker::wake(self, task, true);
    }

    fn terminated(&self, task: &RawTask) {
        if self.config.instruments.is_on() {
            worker::task_terminated(self, task);
        }
    }

    fn completing(&self, task: &RawTask) {
        self.owned.count_out(task);
    }

    fn release(&self, task: &RawTask) -> Option<Task> {
        self.owned.remove(task)
    }
}
