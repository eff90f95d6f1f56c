//! The registry of every live task of a runtime, so shutdown can find the ones that are
//! in no queue (waiting on I/O or a timer) and cancel them.
//!
//! Sharded by task id so that spawning and completing tasks on different workers rarely
//! touch the same lock; each shard is a slab indexed by a key stored in the task header.

use std::collections::HashMap;
use std::future::Future;
use std::panic::Location;

use slab::Slab;

use super::raw::RawTask;
use super::{Id, JoinHandle, Notified, Schedule, Task};
use crate::loom::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};

pub struct OwnedTasks {
    shards: Box<[Mutex<Slab<Task>>]>,
    mask: usize,
    closed: AtomicBool,
    live: AtomicUsize,
}

impl OwnedTasks {
    pub fn new(concurrency: usize) -> OwnedTasks {
        let n = (concurrency * 4).next_power_of_two().clamp(1, 1024);
        OwnedTasks {
            shards: (0..n).map(|_| Mutex::new(Slab::new())).collect(),
            mask: n - 1,
            closed: AtomicBool::new(false),
            live: AtomicUsize::new(0),
        }
    }

    fn shard(&self, id: Id) -> &Mutex<Slab<Task>> {
        &self.shards[(id.as_u64() as usize) & self.mask]
    }

    /// Creates a task and registers it. When the registry is closed (the runtime is
    /// shutting down) the task is cancelled at once and no `Notified` is returned.
    #[track_caller]
    pub fn bind<F, S>(
        &self,
        future: F,
        scheduler: S,
        id: Id,
    ) -> (JoinHandle<F::Output>, Option<Notified>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let (task, notified, join) = super::new_task(future, scheduler, id);
        let rejected = {
            let mut shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the shard lock: close_and_shutdown_all sets `closed` before
            // draining each shard, so a task is either drained or rejected here.
            if self.closed.load(Ordering::Acquire) {
                Some(task)
            } else {
                let raw = task.raw();
                let key = shard.insert(task);
                raw.header().owned_key.store(key, Ordering::Relaxed);
                self.live.fetch_add(1, Ordering::Relaxed);
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

    /// Takes a completed task out of the registry, returning the registry's reference.
    /// `None` when shutdown already took it.
    pub fn remove(&self, task: &RawTask) -> Option<Task> {
        let key = task.header().owned_key.load(Ordering::Relaxed);
        let mut shard = self
            .shard(task.id())
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match shard.get(key) {
            Some(t) if t.raw() == *task => {
                self.live.fetch_sub(1, Ordering::Relaxed);
                Some(shard.remove(key))
            }
            _ => None,
        }
    }

    /// Refuses new tasks and cancels every registered one (running tasks are cancelled
    /// when their poll returns).
    pub fn close_and_shutdown_all(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            let tasks: Vec<Task> = {
                let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                self.live.fetch_sub(shard.len(), Ordering::Relaxed);
                shard.drain().collect()
            };
            for task in tasks {
                task.shutdown();
            }
        }
    }

    /// Number of live (registered, not yet complete) tasks.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Every live task's id, spawn location and state (see `task::dump`).
    pub fn snapshot(&self) -> Vec<super::dump::TaskInfo> {
        use super::dump::{TaskInfo, TaskState};
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (_, task) in shard.iter() {
                let raw = task.raw();
                let header = raw.header();
                let state = header.state.load();
                out.push(TaskInfo {
                    id: header.id,
                    spawned_at: header.location,
                    state: if state.is_running() {
                        TaskState::Running
                    } else if state.is_notified() {
                        TaskState::Scheduled
                    } else {
                        TaskState::Idle
                    },
                });
            }
        }
        out
    }

    /// Live tasks counted by spawn location, most first (at most `limit` locations).
    /// Locks each shard in turn, briefly: for reports, not for the hot path.
    pub fn count_by_location(&self, limit: usize) -> Vec<(&'static Location<'static>, usize)> {
        let mut counts: HashMap<&'static Location<'static>, usize> = HashMap::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (_, task) in shard.iter() {
                *counts.entry(task.raw().header().location).or_default() += 1;
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
