//! What a worker publishes about the poll it is running, for the monitor (`monitor.rs`)
//! to find a poll that never returns.
//!
//! Plain std atomics even under loom: the monitor only reads them to report and rescue,
//! never to decide who owns a task, so loom need not explore their orders.

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::runtime::task::Notified;

/// What a worker publishes about the poll it is running. Written only by its worker
/// (plain stores), read by the monitor.
#[derive(Default)]
pub(crate) struct PollWatch {
    /// Id of the task being polled; 0 between polls.
    task: AtomicU64,
    /// Its spawn location (`&'static`, so readable whenever the monitor likes).
    location: AtomicPtr<Location<'static>>,
    /// Inside `block_in_place`: blocking on purpose, not stuck (no warning).
    blocking: AtomicBool,
}

impl PollWatch {
    #[inline]
    pub(crate) fn enter(&self, task: &Notified) {
        let (id, location) = task.id_and_location();
        self.task.store(id.as_u64(), Ordering::Relaxed);
        self.location
            .store(location as *const _ as *mut _, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn exit(&self) {
        self.task.store(0, Ordering::Relaxed);
    }

    pub(crate) fn set_blocking(&self, blocking: bool) {
        self.blocking.store(blocking, Ordering::Relaxed);
    }

    pub(crate) fn is_blocking(&self) -> bool {
        self.blocking.load(Ordering::Relaxed)
    }

    pub(crate) fn current(&self) -> Option<(u64, Option<&'static Location<'static>>)> {
        let id = self.task.load(Ordering::Relaxed);
        if id == 0 {
            return None;
        }
        let location = self.location.load(Ordering::Relaxed);
        // SAFETY: the pointer is null or was made from a `&'static Location`.
        Some((id, unsafe { location.as_ref() }))
    }
}
