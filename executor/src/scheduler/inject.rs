//! The global injection queue: Go's global runq (`sched.runq`).
//!
//! Unbounded and multi-producer/multi-consumer: remote spawns and wake-ups from threads
//! that are not workers land here, and so does the overflow of a worker's full local
//! queue. Workers take from it every 61 ticks and when their local queue runs dry.
//!
//! The items sit in a `VecDeque` behind a mutex, as Go's sit in a list under
//! `sched.lock` and tokio's under its `Synced` lock. A lock-free segmented queue was
//! tried first and lost on exactly the loads this queue exists for: it allocates a
//! block per 31 items on the pushing thread and frees it on the popping one, so a
//! worker that overflows while its sibling drains makes the sibling free into the
//! spawner's malloc arena, behind the arena's lock. A storm of 100 000 spawns spent
//! about a tenth of its CPU in that lock. Here the deque keeps its buffer, so a steady
//! state allocates nothing, and a batch (an overflow of half a local queue, or a
//! worker's share) takes the lock once. The deque keeps the capacity of its longest
//! backlog: 8 bytes per task that was ever queued at once, next to the task itself.
//!
//! The length is kept beside the queue in one `AtomicUsize` (`state`: count << 1 | CLOSED)
//! so an idle check is a single load with no lock. The count is raised *before* an item
//! enters the queue and lowered *after* one leaves it, so it is never below the true
//! number of items: `len() == 0` means empty, while `len() > 0` with `pop() == None` means
//! a push is still in flight (retry; do not park on it).
//!
//! Under `cfg(loom)` the mutex is loom's, so the models check this very code.

use std::collections::VecDeque;
use std::iter;

use crate::loom::sync::{
    AtomicUsize, Mutex, MutexGuard,
    Ordering::{AcqRel, Acquire, Relaxed, SeqCst},
};

use super::queue::{Local, QueueItem};

/// Set in `state` once the injector is closed.
const CLOSED: usize = 1;
/// One item in `state`.
const ONE: usize = 2;

/// The global run queue.
pub(crate) struct Injector<T: QueueItem> {
    /// The queued items, oldest first.
    queue: Mutex<VecDeque<T>>,
    /// `len << 1 | CLOSED`.
    state: AtomicUsize,
}

impl<T: QueueItem> Default for Injector<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: QueueItem> Injector<T> {
    /// An empty, open injector.
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            state: AtomicUsize::new(0),
        }
    }

    /// The queue, locked. Each push and pop leaves the deque whole, so a lock poisoned
    /// by a panic elsewhere (an overflow iterator's, say) still guards a consistent one.
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Pushes one item (a remote spawn or wake-up). After [`Injector::close`] the item is
    /// handed back as `Err` for the caller to cancel/drop.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        // SeqCst: this count is what idle workers read after announcing they are going to
        // sleep (store -> load on both sides, invariant 6); SeqCst on both sides keeps one
        // of them from missing the other. Being an RMW, it also orders us against `close`.
        let prev = self.state.fetch_add(ONE, SeqCst);
        // Mutation point: skipping the check accepts work after the drain.
        if prev & CLOSED != 0 && !crate::loom::mutation!("inject_closed_check") {
            // Relaxed: only undoes our own reservation.
            self.state.fetch_sub(ONE, Relaxed);
            return Err(item);
        }
        self.lock().push_back(item);
        Ok(())
    }

    /// Pushes every item of `items`, in order (a local queue's overflow), under one lock.
    /// Accepted even when closed, so overflow never loses a task: a shutdown drain (see
    /// [`Injector::close`]) or the injector's drop still gets it.
    pub(crate) fn push_batch(&self, items: impl Iterator<Item = T>) {
        let (expected, _) = items.size_hint();
        let mut reservation = Reservation {
            state: &self.state,
            unused: expected,
        };
        if expected > 0 {
            // SeqCst: as in `push` (idle protocol).
            self.state.fetch_add(expected * ONE, SeqCst);
        }
        let mut queue = self.lock();
        for item in items {
            if reservation.unused == 0 {
                // SeqCst: as in `push` (idle protocol).
                self.state.fetch_add(ONE, SeqCst);
            } else {
                reservation.unused -= 1;
            }
            queue.push_back(item);
        }
    }

    /// Pops the oldest item.
    /// Inlined down to its first load: the loop asks on every tick (the inbox) and the
    /// answer is nearly always "empty".
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        self.pop_locked()
    }

    #[inline(never)]
    fn pop_locked(&self) -> Option<T> {
        let item = self.lock().pop_front()?;
        // Relaxed: only the count matters here; the item itself was handed over by the
        // lock.
        self.state.fetch_sub(ONE, Relaxed);
        Some(item)
    }

    /// Go's `globrunqget`: takes up to `max` items, bounded by `dst`'s free room, puts all
    /// but the first at the back of `dst` (in order) and returns the first. One lock.
    pub(crate) fn pop_batch_into(&self, dst: &mut Local<T>, max: usize) -> Option<T> {
        let n = max.min(dst.remaining_slots() + 1).min(self.len());
        if n == 0 {
            return None;
        }
        let mut queue = self.lock();
        let first = queue.pop_front()?;
        let moved = if n > 1 {
            dst.push_back_from(iter::from_fn(|| queue.pop_front()).take(n - 1))
        } else {
            0
        };
        drop(queue);
        // Relaxed: as in `pop`.
        self.state.fetch_sub((moved + 1) * ONE, Relaxed);
        Some(first)
    }

    /// Items queued, counting pushes in flight. One load.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // SeqCst: the idle protocol's load (see `push`).
        self.state.load(SeqCst) / ONE
    }

    /// True when nothing is queued nor being pushed. One load.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the injector: later `push` calls hand their item back. Returns true for the
    /// call that closed it.
    ///
    /// Shutdown: call `close`, stop the workers (no more local overflow), then pop until
    /// `is_empty()`; a `pop()` of `None` while `len() > 0` is a push in flight, so spin.
    /// Every `push` either returned `Err` or is counted and will be popped. Whatever is
    /// still queued when the injector is dropped is dropped with it.
    pub(crate) fn close(&self) -> bool {
        // AcqRel: a pusher that sees CLOSED also sees what the closer did before (the
        // runtime's shutdown state), and the closer sees every reservation made before.
        self.state.fetch_or(CLOSED, AcqRel) & CLOSED == 0
    }

    /// True once [`Injector::close`] was called.
    #[allow(dead_code)] // part of the shutdown API; `push` already reports a closed injector
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with `close`, as above.
        self.state.load(Acquire) & CLOSED != 0
    }
}

/// Gives back the part of a `push_batch` reservation the iterator did not fill (a short
/// `size_hint`, or a panic mid-batch), so `len` never stays above the truth.
struct Reservation<'a> {
    state: &'a AtomicUsize,
    unused: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.unused > 0 {
            // Relaxed: only undoes our own reservation.
            self.state.fetch_sub(self.unused * ONE, Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::scheduler::queue::{local, CAPACITY};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::thread;

    type Item = Box<usize>;

    fn pop_all(inject: &Injector<Item>) -> Vec<usize> {
        iter::from_fn(|| inject.pop()).map(|b| *b).collect()
    }

    #[test]
    fn fifo_and_len() {
        let inject = Injector::<Item>::new();
        assert!(inject.is_empty() && inject.pop().is_none());
        for i in 0..5 {
            inject.push(Box::new(i)).unwrap();
        }
        inject.push_batch((5..10).map(Box::new));
        assert_eq!(inject.len(), 10);
        assert_eq!(pop_all(&inject), (0..10).collect::<Vec<_>>());
        assert!(inject.is_empty());
    }

    #[test]
    fn push_batch_counts_whatever_size_hint_says() {
        let inject = Injector::<Item>::new();
        // Under-reported lower bound (filter says 0) and an over-reporting iterator.
        inject.push_batch((0..10).filter(|_| true).map(Box::new));
        assert_eq!(inject.len(), 10);
        struct Short(std::ops::Range<usize>);
        impl Iterator for Short {
            type Item = Item;
            fn next(&mut self) -> Option<Item> {
                self.0.next().map(Box::new)
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                (100, None)
            }
        }
        inject.push_batch(Short(10..13));
        assert_eq!(inject.len(), 13);
        assert_eq!(pop_all(&inject), (0..13).collect::<Vec<_>>());
        assert_eq!(inject.len(), 0);
    }

    #[test]
    fn close_rejects_push_but_keeps_overflow_and_pop() {
        let inject = Injector::<Item>::new();
        inject.push(Box::new(1)).unwrap();
        assert!(!inject.is_closed());
        assert!(inject.close());
        assert!(!inject.close(), "only the first close reports true");
        assert!(inject.is_closed());
        assert_eq!(inject.push(Box::new(2)).map_err(|b| *b), Err(2));
        assert_eq!(inject.len(), 1);
        inject.push_batch(iter::once(Box::new(3)));
        assert_eq!(pop_all(&inject), vec![1, 3]);
    }

    #[test]
    fn pop_batch_into_respects_max_and_room() {
        let inject = Injector::<Item>::new();
        inject.push_batch((0..CAPACITY * 2).map(Box::new));
        let (mut dst, _steal) = local::<Item>();

        assert!(inject.pop_batch_into(&mut dst, 0).is_none());
        assert_eq!(inject.pop_batch_into(&mut dst, 5).map(|b| *b), Some(0));
        assert_eq!(dst.len(), 4);

        // Room-bounded: fills dst exactly, plus the returned one.
        let room = dst.remaining_slots();
        assert_eq!(
            inject.pop_batch_into(&mut dst, usize::MAX).map(|b| *b),
            Some(5)
        );
        assert_eq!(dst.len(), CAPACITY);
        assert_eq!(inject.len(), CAPACITY * 2 - 5 - 1 - room);

        // A full dst still gets one item to run.
        assert_eq!(
            inject.pop_batch_into(&mut dst, 10).map(|b| *b),
            Some(6 + room)
        );
        assert_eq!(dst.len(), CAPACITY);
        let got: Vec<usize> = iter::from_fn(|| dst.pop()).map(|b| *b).collect();
        let mut want: Vec<usize> = (1..5).collect();
        want.extend(6..6 + room);
        assert_eq!(got, want);

        // Bounded by what is queued.
        let rest = inject.len();
        assert!(inject.pop_batch_into(&mut dst, usize::MAX).is_some());
        assert_eq!(dst.len(), rest - 1);
        assert!(inject.is_empty() && inject.pop_batch_into(&mut dst, 8).is_none());
    }

    /// Pushers race `close`: every push either got its item back or is drained after.
    #[test]
    fn close_then_drain_loses_nothing() {
        for _ in 0..20 {
            let inject = Arc::new(Injector::<Item>::new());
            let go = Arc::new(AtomicBool::new(false));
            let pushers: Vec<_> = (0..3)
                .map(|t| {
                    let (inject, go) = (inject.clone(), go.clone());
                    thread::spawn(move || {
                        while !go.load(Acquire) {
                            std::hint::spin_loop();
                        }
                        let mut accepted = 0usize;
                        for i in 0..2000 {
                            if inject.push(Box::new(t * 10_000 + i)).is_ok() {
                                accepted += 1;
                            }
                        }
                        accepted
                    })
                })
                .collect();
            go.store(true, Relaxed);
            thread::yield_now();
            inject.close();
            let mut drained = 0usize;
            while !inject.is_empty() {
                match inject.pop() {
                    Some(_) => drained += 1,
                    None => std::hint::spin_loop(),
                }
            }
            let accepted: usize = pushers.into_iter().map(|h| h.join().unwrap()).sum();
            // Pushes after our drain saw `is_empty` must all have been refused.
            assert_eq!(drained, accepted);
            assert!(inject.pop().is_none());
        }
    }
}

#[cfg(all(test, loom))]
mod loom;
