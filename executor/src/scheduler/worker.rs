//! The scheduling loop: Go's `schedule`/`findrunnable` on a worker that owns an
//! io_uring ring.
//!
//! Each iteration (a *tick*) finds one task and runs it, in this order:
//!
//! 1. every `global_queue_interval` ticks (61), the injector first, so tasks spawned from
//!    outside cannot starve behind a busy local queue;
//! 2. the local queue (the runnext slot is drained right after each poll, inside
//!    `run_task`, so a task woken or spawned by the one that just ran goes next);
//! 3. a batch from the injector;
//! 4. the ring, without blocking: completions wake their tasks into this worker's queue
//!    (Go polls the netpoller here);
//! 5. steal half of a random sibling's queue, if fewer than half the busy workers are
//!    already searching;
//! 6. the searching worker spins up to `Builder::search_spin` (5 µs) watching the
//!    queues, its ring and its timer inbox, so a sibling's hand-off costs no park and
//!    no wake-up (`SpinBackoff` stops it spinning when it rarely catches one);
//! 7. park in the ring until a CQE, a wake or the next timer.
//!
//! Every `event_interval` ticks the ring is reaped even when the queue is full, so I/O
//! completions are never starved by CPU-bound tasks. SQEs that tasks queue are submitted
//! with that reap (or the park), in the same `io_uring_enter`.
//!
//! Per-poll timing (on unless `Builder::poll_timing(false)`): a poll's start is the
//! clock reading that ended the previous poll when the worker went straight from one to
//! the next, a fresh reading otherwise; its end is one more reading. So a run of polls
//! costs one clock read each (`runtime/clock.rs`), which feeds the scheduling-latency
//! histogram (poll start minus the wake time in the task's `stamp`), the poll-time
//! histogram and the dump's last-poll stamp.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use uringo_uring::Ring;

use super::metrics::WorkerMetrics;
use super::queue::Local;
use super::{Remote, Shared};
use crate::loom::sync::{Arc, Ordering};
use crate::runtime::{clock, context, coop};
use crate::task::{Notified, RawTask};
use crate::time::TimerDriver;
use crate::trace::{Kind, TaskMeta, WorkerProbe, TO_INJECTOR};

/// Everything a worker thread owns. Lives on the worker's stack for the thread's life;
/// the thread-local context points at it so wakes and spawns find their worker.
pub(crate) struct WorkerContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    core: RefCell<Core>,
    /// The worker's ring; its CQ is reaped inside the loop.
    pub(crate) ring: Ring,
    /// True while a task is being polled: wakes then go to the runnext slot.
    in_task: Cell<bool>,
    /// This worker's timer wheel (Go's per-P timers).
    timers: RefCell<TimerDriver>,
    /// When the worker last woke (or started): busy time is measured per park cycle,
    /// two clock reads per sleep rather than two per poll.
    busy_since: Cell<Instant>,
    /// The event recorder and task hooks, `None` when off: each event site is one
    /// branch on this.
    probe: Option<WorkerProbe>,
    /// `Config::poll_timing`, copied where the loop looks.
    timing: bool,
    /// The thread's recent clock reading (`clock::recent`) was taken at the end of the
    /// last poll and nothing but queue operations happened since: it can serve as the
    /// next poll's start.
    clock_fresh: Cell<bool>,
}

struct Core {
    local: Local<Notified>,
    tick: u32,
    is_searching: bool,
    rand: FastRand,
    spin: SpinBackoff,
}

impl WorkerContext {
    pub(crate) fn new(
        shared: Arc<Shared>,
        index: usize,
        local: Local<Notified>,
        ring: Ring,
    ) -> Self {
        let shared_origin = shared.clock_origin;
        let shared_timing = shared.config.poll_timing;
        let probe = shared.config.instruments.worker_probe(index);
        WorkerContext {
            probe,
            shared,
            index,
            core: RefCell::new(Core {
                local,
                tick: 0,
                is_searching: false,
                rand: FastRand::new(index as u64 + 1),
                spin: SpinBackoff::default(),
            }),
            timers: RefCell::new(TimerDriver::new(shared_origin)),
            ring,
            in_task: Cell::new(false),
            busy_since: Cell::new(Instant::now()),
            timing: shared_timing,
            clock_fresh: Cell::new(false),
        }
    }

    /// Tick 0 of this worker's wheel.
    pub(crate) fn timers_origin(&self) -> Instant {
        self.shared.clock_origin
    }

    /// Runs `f` on this worker's wheel. Never called while a timer fires (firing runs
    /// with no borrow held), so the borrow cannot conflict.
    pub(crate) fn with_timers<R>(&self, f: impl FnOnce(&mut TimerDriver) -> R) -> R {
        let mut timers = self.timers.borrow_mut();
        let r = f(&mut timers);
        timers.publish_len(&self.remote().timers);
        r
    }

    /// Applies other threads' timer changes and fires what is due. Cheap when there are
    /// no timers: no clock read.
    fn process_timers(&self) {
        let remote = &self.remote().timers;
        if !remote.cancellations.is_empty() || !remote.registrations.is_empty() {
            self.with_timers(|t| t.drain_remote(remote));
        }
        if !self.timers.borrow().has_timers() {
            return;
        }
        let now = Instant::now();
        let mut fired = 0;
        loop {
            let entry = self.timers.borrow_mut().pop_expired(now);
            let Some(entry) = entry else { break };
            if fired == 0 {
                // The tasks it wakes are stamped with the thread's recent reading.
                self.invalidate_clock(true);
            }
            entry.fire();
            fired += 1;
        }
        if fired > 0 {
            if let Some(probe) = &self.probe {
                probe.record(Kind::TimerFire, 0, fired);
            }
            WorkerMetrics::bump(&self.metrics().timers_fired, fired);
            self.timers.borrow().publish_len(remote);
        }
    }

    fn remote(&self) -> &Remote {
        &self.shared.remotes[self.index]
    }

    fn metrics(&self) -> &WorkerMetrics {
        &self.remote().metrics
    }

    /// The loop. Returns when the runtime shuts down.
    pub(crate) fn run(&self) {
        tracing::debug!(worker = self.index, "worker started");
        self.busy_since.set(Instant::now());
        while !self.shared.is_shutdown() {
            WorkerMetrics::bump(&self.metrics().ticks, 1);
            let tick = {
                let mut core = self.core.borrow_mut();
                core.tick = core.tick.wrapping_add(1);
                core.tick
            };
            self.process_timers();
            if tick % self.shared.config.event_interval == 0 {
                self.reap();
            }
            if let Some(task) = self.next_task(tick) {
                self.run_task(task);
                continue;
            }
            // Nothing queued here: poll the ring (netpoll), then other workers.
            self.reap();
            if let Some(task) = self.next_local_task() {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            if self.spin_for_work() {
                continue;
            }
            self.park();
        }
        clock::forget_recent();
        tracing::debug!(worker = self.index, "worker stopping");
    }

    fn next_task(&self, tick: u32) -> Option<Notified> {
        if tick % self.shared.config.global_queue_interval == 0 {
            if let Some(task) = self.shared.inject.pop() {
                WorkerMetrics::bump(&self.metrics().injector_pops, 1);
                return Some(task);
            }
        }
        self.next_local_task()
    }

    fn next_local_task(&self) -> Option<Notified> {
        let mut core = self.core.borrow_mut();
        if let Some(task) = core.local.take_runnext() {
            return Some(task);
        }
        if let Some(task) = core.local.pop() {
            return Some(task);
        }
        self.take_injector_share(&mut core.local)
    }

    /// Go's `globrunqget`: moves a fair share of the injector (its length over the
    /// number of workers, at most half our free slots) into `local` and returns the
    /// first of it.
    fn take_injector_share(&self, local: &mut Local<Notified>) -> Option<Notified> {
        if self.shared.inject.is_empty() {
            return None;
        }
        let n = self.shared.inject.len() / self.shared.remotes.len() + 1;
        let n = n.min(local.remaining_slots() / 2).max(1);
        let task = self.shared.inject.pop_batch_into(local, n);
        if task.is_some() {
            WorkerMetrics::bump(&self.metrics().injector_pops, n as u64);
        }
        task
    }

    /// Polls `task`, then whatever it put in the runnext slot, within one budget.
    ///
    /// Each poll is counted before it runs: whoever observes the task's completion then
    /// also observes the count (the completion happens after it).
    fn run_task(&self, task: Notified) {
        self.transition_from_searching();
        let m = self.metrics();
        let watch = &self.remote().poll_watch;
        coop::budget(|| {
            self.in_task.set(true);
            let mut clock = self.poll_start();
            watch.enter(&task);
            WorkerMetrics::bump(&m.polls, 1);
            clock = self.timed_poll(task, clock);
            let mut runnext_polls = 0;
            loop {
                let next = self.core.borrow_mut().local.take_runnext();
                let Some(next) = next else { break };
                if !coop::has_budget_remaining()
                    || runnext_polls >= self.shared.config.max_runnext_polls
                {
                    // Out of budget or ping-ponging: it waits its turn in the queue.
                    self.push_back(next);
                    break;
                }
                runnext_polls += 1;
                watch.enter(&next);
                WorkerMetrics::bump(&m.polls, 1);
                WorkerMetrics::bump(&m.runnext_polls, 1);
                clock = self.timed_poll(next, clock);
            }
            watch.exit();
            self.in_task.set(false);
        });
        self.clock_fresh.set(self.timing);
        let forced = coop::take_forced_yields();
        if forced > 0 {
            WorkerMetrics::bump(&m.budget_forced_yields, forced);
        }
    }

    /// The clock reading a poll starts at: the end of the previous poll if nothing
    /// happened since (see the module doc), else a fresh one. 0 when timing is off.
    #[inline]
    fn poll_start(&self) -> u64 {
        if !self.timing {
            0
        } else if self.clock_fresh.get() {
            clock::recent()
        } else {
            clock::refresh()
        }
    }

    /// The thread's recent clock reading is about to go stale (the worker reaps, parks,
    /// fires timers or steals): the next poll must read the clock. With `refresh`, read
    /// it now, for the tasks that are about to be woken.
    #[inline]
    fn invalidate_clock(&self, refresh: bool) {
        if self.timing {
            self.clock_fresh.set(false);
            if refresh {
                clock::refresh();
            }
        }
    }

    /// Polls `task`, which starts at reading `start`: records its scheduling latency
    /// and poll time and stamps its header. Returns the reading the poll ended at.
    #[inline]
    fn timed_poll(&self, task: Notified, start: u64) -> u64 {
        let header = task.header();
        header.last_worker.store(self.index as u16, Relaxed);
        if !self.timing {
            self.run_one(task);
            return 0;
        }
        let m = self.metrics();
        // The stamp says when it was woken; from now on, when this poll started. Nobody
        // else writes it meanwhile: we hold the task's only queue entry, and a wake
        // before the poll ends only sets a bit (the next schedule comes after it).
        let woken = header.stamp.load(Relaxed);
        header.stamp.store(start, Relaxed);
        m.sched_latency.record(start.saturating_sub(woken));
        // The header may be freed by the poll (the task completes): not touched after.
        self.run_one(task);
        let end = clock::refresh();
        m.poll_time.record(end.saturating_sub(start));
        end
    }

    /// One poll, with the recorder's and hooks' calls around it when they are on.
    #[inline]
    fn run_one(&self, task: Notified) {
        let Some(probe) = &self.probe else {
            return task.run();
        };
        let (id, location) = task.id_and_location();
        let meta = TaskMeta::new(id, location);
        probe.before_poll(meta);
        task.run();
        probe.after_poll(meta);
    }

    /// A searching worker that found work stops searching; if it was the last
    /// searcher, it wakes another worker to keep looking (Go's `resetspinning`).
    fn transition_from_searching(&self) {
        let was_searching = std::mem::replace(&mut self.core.borrow_mut().is_searching, false);
        if was_searching && self.shared.idle.transition_worker_from_searching() {
            self.shared.notify_parked();
        }
    }

    fn push_back(&self, task: Notified) {
        let overflowed = self
            .core
            .borrow_mut()
            .local
            .push_back_or_overflow(task, &self.shared.inject);
        if overflowed {
            WorkerMetrics::bump(&self.metrics().overflows, 1);
        }
        self.shared.notify_parked();
    }

    /// Schedules a task woken (or spawned) on this worker.
    fn schedule_local(&self, task: Notified, is_yield: bool) {
        WorkerMetrics::bump(&self.metrics().local_schedules, 1);
        if self.timing {
            task.header().stamp.store(clock::recent(), Relaxed);
        }
        if is_yield {
            // It goes to the back of the queue, behind a share of the injector: Go
            // sends a `Gosched` goroutine behind the global queue, and so does this
            // without a shared push per yield. Yielders that keep the queue busy then
            // cannot starve the injector, nor the injector them (the loop's bound).
            let first = {
                let mut core = self.core.borrow_mut();
                self.take_injector_share(&mut core.local)
            };
            if let Some(first) = first {
                self.push_back(first);
            }
            return self.push_back(task);
        }
        if !self.in_task.get() {
            // Completions reaped by the loop and timers go to the back of the queue.
            return self.push_back(task);
        }
        let displaced = self.core.borrow_mut().local.push_runnext(task);
        if let Some(prev) = displaced {
            self.push_back(prev);
        }
    }

    /// Submits queued SQEs and dispatches ready CQEs, without blocking.
    fn reap(&self) {
        WorkerMetrics::bump(&self.metrics().ring_reaps, 1);
        self.invalidate_clock(true);
        match self.ring.submit_and_reap() {
            Ok(reaped) => {
                if let Some(probe) = self.probe.as_ref().filter(|_| reaped > 0) {
                    probe.record(Kind::Reap, 0, reaped as u64);
                }
            }
            Err(err) => tracing::error!(worker = self.index, %err, "io_uring_enter failed"),
        }
    }

    fn steal_work(&self) -> Option<Notified> {
        self.invalidate_clock(false);
        {
            let mut core = self.core.borrow_mut();
            if !core.is_searching {
                if !self.shared.idle.transition_worker_to_searching() {
                    return None;
                }
                core.is_searching = true;
            }
        }
        let n = self.shared.remotes.len();
        let start = self.core.borrow_mut().rand.next_below(n);
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            let stolen = {
                let mut core = self.core.borrow_mut();
                self.shared.remotes[victim]
                    .steal
                    .steal_into(&mut core.local)
            };
            if let Some((task, count)) = stolen {
                let m = self.metrics();
                WorkerMetrics::bump(&m.steals, count as u64);
                WorkerMetrics::bump(&m.steal_operations, 1);
                let victim_metrics = &self.shared.remotes[victim].metrics;
                victim_metrics.robbed.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(worker = self.index, victim, count, "stole tasks");
                if let Some(probe) = &self.probe {
                    let arg = (count as u64) << 32 | victim as u64;
                    probe.record(Kind::Steal, task.id_and_location().0.as_u64(), arg);
                }
                return Some(task);
            }
        }
        // Someone may have injected while we searched.
        self.next_local_task()
    }

    /// Go's spinning M: the searching worker that found nothing watches the queues, its
    /// ring and its timer inbox for up to `Config::search_spin` before it parks, so a
    /// hand-off from a sibling in the meantime costs no park and no wake-up. Returns
    /// true if something showed up; the loop then looks again, still searching.
    ///
    /// Only a delay before `park`: it reads, takes nothing and stays counted as
    /// searching, so the idle protocol (idle.rs) is unchanged — producers skip the
    /// wake-up because a searcher exists, and if the spin misses their work, `park`'s
    /// last look as the last searcher finds it.
    fn spin_for_work(&self) -> bool {
        let spin = self.shared.config.search_spin;
        // Alone, there is no sibling whose hand-off the spin could catch.
        if spin.is_zero() || self.shared.remotes.len() < 2 {
            return false;
        }
        {
            let mut core = self.core.borrow_mut();
            if !core.is_searching || !core.spin.should_spin() {
                return false;
            }
        }
        let start = Instant::now();
        // Never past this worker's next timer: it fires only from the loop.
        let spin = self
            .timers
            .borrow()
            .park_timeout(start)
            .map_or(spin, |timer| timer.min(spin));
        if spin.is_zero() {
            // A timer is due: the loop fires it; no spin, so no miss either.
            return false;
        }
        let m = self.metrics();
        WorkerMetrics::bump(&m.search_spins, 1);
        loop {
            if self.shared.is_shutdown()
                || self.shared.any_work_queued()
                || self.ring.has_events()
                || !self.remote().timers.registrations.is_empty()
            {
                WorkerMetrics::bump(&m.search_spin_finds, 1);
                self.core.borrow_mut().spin.found();
                return true;
            }
            if start.elapsed() >= spin {
                self.core.borrow_mut().spin.missed();
                return false;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }

    /// Sleeps in the ring until there is something to do.
    fn park(&self) {
        let is_searching = std::mem::replace(&mut self.core.borrow_mut().is_searching, false);
        // Announces us as parked, fenced before the last look below (idle.rs).
        let was_last_searcher = self
            .shared
            .idle
            .transition_worker_to_parked(self.index, is_searching);
        let work_visible = self.shared.is_shutdown()
            || !self.shared.inject.is_empty()
            || self.core.borrow().local.has_tasks()
            || (was_last_searcher && self.shared.any_work_queued());
        if !work_visible {
            // Timers other threads queued for us count: they may be due before we wake.
            self.process_timers();
            let now = Instant::now();
            let timeout = self.timers.borrow().park_timeout(now);
            let m = self.metrics();
            let busy = now.saturating_duration_since(self.busy_since.get());
            WorkerMetrics::bump(&m.busy_ns, busy.as_nanos() as u64);
            WorkerMetrics::bump(&m.parks, 1);
            tracing::trace!(worker = self.index, ?timeout, "parking");
            if let Some(probe) = &self.probe {
                probe.record(Kind::Park, 0, 0);
            }
            // Tasks the park's completions wake read the clock themselves.
            clock::forget_recent();
            let parked = self.ring.park(timeout);
            self.invalidate_clock(true);
            if let Some(probe) = &self.probe {
                probe.record(Kind::Unpark, 0, *parked.as_ref().unwrap_or(&0) as u64);
            }
            if let Err(err) = parked {
                tracing::error!(worker = self.index, %err, "parking in io_uring failed");
            }
            WorkerMetrics::bump(&m.unparks, 1);
            self.busy_since.set(Instant::now());
        }
        if !self.shared.idle.transition_worker_from_parked(self.index) {
            // A producer picked us: we are counted as searching.
            self.core.borrow_mut().is_searching = true;
        }
    }

    /// Called when the loop ends: cancel every task, drop our queue entries.
    pub(crate) fn shut_down(&self) {
        let was_searching = std::mem::replace(&mut self.core.borrow_mut().is_searching, false);
        if was_searching {
            self.shared.idle.transition_worker_from_searching();
        }
        self.shared.owned.close_and_shutdown_all();
        let drained: Vec<Notified> = self.core.borrow_mut().local.drain().collect();
        drop(drained);
        // Let cancellations queued by the dropped futures reach the kernel now, while
        // the ring still runs; dropping the ring then only waits for their CQEs.
        self.reap();
        let drained: Vec<Notified> = self.core.borrow_mut().local.drain().collect();
        drop(drained);
    }
}

/// Where a woken or spawned task goes (the `Schedule` impl of the runtime).
pub(crate) fn schedule(shared: &Arc<Shared>, task: Notified, is_yield: bool) {
    context::with_worker(|worker| match worker {
        Some(cx) if Arc::ptr_eq(&cx.shared, shared) && !shared.is_shutdown() => {
            cx.schedule_local(task, is_yield)
        }
        _ => shared.schedule_remote(task),
    })
}

/// Where a woken task goes: [`schedule`], plus a wake event when recording.
pub(crate) fn wake(shared: &Arc<Shared>, task: Notified, is_yield: bool) {
    if !shared.config.instruments.is_on() {
        return schedule(shared, task, is_yield);
    }
    let id = task.id_and_location().0.as_u64();
    context::with_worker(|worker| match worker {
        Some(cx) if Arc::ptr_eq(&cx.shared, shared) && !shared.is_shutdown() => {
            if let Some(probe) = &cx.probe {
                let kind = if is_yield { Kind::Yield } else { Kind::Wake };
                probe.record(kind, id, cx.index as u64);
            }
            cx.schedule_local(task, is_yield)
        }
        _ => {
            shared
                .config
                .instruments
                .record_outside(Kind::Wake, id, TO_INJECTOR);
            shared.schedule_remote(task)
        }
    })
}

/// Tells the hooks and the recorder that a task was spawned, on the spawning worker
/// (or from outside).
pub(crate) fn task_spawned(shared: &Arc<Shared>, meta: TaskMeta) {
    let instruments = &shared.config.instruments;
    context::with_worker(|worker| match worker {
        Some(cx) if Arc::ptr_eq(&cx.shared, shared) => instruments.spawned(meta, cx.probe.as_ref()),
        _ => instruments.spawned(meta, None),
    })
}

/// Tells the hooks and the recorder that a task completed or was cancelled.
pub(crate) fn task_terminated(shared: &Arc<Shared>, task: &RawTask) {
    let header = task.header();
    let meta = TaskMeta::new(header.id, header.location);
    let instruments = &shared.config.instruments;
    context::with_worker(|worker| match worker {
        Some(cx) if Arc::ptr_eq(&cx.shared, shared) => {
            instruments.terminated(meta, cx.probe.as_ref())
        }
        _ => instruments.terminated(meta, None),
    })
}

/// Runs `f`, which blocks, on the current worker after handing the worker's queued
/// tasks to its siblings (see [`crate::task::block_in_place`]).
pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    struct Unblock<'a>(Option<&'a WorkerContext>);
    impl Drop for Unblock<'_> {
        fn drop(&mut self) {
            if let Some(cx) = self.0 {
                cx.remote().poll_watch.set_blocking(false);
            }
        }
    }
    context::with_worker(|worker| {
        let _unblock = Unblock(worker.filter(|cx| cx.hand_off_for_blocking()));
        f()
    })
}

impl WorkerContext {
    /// Moves everything queued on this worker (runnext and local queue) to
    /// the injector and wakes a sibling to take it. False if the queue is busy (we are
    /// inside the worker's own queue handling, e.g. a future dropped during shutdown).
    fn hand_off_for_blocking(&self) -> bool {
        let Ok(mut core) = self.core.try_borrow_mut() else {
            return false;
        };
        let mut tasks: Vec<Notified> = core.local.take_runnext().into_iter().collect();
        tasks.extend(core.local.drain());
        drop(core);
        self.remote().poll_watch.set_blocking(true);
        let handed = tasks.len();
        for task in tasks {
            if let Err(task) = self.shared.inject.push(task) {
                drop(task); // Shutting down: cancelled with the rest.
            }
        }
        if handed > 0 {
            self.shared.notify_parked();
        }
        tracing::debug!(
            worker = self.index,
            handed,
            "block_in_place: queue handed to siblings"
        );
        true
    }
}

/// Counts a spawn on the spawning worker's own counters, or on the shared remote
/// counter when the spawner is not one of this runtime's workers.
pub(crate) fn count_spawn(shared: &Arc<Shared>) {
    context::with_worker(|worker| match worker {
        Some(cx) if Arc::ptr_eq(&cx.shared, shared) => WorkerMetrics::bump(&cx.metrics().spawns, 1),
        _ => {
            shared.remote_spawns.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// When the search spin is worth its CPU. A spin that finds work saves a park and a
/// wake-up (a syscall on each side and two context switches, 10–20 µs of CPU here); a
/// spin that finds nothing burns `search_spin`. A sibling handing off work (a chain of
/// spawns, a burst being spread) is caught often; work arriving sporadically from
/// outside almost never. So each worker keeps a credit: a find earns `FIND_CREDIT`
/// spins, a miss costs one, which keeps spinning while at least one spin in five finds
/// something. Out of credit, the worker spins on one search in `RETRY_EVERY`, so it
/// notices when hand-offs come back.
struct SpinBackoff {
    credit: u32,
    skipped: u32,
}

impl Default for SpinBackoff {
    fn default() -> Self {
        SpinBackoff {
            credit: Self::MAX_CREDIT,
            skipped: 0,
        }
    }
}

impl SpinBackoff {
    const FIND_CREDIT: u32 = 4;
    const MAX_CREDIT: u32 = 16;
    const RETRY_EVERY: u32 = 16;

    fn should_spin(&mut self) -> bool {
        if self.credit > 0 {
            return true;
        }
        self.skipped = self.skipped.wrapping_add(1);
        self.skipped % Self::RETRY_EVERY == 0
    }

    fn found(&mut self) {
        self.credit = (self.credit + Self::FIND_CREDIT).min(Self::MAX_CREDIT);
    }

    fn missed(&mut self) {
        self.credit = self.credit.saturating_sub(1);
    }
}

/// xorshift64*: the victim choice only needs to spread steals, not be unpredictable.
struct FastRand(u64);

impl FastRand {
    fn new(seed: u64) -> Self {
        FastRand(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize) % n.max(1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SpinBackoff;

    #[test]
    fn spin_backs_off_when_it_rarely_finds_and_stays_on_when_it_often_does() {
        let mut spin = SpinBackoff::default();
        for _ in 0..SpinBackoff::MAX_CREDIT {
            assert!(spin.should_spin());
            spin.missed();
        }
        // Out of credit: one search in RETRY_EVERY spins.
        let spins = (0..10 * SpinBackoff::RETRY_EVERY)
            .filter(|_| spin.should_spin())
            .count();
        assert_eq!(spins, 10);
        // A retry that finds work earns spins back.
        spin.found();
        assert!((0..SpinBackoff::FIND_CREDIT).all(|_| {
            let spun = spin.should_spin();
            spin.missed();
            spun
        }));
        // One find in four spins (a chain of hand-offs) never runs out...
        let mut spin = SpinBackoff::default();
        for i in 0..1000 {
            assert!(spin.should_spin(), "ran out at spin {i}");
            if i % 4 == 0 {
                spin.found()
            } else {
                spin.missed()
            }
        }
        // ...one in ten (sporadic outside work) does.
        let mut spin = SpinBackoff::default();
        let spun = (0..1000)
            .filter(|i| {
                let spun = spin.should_spin();
                if spun {
                    if i % 10 == 0 {
                        spin.found()
                    } else {
                        spin.missed()
                    }
                }
                spun
            })
            .count();
        assert!(spun < 300, "kept spinning {spun} times in 1000");
    }
}
