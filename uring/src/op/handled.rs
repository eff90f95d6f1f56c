//! Submitting handled ops from a task, and cancelling them (the ops themselves are in
//! `cell/handled.rs`, which says what they are for).

use std::fmt;
use std::io;

use crate::cell::{self, CellHandle, Handled};
use crate::context;
use crate::pending::PendingOp;

use super::future::request_cancel;

/// A reference to a submitted handled op, to cancel it by. Dropping it leaves the op
/// running: only its final CQE ends it.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use io_uring::types::Timespec;
/// use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled};
/// use uringo_uring::{opcodes, Ring};
///
/// /// A minute's timeout whose result is noted where its CQE lands.
/// struct Wait(Box<Timespec>, Arc<Mutex<Option<i32>>>);
///
/// // SAFETY: the SQE points at the boxed timespec, which the op holds until its CQE.
/// unsafe impl Handled for Wait {
///     fn build(&mut self) -> io_uring::squeue::Entry {
///         opcodes::Timeout::new(&*self.0).build()
///     }
///     fn on_cqe(&mut self, _: &Dispatch<'_>, cqe: Cqe, _: u32, _: bool) {
///         *self.1.lock().unwrap() = Some(cqe.result);
///     }
/// }
///
/// let ring = Ring::new()?;
/// let _guard = ring.enter();
/// let result = Arc::new(Mutex::new(None));
/// let wait = Wait(Box::new(Timespec::new().sec(60)), result.clone());
/// let op = submit_handled(wait).map_err(|(_, err)| err)?;
/// op.cancel();
/// while result.lock().unwrap().is_none() {
///     ring.submit_and_reap()?;
/// }
/// assert_eq!(*result.lock().unwrap(), Some(-libc::ECANCELED));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct HandledRef {
    cell: CellHandle,
    ring: u32,
    pending: PendingOp,
}

impl HandledRef {
    /// Asks the kernel to stop the op (a no-op once it has ended). Its handler still
    /// sees every CQE, the last one usually with `ECANCELED`.
    pub fn cancel(&self) {
        request_cancel(self.ring, &self.cell);
    }

    /// The id of the ring the op runs on.
    pub fn ring_id(&self) -> u32 {
        self.ring
    }

    /// Tells the pending hook ([`crate::set_pending_hook`]), if one is installed, that
    /// the poll in progress waits on this op, as an op's future does when it returns
    /// `Pending`: a task that waits on a handler's work then shows in a task dump as
    /// waiting on the op (its opcode and fd).
    pub fn report_pending(&self) {
        self.pending.report();
    }
}

impl fmt::Debug for HandledRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandledRef")
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

/// Submits handled op `op` on the ring this thread owns; its CQEs go to
/// [`Handled::on_cqe`] on this thread.
///
/// A thread that only reaches a ring remotely (through [`crate::set_fallback`]) cannot
/// run a handler, so there the op comes back with `ErrorKind::Unsupported`; so it does
/// when the SQ cannot take it.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled};
/// use uringo_uring::{opcodes, Ring};
///
/// /// A nop whose result is noted where its CQE lands.
/// struct Noted(Arc<Mutex<Option<i32>>>);
///
/// // SAFETY: the SQE points at nothing.
/// unsafe impl Handled for Noted {
///     fn build(&mut self) -> io_uring::squeue::Entry {
///         opcodes::Nop::new().build()
///     }
///     fn on_cqe(&mut self, _: &Dispatch<'_>, cqe: Cqe, _: u32, _: bool) {
///         *self.0.lock().unwrap() = Some(cqe.result);
///     }
/// }
///
/// let ring = Ring::new()?;
/// let noted = Arc::new(Mutex::new(None));
/// let _guard = ring.enter();
/// submit_handled(Noted(noted.clone())).map_err(|(_, err)| err)?;
/// while noted.lock().unwrap().is_none() {
///     ring.submit_and_reap()?;
/// }
/// assert_eq!(*noted.lock().unwrap(), Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn submit_handled<T: Handled>(op: T) -> Result<HandledRef, (T, io::Error)> {
    let mut op = Some(op);
    let submitted = context::with_local(|ring| {
        let op = op.take().expect("the op is taken once");
        let (cell, pending) = cell::submit_handled_on(ring, op)?;
        Ok(HandledRef {
            cell,
            ring: ring.shared.id,
            pending,
        })
    });
    submitted.unwrap_or_else(|| {
        let op = op.expect("the op is still here when there is no local ring");
        let why = "handled ops are submitted only on the thread that owns the ring";
        Err((op, io::Error::new(io::ErrorKind::Unsupported, why)))
    })
}
