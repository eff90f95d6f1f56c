//! Task dumps: every live task with its id, spawn location and state — Go's
//! `pprof/goroutine?debug=1` (grouped by spawn location, with counts) and `debug=2` (one
//! line per task) for uringo.
//!
//! A dump walks the sharded task registry, locking one shard at a time, and reads each
//! task's state word once: it costs the scheduler nothing while no dump is taken, and a
//! dump of a busy runtime is a snapshot of slightly different instants per shard.
//! A task leaves the registry when it completes, so completed tasks whose output was
//! never taken do not appear.

use std::fmt;
use std::panic::Location;

use super::Id;

/// A task's state when the dump read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Being polled by a worker.
    Running,
    /// Woken and waiting in a queue for a worker.
    Scheduled,
    /// Waiting for a wake-up (I/O, a timer, a channel, another task).
    Idle,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Idle => "idle",
        })
    }
}

/// One live task in a [`TaskDump`].
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub(crate) id: Id,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) state: TaskState,
}

impl TaskInfo {
    /// The task's id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Where it was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }

    /// Its state when the dump was taken.
    pub fn state(&self) -> TaskState {
        self.state
    }
}

/// Every live task of a runtime, from [`Handle::dump`](crate::Handle::dump).
///
/// `Display` prints the tasks grouped by spawn location with counts, busiest first
/// (Go's `debug=1`); the alternate form `{:#}` adds a line per task (`debug=2`).
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

impl TaskDump {
    /// The tasks, in no particular order.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// Tasks per spawn location and state, most first.
    pub fn grouped(&self) -> Vec<(&'static Location<'static>, TaskState, usize)> {
        let mut groups: Vec<(&'static Location<'static>, TaskState, usize)> = Vec::new();
        let mut sorted: Vec<&TaskInfo> = self.tasks.iter().collect();
        sorted.sort_by_key(|t| (t.spawned_at.to_string(), t.state));
        for t in sorted {
            match groups.last_mut() {
                Some((loc, state, n)) if *loc == t.spawned_at && *state == t.state => *n += 1,
                _ => groups.push((t.spawned_at, t.state, 1)),
            }
        }
        groups.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
        });
        groups
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "uringo task dump: {} live tasks", self.tasks.len())?;
        for (location, state, n) in self.grouped() {
            writeln!(f, "{n:>8} @ {location} [{state}]")?;
            if f.alternate() {
                let mut ids: Vec<u64> = self
                    .tasks
                    .iter()
                    .filter(|t| t.spawned_at == location && t.state == state)
                    .map(|t| t.id.as_u64())
                    .collect();
                ids.sort_unstable();
                for id in ids {
                    writeln!(f, "           task {id} [{state}]")?;
                }
            }
        }
        Ok(())
    }
}
