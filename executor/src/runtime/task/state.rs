//! The task state word: lifecycle bits and the reference count, in one `AtomicUsize`.
//!
//! Every transition is one atomic read-modify-write, so the parties that touch a task —
//! the worker polling it, wakers on any thread, its `JoinHandle`, the runtime shutting
//! down — each learn in one step what the others did. The reference count lives in the
//! same word so that "the last reference is gone" and "the task is complete" are decided
//! together.
//!
//! ```text
//!   spawn ──▶ NOTIFIED ──poll──▶ RUNNING ──Pending──▶ (idle) ──wake──▶ NOTIFIED ...
//!                                   │
//!                                   └──Ready / panic / cancelled──▶ COMPLETE (terminal)
//! ```
//!
//! References are held by: the runtime's owned-task registry (until completion), each
//! `Notified` (a queue entry: at most one exists, see [`NOTIFIED`]), each `Waker`, and
//! the `JoinHandle`. The memory is freed when the count reaches zero.

use crate::loom::sync::{AtomicUsize, Ordering};

/// A worker is polling the future (or cancelling it). Excludes a second poll: only the
/// party that set RUNNING touches the future. Cleared when the poll returns, unless the
/// task completed.
pub(crate) const RUNNING: usize = 1 << 0;

/// The future is gone: its output (or the panic, or the cancellation) is stored for the
/// `JoinHandle`, or was dropped because nobody wants it. Never cleared. Excludes
/// RUNNING, and no `Notified` is created for a complete task.
pub(crate) const COMPLETE: usize = 1 << 1;

/// The task has been woken since it was last polled. Set by a wake; if the task was
/// idle, the waker also creates the task's single `Notified` (a queue entry holding a
/// reference). If it was RUNNING, the poller creates the `Notified` itself when the poll
/// returns. So at most one `Notified` exists per task at any time.
pub(crate) const NOTIFIED: usize = 1 << 2;

/// The `JoinHandle` exists and has not given up on the output. Cleared when the handle
/// is dropped; once clear, completion drops the output itself.
pub(crate) const JOIN_INTEREST: usize = 1 << 3;

/// The join waker slot holds a waker and belongs to the task side, which may read it
/// (to wake the `JoinHandle`) after completing. While clear, the `JoinHandle` owns the
/// slot and may write it. Only the `JoinHandle` sets or clears it, and never once
/// COMPLETE is set.
pub(crate) const JOIN_WAKER: usize = 1 << 4;

/// Cancellation was requested (`JoinHandle::abort`, runtime shutdown). The next party
/// to take RUNNING drops the future instead of polling it and completes the task with a
/// cancelled `JoinError`. Never cleared.
pub(crate) const CANCELLED: usize = 1 << 5;

/// Everything above this is the reference count.
const REF_SHIFT: usize = 6;
/// One reference.
pub(crate) const REF_ONE: usize = 1 << REF_SHIFT;

/// A new task: three references (owned registry, the first `Notified`, the
/// `JoinHandle`), scheduled, with join interest.
const INITIAL: usize = (REF_ONE * 3) | NOTIFIED | JOIN_INTEREST;

/// A copy of the state word, with accessors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_idle(self) -> bool {
        self.0 & (RUNNING | COMPLETE) == 0
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("cancelled", &self.is_cancelled())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// Outcome of taking a `Notified` off a queue to run it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// Poll the future.
    Success,
    /// Cancellation was requested: drop the future instead.
    Cancelled,
    /// The task is already running or complete (shutdown cancelled it while this entry
    /// was queued); the entry's reference was released.
    Failed,
    /// As `Failed`, and that was the last reference.
    Dealloc,
}

/// Outcome of a poll that returned `Pending`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIdle {
    /// Idle; the poller's reference was released.
    Ok,
    /// Woken during the poll: the poller's reference now belongs to a new `Notified`
    /// that the caller must schedule.
    OkNotified,
    /// Idle and that was the last reference.
    OkDealloc,
    /// Cancellation was requested during the poll: still RUNNING, the caller cancels.
    Cancelled,
}

/// What a wake asks of the waker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotified {
    /// Nothing: the task is running, complete or already scheduled.
    DoNothing,
    /// Schedule the task (a reference is owned by the `Notified` to submit).
    Submit,
    /// Nothing to schedule, and the waker held the last reference.
    Dealloc,
}

pub(crate) struct State {
    val: AtomicUsize,
}

impl State {
    pub(crate) fn new() -> State {
        State {
            val: AtomicUsize::new(INITIAL),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Ordering::Acquire))
    }

    /// Applies `f` atomically; `f` returns the new word and a result, or `None` to leave
    /// the word unchanged.
    fn fetch_update<T>(&self, mut f: impl FnMut(Snapshot) -> (Option<usize>, T)) -> T {
        let mut curr = self.val.load(Ordering::Acquire);
        loop {
            let (next, result) = f(Snapshot(curr));
            let Some(next) = next else { return result };
            match self
                .val
                .compare_exchange_weak(curr, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return result,
                Err(actual) => curr = actual,
            }
        }
    }

    /// A worker took the task's `Notified` off a queue and wants to poll it.
    pub(crate) fn transition_to_running(&self) -> ToRunning {
        self.fetch_update(|s| {
            debug_assert!(
                s.is_notified() || !s.is_idle(),
                "queued task not notified: {s:?}"
            );
            if !s.is_idle() {
                debug_assert!(s.ref_count() > 0);
                let next = s.0 - REF_ONE;
                let action = if Snapshot(next).ref_count() == 0 {
                    ToRunning::Dealloc
                } else {
                    ToRunning::Failed
                };
                return (Some(next), action);
            }
            let next = (s.0 & !NOTIFIED) | RUNNING;
            let action = if s.is_cancelled() {
                ToRunning::Cancelled
            } else {
                ToRunning::Success
            };
            (Some(next), action)
        })
    }

    /// The poll returned `Pending`; `woke_itself`: the task woke itself during the poll,
    /// which counts as NOTIFIED (`waker.rs`, "A task that wakes itself").
    pub(crate) fn transition_to_idle(&self, woke_itself: bool) -> ToIdle {
        self.fetch_update(|s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return (None, ToIdle::Cancelled);
            }
            let mut next = s.0 & !RUNNING;
            // Mutation point: ignoring NOTIFIED loses a wake during the poll.
            let notified = s.is_notified() && !crate::loom::mutation!("notified_check");
            if notified || woke_itself {
                // The poller's reference moves to the new Notified.
                return (Some(next | NOTIFIED), ToIdle::OkNotified);
            }
            debug_assert!(s.ref_count() > 0);
            next -= REF_ONE;
            let action = if Snapshot(next).ref_count() == 0 {
                ToIdle::OkDealloc
            } else {
                ToIdle::Ok
            };
            (Some(next), action)
        })
    }

    /// The future returned `Ready`, panicked or was cancelled. Returns the state before.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        const DELTA: usize = RUNNING | COMPLETE;
        let prev = Snapshot(self.val.fetch_xor(DELTA, Ordering::AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete());
        prev
    }

    /// Drops `count` references after completion; true when they were the last.
    pub(crate) fn transition_to_terminal(&self, count: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(count * REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= count, "{prev:?} - {count}");
        prev.ref_count() == count
    }

    /// A wake that consumes a reference (`Waker::wake`).
    pub(crate) fn transition_to_notified_by_val(&self) -> ToNotified {
        self.fetch_update(|s| {
            debug_assert!(s.ref_count() > 0);
            if s.is_running() {
                // The poller will schedule it; our reference goes away.
                let next = (s.0 | NOTIFIED) - REF_ONE;
                debug_assert!(Snapshot(next).ref_count() > 0, "the poller holds one");
                (Some(next), ToNotified::DoNothing)
            } else if s.is_complete() || s.is_notified() {
                let next = s.0 - REF_ONE;
                let action = if Snapshot(next).ref_count() == 0 {
                    ToNotified::Dealloc
                } else {
                    ToNotified::DoNothing
                };
                (Some(next), action)
            } else {
                // Our reference becomes the Notified's.
                (Some(s.0 | NOTIFIED), ToNotified::Submit)
            }
        })
    }

    /// A wake that keeps its reference (`Waker::wake_by_ref`).
    pub(crate) fn transition_to_notified_by_ref(&self) -> ToNotified {
        self.fetch_update(|s| {
            if s.is_complete() || s.is_notified() {
                (None, ToNotified::DoNothing)
            } else if s.is_running() {
                (Some(s.0 | NOTIFIED), ToNotified::DoNothing)
            } else {
                (Some((s.0 | NOTIFIED) + REF_ONE), ToNotified::Submit)
            }
        })
    }

    /// `JoinHandle::abort`. Returns true when the caller must schedule the task (with
    /// the reference this added) so a worker cancels it.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> bool {
        self.fetch_update(|s| {
            if s.is_cancelled() || s.is_complete() {
                (None, false)
            } else if s.is_running() || s.is_notified() {
                // The poller, or the queued entry's run, will see CANCELLED.
                (Some(s.0 | NOTIFIED | CANCELLED), false)
            } else {
                (Some((s.0 | NOTIFIED | CANCELLED) + REF_ONE), true)
            }
        })
    }

    /// Runtime shutdown: marks the task cancelled and, if it is idle, takes RUNNING so
    /// the caller can cancel it right away. Returns whether it did.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.fetch_update(|s| {
            let mut next = s.0 | CANCELLED;
            let take = s.is_idle();
            if take {
                next |= RUNNING;
            }
            (Some(next), take)
        })
    }

    /// The `JoinHandle` is being dropped. Err when the task already completed: the
    /// caller must then drop the output.
    pub(crate) fn unset_join_interested(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = s.0 & !(JOIN_INTEREST | JOIN_WAKER);
            (Some(next), Ok(Snapshot(next)))
        })
    }

    /// The `JoinHandle` stored a waker and hands the slot to the task side. Err when the
    /// task completed meanwhile (the output is ready; the slot stays the handle's).
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = s.0 | JOIN_WAKER;
            (Some(next), Ok(Snapshot(next)))
        })
    }

    /// The `JoinHandle` takes the slot back to replace the waker. Err when the task
    /// completed (the output is ready).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested() && s.is_join_waker_set());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = s.0 & !JOIN_WAKER;
            (Some(next), Ok(Snapshot(next)))
        })
    }

    pub(crate) fn ref_inc(&self) {
        // Relaxed: a new reference is made from an existing one, which keeps the task
        // alive; nothing is published by the increment (as with Arc::clone).
        let prev = self.val.fetch_add(REF_ONE, Ordering::Relaxed);
        assert!(prev < usize::MAX / 2, "task reference count overflow");
    }

    /// Drops one reference; true when it was the last.
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.val.fetch_sub(REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= 1);
        prev.ref_count() == 1
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_poll_pending_wake_complete() {
        let s = State::new();
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        // woken while running: no new reference, the poller reschedules
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.transition_to_idle(false), ToIdle::OkNotified);
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(false), ToIdle::Ok);
        assert_eq!(
            s.load().ref_count(),
            2,
            "the Notified's reference was released"
        );
        // woken while idle: the wake creates the Notified (+1)
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::Submit);
        assert_eq!(s.transition_to_notified_by_ref(), ToNotified::DoNothing);
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        let prev = s.transition_to_complete();
        assert!(prev.is_join_interested());
        assert!(s.load().is_complete() && !s.load().is_running());
        assert!(!s.transition_to_terminal(2));
        assert!(
            s.unset_join_interested().is_err(),
            "complete: the handle drops the output"
        );
        assert!(s.ref_dec());
    }

    #[test]
    fn a_poll_that_woke_itself_queues_the_task_again() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        // The wake was noted off the state word: the poller's reference moves to the
        // new Notified, which is marked NOTIFIED as a queued task must be.
        assert_eq!(s.transition_to_idle(true), ToIdle::OkNotified);
        assert!(s.load().is_notified() && !s.load().is_running());
        assert_eq!(s.load().ref_count(), 3);
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(
            s.transition_to_idle(true),
            ToIdle::Cancelled,
            "an abort still wins over the task's own wake"
        );
    }

    #[test]
    fn abort_idle_task_schedules_it_once() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert_eq!(s.transition_to_idle(false), ToIdle::Ok);
        assert!(s.transition_to_notified_and_cancel());
        assert!(
            !s.transition_to_notified_and_cancel(),
            "second abort is a no-op"
        );
        assert_eq!(s.transition_to_running(), ToRunning::Cancelled);
    }

    #[test]
    fn abort_while_running_is_seen_at_idle() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        assert!(!s.transition_to_notified_and_cancel());
        assert_eq!(s.transition_to_idle(false), ToIdle::Cancelled);
        assert!(
            s.load().is_running(),
            "the poller still owns the future to cancel it"
        );
    }

    #[test]
    fn queued_entry_of_a_shut_down_task_fails_and_releases() {
        let s = State::new(); // NOTIFIED: an entry is queued
        assert!(s.transition_to_shutdown());
        s.transition_to_complete();
        assert_eq!(s.transition_to_running(), ToRunning::Failed);
        assert_eq!(s.load().ref_count(), 2);
    }

    #[test]
    fn join_waker_slot_changes_hands() {
        let s = State::new();
        assert!(s.set_join_waker().is_ok());
        assert!(s.unset_join_waker().is_ok());
        assert!(s.set_join_waker().is_ok());
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        s.transition_to_complete();
        assert!(
            s.unset_join_waker().is_err(),
            "after completion the slot stays the task's"
        );
    }

    #[test]
    fn wake_by_val_on_complete_task_drops_the_last_reference() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), ToRunning::Success);
        s.transition_to_complete();
        assert!(!s.transition_to_terminal(1)); // registry
        assert!(s.unset_join_interested().is_err());
        assert!(!s.ref_dec()); // join handle
                               // one reference left: a waker's
        assert_eq!(s.transition_to_notified_by_val(), ToNotified::Dealloc);
    }
}
