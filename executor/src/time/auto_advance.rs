//! Paused time that moves by itself (feature `test-util`), and who moves it.
//!
//! tokio's rule, for a multi-threaded runtime: while time is paused, the clock jumps to
//! the earliest timer once nothing else can happen, i.e. once every participant waits.
//! The participants are the workers and the threads inside `block_on` (the test's own
//! code: while it runs, it may still arm or cancel a timer). Each publishes that it
//! waits before it sleeps; whoever publishes last sees everyone else waiting, moves
//! the clock to the earliest deadline any worker published, and wakes that deadline's
//! worker (its own unpark token, if it is itself). Workers count as waiting through
//! the idle state (`Idle::num_unparked`), `block_on` threads through
//! [`PausedTime`]'s count; both are SeqCst read-modify-writes followed by SeqCst reads
//! of the other, so of two participants going idle at once, the later one sees the
//! earlier (two may both act; moving the clock to the same place twice is harmless).
//!
//! A participant that has been woken but has not run yet is not waiting: a `block_on`
//! thread's waker counts it active again as it wakes it, and a worker unparked through
//! `Remote::unpark` (a placed task, a timer from another thread, `advance`) carries an
//! `unpark_pending` flag until it is back from its park. A wake-up the kernel delivers
//! (an I/O completion) is not seen this way: like tokio, paused time may jump while a
//! completion is on its way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::scheduler::Shared;

/// A worker's published next timer while it runs: not yet known.
pub(crate) const UNKNOWN: u64 = 0;

/// The `block_on` threads of a runtime that are polling, not waiting.
#[derive(Default)]
pub(crate) struct PausedTime {
    active_block_ons: AtomicUsize,
}

/// A `block_on` thread's part: whether it counts as waiting. Only the transitions
/// move the runtime's count, so the thread and its waker can race to change it and
/// the count stays exact.
pub(crate) struct Participant {
    waiting: AtomicBool,
}

impl PausedTime {
    /// A `block_on` thread starts driving its future.
    pub(crate) fn enter(&self) -> Participant {
        self.active_block_ons.fetch_add(1, SeqCst);
        Participant {
            waiting: AtomicBool::new(false),
        }
    }

    /// The `block_on` thread `who` is done.
    pub(crate) fn leave(&self, who: &Participant) {
        if !who.waiting.load(SeqCst) {
            self.active_block_ons.fetch_sub(1, SeqCst);
        }
    }

    /// `who` is about to wait: it may be the last participant to.
    pub(crate) fn wait(&self, shared: &Shared, who: &Participant) {
        if !who.waiting.swap(true, SeqCst) {
            self.active_block_ons.fetch_sub(1, SeqCst);
            self.advance_if_all_wait(shared);
        }
    }

    /// `who` was woken (by its waker, or it woke up): it drives again.
    pub(crate) fn wake(&self, who: &Participant) {
        if who.waiting.swap(false, SeqCst) {
            self.active_block_ons.fetch_add(1, SeqCst);
        }
    }

    /// Moves a paused clock to the earliest published timer if every participant
    /// waits and no worker has a wake-up on its way, and wakes that timer's worker.
    pub(crate) fn advance_if_all_wait(&self, shared: &Shared) {
        let Some(clock) = shared.clock.auto_advance() else {
            return;
        };
        if shared.idle.num_unparked() != 0
            || self.active_block_ons.load(SeqCst) != 0
            || shared.remotes.iter().any(|r| r.unpark_pending.load(SeqCst))
        {
            return;
        }
        let earliest = shared
            .remotes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.timers.next_wake.load(SeqCst), i))
            .min();
        if let Some((at, owner)) = earliest.filter(|(at, _)| *at != u64::MAX) {
            clock.advance_to(shared.clock_origin + Duration::from_nanos(at));
            shared.remotes[owner].unpark();
        }
    }

    /// Worker `index` is back from its park and counted as unparked: its pending
    /// unpark is spent, and until it parks again its next timer is unknown. Unknown
    /// reads as "now", so a participant that finds every worker parked while this
    /// one is between announcing its park and publishing its timer moves the clock
    /// nowhere (and wakes it, to look again once it has published).
    pub(crate) fn worker_runs(&self, shared: &Shared, index: usize) {
        let remote = &shared.remotes[index];
        remote.timers.next_wake.store(UNKNOWN, SeqCst);
        remote.unpark_pending.store(false, SeqCst);
    }

    /// Worker `index` is about to sleep with its next timer at `next` (`None`: none):
    /// publishes it, then acts if it is the last participant to wait.
    pub(crate) fn worker_waits(&self, shared: &Shared, index: usize, next: Option<Instant>) {
        let at = next.map_or(u64::MAX, |at| {
            at.saturating_duration_since(shared.clock_origin).as_nanos() as u64
        });
        shared.remotes[index].timers.next_wake.store(at, SeqCst);
        self.advance_if_all_wait(shared);
    }
}
