//! The registry of every live task of a runtime, so shutdown can find the ones that are
//! in no queue (waiting on I/O or a timer) and cancel them, and a dump can list them.
//!
//! Sharded by task id (four shards per worker, each on its own cache lines) so that
//! spawning and completing tasks on different workers rarely touch the same lock or
//! line; each shard is a slab indexed by a key stored in the task header. A spawn takes
//! one shard lock and one task leaves the registry with one more.
//!
//! The live count is kept apart from the shards, in one counter per worker and one for
//! every other thread ([`LiveCount`]): a task is counted in by the thread that spawns it
//! and out by the one that completes it, and on a busy runtime those are different
//! workers. A count in the shard meant a write to a line the other worker was using for
//! every completion (in the timer storm, the completing worker's decrement was 4 % of
//! the process's samples, nearly all of it waiting for the line).
//!
//! A task that completes while its `JoinHandle` still wants the output stays in the
//! registry, marked complete by its state word, until the handle takes the output or is
//! dropped: a dump shows it as *completed, not joined* — outputs piling up behind
//! handles nobody awaits are a leak too. The live-task count does not include such
//! tasks: a task is *counted out* once, by whichever comes first of its completion and
//! shutdown's drain (the `counted_out` flag in its header decides).

use std::collections::HashMap;
use std::future::Future;
use std::panic::Location;

use slab::Slab;

use super::raw::RawTask;
use super::{Id, JoinHandle, Notified, Schedule, Task};
use crossbeam_utils::CachePadded;

use crate::loom::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};

/// What a spawner says about a new task besides its future.
pub(crate) struct TaskInit {
    pub id: Id,
    /// The worker spawning it (its counter in [`LiveCount`]); `None`: another thread.
    pub counted_on: Option<usize>,
    pub name: Option<Box<str>>,
    /// Clock ticks (`observe/clock.rs`) at spawn; 0 when nobody reads the clock.
    pub spawned_at: u64,
    /// Where the task was spawned.
    pub location: &'static Location<'static>,
}

impl From<Id> for TaskInit {
    #[track_caller]
    fn from(id: Id) -> TaskInit {
        TaskInit {
            id,
            counted_on: None,
            name: None,
            spawned_at: 0,
            location: Location::caller(),
        }
    }
}

/// A registered task, with what only dumps read (kept out of the task's header, which
/// every poll touches: see `raw::Header`).
pub(crate) struct Entry {
    pub task: Task,
    /// Clock ticks (`observe/clock.rs`) at spawn.
    pub spawned_at: u64,
    /// `task::Builder::name`.
    pub name: Option<Box<str>>,
}

/// One lock's worth of the registry, on cache lines of its own: workers spawning into
/// and completing out of different shards must not share a line.
struct Shard {
    tasks: Mutex<Slab<Entry>>,
}

/// How many tasks are live: one counter per worker and a last one for every other
/// thread, each on its own cache line. A task adds one to the counter of the thread
/// that spawns it and takes one from that of the thread that counts it out, so a
/// single counter drifts (a worker that only completes goes below zero, wrapping); the
/// sum is the count. The counters are read without a lock, so a sum taken while tasks
/// come and go may see a task's end before its start: it is clamped at zero, and exact
/// whenever nothing is being spawned or completed.
struct LiveCount {
    counters: Box<[CachePadded<AtomicUsize>]>,
}

impl LiveCount {
    fn new(workers: usize) -> LiveCount {
        LiveCount {
            counters: (0..=workers)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        }
    }

    /// The counter of worker `on` (`None`, or a worker this count has none for: the
    /// counter of other threads).
    fn counter(&self, on: Option<usize>) -> &AtomicUsize {
        let outside = self.counters.len() - 1;
        &self.counters[on.map_or(outside, |w| w.min(outside))]
    }

    fn add(&self, on: Option<usize>) {
        self.counter(on).fetch_add(1, Ordering::Relaxed);
    }

    fn sub(&self, on: Option<usize>) {
        // Wraps below zero on a worker that completes more than it spawns.
        self.counter(on).fetch_sub(1, Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.sum().max(0) as usize
    }

    /// The sum, unclamped: below zero only if a task was counted out twice.
    fn sum(&self) -> isize {
        self.counters
            .iter()
            .fold(0usize, |sum, c| sum.wrapping_add(c.load(Ordering::Relaxed))) as isize
    }
}

impl Shard {
    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, Slab<Entry>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct OwnedTasks {
    shards: Box<[CachePadded<Shard>]>,
    mask: usize,
    live: LiveCount,
    closed: AtomicBool,
    /// Off only for measuring the registry's cost (`Builder::__without_task_registry`).
    enabled: bool,
}

impl OwnedTasks {
    pub(crate) fn new(concurrency: usize, enabled: bool) -> OwnedTasks {
        let n = (concurrency * 4).next_power_of_two().clamp(1, 1024);
        OwnedTasks {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Shard {
                        tasks: Mutex::new(Slab::new()),
                    })
                })
                .collect(),
            mask: n - 1,
            live: LiveCount::new(concurrency),
            closed: AtomicBool::new(false),
            enabled,
        }
    }

    fn shard(&self, id: Id) -> &Shard {
        &self.shards[(id.as_u64() as usize) & self.mask]
    }

    /// Creates a task and registers it. When the registry is closed (the runtime is
    /// shutting down) the task is cancelled at once and no `Notified` is returned.
    #[track_caller]
    pub(crate) fn bind<F, S>(
        &self,
        future: F,
        scheduler: S,
        init: impl Into<TaskInit>,
    ) -> (JoinHandle<F::Output>, Option<Notified>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let TaskInit {
            id,
            counted_on,
            name,
            spawned_at,
            location,
        } = init.into();
        let (task, notified, join) = super::new_task(future, scheduler, id, location);
        // Until it is first scheduled, the stamp says when the task was spawned (and
        // marks no timed event: see `observe/clock.rs`).
        task.raw().header().stamp.store(
            crate::observe::clock::untimed(spawned_at),
            std::sync::atomic::Ordering::Relaxed,
        );
        if !self.enabled {
            drop(task);
            return (join, Some(notified));
        }
        let rejected = {
            let shard = self.shard(id);
            let mut tasks = shard.lock();
            // Checked under the shard lock: close_and_shutdown_all sets `closed` before
            // draining each shard, so a task is either drained or rejected here.
            if self.closed.load(Ordering::Acquire) {
                Some(task)
            } else {
                let raw = task.raw();
                let key = tasks.insert(Entry {
                    task,
                    spawned_at,
                    name,
                });
                let key = u32::try_from(key).expect("over 4 billion tasks in one registry shard");
                raw.header().owned_key.store(key, Ordering::Relaxed);
                // Nobody else has the task yet: counted in, to be counted out once.
                raw.header().counted_out.store(false, Ordering::Relaxed);
                self.live.add(counted_on);
                None
            }
        };
        match rejected {
            Some(task) => {
                task.shutdown();
                drop(notified);
                (join, None)
            }
            None => (join, Some(notified)),
        }
    }

    /// The task completed (or shutdown drained it): it no longer counts as live. Only
    /// the first call per task counts. `on`: the worker calling (`None`: another thread).
    pub(crate) fn count_out(&self, task: &RawTask, on: Option<usize>) {
        let flag = &task.header().counted_out;
        // Mutation point: a check-then-set lets completion and shutdown's
        // drain both count the task out.
        let was_counted_out = if crate::loom::mutation!("count_out_once") {
            let was = flag.load(Ordering::Acquire);
            flag.store(true, Ordering::Release);
            was
        } else {
            flag.swap(true, Ordering::AcqRel)
        };
        if !was_counted_out {
            self.live.sub(on);
        }
    }

    /// Takes a completed task out of the registry, returning the registry's reference.
    /// `None` when shutdown already took it (or it was never registered).
    pub(crate) fn remove(&self, task: &RawTask) -> Option<Task> {
        let key = task.header().owned_key.load(Ordering::Relaxed);
        if key == u32::MAX {
            return None;
        }
        let key = key as usize;
        let mut tasks = self.shard(task.id()).lock();
        match tasks.get(key) {
            Some(e) if e.task.raw() == *task => Some(tasks.remove(key).task),
            _ => None,
        }
    }

    /// Refuses new tasks and cancels every registered one (running tasks are cancelled
    /// when their poll returns).
    pub(crate) fn close_and_shutdown_all(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            let tasks: Vec<Task> = shard.lock().drain().map(|e| e.task).collect();
            for task in tasks {
                self.count_out(&task.raw(), None);
                task.shutdown();
            }
        }
    }

    /// Number of live (registered, not yet complete) tasks (see [`LiveCount`]).
    pub(crate) fn len(&self) -> usize {
        self.live.get()
    }

    /// The live count as its counters sum up, without the clamp at zero that hides a
    /// task counted out twice (what the loom models check).
    #[cfg(all(test, loom))]
    pub(crate) fn live_sum(&self) -> isize {
        self.live.sum()
    }

    /// Number of registry entries: live tasks plus completed ones whose `JoinHandle`
    /// has not yet taken the output. Locks every shard.
    pub(crate) fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Calls `visit` on every registered task, one shard (and one lock) at a time:
    /// what a dump reads (`dump.rs`).
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&Entry)) {
        for shard in self.shards.iter() {
            for (_, entry) in shard.lock().iter() {
                visit(entry);
            }
        }
    }

    /// Live tasks counted by spawn location, most first (at most `limit` locations).
    /// Locks each shard in turn, briefly: for reports, not for the hot path.
    pub(crate) fn count_by_location(
        &self,
        limit: usize,
    ) -> Vec<(&'static Location<'static>, usize)> {
        let mut counts: HashMap<&'static Location<'static>, usize> = HashMap::new();
        for shard in self.shards.iter() {
            for (_, entry) in shard.lock().iter() {
                *counts
                    .entry(entry.task.raw().header().location)
                    .or_default() += 1;
            }
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
        });
        counts.truncate(limit);
        counts
    }
}
