//! Who is asleep and who is looking for work: Go's spinning-M accounting.
//!
//! A worker with nothing to run may *search* (steal from siblings) before it parks; at
//! most half of the busy workers search at once, because N workers hammering each
//! other's queues cost more than they find. Whoever makes work available (a spawn, a
//! wake, an overflow) wakes a sleeper only when nobody is searching — a searcher will
//! find the work — and when the *last* searcher finds something it wakes another
//! worker, so one new task does not leave the other sleepers unaware of a burst.
//!
//! ## No lost wake-up (design invariant 6)
//!
//! A worker going to sleep first records itself as parked (one SeqCst RMW on `state`,
//! under the sleepers lock), then takes its last look at the queues. A producer first
//! publishes its work, then reads `state` (SeqCst). Either the producer reads the
//! decrement — and wakes a sleeper, whose ring park then returns — or it does not, in
//! which case its publication precedes the decrement in the SeqCst order and the
//! worker's last look sees the work. A wake that lands before the sleeper actually
//! enters the kernel is not lost either: the ring's park token (uringo-uring's
//! `park.rs`) makes that park return at once.

use crate::loom::sync::{fence, AtomicUsize, Mutex, Ordering::SeqCst};

/// Low bits: searching workers; high bits: unparked workers.
const UNPARK_SHIFT: usize = 16;
const SEARCH_MASK: usize = (1 << UNPARK_SHIFT) - 1;
const UNPARK_ONE: usize = 1 << UNPARK_SHIFT;

pub(crate) struct Idle {
    state: AtomicUsize,
    num_workers: usize,
    /// Parked workers, most recently parked last (woken first: its caches are warm).
    sleepers: Mutex<Vec<usize>>,
}

fn searching(state: usize) -> usize {
    state & SEARCH_MASK
}

fn unparked(state: usize) -> usize {
    state >> UNPARK_SHIFT
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        assert!(num_workers < SEARCH_MASK, "too many workers");
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            num_workers,
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
        }
    }

    /// New work was published: returns the worker to wake, if one should be. The
    /// chosen worker is counted as unparked and searching before it even wakes, so
    /// concurrent producers do not all wake someone for the same burst.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        // The producer published its work before calling us; this fence orders that
        // publication before our read of `state` (the Dekker pairing with
        // `transition_worker_to_parked`).
        // Mutation point: without it a parking worker can miss the work.
        if !crate::loom::mutation!("idle_fence") {
            fence(SeqCst);
        }
        if !self.should_notify() {
            return None;
        }
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if !self.should_notify() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(UNPARK_ONE | 1, SeqCst);
        Some(worker)
    }

    fn should_notify(&self) -> bool {
        let state = self.state.load(SeqCst);
        searching(state) == 0 && unparked(state) < self.num_workers
    }

    /// A worker with an empty queue wants to steal. Refused when half the busy workers
    /// already search (Go: `2*nmspinning >= gomaxprocs - npidle`).
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let state = self.state.load(SeqCst);
        if 2 * searching(state) >= unparked(state) {
            return false;
        }
        self.state.fetch_add(1, SeqCst);
        true
    }

    /// A searching worker found work (or gave up). Returns true when it was the last
    /// searcher: the caller must then wake another worker if it found work.
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// A worker is about to park. Returns true when it was the last searcher: the
    /// caller must then re-check every queue before sleeping (see the module docs).
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> bool {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        let dec = UNPARK_ONE | usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, SeqCst);
        debug_assert!(unparked(prev) > 0);
        sleepers.push(worker);
        drop(sleepers);
        // Orders our announcement before the caller's last look at the queues.
        fence(SeqCst);
        // Mutation point: never reporting the last searcher drops the hand-off.
        is_searching && searching(prev) == 1 && !crate::loom::mutation!("searcher_handoff")
    }

    /// A parked worker is running again. Returns true if it woke on its own (timer, I/O,
    /// shutdown) and had to take itself off the sleepers list; false if a producer
    /// picked it, in which case it is already counted as unparked *and searching*.
    pub(crate) fn transition_worker_from_parked(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        match sleepers.iter().position(|&w| w == worker) {
            Some(pos) => {
                sleepers.swap_remove(pos);
                self.state.fetch_add(UNPARK_ONE, SeqCst);
                true
            }
            None => false,
        }
    }

    /// Number of workers currently searching (metrics, tests).
    pub(crate) fn num_searching(&self) -> usize {
        searching(self.state.load(SeqCst))
    }

    /// Number of workers not parked (metrics, tests).
    pub(crate) fn num_unparked(&self) -> usize {
        unparked(self.state.load(SeqCst))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn searchers_are_capped_at_half_the_busy_workers() {
        let idle = Idle::new(4);
        assert!(idle.transition_worker_to_searching());
        assert!(idle.transition_worker_to_searching());
        assert!(
            !idle.transition_worker_to_searching(),
            "2 of 4 already search"
        );
        assert!(!idle.transition_worker_from_searching());
        assert!(
            idle.transition_worker_from_searching(),
            "the last searcher knows it"
        );
    }

    #[test]
    fn notify_wakes_a_sleeper_only_when_nobody_searches() {
        let idle = Idle::new(2);
        assert_eq!(idle.worker_to_notify(), None, "nobody is parked");
        assert!(!idle.transition_worker_to_parked(1, false));
        assert!(idle.transition_worker_to_searching());
        assert_eq!(
            idle.worker_to_notify(),
            None,
            "worker 0 searches; it will find it"
        );
        assert!(idle.transition_worker_from_searching());
        assert_eq!(idle.worker_to_notify(), Some(1));
        assert_eq!(
            idle.num_searching(),
            1,
            "the woken worker counts as searching"
        );
        assert_eq!(idle.num_unparked(), 2);
        assert!(
            !idle.transition_worker_from_parked(1),
            "it was picked, not self-woken"
        );
    }

    #[test]
    fn self_woken_worker_takes_itself_off_the_list() {
        let idle = Idle::new(2);
        idle.transition_worker_to_parked(0, false);
        assert_eq!(idle.num_unparked(), 1);
        assert!(idle.transition_worker_from_parked(0));
        assert_eq!(idle.num_unparked(), 2);
        assert!(
            idle.transition_worker_to_searching(),
            "it is a normal busy worker again"
        );
    }

    #[test]
    fn last_searcher_parking_is_told_to_recheck() {
        let idle = Idle::new(2);
        assert!(idle.transition_worker_to_searching());
        assert!(idle.transition_worker_to_parked(0, true));
    }
}

#[cfg(all(test, loom))]
mod loom;
