//! What a ring was set up with and what the kernel offers it.

use std::fmt;

/// How completions are delivered, from best to most basic. Chosen at setup by trying
/// each in turn; the first the kernel accepts wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskrunMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (6.1+): completion work runs only when the owner
    /// enters with `GETEVENTS`, never as an interrupt of whatever the thread is doing.
    Defer,
    /// `COOP_TASKRUN` (5.19+): completion work waits for the next transition into the
    /// kernel instead of an IPI.
    Cooperative,
    /// Neither: completions are posted asynchronously via task work with a signal.
    Plain,
}

/// What the ring was set up with and what the kernel offers it. Logged at `debug` when
/// a ring is created; [`crate::Ring::features`] returns it.
#[derive(Debug, Clone)]
pub struct RingFeatures {
    /// Completion delivery mode the kernel accepted.
    pub taskrun: TaskrunMode,
    /// `IORING_SETUP_TASKRUN_FLAG`: the kernel raises `IORING_SQ_TASKRUN` when completion
    /// work is pending, so a tick with nothing to submit can skip the syscall.
    pub taskrun_flag: bool,
    /// `IORING_SETUP_SUBMIT_ALL`: one failing SQE does not stop the rest of the batch.
    pub submit_all: bool,
    /// The ring fd is registered with the owner thread (`IORING_REGISTER_RING_FDS`).
    pub registered_ring_fd: bool,
    /// `IORING_FEAT_EXT_ARG`: park with a timeout argument instead of a timeout SQE.
    pub ext_arg: bool,
    /// `IORING_FEAT_NODROP`: the kernel buffers CQEs that do not fit in the CQ.
    pub nodrop: bool,
    /// `IORING_FEAT_CQE_SKIP`: successful internal SQEs need not produce a CQE.
    pub skip_cqe_on_success: bool,
    /// `IORING_OP_MSG_RING` is supported: rings wake each other without an eventfd.
    pub msg_ring: bool,
    /// Submission queue size.
    pub sq_entries: u32,
    /// Completion queue size.
    pub cq_entries: u32,
}

impl fmt::Display for RingFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.taskrun {
            TaskrunMode::Defer => "SINGLE_ISSUER|DEFER_TASKRUN",
            TaskrunMode::Cooperative => "COOP_TASKRUN",
            TaskrunMode::Plain => "plain",
        };
        write!(
            f,
            "{mode}{}{} sq={} cq={} registered_ring_fd={} ext_arg={} nodrop={} cqe_skip={} msg_ring={}",
            if self.taskrun_flag { "|TASKRUN_FLAG" } else { "" },
            if self.submit_all { "|SUBMIT_ALL" } else { "" },
            self.sq_entries,
            self.cq_entries,
            self.registered_ring_fd,
            self.ext_arg,
            self.nodrop,
            self.skip_cqe_on_success,
            self.msg_ring,
        )
    }
}
