//! The completion queue, read in place.
//!
//! The `io-uring` crate hands CQEs out one at a time through an iterator whose every
//! step is an out-of-line clone of the entry, behind a borrow of the whole ring. The
//! drain (`complete.rs`) copies CQEs out in batches anyway, so it reads them here
//! instead: straight from the CQ ring, mapped a second time at the offsets the kernel
//! reported at setup, as the SQ is (`sq.rs`, which explains the arrangement).
//!
//! Only the owner thread moves the head, here or through the crate's own queue view
//! (which the ring still uses for its emptiness checks and for moving CQEs aside); each
//! reads the head afresh and publishes it before it returns, so the two never overlap.
//!
//! Fences: the tail is loaded with acquire ordering, pairing with the kernel's release
//! store after it writes a CQE, so every entry below the tail is complete; the head is
//! stored with release ordering after the entries are copied out, so the kernel, which
//! loads it with acquire before reusing a slot, never overwrites one still being read.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::IoUring;

use crate::cqe::RawCqe;
use crate::sys::{self, Mapping};

/// The owner's in-place view of the CQ (see the module docs).
pub(crate) struct CqReader {
    /// The CQ ring's mapping, which the pointers below point into; held to keep it
    /// mapped.
    _ring: Mapping,
    head: NonNull<AtomicU32>,
    tail: NonNull<AtomicU32>,
    /// The CQE array; a `RawCqe` is laid out as the kernel's `io_uring_cqe`.
    cqes: NonNull<RawCqe>,
    mask: u32,
}

impl CqReader {
    /// Maps `uring`'s CQ a second time.
    pub(crate) fn map(uring: &IoUring) -> io::Result<CqReader> {
        let params = sys::ring_params(uring.params());
        let off = &params.cq_off;
        let len = off.cqes as usize + params.cq_entries as usize * size_of::<RawCqe>();
        let ring = Mapping::new(uring.as_raw_fd(), len, sys::OFF_CQ_RING)?;
        // The kernel's ring_mask word is inside the mapping (`at` checks).
        // SAFETY: and written once, at setup.
        let mask = unsafe { *ring.at::<u32>(off.ring_mask).as_ptr() };
        Ok(CqReader {
            head: ring.at(off.head),
            tail: ring.at(off.tail),
            cqes: ring.at(off.cqes),
            mask,
            _ring: ring,
        })
    }

    /// Moves up to `batch.len()` CQEs out of the CQ into `batch`, skipping those `keep`
    /// refuses (they leave the CQ all the same). Returns how many it wrote.
    #[inline]
    pub(crate) fn take(
        &self,
        batch: &mut [MaybeUninit<RawCqe>],
        mut keep: impl FnMut(&RawCqe) -> bool,
    ) -> usize {
        // SAFETY: both words are inside our mapping, which lives as long as `self`.
        let (head_word, tail_word) = unsafe { (self.head.as_ref(), self.tail.as_ref()) };
        // Only the owner moves the head, and it is this thread.
        let mut head = head_word.load(Ordering::Relaxed);
        let tail = tail_word.load(Ordering::Acquire);
        let mut n = 0;
        while head != tail && n < batch.len() {
            // Read whole, in one 16-byte piece: the drain reads it back whole, and a copy
            // assembled from field-sized writes could not be forwarded to that read
            // (`sq.rs` tells the same story for SQEs).
            // The index is masked into the CQE array, and the entry is below the tail.
            // SAFETY: so the kernel has written it, and leaves it until the head passes.
            let raw = unsafe { self.cqes.as_ptr().add((head & self.mask) as usize).read() };
            head = head.wrapping_add(1);
            if keep(&raw) {
                batch[n].write(raw);
                n += 1;
            }
        }
        head_word.store(head, Ordering::Release);
        n
    }
}
