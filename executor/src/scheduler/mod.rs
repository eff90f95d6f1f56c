//! The scheduler: Go's P on every worker, with the kernel's completion queue reaped in
//! the scheduling loop. One protocol per file:
//!
//! | file | what |
//! |---|---|
//! | `queue.rs` | the P's 256-slot local run queue and runnext slot (`Local` / `Steal`) |
//! | `inject.rs` | the global injection queue |
//! | `idle.rs` | who sleeps, who searches (Go's spinning-M rule), no lost wake-ups |
//! | `shared.rs` | what every thread may touch: [`Shared`] (Go's `sched`) and each worker's [`Remote`] |
//! | `schedule.rs` | where a spawned, woken or yielding task goes; "am I this runtime's worker?" |
//! | `driver.rs` | what the loop needs of the kernel ([`driver::Driver`]), and the io_uring driver |
//! | `worker/` | the scheduling loop (`findrunnable`), its fairness bound, parking, stealing |
//!
//! The observability the loop feeds (counters, histograms, the monitor) is `observe/`.

pub(crate) mod driver;
pub(crate) mod idle;
pub(crate) mod inject;
pub(crate) mod queue;
pub(crate) mod schedule;
mod shared;
#[cfg(all(test, not(loom)))]
mod sim;
pub(crate) mod worker;

pub(crate) use shared::{Remote, Shared};

/// Scheduler settings fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Every this many ticks a worker looks at the injector before its own queue.
    pub(crate) global_queue_interval: u32,
    /// Every this many ticks a worker reaps its ring even when its queue is full.
    pub(crate) event_interval: u32,
    /// Consecutive runnext polls before the runnext task must go through the queue.
    pub(crate) max_runnext_polls: u32,
    /// Poll timing (scheduling-latency and poll-time histograms, last-poll stamps), and
    /// which share of the scheduling events it times; `None`: off.
    pub(crate) poll_timing: Option<crate::observe::clock::Sampling>,
    /// Enter tasks in the live-task registry (off only to measure what it costs).
    pub(crate) task_registry: bool,
    /// How long a searching worker that found nothing keeps looking before it parks.
    pub(crate) search_spin: std::time::Duration,
    /// The event recorder and task hooks (`trace/`); all `None` unless asked for.
    pub(crate) instruments: crate::trace::Instruments,
}

impl Default for Config {
    /// Go's constants: the injector every 61 ticks, the ring every 61 ticks, runnext at
    /// most 3 polls in a row; one poll in 32 timed (`observe/clock.rs` says why not
    /// Go's 8); no recorder, no hooks.
    fn default() -> Config {
        Config {
            global_queue_interval: 61,
            event_interval: 61,
            max_runnext_polls: 3,
            poll_timing: Some(crate::observe::clock::Sampling::one_in(
                crate::observe::clock::DEFAULT_SAMPLE,
            )),
            task_registry: true,
            search_spin: std::time::Duration::ZERO,
            instruments: crate::trace::Instruments::default(),
        }
    }
}
