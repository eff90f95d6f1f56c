//! Per-worker counters. Each is written by its worker only (relaxed load + store, no
//! locked instruction on the hot path) and read by anyone through `RuntimeMetrics`.
//!
//! Plain std atomics even under loom: counters decide nothing, so loom need not explore
//! their orders (and every poll would otherwise multiply its interleavings).

use crate::observe::histogram::Recorder;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub(crate) struct WorkerMetrics {
    /// Task polls (including cancellations run by this worker).
    pub(crate) polls: AtomicU64,
    /// Tasks moved into this worker's queue by stealing.
    pub(crate) steals: AtomicU64,
    /// Successful steal operations (each moves up to half a sibling's queue).
    pub(crate) steal_operations: AtomicU64,
    /// Times the worker went to sleep in its ring.
    pub(crate) parks: AtomicU64,
    /// Tasks this worker put in its own queue or runnext slot.
    pub(crate) local_schedules: AtomicU64,
    /// Times the local queue was full and half of it moved to the injector.
    pub(crate) overflows: AtomicU64,
    /// Tasks taken from the global injection queue.
    pub(crate) injector_pops: AtomicU64,
    /// Polls that ran from the runnext slot.
    pub(crate) runnext_polls: AtomicU64,
    /// Times a task's budget ran out and a uringo future made it yield.
    pub(crate) budget_forced_yields: AtomicU64,
    /// Non-blocking ring reaps done by the loop.
    pub(crate) ring_reaps: AtomicU64,
    /// Timers that fired on this worker's wheel.
    pub(crate) timers_fired: AtomicU64,
    /// Tasks spawned by this worker's tasks.
    pub(crate) spawns: AtomicU64,
    /// Iterations of the scheduling loop.
    pub(crate) ticks: AtomicU64,
    /// Times the worker woke from a park.
    pub(crate) unparks: AtomicU64,
    /// Spins before parking (`Config::search_spin`).
    pub(crate) search_spins: AtomicU64,
    /// Those that ended because work showed up, saving a park.
    pub(crate) search_spin_finds: AtomicU64,
    /// Nanoseconds spent awake (between parks).
    pub(crate) busy_ns: AtomicU64,
    /// Times a sibling stole from this worker. Written by the stealers (so an RMW, on a
    /// line of its own): steals are rare next to polls.
    pub(crate) robbed: crossbeam_utils::CachePadded<AtomicU64>,
    /// Polls the monitor found running longer than its threshold (written by the
    /// monitor, rarely).
    pub(crate) stuck_polls: AtomicU64,
    /// Runnext tasks the monitor took from this worker while it was stuck.
    pub(crate) retaken: AtomicU64,
    /// Wake (or spawn) to poll start, per poll (when per-poll timing is on).
    pub(crate) sched_latency: Recorder,
    /// Time inside each poll (when per-poll timing is on).
    pub(crate) poll_time: Recorder,
}

impl WorkerMetrics {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed) + n, Relaxed);
    }

    /// Increment by a thread other than the worker (the monitor).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn bump_shared(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
