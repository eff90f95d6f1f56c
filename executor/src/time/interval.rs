//! `interval`: ticks at a fixed period.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{sleep_due, sleep_until, Sleep};

/// What an [`Interval`] does when ticks were missed (the task was busy, or the machine
/// stalled, for longer than a period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up with the original schedule
    /// (the default).
    #[default]
    Burst,
    /// Start the schedule again from now: the next tick is one period after the late
    /// one.
    Delay,
    /// Drop the missed ticks: the next tick is the next one of the original schedule
    /// that is still in the future.
    Skip,
}

impl MissedTickBehavior {
    /// The deadline after a tick that was due at `due` and observed at `now`.
    fn next(self, due: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => due + period,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let late = now.saturating_duration_since(due).as_nanos();
                let p = period.as_nanos();
                let behind = late % p;
                now + Duration::from_nanos((p - behind) as u64)
            }
        }
    }
}

/// Ticks every `period`, starting now (the first tick completes at once).
///
/// # Panics
/// When `period` is zero.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut every = uringo::time::interval(std::time::Duration::from_millis(2));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert!(second - first >= std::time::Duration::from_millis(2));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    Interval::new(sleep_due(super::clock::now()), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
/// When `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    Interval::new(sleep_until(start), period)
}

/// A stream of ticks; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    delay: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

/// A tick this late counts as on time (the wheel's tick plus wake-up latency; ticks
/// that late are not "missed").
const ON_TIME_SLACK: Duration = Duration::from_millis(5);

impl Interval {
    /// An interval whose first tick is `first`'s deadline.
    fn new(first: Sleep, period: Duration) -> Interval {
        assert!(
            period > Duration::ZERO,
            "`interval` period must be non-zero"
        );
        Interval {
            delay: first,
            period,
            missed_tick_behavior: MissedTickBehavior::default(),
        }
    }

    /// Completes at the next tick; returns when that tick was scheduled.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.delay).poll(cx));
        let due = self.delay.deadline();
        let now = super::clock::now();
        let next = if now.saturating_duration_since(due) <= ON_TIME_SLACK {
            due + self.period
        } else {
            self.missed_tick_behavior.next(due, now, self.period)
        };
        Pin::new(&mut self.delay).reset(next);
        Poll::Ready(due)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        Pin::new(&mut self.delay).reset(super::clock::now() + self.period);
    }

    /// Restarts the schedule with an immediate tick.
    pub fn reset_immediately(&mut self) {
        Pin::new(&mut self.delay).reset_due(super::clock::now());
    }

    /// Restarts the schedule: the next tick is `after` from now.
    pub fn reset_after(&mut self, after: Duration) {
        Pin::new(&mut self.delay).reset(super::clock::now() + after);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What happens to missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn missed_tick_arithmetic() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        let due = t0;
        let now = t0 + Duration::from_millis(35);
        assert_eq!(
            MissedTickBehavior::Burst.next(due, now, p),
            t0 + Duration::from_millis(10)
        );
        assert_eq!(
            MissedTickBehavior::Delay.next(due, now, p),
            t0 + Duration::from_millis(45)
        );
        assert_eq!(
            MissedTickBehavior::Skip.next(due, now, p),
            t0 + Duration::from_millis(40)
        );
        // Exactly on a period boundary, Skip goes to the next one.
        let now = t0 + Duration::from_millis(30);
        assert_eq!(
            MissedTickBehavior::Skip.next(due, now, p),
            t0 + Duration::from_millis(40)
        );
    }
}
