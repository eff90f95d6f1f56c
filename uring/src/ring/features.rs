//! The kernel features uringo relies on, and the newer ones it can use when present.
//!
//! The design leans on io_uring features from several kernel releases at once: one
//! issuer and deferred task work so completions only run when the owner asks, multishot
//! accept and recv with provided buffer rings so idle connections hold no memory,
//! cancel-any so a dropped ring can take back everything, MSG_RING so rings wake each
//! other. Linux 6.1 is the oldest long-term release that has them all, so it is the
//! floor. A kernel below it is refused at ring creation with the name of what is
//! missing rather than left to fail later, one op at a time, with an EINVAL that names
//! nothing. Features newer than the floor are probed and recorded in [`RingFeatures`],
//! so code that can use them does, and code that cannot tell still works.
//!
//! Each feature is probed the cheapest way the kernel allows (a setup flag, a feature
//! bit, the opcode table, or a request that fails differently when the kernel knows
//! it); `setup.rs` does the probing.

use std::fmt;

/// The oldest kernel release uringo runs on.
pub const MINIMUM_KERNEL: &str = "6.1";

/// A kernel feature uringo checks for when it creates a ring.
///
/// The required ones (see [`KernelFeature::is_required`]) make up the Linux 6.1 floor:
/// without one of them `Ring::new` fails with an error naming it. The others are newer
/// and optional: [`RingFeatures`] says whether this kernel has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelFeature {
    /// `IORING_SETUP_SINGLE_ISSUER`: only the owner thread submits (6.0).
    SingleIssuer,
    /// `IORING_SETUP_DEFER_TASKRUN`: completion work runs only when the owner asks (6.1).
    DeferTaskrun,
    /// `IORING_SETUP_TASKRUN_FLAG`: the kernel says when it holds completion work (5.19).
    TaskrunFlag,
    /// `IORING_SETUP_SUBMIT_ALL`: one bad SQE does not stop the batch behind it (5.18).
    SubmitAll,
    /// `IORING_FEAT_EXT_ARG`: park with a timeout argument to `io_uring_enter` (5.11).
    ExtArg,
    /// `IORING_FEAT_NODROP`: the kernel keeps CQEs that do not fit in the CQ (5.5).
    NoDrop,
    /// `IORING_FEAT_CQE_SKIP`: the ring's own cancel and wake SQEs post no CQE on
    /// success (5.17).
    CqeSkip,
    /// `IORING_ACCEPT_MULTISHOT`: one accept SQE for every connection (5.19).
    MultishotAccept,
    /// `IORING_RECV_MULTISHOT`: one recv SQE for every chunk (6.0).
    MultishotRecv,
    /// `IORING_REGISTER_PBUF_RING`: provided buffer rings (5.19).
    BufRing,
    /// `IORING_ASYNC_CANCEL_ANY`: one request cancels everything in flight (5.19).
    CancelAny,
    /// `IORING_OP_SEND_ZC`: zero-copy send (6.0).
    SendZc,
    /// `IORING_OP_MSG_RING`: a ring posts a CQE into another (5.18).
    MsgRing,
    /// `IORING_FEAT_RECVSEND_BUNDLE`: one recv CQE may carry several buffers (6.10).
    /// Used only from Linux 6.15 on (see [`bundles_trusted`]).
    RecvBundle,
    /// `IOU_PBUF_RING_INC`: a provided buffer is consumed a chunk at a time (6.12).
    BufRingIncremental,
    /// `IORING_FEAT_NO_IOWAIT`: a parked ring need not count as waiting for I/O (6.15).
    NoIowait,
    /// `IORING_REGISTER_MEM_REGION` with `IORING_MEM_REGION_REG_WAIT_ARG`: wait
    /// arguments in a registered region instead of copied per enter (6.13).
    RegisteredWait,
}

impl KernelFeature {
    /// Every feature, required ones first, in the order they are checked.
    pub const ALL: [KernelFeature; 17] = [
        KernelFeature::SubmitAll,
        KernelFeature::TaskrunFlag,
        KernelFeature::SingleIssuer,
        KernelFeature::DeferTaskrun,
        KernelFeature::ExtArg,
        KernelFeature::NoDrop,
        KernelFeature::CqeSkip,
        KernelFeature::SendZc,
        KernelFeature::MsgRing,
        KernelFeature::BufRing,
        KernelFeature::CancelAny,
        KernelFeature::MultishotAccept,
        KernelFeature::MultishotRecv,
        KernelFeature::RecvBundle,
        KernelFeature::BufRingIncremental,
        KernelFeature::NoIowait,
        KernelFeature::RegisteredWait,
    ];

    /// The kernel's name for the feature (`IORING_SETUP_DEFER_TASKRUN`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KernelFeature::SingleIssuer => "IORING_SETUP_SINGLE_ISSUER",
            KernelFeature::DeferTaskrun => "IORING_SETUP_DEFER_TASKRUN",
            KernelFeature::TaskrunFlag => "IORING_SETUP_TASKRUN_FLAG",
            KernelFeature::SubmitAll => "IORING_SETUP_SUBMIT_ALL",
            KernelFeature::ExtArg => "IORING_FEAT_EXT_ARG",
            KernelFeature::NoDrop => "IORING_FEAT_NODROP",
            KernelFeature::CqeSkip => "IORING_FEAT_CQE_SKIP",
            KernelFeature::MultishotAccept => "multishot accept (IORING_ACCEPT_MULTISHOT)",
            KernelFeature::MultishotRecv => "multishot recv (IORING_RECV_MULTISHOT)",
            KernelFeature::BufRing => "provided buffer rings (IORING_REGISTER_PBUF_RING)",
            KernelFeature::CancelAny => "IORING_ASYNC_CANCEL_ANY",
            KernelFeature::SendZc => "IORING_OP_SEND_ZC",
            KernelFeature::MsgRing => "IORING_OP_MSG_RING",
            KernelFeature::RecvBundle => "IORING_FEAT_RECVSEND_BUNDLE",
            KernelFeature::BufRingIncremental => "IOU_PBUF_RING_INC",
            KernelFeature::NoIowait => "IORING_FEAT_NO_IOWAIT",
            KernelFeature::RegisteredWait => {
                "registered wait regions (IORING_MEM_REGION_REG_WAIT_ARG)"
            }
        }
    }

    /// The mainline release that introduced the feature.
    pub fn since(self) -> &'static str {
        match self {
            KernelFeature::NoDrop => "5.5",
            KernelFeature::ExtArg => "5.11",
            KernelFeature::CqeSkip => "5.17",
            KernelFeature::SubmitAll | KernelFeature::MsgRing => "5.18",
            KernelFeature::TaskrunFlag
            | KernelFeature::MultishotAccept
            | KernelFeature::BufRing
            | KernelFeature::CancelAny => "5.19",
            KernelFeature::SingleIssuer | KernelFeature::MultishotRecv | KernelFeature::SendZc => {
                "6.0"
            }
            KernelFeature::DeferTaskrun => "6.1",
            KernelFeature::RecvBundle => "6.10",
            KernelFeature::BufRingIncremental => "6.12",
            KernelFeature::RegisteredWait => "6.13",
            KernelFeature::NoIowait => "6.15",
        }
    }

    /// Whether uringo refuses to run without it (the Linux 6.1 floor).
    pub fn is_required(self) -> bool {
        !matches!(
            self,
            KernelFeature::RecvBundle
                | KernelFeature::BufRingIncremental
                | KernelFeature::NoIowait
                | KernelFeature::RegisteredWait
        )
    }
}

impl fmt::Display for KernelFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (Linux {})", self.name(), self.since())
    }
}

/// Whether recv bundles can be used on kernel `release` (`uname -r`), given that it
/// advertises them.
///
/// Mainline 6.15 is the first release where bundles are both whole and in order:
/// - 6.10–6.14 map a single buffer per bundle on an incremental ring (so they gain
///   nothing there);
/// - stable kernels of the 6.12–6.14 series shipped a backport that could hand out a
///   bundle's buffers out of order on short receives (liburing issue 1409), fixed in
///   6.14.9 and later stables. A reordered stream is silent data corruption, and no
///   probe can tell a fixed stable kernel from a broken one.
///
/// So bundles are left off below 6.15, as if the kernel lacked them. An unparsable
/// release counts as too old.
pub(crate) fn bundles_trusted(release: &str) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 15),
        _ => false,
    }
}

/// What the ring was set up with and which optional kernel features it found. Logged at
/// `debug` when a ring is created; [`crate::Ring::features`] returns it.
///
/// Every feature of the Linux 6.1 floor is present on a ring that exists, so only the
/// optional ones are listed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RingFeatures {
    /// Submission queue size.
    pub sq_entries: u32,
    /// Completion queue size.
    pub cq_entries: u32,
    /// The ring fd is registered with the owner thread (`IORING_REGISTER_RING_FDS`), so
    /// an enter skips the fd table lookup. False when the thread's 16 slots are taken or
    /// the builder said no.
    pub registered_ring_fd: bool,
    /// [`KernelFeature::RecvBundle`], on a kernel where bundles are trusted (6.15+).
    pub recv_bundle: bool,
    /// [`KernelFeature::BufRingIncremental`].
    pub buf_ring_incremental: bool,
    /// [`KernelFeature::NoIowait`].
    pub no_iowait: bool,
    /// [`KernelFeature::RegisteredWait`].
    pub registered_wait: bool,
}

impl RingFeatures {
    /// Whether the kernel offers `feature` to this ring: always for the required ones.
    pub fn has(&self, feature: KernelFeature) -> bool {
        match feature {
            KernelFeature::RecvBundle => self.recv_bundle,
            KernelFeature::BufRingIncremental => self.buf_ring_incremental,
            KernelFeature::NoIowait => self.no_iowait,
            KernelFeature::RegisteredWait => self.registered_wait,
            _ => true,
        }
    }
}

impl fmt::Display for RingFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sq={} cq={} registered_ring_fd={}",
            self.sq_entries, self.cq_entries, self.registered_ring_fd
        )?;
        for feature in KernelFeature::ALL.into_iter().filter(|f| !f.is_required()) {
            let sign = if self.has(feature) { '+' } else { '-' };
            write!(f, " {sign}{}", feature.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::bundles_trusted;

    #[test]
    fn bundles_are_trusted_from_6_15_on() {
        assert!(bundles_trusted("6.15.0"));
        assert!(bundles_trusted("6.18.44-generic"));
        assert!(bundles_trusted("7.0.0"));
        assert!(!bundles_trusted("6.14.11"));
        assert!(!bundles_trusted("6.12.48+deb13-amd64"));
        assert!(!bundles_trusted("6.1.0"));
        assert!(!bundles_trusted("garbage"));
        assert!(!bundles_trusted(""));
    }
}
