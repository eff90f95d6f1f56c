//! The crate's own handles on a task: the queue entry ([`Notified`]), the registry's
//! reference ([`Task`]) and the [`Schedule`] trait a scheduler implements.

use std::future::Future;
use std::panic::Location;
use std::ptr::NonNull;

use super::raw::RawTask;
use super::{Id, JoinHandle};

/// What a task needs from whoever runs it.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// Runs the task soon (it was woken).
    fn schedule(&self, task: Notified);

    /// Runs the task after others (it woke itself during its poll: a yield).
    fn yield_now(&self, task: Notified) {
        self.schedule(task);
    }

    /// The task completed: take it out of the registry, returning the registry's
    /// reference (`None` if it was never registered or shutdown took it already).
    fn release(&self, task: &RawTask) -> Option<Task>;

    /// The task completed or was cancelled (once per task, before `release`): for the
    /// task hooks and the event recorder.
    fn terminated(&self, _task: &RawTask) {}

    /// The task is about to be published as complete: it stops counting as live. Its
    /// registry entry stays until `release`, which the task calls at once if nobody
    /// wants its output, and the `JoinHandle` calls otherwise, once it took the output
    /// or was dropped (so a dump can show completed tasks nobody joined).
    fn completing(&self, _task: &RawTask) {}
}

/// A task ready to run: the one queue entry a task has while it is scheduled. Running
/// it consumes it.
pub(crate) struct Notified(pub(super) RawTask);

impl Notified {
    /// The task's id and spawn location (for the monitor's stuck-task report).
    pub(crate) fn id_and_location(&self) -> (Id, &'static std::panic::Location<'static>) {
        let header = self.0.header();
        (header.id, header.location)
    }

    /// The task's header (for the scheduler's stamps).
    pub(crate) fn header(&self) -> &super::raw::Header {
        self.0.header()
    }

    /// Polls the task (or cancels it, if that was requested).
    pub(crate) fn run(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: we give up the Notified's reference to the poll.
        unsafe { raw.poll() };
    }

    /// Cancels a task that will never run (shutdown of the blocking pool), consuming
    /// this entry's reference.
    pub(crate) fn shutdown(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: our reference is handed to shutdown, which releases it.
        unsafe { raw.shutdown() };
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // A queue entry dropped without running (shutdown): only its reference goes.
        self.0.drop_reference();
    }
}

impl Notified {
    /// Gives up this queue entry's reference as a pointer (for a run queue's slot).
    pub(crate) fn into_raw(self) -> NonNull<()> {
        let ptr = self.0.header_ptr().cast();
        std::mem::forget(self);
        ptr
    }

    /// Takes back a reference given up by [`Notified::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_raw` and has not been taken back yet.
    pub(crate) unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: per the contract, the pointer carries one reference to a live task.
        Notified(unsafe { RawTask::from_raw(ptr.cast()) })
    }
}

/// The registry's reference to a task.
pub(crate) struct Task(pub(super) RawTask);

impl Task {
    pub(crate) fn raw(&self) -> RawTask {
        self.0
    }

    /// Cancels the task if idle (see `harness::shutdown`), consuming this reference.
    pub(crate) fn shutdown(self) {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: our reference is handed to shutdown, which releases it.
        unsafe { raw.shutdown() };
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.drop_reference();
    }
}

/// Allocates a task: the registry's handle, its first queue entry, its join handle.
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    id: Id,
    location: &'static Location<'static>,
) -> (Task, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let raw = RawTask::new(future, scheduler, id, location);
    (Task(raw), Notified(raw), JoinHandle::new(raw))
}
