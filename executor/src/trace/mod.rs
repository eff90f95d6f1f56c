//! The scheduler event recorder and the task hooks.
//!
//! # Recording a trace
//!
//! Off by default. Turn it on with [`Builder::trace_recorder`](crate::Builder::trace_recorder)
//! or, without code, `URINGO_TRACE=<path>`. Every worker then appends fixed-size events
//! (40 bytes with their seqlock stamp) to its own ring buffer: task spawned (id, spawn location), poll start/end,
//! wake (and the queue the task went to), yield, steal (victim, count), park/unpark,
//! ring reaps with the number of completions they dispatched (not per-op submit and
//! complete events with the op kind: SQEs and CQEs are handled inside `uringo-uring`,
//! which would need a hook per op; the reap counts come free from `submit_and_reap`),
//! timer fires (count), and the monitor's retakes of a stuck worker. Only the worker writes its buffer (a
//! per-slot seqlock, no lock, no shared cache line); events from other threads (spawns
//! from `block_on`, wakes from outside, the monitor) go to one small locked log. Each
//! buffer keeps the newest [`Builder::trace_events_per_worker`](crate::Builder::trace_events_per_worker)
//! events (default 65 536, 2.5 MiB per worker); older ones are dropped and counted.
//!
//! When the runtime shuts down (and whenever you call
//! [`Handle::write_trace`](crate::Handle::write_trace)) two files are written next to
//! the path, with its extension replaced:
//!
//! * `<path>.json` — Chrome Trace Event format. Open it in <https://ui.perfetto.dev>
//!   (drag the file in) or `chrome://tracing`. One thread (`tid`) per worker plus one
//!   for events from outside; each poll is a complete event (`ph: "X"`) named
//!   `task <id>` with the spawn location in its args; parks are `parked` slices; wakes
//!   and steals are instant events with flow arrows to where the task next ran; spawns,
//!   reaps, timer fires and retakes are instant events with their numbers in `args`.
//!   `otherData.dropped` counts events lost to the bounded buffers.
//! * `<path>.html` — a self-contained timeline (no network: script, style and data are
//!   inline). Open it in any browser. One lane per worker (plus "outside"), a bar per
//!   poll coloured by task, grey bands while parked, arrows for wakes (from where the
//!   waker ran to where the task next ran) and steals (victim → thief). Wheel zooms
//!   around the pointer, drag pans, hovering a bar shows the task id, spawn location,
//!   duration and what woke it; the header sums up each worker (busy time, polls,
//!   steals, parks).
//!
//! # Cost
//!
//! Off: every event site is one branch on a field of the worker's own context
//! (`Option::is_some`) or on a plain `bool` in the runtime's shared config, taken the
//! same way for the runtime's whole life. `headtohead --filter
//! spawn_many_local,yield_many,ping_pong` (release, 2 workers, on a 2-core machine
//! shared with other builds, so ±50 % noise between runs) gave the same uringo medians
//! before and after the recorder was added: spawn_many_local 2.1–2.3 ms vs 2.2–2.4 ms
//! per iteration, ping_pong 371–398 µs vs 331–405 µs, yield_many 5.9–12.0 ms vs
//! 6.5–9.6 ms — no difference that the noise lets us see.
//!
//! On: one clock read (`Instant::now`, a vDSO `rdtsc` here) and six relaxed stores per
//! event, about three events per poll (wake, poll start, poll end). Measured with
//! `URINGO_TRACE` set for the same benchmark: spawn_many_local 3.2–4.0 ms (about 1.4×
//! off), ping_pong 650–700 µs (about 1.6×), yield_many 20–21 ms (about 3.6×: a yield is
//! a few tens of nanoseconds, so three events per yield dominate it — the worst case).
//! Writing the files happens only at shutdown or on demand.
//!
//! # Task hooks
//!
//! [`Builder::on_task_spawn`](crate::Builder::on_task_spawn),
//! [`on_task_terminate`](crate::Builder::on_task_terminate),
//! [`on_before_task_poll`](crate::Builder::on_before_task_poll) and
//! [`on_after_task_poll`](crate::Builder::on_after_task_poll) run a closure with the
//! task's [`TaskMeta`]. They run on the thread where the event happens, inline: keep
//! them short. With none set, the cost is the same single branch.

mod buffer;
mod chrome;
mod event;
mod html;

use std::fmt;
use std::io;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use self::buffer::{EventRing, SharedLog};
pub(crate) use self::event::{Event, Kind, TO_INJECTOR};
use crate::runtime::task::Id;

/// What a task hook is told about the task: its id and where it was spawned.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let spawned = Arc::new(AtomicUsize::new(0));
/// let counter = spawned.clone();
/// let rt = uringo::Builder::new()
///     .on_task_spawn(move |meta: &uringo::TaskMeta| {
///         assert!(meta.spawned_at().file().ends_with(".rs"));
///         counter.fetch_add(1, Ordering::Relaxed);
///     })
///     .build()?;
/// rt.block_on(rt.spawn(async {})).unwrap();
/// assert_eq!(spawned.load(Ordering::Relaxed), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct TaskMeta {
    id: Id,
    location: &'static Location<'static>,
}

impl TaskMeta {
    pub(crate) fn new(id: Id, location: &'static Location<'static>) -> TaskMeta {
        TaskMeta { id, location }
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Where the task was spawned (the caller of `spawn`).
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.location
    }
}

impl fmt::Debug for TaskMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskMeta")
            .field("id", &self.id)
            .field("spawned_at", &format_args!("{}", self.location))
            .finish()
    }
}

/// A task hook.
pub(crate) type TaskHook = Arc<dyn Fn(&TaskMeta) + Send + Sync>;

/// The task hooks set on the builder.
#[derive(Clone, Default)]
pub(crate) struct TaskHooks {
    pub(crate) on_spawn: Option<TaskHook>,
    pub(crate) on_terminate: Option<TaskHook>,
    pub(crate) before_poll: Option<TaskHook>,
    pub(crate) after_poll: Option<TaskHook>,
}

impl TaskHooks {
    fn is_empty(&self) -> bool {
        self.on_spawn.is_none()
            && self.on_terminate.is_none()
            && self.before_poll.is_none()
            && self.after_poll.is_none()
    }
}

/// Recorder settings from the builder.
#[derive(Clone, Debug)]
pub(crate) struct RecorderConfig {
    /// Where to write the files at shutdown.
    pub(crate) path: PathBuf,
    pub(crate) events_per_worker: usize,
}

impl RecorderConfig {
    /// `URINGO_TRACE=<path>`.
    pub(crate) fn from_env(events_per_worker: usize) -> Option<RecorderConfig> {
        let path = std::env::var_os("URINGO_TRACE").filter(|p| !p.is_empty())?;
        Some(RecorderConfig {
            path: PathBuf::from(path),
            events_per_worker,
        })
    }
}

/// Everything observing the scheduler: `None` fields cost one branch each.
#[derive(Clone, Default)]
pub(crate) struct Instruments {
    /// Either of the below is set.
    on: bool,
    pub(crate) recorder: Option<Arc<Recorder>>,
    pub(crate) hooks: Option<Arc<TaskHooks>>,
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments")
            .field("recorder", &self.recorder.is_some())
            .field("hooks", &self.hooks.is_some())
            .finish()
    }
}

impl Instruments {
    pub(crate) fn new(
        workers: usize,
        recorder: Option<RecorderConfig>,
        hooks: &TaskHooks,
    ) -> Instruments {
        Instruments {
            on: recorder.is_some() || !hooks.is_empty(),
            recorder: recorder.map(|config| Arc::new(Recorder::new(workers, config))),
            hooks: (!hooks.is_empty()).then(|| Arc::new(hooks.clone())),
        }
    }

    /// Whether anything observes the scheduler.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// The probe a worker keeps in its context; `None` when nothing observes.
    pub(crate) fn worker_probe(&self, index: usize) -> Option<WorkerProbe> {
        if !self.on {
            return None;
        }
        Some(WorkerProbe {
            index,
            recorder: self.recorder.clone(),
            hooks: self.hooks.clone(),
        })
    }

    /// A task was spawned, from `worker` (or from outside).
    #[inline]
    pub(crate) fn spawned(&self, meta: TaskMeta, worker: Option<&WorkerProbe>) {
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.on_spawn.as_ref()) {
            hook(&meta);
        }
        if let Some(recorder) = &self.recorder {
            recorder.record_from(
                worker,
                Kind::Spawn,
                meta.id.as_u64(),
                0,
                Some(meta.location),
            );
        }
    }

    /// A task completed or was cancelled, on `worker` (or elsewhere).
    #[inline]
    pub(crate) fn terminated(&self, meta: TaskMeta, worker: Option<&WorkerProbe>) {
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.on_terminate.as_ref()) {
            hook(&meta);
        }
        if let Some(recorder) = &self.recorder {
            recorder.record_from(worker, Kind::Terminate, meta.id.as_u64(), 0, None);
        }
    }

    /// An event from a thread that is not a worker (the monitor, a waker elsewhere).
    pub(crate) fn record_outside(&self, kind: Kind, task: u64, arg: u64) {
        if let Some(recorder) = &self.recorder {
            recorder.record_from(None, kind, task, arg, None);
        }
    }
}

/// A worker's view of the instruments: its own buffer and the hooks.
pub(crate) struct WorkerProbe {
    index: usize,
    recorder: Option<Arc<Recorder>>,
    hooks: Option<Arc<TaskHooks>>,
}

impl WorkerProbe {
    /// Records an event on this worker.
    #[inline]
    pub(crate) fn record(&self, kind: Kind, task: u64, arg: u64) {
        if let Some(recorder) = &self.recorder {
            recorder.record_on(self.index, kind, task, arg, None);
        }
    }

    /// A poll starts.
    #[inline]
    pub(crate) fn before_poll(&self, meta: TaskMeta) {
        if let Some(recorder) = &self.recorder {
            let id = meta.id.as_u64();
            recorder.record_on(self.index, Kind::PollStart, id, 0, Some(meta.location));
        }
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.before_poll.as_ref()) {
            hook(&meta);
        }
    }

    /// A poll returned.
    #[inline]
    pub(crate) fn after_poll(&self, meta: TaskMeta) {
        if let Some(hook) = self.hooks.as_ref().and_then(|h| h.after_poll.as_ref()) {
            hook(&meta);
        }
        if let Some(recorder) = &self.recorder {
            recorder.record_on(self.index, Kind::PollEnd, meta.id.as_u64(), 0, None);
        }
    }
}

/// The per-runtime recorder: one ring per worker plus a log for other threads.
pub(crate) struct Recorder {
    origin: Instant,
    workers: Box<[EventRing]>,
    outside: SharedLog,
    config: RecorderConfig,
}

/// A lane's events, decoded, and how many it lost.
pub(crate) struct Lane {
    pub(crate) name: String,
    pub(crate) events: Vec<Event>,
    pub(crate) dropped: u64,
}

impl Recorder {
    fn new(workers: usize, config: RecorderConfig) -> Recorder {
        Recorder {
            origin: Instant::now(),
            workers: (0..workers)
                .map(|_| EventRing::new(config.events_per_worker))
                .collect(),
            outside: SharedLog::new(config.events_per_worker),
            config,
        }
    }

    #[inline]
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    #[inline]
    fn record_on(
        &self,
        worker: usize,
        kind: Kind,
        task: u64,
        arg: u64,
        location: Option<&'static Location<'static>>,
    ) {
        let event = Event {
            ts: self.now(),
            kind,
            task,
            arg,
            location,
        };
        self.workers[worker].push(event.encode());
    }

    fn record_from(
        &self,
        worker: Option<&WorkerProbe>,
        kind: Kind,
        task: u64,
        arg: u64,
        location: Option<&'static Location<'static>>,
    ) {
        match worker {
            Some(probe) => self.record_on(probe.index, kind, task, arg, location),
            None => {
                let event = Event {
                    ts: self.now(),
                    kind,
                    task,
                    arg,
                    location,
                };
                self.outside.push(event.encode());
            }
        }
    }

    /// Everything recorded so far: one lane per worker, then "outside".
    pub(crate) fn lanes(&self) -> Vec<Lane> {
        let decode = |(words, dropped): (Vec<event::Words>, u64), name: String| Lane {
            name,
            events: words.into_iter().filter_map(Event::decode).collect(),
            dropped,
        };
        let mut lanes: Vec<Lane> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, ring)| decode(ring.snapshot(), format!("worker {i}")))
            .collect();
        lanes.push(decode(self.outside.snapshot(), "outside".to_string()));
        lanes
    }

    /// Writes `<path>.json` and `<path>.html`.
    pub(crate) fn write_files(&self, path: &Path) -> io::Result<()> {
        let lanes = self.lanes();
        let json = chrome::render(&lanes);
        std::fs::write(path.with_extension("json"), &json)?;
        std::fs::write(path.with_extension("html"), html::render(&lanes))?;
        Ok(())
    }

    /// The shutdown write, to the configured path.
    pub(crate) fn write_at_shutdown(&self) {
        let path = &self.config.path;
        match self.write_files(path) {
            Ok(()) => tracing::info!(path = %path.display(), "scheduler trace written"),
            Err(err) => {
                tracing::error!(path = %path.display(), %err, "cannot write the scheduler trace")
            }
        }
    }
}

/// Escapes `s` as the body of a JSON string (also safe inside an HTML `<script>`).
pub(crate) fn json_escape(s: &str, out: &mut String) {
    use std::fmt::Write;
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '<' | '>' | '&' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}
