//! [`Ring`]: one io_uring instance, owned by the thread that created it.
//!
//! The ring's work divides into protocols that each have their own reasons, and each
//! lives in its own file as an `impl RingInner` block:
//!
//! | file | protocol |
//! |---|---|
//! | `setup.rs` | what the kernel must offer, and what it may: the floor and the probes |
//! | `submit.rs` | getting SQEs to the kernel: the SQ, `io_uring_enter`, the mailbox, cancels |
//! | `complete.rs` | getting CQEs to their ops: the CQ, its overflow, the backlog, dispatch |
//! | `lost.rs` | finding the op whose CQE the kernel dropped (EBADR) |
//! | `wake.rs` | sleeping in the kernel and being woken: park, eventfd, MSG_RING |
//! | `shutdown.rs` | dropping a ring without freeing memory the kernel still owns |
//!
//! `inner.rs` holds the state they share; this file is the public face.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::context::{self, EnterGuard};
use crate::handle::{RingHandle, RingWaker};
use crate::metrics::RingMetrics;

mod builder;
mod complete;
mod cq;
mod features;
mod in_flight;
pub(crate) mod inner;
mod lost;
mod setup;
mod shutdown;
mod sq;
mod submit;
mod wake;

pub use builder::RingBuilder;
pub use features::{KernelFeature, RingFeatures, MINIMUM_KERNEL};
use inner::RingInner;

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
        RingHandle::new(self.inner.shared.clone())
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
        self.inner.in_flight.len()
    }

    /// Arms `fault`: the ring meets it where the kernel's failure would surface (test
    /// builds only; see the crate docs).
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, fault: crate::Fault) {
        self.inner.faults.arm(fault);
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
    /// The enter carries GETEVENTS so deferred completion work runs (DEFER_TASKRUN); it
    /// is skipped entirely when there is nothing to submit and the kernel raised no
    /// `IORING_SQ_TASKRUN`.
    pub fn submit_and_reap(&self) -> io::Result<usize> {
        self.inner.submit_and_reap()
    }

    /// Whether a [`submit_and_reap`](Self::submit_and_reap) now would find work: a
    /// mailbox request, a CQE, an overflowed CQ or completion work the kernel deferred
    /// (`IORING_SQ_TASKRUN`). Reads shared memory only, no syscall, so a worker can poll
    /// it while it spins before parking.
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

impl RingBuilder {
    /// Creates the ring on the calling thread, which becomes its owner.
    pub fn build(&self) -> io::Result<Ring> {
        Ok(Ring {
            inner: RingInner::new(self)?,
        })
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
