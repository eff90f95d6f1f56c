//! The one place atomics, shared pointers, thread ids and the queues loom must see come
//! from.
//!
//! Under `cfg(loom)` the atomics and `UnsafeCell` are loom's instrumented twins, so the
//! loom models (`#[cfg(all(test, loom))]` modules next to the code they check, such as
//! the one in `buf_ring/ring_bufs.rs`) run the real code, not a copy of it.
//! Nothing else in the crate may name `std::sync::atomic` directly. `Arc` stays std's
//! under loom: an op submitted from a thread without a ring travels the mailbox as an
//! `Arc<dyn Completion>`, and loom's `Arc` cannot be coerced to a trait object. (The
//! completion cells count their references in their own state word, which loom sees.)
//!
//! Two things loom would otherwise get wrong are swapped too. Loom runs its threads on
//! one OS thread, so "which thread is this" asks loom. And crossbeam's queues are built
//! on atomics loom cannot see, so loom would not know that a pop depends on another
//! thread's push and would explore a single interleaving of the two: the bounded queue
//! that carries returned buffers is a loom mutex around a `VecDeque` under loom.

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

#[cfg(not(loom))]
pub(crate) use std::thread::ThreadId;

#[cfg(loom)]
pub(crate) use loom::thread::ThreadId;

/// The calling thread's id, cached (`thread::current()` clones an `Arc` per call).
#[cfg(not(loom))]
pub(crate) fn current_thread() -> ThreadId {
    thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    // During thread teardown the cache may be gone; the slow path still answers.
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
}

/// The calling loom thread's id.
#[cfg(loom)]
pub(crate) fn current_thread() -> ThreadId {
    loom::thread::current().id()
}

/// A spin-wait hint; under loom a yield, so a model lets the thread being waited for run.
#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop;

#[cfg(loom)]
pub(crate) use loom::thread::yield_now as spin_loop;

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;

/// `crossbeam_queue::ArrayQueue`'s API over a loom mutex (see the module docs).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct ArrayQueue<T> {
    capacity: usize,
    items: loom::sync::Mutex<std::collections::VecDeque<T>>,
}

#[cfg(loom)]
impl<T> ArrayQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            items: loom::sync::Mutex::new(std::collections::VecDeque::with_capacity(capacity)),
        }
    }

    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.items.lock().unwrap();
        if items.len() == self.capacity {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }
}

/// Helpers of the loom models.
#[cfg(all(test, loom))]
pub(crate) mod model {
    /// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set. Every bug the
    /// mutations plant is found within it; CI sets the bound explicitly.
    const DEFAULT_PREEMPTIONS: usize = 2;

    /// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`, or
    /// [`DEFAULT_PREEMPTIONS`] (an unbounded search would not finish).
    pub(crate) fn model<F: Fn() + Sync + Send + 'static>(f: F) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
        }
        builder.check(f);
    }
}
