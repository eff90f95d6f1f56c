//! What a worker's own tasks reach while they run: the run queue they are woken into,
//! the timer wheel their sleeps go on, and the worker's stats.
//!
//! The thread-local context (`runtime/context.rs`) points here for the life of the
//! worker thread. Everything is owner-only and reached through `&self`: a wake from
//! inside a poll, a completion dispatched by a reap, a timer fired by the loop all land
//! in [`WorkerContext::schedule_local`] while the loop itself is somewhere below on the
//! same stack. So the queue and the wheel sit in `RefCell`s that are borrowed for one
//! queue or wheel operation at a time, never across a call that could run task code.
//! The loop's own state (tick, searching, spin credit) is not here: it lives in
//! `Core`, owned by the loop and reached by `&mut`.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use super::super::queue::Local;
use super::super::{Remote, Shared};
use crate::loom::sync::Arc;
use crate::observe::stats::{Scheduled, Stats, WorkerStats};
use crate::runtime::task::Notified;
use crate::time::TimerDriver;
use crate::trace::WorkerProbe;

/// A worker as its tasks see it. Lives on the worker's stack for the thread's life.
pub(crate) struct WorkerContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// `shared.remotes[index]`, looked up once: the loop reaches it several times a
    /// tick (its stats, its timer flag), and each lookup was three dependent loads and
    /// a bounds check.
    remote: NonNull<Remote>,
    /// The P's run queue: 256 slots plus runnext (`queue.rs`).
    local: RefCell<Local<Notified>>,
    /// This worker's timer wheel (Go's per-P timers).
    timers: RefCell<TimerDriver>,
    /// True while a task is being polled: wakes then go to the runnext slot.
    in_task: Cell<bool>,
    /// While the loop reaps, parks or fires timers: how many tasks those woke into our
    /// queue, `None` outside such a step (see `woken_by_the_loop`).
    loop_wakes: Cell<Option<u32>>,
    stats: WorkerStats,
}

impl WorkerContext {
    pub(crate) fn new(shared: Arc<Shared>, index: usize, local: Local<Notified>) -> Self {
        let probe = shared.config.instruments.worker_probe(index);
        let stats = WorkerStats::new(index, shared.config.poll_timing, probe);
        let timers = TimerDriver::new(shared.clock_origin);
        let remote = NonNull::from(&shared.remotes[index]);
        WorkerContext {
            shared,
            index,
            remote,
            local: RefCell::new(local),
            timers: RefCell::new(timers),
            in_task: Cell::new(false),
            loop_wakes: Cell::new(None),
            stats,
        }
    }

    #[inline]
    pub(crate) fn remote(&self) -> &Remote {
        // `remote` points into `shared.remotes`, a boxed slice that is never resized, and
        // `self.shared` keeps it alive as long as `self`.
        // SAFETY: so the pointer is valid for `&self`'s lifetime.
        unsafe { self.remote.as_ref() }
    }

    /// This worker's stats (`observe/stats.rs`).
    #[inline]
    pub(crate) fn stats(&self) -> Stats<'_> {
        let remote = self.remote();
        self.stats.view(&remote.metrics, &remote.poll_watch)
    }

    /// The recorder and task hooks of this worker, if on.
    pub(crate) fn stats_probe(&self) -> Option<&WorkerProbe> {
        self.stats.probe()
    }

    /// Runs `f` on the run queue. `f` must not run task code (it never does: queue and
    /// injector operations only), so the borrow cannot be re-entered.
    #[inline]
    pub(crate) fn with_local<R>(&self, f: impl FnOnce(&mut Local<Notified>) -> R) -> R {
        f(&mut self.local.borrow_mut())
    }

    /// Runs `f` on the timer wheel. Never called while a timer fires (firing runs with
    /// no borrow held), so the borrow cannot conflict.
    pub(crate) fn with_timers<R>(&self, f: impl FnOnce(&mut TimerDriver) -> R) -> R {
        let mut timers = self.timers.borrow_mut();
        let r = f(&mut timers);
        timers.publish_len(&self.remote().timers);
        r
    }

    /// Marks the start and end of a batch of polls: wakes inside one go to runnext.
    #[inline]
    pub(crate) fn set_in_task(&self, in_task: bool) {
        self.in_task.set(in_task);
    }

    /// Schedules a task spawned, woken or yielding on this worker:
    ///
    /// * spawned or woken by the task being polled: the runnext slot, so it runs next on
    ///   this worker while its data is in cache (the task it displaces goes to the back
    ///   of the queue);
    /// * woken from outside a poll (a completion reaped by the loop, a timer): the back
    ///   of the queue;
    /// * yielded (`yield_now`, out of budget, or woken during its own poll): the back of
    ///   the queue behind a fair share of the injector. Go sends a `Gosched` goroutine
    ///   behind the global queue; this gives the same order without a shared push per
    ///   yield, so busy yielders cannot starve the injector, nor it them. A yield wakes
    ///   no sibling, as `Gosched` starts no M: the task was running here a moment ago,
    ///   so it is no new work, and the injector's tasks woke whoever they needed when
    ///   they were pushed. (A wake would also cost a SeqCst fence per yield.)
    pub(crate) fn schedule_local(&self, task: Notified, how: Scheduled) {
        self.stats().scheduled(&task, how);
        if how == Scheduled::Yield {
            if let Some(first) = self.with_local(|local| self.take_injector_share(local)) {
                self.push_back_quietly(first);
            }
            return self.push_back_quietly(task);
        }
        if !self.in_task.get() {
            if let Some(n) = self.loop_wakes.get() {
                // Woken by our own reap, park or timers: we run it next; whether a
                // sibling should help is decided once the step is over.
                self.loop_wakes.set(Some(n + 1));
                return self.push_back_quietly(task);
            }
            return self.push_back(task);
        }
        if let Some(displaced) = self.with_local(|local| local.push_runnext(task)) {
            self.push_back(displaced);
        }
    }

    /// Runs `step` (a reap, a park, firing timers) with the wakes it causes batched:
    /// they go to the back of our queue without waking anyone, and once the step is
    /// over a sibling is woken only if there is more than this worker will run next.
    /// Go's `findrunnable` does the same with what the netpoller returns: the M runs the
    /// first goroutine itself and starts others only for the rest. Waking a sibling for
    /// the one task a timer or a completion just readied (what a lone push would do)
    /// costs a park and an unpark on each side for nothing, and lets the sibling steal
    /// the task away from the ring that holds its I/O.
    pub(crate) fn woken_by_the_loop<R>(&self, step: impl FnOnce() -> R) -> R {
        let outer = self.loop_wakes.replace(Some(0));
        let r = step();
        let woken = self.loop_wakes.replace(outer).unwrap_or(0);
        if outer.is_none() && woken > 0 && self.with_local(|local| local.len()) > 1 {
            self.shared.notify_parked();
        }
        r
    }

    /// Puts `task` at the back of the queue (half the queue goes to the injector if it
    /// is full) and wakes a sibling to steal if nobody is looking.
    pub(crate) fn push_back(&self, task: Notified) {
        self.push_back_quietly(task);
        self.shared.notify_parked();
    }

    /// Puts `task` at the back of the queue without waking anyone: for a task this
    /// worker will get to on its next tick anyway. If the queue was full, half of it
    /// went to the injector: that is work for a sibling, so one is woken.
    pub(crate) fn push_back_quietly(&self, task: Notified) {
        let inject = &self.shared.inject;
        if self.with_local(|local| local.push_back_or_overflow(task, inject)) {
            self.stats().overflowed();
            self.shared.notify_parked();
        }
    }

    /// Go's `globrunqget`: moves a fair share of the injector (its length over the
    /// number of workers, at most half the free slots) into `local` and returns the
    /// first of it.
    #[inline]
    pub(crate) fn take_injector_share(&self, local: &mut Local<Notified>) -> Option<Notified> {
        if self.shared.inject.is_empty() {
            return None;
        }
        self.take_injector_batch(local)
    }

    #[inline(never)]
    fn take_injector_batch(&self, local: &mut Local<Notified>) -> Option<Notified> {
        let inject = &self.shared.inject;
        let n = inject.len() / self.shared.remotes.len() + 1;
        let n = n.min(local.remaining_slots() / 2).max(1);
        let task = inject.pop_batch_into(local, n);
        if task.is_some() {
            self.stats().injector_pops(n);
        }
        task
    }

    /// The timer wheel, for the loop (fires with no borrow held; see `with_timers`).
    pub(super) fn timers(&self) -> &RefCell<TimerDriver> {
        &self.timers
    }
}
