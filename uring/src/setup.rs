//! Ring construction: which setup flags this kernel accepts, and what it supports.

use std::fmt;
use std::io;
use std::time::Duration;

use io_uring::IoUring;

use crate::error::setup_failed;

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

/// Configures and creates a [`crate::Ring`].
///
/// ```
/// let ring = uringo_uring::Ring::builder()
///     .sq_entries(64)
///     .cq_entries(256)
///     .build()?;
/// assert!(ring.features().cq_entries >= 256);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RingBuilder {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: Option<u32>,
    pub(crate) defer_taskrun: bool,
    pub(crate) register_ring_fd: bool,
    pub(crate) msg_ring_wakeups: bool,
    pub(crate) drop_timeout: Duration,
    pub(crate) allow_small_cq: bool,
}

impl Default for RingBuilder {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: None,
            defer_taskrun: true,
            register_ring_fd: true,
            msg_ring_wakeups: true,
            drop_timeout: Duration::from_secs(5),
            allow_small_cq: false,
        }
    }
}

impl RingBuilder {
    /// A builder with the defaults: 256 SQ entries, CQ of 4× SQ, DEFER_TASKRUN where
    /// available, registered ring fd, MSG_RING wake-ups, 5 s bound on drop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Submission queue size (rounded up to a power of two by the kernel).
    pub fn sq_entries(&mut self, n: u32) -> &mut Self {
        self.sq_entries = n.max(1);
        self
    }

    /// Completion queue size. Networking rings want headroom: multishot ops and
    /// cancellations post several CQEs per SQE. Must be at least 2× the SQ (use
    /// [`RingBuilder::allow_small_cq`] to go below, e.g. to test overflow).
    pub fn cq_entries(&mut self, n: u32) -> &mut Self {
        self.cq_entries = Some(n);
        self
    }

    /// Permits a CQ smaller than 2× the SQ (down to the SQ size). Only useful to
    /// provoke CQ overflow on purpose.
    pub fn allow_small_cq(&mut self, yes: bool) -> &mut Self {
        self.allow_small_cq = yes;
        self
    }

    /// Whether to try `SINGLE_ISSUER | DEFER_TASKRUN` first (default true).
    pub fn defer_taskrun(&mut self, yes: bool) -> &mut Self {
        self.defer_taskrun = yes;
        self
    }

    /// Whether to register the ring fd with the owner thread (default true).
    pub fn register_ring_fd(&mut self, yes: bool) -> &mut Self {
        self.register_ring_fd = yes;
        self
    }

    /// Whether wakes sent *from* this ring's thread to other rings use `MSG_RING`
    /// (default true, when supported) instead of the target's eventfd.
    pub fn msg_ring_wakeups(&mut self, yes: bool) -> &mut Self {
        self.msg_ring_wakeups = yes;
        self
    }

    /// How long dropping the ring waits for in-flight ops to return their CQEs after
    /// cancelling them (default 5 s). Ops still in the kernel after that are leaked on
    /// purpose: freeing memory the kernel may still write would be a use-after-free.
    pub fn drop_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.drop_timeout = timeout;
        self
    }

    /// Creates the ring on the calling thread, which becomes its owner.
    pub fn build(&self) -> io::Result<crate::Ring> {
        crate::Ring::with_builder(self)
    }

    pub(crate) fn cq_size(&self) -> io::Result<u32> {
        let sq = self.sq_entries.next_power_of_two();
        let cq = self.cq_entries.unwrap_or(sq.saturating_mul(4));
        let min = if self.allow_small_cq {
            sq
        } else {
            sq.saturating_mul(2)
        };
        if cq < min {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cq_entries {cq} is too small for sq_entries {sq}: a networking ring needs \
                     at least {min} CQ entries"
                ),
            ));
        }
        Ok(cq)
    }
}

/// One attempt at `io_uring_setup`.
struct Attempt {
    mode: TaskrunMode,
    taskrun_flag: bool,
    submit_all: bool,
    cqsize: bool,
}

/// Tries setup flag sets from best to most basic; EINVAL means "not this one".
pub(crate) fn create(builder: &RingBuilder) -> io::Result<(IoUring, TaskrunMode, bool, bool)> {
    let cq = builder.cq_size()?;
    let mut attempts = Vec::with_capacity(6);
    if builder.defer_taskrun {
        attempts.push(Attempt {
            mode: TaskrunMode::Defer,
            taskrun_flag: true,
            submit_all: true,
            cqsize: true,
        });
        attempts.push(Attempt {
            mode: TaskrunMode::Defer,
            taskrun_flag: false,
            submit_all: true,
            cqsize: true,
        });
    }
    attempts.push(Attempt {
        mode: TaskrunMode::Cooperative,
        taskrun_flag: true,
        submit_all: true,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: true,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: false,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: false,
        cqsize: false,
    });

    let mut last_err = None;
    for attempt in attempts {
        let mut b = IoUring::builder();
        b.dontfork();
        if attempt.cqsize {
            b.setup_cqsize(cq);
        }
        if attempt.submit_all {
            b.setup_submit_all();
        }
        match attempt.mode {
            TaskrunMode::Defer => {
                b.setup_single_issuer();
                b.setup_defer_taskrun();
            }
            TaskrunMode::Cooperative => {
                b.setup_coop_taskrun();
            }
            TaskrunMode::Plain => {}
        }
        if attempt.taskrun_flag {
            b.setup_taskrun_flag();
        }
        match b.build(builder.sq_entries) {
            Ok(uring) => {
                return Ok((
                    uring,
                    attempt.mode,
                    attempt.taskrun_flag,
                    attempt.submit_all,
                ))
            }
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(mode = ?attempt.mode, taskrun_flag = attempt.taskrun_flag,
                    submit_all = attempt.submit_all, "io_uring setup flags refused, trying fewer");
                last_err = Some(err);
            }
            Err(err) => return Err(setup_failed(err)),
        }
    }
    Err(setup_failed(last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}
