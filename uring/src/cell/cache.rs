//! A per-thread cache of cell allocations, so a submitted op costs no trip to the
//! allocator in steady state.
//!
//! glibc's own per-thread cache keeps 7 blocks per size: a tick that submits a batch of
//! 32 ops frees 32 cells in a row and sends most of them back to the arenas. This cache
//! keeps up to [`DEPTH`] blocks per size class, each class a multiple of [`STEP`] bytes
//! aligned to [`ALIGN`]: a cell of any op type takes a block of its class.
//!
//! A cell may be freed on any thread (tasks migrate), so the cache is per thread, not
//! per ring: a block freed on another thread simply joins that thread's cache (or goes
//! back to the allocator when the cache is full). Blocks are independent allocations of
//! the global allocator, so nothing here is shared between threads and no protocol is
//! needed; a thread's cache is freed when the thread exits, and a cell freed after that
//! (during thread teardown) goes straight to the allocator.

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// Size classes are multiples of this many bytes.
const STEP: usize = 64;
/// Classes cover cells of up to `STEP * CLASSES` bytes; larger ones are not cached.
const CLASSES: usize = 8;
/// Every cached block has this alignment; cells that need more are not cached.
const ALIGN: usize = 16;
/// Blocks kept per class and thread.
const DEPTH: u32 = 64;

/// A cached block, linked through its first word.
struct Free {
    next: *mut Free,
}

struct Cache {
    heads: [Cell<*mut Free>; CLASSES],
    lens: [Cell<u32>; CLASSES],
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            lens: [const { Cell::new(0) }; CLASSES],
        }
    };
}

/// The class of `layout`, if it is cached at all.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    (layout.align() <= ALIGN && layout.size() <= STEP * CLASSES)
        .then(|| layout.size().saturating_sub(1) / STEP)
}

/// The layout every block of `class` is allocated (and freed) with.
#[inline]
fn class_layout(class: usize) -> Layout {
    // Multiples of 64 up to 512 with alignment 16: always a valid layout.
    Layout::from_size_align(STEP * (class + 1), ALIGN).expect("valid class layout")
}

fn alloc_raw(layout: Layout) -> NonNull<u8> {
    // SAFETY: every cell layout has a non-zero size (its header alone is not empty).
    let ptr = unsafe { alloc::alloc(layout) };
    NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// A block for a cell of `layout`: a cached one if this thread has one.
#[inline]
pub(super) fn alloc(layout: Layout) -> NonNull<u8> {
    let Some(class) = class_of(layout) else {
        return alloc_raw(layout);
    };
    let cached = CACHE
        .try_with(|cache| {
            let head = cache.heads[class].get();
            if head.is_null() {
                return None;
            }
            // SAFETY: `head` is a block this thread's cache owns; its first word is the
            // link written when it was cached.
            cache.heads[class].set(unsafe { (*head).next });
            cache.lens[class].set(cache.lens[class].get() - 1);
            NonNull::new(head.cast::<u8>())
        })
        .ok()
        .flatten();
    cached.unwrap_or_else(|| alloc_raw(class_layout(class)))
}

/// Gives back a block [`alloc`] returned for `layout`.
///
/// # Safety
/// `ptr` came from `alloc(layout)` with this same `layout`, and nothing uses it any more.
#[inline]
pub(super) unsafe fn free(ptr: NonNull<u8>, layout: Layout) {
    #[cfg(all(test, loom))]
    FREED.with(|n| n.set(n.get() + 1));
    let Some(class) = class_of(layout) else {
        // SAFETY: guaranteed by the caller: allocated with `layout`, unused now.
        unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
        return;
    };
    let kept = CACHE
        .try_with(|cache| {
            if cache.lens[class].get() >= DEPTH {
                return false;
            }
            let block = ptr.as_ptr().cast::<Free>();
            // SAFETY: the block is ours (the caller's guarantee), at least STEP bytes
            // and ALIGN-aligned, so it holds the link.
            unsafe {
                block.write(Free {
                    next: cache.heads[class].get(),
                })
            };
            cache.heads[class].set(block);
            cache.lens[class].set(cache.lens[class].get() + 1);
            true
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: blocks of a cached class are allocated with its class layout.
        unsafe { alloc::dealloc(ptr.as_ptr(), class_layout(class)) };
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        for (class, head) in self.heads.iter().enumerate() {
            let mut block = head.replace(ptr::null_mut());
            while !block.is_null() {
                // SAFETY: a cached block: its link is valid, and nothing else uses it.
                let next = unsafe { (*block).next };
                // SAFETY: blocks of a class are allocated with its class layout.
                unsafe { alloc::dealloc(block.cast::<u8>(), class_layout(class)) };
                block = next;
            }
        }
    }
}

#[cfg(all(test, loom))]
thread_local! {
    /// How many cells were freed, for the loom models (loom runs its threads on one OS
    /// thread, so this counts across them).
    pub(crate) static FREED: Cell<usize> = const { Cell::new(0) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_per_class_and_bounded() {
        let small = Layout::from_size_align(40, 8).unwrap();
        let a = alloc(small);
        // SAFETY: `a` came from `alloc(small)` and is unused.
        unsafe { free(a, small) };
        // Same class (<= 64 bytes): the block comes back.
        let b = alloc(Layout::from_size_align(64, 16).unwrap());
        assert_eq!(a, b);
        // SAFETY: as above; same class layout.
        unsafe { free(b, small) };
        // A larger class does not take it.
        let big = Layout::from_size_align(200, 8).unwrap();
        let c = alloc(big);
        assert_ne!(c, a);
        // SAFETY: as above.
        unsafe { free(c, big) };
        // More than DEPTH frees: the rest go to the allocator.
        let blocks: Vec<_> = (0..DEPTH + 8).map(|_| alloc(small)).collect();
        for block in blocks {
            // SAFETY: as above.
            unsafe { free(block, small) };
        }
        assert_eq!(CACHE.with(|cache| cache.lens[0].get()), DEPTH);
        // Over-aligned or oversized layouts bypass the cache.
        let odd = Layout::from_size_align(64, 64).unwrap();
        let d = alloc(odd);
        // SAFETY: as above.
        unsafe { free(d, odd) };
        let huge = Layout::from_size_align(4096, 8).unwrap();
        let e = alloc(huge);
        // SAFETY: as above.
        unsafe { free(e, huge) };
    }
}
