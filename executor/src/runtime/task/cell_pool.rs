//! Where task cells live: 128-byte-aligned slots from per-thread magazines.
//!
//! # The problem
//!
//! A task's header is written on every poll (the state word twice, the stamps), and a
//! task spawned on one thread is routinely polled on another. `malloc` packs small
//! blocks 16 bytes apart, so the header of one task shares its cache line with the tail
//! of its neighbour, and neighbours are often polled by different workers: every poll
//! of either then pulls the line from the other core. On a 200-task `yield_now` loop
//! over two workers that false sharing cost about a quarter of the CPU.
//!
//! # Designs rejected
//!
//! * **`#[repr(align(128))]` on the cell**, as tokio does. glibc serves an aligned
//!   request through `memalign`, under the arena lock and with a split of the block:
//!   spawn_many_local went from 0.4× tokio to parity.
//! * **Padding the cell** past its neighbours. glibc frees blocks over 120 bytes from
//!   another thread under the arena lock too (only smaller ones go to its lock-free
//!   fastbins), and a task is usually freed by a thread other than its spawner: 8 bytes
//!   more made spawn_many_local 1.8× slower.
//! * **A faster global allocator** (mimalloc, jemalloc). Which allocator a process
//!   uses is its owner's choice, not a library's.
//!
//! # The rule
//!
//! Cells of up to [`CLASSES`] × 128 bytes take a slot of their size class, rounded up to
//! a multiple of 128 bytes and aligned to 128 (two cache lines, the unit the adjacent-line
//! prefetcher pulls), so no two tasks ever share a line. Larger cells go to the global
//! allocator: such a task shares at most one of its many lines with a neighbour, and
//! the rounding would cost more memory than the sharing costs time (a connection task
//! of 464 bytes took a 512-byte slot, 34 bytes more per idle connection than glibc's
//! block, with no gain on any scheduler shape).
//!
//! Slots move as in Bonwick's magazine allocator (*Magazines and Vmem*, USENIX 2001):
//!
//! * each thread holds two magazines per class, arrays of up to [`MAGAZINE`] free slots:
//!   an allocation pops from one, a free pushes onto one, with no lock and no atomic;
//! * when both are empty (or both full) the thread trades one with the class's depot,
//!   a mutex-protected stack of full magazines: one lock per [`MAGAZINE`] operations,
//!   and the trade moves the array, never touching the slots themselves (which would
//!   be cold misses);
//! * the depot carves new slots from 64 KiB chunks when it has no full magazine;
//! * a thread that exits gives its magazines back to the depot.
//!
//! A task spawned on one worker and freed on another moves its slot from the freeing
//! thread's magazine to the spawner's through the depot, a magazine at a time.
//!
//! Chunks are never returned to the system: the memory held is the peak number of live
//! small tasks times their slot size. glibc keeps freed small blocks in its arenas too.
//!
//! # Fences
//!
//! None beyond the depot's mutex: a thread's magazines are its own, and a slot is owned
//! by exactly one party at a time (its task, a magazine, or the depot). A slot handed to
//! another thread travels in a task or a magazine, both behind a synchronising hand-off
//! (a run queue, a wake, the depot's lock).
//!
//! Under loom the cells come from the global allocator: the pool has no atomics for a
//! model to explore, and loom's threads are not real threads.

// Under loom only `alloc` and `dealloc` remain, forwarding to the global allocator.
#![cfg_attr(loom, allow(dead_code))]

use std::alloc::Layout;
use std::ptr::NonNull;

/// Bytes per slot unit, and every slot's alignment.
pub(crate) const SLOT: usize = 128;

/// Size classes: slots of 128, 256 and 384 bytes.
pub(crate) const CLASSES: usize = 3;

/// Free slots per magazine.
pub(crate) const MAGAZINE: usize = 32;

/// Bytes of each chunk the depot carves slots from.
const CHUNK: usize = 64 * 1024;

/// The size class of `layout`, if it takes a slot rather than the global allocator.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    (layout.align() <= SLOT && layout.size() <= SLOT * CLASSES && layout.size() > 0)
        .then(|| (layout.size() - 1) / SLOT)
}

/// Allocates memory for `layout`: a 128-byte-aligned slot when it fits a class.
///
/// Aborts through [`std::alloc::handle_alloc_error`] when the system has no memory, as
/// `Box::new` does.
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    #[cfg(not(loom))]
    if let Some(class) = class_of(layout) {
        return pool::alloc(class);
    }
    // SAFETY: `layout` has a non-zero size (a cell holds at least its header).
    let ptr = unsafe { std::alloc::alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees memory [`alloc`] returned.
///
/// # Safety
/// `ptr` came from `alloc(layout)` with this same `layout`, and is not used again.
#[inline]
pub(crate) unsafe fn dealloc(ptr: NonNull<u8>, layout: Layout) {
    #[cfg(not(loom))]
    if let Some(class) = class_of(layout) {
        // The same layout took a slot of this class (`alloc`), and the caller gives it up.
        // SAFETY: so it is a slot of `class` that nobody uses any more.
        return unsafe { pool::dealloc(class, ptr) };
    }
    // SAFETY: the same layout went to the global allocator (`alloc`).
    unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
}

#[cfg(not(loom))]
mod pool {
    use std::cell::RefCell;
    use std::ptr::NonNull;
    use std::sync::Mutex;

    use super::{CHUNK, CLASSES, MAGAZINE, SLOT};

    /// Up to [`MAGAZINE`] free slots of one class.
    struct Magazine {
        len: usize,
        slots: [*mut u8; MAGAZINE],
    }

    impl Magazine {
        fn empty() -> Box<Magazine> {
            Box::new(Magazine {
                len: 0,
                slots: [std::ptr::null_mut(); MAGAZINE],
            })
        }

        fn is_empty(&self) -> bool {
            self.len == 0
        }

        fn is_full(&self) -> bool {
            self.len == MAGAZINE
        }

        #[inline]
        fn pop(&mut self) -> NonNull<u8> {
            self.len -= 1;
            // SAFETY: every slot below `len` was pushed from a non-null slot pointer.
            unsafe { NonNull::new_unchecked(self.slots[self.len]) }
        }

        #[inline]
        fn push(&mut self, slot: NonNull<u8>) {
            self.slots[self.len] = slot.as_ptr();
            self.len += 1;
        }
    }

    /// One class's shared store of free slots.
    ///
    /// Magazines stay boxed in the lists: a trade under the lock moves a pointer, not
    /// a magazine's 264 bytes, and a thread's cache swaps the same boxes.
    #[allow(clippy::vec_box)]
    struct Depot {
        /// Magazines with at least one free slot (most of them full).
        full: Vec<Box<Magazine>>,
        /// Empty magazines, to hand out without allocating one.
        empty: Vec<Box<Magazine>>,
        /// The uncarved rest of the newest chunk, `fresh_left` slots from `fresh`.
        fresh: *mut u8,
        fresh_left: usize,
    }

    // SAFETY: the depot owns the free slots it lists (nobody else reads or writes them
    // until a magazine leaves it under the lock), so moving it between threads moves
    // nothing another thread still uses.
    unsafe impl Send for Depot {}

    impl Depot {
        const fn new() -> Depot {
            Depot {
                full: Vec::new(),
                empty: Vec::new(),
                fresh: std::ptr::null_mut(),
                fresh_left: 0,
            }
        }

        /// Replaces `magazine` (empty) with one holding at least one free slot.
        fn trade_empty(&mut self, class: usize, magazine: &mut Box<Magazine>) {
            match self.full.pop() {
                Some(full) => self.empty.push(std::mem::replace(magazine, full)),
                None => {
                    while !magazine.is_full() {
                        magazine.push(self.carve(class));
                    }
                }
            }
        }

        /// Replaces `magazine` (full) with an empty one.
        fn trade_full(&mut self, magazine: &mut Box<Magazine>) {
            let empty = self.empty.pop().unwrap_or_else(Magazine::empty);
            self.full.push(std::mem::replace(magazine, empty));
        }

        /// One slot, for a thread without its magazines.
        fn take_one(&mut self, class: usize) -> NonNull<u8> {
            let Some(magazine) = self.full.last_mut() else {
                return self.carve(class);
            };
            let slot = magazine.pop();
            if magazine.is_empty() {
                let spent = self.full.pop().expect("the magazine just used");
                self.empty.push(spent);
            }
            slot
        }

        /// Takes back one slot, from a thread without its magazines.
        fn give_one(&mut self, slot: NonNull<u8>) {
            match self.full.last_mut() {
                Some(magazine) if !magazine.is_full() => magazine.push(slot),
                _ => {
                    let mut magazine = self.empty.pop().unwrap_or_else(Magazine::empty);
                    magazine.push(slot);
                    self.full.push(magazine);
                }
            }
        }

        /// A slot nobody has used yet.
        fn carve(&mut self, class: usize) -> NonNull<u8> {
            let size = (class + 1) * SLOT;
            if self.fresh_left == 0 {
                let layout = std::alloc::Layout::from_size_align(CHUNK, SLOT)
                    .expect("a 64 KiB chunk is a valid layout");
                // SAFETY: the layout's size is not zero.
                let chunk = unsafe { std::alloc::alloc(layout) };
                if chunk.is_null() {
                    std::alloc::handle_alloc_error(layout);
                }
                self.fresh = chunk;
                self.fresh_left = CHUNK / size;
            }
            let slot = self.fresh;
            self.fresh_left -= 1;
            // `fresh_left` more slots of `size` bytes follow in the chunk, so the next one
            // (or the chunk's end, when this was the last) is in bounds.
            // SAFETY: so the offset stays within the chunk's allocation.
            self.fresh = unsafe { slot.add(size) };
            // SAFETY: a slot of a non-null chunk.
            unsafe { NonNull::new_unchecked(slot) }
        }
    }

    static DEPOTS: [Mutex<Depot>; CLASSES] = [const { Mutex::new(Depot::new()) }; CLASSES];

    fn depot(class: usize) -> std::sync::MutexGuard<'static, Depot> {
        // A panic while holding the lock leaves the depot consistent: every operation
        // completes its list moves before it can panic (only allocation can, and that
        // aborts).
        DEPOTS[class].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A thread's two magazines of each class.
    struct Cache {
        loaded: [Option<Box<Magazine>>; CLASSES],
        previous: [Option<Box<Magazine>>; CLASSES],
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            for class in 0..CLASSES {
                for magazine in [self.loaded[class].take(), self.previous[class].take()] {
                    match magazine {
                        Some(m) if !m.is_empty() => depot(class).full.push(m),
                        _ => {}
                    }
                }
            }
        }
    }

    thread_local! {
        static CACHE: RefCell<Cache> = const {
            RefCell::new(Cache {
                loaded: [const { None }; CLASSES],
                previous: [const { None }; CLASSES],
            })
        };
    }

    /// The thread's magazines of `class`, or `None` when the thread has none to offer:
    /// its cache is gone (the thread is exiting) or in use (an allocation from inside
    /// the pool, through a global allocator that spawns tasks).
    #[inline]
    fn with_magazines<R>(
        class: usize,
        f: impl FnOnce(&mut Box<Magazine>, &mut Box<Magazine>) -> R,
    ) -> Option<R> {
        CACHE
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                let cache = &mut *cache;
                let loaded = cache.loaded[class].get_or_insert_with(Magazine::empty);
                let previous = cache.previous[class].get_or_insert_with(Magazine::empty);
                Some(f(loaded, previous))
            })
            .ok()
            .flatten()
    }

    #[inline]
    pub(super) fn alloc(class: usize) -> NonNull<u8> {
        with_magazines(class, |loaded, previous| {
            if loaded.is_empty() {
                if previous.is_empty() {
                    depot(class).trade_empty(class, previous);
                }
                std::mem::swap(loaded, previous);
            }
            loaded.pop()
        })
        .unwrap_or_else(|| depot(class).take_one(class))
    }

    /// # Safety
    /// `slot` is a slot of `class` that nobody uses any more.
    #[inline]
    pub(super) unsafe fn dealloc(class: usize, slot: NonNull<u8>) {
        let kept = with_magazines(class, |loaded, previous| {
            if loaded.is_full() {
                if previous.is_full() {
                    depot(class).trade_full(previous);
                }
                std::mem::swap(loaded, previous);
            }
            loaded.push(slot);
        });
        if kept.is_none() {
            depot(class).give_one(slot);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn classes_round_up_to_whole_slots() {
        assert_eq!(class_of(layout(1)), Some(0));
        assert_eq!(class_of(layout(128)), Some(0));
        assert_eq!(class_of(layout(129)), Some(1));
        assert_eq!(class_of(layout(384)), Some(2));
        assert_eq!(class_of(layout(385)), None);
        assert_eq!(
            class_of(Layout::from_size_align(64, 256).unwrap()),
            None,
            "an alignment above a slot's goes to the global allocator"
        );
    }

    /// Live slots never overlap and never share a 128-byte line, whatever their class,
    /// across more allocations than a magazine and a chunk hold.
    #[test]
    fn live_slots_are_aligned_and_disjoint() {
        let mut live = Vec::new();
        let mut lines = HashSet::new();
        for i in 0..3_000 {
            let size = [56, 120, 200, 300, 384][i % 5];
            let ptr = alloc(layout(size));
            assert_eq!(ptr.as_ptr() as usize % SLOT, 0, "slot {i} misaligned");
            let first = ptr.as_ptr() as usize / SLOT;
            for line in first..first + size.div_ceil(SLOT) {
                assert!(lines.insert(line), "slot {i} overlaps a live slot");
            }
            // SAFETY: the slot is ours and `size` bytes long.
            unsafe { ptr.as_ptr().write_bytes(i as u8, size) };
            live.push((ptr, size, i as u8));
        }
        for (ptr, size, byte) in live {
            // SAFETY: still live, `size` bytes, written above.
            let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), size) };
            assert!(bytes.iter().all(|b| *b == byte), "a slot was overwritten");
            // SAFETY: allocated above with this layout, not used again.
            unsafe { dealloc(ptr, layout(size)) };
        }
    }

    /// Slots freed on other threads, including threads that then exit, come back: a
    /// steady spawn-here, free-there pattern reuses memory instead of growing.
    #[test]
    fn slots_freed_elsewhere_are_reused() {
        let size = 2 * SLOT + 8;
        let rounds = 200;
        let per_round = 3 * MAGAZINE + 5;
        let mut seen = HashSet::new();
        for _ in 0..rounds {
            let batch: Vec<usize> = (0..per_round)
                .map(|_| alloc(layout(size)).as_ptr() as usize)
                .collect();
            seen.extend(batch.iter().copied());
            std::thread::spawn(move || {
                for addr in batch {
                    let ptr = NonNull::new(addr as *mut u8).unwrap();
                    // SAFETY: allocated above with this layout, handed to this thread.
                    unsafe { dealloc(ptr, layout(size)) };
                }
            })
            .join()
            .unwrap();
        }
        // Without reuse: rounds × per_round distinct slots. With it, what one round
        // holds plus what magazines in flight strand, plus whatever slots of the class
        // other tests running in parallel leave in the depot.
        assert!(
            seen.len() <= rounds * per_round / 10,
            "{} distinct slots for {per_round} live at a time",
            seen.len()
        );
    }
}
