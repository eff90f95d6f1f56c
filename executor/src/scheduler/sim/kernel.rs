//! The simulated kernel: one per worker, behind a [`SimDriver`].
//!
//! Tasks submit simulated operations ([`SimOp`]) to the kernel of the worker that polls
//! them, as real ops go to the polling worker's ring. The controller completes each op
//! at the step its seed chose; the completion then waits in the kernel until its worker
//! reaps or parks, which dispatches it by waking the op's waker on that worker, as a
//! ring dispatches a CQE. An op is therefore delivered on its original worker even if
//! its task was stolen meanwhile (design invariant 1).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::baton::{Baton, Stop};
use super::Mark;
use crate::scheduler::driver::{Driver, Unpark, Unparker};
use crate::time::clock::ManualClock;

/// A simulated operation's completion cell.
#[derive(Default)]
pub(super) struct OpCell {
    completed: AtomicBool,
    /// Times the kernel dispatched it (the property: exactly once).
    pub(super) deliveries: AtomicUsize,
    waker: Mutex<Option<Waker>>,
    /// Where and when it was dispatched.
    pub(super) delivered_at: Mutex<Option<Mark>>,
}

/// One worker's simulated kernel, shared by its driver and the controller.
pub(super) struct SimKernel {
    index: usize,
    /// Submitted ops and the controller step at which each completes.
    submitted: Mutex<Vec<(u64, Arc<OpCell>)>>,
    /// Completed ops waiting for a reap.
    completed: Mutex<VecDeque<Arc<OpCell>>>,
    /// The sticky unpark flag.
    unparked: AtomicBool,
    /// The controller's step counter, which ops read to schedule their completion.
    step: Arc<AtomicU64>,
}

impl SimKernel {
    pub(super) fn new(index: usize, step: Arc<AtomicU64>) -> SimKernel {
        SimKernel {
            index,
            submitted: Mutex::new(Vec::new()),
            completed: Mutex::new(VecDeque::new()),
            unparked: AtomicBool::new(false),
            step,
        }
    }

    fn submit(&self, due: u64, op: Arc<OpCell>) {
        self.submitted.lock().unwrap().push((due, op));
    }

    /// The controller completes every op due by `step`.
    pub(super) fn complete_due(&self, step: u64) {
        let mut submitted = self.submitted.lock().unwrap();
        let mut completed = self.completed.lock().unwrap();
        submitted.retain(|(due, op)| {
            let due = *due <= step;
            if due {
                completed.push_back(op.clone());
            }
            !due
        });
    }

    /// The earliest step at which a submitted op completes.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.submitted.lock().unwrap().iter().map(|(d, _)| *d).min()
    }

    /// Whether a parked worker would wake: an unpark or a completion waits.
    pub(super) fn wakes(&self) -> bool {
        self.unparked.load(SeqCst) || !self.completed.lock().unwrap().is_empty()
    }

    /// Dispatches every completed op on the worker's thread.
    fn dispatch(&self, at: impl Fn() -> Mark) -> usize {
        let mut n = 0;
        loop {
            let op = self.completed.lock().unwrap().pop_front();
            let Some(op) = op else { return n };
            n += 1;
            op.deliveries.fetch_add(1, SeqCst);
            *op.delivered_at.lock().unwrap() = Some(at());
            op.completed.store(true, SeqCst);
            let waker = op.waker.lock().unwrap().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl Unpark for SimKernel {
    fn unpark(&self) {
        self.unparked.store(true, SeqCst);
    }
}

/// A worker's driver: every call is a yield point of the simulation.
pub(super) struct SimDriver {
    pub(super) kernel: Arc<SimKernel>,
    pub(super) baton: Arc<Baton>,
    pub(super) clock: Arc<ManualClock>,
}

impl SimDriver {
    fn dispatch(&self) -> usize {
        self.kernel.dispatch(super::mark)
    }
}

impl Driver for SimDriver {
    fn reap(&self) -> io::Result<usize> {
        self.baton.yield_point(self.kernel.index, Stop::Busy);
        Ok(self.dispatch())
    }

    fn has_events(&self) -> bool {
        self.baton.yield_point(self.kernel.index, Stop::Busy);
        self.kernel.wakes()
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let until = timeout.map(|t| self.clock.now() + t);
        self.baton
            .yield_point(self.kernel.index, Stop::Parked { until });
        self.kernel.unparked.store(false, SeqCst);
        Ok(self.dispatch())
    }

    fn unparker(&self) -> Unparker {
        self.kernel.clone()
    }
}

std::thread_local! {
    /// The kernel of the worker this thread is (set by the simulation's worker threads).
    pub(super) static KERNEL: std::cell::RefCell<Option<Arc<SimKernel>>> =
        const { std::cell::RefCell::new(None) };
}

/// An operation that completes `after` controller steps, submitted to the kernel of the
/// worker that first polls it. Resolves to its cell.
pub(super) struct SimOp {
    after: u64,
    cell: Option<Arc<OpCell>>,
}

impl SimOp {
    pub(super) fn new(after: u64) -> SimOp {
        SimOp { after, cell: None }
    }
}

impl Future for SimOp {
    type Output = Arc<OpCell>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Arc<OpCell>> {
        let after = self.after;
        let cell = self.cell.get_or_insert_with(|| {
            let cell = Arc::new(OpCell::default());
            KERNEL.with(|k| {
                let kernel = k.borrow();
                let kernel = kernel
                    .as_ref()
                    .expect("a SimOp polled off the simulation's workers");
                kernel.submit(kernel.step.load(SeqCst) + after, cell.clone());
            });
            cell
        });
        if cell.completed.load(SeqCst) {
            return Poll::Ready(cell.clone());
        }
        // One participant runs at a time (baton.rs): no dispatch can slip in between.
        *cell.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}
