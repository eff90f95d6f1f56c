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
pub fn sleep(duration: Duration) -> Sleep {
    let now = super::clock::now();
    let deadline = now.checked_add(duration).unwrap_or_else(far_future);
    sleep_until(deadline)
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
pub(crate) fn far_future() -> Instant {
    super::clock::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// Nothing is allocated or registered until the first poll; dropping it before the
/// deadline removes the timer (from another thread, through the owning worker's
/// cancellation queue: no lock is shared between timers).
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

enum State {
    Unregistered,
    /// In the wheel of `worker`, under `key`.
    Local {
        shared: Arc<Shared>,
        worker: usize,
        key: TimerKey,
        entry: Arc<TimerEntry>,
    },
    /// Handed to `worker` by a thread without a wheel; `worker` keeps the key in the
    /// entry once it has inserted it.
    Remote {
        shared: Arc<Shared>,
        worker: usize,
        entry: Arc<TimerEntry>,
    },
    Elapsed,
}

impl Sleep {
    /// When the sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (as observed by a poll).
    pub fn is_elapsed(&self) -> bool {
        match &self.state {
            State::Elapsed => true,
            State::Local { entry, .. } | State::Remote { entry, .. } => entry.is_fired(),
            State::Unregistered => false,
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
            entry,
        } = &this.state
        {
            if !entry.is_fired() {
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

    fn deregister(&mut self) {
        match std::mem::replace(&mut self.state, State::Unregistered) {
            State::Local {
                shared,
                worker,
                key,
                entry,
            } => {
                if entry.cancel() {
                    cancel_in_wheel(&shared, worker, key);
                }
            }
            State::Remote {
                shared,
                worker,
                entry,
            } => {
                // Not yet inserted: the owner skips it. Inserted: the owner removes it,
                // woken for it because none of its own tasks waits on this timer and
                // it might otherwise sleep until the deadline before looking.
                if let Some(key) = entry.cancel_adopted() {
                    if cancel_in_wheel(&shared, worker, key) {
                        shared.remotes[worker].unpark();
                    }
                }
            }
            State::Unregistered | State::Elapsed => {}
        }
    }

    /// The first poll: completes at once if the deadline has passed, else puts the
    /// timer on this worker's wheel (or hands it to a worker). On a worker, the clock
    /// read and the insert share one lookup of the worker context, and the entry is
    /// created holding `waker`: only this thread can fire it, and not before this poll
    /// returns, so the waker needs no separate registration under the entry's lock.
    fn arm(&mut self, waker: &Waker) -> Armed {
        let deadline = self.deadline;
        let local = context::with_worker(|cx| {
            let cx = cx?;
            if deadline <= cx.shared.clock.now() {
                return Some(None);
            }
            let tick = deadline_tick(cx.shared.clock_origin, deadline);
            let entry = Arc::new(TimerEntry::with_waker(tick, waker.clone()));
            let key = cx.with_timers(|t| t.insert(entry.clone()));
            Some(Some(State::Local {
                shared: cx.shared.clone(),
                worker: cx.index,
                key,
                entry,
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
                let (worker, entry) = shared.register_remote_timer(deadline);
                State::Remote {
                    shared,
                    worker,
                    entry,
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

/// Removes a timer from `worker`'s wheel: directly when we are that worker, through its
/// cancellation queue otherwise (then returns true).
fn cancel_in_wheel(shared: &Arc<Shared>, worker: usize, key: TimerKey) -> bool {
    let done = with_current_worker(shared, |cx| match cx {
        Some(cx) if cx.index == worker => {
            cx.with_timers(|t| t.cancel(key));
            true
        }
        _ => false,
    });
    if !done {
        shared.remotes[worker].timers.cancellations.push(key);
    }
    !done
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let this = self.get_mut();
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
        let fired = match &this.state {
            State::Local { entry, .. } | State::Remote { entry, .. } => entry.register(cx.waker()),
            State::Elapsed => true,
            State::Unregistered => unreachable!("registered above"),
        };
        if fired {
            this.state = State::Elapsed;
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
