//! Task wakers: a pointer to the task header and one static vtable, no allocation.
//!
//! A waker holds one task reference. `wake` turns that reference into the task's
//! `Notified` when the task was idle (state.rs decides), so waking an idle task costs one
//! CAS and a queue push, and waking a running, complete or already-woken task costs one
//! CAS.

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
    // SAFETY: the vtable upholds the RawWaker contract; ManuallyDrop keeps this
    // borrowed waker from releasing a reference it never took.
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
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
    if raw.state().transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added the reference the Notified owns.
        unsafe { raw.schedule() }
    }
}

unsafe fn drop_waker(ptr: *const ()) {
    // SAFETY: see `task`.
    unsafe { task(ptr) }.drop_reference();
}
