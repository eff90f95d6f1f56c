//! The scheduling loop's one door to observability.
//!
//! The loop (`scheduler/worker/`) says what happened — a tick, a poll, a reap, a steal,
//! a park — and this file decides what that costs: which counters move, which clock is
//! read, which histogram and trace buffer get an entry, which stamp goes on the task.
//! Keeping it here keeps the loop readable as a scheduler and keeps every probe's cost
//! in one place:
//!
//! * counters are per-worker, single-writer (`metrics.rs`): a relaxed load and store;
//! * poll timing (on unless `Builder::poll_timing(false)`) times a random sample of
//!   the polls, one in 32 by default (`clock::Sampling`). The thread that makes a task
//!   runnable decides: a sampled wake or spawn is stamped with a fresh reading, marked
//!   as timed, any other with the thread's recent reading. A poll of a task whose stamp
//!   is marked reads the clock at its start (or reuses the reading that ended the
//!   previous poll, when the worker went straight from one to the next: `clock_fresh`)
//!   and at its end: the start minus the wake stamp feeds the scheduling-latency
//!   histogram, the end minus the start the poll-time histogram. Any other poll reads
//!   no clock. Either way the poll leaves a "last polled" stamp for dumps: its start, or
//!   the worker's recent reading;
//! * the event recorder and task hooks (`trace/`) are an `Option` each site tests once;
//! * busy time is measured per park cycle: two clock reads per sleep, not per poll.

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::clock::{self, Sampling};
use super::metrics::WorkerMetrics;
use super::poll_watch::PollWatch;
use crate::runtime::task::Notified;
use crate::trace::{Kind, TaskMeta, WorkerProbe};

/// How a task came to be scheduled: where it goes (`scheduler/schedule.rs`) and what
/// the recorder notes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Scheduled {
    /// Just spawned (the recorder notes the spawn itself, not a wake).
    Spawn,
    /// Woken.
    Wake,
    /// Yielded, spent its budget, or woke itself during its poll.
    Yield,
}

/// What a worker keeps for its own observability. Owned by the worker's thread.
pub(crate) struct WorkerStats {
    index: usize,
    /// `Config::poll_timing`.
    sampling: Option<Sampling>,
    /// The thread's recent clock reading was taken at the end of the last poll, which
    /// was timed, and nothing but queue operations happened since: it can serve as the
    /// next poll's start.
    clock_fresh: Cell<bool>,
    /// When the worker last woke (or started).
    busy_since: Cell<Instant>,
    /// The event recorder and task hooks, `None` when both are off.
    probe: Option<WorkerProbe>,
}

impl WorkerStats {
    pub(crate) fn new(
        index: usize,
        sampling: Option<Sampling>,
        probe: Option<WorkerProbe>,
    ) -> WorkerStats {
        WorkerStats {
            index,
            sampling,
            clock_fresh: Cell::new(false),
            busy_since: Cell::new(Instant::now()),
            probe,
        }
    }

    pub(crate) fn probe(&self) -> Option<&WorkerProbe> {
        self.probe.as_ref()
    }

    /// This worker's view, with its counters and its poll watch.
    #[inline]
    pub(crate) fn view<'a>(
        &'a self,
        metrics: &'a WorkerMetrics,
        watch: &'a PollWatch,
    ) -> Stats<'a> {
        Stats {
            own: self,
            metrics,
            watch,
        }
    }
}

/// A worker's stats with the shared parts they write to.
#[derive(Clone, Copy)]
pub(crate) struct Stats<'a> {
    own: &'a WorkerStats,
    metrics: &'a WorkerMetrics,
    watch: &'a PollWatch,
}

impl Stats<'_> {
    #[inline]
    pub(crate) fn started(&self) {
        self.own.busy_since.set(Instant::now());
    }

    #[inline]
    pub(crate) fn tick(&self) {
        WorkerMetrics::bump(&self.metrics.ticks, 1);
    }

    /// The worker did something other than polling (it reaps, fires timers or
    /// steals): the next timed poll must read the clock for its start.
    #[inline]
    pub(crate) fn clock_stale(&self) {
        self.own.clock_fresh.set(false);
    }

    /// Polls `task` with everything observed around it: the monitor's watch, the
    /// counters, the latency and poll-time histograms, the dump stamps, the recorder
    /// and hooks.
    #[inline]
    pub(crate) fn poll(&self, task: Notified, from_runnext: bool) {
        let m = self.metrics;
        self.watch.enter(&task);
        WorkerMetrics::bump(&m.polls, 1);
        if from_runnext {
            WorkerMetrics::bump(&m.runnext_polls, 1);
        }
        let header = task.header();
        header.last_worker.store(self.own.index as u16, Relaxed);
        if self.own.sampling.is_none() {
            return self.run(task);
        }
        // The stamp says when it was made runnable; from now on, when it was last
        // polled. Nobody else writes it meanwhile: we hold the task's only queue entry,
        // and a wake before the poll ends only sets a bit (the next schedule comes after
        // it). The header may be freed by the poll (the task completes): it is not
        // touched after `run`.
        let woken = header.stamp.load(Relaxed);
        if !clock::is_timed(woken) {
            // Not in the sample: no clock read. A dump's "last polled" gets the
            // worker's latest reading (never earlier than the wake stamp).
            header
                .stamp
                .store(clock::untimed(clock::recent().max(woken)), Relaxed);
            self.own.clock_fresh.set(false);
            return self.run(task);
        }
        let start = if self.own.clock_fresh.get() {
            clock::recent()
        } else {
            clock::refresh()
        };
        header.stamp.store(clock::untimed(start), Relaxed);
        m.sched_latency.record(start.saturating_sub(woken));
        self.run(task);
        let end = clock::refresh();
        m.poll_time.record(end.saturating_sub(start));
        self.own.clock_fresh.set(true);
    }

    /// One poll, with the recorder's and hooks' calls around it when they are on.
    #[inline]
    fn run(&self, task: Notified) {
        let Some(probe) = &self.own.probe else {
            return task.run();
        };
        let (id, location) = task.id_and_location();
        let meta = TaskMeta::new(id, location);
        probe.before_poll(meta);
        task.run();
        probe.after_poll(meta);
    }

    /// A batch of polls ended.
    #[inline]
    pub(crate) fn polls_end(&self, forced_yields: u64) {
        self.watch.exit();
        if forced_yields > 0 {
            WorkerMetrics::bump(&self.metrics.budget_forced_yields, forced_yields);
        }
    }

    /// A task was scheduled on this worker: stamp its wake time (timed or not, see the
    /// module doc), count it, record it.
    #[inline]
    pub(crate) fn scheduled(&self, task: &Notified, how: Scheduled) {
        WorkerMetrics::bump(&self.metrics.local_schedules, 1);
        if let Some(sampling) = self.own.sampling {
            task.header().stamp.store(sampling.stamp(), Relaxed);
        }
        if let Some(probe) = &self.own.probe {
            let kind = match how {
                Scheduled::Spawn => return,
                Scheduled::Wake => Kind::Wake,
                Scheduled::Yield => Kind::Yield,
            };
            probe.record(
                kind,
                task.id_and_location().0.as_u64(),
                self.own.index as u64,
            );
        }
    }

    #[inline]
    pub(crate) fn spawned(&self) {
        WorkerMetrics::bump(&self.metrics.spawns, 1);
    }

    #[inline]
    pub(crate) fn overflowed(&self) {
        WorkerMetrics::bump(&self.metrics.overflows, 1);
    }

    #[inline]
    pub(crate) fn injector_pops(&self, n: usize) {
        WorkerMetrics::bump(&self.metrics.injector_pops, n as u64);
    }

    /// The ring is about to be reaped.
    #[inline]
    pub(crate) fn reaping(&self) {
        WorkerMetrics::bump(&self.metrics.ring_reaps, 1);
        self.clock_stale();
    }

    #[inline]
    pub(crate) fn reaped(&self, result: &std::io::Result<usize>) {
        match result {
            Ok(0) => {}
            Ok(n) => {
                if let Some(probe) = &self.own.probe {
                    probe.record(Kind::Reap, 0, *n as u64);
                }
            }
            Err(err) => tracing::error!(worker = self.own.index, %err, "io_uring_enter failed"),
        }
    }

    /// `fired` timers fired (the first of them made the clock stale: see `timers_due`).
    #[inline]
    pub(crate) fn timers_fired(&self, fired: u64) {
        if let Some(probe) = &self.own.probe {
            probe.record(Kind::TimerFire, 0, fired);
        }
        WorkerMetrics::bump(&self.metrics.timers_fired, fired);
    }

    /// Timers are about to fire.
    #[inline]
    pub(crate) fn timers_due(&self) {
        self.clock_stale();
    }

    /// This worker took `count` tasks from `victim` (`victim_metrics`), `task` first.
    pub(crate) fn stole(
        &self,
        task: &Notified,
        count: usize,
        victim: usize,
        victim_metrics: &WorkerMetrics,
    ) {
        let m = self.metrics;
        WorkerMetrics::bump(&m.steals, count as u64);
        WorkerMetrics::bump(&m.steal_operations, 1);
        victim_metrics.robbed.fetch_add(1, Relaxed);
        tracing::trace!(worker = self.own.index, victim, count, "stole tasks");
        if let Some(probe) = &self.own.probe {
            let arg = (count as u64) << 32 | victim as u64;
            probe.record(Kind::Steal, task.id_and_location().0.as_u64(), arg);
        }
    }

    /// The worker starts a search spin.
    #[inline]
    pub(crate) fn spin_started(&self) {
        WorkerMetrics::bump(&self.metrics.search_spins, 1);
    }

    /// The spin ended because work showed up.
    #[inline]
    pub(crate) fn spin_found(&self) {
        WorkerMetrics::bump(&self.metrics.search_spin_finds, 1);
    }

    /// The worker goes to sleep at `now` for at most `timeout`.
    pub(crate) fn parking(&self, now: Instant, timeout: Option<Duration>) {
        let m = self.metrics;
        let busy = now.saturating_duration_since(self.own.busy_since.get());
        WorkerMetrics::bump(&m.busy_ns, busy.as_nanos() as u64);
        WorkerMetrics::bump(&m.parks, 1);
        tracing::trace!(worker = self.own.index, ?timeout, "parking");
        if let Some(probe) = &self.own.probe {
            probe.record(Kind::Park, 0, 0);
        }
        // Tasks the park's completions wake read the clock themselves.
        clock::forget_recent();
    }

    /// The worker woke; `parked` is what the park returned.
    pub(crate) fn unparked(&self, parked: &std::io::Result<usize>) {
        self.clock_stale();
        if self.own.sampling.is_some() {
            // The park forgot the thread's reading; untimed stamps need one again.
            clock::refresh();
        }
        if let Some(probe) = &self.own.probe {
            probe.record(Kind::Unpark, 0, *parked.as_ref().unwrap_or(&0) as u64);
        }
        if let Err(err) = parked {
            tracing::error!(worker = self.own.index, %err, "parking failed");
        }
        WorkerMetrics::bump(&self.metrics.unparks, 1);
        self.own.busy_since.set(Instant::now());
    }

    /// The worker's thread is inside `block_in_place` (or left it).
    pub(crate) fn blocking(&self, blocking: bool) {
        self.watch.set_blocking(blocking);
    }
}
