//! Every atomic, lock and shared pointer the scheduler uses comes from here.
//!
//! Under `cfg(loom)` these are loom's instrumented types, so the loom models (each next
//! to the code it checks, in `#[cfg(all(test, loom))]` modules; the list and how to run
//! them are in `model.rs`) check the scheduler's real code rather than a copy of it.
//! Code outside this module must not name `std::sync` for anything a model relies on;
//! statistics (counters, histograms, stamps) use std atomics on purpose, so loom does
//! not explore orders that decide nothing.

/// Whether the deliberate bug `$name` is switched on: `--cfg uringo_loom_mutation="$name"`
/// plants it in the real code to show that a loom model catches it (`.ci/loom-mutations`).
/// Never set in shipped builds; every planted bug reads `if mutation!("...")` at its
/// site, next to the correct code.
macro_rules! mutation {
    ($name:literal) => {
        cfg!(uringo_loom_mutation = $name)
    };
}
pub(crate) use mutation;

/// `thread_local!` for state each thread must have its own of: loom's under `cfg(loom)`
/// (loom runs its threads on one OS thread, whose std thread-locals they would share),
/// std's otherwise.
macro_rules! thread_locals {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }; $($rest:tt)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $(#[$attr])* $vis static $name: $t = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { $(#[$attr])* $vis static $name: $t = $init; }
        $crate::loom::thread_locals! { $($rest)* }
    };
}
pub(crate) use thread_locals;

/// The caller is about to look again at once for work it saw but could not take yet
/// (a push still in flight). Nothing in a real build; under loom, tells the model
/// checker this thread waits for another, so the retry costs no preemption and the
/// model does not spin through its branch budget.
#[inline(always)]
pub(crate) fn retry_soon() {
    #[cfg(loom)]
    loom::thread::yield_now();
}

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

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

/// `crossbeam_queue::SegQueue`'s API over a loom mutex, for the queues other threads use
/// to reach a worker's timer wheel. crossbeam's atomics are invisible to loom, which
/// would then not see that the owner's drain depends on another thread's push and
/// would explore a single interleaving.
#[cfg(loom)]
#[derive(Debug)]
pub struct SegQueue<T>(sync::Mutex<std::collections::VecDeque<T>>);

#[cfg(loom)]
impl<T> Default for SegQueue<T> {
    fn default() -> Self {
        SegQueue(sync::Mutex::new(std::collections::VecDeque::new()))
    }
}

#[cfg(loom)]
impl<T> SegQueue<T> {
    /// Appends `value`.
    pub fn push(&self, value: T) {
        self.0.lock().unwrap().push_back(value);
    }

    /// Takes the oldest value.
    pub fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop_front()
    }
}

#[cfg(all(test, loom))]
pub(crate) mod model;

#[cfg(all(test, loom))]
mod driver;
#[cfg(all(test, loom))]
pub(crate) use driver::LoomDriver;
