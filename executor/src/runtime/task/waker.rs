//! Task wakers: a pointer to the task header and one static vtable, no allocation.
//!
//! A waker holds one task reference. `wake` turns that reference into the task's
//! `Notified` when the task was idle (state.rs decides), so waking an idle task costs one
//! CAS and a queue push, and waking a running, complete or already-woken task costs one
//! CAS.
//!
//! # A task that wakes itself
//!
//! `yield_now`, a spent coop budget and a retried write all wake the task being polled,
//! from inside its poll, on the thread polling it. Through the state word that is a CAS
//! to set NOTIFIED on a RUNNING task, and the poller's transition to idle then sees the
//! bit and queues the task again: on a loop of yields, the CAS is one of three per poll.
//! The thread polling a task knows which task it polls, so such a wake is noted in a
//! thread-local instead ([`polling`]): the poller reads it after the poll and makes
//! the same transition as if the bit had been set (`State::transition_to_idle`).
//!
//! Nothing is lost for other parties. Until the poll ends the task is RUNNING, so any
//! other waker only sets NOTIFIED and schedules nothing, with or without the bit; an
//! abort or a shutdown sets CANCELLED, which the transition to idle looks at first. The
//! note is taken only by a waker of the very task in the thread-local, on that thread,
//! and only while its poll runs: a waker sent to another thread, or woken after the
//! poll, goes through the state word.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::raw::{Header, RawTask};
use super::state::ToNotified;

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake_by_val, wake_by_ref, drop_waker);

/// A waker for the task that borrows the poller's reference instead of taking one:
/// what the task's own `Context` carries during a poll.
pub(super) fn waker_ref(header: NonNull<Header>) -> ManuallyDrop<Waker> {
    let raw = RawWaker::new(header.as_ptr() as *const (), &VTABLE);
    // ManuallyDrop keeps this borrowed waker from releasing a reference it never took.
    // SAFETY: the vtable upholds the RawWaker contract.
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
}

crate::loom::thread_locals! {
    /// The header of the task this thread is polling (0: none), with its low bit set
    /// once the poll has woken the task (headers are word-aligned, so the bit is free).
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

/// The low bit of [`POLLING`]: the task being polled woke itself.
const WOKE_ITSELF: usize = 1;

/// Runs `poll`, the poll of the task at `header` on this thread; returns its result
/// and whether the task woke itself meanwhile (see the module docs).
#[inline]
pub(super) fn polling<R>(header: NonNull<Header>, poll: impl FnOnce() -> R) -> (R, bool) {
    struct Restore(usize);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            POLLING.with(|p| p.set(self.0));
        }
    }
    let restore = Restore(POLLING.with(|p| p.replace(header.as_ptr() as usize)));
    let result = poll();
    let woke = POLLING.with(|p| p.get()) & WOKE_ITSELF != 0;
    drop(restore);
    (result, woke)
}

/// Notes a wake of `ptr` if it is the task this thread is polling; false otherwise.
#[inline]
fn note_self_wake(ptr: *const ()) -> bool {
    POLLING.with(|p| {
        let polling = p.get();
        let own = polling & !WOKE_ITSELF == ptr as usize;
        if own {
            p.set(polling | WOKE_ITSELF);
        }
        own
    })
}

/// # Safety (all four)
/// `ptr` is the header of a live task, and the waker owns one reference to it.
unsafe fn task(ptr: *const ()) -> RawTask {
    // SAFETY: wakers are only built from non-null header pointers.
    unsafe { RawTask::from_raw(NonNull::new_unchecked(ptr as *mut Header)) }
}

unsafe fn clone(ptr: *const ()) -> RawWaker {
    // SAFETY: see `task`.
    unsafe { task(ptr) }.state().ref_inc();
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn wake_by_val(ptr: *const ()) {
    // SAFETY: see `task`.
    let raw = unsafe { task(ptr) };
    if note_self_wake(ptr) {
        // Mutation point: keeping the waker's reference leaks the task.
        if !crate::loom::mutation!("self_wake_ref") {
            // Not the last reference: the poller holds one for the whole poll.
            raw.drop_reference();
        }
        return;
    }
    match raw.state().transition_to_notified_by_val() {
        // SAFETY: our reference became the Notified's.
        ToNotified::Submit => unsafe { raw.schedule() },
        // SAFETY: that was the last reference.
        ToNotified::Dealloc => unsafe { raw.dealloc() },
        ToNotified::DoNothing => {}
    }
}

unsafe fn wake_by_ref(ptr: *const ()) {
    // SAFETY: see `task`.
    let raw = unsafe { task(ptr) };
    if note_self_wake(ptr) {
        return;
    }
    if raw.state().transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added the reference the Notified owns.
        unsafe { raw.schedule() }
    }
}

unsafe fn drop_waker(ptr: *const ()) {
    // SAFETY: see `task`.
    unsafe { task(ptr) }.drop_reference();
}
