//! `task::block_in_place`: blocking a worker's thread on purpose, without stalling the
//! tasks queued behind it.
//!
//! Go's `entersyscall` hands the P to another M; a uringo worker cannot hand its ring
//! to another thread (only the owner may enter it), so it hands over its queued tasks
//! instead: runnext and the local queue go to the injector and a sibling is woken to
//! take them. The ring is reaped again when the blocking call returns, so completions
//! of I/O submitted here are delivered late; tasks woken meanwhile run elsewhere. The
//! monitor (`observe/monitor.rs`) is told the block is deliberate, so it does not warn.

use super::context::WorkerContext;
use crate::runtime::context;
use crate::runtime::task::Notified;

/// Runs `f`, which blocks, on the current worker after handing the worker's queued
/// tasks to its siblings (see [`crate::task::block_in_place`]).
pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    struct Unblock<'a>(Option<&'a WorkerContext>);
    impl Drop for Unblock<'_> {
        fn drop(&mut self) {
            if let Some(cx) = self.0 {
                cx.stats().blocking(false);
            }
        }
    }
    context::with_worker(|worker| {
        let _unblock = Unblock(worker.inspect(|cx| cx.hand_off_for_blocking()));
        f()
    })
}

impl WorkerContext {
    /// Moves everything queued on this worker (runnext and the local queue) to the
    /// injector and wakes a sibling to take it.
    fn hand_off_for_blocking(&self) {
        let tasks: Vec<Notified> = self.with_local(|local| local.drain().collect());
        self.stats().blocking(true);
        let handed = tasks.len();
        for task in tasks {
            if let Err(task) = self.shared.inject.push(task) {
                drop(task); // Shutting down: cancelled with the rest.
            }
        }
        if handed > 0 {
            self.shared.notify_parked();
        }
        tracing::debug!(
            worker = self.index,
            handed,
            "block_in_place: queue handed to siblings"
        );
    }
}
