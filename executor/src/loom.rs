//! Every atomic, lock and shared pointer the scheduler uses comes from here.
//!
//! Under `cfg(loom)` these are loom's instrumented types, so the loom models in
//! `loom-tests/` check the scheduler's real code (the run queue, the idle/park protocol,
//! the task state machine) rather than a copy of it. Code outside this module must not
//! name `std::sync` directly.

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Condvar, Mutex};

    /// `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared pointer; the caller upholds the aliasing rules.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable pointer; the caller upholds exclusivity.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Reads an atomic the caller alone writes, without an atomic instruction.
    pub(crate) trait UnsyncLoad<T> {
        fn unsync_load(&self) -> T;
    }

    impl UnsyncLoad<u32> for AtomicU32 {
        #[inline(always)]
        fn unsync_load(&self) -> u32 {
            // Relaxed on x86/ARM is a plain load; the single-writer rule makes it exact.
            self.load(Ordering::Relaxed)
        }
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::{Arc, Condvar, Mutex};

    /// Reads an atomic the caller alone writes.
    pub(crate) trait UnsyncLoad<T> {
        fn unsync_load(&self) -> T;
    }

    impl UnsyncLoad<u32> for AtomicU32 {
        fn unsync_load(&self) -> u32 {
            // SAFETY: only the single writer calls this.
            unsafe { self.unsync_load() }
        }
    }
}
