//! What the scheduling loop needs from the kernel, and nothing more.
//!
//! The loop (`worker/`) asks four things of whatever delivers its I/O: submit what the
//! tasks queued and dispatch what completed, without blocking ([`Driver::reap`]); say
//! whether such a reap would find anything, without a syscall ([`Driver::has_events`],
//! the search spin's look); sleep until something arrives or a timeout passes
//! ([`Driver::park`]); and give other threads a way to end that sleep
//! ([`Driver::unparker`]). Completions are delivered by waking task wakers from inside
//! `reap` and `park`, so the driver never sees a task.
//!
//! Three drivers implement it: the io_uring [`Ring`] here, a loom stand-in
//! (`crate::loom::LoomDriver`) so that loom checks the real loop, and a seeded simulated
//! kernel (`scheduler/sim/`) so that a test can run thousands of schedules of the real
//! loop deterministically. Keeping the trait this small is what makes the last two
//! possible; the loop is generic over it, so the io_uring build pays no dispatch.

use std::io;
use std::sync::Arc as StdArc;
use std::time::Duration;

use uringo_uring::{Ring, RingWaker};

/// The kernel side of one worker. Owned by the worker's thread.
pub(crate) trait Driver {
    /// Submits queued work and dispatches every completion that is ready, without
    /// blocking. Returns how many completions were dispatched.
    fn reap(&self) -> io::Result<usize>;

    /// Whether [`Driver::reap`] would dispatch something. No syscall; may say yes when
    /// unsure (the caller then reaps and finds nothing).
    fn has_events(&self) -> bool;

    /// Sleeps until a completion, an [`Unpark::unpark`] or `timeout` (`None`: no
    /// timeout), then dispatches what is ready. An unpark that came before the call
    /// makes it return at once.
    fn park(&self, timeout: Option<Duration>) -> io::Result<usize>;

    /// What other threads call to end this driver's park.
    fn unparker(&self) -> Unparker;
}

/// Ends a worker's park from any thread. Sticky: an unpark while the worker is awake
/// makes its next park return at once, so a wake-up is never lost between the worker's
/// last look at its queues and its sleep.
pub(crate) trait Unpark: Send + Sync + 'static {
    /// Wakes the worker (or makes its next park return at once).
    fn unpark(&self);
}

/// A shared [`Unpark`]. A std `Arc` even under loom: it is a pointer to the mechanism,
/// not a mechanism itself.
pub(crate) type Unparker = StdArc<dyn Unpark>;

impl Driver for Ring {
    #[inline]
    fn reap(&self) -> io::Result<usize> {
        self.submit_and_reap()
    }

    #[inline]
    fn has_events(&self) -> bool {
        Ring::has_events(self)
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        Ring::park(self, timeout)
    }

    fn unparker(&self) -> Unparker {
        StdArc::new(self.waker())
    }
}

/// A ring's waker ends its park: `MSG_RING` from a thread with a ring of its own, an
/// eventfd write otherwise (uringo-uring's `shared.rs`).
impl Unpark for RingWaker {
    fn unpark(&self) {
        self.wake();
    }
}
