//! Which ring an op polled on this thread is submitted to.
//!
//! A worker makes its ring *current* for its whole life ([`crate::Ring::enter`]); an op
//! is submitted on the ring current where it is first polled (design invariant 1). A
//! thread without a ring of its own (a `block_on` caller, a blocking-pool thread) may
//! name a *fallback* ring ([`crate::set_fallback`]): its ops travel through that ring's
//! mailbox.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::ring::inner::RingInner;
use crate::shared::RingShared;
use crate::sync::Arc;

thread_local! {
    static CURRENT: RefCell<Option<Rc<RingInner>>> = const { RefCell::new(None) };
    /// The ring `CURRENT` holds, as a bare pointer (null when none): what the submit
    /// path reads, once per op, without a borrow flag or a reference count. `CURRENT`'s
    /// reference keeps it alive, and both are only ever changed together.
    static CURRENT_PTR: Cell<*const RingInner> = const { Cell::new(std::ptr::null()) };
    static FALLBACK: RefCell<Option<Arc<RingShared>>> = const { RefCell::new(None) };
}

/// The ring this thread's ops travel to by mailbox when it has no ring of its own
/// ([`crate::set_fallback`]).
pub(crate) fn fallback() -> Option<Arc<RingShared>> {
    FALLBACK.with(|f| f.borrow().clone())
}

/// Runs `f` with this thread's current ring, if it has one (`None` without calling it).
///
/// `f` must not change the current ring (no [`crate::Ring::enter`] or guard drop), which
/// none of the crate's callers, all on the submit path, can do.
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(&RingInner) -> R) -> Option<R> {
    let ring = CURRENT_PTR.with(Cell::get);
    // A non-null pointer is the ring `CURRENT` holds a reference to, and `f` does not
    // replace `CURRENT` (the contract above).
    // SAFETY: so the ring is alive for the whole call.
    unsafe { ring.as_ref() }.map(f)
}

/// Runs `f` with this thread's current ring, if it is `id`.
pub(crate) fn with_ring<R>(id: u32, f: impl FnOnce(&RingInner) -> R) -> Option<R> {
    CURRENT.with(|c| match &*c.borrow() {
        Some(ring) if ring.shared.id == id => Some(f(ring)),
        _ => None,
    })
}

/// Wakes `target` with a MSG_RING from this thread's ring. False when this thread has
/// no ring, the ring is the target itself, or MSG_RING is off or unavailable.
pub(crate) fn send_msg_ring_wake(target: &RingShared) -> bool {
    CURRENT
        .try_with(|c| match c.try_borrow().ok().as_deref() {
            Some(Some(ring)) if ring.shared.id != target.id => ring.send_msg_ring_wake(target),
            _ => false,
        })
        .unwrap_or(false)
}

pub(crate) fn set_current(ring: Option<Rc<RingInner>>) -> Option<Rc<RingInner>> {
    CURRENT_PTR.with(|p| p.set(ring.as_ref().map_or(std::ptr::null(), Rc::as_ptr)));
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), ring))
}

/// Installs `ring` as this thread's fallback; returns the previous one.
pub(crate) fn replace_fallback(ring: Option<Arc<RingShared>>) -> Option<Arc<RingShared>> {
    FALLBACK.with(|f| std::mem::replace(&mut *f.borrow_mut(), ring))
}

/// Puts back a fallback saved by [`replace_fallback`]; a no-op during thread teardown.
pub(crate) fn restore_fallback(ring: Option<Arc<RingShared>>) {
    let _ = FALLBACK.try_with(|f| *f.borrow_mut() = ring);
}

/// Makes a ring current on this thread until dropped (see [`crate::Ring::enter`]).
#[must_use = "the ring stops being current when the guard is dropped"]
pub struct EnterGuard {
    pub(crate) prev: Option<Rc<RingInner>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // During thread teardown the slot may already be gone; nothing to restore then.
        let _ = CURRENT_PTR.try_with(|p| p.set(prev.as_ref().map_or(std::ptr::null(), Rc::as_ptr)));
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}
