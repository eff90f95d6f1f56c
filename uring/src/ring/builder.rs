//! The knobs of a ring, before it exists.
//!
//! A ring's sizes and policies cannot change once the kernel has set it up, so they are
//! collected first and checked together, where a mistake can still be reported as bad
//! input rather than as a kernel error.

use std::io;
use std::time::Duration;

use super::features::KernelFeature;

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
    pub(crate) register_ring_fd: bool,
    pub(crate) msg_ring_wakeups: bool,
    pub(crate) drop_timeout: Duration,
    pub(crate) allow_small_cq: bool,
    /// Optional features not to use, whatever the kernel offers.
    pub(crate) avoided: Vec<KernelFeature>,
    /// Features to treat as absent, whatever the kernel says (tests only).
    #[cfg(feature = "fault-injection")]
    pub(crate) missing: Vec<KernelFeature>,
}

impl Default for RingBuilder {
    fn default() -> Self {
        Self {
            sq_entries: 256,
            cq_entries: None,
            register_ring_fd: true,
            msg_ring_wakeups: true,
            drop_timeout: Duration::from_secs(5),
            allow_small_cq: false,
            avoided: Vec::new(),
            #[cfg(feature = "fault-injection")]
            missing: Vec::new(),
        }
    }
}

impl RingBuilder {
    /// A builder with the defaults: 256 SQ entries, CQ of 4× SQ, registered ring fd,
    /// MSG_RING wake-ups, 5 s bound on drop.
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

    /// Leaves an optional kernel feature unused even where the kernel has it, as if it
    /// lacked it: to compare the two paths, or to steer clear of a kernel bug in it.
    /// Required features cannot be avoided (the call is ignored for them).
    ///
    /// ```
    /// use uringo_uring::{KernelFeature, Ring};
    ///
    /// let ring = Ring::builder().avoid(KernelFeature::RecvBundle).build()?;
    /// assert!(!ring.features().recv_bundle);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn avoid(&mut self, feature: KernelFeature) -> &mut Self {
        if !feature.is_required() {
            self.avoided.push(feature);
        }
        self
    }

    /// Makes the ring behave as if the kernel lacked `feature` (test builds only, see
    /// the crate docs): a required feature makes `build` fail with the error a kernel
    /// without it gets, an optional one reads as absent in [`super::RingFeatures`].
    #[cfg(feature = "fault-injection")]
    pub fn pretend_missing(&mut self, feature: KernelFeature) -> &mut Self {
        self.missing.push(feature);
        self
    }

    /// Whether `feature` was declared missing with `pretend_missing`.
    pub(crate) fn pretends_missing(&self, feature: KernelFeature) -> bool {
        if self.avoided.contains(&feature) {
            return true;
        }
        #[cfg(feature = "fault-injection")]
        return self.missing.contains(&feature);
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = feature;
            false
        }
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
