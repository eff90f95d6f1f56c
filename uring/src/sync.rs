//! The one place atomics and shared pointers come from.
//!
//! Under `cfg(loom)` the atomics and `UnsafeCell` are loom's instrumented twins, so a
//! loom model of [`crate::cell`] or [`crate::park`] checks the real code, not a copy of
//! it. Nothing else in the crate may name `std::sync::atomic` directly. `Arc` stays
//! std's under loom: the slab stores `Arc<dyn Completion>`, and loom's `Arc` cannot be
//! coerced to a trait object; reference counting is not what those models check.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// `UnsafeCell` with loom's access tracking when modelled.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a mutable pointer to the value; the caller upholds exclusivity.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
