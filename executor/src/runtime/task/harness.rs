//! What happens to a task: poll, complete, cancel, read the output, free.
//!
//! These are the functions behind the task vtable, monomorphized per future and
//! scheduler type. Each one starts with a state transition (state.rs) that decides, in
//! one atomic step, which party does what; the rest follows from that decision.

use std::future::Future;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use super::cell_pool;
use super::raw::{Cell, Core, Header, RawTask, Stage, Trailer};
use super::state::{Snapshot, ToIdle, ToRunning};
use super::{waker, JoinError, Notified, Schedule};

struct Harness<F: Future, S> {
    cell: NonNull<Cell<F, S>>,
}

impl<F: Future, S: Schedule> Harness<F, S> {
    /// # Safety
    /// `ptr` is the header of a live `Cell<F, S>`.
    unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        Harness { cell: ptr.cast() }
    }

    fn header(&self) -> &Header {
        // SAFETY: the caller of every vtable fn holds a reference, so the cell is alive.
        unsafe { &self.cell.as_ref().header }
    }

    fn core(&self) -> &Core<F, S> {
        // SAFETY: as above.
        unsafe { &self.cell.as_ref().core }
    }

    fn trailer(&self) -> &Trailer {
        // SAFETY: as above.
        unsafe { &self.cell.as_ref().trailer }
    }

    fn raw(&self) -> RawTask {
        // SAFETY: the header is alive (see `header`).
        unsafe { RawTask::from_raw(self.cell.cast()) }
    }

    fn poll(self) {
        match self.header().state.transition_to_running() {
            ToRunning::Success => {
                let waker = waker::waker_ref(self.cell.cast());
                let mut cx = Context::from_waker(&waker);
                let (poll, woke_itself) =
                    waker::polling(self.cell.cast(), || self.poll_future(&mut cx));
                if poll.is_ready() {
                    return self.complete();
                }
                match self.header().state.transition_to_idle(woke_itself) {
                    ToIdle::Ok => {}
                    ToIdle::OkNotified => {
                        // Woken during its own poll: it yielded, so it goes to the back.
                        self.core().scheduler.yield_now(Notified(self.raw()));
                    }
                    ToIdle::OkDealloc => self.dealloc(),
                    ToIdle::Cancelled => {
                        self.cancel_future();
                        self.complete();
                    }
                }
            }
            ToRunning::Cancelled => {
                self.cancel_future();
                self.complete();
            }
            ToRunning::Failed => {}
            ToRunning::Dealloc => self.dealloc(),
        }
    }

    /// Polls the future once, catching a panic. On `Ready` (or a panic) the stage holds
    /// the output and the future is gone.
    fn poll_future(&self, cx: &mut Context<'_>) -> Poll<()> {
        let header = self.header();
        let id = header.id;
        let poll = || {
            panic::catch_unwind(AssertUnwindSafe(|| {
                self.core().stage.with_mut(|stage| {
                    // SAFETY: we hold RUNNING, so the stage is ours.
                    match unsafe { &mut *stage } {
                        // SAFETY: the future never moves out of its heap cell while Running.
                        Stage::Running(future) => unsafe { Pin::new_unchecked(future) }.poll(cx),
                        _ => unreachable!("a task is only polled while its future exists"),
                    }
                })
            }))
        };
        // What this poll leaves the task waiting on, for dumps.
        header.wait.store(0, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: our reference to the task keeps its header (and the slot) alive.
        let result = unsafe { crate::observe::wait::watching(&header.wait, poll) };
        let output = match result {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panic(id, payload)),
        };
        // Drop the future before storing the output; a panic in its destructor after a
        // successful poll is reported, not propagated into the worker.
        if let Err(payload) =
            panic::catch_unwind(AssertUnwindSafe(|| self.set_stage(Stage::Consumed)))
        {
            tracing::warn!(task = %id, "task's future panicked while being dropped");
            drop(payload);
        }
        self.set_stage(Stage::Finished(output));
        Poll::Ready(())
    }

    /// Drops the future and records the cancellation (or the panic of its destructor).
    fn cancel_future(&self) {
        let id = self.header().id;
        let result = panic::catch_unwind(AssertUnwindSafe(|| self.set_stage(Stage::Consumed)));
        let error = match result {
            Ok(()) => JoinError::cancelled(id),
            Err(payload) => JoinError::panic(id, payload),
        };
        self.set_stage(Stage::Finished(Err(error)));
    }

    fn set_stage(&self, stage: Stage<F>) {
        // Called only by the party holding RUNNING, by the JoinHandle after COMPLETE, or
        // by the last reference in dealloc.
        // SAFETY: each of those has the stage to itself.
        self.core().stage.with_mut(|ptr| unsafe { *ptr = stage });
    }

    /// The task is done: stop counting as live, publish the output, wake the
    /// `JoinHandle`, and leave the registry unless the `JoinHandle` still wants the
    /// output (then it releases the entry once it took the output or was dropped).
    ///
    /// The count goes first so that whoever sees the task complete through its
    /// `JoinHandle` also sees it gone from the live-task count.
    fn complete(self) {
        // Before COMPLETE is published, so whoever sees the task done sees the hook run.
        self.core().scheduler.terminated(&self.raw());
        self.core().scheduler.completing(&self.raw());
        let snapshot = self.header().state.transition_to_complete();
        let id = self.header().id;
        let refs = if snapshot.is_join_interested() {
            // The JoinHandle releases the entry (see `release_for_join_handle`): it
            // cannot have done so yet, since it had not seen COMPLETE.
            1
        } else {
            match self.core().scheduler.release(&self.raw()) {
                Some(task) => {
                    mem::forget(task);
                    2
                }
                None => 1,
            }
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            if !snapshot.is_join_interested() {
                // Nobody will read the output.
                self.set_stage(Stage::Consumed);
            } else if snapshot.is_join_waker_set() {
                // JOIN_WAKER was set when we completed: the JoinHandle will not write the
                // slot again (state.rs).
                // SAFETY: so it is ours to read.
                self.trailer().waker.with(|waker| unsafe {
                    if let Some(waker) = &*waker {
                        waker.wake_by_ref();
                    }
                });
            }
        }));
        if result.is_err() {
            tracing::warn!(task = %id, "dropping a task's output (or waking its JoinHandle) panicked");
        }
        if self.header().state.transition_to_terminal(refs) {
            self.dealloc();
        }
    }

    /// The `JoinHandle` is done with a completed task (took the output, or was dropped
    /// after completion): the registry entry the task left for it goes.
    fn release_for_join_handle(&self) {
        // Mutation point: forgetting this strands the entry (and the
        // registry's reference) until shutdown.
        if crate::loom::mutation!("join_release") {
            return;
        }
        // Dropping the registry's reference cannot free the task: the JoinHandle still
        // holds one.
        drop(self.core().scheduler.release(&self.raw()));
    }

    fn dealloc(self) {
        let cell = self.cell.as_ptr();
        // The reference count reached zero, so nobody else reaches the cell; it was
        // written in place by `RawTask::new` and is dropped once, here.
        // SAFETY: so the cell is ours to drop.
        unsafe { std::ptr::drop_in_place(cell) };
        // SAFETY: `RawTask::new` took the cell's memory from the pool with this layout.
        unsafe { cell_pool::dealloc(self.cell.cast(), Cell::<F, S>::LAYOUT) };
    }

    fn take_output(&self) -> Result<F::Output, JoinError> {
        // The JoinHandle calls this only once COMPLETE is set and it holds join interest;
        // the task side no longer touches the stage.
        let stage = self
            .core()
            .stage
            // SAFETY: so the stage is the JoinHandle's alone.
            .with_mut(|ptr| unsafe { mem::replace(&mut *ptr, Stage::Consumed) });
        match stage {
            Stage::Finished(output) => output,
            _ => panic!("JoinHandle polled after it returned the output"),
        }
    }

    /// Decides whether the output can be read now, registering `waker` if not.
    fn can_read_output(&self, waker: &Waker) -> bool {
        let snapshot = self.header().state.load();
        debug_assert!(snapshot.is_join_interested());
        if snapshot.is_complete() {
            return true;
        }
        let res = if !snapshot.is_join_waker_set() {
            self.set_join_waker(waker.clone())
        } else {
            // JOIN_WAKER is set: the task side may read the slot, but nobody writes it.
            let same = self
                .trailer()
                .waker
                // SAFETY: so reading it beside the task side is fine.
                .with(|w| unsafe { (*w).as_ref().is_some_and(|w| w.will_wake(waker)) });
            if same {
                return false;
            }
            self.header()
                .state
                .unset_join_waker()
                .and_then(|_| self.set_join_waker(waker.clone()))
        };
        match res {
            Ok(_) => false,
            Err(snapshot) => {
                debug_assert!(snapshot.is_complete());
                true
            }
        }
    }

    fn set_join_waker(&self, waker: Waker) -> Result<Snapshot, Snapshot> {
        self.trailer()
            .waker
            // SAFETY: JOIN_WAKER is clear, so the JoinHandle (us) owns the slot.
            .with_mut(|slot| unsafe { *slot = Some(waker) });
        let res = self.header().state.set_join_waker();
        if res.is_err() {
            // Completed meanwhile: the slot stays ours; drop the waker we just stored.
            self.trailer()
                .waker
                // SAFETY: JOIN_WAKER is still clear.
                .with_mut(|slot| unsafe { *slot = None });
        }
        res
    }
}

/// Vtable: poll or cancel, consuming the caller's `Notified` reference.
pub(super) unsafe fn poll<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the vtable is only reached through a live task of this type.
    unsafe { Harness::<F, S>::from_raw(ptr) }.poll();
}

/// Vtable: hand a `Notified` to the task's scheduler.
pub(super) unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: as above.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    harness.core().scheduler.schedule(Notified(harness.raw()));
}

/// Vtable: free the cell.
pub(super) unsafe fn dealloc<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: as above.
    unsafe { Harness::<F, S>::from_raw(ptr) }.dealloc();
}

/// Vtable: `JoinHandle::poll`.
pub(super) unsafe fn try_read_output<F: Future, S: Schedule>(
    ptr: NonNull<Header>,
    dst: *mut (),
    waker: &Waker,
) {
    // SAFETY: as above.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    if harness.can_read_output(waker) {
        // SAFETY: the JoinHandle passes a `Poll<Result<F::Output, JoinError>>` slot.
        let dst = unsafe { &mut *(dst as *mut Poll<Result<F::Output, JoinError>>) };
        *dst = Poll::Ready(harness.take_output());
        harness.release_for_join_handle();
    }
}

/// Vtable: the `JoinHandle` is dropped.
pub(super) unsafe fn drop_join_handle<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: as above.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    match harness.header().state.unset_join_interested() {
        Err(_) => {
            // Complete: the output is ours to drop. The waker slot may still be read by
            // the completing side, so it is left for dealloc.
            if panic::catch_unwind(AssertUnwindSafe(|| harness.set_stage(Stage::Consumed))).is_err()
            {
                tracing::warn!(task = %harness.header().id, "dropping a task's output panicked");
            }
            // A no-op if the output was taken (the entry went then).
            harness.release_for_join_handle();
        }
        Ok(_) => {
            // Not complete, and JOIN_WAKER is now clear: the slot is ours again.
            harness
                .trailer()
                .waker
                // SAFETY: see state.rs, JOIN_WAKER.
                .with_mut(|slot| unsafe { *slot = None });
        }
    }
    harness.raw().drop_reference();
}

/// Vtable: runtime shutdown, consuming the caller's reference (the registry's).
pub(super) unsafe fn shutdown<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: as above.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    if !harness.header().state.transition_to_shutdown() {
        // Running (the poller will see CANCELLED) or already complete.
        harness.raw().drop_reference();
        return;
    }
    harness.cancel_future();
    harness.complete();
}
