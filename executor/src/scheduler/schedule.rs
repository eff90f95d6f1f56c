//! Where a task goes when it is spawned, woken or yields: the one seam between tasks and
//! the scheduler.
//!
//! A task reaches its scheduler only through the [`Schedule`] trait, implemented here
//! for the runtime's [`Shared`]. Everything that must know "is this thread one of this
//! runtime's workers?" asks [`with_current_worker`], the single place that answers it.
//! A worker schedules into its own queues (`worker/context.rs`, which states the
//! placement rules); any other thread, or a worker during shutdown, goes through the
//! injector.

use super::worker::WorkerContext;
use super::Shared;
use crate::loom::sync::{Arc, Ordering};
use crate::observe::stats::Scheduled;
use crate::runtime::context;
use crate::runtime::task::{Notified, RawTask, Schedule, Task};
use crate::trace::TaskMeta;

/// Runs `f` with this thread's worker context if the thread is one of `shared`'s
/// workers, `None` otherwise.
#[inline]
pub(crate) fn with_current_worker<R>(
    shared: &Arc<Shared>,
    f: impl FnOnce(Option<&WorkerContext>) -> R,
) -> R {
    context::with_worker(|cx| f(cx.filter(|cx| Arc::ptr_eq(&cx.shared, shared))))
}

/// The index of this thread's worker if the thread is one of `shared`'s workers.
#[inline]
pub(crate) fn current_worker_index(shared: &Arc<Shared>) -> Option<usize> {
    with_current_worker(shared, |cx| cx.map(|cx| cx.index))
}

/// Puts `task` where it runs next (see the module docs).
#[inline]
pub(crate) fn schedule(shared: &Arc<Shared>, task: Notified, how: Scheduled) {
    with_current_worker(shared, |cx| match cx {
        Some(cx) if !shared.is_shutdown() => cx.schedule_local(task, how),
        _ => shared.schedule_remote(task, how),
    })
}

/// A task was just created by a spawn: count it, tell the hooks and the recorder, and
/// schedule it (`notified` is `None` if the runtime already shut down), into worker
/// `on`'s inbox if the spawner placed it (`Handle::spawn_on`). `cx` is the spawning
/// thread's worker context ([`with_current_worker`]), which the spawner looked up once
/// for the registry's live count too.
pub(crate) fn spawned(
    shared: &Arc<Shared>,
    cx: Option<&WorkerContext>,
    meta: TaskMeta,
    notified: Option<Notified>,
    on: Option<usize>,
) {
    let instruments = &shared.config.instruments;
    if instruments.is_on() {
        instruments.spawned(meta, cx.and_then(|cx| cx.stats_probe()));
    }
    let Some(notified) = notified else { return };
    tracing::trace!(task = %meta.id(), "spawned");
    match cx {
        Some(cx) => cx.stats().spawned(),
        None => {
            shared.outside.spawns.fetch_add(1, Ordering::Relaxed);
        }
    }
    match (on, cx) {
        (Some(worker), _) => shared.schedule_on(worker, notified),
        (None, Some(cx)) if !shared.is_shutdown() => cx.schedule_local(notified, Scheduled::Spawn),
        (None, _) => shared.schedule_remote(notified, Scheduled::Spawn),
    }
}

/// `Handle::spawn` without a `Handle`: for the loom models and the simulation, which
/// build a `Shared` of their own. `id` is fixed by the caller (loom needs the same ids in
/// every execution it explores).
#[cfg(test)]
#[track_caller]
pub(crate) fn spawn_with_id<F>(
    shared: &Arc<Shared>,
    id: crate::runtime::task::Id,
    future: F,
) -> crate::runtime::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let location = std::panic::Location::caller();
    let meta = TaskMeta::new(id, location);
    with_current_worker(shared, |cx| {
        let mut init = crate::runtime::task::owned::TaskInit::from(id);
        init.counted_on = cx.map(|cx| cx.index);
        init.location = location;
        let (join, notified) = shared.owned.bind(future, shared.clone(), init);
        spawned(shared, cx, meta, notified, None);
        join
    })
}

/// The runtime's tasks carry an `Arc<Shared>` as their scheduler.
impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Notified) {
        schedule(self, task, Scheduled::Wake);
    }

    fn yield_now(&self, task: Notified) {
        schedule(self, task, Scheduled::Yield);
    }

    fn terminated(&self, task: &RawTask) {
        let instruments = &self.config.instruments;
        if instruments.is_on() {
            let header = task.header();
            let meta = TaskMeta::new(header.id, header.location);
            with_current_worker(self, |cx| {
                instruments.terminated(meta, cx.and_then(|cx| cx.stats_probe()))
            });
        }
    }

    fn completing(&self, task: &RawTask) {
        self.owned.count_out(task, current_worker_index(self));
    }

    fn release(&self, task: &RawTask) -> Option<Task> {
        self.owned.remove(task)
    }
}
