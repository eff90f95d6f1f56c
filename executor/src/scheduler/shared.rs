//! What every thread may touch of a runtime's scheduler: Go's `sched` ([`Shared`]) and
//! the outside view of each worker ([`Remote`]).

use std::sync::OnceLock;

use crossbeam_utils::CachePadded;
use std::time::Instant;

use uringo_uring::RingHandle;

use super::driver::Unparker;
use super::idle::Idle;
use super::inject::Injector;
use super::queue::Steal;
use super::Config;
use crate::loom::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::observe::metrics::WorkerMetrics;
use crate::observe::poll_watch::PollWatch;
use crate::observe::stats::Scheduled;
use crate::runtime::task::{Notified, OwnedTasks};
use crate::time::clock::Clock;
use crate::time::TimerRemote;

/// The parts of a worker that other threads touch.
///
/// What the owner writes on every tick or poll (its metrics, the poll watch) and what
/// other threads write (the inbox) each sit on cache lines of their own: the handles
/// that siblings read to steal from or unpark this worker would otherwise move to the
/// owner's core and back on every poll.
pub(crate) struct Remote {
    /// The stealing end of the worker's run queue (and its runnext slot).
    pub(crate) steal: Steal<Notified>,
    /// Tasks spawned onto this worker by `Handle::spawn_on`: the worker polls each
    /// first thing on its next tick (`worker/mod.rs`), so their first poll, and the I/O
    /// it submits, is on this worker's ring.
    pub(crate) inbox: CachePadded<Injector<Notified>>,
    /// Ends the worker's park; set once the worker's driver exists.
    pub(crate) unpark: OnceLock<Unparker>,
    /// The worker's io_uring ring, through which a thread without one submits I/O
    /// (unset under the loom and simulated drivers).
    pub(crate) ring: OnceLock<RingHandle>,
    pub(crate) metrics: CachePadded<WorkerMetrics>,
    /// Timers other threads add to or remove from this worker's wheel.
    pub(crate) timers: TimerRemote,
    /// The task this worker is polling, for the monitor.
    pub(crate) poll_watch: CachePadded<PollWatch>,
    /// Unparked, not yet back from its park: not waiting, for paused time's
    /// auto-advance (`time/auto_advance.rs`).
    #[cfg(feature = "test-util")]
    pub(crate) unpark_pending: AtomicBool,
}

impl Remote {
    /// Ends the worker's park (or makes its next park return at once).
    pub(crate) fn unpark(&self) {
        #[cfg(feature = "test-util")]
        self.unpark_pending.store(true, Ordering::SeqCst);
        if let Some(unpark) = self.unpark.get() {
            unpark.unpark();
        }
    }
}

/// What threads that are not workers write as they spawn, wake and do I/O, on cache
/// lines of its own: every worker reads `Shared::shutdown` and the config on every
/// tick, and a line shared with these counters would move to the spawning thread's
/// core and back on every remote spawn.
#[derive(Default)]
pub(crate) struct Outside {
    /// Tasks scheduled from outside the runtime's workers (into the injector).
    pub(crate) schedules: AtomicU64,
    /// Tasks spawned from threads that are not workers.
    pub(crate) spawns: AtomicU64,
    /// Round-robin choice of the worker that serves a thread without a ring or wheel.
    next_fallback: AtomicUsize,
}

/// State shared by every worker of one runtime (Go's `sched`).
pub(crate) struct Shared {
    pub(crate) remotes: Box<[Remote]>,
    /// On lines of its own: every push and pop writes its lock and count, while every
    /// worker reads the fields around it on every tick.
    pub(crate) inject: CachePadded<Injector<Notified>>,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    pub(crate) config: Config,
    /// Where every worker's timers read "now".
    pub(crate) clock: Clock,
    /// Who moves paused time (`time/auto_advance.rs`).
    #[cfg(feature = "test-util")]
    pub(crate) paused_time: crate::time::auto_advance::PausedTime,
    shutdown: AtomicBool,
    /// What threads outside the runtime write on every spawn and wake.
    pub(crate) outside: CachePadded<Outside>,
    /// The live-task count at which the next leak warning fires (`usize::MAX`: off);
    /// doubled each time one fires (`Builder::task_count_warning`).
    pub(crate) next_task_warning: AtomicUsize,
    /// Tick 0 of every worker's timer wheel (shared, so ticks mean the same everywhere).
    pub(crate) clock_origin: Instant,
}

impl Shared {
    pub(crate) fn new(steals: Vec<Steal<Notified>>, config: Config, clock: Clock) -> Shared {
        let n = steals.len();
        let clock_origin = clock.now();
        Shared {
            remotes: steals
                .into_iter()
                .map(|steal| Remote {
                    steal,
                    inbox: CachePadded::new(Injector::new()),
                    unpark: OnceLock::new(),
                    ring: OnceLock::new(),
                    metrics: CachePadded::default(),
                    timers: TimerRemote::default(),
                    poll_watch: CachePadded::default(),
                    #[cfg(feature = "test-util")]
                    unpark_pending: AtomicBool::new(false),
                })
                .collect(),
            inject: CachePadded::new(Injector::new()),
            idle: Idle::new(n),
            owned: OwnedTasks::new(n, config.task_registry),
            config,
            clock,
            #[cfg(feature = "test-util")]
            paused_time: Default::default(),
            shutdown: AtomicBool::new(false),
            outside: CachePadded::new(Outside::default()),
            next_task_warning: AtomicUsize::new(usize::MAX),
            clock_origin,
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts shutdown: no new work is accepted and every worker is woken to exit.
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!("runtime shutting down");
        self.inject.close();
        for remote in self.remotes.iter() {
            remote.inbox.close();
            remote.unpark();
        }
    }

    /// A ring for a thread that has none (round robin over the workers).
    pub(crate) fn fallback_ring(&self) -> Option<RingHandle> {
        let i = self.outside.next_fallback.fetch_add(1, Ordering::Relaxed) % self.remotes.len();
        self.remotes[i].ring.get().cloned()
    }

    /// Schedules a task from a thread that is not one of our workers.
    pub(crate) fn schedule_remote(&self, task: Notified, how: Scheduled) {
        self.outside.schedules.fetch_add(1, Ordering::Relaxed);
        if let Some(sampling) = self.config.poll_timing {
            task.header()
                .stamp
                .store(sampling.stamp(), std::sync::atomic::Ordering::Relaxed);
        }
        if how == Scheduled::Wake && self.config.instruments.is_on() {
            let id = task.id_and_location().0.as_u64();
            self.config.instruments.record_outside(
                crate::trace::Kind::Wake,
                id,
                crate::trace::TO_INJECTOR,
            );
        }
        if let Err(task) = self.inject.push(task) {
            // Shut down: the task has been (or will be) cancelled; drop the entry.
            drop(task);
            return;
        }
        if !crate::loom::mutation!("remote_notify") {
            self.notify_parked();
        }
    }

    /// Puts a new task in worker `index`'s inbox and unparks that worker (sticky: if it
    /// is awake, its next park returns at once, after its next tick took the task).
    pub(crate) fn schedule_on(&self, index: usize, task: Notified) {
        if let Some(sampling) = self.config.poll_timing {
            task.header()
                .stamp
                .store(sampling.stamp(), std::sync::atomic::Ordering::Relaxed);
        }
        let remote = &self.remotes[index];
        if let Err(task) = remote.inbox.push(task) {
            drop(task); // Shut down: cancelled with the rest.
            return;
        }
        remote.unpark();
    }

    /// Drops what shutdown left in the queues nobody runs any more (the injector, the
    /// workers' inboxes), once the workers have stopped.
    pub(crate) fn drain_orphaned_queues(&self) {
        while let Some(task) = self.inject.pop() {
            drop(task);
        }
        for remote in self.remotes.iter() {
            while let Some(task) = remote.inbox.pop() {
                drop(task);
            }
        }
    }

    /// New work was published: wake a parked worker if nobody is searching.
    pub(crate) fn notify_parked(&self) {
        // `worker_to_notify` fences our publication of work before its read of the
        // idle state (idle.rs, "No lost wake-up").
        if let Some(worker) = self.idle.worker_to_notify() {
            tracing::trace!(worker, "waking a parked worker");
            self.remotes[worker].unpark();
        }
    }

    /// Arms a timer for a thread that owns no wheel: a worker (round robin, returned
    /// with the timer's slot in its `TimerSlots`) inserts it on its next tick; it is
    /// woken so that a parked worker recomputes its timeout.
    pub(crate) fn register_remote_timer(&self, deadline: Instant) -> (usize, u32) {
        let tick = crate::time::deadline_tick(self.clock_origin, deadline);
        let worker =
            self.outside.next_fallback.fetch_add(1, Ordering::Relaxed) % self.remotes.len();
        let remote = &self.remotes[worker];
        let slot = remote.timers.slots.take_remote();
        remote.timers.slots.get(slot).arm(None);
        remote.timers.queue_registration(slot, tick);
        remote.unpark();
        (worker, slot)
    }

    /// Whether any queue holds a task (the last searcher's check before parking).
    pub(crate) fn any_work_queued(&self) -> bool {
        !self.inject.is_empty() || self.remotes.iter().any(|r| !r.steal.is_empty())
    }
}
