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

/// What the loom models in `loom-tests/` drive: the scheduler's real types, re-exported
/// (as `uringo::__loom`) only in `cfg(loom)` builds. The items are `pub` inside
/// crate-private modules, so normal builds export none of them.
#[cfg(loom)]
pub mod exports {
    pub use crate::scheduler::idle::Idle;
    pub use crate::scheduler::inject::Injector;
    pub use crate::scheduler::queue::{local, Local, QueueItem, Steal, CAPACITY, HALF};
    pub use crate::scheduler::{Config, Remote, Shared};
    pub use crate::task::handles::{new_task, Notified, Schedule, Task};
    pub use crate::task::owned::OwnedTasks;
    pub use crate::task::raw::RawTask;
    pub use crate::task::state::{State, ToIdle, ToNotified, ToRunning};
    pub use crate::task::JoinHandle;
    pub use crate::time::driver::{TimerDriver, TimerRemote};
    pub use crate::time::entry::TimerEntry;

    pub use super::LoomRing;

    /// Task id `n` (not user-constructible otherwise). Models pass fixed ids: the
    /// global counter behind `Id::next` would change the registry shard a task lands in
    /// from one loom execution to the next.
    pub fn task_id(n: u64) -> crate::task::Id {
        crate::task::Id::from_u64(n)
    }
}

/// The ring's wake-up as loom sees it: the kernel is out of loom's reach, so under
/// `cfg(loom)` every kick that would go to a worker's ring (`Remote::wake_ring`) also
/// sets this sticky flag, and the loom models' workers park on it. Sticky like the real
/// ring's park token: a kick before the park makes the park return at once.
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct LoomRing {
    kicked: sync::Mutex<bool>,
    cond: sync::Condvar,
}

#[cfg(loom)]
impl LoomRing {
    /// Kicks the owner (a MSG_RING / eventfd wake in the real ring).
    pub fn wake(&self) {
        *self.kicked.lock().unwrap() = true;
        self.cond.notify_all();
    }

    /// Sleeps until kicked, consuming the kick (`Ring::park` with no timeout).
    pub fn park(&self) {
        let mut kicked = self.kicked.lock().unwrap();
        while !*kicked {
            kicked = self.cond.wait(kicked).unwrap();
        }
        *kicked = false;
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

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
}
