//! What the kernel hands back, and how a ring tells its own completions from its ops'.
//!
//! Every CQE carries the `user_data` of the SQE it answers, and that number is all the
//! ring has to find who was waiting. User ops are numbered by their in-flight key (`ring/in_flight.rs`), which is
//! always far below 2^63. The ring also submits SQEs of its own (the eventfd read that
//! other threads complete to wake it, cancel requests, MSG_RING wakes it sends and
//! receives), and their CQEs must never be mistaken for an op's: a stray match would
//! complete an unrelated op and free buffers the kernel still writes. So the ring's own
//! user_data have the top bit set, a kind in bits 32..63 and a payload in bits 0..32.
//!
//! This module depends on nothing else in the crate, so ops, cells, buffer rings and the
//! ring itself can all speak of a [`Cqe`] without depending on each other.

use std::io;

/// One completion queue entry, as an op sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Cqe {
    /// The raw result: a byte count, an fd, 0, or `-errno`.
    pub result: i32,
    /// `IORING_CQE_F_*` flags (union of all CQEs of the op, for multi-CQE ops).
    pub flags: u32,
}

impl Cqe {
    /// The result as `io::Result`: negative values are `-errno`.
    pub fn io_result(&self) -> io::Result<u32> {
        if self.result < 0 {
            Err(io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }

    /// The CQE an op gets when its SQE never reached the kernel because of `err`.
    pub(crate) fn from_error(err: &io::Error) -> Cqe {
        Cqe {
            result: -err.raw_os_error().unwrap_or(libc::EIO),
            flags: 0,
        }
    }
}

/// A CQE as it leaves the completion queue: the op's view plus the user_data that says
/// whose it is. Laid out as the kernel's `struct io_uring_cqe` (without `CQE32`), so one
/// is copied out of the CQ whole (`ring/cq.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct RawCqe {
    pub(crate) user_data: u64,
    pub(crate) cqe: Cqe,
}

const _: () = assert!(std::mem::size_of::<RawCqe>() == 16);

impl From<&io_uring::cqueue::Entry> for RawCqe {
    fn from(entry: &io_uring::cqueue::Entry) -> Self {
        RawCqe {
            user_data: entry.user_data(),
            cqe: Cqe {
                result: entry.result(),
                flags: entry.flags(),
            },
        }
    }
}

/// The user_data of the ring's own SQEs (see the module docs).
pub(crate) mod token {
    /// Set in every internal user_data; never in an in-flight key.
    const INTERNAL: u64 = 1 << 63;
    /// The bits that name the kind.
    const KIND_MASK: u64 = !0xffff_ffff;

    /// The eventfd read that foreign threads complete to wake the owner.
    pub(crate) const EVENTFD: u64 = INTERNAL | (1 << 32);
    /// A MSG_RING wake posted into this ring's CQ by another ring.
    pub(crate) const WAKE: u64 = INTERNAL | (2 << 32);
    /// Results nobody waits for: cancel requests.
    pub(crate) const IGNORE: u64 = INTERNAL | (3 << 32);
    /// A MSG_RING wake this ring sent; the payload is the target ring's id.
    pub(crate) const MSG_RING_SENT: u64 = INTERNAL | (4 << 32);
    /// A request sent at setup to learn whether the kernel knows its flags; the payload
    /// numbers it.
    pub(crate) const PROBE: u64 = INTERNAL | (5 << 32);
    /// A cancel sent to learn whether the kernel still has a request, after it dropped a
    /// CQE; the payload names the request (`ring/lost.rs`).
    pub(crate) const RECONCILE: u64 = INTERNAL | (6 << 32);

    /// Whether `user_data` belongs to the ring rather than to a user op.
    pub(crate) fn is_internal(user_data: u64) -> bool {
        user_data & INTERNAL != 0
    }

    /// The kind of an internal user_data (one of the constants above, payload cleared).
    pub(crate) fn kind(user_data: u64) -> u64 {
        user_data & KIND_MASK
    }

    /// The 32-bit payload of an internal user_data.
    pub(crate) fn payload(user_data: u64) -> u32 {
        user_data as u32
    }
}
