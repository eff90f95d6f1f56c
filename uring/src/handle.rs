//! Reaching a ring from any thread: handles, wakers, and the wake protocol itself.
//!
//! A wake must never be lost (design invariant 6) and should cost nothing when the owner
//! is running anyway. The owner announces PARKED before its last look at its queues
//! (`park.rs`); a waker swaps in NOTIFIED and sends a physical kick only if it saw
//! PARKED. The kick is a MSG_RING CQE when the waking thread owns a ring of its own (no
//! syscall on the target's side beyond the enter it is already in), otherwise an eventfd
//! write. Remote submissions and cancels are a mailbox push followed by such a wake.

use std::fmt;

use io_uring::squeue;

use crate::cell::Completion;
use crate::context;
use crate::metrics::RingMetrics;
use crate::shared::{Request, RingShared};
use crate::sync::{Arc, Ordering};

/// A `Send + Sync` handle on a ring: wake it, hand it work, read its counters.
///
/// ```
/// let ring = uringo_uring::Ring::new()?;
/// let handle = ring.handle();
/// std::thread::spawn(move || handle.waker().wake()).join().unwrap();
/// // The wake left a token: this park returns at once.
/// ring.park(None)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RingHandle {
    pub(crate) shared: Arc<RingShared>,
}

impl RingHandle {
    pub(crate) fn new(shared: Arc<RingShared>) -> RingHandle {
        RingHandle { shared }
    }

    /// A process-unique id of the ring.
    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// A waker for the ring.
    pub fn waker(&self) -> RingWaker {
        RingWaker {
            shared: self.shared.clone(),
        }
    }

    /// Whether the ring has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether the owner is asleep in the kernel right now.
    pub fn is_parked(&self) -> bool {
        self.shared.park.is_parked()
    }

    /// The ring's counters.
    pub fn metrics(&self) -> RingMetrics {
        self.shared.counters.snapshot()
    }

    /// Hands an op to the owner. Fails (giving the op back) when the ring is gone.
    pub(crate) fn submit_remote(
        &self,
        sqe: squeue::Entry,
        op: Arc<dyn Completion>,
    ) -> Result<(), Arc<dyn Completion>> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(op);
        }
        self.shared
            .counters
            .remote_submits
            .fetch_add(1, Ordering::Relaxed);
        self.shared.mailbox.push(Request::Submit { sqe, op });
        wake(&self.shared);
        // The owner may have closed between our check and our push; then nobody will
        // drain the mailbox but us.
        if self.shared.closed.load(Ordering::Acquire) {
            self.shared.fail_mailbox();
        }
        Ok(())
    }

    /// Asks the owner to cancel `op`.
    pub(crate) fn cancel_remote(&self, op: Arc<dyn Completion>) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        self.shared.mailbox.push(Request::Cancel(op));
        wake(&self.shared);
    }
}

impl fmt::Debug for RingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Wakes a ring's owner from any thread. Wakes between two parks coalesce: only one of
/// them costs a syscall, and only if the owner was asleep.
///
/// From a thread that owns a ring itself, the wake is a `MSG_RING` CQE posted straight
/// into the target's completion queue; from other threads it is an eventfd write.
#[derive(Clone)]
pub struct RingWaker {
    shared: Arc<RingShared>,
}

impl RingWaker {
    /// Wakes the owner (or makes its next park return at once).
    pub fn wake(&self) {
        wake(&self.shared);
    }

    /// The id of the ring this waker wakes.
    pub fn ring_id(&self) -> u32 {
        self.shared.id
    }
}

impl fmt::Debug for RingWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingWaker")
            .field("ring", &self.shared.id)
            .finish()
    }
}

/// Records a wake and kicks the owner out of the kernel if it is parked.
fn wake(shared: &RingShared) {
    shared
        .counters
        .wake_requests
        .fetch_add(1, Ordering::Relaxed);
    if shared.park.notify() {
        kick(shared);
    }
}

/// The physical wake-up: a MSG_RING CQE from this thread's own ring if it has one,
/// else a write to the eventfd the owner always has a read armed on.
fn kick(shared: &RingShared) {
    if crate::context::send_msg_ring_wake(shared) {
        shared
            .counters
            .kicks_msg_ring
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    shared.kick_eventfd();
}

/// Makes `handle`'s ring the destination of ops polled on this thread when the thread
/// has no ring of its own. Returns a guard that restores the previous fallback.
///
/// ```
/// let ring = uringo_uring::Ring::new()?;
/// let handle = ring.handle();
/// std::thread::spawn(move || {
///     let _fallback = uringo_uring::set_fallback(handle);
///     // Ops polled here now go through the ring's mailbox.
/// })
/// .join()
/// .unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_fallback(handle: RingHandle) -> FallbackGuard {
    FallbackGuard {
        prev: context::replace_fallback(Some(handle.shared)),
    }
}

/// Restores the previous fallback ring when dropped.
#[must_use = "the fallback is reset when the guard is dropped"]
pub struct FallbackGuard {
    prev: Option<Arc<RingShared>>,
}

impl Drop for FallbackGuard {
    fn drop(&mut self) {
        context::restore_fallback(self.prev.take());
    }
}
