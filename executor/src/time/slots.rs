//! Where a worker's timer entries live: slots in a few large arrays that the worker
//! hands out and takes back, so arming a timer allocates nothing.
//!
//! # The problem
//!
//! A timer's entry is shared by two holders on possibly different threads: the wheel of
//! the worker that owns it (which fires or removes it) and the `Sleep` (which registers
//! its waker, cancels it, and may be polled or dropped on any thread once its task is
//! stolen). The obvious shape is one `Arc` per timer. That is a small heap allocation
//! per armed timer, and glibc's allocator keeps freed small chunks on "fast bins" that
//! it only sorts out, all at once, the next time it cannot serve a request from what it
//! has: 100 000 sleeps that fire and free their entries leave 100 000 chunks there, and
//! whichever allocation comes next on that worker (a run-queue overflow, a spawn) spends
//! 3–5 ms consolidating them, with every timer due meanwhile firing late
//! (`malloc_consolidate` in `perf`; with the fast bins off, `GLIBC_TUNABLES=
//! glibc.malloc.mxfast=0`, or under mimalloc the tail went away).
//!
//! # Designs not taken
//!
//! * Entries inside the `Sleep` (tokio's intrusive timers): the wheel would point into
//!   a future that another thread may drop at any moment, so dropping it would have to
//!   wait for the owner, which needs a lock shared by every timer of the wheel. uringo
//!   shares no lock between timers.
//! * Recycling the `Arc`s through a bounded cache: it saves the allocation in a steady
//!   state, but a burst larger than the cache still frees its entries one by one.
//!
//! # The rule
//!
//! Each worker owns a [`TimerSlots`]: segments of entries, the first 64 long and each
//! next one twice the last, allocated when first needed and kept until the runtime is
//! dropped, so an entry's address never changes and a slot index names it for good. A
//! slot has two holders while its timer is armed — the wheel (or the registration
//! queue on its way to the wheel) and the `Sleep` — counted in the entry
//! ([`TimerEntry::release`]). Whoever lets go last owns the slot alone and gives it
//! back: to the owner's own free list when it runs on the owner, otherwise to
//! `returned`, which the owner takes whole when its list runs dry. A slot is handed out
//! again only after both holders let go, so neither ever sees another timer's entry;
//! the wheel's key carries a generation, so a cancellation that arrives late names no
//! slot at all.
//!
//! The cost: the largest number of timers a worker held at once stays allocated, 48
//! bytes each (up to twice that for the last segment's unused part), until the runtime
//! is dropped.

use std::sync::OnceLock;

use super::entry::TimerEntry;
use crate::loom::sync::{AtomicU32, Mutex, Ordering};

/// Entries in the first segment; segment `k` holds `FIRST << k`.
#[cfg(not(loom))]
const FIRST: u32 = 64;
/// Small under loom: every entry holds loom objects, and a model arms a few timers.
#[cfg(loom)]
const FIRST: u32 = 2;

/// Segments: `FIRST * (2^SEGMENTS - 1)` slots in all, 67 million at `FIRST` = 64.
const SEGMENTS: usize = 20;

/// One worker's timer entries.
pub(crate) struct TimerSlots {
    segments: [OnceLock<Box<[TimerEntry]>>; SEGMENTS],
    /// The first index never handed out.
    next: AtomicU32,
    /// Slots whose last holder let go on a thread other than the owner.
    returned: Mutex<Vec<u32>>,
}

impl Default for TimerSlots {
    fn default() -> Self {
        TimerSlots {
            segments: std::array::from_fn(|_| OnceLock::new()),
            next: AtomicU32::new(0),
            returned: Mutex::new(Vec::new()),
        }
    }
}

/// The segment of slot `index` and its place in it.
fn locate(index: u32) -> (usize, usize) {
    let segment = (index / FIRST + 1).ilog2();
    let start = FIRST * ((1 << segment) - 1);
    (segment as usize, (index - start) as usize)
}

impl TimerSlots {
    /// The entry in slot `index`, which the caller holds (or is handing out).
    pub(crate) fn get(&self, index: u32) -> &TimerEntry {
        let (segment, offset) = locate(index);
        let entries = self.segments[segment]
            .get()
            .expect("a timer slot is only named after its segment exists");
        &entries[offset]
    }

    /// A free slot for the owner: from its own list, else everything other threads gave
    /// back, else a new one.
    pub(crate) fn take(&self, free: &mut Vec<u32>) -> u32 {
        if let Some(index) = free.pop() {
            return index;
        }
        {
            let mut returned = self.lock_returned();
            std::mem::swap(free, &mut returned);
        }
        free.pop().unwrap_or_else(|| self.grow())
    }

    /// A free slot for a thread that is not the owner (a remote registration).
    pub(crate) fn take_remote(&self) -> u32 {
        let index = self.lock_returned().pop();
        index.unwrap_or_else(|| self.grow())
    }

    /// Lets go of one hold on slot `index` on a thread that is not the owner; the last
    /// holder gives the slot back through `returned`, and drops any waker left in it.
    pub(crate) fn release_elsewhere(&self, index: u32) {
        let entry = self.get(index);
        if entry.release() {
            let waker = entry.take_waker();
            self.lock_returned().push(index);
            drop(waker);
        }
    }

    /// A slot never handed out before, creating its segment when it is the first.
    fn grow(&self) -> u32 {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let (segment, _) = locate(index);
        assert!(
            segment < SEGMENTS,
            "uringo: more than {} timers armed at once on one worker",
            FIRST as u64 * ((1 << SEGMENTS) - 1)
        );
        self.segments[segment].get_or_init(|| {
            (0..FIRST << segment)
                .map(|_| TimerEntry::vacant())
                .collect()
        });
        index
    }

    /// The slots other threads gave back (for the models).
    #[cfg(all(test, loom))]
    pub(crate) fn returned(&self) -> Vec<u32> {
        self.lock_returned().clone()
    }

    fn lock_returned(&self) -> crate::loom::sync::MutexGuard<'_, Vec<u32>> {
        self.returned.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_index_has_its_own_entry() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..FIRST * 15 {
            let (segment, offset) = locate(index);
            assert!(offset < (FIRST << segment) as usize, "{index}");
            assert!(seen.insert((segment, offset)), "{index} shares a slot");
        }
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST - 1), (0, FIRST as usize - 1));
        assert_eq!(locate(FIRST), (1, 0));
        assert_eq!(locate(3 * FIRST), (2, 0));
    }

    /// What each slot costs for as long as the runtime lives (the module's docs).
    #[test]
    fn an_entry_takes_at_most_48_bytes() {
        let size = std::mem::size_of::<TimerEntry>();
        assert!(size <= 48, "a timer entry grew to {size} bytes");
    }

    #[test]
    fn a_slot_given_back_is_handed_out_again_before_a_new_one() {
        let slots = TimerSlots::default();
        let mut free = Vec::new();
        let a = slots.take(&mut free);
        let b = slots.take(&mut free);
        assert_ne!(a, b);
        // Released on the owner: its own list.
        free.push(a);
        assert_eq!(slots.take(&mut free), a);
        // Released elsewhere by both holders: taken back once the owner's list is empty.
        slots.get(b).arm(None);
        slots.release_elsewhere(b);
        slots.release_elsewhere(b);
        assert_eq!(slots.take(&mut free), b);
        assert_eq!(slots.take_remote(), 2, "nothing free: a new slot");
        // Slots past the first segment live in the next one.
        for _ in 0..FIRST {
            let index = slots.take(&mut free);
            let _ = slots.get(index);
        }
    }
}
