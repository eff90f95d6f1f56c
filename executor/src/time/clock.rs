//! Whose "now" the timers use.
//!
//! A runtime reads time from its [`Clock`]: the system's monotonic clock, or a manual
//! one that only moves when told to. The manual clock exists so that a run can be
//! replayed exactly: the loom models and the seeded simulation of the scheduling loop
//! (`scheduler/sim/`) advance it when a worker parks with a timeout, so timers fire in
//! the same order on every run of a seed, with no real sleeping.
//!
//! Everything that compares a deadline with "now" on behalf of a runtime asks
//! [`now`], which finds the runtime of the current thread; the scheduling loop asks
//! its own runtime's clock directly.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::context;

/// A runtime's source of time.
#[derive(Clone, Debug, Default)]
pub(crate) enum Clock {
    /// `Instant::now()`.
    #[default]
    System,
    /// Time that moves only by [`ManualClock::advance`].
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<ManualClock>),
}

impl Clock {
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }
}

/// Time that stands still until advanced. A std atomic even under loom: reading the
/// clock decides no ownership, and each worker only compares it with its own timers.
#[derive(Debug)]
pub(crate) struct ManualClock {
    start: Instant,
    elapsed_ns: AtomicU64,
}

#[cfg_attr(not(test), allow(dead_code))]
impl ManualClock {
    /// A clock that reads `start` until advanced.
    pub(crate) fn new(start: Instant) -> ManualClock {
        ManualClock {
            start,
            elapsed_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.elapsed_ns.load(Relaxed))
    }

    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&self, by: Duration) {
        self.elapsed_ns.fetch_add(by.as_nanos() as u64, Relaxed);
    }
}

/// Now, by the clock of the runtime this thread works for (a worker's, or the one
/// entered with `block_on` / `Handle::enter`); the system clock outside any runtime.
pub(crate) fn now() -> Instant {
    if let Some(now) = context::with_worker(|cx| cx.map(|cx| cx.shared.clock.now())) {
        return now;
    }
    context::with_current_shared(|shared| shared.map_or_else(Instant::now, |s| s.clock.now()))
}
