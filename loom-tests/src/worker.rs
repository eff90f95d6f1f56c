//! A loom stand-in for a worker thread, driving the scheduler's real parts.
//!
//! `uringo`'s `WorkerContext` owns an io_uring ring, which loom cannot model (the kernel
//! is outside its reach), so it cannot run under loom as is. [`ModelWorker`] repeats the
//! *order of calls* of `executor/src/scheduler/worker.rs` (`run`, `next_local_task`,
//! `run_task`, `steal_work`, `park`, `shut_down`) over the real `Shared`: the real local
//! queues, injector, idle accounting, owned-task registry, tasks and `Schedule` impl.
//! The ring is replaced by the `LoomRing` that `Remote::wake_ring` kicks under
//! `cfg(loom)`. What is left out (timers, ring reaping, the runnext slot and yields,
//! which need the worker's thread-local context) is listed in README.md.
//!
//! Keep it in step with worker.rs: it is a copy of the loop's decisions, not of any
//! data structure.

use loom::sync::Arc;
use uringo::__loom::{Local, Notified, Shared};

/// One worker: its index, the shared scheduler state and its own run queue.
pub struct ModelWorker {
    /// Index of this worker in `shared.remotes`.
    pub index: usize,
    /// The runtime's shared state (the real `Shared`).
    pub shared: Arc<Shared>,
    /// This worker's run queue (its stealer end is in `shared.remotes[index]`).
    pub local: Local<Notified>,
    /// Whether this worker is counted as searching in `shared.idle`.
    pub is_searching: bool,
    tick: u32,
}

impl ModelWorker {
    /// Worker `index` of `shared`, owning `local`.
    pub fn new(index: usize, shared: Arc<Shared>, local: Local<Notified>) -> Self {
        ModelWorker {
            index,
            shared,
            local,
            is_searching: false,
            tick: 0,
        }
    }

    /// `WorkerContext::run`: find a task and run it until shutdown, then shut down.
    pub fn run(&mut self) {
        while !self.shared.is_shutdown() {
            self.tick = self.tick.wrapping_add(1);
            if let Some(task) = self.next_task() {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.next_local_task() {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            if self.spin_for_work() {
                continue;
            }
            self.park();
        }
        self.shut_down();
    }

    fn next_task(&mut self) -> Option<Notified> {
        if self.tick % self.shared.config.global_queue_interval == 0 {
            if let Some(task) = self.shared.inject.pop() {
                return Some(task);
            }
        }
        self.next_local_task()
    }

    /// `WorkerContext::next_local_task`: runnext, the local queue, a batch of the injector.
    pub fn next_local_task(&mut self) -> Option<Notified> {
        if let Some(task) = self.local.take_runnext() {
            return Some(task);
        }
        if let Some(task) = self.local.pop() {
            return Some(task);
        }
        if self.shared.inject.is_empty() {
            return None;
        }
        let n = self.shared.inject.len() / self.shared.remotes.len() + 1;
        let n = n.min(self.local.remaining_slots() / 2).max(1);
        self.shared.inject.pop_batch_into(&mut self.local, n)
    }

    /// `WorkerContext::run_task` (without the budget and the runnext loop).
    pub fn run_task(&mut self, task: Notified) {
        let was_searching = std::mem::replace(&mut self.is_searching, false);
        if was_searching && self.shared.idle.transition_worker_from_searching() {
            self.shared.notify_parked();
        }
        task.run();
    }

    /// `WorkerContext::push_back`: a task queued by this worker (a local spawn or wake).
    pub fn push_back(&mut self, task: Notified) {
        self.local.push_back_or_overflow(task, &self.shared.inject);
        self.shared.notify_parked();
    }

    /// `WorkerContext::steal_work`.
    pub fn steal_work(&mut self) -> Option<Notified> {
        if !self.is_searching {
            if !self.shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.is_searching = true;
        }
        let n = self.shared.remotes.len();
        for victim in (0..n).map(|i| (self.index + 1 + i) % n) {
            if victim == self.index {
                continue;
            }
            if let Some((task, _)) = self.shared.remotes[victim]
                .steal
                .steal_into(&mut self.local)
            {
                return Some(task);
            }
        }
        self.next_local_task()
    }

    /// `WorkerContext::spin_for_work` (with the default, non-zero `search_spin`) as one
    /// look: the real spin repeats the same reads until its time is up, and only the
    /// last of them can differ in outcome from this one.
    pub fn spin_for_work(&mut self) -> bool {
        if !self.is_searching || self.shared.remotes.len() < 2 {
            return false;
        }
        let found = self.shared.is_shutdown() || self.shared.any_work_queued();
        if found {
            // As in `park`: the work seen may be a push still in flight; the retry
            // waits for another thread rather than spending the preemption budget.
            loom::thread::yield_now();
        }
        found
    }

    /// `WorkerContext::park`, sleeping on the `LoomRing` instead of the io_uring ring.
    pub fn park(&mut self) {
        let is_searching = std::mem::replace(&mut self.is_searching, false);
        let was_last_searcher = self
            .shared
            .idle
            .transition_worker_to_parked(self.index, is_searching);
        let work_visible = self.shared.is_shutdown()
            || !self.shared.inject.is_empty()
            || self.local.has_tasks()
            || (was_last_searcher && self.shared.any_work_queued());
        if !work_visible {
            self.shared.remotes[self.index].loom_ring.park();
        } else {
            // The real worker goes round its loop again at once. Visible work may be a
            // push still in flight (counted in the injector, not yet poppable); the
            // yield tells loom that this thread waits for another one, so the retry
            // does not spend the model's preemption budget.
            loom::thread::yield_now();
        }
        if !self.shared.idle.transition_worker_from_parked(self.index) {
            self.is_searching = true;
        }
    }

    /// `WorkerContext::shut_down`: cancel every task, drop the queue's entries.
    pub fn shut_down(&mut self) {
        if std::mem::replace(&mut self.is_searching, false) {
            self.shared.idle.transition_worker_from_searching();
        }
        self.shared.owned.close_and_shutdown_all();
        let drained: Vec<Notified> = self.local.drain().collect();
        drop(drained);
    }
}
