//! A ring's counters: bumped by the owner (and a few by wakers), read by anyone.
//!
//! Reading them must cost the ring nothing, so they are plain relaxed atomics: a
//! snapshot is a set of independent reads, not a consistent cut, which is all a
//! scheduler trace or a test needs.

use crate::sync::{AtomicU64, Ordering};

/// Scheduler-visible counters of one ring. Owner-only counters are bumped with a
/// relaxed load+store (one writer); counters other threads bump use `fetch_add`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) enters: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) sq_full_submits: AtomicU64,
    pub(crate) cq_overflow_flushes: AtomicU64,
    pub(crate) cancels: AtomicU64,
    pub(crate) leaked_ops: AtomicU64,
    pub(crate) unknown_cqes: AtomicU64,
    pub(crate) lost_cqes: AtomicU64,
    pub(crate) wake_requests: AtomicU64,
    pub(crate) kicks_msg_ring: AtomicU64,
    pub(crate) kicks_eventfd: AtomicU64,
    pub(crate) remote_submits: AtomicU64,
    pub(crate) wakes_sent: AtomicU64,
    /// Gauge, stored by the owner after each submission and each reap.
    pub(crate) in_flight: AtomicU64,
}

impl Counters {
    /// Single-writer increment.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RingMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RingMetrics {
            submitted: get(&self.submitted),
            completions: get(&self.completions),
            enters: get(&self.enters),
            parks: get(&self.parks),
            sq_full_submits: get(&self.sq_full_submits),
            cq_overflow_flushes: get(&self.cq_overflow_flushes),
            cancels: get(&self.cancels),
            leaked_ops: get(&self.leaked_ops),
            unknown_cqes: get(&self.unknown_cqes),
            lost_cqes: get(&self.lost_cqes),
            wake_requests: get(&self.wake_requests),
            kicks_msg_ring: get(&self.kicks_msg_ring),
            kicks_eventfd: get(&self.kicks_eventfd),
            remote_submits: get(&self.remote_submits),
            wakes_sent: get(&self.wakes_sent),
            in_flight: get(&self.in_flight),
        }
    }
}

/// A snapshot of a ring's counters (all monotonic since the ring was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingMetrics {
    /// SQEs pushed for user ops (internal SQEs such as wake-ups are not counted).
    pub submitted: u64,
    /// CQEs dispatched, internal ones included.
    pub completions: u64,
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Blocking waits (`park`) that actually went to sleep in the kernel.
    pub parks: u64,
    /// Times the SQ was full and had to be submitted early.
    pub sq_full_submits: u64,
    /// Times the kernel reported CQ overflow and buffered CQEs were flushed.
    pub cq_overflow_flushes: u64,
    /// Cancellations requested (dropped or cancelled ops).
    pub cancels: u64,
    /// Ops still in the kernel when the ring was dropped past its drop timeout; their
    /// memory was leaked rather than freed under the kernel.
    pub leaked_ops: u64,
    /// CQEs whose user_data named no op in flight: an op completed twice, or a CQE the
    /// ring cannot account for. Always 0 unless something is wrong.
    pub unknown_cqes: u64,
    /// CQEs the kernel dropped (it could not allocate room for them, and said so with
    /// EBADR). Each makes the ring cancel every op in flight to find whose it was; that
    /// op completes with EBADR.
    pub lost_cqes: u64,
    /// Wake requests received (most are coalesced into no syscall at all).
    pub wake_requests: u64,
    /// Wakes delivered by another ring's MSG_RING.
    pub kicks_msg_ring: u64,
    /// Wakes delivered through the eventfd.
    pub kicks_eventfd: u64,
    /// Ops handed over through the mailbox by threads that do not own this ring.
    pub remote_submits: u64,
    /// MSG_RING wakes this ring's owner posted into other rings.
    pub wakes_sent: u64,
    /// User ops in the kernel right now (a gauge, as of the owner's last submit or
    /// reap).
    pub in_flight: u64,
}
