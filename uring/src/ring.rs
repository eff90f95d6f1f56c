//! The owner's side of a ring: pushing SQEs, entering the kernel, dispatching CQEs.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use slab::Slab;

use crate::buf_ring::BufRings;
use crate::cell::Completion;
use crate::context::{self, EnterGuard};
use crate::op::Cqe;
use crate::setup::{self, RingBuilder, RingFeatures, TaskrunMode};
use crate::shared::{self, Counters, RingHandle, RingMetrics, RingShared, RingWaker};
use crate::sync::{Arc, Ordering};
use crate::sys::{self, EnterTarget, GeteventsArg, KernelTimespec};

/// user_data with the top bit set belongs to the ring itself, never to a user op (slab
/// keys are far below 2^63). Bits 32..63 name the kind, bits 0..32 carry a payload.
const TOKEN: u64 = 1 << 63;
/// The eventfd read that foreign threads complete to wake us.
const TOKEN_EVENTFD: u64 = TOKEN | (1 << 32);
/// A MSG_RING wake posted into our CQ by another ring.
pub(crate) const TOKEN_WAKE: u64 = TOKEN | (2 << 32);
/// Results nobody waits for: cancel requests, fallback park timeouts.
const TOKEN_IGNORE: u64 = TOKEN | (3 << 32);
/// Our MSG_RING to another ring failed; the payload is the target ring's id.
const TOKEN_MSG_RING_SENT: u64 = TOKEN | (4 << 32);
const TOKEN_KIND_MASK: u64 = !0xffff_ffff;

/// How many CQEs are copied out of the ring per borrow; dispatch runs with no borrow
/// held, so a waker may re-enter the ring (to push a MSG_RING, say).
const CQE_BATCH: usize = 32;

/// One io_uring instance, owned by the thread that created it.
///
/// `Ring` is neither `Send` nor `Sync`: only its owner submits and reaps (with
/// `SINGLE_ISSUER` the kernel enforces this too). Other threads reach it through a
/// [`RingHandle`]: they wake it with a [`RingWaker`] and send it work through its
/// mailbox.
///
/// A worker calls [`Ring::submit_and_reap`] once per scheduler tick and [`Ring::park`]
/// when it has nothing to run; each is a single `io_uring_enter`.
///
/// ```
/// use uringo_uring::{op::Nop, Ring};
///
/// let ring = Ring::new()?;
/// let result = ring.block_on(async { Nop::new().await });
/// assert!(result.is_ok());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Ring {
    pub(crate) inner: Rc<RingInner>,
}

pub(crate) struct RingInner {
    uring: RefCell<IoUring>,
    /// In-flight user ops by user_data. The slab's reference keeps each op's data (and so
    /// every buffer the kernel was given) alive until the op's final CQE.
    slots: RefCell<Slab<Arc<dyn Completion>>>,
    /// CQEs pulled out of the CQ to make room while submitting (EBUSY); dispatched first
    /// by the next drain.
    backlog: RefCell<VecDeque<RawCqe>>,
    /// Provided buffer rings registered on this ring, one per pool used here
    /// (`buf_ring.rs`). Unregistered only once the ops that select from them are done.
    buf_rings: RefCell<BufRings>,
    pub(crate) shared: Arc<RingShared>,
    features: RingFeatures,
    probe: Probe,
    enter_target: EnterTarget,
    registered_index: Option<u32>,
    /// The eventfd read's 8-byte buffer, heap-allocated so it outlives a leaked ring.
    eventfd_buf: *mut u64,
    eventfd_armed: Cell<bool>,
    /// Timespec for the park timeout on kernels without EXT_ARG (copied by the kernel at
    /// submission, so one slot is reused).
    park_timespec: Box<std::cell::UnsafeCell<types::Timespec>>,
    msg_ring_wakeups: bool,
    drop_timeout: Duration,
}

#[derive(Clone, Copy)]
struct RawCqe {
    user_data: u64,
    result: i32,
    flags: u32,
}

impl Ring {
    /// Creates a ring with the default configuration (see [`RingBuilder`]).
    ///
    /// When the kernel refuses io_uring the error names the cause and the fix; its inner
    /// error is an [`crate::UnavailableError`].
    pub fn new() -> io::Result<Ring> {
        RingBuilder::new().build()
    }

    /// A builder for rings with a non-default configuration.
    pub fn builder() -> RingBuilder {
        RingBuilder::new()
    }

    pub(crate) fn with_builder(builder: &RingBuilder) -> io::Result<Ring> {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

        let (uring, taskrun, taskrun_flag, submit_all) = setup::create(builder)?;
        let mut probe = Probe::new();
        uring.submitter().register_probe(&mut probe)?;
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
        let params = uring.params();
        let features = RingFeatures {
            taskrun,
            taskrun_flag,
            submit_all,
            registered_ring_fd: registered_index.is_some(),
            ext_arg: params.is_feature_ext_arg(),
            nodrop: params.is_feature_nodrop(),
            skip_cqe_on_success: params.is_feature_skip_cqe_on_success(),
            msg_ring: probe.is_supported(opcode::MsgRingData::CODE),
            sq_entries: params.sq_entries(),
            cq_entries: params.cq_entries(),
        };
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = RingShared::new(id, ring_fd)?;
        tracing::debug!(ring = id, %features, "io_uring ring created");

        let inner = Rc::new(RingInner {
            uring: RefCell::new(uring),
            slots: RefCell::new(Slab::with_capacity(features.sq_entries as usize)),
            backlog: RefCell::new(VecDeque::new()),
            buf_rings: RefCell::new(BufRings::default()),
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
            park_timespec: Box::new(std::cell::UnsafeCell::new(types::Timespec::new())),
            msg_ring_wakeups: builder.msg_ring_wakeups,
            drop_timeout: builder.drop_timeout,
        });
        shared::register(&inner.shared);
        inner.arm_eventfd()?;
        Ok(Ring { inner })
    }

    /// What the ring was set up with on this kernel.
    pub fn features(&self) -> &RingFeatures {
        &self.inner.features
    }

    /// Whether the kernel supports `opcode` (an `io_uring::opcode::*::CODE`).
    ///
    /// ```
    /// use io_uring::opcode;
    /// let ring = uringo_uring::Ring::new()?;
    /// assert!(ring.supports(opcode::Nop::CODE));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn supports(&self, opcode: u8) -> bool {
        self.inner.probe.is_supported(opcode)
    }

    /// A `Send + Sync` handle on this ring.
    pub fn handle(&self) -> RingHandle {
        RingHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// A `Send + Sync` waker for this ring (see [`RingWaker`]).
    pub fn waker(&self) -> RingWaker {
        self.handle().waker()
    }

    /// The ring's counters.
    pub fn metrics(&self) -> RingMetrics {
        self.handle().metrics()
    }

    /// Number of user ops in flight (submitted, final CQE not yet reaped).
    pub fn in_flight(&self) -> usize {
        self.inner.slots.borrow().len()
    }

    /// Makes this ring the one ops polled on this thread are submitted to, until the
    /// guard is dropped. A worker enters its ring once for its whole life.
    pub fn enter(&self) -> EnterGuard {
        EnterGuard {
            prev: context::set_current(Some(self.inner.clone())),
        }
    }

    /// One scheduler tick's worth of I/O: submits every queued SQE (and mailbox request)
    /// and dispatches every ready CQE, in at most one `io_uring_enter`, never blocking.
    /// Returns the number of CQEs dispatched.
    ///
    /// With DEFER_TASKRUN the enter carries GETEVENTS so deferred completion work runs;
    /// with TASKRUN_FLAG the syscall is skipped entirely when there is nothing to submit
    /// and the kernel has no completion work pending.
    pub fn submit_and_reap(&self) -> io::Result<usize> {
        self.inner.submit_and_reap()
    }

    /// Whether a [`submit_and_reap`](Self::submit_and_reap) now would find work: a
    /// mailbox request, a CQE, an overflowed CQ or (with TASKRUN_FLAG) completion work
    /// the kernel deferred. Reads shared memory only, no syscall, so a worker can poll it
    /// while it spins before parking. True when the ring cannot tell (DEFER_TASKRUN or
    /// COOP_TASKRUN without TASKRUN_FLAG): the caller then reaps rather than waits.
    pub fn has_events(&self) -> bool {
        self.inner.has_events()
    }

    /// Sleeps in the kernel until a CQE arrives, a [`RingWaker`] fires, or `timeout`
    /// passes — after submitting everything queued, in the same `io_uring_enter`. Returns
    /// the number of CQEs dispatched. Returns at once when a wake is already pending.
    pub fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        self.inner.park(timeout)
    }

    /// Drives `future` to completion on this thread, with this ring current: a minimal
    /// single-threaded executor for tests, tools and benchmarks.
    ///
    /// ```
    /// let ring = uringo_uring::Ring::new()?;
    /// assert_eq!(ring.block_on(async { 40 + 2 }), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        struct Flag {
            woken: std::sync::atomic::AtomicBool,
            ring: RingWaker,
        }
        impl Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &std::sync::Arc<Self>) {
                self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
                self.ring.wake();
            }
        }

        let _enter = self.enter();
        let flag = std::sync::Arc::new(Flag {
            woken: std::sync::atomic::AtomicBool::new(true),
            ring: self.waker(),
        });
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if flag.woken.swap(false, std::sync::atomic::Ordering::SeqCst) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            let result = if flag.woken.load(std::sync::atomic::Ordering::SeqCst) {
                self.submit_and_reap()
            } else {
                self.park(None)
            };
            if let Err(err) = result {
                panic!("io_uring_enter failed while driving block_on: {err}");
            }
        }
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("id", &self.inner.shared.id)
            .field("features", &self.inner.features)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl RingInner {
    pub(crate) fn handle(&self) -> RingHandle {
        RingHandle {
            shared: self.shared.clone(),
        }
    }

    /// Submits a user op: assigns its user_data and queues its SQE. On error the op was
    /// not queued and the kernel never saw its data.
    pub(crate) fn submit(&self, sqe: squeue::Entry, op: Arc<dyn Completion>) -> io::Result<()> {
        if let Some(select) = op.buf_select() {
            // The pool's buffer ring must exist on this ring before the kernel sees an SQE
            // naming its group; registering here, on the owner, covers remote submissions.
            let uring = self.uring.borrow();
            self.buf_rings
                .borrow_mut()
                .bind(self.shared.id, &uring, select)?;
        }
        let key = self.slots.borrow().vacant_key() as u64;
        op.set_key(key);
        self.push_sqe(&sqe.user_data(key))?;
        let actual = self.slots.borrow_mut().insert(op) as u64;
        debug_assert_eq!(actual, key);
        Counters::bump(&self.shared.counters.submitted, 1);
        self.publish_in_flight();
        tracing::trace!(ring = self.shared.id, user_data = key, "op submitted");
        Ok(())
    }

    /// Requests cancellation of `op` if it is still in flight on this ring.
    pub(crate) fn cancel(&self, op: &Arc<dyn Completion>) {
        // A remote submission of this op may still sit in the mailbox.
        if !self.shared.mailbox.is_empty() {
            self.drain_mailbox();
        }
        let key = op.key();
        let live = usize::try_from(key).ok().is_some_and(|key| {
            self.slots
                .borrow()
                .get(key)
                .is_some_and(|slot| same_op(slot, op))
        });
        if !live || !op.mark_cancel() {
            return;
        }
        Counters::bump(&self.shared.counters.cancels, 1);
        tracing::trace!(ring = self.shared.id, user_data = key, "cancel requested");
        let mut sqe = opcode::AsyncCancel::new(key)
            .build()
            .user_data(TOKEN_IGNORE);
        if self.features.skip_cqe_on_success {
            sqe = sqe.flags(squeue::Flags::SKIP_SUCCESS);
        }
        if let Err(err) = self.push_sqe(&sqe) {
            tracing::warn!(ring = self.shared.id, %err, "cannot queue a cancel SQE");
        }
    }

    /// Queues an SQE; when the SQ is full, submits it to make room.
    fn push_sqe(&self, sqe: &squeue::Entry) -> io::Result<()> {
        loop {
            {
                let mut uring = self.uring.borrow_mut();
                // SAFETY: every pointer in an SQE we push refers to memory owned by an op
                // cell that the slab (or, for internal SQEs, the ring) keeps alive until
                // the SQE's final CQE.
                if unsafe { uring.submission().push(sqe) }.is_ok() {
                    return Ok(());
                }
            }
            Counters::bump(&self.shared.counters.sq_full_submits, 1);
            self.enter_kernel(0, None)?;
        }
    }

    /// `io_uring_enter`: submits everything in the SQ, runs completion work, waits for
    /// `min_complete` CQEs (bounded by `timeout`). EINTR and ETIME count as success.
    fn enter_kernel(&self, min_complete: u32, timeout: Option<Duration>) -> io::Result<()> {
        let mut arg = GeteventsArg::default();
        let ts = timeout.map(KernelTimespec::from).unwrap_or_default();
        let mut use_arg = false;
        if let Some(timeout) = timeout.filter(|_| min_complete > 0) {
            if self.features.ext_arg {
                arg.ts = &ts as *const KernelTimespec as u64;
                use_arg = true;
            } else {
                self.push_park_timeout(timeout)?;
            }
        }
        let mut flags = sys::ENTER_GETEVENTS;
        if use_arg {
            flags |= sys::ENTER_EXT_ARG;
        }
        let mut busy_retries = 0;
        loop {
            let to_submit = self.uring.borrow_mut().submission().len() as u32;
            Counters::bump(&self.shared.counters.enters, 1);
            // SAFETY: `arg` (and the timespec it points to) live on this stack frame for
            // the whole call, and EXT_ARG is set exactly when we pass it.
            let result = unsafe {
                sys::enter(
                    self.enter_target,
                    to_submit,
                    min_complete,
                    flags,
                    use_arg.then_some(&arg),
                )
            };
            match result {
                Ok(_) => return Ok(()),
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ETIME) => return Ok(()),
                    // The CQ is full and the kernel would not take more work: make room.
                    Some(libc::EBUSY) | Some(libc::EAGAIN) if busy_retries < 64 => {
                        busy_retries += 1;
                        self.move_cq_to_backlog();
                        if busy_retries > 1 {
                            std::thread::yield_now();
                        }
                    }
                    _ => return Err(err),
                },
            }
        }
    }

    fn push_park_timeout(&self, timeout: Duration) -> io::Result<()> {
        let ts_ptr = self.park_timespec.get();
        // SAFETY: the timespec box lives as long as the ring and is only written here, on
        // the owner thread; the kernel copies it when the SQE is submitted, which happens
        // in the enter that follows before any other write.
        unsafe {
            *ts_ptr = types::Timespec::new()
                .sec(timeout.as_secs())
                .nsec(timeout.subsec_nanos());
        }
        let sqe = opcode::Timeout::new(ts_ptr).build().user_data(TOKEN_IGNORE);
        self.push_sqe(&sqe)
    }

    fn move_cq_to_backlog(&self) {
        let mut uring = self.uring.borrow_mut();
        let mut backlog = self.backlog.borrow_mut();
        for cqe in uring.completion() {
            backlog.push_back(RawCqe {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
    }

    /// Takes every queued remote request and acts on it.
    fn drain_mailbox(&self) {
        while let Some(request) = self.shared.mailbox.pop() {
            match request {
                shared::Request::Submit { sqe, op } => {
                    if let Err(err) = self.submit(sqe, op.clone()) {
                        tracing::warn!(ring = self.shared.id, %err, "remote submission failed");
                        op.complete(Cqe::from_error(&err), true);
                    }
                }
                shared::Request::Cancel(op) => self.cancel(&op),
            }
        }
    }

    fn submit_and_reap(&self) -> io::Result<usize> {
        // Buffers returned from other threads go back before this tick's SQEs reach the
        // kernel, so a recv re-armed after ENOBUFS finds them.
        self.buf_rings.borrow().drain_returns();
        self.drain_mailbox();
        let must_enter = {
            let mut uring = self.uring.borrow_mut();
            let sq = uring.submission();
            !sq.is_empty() || sq.cq_overflow() || self.kernel_may_have_work(&sq)
        };
        if must_enter {
            self.enter_kernel(0, None)?;
        }
        Ok(self.drain_cq())
    }

    fn has_events(&self) -> bool {
        if !self.shared.mailbox.is_empty() || !self.backlog.borrow().is_empty() {
            return true;
        }
        let mut uring = self.uring.borrow_mut();
        if !uring.completion().is_empty() {
            return true;
        }
        let sq = uring.submission();
        sq.cq_overflow() || self.kernel_may_have_work(&sq)
    }

    /// Whether the kernel may hold completion work that only an enter with GETEVENTS
    /// runs: never without deferred task work, the TASKRUN flag where the kernel raises
    /// it, and "maybe" where it does not.
    fn kernel_may_have_work(&self, sq: &squeue::SubmissionQueue<'_>) -> bool {
        match self.features.taskrun {
            TaskrunMode::Plain => false,
            _ if self.features.taskrun_flag => sq.taskrun(),
            _ => true,
        }
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        if timeout == Some(Duration::ZERO) {
            return self.submit_and_reap();
        }
        self.buf_rings.borrow().drain_returns();
        self.drain_mailbox();
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

    /// Dispatches every CQE available, flushing the kernel's overflow list as needed.
    fn drain_cq(&self) -> usize {
        let mut total = 0;
        loop {
            let mut batch = [RawCqe {
                user_data: 0,
                result: 0,
                flags: 0,
            }; CQE_BATCH];
            let mut n = 0;
            {
                let mut backlog = self.backlog.borrow_mut();
                while n < CQE_BATCH {
                    let Some(cqe) = backlog.pop_front() else {
                        break;
                    };
                    batch[n] = cqe;
                    n += 1;
                }
            }
            if n < CQE_BATCH {
                let mut uring = self.uring.borrow_mut();
                for cqe in uring.completion() {
                    batch[n] = RawCqe {
                        user_data: cqe.user_data(),
                        result: cqe.result(),
                        flags: cqe.flags(),
                    };
                    n += 1;
                    if n == CQE_BATCH {
                        break;
                    }
                }
            }
            for cqe in &batch[..n] {
                self.dispatch(*cqe);
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
        total
    }

    fn publish_in_flight(&self) {
        let n = self.slots.borrow().len() as u64;
        self.shared.counters.in_flight.store(n, Ordering::Relaxed);
    }

    fn dispatch(&self, cqe: RawCqe) {
        if cqe.user_data & TOKEN != 0 {
            self.dispatch_internal(cqe);
            return;
        }
        let last = !cqueue::more(cqe.flags);
        let key = cqe.user_data as usize;
        let op = if last {
            self.slots.borrow_mut().try_remove(key)
        } else {
            self.slots.borrow().get(key).cloned()
        };
        // A CQE carrying a provided buffer: the pool's free count drops now, on the
        // owner, so a stream starved by ENOBUFS never sees a stale count.
        let select = cqueue::buffer_select(cqe.flags)
            .and(op.as_ref())
            .and_then(|op| op.buf_select());
        if let Some(select) = select {
            select.on_cqe(&Cqe {
                result: cqe.result,
                flags: cqe.flags,
            });
        }
        match op {
            Some(op) => op.complete(
                Cqe {
                    result: cqe.result,
                    flags: cqe.flags,
                },
                last,
            ),
            None => tracing::warn!(
                ring = self.shared.id,
                user_data = cqe.user_data,
                "CQE for an op this ring does not know"
            ),
        }
    }

    fn dispatch_internal(&self, cqe: RawCqe) {
        match cqe.user_data & TOKEN_KIND_MASK {
            TOKEN_EVENTFD => {
                self.eventfd_armed.set(false);
                if cqe.result < 0 && cqe.result != -libc::ECANCELED {
                    tracing::warn!(
                        ring = self.shared.id,
                        errno = -cqe.result,
                        "eventfd read failed"
                    );
                }
                if !self.shared.closed.load(Ordering::Acquire) {
                    if let Err(err) = self.arm_eventfd() {
                        tracing::error!(ring = self.shared.id, %err, "cannot re-arm the wake eventfd");
                    }
                }
            }
            TOKEN_WAKE | TOKEN_IGNORE => {}
            TOKEN_MSG_RING_SENT => {
                // Only failures produce this CQE (SKIP_SUCCESS) or, without CQE skipping,
                // every send does; act on failures only.
                if cqe.result < 0 {
                    let target = (cqe.user_data & 0xffff_ffff) as u32;
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
                user_data = cqe.user_data,
                "unknown internal CQE"
            ),
        }
    }

    fn arm_eventfd(&self) -> io::Result<()> {
        let sqe = opcode::Read::new(
            types::Fd(self.shared.eventfd.as_raw_fd()),
            self.eventfd_buf as *mut u8,
            8,
        )
        .build()
        .user_data(TOKEN_EVENTFD);
        self.push_sqe(&sqe)?;
        self.eventfd_armed.set(true);
        Ok(())
    }

    /// Posts a wake CQE into `target`'s CQ with MSG_RING and submits it right away (a
    /// wake must not wait for this thread's next tick).
    pub(crate) fn send_msg_ring_wake(&self, target: &RingShared) -> bool {
        if !self.msg_ring_wakeups || !self.features.msg_ring {
            return false;
        }
        if self.uring.try_borrow_mut().is_err() {
            return false;
        }
        let mut sqe =
            opcode::MsgRingData::new(types::Fd(target.ring_fd.as_raw_fd()), 0, TOKEN_WAKE, None)
                .build()
                .user_data(TOKEN_MSG_RING_SENT | u64::from(target.id));
        if self.features.skip_cqe_on_success {
            sqe = sqe.flags(squeue::Flags::SKIP_SUCCESS);
        }
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

    /// On drop: cancels everything, waits (bounded) for the CQEs, leaks what the kernel
    /// still holds rather than free it under the kernel.
    fn shut_down(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.fail_mailbox();
        let in_flight = || self.slots.borrow().len() + usize::from(self.eventfd_armed.get());
        if in_flight() > 0 {
            tracing::debug!(
                ring = self.shared.id,
                in_flight = in_flight(),
                "dropping ring: cancelling in-flight ops"
            );
            let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(TOKEN_IGNORE);
            if self.push_sqe(&cancel_all).is_err() {
                // Old kernel without CANCEL_ANY: one cancel per op.
                let keys: Vec<u64> = self.slots.borrow().iter().map(|(k, _)| k as u64).collect();
                for key in keys.into_iter().chain([TOKEN_EVENTFD]) {
                    let _ = self.push_sqe(
                        &opcode::AsyncCancel::new(key)
                            .build()
                            .user_data(TOKEN_IGNORE),
                    );
                }
            }
            let deadline = Instant::now() + self.drop_timeout;
            while in_flight() > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let wait = (deadline - now).min(Duration::from_millis(50));
                if let Err(err) = self.enter_kernel(1, Some(wait)) {
                    tracing::warn!(ring = self.shared.id, %err, "enter failed while dropping the ring");
                    break;
                }
                self.drain_cq();
            }
        }
        let leaked = self.slots.borrow().len();
        if leaked > 0 {
            Counters::bump(&self.shared.counters.leaked_ops, leaked as u64);
            tracing::error!(ring = self.shared.id, leaked,
                "ops still in the kernel after the drop timeout; leaking their buffers instead of freeing memory the kernel may write");
            for op in self.slots.borrow_mut().drain() {
                std::mem::forget(op);
            }
            self.buf_rings.borrow_mut().leak_all();
        } else {
            let uring = self.uring.borrow();
            self.buf_rings.borrow_mut().unregister_all(&uring);
        }
        if !self.eventfd_armed.get() {
            // SAFETY: the eventfd read has completed (not armed), so the kernel no longer
            // references the buffer; it was created by Box::into_raw in `with_builder`.
            drop(unsafe { Box::from_raw(self.eventfd_buf) });
        }
        self.shared.fail_mailbox();
        if let Some(index) = self.registered_index {
            let _ = sys::unregister_ring_fd(self.uring.borrow().as_raw_fd(), index);
        }
        shared::unregister(self.shared.id);
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Same op, compared by address only (vtable pointers of `dyn` may differ between
/// codegen units for the same type).
fn same_op(a: &Arc<dyn Completion>, b: &Arc<dyn Completion>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const u8, Arc::as_ptr(b) as *const u8)
}
