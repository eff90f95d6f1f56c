//! The park/unpark handshake between a ring's owner and the threads that wake it.
//!
//! Kept alone in this file so it can be modelled with loom as it is. The owner announces
//! `PARKED` *before* its last look at its queues and its blocking `io_uring_enter`; a
//! waker swaps in `NOTIFIED` and, only if it saw `PARKED`, sends the physical wake-up (a
//! MSG_RING CQE or an eventfd write, both of which make the pending enter return). A
//! wake that lands while the owner is running leaves `NOTIFIED` behind, so the next park
//! returns at once instead of sleeping: a notification is a token, never lost, and any
//! number of wakes between two parks cost one atomic swap each and no syscall.

use crate::sync::{AtomicU32, Ordering::SeqCst};

/// The owner is running (or about to check its queues); wakers need not kick.
const RUNNING: u32 = 0;
/// The owner has committed to sleeping in the kernel; a waker must kick it.
const PARKED: u32 = 1;
/// A wake arrived since the owner last parked; the next park returns at once.
const NOTIFIED: u32 = 2;

#[derive(Debug)]
pub struct ParkState {
    state: AtomicU32,
}

impl ParkState {
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(RUNNING),
        }
    }

    /// Owner: announces that it is going to sleep. Returns false (and consumes the
    /// token) when a wake is pending, in which case the owner must not sleep.
    pub fn begin_park(&self) -> bool {
        // Mutation point (loom-tests): parking over NOTIFIED sleeps through a wake.
        if cfg!(uringo_loom_mutation = "park_token") {
            return self.state.swap(PARKED, SeqCst) != PARKED;
        }
        match self.state.compare_exchange(RUNNING, PARKED, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(_) => {
                // Only the owner moves the state away from NOTIFIED, so it is NOTIFIED.
                self.state.store(RUNNING, SeqCst);
                false
            }
        }
    }

    /// Owner: back from the kernel (woken, timed out or interrupted).
    pub fn end_park(&self) {
        self.state.swap(RUNNING, SeqCst);
    }

    /// Waker: records the wake. Returns true when the owner is asleep (or committed to
    /// sleeping) and must be kicked out of the kernel.
    pub fn notify(&self) -> bool {
        self.state.swap(NOTIFIED, SeqCst) == PARKED
    }

    /// Whether the owner is currently parked (for metrics and tests).
    pub fn is_parked(&self) -> bool {
        self.state.load(SeqCst) == PARKED
    }
}
