//! Sleeping in the kernel, and being woken from other threads and rings.
//!
//! A parked owner sleeps in `io_uring_enter` waiting for one CQE, so every wake-up must
//! arrive as a CQE. Another ring's owner posts one straight into our CQ with MSG_RING;
//! a thread without a ring cannot, so it writes an eventfd on which the owner always
//! keeps a read armed. The park/notify token (`park.rs`) decides whether a wake needs
//! that physical kick at all: only if the owner announced it is asleep.
//!
//! "Always" is the hard part: the read completes with every eventfd wake and must be
//! queued again, and queueing can fail (a full SQ whose enter the kernel refuses). A
//! ring without its read is deaf to every thread without a ring, so a failed re-arm is
//! retried before every enter, and until it succeeds the owner never sleeps longer than
//! [`REARM_RETRY`]. Nothing is lost meanwhile: the eventfd counts the wakes written to
//! it, and the read completes as soon as it is queued.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{opcode, squeue, types};

use super::inner::RingInner;
use crate::cqe::{token, RawCqe};
use crate::metrics::Counters;
use crate::shared::{self, RingShared};
use crate::sync::Ordering;

/// The longest a park sleeps while the eventfd read could not be re-armed: how late a
/// wake from a thread without a ring can be until the retry succeeds.
const REARM_RETRY: Duration = Duration::from_millis(1);

impl RingInner {
    pub(super) fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        if timeout == Some(Duration::ZERO) {
            return self.submit_and_reap();
        }
        self.buf_rings.borrow().drain_returns();
        self.drain_mailbox();
        let timeout = if self.ensure_eventfd_armed() {
            timeout
        } else {
            Some(timeout.map_or(REARM_RETRY, |t| t.min(REARM_RETRY)))
        };
        if !self.shared.park.begin_park() {
            return self.submit_and_reap();
        }
        // Last look after announcing PARKED: a request or CQE that raced the
        // announcement must not wait for the next wake.
        let ready = !self.shared.mailbox.is_empty()
            || !self.backlog.borrow().is_empty()
            || !self.uring.borrow_mut().completion().is_empty();
        let result = if ready {
            Ok(())
        } else {
            Counters::bump(&self.shared.counters.parks, 1);
            tracing::trace!(ring = self.shared.id, ?timeout, "parking");
            self.enter_kernel(1, timeout)
        };
        self.shared.park.end_park();
        result?;
        self.drain_mailbox();
        Ok(self.drain_cq())
    }

    /// Handles a CQE of the ring's own (see `crate::cqe::token`).
    pub(super) fn dispatch_internal(&self, raw: RawCqe) {
        let cqe = raw.cqe;
        match token::kind(raw.user_data) {
            token::EVENTFD => {
                self.eventfd_armed.set(false);
                if cqe.result < 0 && cqe.result != -libc::ECANCELED {
                    tracing::warn!(
                        ring = self.shared.id,
                        errno = -cqe.result,
                        "eventfd read failed"
                    );
                }
                self.ensure_eventfd_armed();
            }
            token::WAKE | token::IGNORE | token::PROBE => {}
            token::RECONCILE => self.kernel_answered(token::payload(raw.user_data), cqe.result),
            token::MSG_RING_SENT => {
                // Only a failed send posts this CQE (SKIP_SUCCESS).
                if cqe.result < 0 {
                    let target = token::payload(raw.user_data);
                    tracing::warn!(
                        ring = self.shared.id,
                        target,
                        errno = -cqe.result,
                        "MSG_RING wake failed; falling back to the eventfd"
                    );
                    if let Some(target) = shared::lookup(target) {
                        target.kick_eventfd();
                    }
                }
            }
            _ => tracing::warn!(
                ring = self.shared.id,
                user_data = raw.user_data,
                "unknown internal CQE"
            ),
        }
    }

    /// Queues the eventfd read again if it is not in flight (see the module docs).
    /// Returns whether it is; a failure is retried by the next call.
    pub(super) fn ensure_eventfd_armed(&self) -> bool {
        if self.eventfd_armed.get() || self.shared.closed.load(Ordering::Acquire) {
            return true;
        }
        match self.arm_eventfd() {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(ring = self.shared.id, %err,
                    "cannot re-arm the wake eventfd yet; retrying before every enter");
                false
            }
        }
    }

    pub(super) fn arm_eventfd(&self) -> io::Result<()> {
        let sqe = opcode::Read::new(
            types::Fd(self.shared.eventfd.as_raw_fd()),
            self.eventfd_buf as *mut u8,
            8,
        )
        .build()
        .user_data(token::EVENTFD);
        self.push_sqe(&sqe)?;
        self.eventfd_armed.set(true);
        self.eventfd_arms.set(self.eventfd_arms.get() + 1);
        Ok(())
    }

    /// Posts a wake CQE into `target`'s CQ with MSG_RING and submits it right away (a
    /// wake must not wait for this thread's next tick).
    pub(crate) fn send_msg_ring_wake(&self, target: &RingShared) -> bool {
        if !self.msg_ring_wakeups {
            return false;
        }
        if self.uring.try_borrow_mut().is_err() {
            return false;
        }
        let sqe =
            opcode::MsgRingData::new(types::Fd(target.ring_fd.as_raw_fd()), 0, token::WAKE, None)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(token::MSG_RING_SENT | u64::from(target.id));
        if self.push_sqe(&sqe).is_err() {
            return false;
        }
        if let Err(err) = self.enter_kernel(0, None) {
            // The SQE stays queued and goes out with the next enter; the eventfd makes
            // sure the wake is not late.
            tracing::debug!(ring = self.shared.id, %err, "MSG_RING submit deferred");
            return false;
        }
        Counters::bump(&self.shared.counters.wakes_sent, 1);
        true
    }
}
