//! The submission queue, written in place.
//!
//! # The problem
//!
//! The `io-uring` crate queues an SQE by copying a finished one into the ring: the
//! caller builds the 64-byte entry on its stack, field by field, and `push` reads it
//! back in 16-byte pieces. Those reads span several of the narrower writes that built
//! the entry a few dozen instructions earlier, so the CPU cannot forward them from its
//! store buffer: each one waits until those writes have reached the cache. On this
//! machine the wait was most of the cost of an op's first poll (`perf annotate` put
//! 60 % of `Op::poll`'s first-poll samples on two of the four loads), and it is paid by
//! every op, whatever its type.
//!
//! # The rule
//!
//! Build the SQE where the kernel will read it. [`SqWriter::reserve`] hands out the next
//! free entry of the SQE array; the op's builder writes into it, the ring fills in the
//! user_data and any flags, and [`Reservation::publish`] moves the tail past it. A
//! reservation dropped unpublished (a refused submission, a build that panicked) costs
//! nothing: the next one reuses the entry. An op's build runs while its entry is
//! reserved, so it must not submit; the writer refuses a second reservation, loudly,
//! rather than lose an SQE.
//!
//! The crate keeps everything else: setup, registration, the CQ, and its own
//! `submission()` for the ring's internal SQEs. The SQ ring and the SQE array are mapped a
//! second time here, at the offsets the kernel reported at setup (as liburing maps
//! them), so both views share the kernel's pages. The two writers never overlap: both run
//! on the owner thread only (design invariant 3), each reads the tail afresh and
//! publishes it before it returns, and neither keeps a queue open across the other.
//!
//! # Rejected
//!
//! - Copying with narrower loads (8 bytes at a time) into a second, aligned copy: the
//!   compiler merges the loads back into 16-byte ones, and forcing them with volatile
//!   reads measured no better.
//! - Writing the user_data earlier so its store has drained by the copy: the other
//!   fields' stores stall the same way.
//!
//! # Fences
//!
//! The kernel reads the tail with acquire semantics at `io_uring_enter`; the tail is
//! stored with release ordering after the entry is written, so the kernel sees the whole
//! entry. The head is loaded with acquire ordering, pairing with the kernel's release
//! store once it has consumed entries, so a slot is never rewritten while the kernel
//! still reads it.

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::{squeue, IoUring};

use crate::sys::{self, Mapping, RingParams};

/// The owner's in-place view of the SQ (see the module docs).
pub(crate) struct SqWriter {
    /// The SQ ring's mapping, which `head` and `tail` point into; held to keep it mapped.
    _ring: Mapping,
    sqes: Mapping,
    head: NonNull<AtomicU32>,
    tail: NonNull<AtomicU32>,
    mask: u32,
    entries: u32,
    /// An entry is handed out and neither published nor given back.
    reserved: Cell<bool>,
}

impl SqWriter {
    /// Maps `uring`'s SQ a second time.
    pub(crate) fn map(uring: &IoUring) -> io::Result<SqWriter> {
        let params: &RingParams = sys::ring_params(uring.params());
        let off = &params.sq_off;
        let fd = uring.as_raw_fd();
        let ring_len = off.array as usize + params.sq_entries as usize * 4;
        let ring = Mapping::new(fd, ring_len, sys::OFF_SQ_RING)?;
        let sqes_len = params.sq_entries as usize * std::mem::size_of::<squeue::Entry>();
        let sqes = Mapping::new(fd, sqes_len, sys::OFF_SQES)?;
        // The kernel's ring_mask and ring_entries words are inside the mapping (`at`).
        // SAFETY: and written once, at setup.
        let (mask, entries) = unsafe {
            (
                *ring.at::<u32>(off.ring_mask).as_ptr(),
                *ring.at::<u32>(off.ring_entries).as_ptr(),
            )
        };
        Ok(SqWriter {
            head: ring.at(off.head),
            tail: ring.at(off.tail),
            _ring: ring,
            sqes,
            mask,
            entries,
            reserved: Cell::new(false),
        })
    }

    /// Hands out the next free entry, or `None` when the SQ is full. The entry stays
    /// the caller's until the returned reservation is published or dropped.
    ///
    /// # Panics
    ///
    /// While another reservation is out: an op's build, which runs while its entry is
    /// reserved, submitted another op, which the op traits forbid. Taking the same
    /// entry twice would lose one of the two SQEs.
    #[inline]
    pub(crate) fn reserve(&self) -> Option<Reservation<'_>> {
        assert!(
            !self.reserved.get(),
            "uringo: an op's build() submitted another op; builds must only build"
        );
        // SAFETY: both words are inside our mapping, which lives as long as `self`.
        let (head, tail) = unsafe {
            (
                self.head.as_ref().load(Ordering::Acquire),
                // Only the owner writes the tail, and it is this thread.
                self.tail.as_ref().load(Ordering::Relaxed),
            )
        };
        if tail.wrapping_sub(head) >= self.entries {
            return None;
        }
        let index = (tail & self.mask) as usize;
        // SAFETY: `index` is below the array's `entries` (the mask is `entries - 1`).
        let entry = unsafe { self.sqes.at::<squeue::Entry>(0).add(index) };
        self.reserved.set(true);
        Some(Reservation {
            sq: self,
            tail,
            entry,
        })
    }

    /// Panics while an entry is reserved: the crate's own queue view must not push
    /// into it (see [`SqWriter::reserve`]).
    #[inline]
    pub(crate) fn assert_unreserved(&self) {
        assert!(
            !self.reserved.get(),
            "uringo: an op's build() submitted another op; builds must only build"
        );
    }
}

/// A free SQE handed out by [`SqWriter::reserve`], not yet visible to the kernel.
/// Dropping it unpublished gives the entry back.
pub(crate) struct Reservation<'a> {
    sq: &'a SqWriter,
    tail: u32,
    entry: NonNull<squeue::Entry>,
}

impl Reservation<'_> {
    /// Where the SQE goes.
    #[inline]
    pub(crate) fn place(&mut self) -> &mut MaybeUninit<squeue::Entry> {
        // `MaybeUninit` makes no claim on the entry's contents.
        // SAFETY: it is past the tail (the kernel does not read it); we are its only handle.
        unsafe { self.entry.cast::<MaybeUninit<squeue::Entry>>().as_mut() }
    }

    /// The SQE written through [`Reservation::place`].
    ///
    /// # Safety
    /// A whole entry has been written there.
    #[inline]
    pub(crate) unsafe fn written(&mut self) -> &mut squeue::Entry {
        // SAFETY: as for `place`, and the caller wrote the entry.
        unsafe { self.entry.as_mut() }
    }

    /// Makes the entry visible to the kernel at the next enter.
    ///
    /// # Safety
    /// A whole entry has been written through [`Reservation::place`].
    #[inline]
    pub(crate) unsafe fn publish(self) {
        // Release: the kernel, which loads the tail with acquire, sees the whole entry.
        // SAFETY: the tail word is inside the writer's mapping.
        unsafe { self.sq.tail.as_ref() }.store(self.tail.wrapping_add(1), Ordering::Release);
        // Drop clears the reservation.
    }
}

impl Drop for Reservation<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sq.reserved.set(false);
    }
}
