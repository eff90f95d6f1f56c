//! The part of a ring other threads may touch: its mailbox, its park state, the fds
//! that wake it, its counters. Everything that enters the ring stays with the owner.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, Weak};

use crossbeam_queue::SegQueue;
use io_uring::squeue;

use crate::cell::Completion;
use crate::metrics::Counters;
use crate::park::ParkState;
use crate::sync::{Arc, AtomicBool, Ordering};
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

    /// The wake-up for threads without a ring: a write to the eventfd the owner always
    /// has a read armed on.
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

    /// Completes every queued remote submission with ECANCELED (their data never
    /// reached the kernel). Used once the ring is closed; safe from any thread.
    pub(crate) fn fail_mailbox(&self) {
        while let Some(request) = self.mailbox.pop() {
            if let Request::Submit { op, .. } = request {
                op.fail_unsubmitted(&io::Error::from_raw_os_error(libc::ECANCELED));
            }
        }
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
