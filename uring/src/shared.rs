//! The part of a ring other threads may touch: its mailbox, its park state, the fds
//! that wake it, its counters. Everything that enters the ring stays in [`crate::Ring`].

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, Weak};

use crossbeam_queue::SegQueue;
use io_uring::squeue;

use crate::cell::Completion;
use crate::park::ParkState;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};

/// Work another thread asks the owner to do on its ring.
pub(crate) enum Request {
    /// Push this SQE for this op (its user_data is assigned by the owner).
    Submit {
        sqe: squeue::Entry,
        op: Arc<dyn Completion>,
    },
    /// Cancel this op if it is still in flight.
    Cancel(Arc<dyn Completion>),
}

pub(crate) struct RingShared {
    pub(crate) id: u32,
    /// A duplicate of the ring fd: MSG_RING targets need a real fd, and holding our own
    /// reference means a waker can never hit a closed (or reused) fd number.
    pub(crate) ring_fd: OwnedFd,
    pub(crate) eventfd: OwnedFd,
    pub(crate) park: ParkState,
    pub(crate) mailbox: SegQueue<Request>,
    pub(crate) closed: AtomicBool,
    pub(crate) counters: Counters,
}

impl RingShared {
    pub(crate) fn new(id: u32, ring_fd: RawFd) -> io::Result<Arc<Self>> {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an fd we own; the result is a fresh fd.
        let dup = unsafe { libc::fcntl(ring_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh fd nobody else owns.
        let ring_fd = unsafe { OwnedFd::from_raw_fd(dup) };
        // SAFETY: eventfd creates a fresh fd or fails.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` is a fresh fd nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        Ok(Arc::new(Self {
            id,
            ring_fd,
            eventfd,
            park: ParkState::new(),
            mailbox: SegQueue::new(),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        }))
    }

    /// Records a wake and kicks the owner out of the kernel if it is parked.
    pub(crate) fn wake(&self) {
        self.counters.wake_requests.fetch_add(1, Ordering::Relaxed);
        if self.park.notify() {
            self.kick();
        }
    }

    /// The physical wake-up: a MSG_RING CQE from this thread's own ring if it has one,
    /// else a write to the eventfd the owner always has a read armed on.
    fn kick(&self) {
        if crate::context::send_msg_ring_wake(self) {
            self.counters.kicks_msg_ring.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.kick_eventfd();
    }

    pub(crate) fn kick_eventfd(&self) {
        self.counters.kicks_eventfd.fetch_add(1, Ordering::Relaxed);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let ret = unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
        // EAGAIN means the counter is saturated: a wake is already pending.
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EAGAIN) {
                tracing::warn!(ring = self.id, %err, "eventfd wake failed");
            }
        }
    }

    /// Hands an op to the owner. Fails (giving the op back) when the ring is gone.
    pub(crate) fn submit_remote(
        &self,
        sqe: squeue::Entry,
        op: Arc<dyn Completion>,
    ) -> Result<(), Arc<dyn Completion>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(op);
        }
        self.counters.remote_submits.fetch_add(1, Ordering::Relaxed);
        self.mailbox.push(Request::Submit { sqe, op });
        self.wake();
        // The owner may have closed between our check and our push; then nobody will
        // drain the mailbox but us.
        if self.closed.load(Ordering::Acquire) {
            self.fail_mailbox();
        }
        Ok(())
    }

    /// Asks the owner to cancel `op`.
    pub(crate) fn cancel_remote(&self, op: Arc<dyn Completion>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.mailbox.push(Request::Cancel(op));
        self.wake();
    }

    /// Completes every queued remote submission with ECANCELED (their data never
    /// reached the kernel). Used once the ring is closed; safe from any thread.
    pub(crate) fn fail_mailbox(&self) {
        while let Some(request) = self.mailbox.pop() {
            if let Request::Submit { op, .. } = request {
                op.complete(
                    crate::op::Cqe {
                        result: -libc::ECANCELED,
                        flags: 0,
                    },
                    true,
                );
            }
        }
    }
}

/// Scheduler-visible counters of one ring. Owner-only counters are bumped with a
/// relaxed load+store (one writer); counters other threads bump use `fetch_add`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) enters: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) sq_full_submits: AtomicU64,
    pub(crate) cq_overflow_flushes: AtomicU64,
    pub(crate) cancels: AtomicU64,
    pub(crate) leaked_ops: AtomicU64,
    pub(crate) wake_requests: AtomicU64,
    pub(crate) kicks_msg_ring: AtomicU64,
    pub(crate) kicks_eventfd: AtomicU64,
    pub(crate) remote_submits: AtomicU64,
    pub(crate) wakes_sent: AtomicU64,
    /// Gauge, stored by the owner after each submission and each reap.
    pub(crate) in_flight: AtomicU64,
}

impl Counters {
    /// Single-writer increment.
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RingMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RingMetrics {
            submitted: get(&self.submitted),
            completions: get(&self.completions),
            enters: get(&self.enters),
            parks: get(&self.parks),
            sq_full_submits: get(&self.sq_full_submits),
            cq_overflow_flushes: get(&self.cq_overflow_flushes),
            cancels: get(&self.cancels),
            leaked_ops: get(&self.leaked_ops),
            wake_requests: get(&self.wake_requests),
            kicks_msg_ring: get(&self.kicks_msg_ring),
            kicks_eventfd: get(&self.kicks_eventfd),
            remote_submits: get(&self.remote_submits),
            wakes_sent: get(&self.wakes_sent),
            in_flight: get(&self.in_flight),
        }
    }
}

/// A snapshot of a ring's counters (all monotonic since the ring was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingMetrics {
    /// SQEs pushed for user ops (internal SQEs such as wake-ups are not counted).
    pub submitted: u64,
    /// CQEs dispatched, internal ones included.
    pub completions: u64,
    /// `io_uring_enter` calls.
    pub enters: u64,
    /// Blocking waits (`park`) that actually went to sleep in the kernel.
    pub parks: u64,
    /// Times the SQ was full and had to be submitted early.
    pub sq_full_submits: u64,
    /// Times the kernel reported CQ overflow and buffered CQEs were flushed.
    pub cq_overflow_flushes: u64,
    /// Cancellations requested (dropped or cancelled ops).
    pub cancels: u64,
    /// Ops still in the kernel when the ring was dropped past its drop timeout; their
    /// memory was leaked rather than freed under the kernel.
    pub leaked_ops: u64,
    /// Wake requests received (most are coalesced into no syscall at all).
    pub wake_requests: u64,
    /// Wakes delivered by another ring's MSG_RING.
    pub kicks_msg_ring: u64,
    /// Wakes delivered through the eventfd.
    pub kicks_eventfd: u64,
    /// Ops handed over through the mailbox by threads that do not own this ring.
    pub remote_submits: u64,
    /// MSG_RING wakes this ring's owner posted into other rings.
    pub wakes_sent: u64,
    /// User ops in the kernel right now (a gauge, as of the owner's last submit or
    /// reap).
    pub in_flight: u64,
}

/// A `Send + Sync` handle on a ring: wake it, hand it work, read its counters.
///
/// ```
/// let ring = uringo_uring::Ring::new()?;
/// let handle = ring.handle();
/// std::thread::spawn(move || handle.waker().wake()).join().unwrap();
/// // The wake left a token: this park returns at once.
/// ring.park(None)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RingHandle {
    pub(crate) shared: Arc<RingShared>,
}

impl RingHandle {
    /// A process-unique id of the ring.
    pub fn id(&self) -> u32 {
        self.shared.id
    }

    /// A waker for the ring.
    pub fn waker(&self) -> RingWaker {
        RingWaker {
            shared: self.shared.clone(),
        }
    }

    /// Whether the ring has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether the owner is asleep in the kernel right now.
    pub fn is_parked(&self) -> bool {
        self.shared.park.is_parked()
    }

    /// The ring's counters.
    pub fn metrics(&self) -> RingMetrics {
        self.shared.counters.snapshot()
    }
}

impl fmt::Debug for RingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Wakes a ring's owner from any thread. Wakes between two parks coalesce: only one of
/// them costs a syscall, and only if the owner was asleep.
///
/// From a thread that owns a ring itself, the wake is a `MSG_RING` CQE posted straight
/// into the target's completion queue; from other threads it is an eventfd write.
#[derive(Clone)]
pub struct RingWaker {
    shared: Arc<RingShared>,
}

impl RingWaker {
    /// Wakes the owner (or makes its next park return at once).
    pub fn wake(&self) {
        self.shared.wake();
    }

    /// The id of the ring this waker wakes.
    pub fn ring_id(&self) -> u32 {
        self.shared.id
    }
}

impl fmt::Debug for RingWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingWaker")
            .field("ring", &self.shared.id)
            .finish()
    }
}

/// Every live ring by id, so a failed MSG_RING (whose CQE carries only the target id)
/// can fall back to the target's eventfd. Touched at ring creation and drop and on that
/// rare failure, never per op.
fn registry() -> &'static Mutex<HashMap<u32, Weak<RingShared>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u32, Weak<RingShared>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

pub(crate) fn register(shared: &Arc<RingShared>) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(shared.id, Arc::downgrade(shared));
}

pub(crate) fn unregister(id: u32) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

pub(crate) fn lookup(id: u32) -> Option<Arc<RingShared>> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .and_then(Weak::upgrade)
}
