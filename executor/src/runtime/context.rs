//! What the current thread is to the runtime: which runtime's handle is current (for
//! `spawn`, `Handle::current`), whether it is a worker (so wakes and spawns go to its own
//! queues), and whether it is already driving a runtime (so `block_on` can refuse).

use std::cell::{Cell, RefCell};

use super::Handle;
use crate::scheduler::worker::WorkerContext;
use crate::scheduler::Shared;

crate::loom::thread_locals! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
    static WORKER: Cell<*const WorkerContext> = const { Cell::new(std::ptr::null()) };
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// The handle of the runtime current on this thread.
pub(crate) fn current_handle() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Runs `f` with the handle of the runtime current on this thread, without cloning it:
/// a clone is an atomic add and subtract on a count every thread of the runtime shares,
/// which `uringo::spawn` would otherwise pay per task. `f` must not make another
/// runtime current (tokio's `spawn` borrows its context the same way).
pub(crate) fn with_current_handle<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    let ran = HANDLE.try_with(|h| {
        let f = f.take().expect("called once");
        f(h.borrow().as_ref())
    });
    match ran {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called"))(None),
    }
}

/// Runs `f` with the scheduler of the runtime current on this thread, without cloning
/// its handle. `f` must not make another runtime current.
pub(crate) fn with_current_shared<R>(f: impl FnOnce(Option<&Shared>) -> R) -> R {
    with_current_handle(|handle| f(handle.map(|h| &**h.shared())))
}

/// Makes `handle` current until the guard is dropped.
pub(crate) fn set_current(handle: Handle) -> SetCurrentGuard {
    let prev = HANDLE.with(|h| h.borrow_mut().replace(handle));
    SetCurrentGuard { prev }
}

/// Restores the previously current runtime handle.
#[must_use]
pub(crate) struct SetCurrentGuard {
    prev: Option<Handle>,
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = prev);
    }
}

/// Marks this thread as driving a runtime (a worker, or inside `block_on`). Panics with
/// an explanation when it already is: blocking a thread that drives tasks would
/// deadlock them.
pub(crate) fn enter_driving() -> DrivingGuard {
    let already = DRIVING.with(|d| d.replace(true));
    if already {
        panic!(
            "Cannot start a runtime from within a runtime: `block_on` was called on a thread \
             that is already driving uringo tasks (a worker thread, or inside another \
             `block_on`). Blocking here would stall every task this thread runs. Use \
             `.await` instead, or `uringo::spawn_blocking` to run blocking code."
        );
    }
    DrivingGuard(())
}

/// Whether this thread drives uringo tasks (a worker, or inside `block_on`).
pub(crate) fn is_driving() -> bool {
    DRIVING.try_with(|d| d.get()).unwrap_or(false)
}

#[must_use]
pub(crate) struct DrivingGuard(());

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        let _ = DRIVING.try_with(|d| d.set(false));
    }
}

/// Registers the worker context of this thread for the lifetime of the guard.
pub(crate) fn set_worker(worker: &WorkerContext) -> WorkerGuard {
    WORKER.with(|w| w.set(worker as *const WorkerContext));
    WorkerGuard(())
}

#[must_use]
pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let _ = WORKER.try_with(|w| w.set(std::ptr::null()));
    }
}

/// Runs `f` with this thread's worker context, if it is a worker thread.
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerContext>) -> R) -> R {
    let ptr = WORKER.try_with(|w| w.get()).unwrap_or(std::ptr::null());
    // SAFETY: the pointer is set by `set_worker` from a WorkerContext that outlives the
    // guard, which is dropped (clearing the pointer) before the context.
    f(unsafe { ptr.as_ref() })
}
