//! What the scheduler did, for dashboards and tests.

use std::fmt;
use std::time::Duration;

use super::Handle;
use crate::loom::sync::Ordering;
use crate::observe::clock;
use crate::observe::histogram::DurationHistogram;
use crate::observe::metrics::WorkerMetrics;

/// A view of a runtime's counters. Counters are monotonic since the runtime started;
/// gauges (`*_depth`, `num_*`) are instantaneous.
///
/// ```
/// let rt = uringo::Builder::new().worker_threads(2).build()?;
/// rt.block_on(async { uringo::spawn(async {}).await.unwrap() });
/// let m = rt.metrics();
/// let polls: u64 = (0..m.num_workers()).map(|w| m.worker_poll_count(w)).sum();
/// assert!(polls >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    handle: Handle,
}

impl RuntimeMetrics {
    pub(crate) fn new(handle: Handle) -> Self {
        RuntimeMetrics { handle }
    }

    fn worker(&self, worker: usize) -> &WorkerMetrics {
        &self.handle.shared().remotes[worker].metrics
    }

    /// Number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.handle.shared().remotes.len()
    }

    /// Tasks spawned and not yet complete.
    pub fn num_alive_tasks(&self) -> usize {
        self.handle.shared().owned.len()
    }

    /// Tasks that completed but whose `JoinHandle` has neither taken the output nor been
    /// dropped: their outputs are held in memory until it does (a dump lists them as
    /// `completed, not joined`). Locks each registry shard briefly.
    pub fn num_unjoined_tasks(&self) -> usize {
        let owned = &self.handle.shared().owned;
        owned.entries().saturating_sub(owned.len())
    }

    /// Tasks spawned since the runtime started (from workers and from outside).
    pub fn spawned_tasks_count(&self) -> u64 {
        let shared = self.handle.shared();
        let from_workers: u64 = (0..self.num_workers())
            .map(|w| WorkerMetrics::get(&self.worker(w).spawns))
            .sum();
        from_workers + shared.outside.spawns.load(Ordering::Relaxed)
    }

    /// Tasks waiting in the global injection queue.
    pub fn global_queue_depth(&self) -> usize {
        self.handle.shared().inject.len()
    }

    /// Tasks scheduled from threads that are not workers (through the global queue).
    pub fn remote_schedule_count(&self) -> u64 {
        self.handle
            .shared()
            .outside
            .schedules
            .load(Ordering::Relaxed)
    }

    /// Workers currently looking for work to steal.
    pub fn num_searching_workers(&self) -> usize {
        self.handle.shared().idle.num_searching()
    }

    /// Workers currently asleep in their ring.
    pub fn num_parked_workers(&self) -> usize {
        self.num_workers() - self.handle.shared().idle.num_unparked()
    }

    /// Threads in the blocking pool.
    pub fn num_blocking_threads(&self) -> usize {
        self.handle.blocking().thread_counts().0
    }

    /// Idle threads in the blocking pool.
    pub fn num_idle_blocking_threads(&self) -> usize {
        self.handle.blocking().thread_counts().1
    }

    /// Blocking tasks waiting for a thread.
    pub fn blocking_queue_depth(&self) -> usize {
        self.handle.blocking().queue_depth()
    }

    /// Task polls run by `worker`.
    pub fn worker_poll_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).polls)
    }

    /// Polls `worker` ran straight from its runnext slot.
    pub fn worker_runnext_poll_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).runnext_polls)
    }

    /// Tasks `worker` stole from siblings.
    pub fn worker_steal_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).steals)
    }

    /// Successful steal operations of `worker` (each takes up to half a queue).
    pub fn worker_steal_operations(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).steal_operations)
    }

    /// Times `worker` went to sleep in its ring.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).parks)
    }

    /// Tasks `worker` scheduled onto itself (wakes and spawns from its own tasks).
    pub fn worker_local_schedule_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).local_schedules)
    }

    /// Times `worker`'s queue overflowed into the global queue.
    pub fn worker_overflow_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).overflows)
    }

    /// Tasks `worker` took from the global queue.
    pub fn worker_injector_pop_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).injector_pops)
    }

    /// Times a task on `worker` ran out of budget and was made to yield.
    pub fn worker_budget_forced_yield_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).budget_forced_yields)
    }

    /// Non-blocking ring reaps `worker`'s loop did.
    pub fn worker_ring_reap_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).ring_reaps)
    }

    /// Timers that fired on `worker`'s wheel.
    pub fn worker_timers_fired_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).timers_fired)
    }

    /// Timers armed on `worker`'s wheel right now.
    pub fn worker_timer_count(&self, worker: usize) -> usize {
        self.handle.shared().remotes[worker]
            .timers
            .len
            .load(Ordering::Relaxed)
    }

    /// Iterations of `worker`'s scheduling loop.
    pub fn worker_tick_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).ticks)
    }

    /// Times `worker` woke up from a park.
    pub fn worker_unpark_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).unparks)
    }

    /// Times `worker` spun before parking, watching for work
    /// ([`Builder::search_spin`](crate::Builder::search_spin)).
    pub fn worker_search_spin_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).search_spins)
    }

    /// Spins on `worker` that found work, each a park and a wake-up saved.
    pub fn worker_search_spin_find_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).search_spin_finds)
    }

    /// Times a sibling stole tasks from `worker`.
    pub fn worker_robbed_count(&self, worker: usize) -> u64 {
        self.worker(worker).robbed.load(Ordering::Relaxed)
    }

    /// Time `worker` spent awake, up to its last park (a worker that never parks shows
    /// zero: the clock is read once per park, not per poll).
    pub fn worker_busy_duration(&self, worker: usize) -> Duration {
        Duration::from_nanos(WorkerMetrics::get(&self.worker(worker).busy_ns))
    }

    /// Busy time per poll on `worker`: [`worker_busy_duration`](Self::worker_busy_duration)
    /// over the polls it covers. It includes the loop's own work between polls (reaping,
    /// timers), so it slightly overstates the time inside `poll`.
    pub fn worker_mean_poll_time(&self, worker: usize) -> Duration {
        let polls = self.worker_poll_count(worker).max(1);
        self.worker_busy_duration(worker) / polls.min(u32::MAX as u64) as u32
    }

    /// Polls on `worker` that the monitor found running past the stuck threshold.
    pub fn worker_stuck_poll_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).stuck_polls)
    }

    /// Runnext tasks the monitor moved off `worker` while it was stuck.
    pub fn worker_retaken_count(&self, worker: usize) -> u64 {
        WorkerMetrics::get(&self.worker(worker).retaken)
    }

    /// Whether `worker`'s runnext slot holds a task right now.
    pub fn worker_has_runnext(&self, worker: usize) -> bool {
        self.handle.shared().remotes[worker].steal.has_runnext()
    }

    /// Timers ever armed on `worker`'s wheel.
    pub fn worker_timers_armed_count(&self, worker: usize) -> u64 {
        let timers = &self.handle.shared().remotes[worker].timers;
        timers.armed.load(Ordering::Relaxed)
    }

    /// Timers removed from `worker`'s wheel before they fired.
    pub fn worker_timers_cancelled_count(&self, worker: usize) -> u64 {
        let timers = &self.handle.shared().remotes[worker].timers;
        timers.cancelled.load(Ordering::Relaxed)
    }

    /// The most threads the blocking pool may start.
    pub fn max_blocking_threads(&self) -> usize {
        self.handle.blocking().max_threads()
    }

    /// Tasks in `worker`'s local queue right now.
    pub fn worker_local_queue_depth(&self, worker: usize) -> usize {
        self.handle.shared().remotes[worker].steal.len()
    }

    /// Scheduling latency on `worker`: for each timed poll, the time from the task being
    /// woken (or spawned) to the poll starting — how long runnable work waited for a
    /// worker, Go's `/sched/latencies:seconds`. Like Go's, it is a random sample, one
    /// poll in 32 unless [`Builder::poll_timing_sample`](crate::Builder::poll_timing_sample)
    /// says otherwise: its quantiles estimate those of all polls, its count is about a
    /// thirty-second of [`worker_poll_count`](Self::worker_poll_count). Empty when the runtime
    /// was built with [`poll_timing(false)`](crate::Builder::poll_timing).
    ///
    /// ```
    /// let rt = uringo::Builder::new().worker_threads(1).poll_timing_sample(1).build()?;
    /// rt.block_on(async {
    ///     for _ in 0..100 {
    ///         uringo::spawn(uringo::task::yield_now()).await.unwrap();
    ///     }
    /// });
    /// let latency = rt.metrics().worker_sched_latency(0);
    /// assert!(latency.count() >= 200); // two polls per task
    /// println!("p50 {:?} p99 {:?} max {:?}", latency.p50(), latency.p99(), latency.max());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn worker_sched_latency(&self, worker: usize) -> DurationHistogram {
        self.worker(worker)
            .sched_latency
            .snapshot_at(clock::nanos_per_tick())
    }

    /// Time inside each timed poll on `worker` (see
    /// [`worker_sched_latency`](Self::worker_sched_latency) for when it is recorded).
    pub fn worker_poll_time(&self, worker: usize) -> DurationHistogram {
        self.worker(worker)
            .poll_time
            .snapshot_at(clock::nanos_per_tick())
    }

    /// Scheduling latency of all workers together.
    pub fn sched_latency(&self) -> DurationHistogram {
        self.merged(|w| self.worker_sched_latency(w))
    }

    /// Poll time of all workers together.
    pub fn poll_time(&self) -> DurationHistogram {
        self.merged(|w| self.worker_poll_time(w))
    }

    fn merged(&self, f: impl Fn(usize) -> DurationHistogram) -> DurationHistogram {
        let mut all = f(0);
        for w in 1..self.num_workers() {
            all.merge(&f(w));
        }
        all
    }

    /// The counters of `worker`'s io_uring ring (submissions, enters, parks, wakes...).
    pub fn worker_ring_metrics(&self, worker: usize) -> Option<uringo_uring::RingMetrics> {
        self.handle.shared().remotes[worker]
            .ring
            .get()
            .map(|r| r.metrics())
    }
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RuntimeMetrics");
        d.field("num_workers", &self.num_workers())
            .field("num_alive_tasks", &self.num_alive_tasks())
            .field("global_queue_depth", &self.global_queue_depth());
        for w in 0..self.num_workers() {
            d.field(
                "worker",
                &(
                    w,
                    self.worker_poll_count(w),
                    self.worker_steal_count(w),
                    self.worker_park_count(w),
                ),
            );
        }
        d.finish()
    }
}
