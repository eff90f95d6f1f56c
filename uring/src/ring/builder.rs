//! The knobs of a ring, before it exists.

use std::io;
use std::time::Duration;

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
