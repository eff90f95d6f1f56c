//! Where events are kept: a fixed-size ring per worker, written only by that worker,
//! readable at any time by any thread, without locks.
//!
//! Each slot is a tiny seqlock. The writer marks the slot odd (being written), stores
//! the event's words, then marks it with the even stamp of the event's sequence number.
//! A reader copies the words between two reads of the stamp and keeps them only when
//! both reads show the stamp of the sequence number it expected: a slot that was being
//! overwritten meanwhile is skipped, never decoded half-written. When the ring is full
//! the oldest event is overwritten; `dropped` counts them.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Mutex;

use super::event::Words;

struct Slot {
    /// `2 * seq + 2` once event `seq` is stored; odd while being written; 0 never used.
    stamp: AtomicU64,
    words: [AtomicU64; 4],
}

/// A single-writer, many-reader ring of events.
pub(crate) struct EventRing {
    slots: Box<[Slot]>,
    mask: u64,
    /// Events ever written; only the owning worker stores it.
    head: AtomicU64,
}

impl EventRing {
    /// A ring of `capacity` events, rounded up to a power of two.
    pub(crate) fn new(capacity: usize) -> EventRing {
        let capacity = capacity.max(2).next_power_of_two();
        EventRing {
            slots: (0..capacity)
                .map(|_| Slot {
                    stamp: AtomicU64::new(0),
                    words: Default::default(),
                })
                .collect(),
            mask: capacity as u64 - 1,
            head: AtomicU64::new(0),
        }
    }

    /// Appends an event. Only the ring's owner calls this (one writer).
    #[inline]
    pub(crate) fn push(&self, words: Words) {
        let seq = self.head.load(Ordering::Relaxed);
        let slot = &self.slots[(seq & self.mask) as usize];
        slot.stamp.store(2 * seq + 1, Ordering::Relaxed);
        // Orders the odd stamp before the words: a reader that sees any new word then
        // sees a stamp other than the one it expects.
        fence(Ordering::Release);
        for (dst, src) in slot.words.iter().zip(words.0) {
            dst.store(src, Ordering::Relaxed);
        }
        slot.stamp.store(2 * seq + 2, Ordering::Release);
        self.head.store(seq + 1, Ordering::Release);
    }

    /// Events written so far, oldest first, and how many were overwritten (or skipped
    /// because the writer was overwriting them while we read).
    pub(crate) fn snapshot(&self) -> (Vec<Words>, u64) {
        let head = self.head.load(Ordering::Acquire);
        let capacity = self.mask + 1;
        let first = head.saturating_sub(capacity);
        let mut out = Vec::with_capacity((head - first) as usize);
        for seq in first..head {
            let slot = &self.slots[(seq & self.mask) as usize];
            let before = slot.stamp.load(Ordering::Acquire);
            let words = Words(std::array::from_fn(|i| {
                slot.words[i].load(Ordering::Relaxed)
            }));
            // Orders the word reads before the second stamp read (seqlock reader side).
            fence(Ordering::Acquire);
            let after = slot.stamp.load(Ordering::Relaxed);
            if before == 2 * seq + 2 && after == before {
                out.push(words);
            }
        }
        let dropped = head - out.len() as u64;
        (out, dropped)
    }
}

/// Events from threads that are not workers (spawns and wakes from outside, the
/// monitor): rare, so a lock is fine. Bounded like the worker rings.
pub(crate) struct SharedLog {
    events: Mutex<VecDeque<Words>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl SharedLog {
    pub(crate) fn new(capacity: usize) -> SharedLog {
        SharedLog {
            events: Mutex::new(VecDeque::new()),
            capacity: capacity.max(2),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn push(&self, words: Words) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == self.capacity {
            events.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        events.push_back(words);
    }

    pub(crate) fn snapshot(&self) -> (Vec<Words>, u64) {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        (
            events.iter().copied().collect(),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(n: u64) -> Words {
        Words([n, n + 1, n + 2, n + 3])
    }

    #[test]
    fn keeps_the_newest_events_and_counts_the_rest() {
        let ring = EventRing::new(4);
        for n in 0..10 {
            ring.push(words(n));
        }
        let (events, dropped) = ring.snapshot();
        assert_eq!(events, (6..10).map(words).collect::<Vec<_>>());
        assert_eq!(dropped, 6);
    }

    #[test]
    fn a_concurrent_reader_never_sees_a_torn_event() {
        let ring = std::sync::Arc::new(EventRing::new(8));
        let writer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for n in 0..200_000u64 {
                    ring.push(Words([n; 4]));
                }
            })
        };
        while !writer.is_finished() {
            for w in ring.snapshot().0 {
                assert!(w.0.iter().all(|&x| x == w.0[0]), "torn event {w:?}");
            }
        }
        writer.join().unwrap();
    }
}
