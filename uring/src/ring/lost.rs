//! When the kernel drops a CQE.
//!
//! With `IORING_FEAT_NODROP` the kernel keeps the CQEs that do not fit in a full CQ in
//! an overflow list, but that list is allocated as it grows (atomically, in completion
//! context), and when an allocation fails the CQE is lost. The kernel then says so,
//! once, by failing the next enter that would wait with EBADR. It cannot say whose CQE
//! it was. Doing nothing would leave that op in flight forever: its task would never
//! wake, and dropping the ring would wait out its timeout and leak the op's buffers.
//!
//! The only way to learn which ops the kernel still has is to ask it to cancel each
//! one: a cancel answers ENOENT for a request it does not know. So after an EBADR the
//! ring cancels every op in flight (and checks its eventfd read the same way). That is
//! drastic, and deliberate: a cancelled op completes with ECANCELED, which its owner
//! can handle, whereas a lost one hangs. An ENOENT alone does not prove loss: the op may
//! have finished with its CQE still on the way, in the CQ, in the overflow list or in
//! deferred completion work. So once every cancel has answered, one more enter with
//! GETEVENTS runs that work and the drain dispatches everything posted; an op the
//! kernel does not know and whose CQE still has not come was the one dropped. Only then
//! is it completed, with EBADR: the kernel is done with its memory, so giving its
//! buffers back is safe. A CQE dropped while a round runs starts another.
//!
//! What cannot be recovered is what the lost CQE carried: the bytes a recv took from
//! its socket, or a provided buffer it was given (the pool is one buffer short after).
//! What must be recovered is an incremental buffer's fill, which the owner counts from
//! the CQEs it sees: after the final drain, each buffer ring's count is reset from the
//! kernel's own (`RingBufs::resync_after_loss`).

use std::collections::HashMap;

use io_uring::opcode;

use super::inner::{Reconcile, RingInner};
use crate::cell::CellHandle;
use crate::cqe::{token, Cqe};
use crate::metrics::Counters;

/// The payload that stands for the eventfd read in a round (in-flight keys stay far below).
const EVENTFD: u32 = u32::MAX;

impl RingInner {
    /// The kernel reported a dropped CQE (an enter failed with EBADR).
    pub(super) fn cqe_lost(&self) {
        Counters::bump(&self.shared.counters.lost_cqes, 1);
        tracing::error!(
            ring = self.shared.id,
            "the kernel dropped a CQE (EBADR); cancelling every op in flight to find whose"
        );
        let mut round = self.reconcile.borrow_mut();
        if round.active {
            round.again = true;
            return;
        }
        drop(round);
        self.ask_kernel();
    }

    /// Starts a round: one cancel per op in flight, answered with its result.
    fn ask_kernel(&self) {
        let ops: Vec<(u32, CellHandle)> = self
            .in_flight
            .snapshot()
            .into_iter()
            .filter_map(|(key, op)| Some((u32::try_from(key).ok()?, op)))
            .filter(|(key, _)| *key != EVENTFD)
            .collect();
        let mut asked = HashMap::with_capacity(ops.len());
        for (key, op) in ops {
            if self.ask(u64::from(key), key) {
                asked.insert(key, op);
            }
        }
        let asked_eventfd = (self.eventfd_armed.get() && self.ask(token::EVENTFD, EVENTFD))
            .then(|| self.eventfd_arms.get());
        let awaiting = asked.len() + usize::from(asked_eventfd.is_some());
        *self.reconcile.borrow_mut() = Reconcile {
            active: awaiting > 0,
            awaiting,
            asked,
            asked_eventfd,
            unknown: Vec::new(),
            again: false,
        };
        if let Err(err) = self.enter_kernel(0, None) {
            tracing::warn!(ring = self.shared.id, %err, "cannot submit the cancels yet");
        }
    }

    /// Queues the cancel of the request with `user_data`, answered under `payload`.
    fn ask(&self, user_data: u64, payload: u32) -> bool {
        let sqe = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(token::RECONCILE | u64::from(payload));
        match self.push_sqe(&sqe) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(ring = self.shared.id, %err, user_data, "cannot ask about an op");
                false
            }
        }
    }

    /// A cancel of the round answered `result` for `payload`.
    pub(super) fn kernel_answered(&self, payload: u32, result: i32) {
        let mut round = self.reconcile.borrow_mut();
        round.awaiting = round.awaiting.saturating_sub(1);
        if result == -libc::ENOENT {
            round.unknown.push(payload);
        }
    }

    /// Ends a round whose cancels have all answered (see the module docs): after one more
    /// enter and drain, completes with EBADR the ops the kernel does not know and whose
    /// CQE never came. Returns how many CQEs that dispatched, the fence's included.
    pub(super) fn settle_lost(&self) -> usize {
        let round = {
            let mut round = self.reconcile.borrow_mut();
            if !round.active || round.awaiting > 0 {
                return 0;
            }
            std::mem::take(&mut *round)
        };
        if let Err(err) = self.enter_kernel(0, None) {
            tracing::warn!(ring = self.shared.id, %err, "enter before settling lost CQEs failed");
        }
        let mut dispatched = self.drain_cq();
        // Every CQE the kernel posted is dispatched and none can come in before our next
        // enter: the moment incremental buffers can be put back in step.
        self.buf_rings
            .borrow()
            .resync_after_loss(&self.uring.borrow());
        for payload in round.unknown {
            if payload == EVENTFD {
                let same_read = round.asked_eventfd == Some(self.eventfd_arms.get());
                if same_read && self.eventfd_armed.get() {
                    tracing::warn!(ring = self.shared.id, "the eventfd read's CQE was lost");
                    self.eventfd_armed.set(false);
                    self.ensure_eventfd_armed();
                }
                continue;
            }
            let Some(op) = round.asked.get(&payload) else {
                continue;
            };
            let key = u64::from(payload);
            if !self.in_flight.holds(key, op) {
                continue;
            }
            let Some(op) = self.in_flight.remove(key) else {
                continue;
            };
            tracing::warn!(ring = self.shared.id, user_data = key, "op's CQE was lost");
            let cqe = Cqe {
                result: -libc::EBADR,
                flags: 0,
            };
            self.complete_op(&op, cqe, true, 0);
            dispatched += 1;
        }
        self.publish_in_flight();
        if round.again {
            self.ask_kernel();
        }
        dispatched
    }
}
