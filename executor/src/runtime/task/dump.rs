//! Task dumps: every live task with its id, spawn location and state — Go's
//! `pprof/goroutine?debug=1` (grouped by spawn location, with counts) and `debug=2` (one
//! line per task) for uringo.
//!
//! A dump walks the sharded task registry, locking one shard at a time, and reads each
//! task's header once: it costs the scheduler nothing while no dump is taken, and a
//! dump of a busy runtime is a snapshot of slightly different instants per shard.
//! What a task shows beyond its state comes from stamps the scheduler leaves in its
//! header anyway: the worker and time of its latest poll (from the per-poll clock
//! reading, `observe/clock.rs`), its spawn time, and what its latest poll left it
//! waiting on when that is a uringo op, timer or join handle (`observe/wait.rs`).

use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::Id;
use crate::observe::clock;
use crate::observe::wait::Wait;

/// A task's state when the dump read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Being polled by a worker.
    Running,
    /// Woken and waiting in a queue for a worker.
    Scheduled,
    /// Waiting for a wake-up (I/O, a timer, a channel, another task).
    Idle,
    /// Finished, but its `JoinHandle` has neither taken the output nor been dropped.
    Completed,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Idle => "idle",
            TaskState::Completed => "completed, not joined",
        })
    }
}

/// What an idle task's latest poll left it waiting on, when that was something uringo
/// knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitingOn {
    /// An io_uring operation (`"recv"`, `"accept"`, `"read"`...) on a file descriptor.
    Io {
        /// The operation, as a short lowercase name.
        op: &'static str,
        /// The file descriptor it works on, if it has one.
        fd: Option<i32>,
    },
    /// A uringo timer (`sleep`, `timeout`, `interval`) due at `deadline`.
    Timer {
        /// When it fires.
        deadline: Instant,
    },
    /// Another task's `JoinHandle`.
    Task(Id),
}

impl WaitingOn {
    fn decode(word: u64, origin: Instant) -> Option<WaitingOn> {
        Some(match Wait::decode(word)? {
            Wait::Op(op) => WaitingOn::Io {
                op: op.name(),
                fd: (op.fd >= 0).then_some(op.fd),
            },
            Wait::Timer { at } => WaitingOn::Timer {
                deadline: origin + Duration::from_nanos(at),
            },
            Wait::Task { id } => WaitingOn::Task(Id::from_raw(id)?),
        })
    }

    /// A short form for grouping: the op's name, `sleep` or `join`.
    fn kind(&self) -> &'static str {
        match self {
            WaitingOn::Io { op, .. } => op,
            WaitingOn::Timer { .. } => "sleep",
            WaitingOn::Task(_) => "join",
        }
    }
}

impl fmt::Display for WaitingOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitingOn::Io { op, fd: Some(fd) } => write!(f, "{op} on fd {fd}"),
            WaitingOn::Io { op, fd: None } => f.write_str(op),
            WaitingOn::Timer { deadline } => {
                let now = Instant::now();
                if *deadline >= now {
                    write!(f, "sleep, fires in {}", Age(*deadline - now))
                } else {
                    write!(f, "sleep, due {} ago", Age(now - *deadline))
                }
            }
            WaitingOn::Task(id) => write!(f, "join of task {id}"),
        }
    }
}

/// One live task in a [`TaskDump`].
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub(crate) id: Id,
    pub(crate) name: Option<String>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) state: TaskState,
    pub(crate) worker: Option<usize>,
    pub(crate) age: Duration,
    pub(crate) since_poll: Option<Duration>,
    pub(crate) runnable_for: Option<Duration>,
    pub(crate) waiting_on: Option<WaitingOn>,
}

/// The instant a dump was taken, in the clock a header's stamps use.
pub(crate) struct DumpClock {
    pub ticks: u64,
    pub nanos_per_tick: f64,
    /// What `Wait::Timer` deadlines count from.
    pub timer_origin: Instant,
    /// Whether the runtime times polls (`Config::poll_timing`): without it, the stamp
    /// in a header is its spawn time forever.
    pub poll_timing: bool,
}

impl DumpClock {
    pub(crate) fn now(poll_timing: bool) -> DumpClock {
        DumpClock {
            ticks: clock::now(),
            nanos_per_tick: clock::nanos_per_tick(),
            timer_origin: clock::instant_origin(),
            poll_timing,
        }
    }

    fn since(&self, stamp: u64) -> Duration {
        clock::to_duration_at(self.ticks.saturating_sub(stamp), self.nanos_per_tick)
    }
}

impl TaskInfo {
    /// Reads a registered task; `None` for a task that completed with nobody wanting
    /// its output (it is on its way out of the registry).
    pub(crate) fn of(entry: &super::owned::Entry, clock: &DumpClock) -> Option<TaskInfo> {
        let raw = entry.task.raw();
        let header = raw.header();
        let state = header.state.load();
        let state = if state.is_complete() {
            if !state.is_join_interested() {
                return None;
            }
            TaskState::Completed
        } else if state.is_running() {
            TaskState::Running
        } else if state.is_notified() {
            TaskState::Scheduled
        } else {
            TaskState::Idle
        };
        let worker = header.last_worker.load(Relaxed);
        let worker = (worker != u16::MAX).then_some(usize::from(worker));
        // The stamp is the wake time while scheduled, the last poll's start otherwise
        // (`raw::Header::stamp`); meaningless without poll timing.
        let stamp = clock
            .poll_timing
            .then(|| clock.since(header.stamp.load(Relaxed)));
        let (since_poll, runnable_for) = match state {
            TaskState::Scheduled => (None, stamp),
            _ if worker.is_none() => (None, None),
            _ => (stamp, None),
        };
        Some(TaskInfo {
            id: header.id,
            name: entry.name.as_deref().map(str::to_owned),
            spawned_at: header.location,
            state,
            worker,
            age: clock.since(entry.spawned_at),
            since_poll,
            runnable_for,
            waiting_on: match state {
                TaskState::Idle => WaitingOn::decode(header.wait.load(Relaxed), clock.timer_origin),
                _ => None,
            },
        })
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Its name, if it was spawned with [`task::Builder::name`](crate::task::Builder::name).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where it was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }

    /// Its state when the dump was taken.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// The worker that polled it last (`None`: never polled, or only by
    /// `spawn_blocking`'s threads).
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// Time since it was spawned.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Time since its latest poll started. `None` for a task that is scheduled (see
    /// [`runnable_for`](Self::runnable_for)), was never polled by a worker, or runs on a
    /// runtime built with [`poll_timing(false)`](crate::Builder::poll_timing).
    pub fn since_last_poll(&self) -> Option<Duration> {
        self.since_poll
    }

    /// For a scheduled task, how long it has been waiting for a worker since it was
    /// woken (or spawned): scheduling latency in the making. `None` otherwise, or
    /// without poll timing.
    pub fn runnable_for(&self) -> Option<Duration> {
        self.runnable_for
    }

    /// What it waits on, for an idle task whose latest poll ended on a uringo op, timer
    /// or join handle. `None` for other waits (channels, other runtimes' futures).
    pub fn waiting_on(&self) -> Option<WaitingOn> {
        self.waiting_on
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, " [{}]", self.state)?;
        if let Some(waiting_on) = &self.waiting_on {
            write!(f, " {waiting_on}")?;
        }
        write!(f, ", spawned {} ago", Age(self.age))?;
        if let Some(runnable) = self.runnable_for {
            write!(f, ", runnable for {}", Age(runnable))?;
        }
        match (self.since_poll, self.worker) {
            (Some(since), Some(worker)) => {
                write!(f, ", polled {} ago on worker {worker}", Age(since))
            }
            (None, Some(worker)) => write!(f, ", last polled on worker {worker}"),
            _ => f.write_str(", never polled"),
        }
    }
}

/// A duration in the unit that reads best (`850µs`, `12.3ms`, `4.0s`, `3m07s`).
struct Age(Duration);

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{}µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{:.1}ms", d.as_secs_f64() * 1e3)
        } else if d < Duration::from_secs(60) {
            write!(f, "{:.1}s", d.as_secs_f64())
        } else {
            write!(f, "{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
        }
    }
}

/// Every live task of a runtime, from [`Handle::dump`](crate::Handle::dump).
///
/// `Display` prints the tasks grouped by spawn location and state with counts, busiest
/// first, each group with what its tasks wait on (Go's `debug=1`); the alternate form
/// `{:#}` adds a line per task (`debug=2`).
///
/// ```text
/// uringo task dump: 1901 tasks
///     1000 @ examples/src/dump_demo.rs:259:64 [idle] waiting on sleep ×1000; oldest 1.7s
///      900 @ examples/src/dump_demo.rs:240:76 [idle] waiting on recv ×900; oldest 1.7s
///        1 @ examples/src/dump_demo.rs:187:52 [idle] waiting on accept ×1; oldest 1.7s
/// ```
///
/// and with `{:#}`, under each group, lines like
///
/// ```text
///            task 3 "keepalive 127.0.0.1:41488" [idle] sleep, fires in 300.6ms, spawned 1.7s ago, polled 667.6ms ago on worker 1
/// ```
///
/// ```
/// let rt = uringo::Builder::new().worker_threads(1).build()?;
/// let waiting = rt.spawn(std::future::pending::<()>());
/// let dump = rt.handle().dump();
/// assert_eq!(dump.tasks().len(), 1);
/// assert!(dump.to_string().contains("1 @ "));
/// waiting.abort();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TaskDump {
    pub(crate) tasks: Vec<TaskInfo>,
}

/// One line of the grouped dump.
#[derive(Clone, Debug)]
pub struct TaskGroup {
    /// Where the tasks were spawned.
    pub spawned_at: &'static Location<'static>,
    /// Their state.
    pub state: TaskState,
    /// How many.
    pub count: usize,
    /// What they wait on, by kind (`"recv"`, `"sleep"`, `"join"`...), most first.
    pub waiting_on: Vec<(&'static str, usize)>,
    /// The age of the oldest.
    pub oldest: Duration,
}

impl TaskDump {
    /// A dump of the tasks in `owned`, now; `timed` says whether their poll stamps are
    /// kept (`Config::poll_timing`).
    pub(crate) fn of(owned: &super::OwnedTasks, timed: bool) -> TaskDump {
        TaskDump {
            tasks: {
                let clock = DumpClock::now(timed);
                let mut tasks = Vec::with_capacity(owned.len());
                owned.for_each(|entry| tasks.extend(TaskInfo::of(entry, &clock)));
                tasks
            },
        }
    }

    /// The tasks, in no particular order.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// Tasks per spawn location and state, most first.
    pub fn grouped(&self) -> Vec<TaskGroup> {
        let mut sorted: Vec<&TaskInfo> = self.tasks.iter().collect();
        sorted.sort_by_key(|t| (t.spawned_at.to_string(), t.state));
        let mut groups: Vec<TaskGroup> = Vec::new();
        for t in sorted {
            let same = groups
                .last()
                .is_some_and(|g| g.spawned_at == t.spawned_at && g.state == t.state);
            if !same {
                groups.push(TaskGroup {
                    spawned_at: t.spawned_at,
                    state: t.state,
                    count: 0,
                    waiting_on: Vec::new(),
                    oldest: Duration::ZERO,
                });
            }
            let group = groups.last_mut().expect("pushed above");
            group.count += 1;
            group.oldest = group.oldest.max(t.age);
            if let Some(kind) = t.waiting_on.as_ref().map(WaitingOn::kind) {
                match group.waiting_on.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => group.waiting_on.push((kind, 1)),
                }
            }
        }
        for group in &mut groups {
            group
                .waiting_on
                .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        }
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.spawned_at.to_string().cmp(&b.spawned_at.to_string()))
                .then(a.state.cmp(&b.state))
        });
        groups
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "uringo task dump: {} tasks", self.tasks.len())?;
        for group in self.grouped() {
            write!(
                f,
                "{:>8} @ {} [{}]",
                group.count, group.spawned_at, group.state
            )?;
            for (i, (kind, n)) in group.waiting_on.iter().enumerate() {
                let lead = if i == 0 { " waiting on " } else { ", " };
                write!(f, "{lead}{kind} ×{n}")?;
            }
            writeln!(f, "; oldest {}", Age(group.oldest))?;
            if f.alternate() {
                let mut tasks: Vec<&TaskInfo> = self
                    .tasks
                    .iter()
                    .filter(|t| t.spawned_at == group.spawned_at && t.state == group.state)
                    .collect();
                tasks.sort_by_key(|t| t.id);
                for t in tasks {
                    writeln!(f, "           {t}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_a_sensible_unit() {
        for (d, s) in [
            (Duration::from_micros(850), "850µs"),
            (Duration::from_micros(12_345), "12.3ms"),
            (Duration::from_millis(4_040), "4.0s"),
            (Duration::from_secs(187), "3m07s"),
        ] {
            assert_eq!(Age(d).to_string(), s);
        }
    }

    #[test]
    fn waits_decode_to_what_a_reader_wants() {
        let origin = Instant::now();
        let recv = Wait::Op(uringo_uring::PendingOp {
            opcode: uringo_uring::opcodes::Recv::CODE,
            fd: 9,
        });
        let got = WaitingOn::decode(recv.encode(), origin).unwrap();
        assert_eq!(got.to_string(), "recv on fd 9");
        let timer = WaitingOn::decode(Wait::Timer { at: 5_000_000 }.encode(), origin).unwrap();
        assert_eq!(
            timer,
            WaitingOn::Timer {
                deadline: origin + Duration::from_millis(5)
            }
        );
        let join = WaitingOn::decode(Wait::Task { id: 3 }.encode(), origin).unwrap();
        assert_eq!(join.to_string(), "join of task 3");
        assert_eq!(WaitingOn::decode(0, origin), None);
    }
}
