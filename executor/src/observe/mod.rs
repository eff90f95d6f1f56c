//! Observability of the scheduler: what the loop measures, counts and records, and the
//! threads that watch it.
//!
//! | file | what |
//! |---|---|
//! | `clock.rs` | the cheap clock (TSC where the kernel keeps time with it) and the thread's recent reading |
//! | `histogram.rs` | log-linear duration histograms (scheduling latency, poll time) |
//! | `metrics.rs` | per-worker counters, written by their worker only |
//! | `stats.rs` | [`stats::WorkerStats`]: the loop's one door to all of the above, plus poll timing, dump stamps and trace probes |
//! | `leak.rs` | the live-task watermark warning |
//! | `schedtrace.rs` | `URINGO_SCHEDTRACE`: one line of scheduler state per interval |
//! | `monitor.rs` | Go's sysmon: finds a worker stuck in one poll and hands out its queue |
//! | `wait.rs` | what a task's latest poll left it waiting on (op, timer, join), for task dumps |
//!
//! Everything here costs nothing when it is off: each probe is one predictable branch.

pub(crate) mod clock;
pub(crate) mod histogram;
pub(crate) mod leak;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod poll_watch;
pub(crate) mod schedtrace;
pub(crate) mod stats;
pub(crate) mod wait;
