//! The monitor thread: Go's sysmon, for workers stuck inside one poll.
//!
//! A task that blocks its thread (a long computation, a blocking syscall) stalls every
//! task queued behind it on that worker. Siblings can steal from its local queue, but
//! only if they are awake and looking, and nobody can take its runnext slot (tokio
//! cannot either: tokio issues #4941 and #4730). So a monitor thread watches the
//! workers the way sysmon watches Ps:
//!
//! * each worker publishes the task it is polling (id and spawn location) and counts
//!   polls (`WorkerMetrics::polls`, Go's `schedtick`); the monitor notes when it last
//!   saw each worker's count change;
//! * a worker whose count has not moved for longer than the threshold (default 10 ms)
//!   while it is inside a poll is *stuck*: the monitor logs a warning with the task's
//!   id and spawn location (once per stuck poll), moves the worker's runnext task to the
//!   injector, and wakes a parked sibling, which then takes the injector's tasks and
//!   steals half of the stuck worker's queue;
//! * it sleeps 20 µs after it first hands out a stuck poll's work and doubles the sleep
//!   each round after that, as sysmon does, up to a cap that depends on what it saw:
//!   half the threshold while a worker is inside a poll (a stuck poll is caught within
//!   1.5 thresholds), 10 ms while a worker is awake between polls, and [`IDLE_DELAY`]
//!   (250 ms) once every worker is parked. A parked worker cannot be stuck, so an idle
//!   runtime costs four wake-ups a second (each costs 30–70 µs of CPU on the 2-vCPU VM
//!   this was measured on, so ten a second would be 0.3–0.7 ms/s); the price is that a
//!   poll that gets stuck right after a long idle spell is reported up to 250 ms later
//!   than one during busy work. (Waking the monitor from every unpark instead, as Go
//!   wakes sysmon out of `sysmonwait`, would wake it at every tick of a timer-driven
//!   runtime: one wake-up per timer.)
//!
//! What it cannot do: the stuck worker's ring is only reaped by that worker, so I/O
//! completions of tasks waiting on it are delivered when the poll returns. Code that
//! blocks should run in `spawn_blocking` (or `task::block_in_place`, which hands the
//! worker's queue to siblings up front).
//!
//! Under loom the monitor thread is not started (loom cannot run a free-running std
//! thread beside its modelled ones), so most of this file is unused there.
#![cfg_attr(loom, allow(dead_code))]

use std::time::{Duration, Instant};

use super::metrics::WorkerMetrics;
use crate::loom::sync::Arc;
use crate::runtime::background::{BackgroundThread, StopSignal};
use crate::scheduler::Shared;

const FIRST_DELAY: Duration = Duration::from_micros(20);
const MAX_DELAY: Duration = Duration::from_millis(10);
/// How long the monitor sleeps, at most, while every worker is parked.
pub(crate) const IDLE_DELAY: Duration = Duration::from_millis(250);

/// Starts the monitor thread; stopping the returned thread (or dropping it) joins it.
pub(crate) fn start(shared: Arc<Shared>, threshold: Duration) -> std::io::Result<BackgroundThread> {
    BackgroundThread::spawn("uringo-monitor", move |stop| run(&shared, threshold, stop))
}

/// The monitor's memory of one worker.
#[derive(Clone, Copy)]
struct Seen {
    polls: u64,
    since: Instant,
    reported: bool,
    /// Work has been handed out of this stuck poll already.
    retaken: bool,
}

fn run(shared: &Shared, threshold: Duration, stop: &StopSignal) {
    let now = Instant::now();
    let mut seen = vec![
        Seen {
            polls: 0,
            since: now,
            reported: false,
            retaken: false,
        };
        shared.remotes.len()
    ];
    let mut delay = FIRST_DELAY;
    loop {
        if stop.sleep(delay) || shared.is_shutdown() {
            return;
        }
        let now = Instant::now();
        let mut retook = false;
        for (index, seen) in seen.iter_mut().enumerate() {
            retook |= check(shared, index, seen, now, threshold);
        }
        // While some worker is inside a poll, look at least twice per threshold, so a
        // stuck poll is caught within 1.5 thresholds; an idle runtime backs off fully.
        let in_poll = shared
            .remotes
            .iter()
            .any(|r| r.poll_watch.current().is_some());
        let cap = if in_poll {
            (threshold / 2).clamp(FIRST_DELAY, MAX_DELAY)
        } else if shared.idle.num_unparked() == 0 {
            IDLE_DELAY
        } else {
            MAX_DELAY
        };
        delay = if retook {
            FIRST_DELAY
        } else {
            (delay * 2).min(cap)
        };
    }
}

/// Looks at one worker; returns true if it is stuck and this round is the first to hand
/// out its work.
fn check(
    shared: &Shared,
    index: usize,
    seen: &mut Seen,
    now: Instant,
    threshold: Duration,
) -> bool {
    let remote = &shared.remotes[index];
    let polls = WorkerMetrics::get(&remote.metrics.polls);
    let current = remote.poll_watch.current();
    if current.is_none() || polls != seen.polls {
        *seen = Seen {
            polls,
            since: now,
            reported: false,
            retaken: false,
        };
        return false;
    }
    let stuck_for = now.saturating_duration_since(seen.since);
    if stuck_for < threshold {
        return false;
    }
    let (task, location) = current.expect("checked above");
    let blocking_on_purpose = remote.poll_watch.is_blocking();
    if !seen.reported && !blocking_on_purpose {
        seen.reported = true;
        WorkerMetrics::bump_shared(&remote.metrics.stuck_polls);
        tracing::warn!(
            worker = index,
            task = task,
            spawned_at = %location.map_or_else(|| "?".to_string(), |l| l.to_string()),
            stuck_for_ms = stuck_for.as_millis() as u64,
            "a task has been running for too long without yielding; its worker's queued \
             tasks are being handed to other workers (move blocking work to spawn_blocking)"
        );
    }
    // Only the first hand-out of a stuck poll sends the monitor back to its shortest
    // sleep. A poll that keeps spawning refills runnext at once, and retaking it every
    // 20 µs would cost two context switches per task moved, on the cores the runtime
    // needs; later rounds back off as quiet ones do and still hand out what they find.
    let first = !seen.retaken;
    seen.retaken |= retake(shared, index);
    first && seen.retaken
}

/// Moves the stuck worker's runnext task to the injector and wakes a sibling to run it
/// and steal from the stuck worker's queue. True if there was anything to hand out.
fn retake(shared: &Shared, index: usize) -> bool {
    let remote = &shared.remotes[index];
    let mut moved = false;
    if let Some(task) = remote.steal.steal_runnext() {
        moved = true;
        let id = task.id_and_location().0.as_u64();
        let instruments = &shared.config.instruments;
        instruments.record_outside(crate::trace::Kind::Retake, id, index as u64);
        WorkerMetrics::bump_shared(&remote.metrics.retaken);
        if let Err(task) = shared.inject.push(task) {
            drop(task); // Shutting down: the task is cancelled with the rest.
        }
    }
    if moved || !remote.steal.is_empty() {
        shared.notify_parked();
        return true;
    }
    false
}
