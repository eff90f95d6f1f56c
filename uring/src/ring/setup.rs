//! Creating a ring: holding the kernel to the Linux 6.1 floor, and probing what it offers
//! beyond.
//!
//! Everything the design needs is checked here, once per ring, before the ring is handed
//! out: a kernel that lacks one piece would otherwise fail much later, on one op among
//! thousands, with an EINVAL that names nothing (`features.rs` lists the pieces and why
//! 6.1). The checks are cheap enough for a ring per worker: one `io_uring_setup` with
//! every required flag (a refusal is then narrowed down to the flag the kernel does not
//! know), the feature bits it returns, the opcode table, one buffer-ring registration,
//! and three requests that the kernel rejects at preparation (EINVAL) when it does not
//! know their flags and at issue (a bad fd) when it does. No fallback for an older
//! kernel is kept: the error says what is missing, which kernel this is, and what the
//! minimum is.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::builder::RingBuilder;
use super::cq::CqReader;
use super::features::{KernelFeature, RingFeatures};
use super::in_flight::InFlight;
use super::inner::RingInner;
use super::sq::SqWriter;
use crate::buf_ring::BufRings;
use crate::cqe::token;
use crate::error::{kernel_lacks, setup_failed};
use crate::fault::Faults;
use crate::shared::{self, RingShared};
use crate::sys::{self, EnterTarget};

/// The setup flags of the floor, each added to the ones before it when a refusal is
/// narrowed down (`IORING_SETUP_TASKRUN_FLAG` is only valid with deferred task work).
const SETUP_FLAGS: [KernelFeature; 4] = [
    KernelFeature::SubmitAll,
    KernelFeature::SingleIssuer,
    KernelFeature::DeferTaskrun,
    KernelFeature::TaskrunFlag,
];

/// `IOU_PBUF_RING_INC`: buffers of the ring may be consumed a part at a time.
const IOU_PBUF_RING_INC: u16 = 2;

/// How long the request probes may take before an unanswered one counts as accepted.
/// They fail at once on every kernel that knows their flags; the bound only keeps ring
/// creation from hanging on one that behaves otherwise.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl RingInner {
    /// Sets up a ring on the calling thread, which becomes its owner.
    pub(super) fn new(builder: &RingBuilder) -> io::Result<Rc<RingInner>> {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

        let mut uring = create(builder)?;
        let probe = check_floor(builder, &mut uring)?;
        let optional =
            |feature: KernelFeature, present: bool| present && !builder.pretends_missing(feature);
        let params = uring.params();
        let buf_ring_incremental = optional(
            KernelFeature::BufRingIncremental,
            probe_buf_ring(&uring, true)?,
        );
        let registered_wait = optional(
            KernelFeature::RegisteredWait,
            sys::knows_registered_wait(uring.as_raw_fd()),
        );
        let ring_fd = uring.as_raw_fd();
        let registered_index = if builder.register_ring_fd {
            match sys::register_ring_fd(ring_fd) {
                Ok(index) => Some(index),
                Err(err) => {
                    tracing::debug!(%err, "cannot register the ring fd; entering by fd");
                    None
                }
            }
        } else {
            None
        };
        let features = RingFeatures {
            sq_entries: params.sq_entries(),
            cq_entries: params.cq_entries(),
            registered_ring_fd: registered_index.is_some(),
            recv_bundle: optional(
                KernelFeature::RecvBundle,
                params.is_feature_recvsend_bundle()
                    && super::features::bundles_trusted(&sys::kernel_release()),
            ),
            buf_ring_incremental,
            no_iowait: optional(KernelFeature::NoIowait, params.is_feature_no_iowait()),
            registered_wait,
        };
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = RingShared::new(id, ring_fd)?;
        tracing::debug!(ring = id, %features, "io_uring ring created");

        let sq = SqWriter::map(&uring)?;
        let cq = CqReader::map(&uring)?;
        let inner = Rc::new(RingInner {
            uring: RefCell::new(uring),
            sq,
            cq,
            in_flight: InFlight::with_capacity(features.sq_entries as usize),
            backlog: RefCell::new(VecDeque::new()),
            buf_rings: RefCell::new(BufRings::new(
                features.buf_ring_incremental,
                features.recv_bundle,
            )),
            shared,
            enter_target: match registered_index {
                Some(index) => EnterTarget::Registered(index),
                None => EnterTarget::Fd(ring_fd),
            },
            registered_index,
            features,
            probe,
            eventfd_buf: Box::into_raw(Box::new(0u64)),
            eventfd_armed: Cell::new(false),
            eventfd_arms: Cell::new(0),
            reconcile: RefCell::default(),
            msg_ring_wakeups: builder.msg_ring_wakeups,
            faults: Faults::default(),
            drop_timeout: builder.drop_timeout,
        });
        shared::register(&inner.shared);
        inner.arm_eventfd()?;
        Ok(inner)
    }
}

/// `io_uring_setup` with every flag of the floor; a refusal is narrowed down to the flag
/// this kernel lacks.
fn create(builder: &RingBuilder) -> io::Result<IoUring> {
    let cq = builder.cq_size()?;
    let err = match setup(builder, cq, &SETUP_FLAGS) {
        Ok(uring) => return Ok(uring),
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => err,
        Err(err) => return Err(setup_failed(err)),
    };
    // Refused even without flags: the sizes, or io_uring itself, are the problem.
    if let Err(err) = setup(builder, cq, &[]) {
        return Err(setup_failed(err));
    }
    for n in 1..=SETUP_FLAGS.len() {
        match setup(builder, cq, &SETUP_FLAGS[..n]) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Err(kernel_lacks(SETUP_FLAGS[n - 1]))
            }
            Err(e) => return Err(setup_failed(e)),
        }
    }
    Err(setup_failed(err))
}

/// One `io_uring_setup` with `flags` besides the CQ size. A flag the builder pretends
/// is missing is refused the way an old kernel refuses it, with EINVAL.
fn setup(builder: &RingBuilder, cq: u32, flags: &[KernelFeature]) -> io::Result<IoUring> {
    if flags.iter().any(|&f| builder.pretends_missing(f)) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut b = IoUring::builder();
    b.dontfork();
    b.setup_cqsize(cq);
    for flag in flags {
        match flag {
            KernelFeature::SubmitAll => b.setup_submit_all(),
            KernelFeature::SingleIssuer => b.setup_single_issuer(),
            KernelFeature::DeferTaskrun => b.setup_defer_taskrun(),
            KernelFeature::TaskrunFlag => b.setup_taskrun_flag(),
            other => unreachable!("{other:?} is not a setup flag"),
        };
    }
    b.build(builder.sq_entries)
}

/// Every required feature that is not a setup flag. Returns the opcode table.
fn check_floor(builder: &RingBuilder, uring: &mut IoUring) -> io::Result<Probe> {
    let require = |feature: KernelFeature, present: bool| {
        if present && !builder.pretends_missing(feature) {
            Ok(())
        } else {
            Err(kernel_lacks(feature))
        }
    };
    let params = uring.params();
    require(KernelFeature::ExtArg, params.is_feature_ext_arg())?;
    require(KernelFeature::NoDrop, params.is_feature_nodrop())?;
    require(
        KernelFeature::CqeSkip,
        params.is_feature_skip_cqe_on_success(),
    )?;
    let mut probe = Probe::new();
    uring.submitter().register_probe(&mut probe)?;
    require(
        KernelFeature::SendZc,
        probe.is_supported(opcode::SendZc::CODE),
    )?;
    require(
        KernelFeature::MsgRing,
        probe.is_supported(opcode::MsgRingData::CODE),
    )?;
    require(KernelFeature::BufRing, probe_buf_ring(uring, false)?)?;
    let requests = probe_requests(uring)?;
    for (feature, known) in requests {
        require(feature, known)?;
    }
    Ok(probe)
}

/// Whether the kernel registers a provided buffer ring (with `IOU_PBUF_RING_INC` when
/// `incremental`). Registers a one-entry ring for group 0 and removes it again: the ring
/// is brand new, so no pool has a group on it yet.
fn probe_buf_ring(uring: &IoUring, incremental: bool) -> io::Result<bool> {
    /// One page, page-aligned, as a buffer ring must be.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    let page = Box::new(Page([0; 4096]));
    let flags = if incremental { IOU_PBUF_RING_INC } else { 0 };
    // The page is unregistered below before it is freed, or leaked if that fails.
    // SAFETY: it is page-aligned, holds one entry, and outlives the registration.
    let registered = unsafe {
        uring
            .submitter()
            .register_buf_ring_with_flags(page.0.as_ptr() as u64, 1, 0, flags)
    };
    match registered {
        Ok(()) => {
            if let Err(err) = uring.submitter().unregister_buf_ring(0) {
                tracing::warn!(%err, "cannot unregister the probe buffer ring; leaking its page");
                Box::leak(page);
            }
            Ok(true)
        }
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Whether the kernel knows cancel-any, multishot accept and multishot recv: each is a
/// request on fd -1 (or on nothing), which fails at preparation with EINVAL when its
/// flags are unknown, and otherwise at issue (ENOENT, EBADF). None of them points at
/// memory, and their CQEs carry the ring's own user_data, so one still in flight after
/// the wait is harmless and ignored when it lands.
fn probe_requests(uring: &mut IoUring) -> io::Result<[(KernelFeature, bool); 3]> {
    let requests = [
        (
            KernelFeature::CancelAny,
            opcode::AsyncCancel2::new(types::CancelBuilder::any()).build(),
        ),
        (
            KernelFeature::MultishotAccept,
            opcode::AcceptMulti::new(types::Fd(-1)).build(),
        ),
        (
            KernelFeature::MultishotRecv,
            opcode::RecvMulti::new(types::Fd(-1), 0).build(),
        ),
    ];
    let mut known = [(KernelFeature::CancelAny, true); 3];
    for (slot, (feature, _)) in known.iter_mut().zip(&requests) {
        slot.0 = *feature;
    }
    for (n, (_, sqe)) in requests.iter().enumerate() {
        let sqe: squeue::Entry = sqe.clone().user_data(token::PROBE | n as u64);
        // SAFETY: the probe SQEs point at no memory.
        if unsafe { uring.submission().push(&sqe) }.is_err() {
            // A ring of fewer entries than probes: send what is queued first.
            uring.submit().map_err(setup_failed)?;
            // SAFETY: as above.
            unsafe { uring.submission().push(&sqe) }
                .map_err(|_| io::Error::other("cannot queue a probe on a new ring"))?;
        }
    }
    let ts = types::Timespec::from(PROBE_WAIT);
    let args = types::SubmitArgs::new().timespec(&ts);
    match uring.submitter().submit_with_args(requests.len(), &args) {
        Ok(_) => {}
        Err(err) if err.raw_os_error() == Some(libc::ETIME) => {}
        Err(err) => return Err(setup_failed(err)),
    }
    for cqe in uring.completion() {
        if token::kind(cqe.user_data()) != token::PROBE {
            continue;
        }
        if let Some(slot) = known.get_mut(token::payload(cqe.user_data()) as usize) {
            slot.1 = cqe.result() != -libc::EINVAL;
        }
    }
    Ok(known)
}
