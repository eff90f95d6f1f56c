//! Which ring an op polled on this thread is submitted to.
//!
//! A worker makes its ring *current* for its whole life ([`crate::Ring::enter`]); an op
//! is submitted on the ring current where it is first polled (design invariant 1). A
//! thread without a ring of its own (a `block_on` caller, a blocking-pool thread) may
//! name a *fallback* ring: its ops travel through that ring's mailbox.

use std::cell::RefCell;
use std::rc::Rc;

use crate::ring::RingInner;
use crate::shared::{RingHandle, RingShared};

thread_local! {
    static CURRENT: RefCell<Option<Rc<RingInner>>> = const { RefCell::new(None) };
    static FALLBACK: RefCell<Option<RingHandle>> = const { RefCell::new(None) };
}

/// Where an op goes when polled on this thread.
pub(crate) enum Target {
    Local(Rc<RingInner>),
    Remote(RingHandle),
}

pub(crate) fn target() -> Option<Target> {
    if let Some(ring) = CURRENT.with(|c| c.borrow().clone()) {
        return Some(Target::Local(ring));
    }
    FALLBACK.with(|f| f.borrow().clone()).map(Target::Remote)
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
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), ring))
}

/// Makes `handle`'s ring the destination of ops polled on this thread when the thread
/// has no ring of its own. Returns a guard that restores the previous fallback.
///
/// ```
/// let ring = uringo_uring::Ring::new()?;
/// let handle = ring.handle();
/// std::thread::spawn(move || {
///     let _fallback = uringo_uring::set_fallback(handle);
///     // Ops polled here now go through the ring's mailbox.
/// })
/// .join()
/// .unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_fallback(handle: RingHandle) -> FallbackGuard {
    let prev = FALLBACK.with(|f| f.borrow_mut().replace(handle));
    FallbackGuard { prev }
}

/// Restores the previous fallback ring when dropped.
#[must_use = "the fallback is reset when the guard is dropped"]
pub struct FallbackGuard {
    prev: Option<RingHandle>,
}

impl Drop for FallbackGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = FALLBACK.try_with(|f| *f.borrow_mut() = prev);
    }
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
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}
