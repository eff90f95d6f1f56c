//! Whose "now" the timers use.
//!
//! A runtime reads time from its [`Clock`]: the system's monotonic clock, or a manual
//! one that only moves when told to. The manual clock exists so that a run can be
//! replayed exactly: the loom models and the seeded simulation of the scheduling loop
//! (`scheduler/sim/`) advance it when a worker parks with a timeout, so timers fire in
//! the same order on every run of a seed, with no real sleeping.
//!
//! With the `test-util` feature every runtime reads a [`PausableClock`] instead:
//! real time until `uringo::time::pause()`, then time that moves only by `advance`, or
//! by itself when every worker is idle (`auto_advance`, tokio's rule), so a test of a
//! 30 s timeout runs in milliseconds.
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
    /// Real time that tests can pause and advance (`test-util`).
    #[cfg(feature = "test-util")]
    Pausable(Arc<PausableClock>),
}

impl Clock {
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(manual) => manual.now(),
            #[cfg(feature = "test-util")]
            Clock::Pausable(clock) => clock.now(),
        }
    }

    /// The clock to move forward when every worker is idle, if time is paused.
    #[cfg(feature = "test-util")]
    #[inline]
    pub(crate) fn auto_advance(&self) -> Option<&dyn AutoAdvance> {
        match self {
            Clock::Pausable(clock) if clock.is_paused() => Some(&**clock),
            _ => None,
        }
    }
}

/// A paused clock that the scheduler moves to the next timer once nothing else can
/// happen.
#[cfg(feature = "test-util")]
pub(crate) trait AutoAdvance {
    /// Moves the clock forward to `to`, if it is not there yet.
    fn advance_to(&self, to: Instant);
}

/// Real time until paused; while paused, time that moves only by [`advance`](Self::advance)
/// (or the scheduler's auto-advance).
#[cfg(feature = "test-util")]
#[derive(Debug)]
pub(crate) struct PausableClock {
    state: std::sync::Mutex<PauseState>,
    paused: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "test-util")]
#[derive(Debug)]
struct PauseState {
    /// Virtual now while paused.
    frozen: Option<Instant>,
    /// Virtual minus real time while running: what pauses and advances accumulated.
    ahead: Duration,
    behind: Duration,
}

#[cfg(feature = "test-util")]
impl PausableClock {
    pub(crate) fn new(paused: bool) -> PausableClock {
        PausableClock {
            state: std::sync::Mutex::new(PauseState {
                frozen: paused.then(Instant::now),
                ahead: Duration::ZERO,
                behind: Duration::ZERO,
            }),
            paused: std::sync::atomic::AtomicBool::new(paused),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn now(&self) -> Instant {
        let state = self.lock();
        match state.frozen {
            Some(at) => at,
            None => Instant::now() + state.ahead - state.behind,
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    /// Freezes time where it is. False if it already was.
    pub(crate) fn pause(&self) -> bool {
        let mut state = self.lock();
        if state.frozen.is_some() {
            return false;
        }
        state.frozen = Some(Instant::now() + state.ahead - state.behind);
        self.paused.store(true, Relaxed);
        true
    }

    /// Lets time run again from where it stands. False if it was not paused.
    pub(crate) fn resume(&self) -> bool {
        let mut state = self.lock();
        let Some(frozen) = state.frozen.take() else {
            return false;
        };
        let real = Instant::now();
        (state.ahead, state.behind) = if frozen >= real {
            (frozen - real, Duration::ZERO)
        } else {
            (Duration::ZERO, real - frozen)
        };
        self.paused.store(false, Relaxed);
        true
    }

    /// Moves paused time forward by `by`. False if time is not paused.
    pub(crate) fn advance(&self, by: Duration) -> bool {
        let mut state = self.lock();
        match &mut state.frozen {
            Some(at) => {
                *at += by;
                true
            }
            None => false,
        }
    }
}

#[cfg(feature = "test-util")]
impl AutoAdvance for PausableClock {
    fn advance_to(&self, to: Instant) {
        let mut state = self.lock();
        if let Some(at) = &mut state.frozen {
            *at = (*at).max(to);
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

/// The clock of the runtime this thread works for, if any.
#[cfg(feature = "test-util")]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Clock>) -> R) -> R {
    let mut f = Some(f);
    let on_worker = context::with_worker(|cx| {
        cx.map(|cx| (f.take().expect("called once"))(Some(&cx.shared.clock)))
    });
    if let Some(r) = on_worker {
        return r;
    }
    let f = f.take().expect("not called yet");
    context::with_current_shared(|shared| f(shared.map(|s| &s.clock)))
}

/// Now, by the clock of the runtime this thread works for (a worker's, or the one
/// entered with `block_on` / `Handle::enter`); the system clock outside any runtime.
pub(crate) fn now() -> Instant {
    if let Some(now) = context::with_worker(|cx| cx.map(|cx| cx.shared.clock.now())) {
        return now;
    }
    context::with_current_shared(|shared| shared.map_or_else(Instant::now, |s| s.clock.now()))
}
