//! The task state machine (`task/state.rs`, driven by the real harness in
//! `harness.rs`, `waker.rs`, `join.rs`): real tasks, allocated by the real owned-task
//! registry, scheduled through a test `Schedule` whose queue is a loom mutex.
//!
//! Every model checks that the task is scheduled at most once at a time (one `Notified`
//! per task), that the future and the output are each dropped exactly once, and that
//! the task is freed: the allocation holds the scheduler's loom `Arc`, which loom reports
//! as leaked if the reference count never reaches zero, while a second free is a double
//! drop of that `Arc`.
//!
//! Mutation `notified_check` (the poller ignores a wake that arrived during its poll)
//! loses the wake: `wake_while_running` finds the task idle and unfinished. Mutation
//! `self_wake_ref` (a task's wake of itself, noted off the state word, keeps the
//! waker's reference) leaks the task in `self_wake_by_value_racing_an_outside_wake`. Mutation
//! `join_release` (the JoinHandle never releases the registry entry a completed task
//! left for it) strands the entry; `count_out_once` (counting a task out with a
//! check-then-set) lets completion and shutdown both decrement the live count.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::state::{State, ToIdle, ToNotified, ToRunning};
use super::{JoinHandle, Notified, OwnedTasks, RawTask, Schedule, Task};
use crate::loom::model::model;
use crate::loom::model::task_id;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A scheduler with one FIFO queue; `release` takes the task out of the real registry.
#[derive(Clone)]
struct Sched(Arc<Inner>);

struct Inner {
    queue: Mutex<VecDeque<Notified>>,
    owned: OwnedTasks,
}

impl Schedule for Sched {
    fn schedule(&self, task: Notified) {
        let mut queue = self.0.queue.lock().unwrap();
        assert!(queue.is_empty(), "a task was scheduled twice");
        queue.push_back(task);
    }

    fn completing(&self, task: &RawTask) {
        self.0.owned.count_out(task, None);
    }

    fn release(&self, task: &RawTask) -> Option<Task> {
        self.0.owned.remove(task)
    }
}

impl Sched {
    fn new() -> Sched {
        Sched(Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            owned: OwnedTasks::new(1, true),
        }))
    }

    fn spawn<F>(&self, future: F) -> (JoinHandle<F::Output>, Notified)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, notified) = self.0.owned.bind(future, self.clone(), task_id(1));
        (join, notified.expect("registry open"))
    }

    /// Runs whatever is queued until the queue is empty (a worker's loop).
    fn run_queued(&self) {
        loop {
            let next = self.0.queue.lock().unwrap().pop_front();
            match next {
                Some(task) => task.run(),
                None => return,
            }
        }
    }

    /// Runtime shutdown: cancel what is registered, drop what is queued.
    fn shutdown(&self) {
        self.0.owned.close_and_shutdown_all();
        let queued: Vec<Notified> = self.0.queue.lock().unwrap().drain(..).collect();
        drop(queued);
    }
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Where a future leaves its waker for another thread.
type Slot = Arc<Mutex<Option<Waker>>>;

/// A future that is `Pending` for its first `pending` polls (leaving its waker in `slot`
/// if it has one) and then `Ready(output)`.
struct Script<T> {
    pending: usize,
    slot: Option<Slot>,
    polls: Arc<AtomicUsize>,
    output: Option<T>,
    _drops: Counted,
}

impl<T> Script<T> {
    /// Ready with `output` on its first poll; nothing watched.
    fn ready(output: T) -> Script<T> {
        Script {
            pending: 0,
            slot: None,
            polls: counter(),
            output: Some(output),
            _drops: Counted(counter()),
        }
    }
}

impl<T: Unpin> Future for Script<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        let n = this.polls.fetch_add(1, SeqCst);
        if let Some(slot) = &this.slot {
            *slot.lock().unwrap() = Some(cx.waker().clone());
        }
        if n < this.pending {
            Poll::Pending
        } else {
            Poll::Ready(this.output.take().expect("polled after Ready"))
        }
    }
}

/// Takes the waker out of `slot` once the task has put one there.
fn take_waker(slot: &Slot) -> Waker {
    loop {
        if let Some(waker) = slot.lock().unwrap().take() {
            return waker;
        }
        thread::yield_now();
    }
}

fn poll_join<T>(join: &mut JoinHandle<T>) -> Poll<Result<T, crate::JoinError>> {
    Pin::new(join).poll(&mut Context::from_waker(Waker::noop()))
}

/// A wake from another thread racing the poll that registered the waker: the wake is
/// neither lost (the task runs again and completes) nor doubled (one queue entry).
#[test]
fn wake_while_running() {
    model(|| {
        let sched = Sched::new();
        let (slot, polls, drops) = (Slot::default(), counter(), counter());
        let (mut join, notified) = sched.spawn(Script {
            pending: 1,
            slot: Some(slot.clone()),
            polls: polls.clone(),
            output: Some(42),
            _drops: Counted(drops.clone()),
        });
        let waker = thread::spawn(move || take_waker(&slot).wake());
        notified.run();
        waker.join().unwrap();
        sched.run_queued();
        assert_eq!(polls.load(SeqCst), 2, "the wake during the poll was lost");
        assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(42))));
        assert_eq!(drops.load(SeqCst), 1);
        drop(join);
        sched.shutdown();
    });
}

/// A waker kept past completion and woken (by value) on another thread while the task
/// completes: no schedule, and whichever side drops the last reference frees the task.
#[test]
fn wake_after_completion() {
    model(|| {
        let sched = Sched::new();
        let (slot, polls, drops) = (Slot::default(), counter(), counter());
        let (join, notified) = sched.spawn(Script {
            pending: 0,
            slot: Some(slot.clone()),
            polls: polls.clone(),
            output: Some(()),
            _drops: Counted(drops.clone()),
        });
        drop(join);
        let waker = thread::spawn(move || take_waker(&slot).wake());
        notified.run();
        waker.join().unwrap();
        sched.run_queued();
        assert_eq!(polls.load(SeqCst), 1);
        assert_eq!(drops.load(SeqCst), 1);
        sched.shutdown();
    });
}

/// The `JoinHandle` dropped on another thread while the task completes: the output is
/// dropped exactly once, by whichever side sees the other.
#[test]
fn join_handle_dropped_vs_completion() {
    model(|| {
        let sched = Sched::new();
        let (drops, output_drops) = (counter(), counter());
        let (join, notified) = sched.spawn(Script {
            pending: 0,
            slot: None,
            polls: counter(),
            output: Some(Counted(output_drops.clone())),
            _drops: Counted(drops.clone()),
        });
        let dropper = thread::spawn(move || drop(join));
        notified.run();
        dropper.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(
            output_drops.load(SeqCst),
            1,
            "output dropped twice or leaked"
        );
        sched.shutdown();
    });
}

/// `abort` from another thread racing a poll that returns `Pending`: the task ends
/// cancelled either way (seen by the poller, or scheduled by the abort), its future
/// dropped exactly once.
#[test]
fn abort_vs_poll() {
    model(|| {
        let sched = Sched::new();
        let drops = counter();
        let (mut join, notified) = sched.spawn(Script {
            pending: usize::MAX,
            slot: None,
            polls: counter(),
            output: Some(()),
            _drops: Counted(drops.clone()),
        });
        let abort = join.abort_handle();
        let aborter = thread::spawn(move || abort.abort());
        notified.run();
        aborter.join().unwrap();
        sched.run_queued();
        match poll_join(&mut join) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("abort lost: {:?}", other.map(|r| r.is_ok())),
        }
        assert_eq!(drops.load(SeqCst), 1);
        drop(join);
        sched.shutdown();
    });
}

/// The task's last waker dropped on another thread while the runtime shuts the task
/// down and the `JoinHandle` goes away: the count reaches zero exactly once.
#[test]
fn waker_dropped_on_another_thread() {
    model(|| {
        let sched = Sched::new();
        let (slot, drops) = (Slot::default(), counter());
        let (join, notified) = sched.spawn(Script {
            pending: usize::MAX,
            slot: Some(slot.clone()),
            polls: counter(),
            output: Some(()),
            _drops: Counted(drops.clone()),
        });
        notified.run();
        let dropper = thread::spawn(move || drop(take_waker(&slot)));
        drop(join);
        sched.shutdown();
        dropper.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// The `JoinHandle` awaited on one thread while the task completes on another: the
/// join waker slot changes hands without a lost wake-up.
#[test]
fn join_handle_awaits_completion_on_another_thread() {
    model(|| {
        let sched = Sched::new();
        let (join, notified) = sched.spawn(Script::ready(5));
        let runner = thread::spawn(move || notified.run());
        assert_eq!(loom::future::block_on(join).unwrap(), 5);
        runner.join().unwrap();
        sched.shutdown();
    });
}

/// Polls once waking itself by value (a clone of its own waker, noted off the state
/// word: `waker.rs`, "A task that wakes itself") after leaving a waker in `slot`, then
/// is `Pending` until its third poll.
struct WakesItself {
    slot: Slot,
    polls: Arc<AtomicUsize>,
}

impl Future for WakesItself {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.polls.fetch_add(1, SeqCst) {
            0 => {
                *self.slot.lock().unwrap() = Some(cx.waker().clone());
                // By value on purpose: the path under test is `wake`, not `wake_by_ref`.
                #[allow(clippy::waker_clone_wake)]
                cx.waker().clone().wake();
                Poll::Pending
            }
            1 => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
}

/// A task wakes itself by value inside its poll while another thread wakes it through
/// a waker it left: the two wakes make one queue entry at a time (`Sched` asserts it),
/// the task is polled again, and every reference is given back, the self-woken waker's
/// included. Mutation `self_wake_ref` (the noted wake keeps its waker's reference)
/// leaks the task, which loom reports as the scheduler's `Arc` never freed.
#[test]
fn self_wake_by_value_racing_an_outside_wake() {
    model(|| {
        let sched = Sched::new();
        let (slot, polls) = (Slot::default(), counter());
        let (join, notified) = sched.spawn(WakesItself {
            slot: slot.clone(),
            polls: polls.clone(),
        });
        let outside = thread::spawn(move || take_waker(&slot).wake());
        notified.run();
        sched.run_queued();
        outside.join().unwrap();
        sched.run_queued();
        // The outside wake either came during the first poll (one entry for both
        // wakes, then idle after the second poll) or after it (a third poll).
        assert!(polls.load(SeqCst) >= 2, "the self-wake was lost");
        drop(join);
        sched.shutdown();
    });
}

/// The state word alone: a wake racing the end of a poll is neither lost nor doubled,
/// and the reference counts balance.
#[test]
fn state_wake_during_poll_schedules_exactly_once() {
    model(|| {
        let state = Arc::new(State::new());
        assert_eq!(state.transition_to_running(), ToRunning::Success);
        let waker = {
            let state = state.clone();
            state.ref_inc(); // the waker's reference
            thread::spawn(move || state.transition_to_notified_by_val())
        };
        let poller = state.transition_to_idle(false);
        let woke = waker.join().unwrap();
        let scheduled =
            usize::from(poller == ToIdle::OkNotified) + usize::from(woke == ToNotified::Submit);
        assert_eq!(scheduled, 1, "poller {poller:?}, waker {woke:?}");
        // registry + join handle + the one Notified now queued
        assert_eq!(state.load().ref_count(), 3);
        assert!(state.load().is_notified());
    });
}

/// The state word alone: an abort racing a poll is seen by exactly one side.
#[test]
fn state_abort_racing_a_poll_is_seen_by_exactly_one_side() {
    model(|| {
        let state = Arc::new(State::new());
        assert_eq!(state.transition_to_running(), ToRunning::Success);
        let aborter = {
            let state = state.clone();
            thread::spawn(move || state.transition_to_notified_and_cancel())
        };
        let poller = state.transition_to_idle(false);
        let submit = aborter.join().unwrap();
        match poller {
            // The poller saw CANCELLED and cancels the future itself.
            ToIdle::Cancelled => assert!(!submit),
            // Idle first: the aborter must schedule it so a worker cancels it.
            ToIdle::Ok => {
                assert!(submit);
                assert_eq!(state.transition_to_running(), ToRunning::Cancelled);
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// A task completes on one thread while its `JoinHandle` is polled and then dropped on
/// another: whoever comes last, the registry entry goes exactly once (the completing
/// side when nobody wants the output, the handle otherwise), the live count is back to
/// zero, and the output is dropped once.
#[test]
fn registry_entry_goes_once_output_taken_or_handle_dropped() {
    model(|| {
        let sched = Sched::new();
        let output_drops = counter();
        let (mut join, notified) = sched.spawn(Script::ready(Counted(output_drops.clone())));
        let joiner = thread::spawn(move || {
            let taken = poll_join(&mut join).is_ready();
            drop(join);
            taken
        });
        notified.run();
        let taken = joiner.join().unwrap();
        assert_eq!(sched.0.owned.live_sum(), 0, "the live count");
        assert_eq!(
            sched.0.owned.entries(),
            0,
            "a completed task stayed registered (output taken: {taken})"
        );
        assert_eq!(output_drops.load(SeqCst), 1);
        sched.shutdown();
    });
}

/// Shutdown drains the registry while the task completes on another thread: the task
/// is counted out of the live tasks exactly once.
#[test]
fn shutdown_drain_vs_completion_counts_out_once() {
    model(|| {
        let sched = Sched::new();
        let (join, notified) = sched.spawn(Script::ready(()));
        drop(join);
        let closer = {
            let sched = sched.clone();
            thread::spawn(move || sched.0.owned.close_and_shutdown_all())
        };
        notified.run();
        closer.join().unwrap();
        assert_eq!(sched.0.owned.live_sum(), 0, "counted out twice or never");
        assert_eq!(sched.0.owned.entries(), 0);
        sched.shutdown();
    });
}
