//! The owner's state of one ring, shared by the files that each implement one protocol
//! on it (setup, submit, complete, wake, shutdown).
//!
//! A `RingInner` is reached only from its owner thread (through [`crate::Ring`] or the
//! thread's current-ring slot), so its fields are plain `Cell`s and `RefCell`s; what
//! other threads may touch lives in [`RingShared`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use io_uring::{IoUring, Probe};

use super::cq::CqReader;
use super::features::RingFeatures;
use super::in_flight::InFlight;
use super::sq::SqWriter;
use crate::buf_ring::BufRings;
use crate::cell::CellHandle;
use crate::cqe::RawCqe;
use crate::fault::Faults;
use crate::shared::RingShared;
use crate::sync::{Arc, Ordering};
use crate::sys::EnterTarget;

pub(crate) struct RingInner {
    pub(super) uring: RefCell<IoUring>,
    /// The SQ, mapped a second time so ops are built where the kernel reads them
    /// (`sq.rs`). This and `cq` are declared after `uring`, so they are unmapped after
    /// the ring is shut down.
    pub(super) sq: SqWriter,
    /// The CQ, mapped a second time so the drain reads CQEs in place (`cq.rs`).
    pub(super) cq: CqReader,
    /// In-flight user ops by user_data (`in_flight.rs`). The table's reference keeps each
    /// op's data (and so every buffer the kernel was given) alive until its final CQE.
    pub(super) in_flight: InFlight,
    /// CQEs pulled out of the CQ to make room while submitting (EBUSY); dispatched first
    /// by the next drain.
    pub(super) backlog: RefCell<VecDeque<RawCqe>>,
    /// Provided buffer rings registered on this ring, one per pool used here
    /// (`buf_ring/`). Unregistered only once the ops that select from them are done.
    pub(super) buf_rings: RefCell<BufRings>,
    pub(crate) shared: Arc<RingShared>,
    pub(super) features: RingFeatures,
    pub(super) probe: Probe,
    pub(super) enter_target: EnterTarget,
    pub(super) registered_index: Option<u32>,
    /// The eventfd read's 8-byte buffer, heap-allocated so it outlives a leaked ring.
    pub(super) eventfd_buf: *mut u64,
    pub(super) eventfd_armed: Cell<bool>,
    /// How many times the eventfd read has been queued: tells one read from the next.
    pub(super) eventfd_arms: Cell<u64>,
    /// The search for ops whose CQE the kernel dropped (`lost.rs`).
    pub(super) reconcile: RefCell<Reconcile>,
    pub(super) msg_ring_wakeups: bool,
    /// Failures armed by tests (empty without the `fault-injection` feature).
    pub(super) faults: Faults,
    pub(super) drop_timeout: Duration,
}

/// One round of asking the kernel which ops it still has, after it dropped a CQE
/// (`lost.rs`).
#[derive(Default)]
pub(super) struct Reconcile {
    /// A round is under way.
    pub(super) active: bool,
    /// Cancels sent and not answered yet.
    pub(super) awaiting: usize,
    /// What each cancel asked about, by payload.
    pub(super) asked: HashMap<u32, CellHandle>,
    /// Which eventfd read was asked about (its arming count), if one was in flight.
    pub(super) asked_eventfd: Option<u64>,
    /// Payloads the kernel answered ENOENT for.
    pub(super) unknown: Vec<u32>,
    /// Another CQE was lost during this round.
    pub(super) again: bool,
}

impl RingInner {
    /// Stores the in-flight gauge other threads read.
    pub(super) fn publish_in_flight(&self) {
        let n = self.in_flight.len() as u64;
        self.shared.counters.in_flight.store(n, Ordering::Relaxed);
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        self.shut_down();
    }
}
