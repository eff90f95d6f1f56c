//! Getting CQEs to their ops.
//!
//! A CQE is copied out of the CQ in small batches and dispatched with no borrow of the
//! ring held, because dispatching wakes tasks and a waker may re-enter the ring (to send
//! a MSG_RING, say). The in-flight entry of a user op goes at its final CQE (the one without
//! `IORING_CQE_F_MORE`), and with it the last reference the ring holds on the op's
//! buffers: that is the moment the kernel is done with them, and not before.
//!
//! Nothing is ever lost on the way. CQEs moved aside to make room for a submission wait
//! in the backlog and are dispatched first. A CQ that overflowed leaves the kernel
//! holding CQEs (`FEAT_NODROP`); the drain flushes them until the overflow flag clears.

use std::mem::MaybeUninit;

use io_uring::cqueue;

use super::inner::RingInner;
use crate::cell::Header;
use crate::cqe::{token, Cqe, RawCqe};
use crate::metrics::Counters;

/// How many CQEs are copied out of the ring per borrow; dispatch runs with no borrow
/// held, so a waker may re-enter the ring (to push a MSG_RING, say).
const CQE_BATCH: usize = 32;

impl RingInner {
    /// Moves every CQE out of the CQ into the backlog, to make room for the kernel.
    pub(super) fn move_cq_to_backlog(&self) {
        let mut uring = self.uring.borrow_mut();
        let mut backlog = self.backlog.borrow_mut();
        backlog.extend(
            uring
                .completion()
                .map(|entry| RawCqe::from(&entry))
                .filter(|raw| !self.lost(raw)),
        );
    }

    /// Whether `raw` is lost on its way out of the CQ: only ever by an injected fault,
    /// which stands for a CQE the kernel could not post.
    fn lost(&self, raw: &RawCqe) -> bool {
        !token::is_internal(raw.user_data) && self.faults.drops_user_cqe()
    }

    pub(super) fn has_events(&self) -> bool {
        if !self.shared.mailbox.is_empty() || !self.backlog.borrow().is_empty() {
            return true;
        }
        let mut uring = self.uring.borrow_mut();
        if !uring.completion().is_empty() {
            return true;
        }
        // TASKRUN_FLAG: the kernel raises IORING_SQ_TASKRUN when it holds deferred
        // completion work that only an enter with GETEVENTS runs.
        let sq = uring.submission();
        sq.cq_overflow() || sq.taskrun()
    }

    /// Dispatches every CQE available, flushing the kernel's overflow list as needed.
    pub(super) fn drain_cq(&self) -> usize {
        let mut total = 0;
        loop {
            // Uninitialised: a tick that reaps a handful of CQEs does not pay for zeroing
            // the whole batch.
            let mut batch = [MaybeUninit::<RawCqe>::uninit(); CQE_BATCH];
            let mut n = 0;
            {
                let mut backlog = self.backlog.borrow_mut();
                while n < CQE_BATCH {
                    let Some(cqe) = backlog.pop_front() else {
                        break;
                    };
                    batch[n].write(cqe);
                    n += 1;
                }
            }
            if n < CQE_BATCH {
                n += self.cq.take(&mut batch[n..], |raw| !self.lost(raw));
            }
            for cqe in &batch[..n] {
                // SAFETY: the first `n` entries of the batch were written above.
                self.dispatch(unsafe { cqe.assume_init() });
            }
            total += n;
            if n == CQE_BATCH {
                continue;
            }
            // The CQ is empty. If it overflowed, the kernel holds more CQEs (NODROP): an
            // enter with GETEVENTS moves them into the CQ.
            if self.uring.borrow_mut().submission().cq_overflow() {
                Counters::bump(&self.shared.counters.cq_overflow_flushes, 1);
                tracing::debug!(
                    ring = self.shared.id,
                    "CQ overflowed; flushing buffered CQEs"
                );
                if let Err(err) = self.enter_kernel(0, None) {
                    tracing::warn!(ring = self.shared.id, %err, "flushing CQ overflow failed");
                    break;
                }
                continue;
            }
            break;
        }
        Counters::bump(&self.shared.counters.completions, total as u64);
        if total > 0 {
            self.publish_in_flight();
        }
        total + self.settle_lost()
    }

    /// Gives one CQE to its op: recorded for the future that awaits it, or handed to a
    /// handled op's handler (`cell/handled.rs`).
    pub(super) fn complete_op(&self, op: &Header, cqe: Cqe, last: bool, buf_start: u32) {
        match op.handler() {
            // We own the ring the op was submitted on, and hand it its CQEs one at a time.
            // SAFETY: so the handler's contract holds.
            Some(handle) => unsafe { handle(op, self, cqe, buf_start, last) },
            None => op.complete_at(cqe, last, buf_start),
        }
    }

    fn dispatch(&self, raw: RawCqe) {
        if token::is_internal(raw.user_data) {
            self.dispatch_internal(raw);
            return;
        }
        let cqe = raw.cqe;
        let last = !cqueue::more(cqe.flags);
        let key = raw.user_data;
        let op = if last {
            self.in_flight.remove(key)
        } else {
            self.in_flight
                .get(key)
                // SAFETY: the table holds a reference to the op, so the cell is alive.
                .map(|op| unsafe { op.as_ref() }.handle())
        };
        // A CQE carrying a provided buffer: the pool's free count drops now, on the
        // owner, so a stream starved by ENOBUFS never sees a stale count.
        let select = cqueue::buffer_select(cqe.flags)
            .and(op.as_ref())
            .and_then(|op| op.buf_select());
        let buf_start = select.map_or(0, |select| select.on_cqe(&cqe));
        if cqe.result == -libc::ENOBUFS {
            // Counted here, for every op that selects buffers, whoever consumes its CQEs.
            if let Some(select) = op.as_ref().and_then(|op| op.buf_select()) {
                select.pool().note_enobufs();
            }
        }
        match op {
            Some(op) => self.complete_op(&op, cqe, last, buf_start),
            None => {
                Counters::bump(&self.shared.counters.unknown_cqes, 1);
                tracing::warn!(
                    ring = self.shared.id,
                    user_data = raw.user_data,
                    "CQE for an op this ring does not know"
                );
            }
        }
    }
}
