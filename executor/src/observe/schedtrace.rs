//! `URINGO_SCHEDTRACE=<ms>`: Go's `GODEBUG=schedtrace`, one line of scheduler state per
//! interval on stderr.
//!
//! ```text
//! SCHED 3000ms: workers=2 searching=0 idle=1 injector=0 runq=[12 0] runnext=[1 0] inflight=[230 4] timers=[1000 3] steals=[0 57] blocking=0/512 polls=48211 schedlat_p50=3us schedlat_p99=41us schedlat_max=180us polltime_p99=12us
//! ```
//!
//! * `searching`: workers looking for work to steal; `idle`: workers asleep in their ring;
//! * `injector`: tasks in the global queue;
//! * per worker: `runq` tasks in the local queue, `runnext` 1 if the slot is taken,
//!   `inflight` ops in the ring, `timers` armed on the wheel, `steals` tasks stolen by it;
//! * `blocking`: blocking-pool threads / the most it may start;
//! * over the interval since the previous line, all workers together: `polls` timed,
//!   scheduling latency (wake to poll start) p50 / p99 / max, and poll time p99 — from
//!   the histograms of `RuntimeMetrics::sched_latency` and `poll_time` (absent when the
//!   runtime was built with `poll_timing(false)`).
//!
//! With `URINGO_SCHEDTRACE_DETAIL=1`, each line is followed by one line per worker with
//! its counters (Go's `scheddetail`). The trace thread only reads counters the workers
//! publish anyway; it costs the workers nothing.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::observe::histogram::DurationHistogram;
use crate::runtime::background::{BackgroundThread, StopSignal};
use crate::runtime::handle::Handle;
use crate::runtime::metrics::RuntimeMetrics;

/// Interval and detail flag from `URINGO_SCHEDTRACE` / `URINGO_SCHEDTRACE_DETAIL`.
pub(crate) fn from_env() -> Option<(Duration, bool)> {
    let ms = std::env::var("URINGO_SCHEDTRACE").ok()?;
    let ms: u64 = match ms.trim().parse() {
        Ok(ms) if ms > 0 => ms,
        _ => {
            tracing::warn!(value = %ms, "URINGO_SCHEDTRACE must be a positive number of milliseconds; ignored");
            return None;
        }
    };
    let detail = std::env::var("URINGO_SCHEDTRACE_DETAIL").is_ok_and(|v| v.trim() == "1");
    Some((Duration::from_millis(ms), detail))
}

/// Starts the trace thread; stopping the returned thread (or dropping it) joins it.
pub(crate) fn start(
    handle: Handle,
    interval: Duration,
    detail: bool,
) -> std::io::Result<BackgroundThread> {
    let metrics = handle.metrics();
    BackgroundThread::spawn("uringo-schedtrace", move |stop| {
        run(metrics, interval, detail, stop)
    })
}

fn run(metrics: RuntimeMetrics, interval: Duration, detail: bool, stop: &StopSignal) {
    let started = Instant::now();
    let mut next = started + interval;
    let mut seen = Histograms::of(&metrics);
    loop {
        let now = Instant::now();
        if now < next {
            if stop.sleep(next - now) {
                return;
            }
            continue;
        }
        let totals = Histograms::of(&metrics);
        let mut text = line(&metrics, next - started);
        latency_fields(&mut text, &totals.since(&seen));
        seen = totals;
        if detail {
            for worker in 0..metrics.num_workers() {
                text.push('\n');
                text.push_str(&detail_line(&metrics, worker));
            }
        }
        // stderr, like Go's trace; a closed stderr is not worth failing over.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
        next += interval;
    }
}

/// The summary line.
pub(crate) fn line(m: &RuntimeMetrics, at: Duration) -> String {
    let workers = 0..m.num_workers();
    let list = |f: &dyn Fn(usize) -> String| workers.clone().map(f).collect::<Vec<_>>().join(" ");
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "SCHED {}ms: workers={} searching={} idle={} injector={} runq=[{}] runnext=[{}] \
         inflight=[{}] timers=[{}] steals=[{}] blocking={}/{}",
        at.as_millis(),
        m.num_workers(),
        m.num_searching_workers(),
        m.num_parked_workers(),
        m.global_queue_depth(),
        list(&|w| m.worker_local_queue_depth(w).to_string()),
        list(&|w| u8::from(m.worker_has_runnext(w)).to_string()),
        list(&|w| in_flight(m, w).to_string()),
        list(&|w| m.worker_timer_count(w).to_string()),
        list(&|w| m.worker_steal_count(w).to_string()),
        m.num_blocking_threads(),
        m.max_blocking_threads(),
    );
    s
}

/// The two per-poll histograms, all workers together.
struct Histograms {
    sched_latency: DurationHistogram,
    poll_time: DurationHistogram,
}

impl Histograms {
    fn of(m: &RuntimeMetrics) -> Histograms {
        Histograms {
            sched_latency: m.sched_latency(),
            poll_time: m.poll_time(),
        }
    }

    fn since(&self, earlier: &Histograms) -> Histograms {
        Histograms {
            sched_latency: self.sched_latency.since(&earlier.sched_latency),
            poll_time: self.poll_time.since(&earlier.poll_time),
        }
    }
}

/// Appends the interval's latency figures (nothing if no poll was timed).
fn latency_fields(s: &mut String, interval: &Histograms) {
    let polls = interval.sched_latency.count();
    if polls == 0 {
        return;
    }
    let us = |d: Duration| d.as_micros();
    let _ = write!(
        s,
        " polls={polls} schedlat_p50={}us schedlat_p99={}us schedlat_max={}us polltime_p99={}us",
        us(interval.sched_latency.p50()),
        us(interval.sched_latency.p99()),
        us(interval.sched_latency.max()),
        us(interval.poll_time.p99()),
    );
}

/// One worker's counters (`URINGO_SCHEDTRACE_DETAIL=1`).
pub(crate) fn detail_line(m: &RuntimeMetrics, w: usize) -> String {
    let ring = m.worker_ring_metrics(w).unwrap_or_default();
    format!(
        "  W{w}: ticks={} polls={} runnext_polls={} mean_poll={}us steals={}/{} robbed={} \
         parks={} overflows={} injector_pops={} forced_yields={} runq={} inflight={} \
         submitted={} completions={} enters={} wakes_in={} wakes_out={} timers={} \
         timers_armed={} timers_fired={} timers_cancelled={}",
        m.worker_tick_count(w),
        m.worker_poll_count(w),
        m.worker_runnext_poll_count(w),
        m.worker_mean_poll_time(w).as_micros(),
        m.worker_steal_count(w),
        m.worker_steal_operations(w),
        m.worker_robbed_count(w),
        m.worker_park_count(w),
        m.worker_overflow_count(w),
        m.worker_injector_pop_count(w),
        m.worker_budget_forced_yield_count(w),
        m.worker_local_queue_depth(w),
        ring.in_flight,
        ring.submitted,
        ring.completions,
        ring.enters,
        ring.wake_requests,
        ring.wakes_sent,
        m.worker_timer_count(w),
        m.worker_timers_armed_count(w),
        m.worker_timers_fired_count(w),
        m.worker_timers_cancelled_count(w),
    )
}

fn in_flight(m: &RuntimeMetrics, w: usize) -> u64 {
    m.worker_ring_metrics(w).map_or(0, |r| r.in_flight)
}
