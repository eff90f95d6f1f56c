//! `sleep`: a future that completes at a deadline, on the wheel of the worker that
//! first polls it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use uringo_timers::TimerKey;

use super::driver::deadline_tick;
use super::entry::TimerEntry;
use crate::loom::sync::Arc;
use crate::runtime::{context, coop, Handle};
use crate::scheduler::schedule::with_current_worker;
use crate::scheduler::Shared;

/// Waits until `duration` has passed.
///
/// `sleep(Duration::ZERO)` completes at once, but like every uringo future it yields
/// first when the task's budget is spent.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = uringo::time::Instant::now();
///     uringo::time::sleep(std::time::Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= std::time::Duration::from_millis(10));
/// });
/// ```
#[inline]
pub fn sleep(duration: Duration) -> Sleep {
    let now = super::clock::now();
    if duration.is_zero() {
        return sleep_due(now);
    }
    sleep_until(now.checked_add(duration).unwrap_or_else(far_future))
}

/// A sleep whose deadline is `now`, a clock reading just made: its first poll completes
/// it without a look at any wheel (a worker's wheel only knows its own latest reading,
/// which may be older).
#[inline]
pub(crate) fn sleep_due(now: Instant) -> Sleep {
    Sleep {
        deadline: now,
        state: State::Due,
    }
}

/// Waits until `deadline`.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let deadline = uringo::time::Instant::now() + std::time::Duration::from_millis(5);
///     uringo::time::sleep_until(deadline).await;
///     assert!(uringo::time::Instant::now() >= deadline);
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        state: State::Unregistered,
    }
}

/// An instant so far away it never comes (about 30 years).
fn far_future() -> Instant {
    super::clock::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// Nothing is registered until the first poll. Arming it allocates nothing once its
/// worker has held as many timers at a time before (the entry is a reused slot of the
/// worker's); dropping it before the deadline removes the timer (from another thread,
/// through the owning worker's cancellation queue: no lock is shared between timers).
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

enum State {
    Unregistered,
    /// In the wheel of `worker`, under `key`; this `Sleep` holds `slot`.
    Local {
        shared: Arc<Shared>,
        worker: usize,
        key: TimerKey,
        slot: u32,
    },
    /// Handed to `worker` by a thread without a wheel; `worker` keeps the key in the
    /// entry once it has inserted it.
    Remote {
        shared: Arc<Shared>,
        worker: usize,
        slot: u32,
    },
    /// Its deadline is the clock reading that made it ([`sleep_due`]), so the first
    /// poll completes it without a look at any wheel.
    Due,
    Elapsed,
}

impl Sleep {
    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (as observed by a poll).
    pub fn is_elapsed(&self) -> bool {
        match self.held() {
            Some((shared, worker, slot)) => entry(shared, worker, slot).is_fired(),
            None => matches!(self.state, State::Elapsed),
        }
    }

    /// The runtime, worker and slot of the timer this `Sleep` holds, if it holds one.
    fn held(&self) -> Option<(&Arc<Shared>, usize, u32)> {
        match &self.state {
            State::Local {
                shared,
                worker,
                slot,
                ..
            }
            | State::Remote {
                shared,
                worker,
                slot,
            } => Some((shared, *worker, *slot)),
            State::Unregistered | State::Due | State::Elapsed => None,
        }
    }

    /// Moves the deadline, whether or not the sleep has completed. On the worker that
    /// owns the timer this is an O(1) move inside its wheel.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     use std::time::Duration;
    ///     let mut sleep = std::pin::pin!(uringo::time::sleep(Duration::from_secs(3600)));
    ///     sleep.as_mut().reset(uringo::time::Instant::now() + Duration::from_millis(1));
    ///     sleep.await;
    /// });
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = deadline;
        if let State::Local {
            shared,
            worker,
            key,
            slot,
        } = &this.state
        {
            if !entry(shared, *worker, *slot).is_fired() {
                let moved = with_current_worker(shared, |cx| match cx {
                    Some(cx) if cx.index == *worker => {
                        let tick = deadline_tick(shared.clock_origin, deadline);
                        cx.with_timers(|t| t.reset(*key, tick))
                    }
                    _ => false,
                });
                if moved {
                    return;
                }
            }
        }
        this.deregister();
        this.state = State::Unregistered;
    }

    /// [`Sleep::reset`] to `now`, a clock reading just made: the next poll completes
    /// the sleep (see [`sleep_due`]).
    pub(crate) fn reset_due(self: Pin<&mut Self>, now: Instant) {
        let this = self.get_mut();
        this.deregister();
        this.deadline = now;
        this.state = State::Due;
    }

    /// Gives the timer up: removes it from the wheel unless it fired, and lets go of
    /// this `Sleep`'s hold on the slot.
    fn deregister(&mut self) {
        match std::mem::replace(&mut self.state, State::Unregistered) {
            State::Local {
                shared,
                worker,
                key,
                slot,
            } => {
                if entry(&shared, worker, slot).cancel() {
                    cancel_in_wheel(&shared, worker, key);
                }
                release(&shared, worker, slot);
            }
            State::Remote {
                shared,
                worker,
                slot,
            } => {
                // Not yet inserted: the owner skips it. Inserted: the owner removes it,
                // woken for it because none of its own tasks waits on this timer and
                // it might otherwise sleep until the deadline before looking.
                if let Some(key) = entry(&shared, worker, slot).cancel_adopted() {
                    if cancel_in_wheel(&shared, worker, key) {
                        shared.remotes[worker].unpark();
                    }
                }
                release(&shared, worker, slot);
            }
            State::Unregistered | State::Due | State::Elapsed => {}
        }
    }

    /// The timer fired and this poll saw it: lets go of the slot.
    fn elapse(&mut self) {
        if let Some((shared, worker, slot)) = self.held() {
            release(shared, worker, slot);
        }
        self.state = State::Elapsed;
    }

    /// The first poll: completes at once if the deadline had passed by the worker's
    /// latest reading of the clock (`TimerDriver::has_passed`; no reading of its own),
    /// else puts the timer on this worker's wheel (or hands it to a worker). The entry
    /// is created holding `waker`: only this thread can fire it, and not before this
    /// poll returns, so the waker needs no separate registration under the entry's lock.
    fn arm(&mut self, waker: &Waker) -> Armed {
        let deadline = self.deadline;
        let local = context::with_worker(|cx| {
            let cx = cx?;
            let tick = deadline_tick(cx.shared.clock_origin, deadline);
            let slots = &cx.remote().timers.slots;
            let armed = cx.with_timers(|t| {
                if t.has_passed(tick) {
                    return None;
                }
                let slot = t.take_slot(slots);
                slots.get(slot).arm(Some(waker.clone()));
                Some((t.insert(tick, slot), slot))
            });
            Some(armed.map(|(key, slot)| State::Local {
                shared: cx.shared.clone(),
                worker: cx.index,
                key,
                slot,
            }))
        });
        self.state = match local {
            Some(Some(state)) => state,
            Some(None) => State::Elapsed,
            None if deadline <= super::clock::now() => State::Elapsed,
            None => {
                let handle = Handle::try_current().unwrap_or_else(|_| {
                    panic!("uringo::time::sleep polled outside a uringo runtime: there is no timer wheel to put it on")
                });
                let shared = handle.shared().clone();
                let (worker, slot) = shared.register_remote_timer(deadline);
                State::Remote {
                    shared,
                    worker,
                    slot,
                }
            }
        };
        match self.state {
            State::Elapsed => Armed::Elapsed,
            State::Local { .. } => Armed::Waiting,
            _ => Armed::Handed,
        }
    }

    /// Records what the task now waits for (task dumps).
    fn pending(&self) -> Poll<()> {
        crate::observe::wait::record(crate::observe::wait::Wait::Timer {
            at: crate::observe::clock::nanos_since_origin(self.deadline),
        });
        Poll::Pending
    }
}

/// What the first poll of a [`Sleep`] did.
enum Armed {
    /// The deadline had passed.
    Elapsed,
    /// On this worker's wheel, with the waker stored.
    Waiting,
    /// Handed to a worker: the waker still has to be registered.
    Handed,
}

/// The entry in `worker`'s slot `slot`, which the caller holds.
fn entry(shared: &Shared, worker: usize, slot: u32) -> &TimerEntry {
    shared.remotes[worker].timers.slots.get(slot)
}

/// Lets go of a `Sleep`'s hold on its slot; the last holder gives it back, to the
/// worker's own free list when we are that worker.
fn release(shared: &Arc<Shared>, worker: usize, slot: u32) {
    let slots = &shared.remotes[worker].timers.slots;
    let leftover = with_current_worker(shared, |cx| match cx {
        Some(cx) if cx.index == worker => Some(cx.with_timers(|t| t.release(slots, slot))),
        _ => None,
    });
    match leftover {
        Some(waker) => drop(waker),
        None => slots.release_elsewhere(slot),
    }
}

/// Removes a timer from `worker`'s wheel: directly when we are that worker, through its
/// cancellation queue otherwise (then returns true).
fn cancel_in_wheel(shared: &Arc<Shared>, worker: usize, key: TimerKey) -> bool {
    let done = with_current_worker(shared, |cx| match cx {
        Some(cx) if cx.index == worker => {
            cx.with_timers(|t| t.cancel(&cx.remote().timers.slots, key));
            true
        }
        _ => false,
    });
    if !done {
        shared.remotes[worker].timers.queue_cancellation(key);
    }
    !done
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let this = self.get_mut();
        if let State::Due = this.state {
            this.state = State::Elapsed;
        }
        if let State::Unregistered = this.state {
            match this.arm(cx.waker()) {
                Armed::Elapsed => {
                    coop.made_progress();
                    return Poll::Ready(());
                }
                Armed::Waiting => return this.pending(),
                Armed::Handed => {}
            }
        }
        let fired = match this.held() {
            Some((shared, worker, slot)) => entry(shared, worker, slot).register(cx.waker()),
            None => {
                debug_assert!(matches!(this.state, State::Elapsed), "armed above");
                true
            }
        };
        if fired {
            this.elapse();
            coop.made_progress();
            Poll::Ready(())
        } else {
            this.pending()
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}
