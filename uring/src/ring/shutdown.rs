//! Dropping a ring without freeing memory the kernel still owns.
//!
//! The kernel owns an op's buffers from submission to its final CQE (design invariant
//! 2), and the ring's in-flight table holds them for it. Dropping the ring must therefore cancel
//! everything in flight and wait for the CQEs that say the kernel let go. The wait is
//! bounded (a filesystem op can be uncancellable for a long time); whatever the kernel
//! still holds when it ends is leaked on purpose, because freeing it would let the
//! kernel write into memory that has been reused.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};

use super::inner::RingInner;
use crate::cqe::token;
use crate::metrics::Counters;
use crate::shared;
use crate::sync::Ordering;
use crate::sys;

/// How long the drop sleeps after the kernel refused an enter, before it tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

impl RingInner {
    /// On drop: cancels everything, waits (bounded) for the CQEs, leaks what the kernel
    /// still holds rather than free it under the kernel.
    pub(super) fn shut_down(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.fail_mailbox();
        let in_flight = || self.in_flight.len() + usize::from(self.eventfd_armed.get());
        if in_flight() > 0 {
            tracing::debug!(
                ring = self.shared.id,
                in_flight = in_flight(),
                "dropping ring: cancelling in-flight ops"
            );
            self.cancel_all_and_wait(in_flight);
        }
        let leaked = self.in_flight.len();
        if leaked > 0 {
            Counters::bump(&self.shared.counters.leaked_ops, leaked as u64);
            tracing::error!(ring = self.shared.id, leaked,
                "ops still in the kernel after the drop timeout; leaking their buffers instead of freeing memory the kernel may write");
            self.in_flight.leak_all();
            self.buf_rings.borrow_mut().leak_all();
        } else {
            let uring = self.uring.borrow();
            self.buf_rings.borrow_mut().unregister_all(&uring);
        }
        if !self.eventfd_armed.get() {
            // The buffer was created by Box::into_raw in `RingInner::new`.
            // SAFETY: the read has completed (not armed): the kernel no longer uses it.
            drop(unsafe { Box::from_raw(self.eventfd_buf) });
        }
        self.shared.fail_mailbox();
        if let Some(index) = self.registered_index {
            let _ = sys::unregister_ring_fd(self.uring.borrow().as_raw_fd(), index);
        }
        shared::unregister(self.shared.id);
    }

    /// Cancels everything in flight with one cancel-any and waits for the CQEs until
    /// `in_flight` is 0 or the drop timeout passes. A refused push or enter is retried
    /// until then, not taken as the end of the wait: giving up early would leak what
    /// the kernel was about to give back.
    fn cancel_all_and_wait(&self, in_flight: impl Fn() -> usize) {
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(token::IGNORE);
        let deadline = Instant::now() + self.drop_timeout;
        let mut cancel_queued = false;
        while in_flight() > 0 {
            if !cancel_queued {
                match self.push_sqe(&cancel_all) {
                    Ok(()) => cancel_queued = true,
                    Err(err) => tracing::warn!(ring = self.shared.id, %err,
                        "cannot queue the cancel-all request yet; retrying"),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            if let Err(err) = self.enter_kernel(1, Some(wait)) {
                tracing::warn!(ring = self.shared.id, %err, "enter refused while dropping the ring; retrying");
                std::thread::sleep(RETRY_PAUSE.min(wait));
            }
            self.drain_cq();
        }
    }
}
