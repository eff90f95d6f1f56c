//! Task-local storage: a value bound to a future for as long as it runs, visible to
//! everything that future calls, whichever thread polls it.
//!
//! A task may be polled by any worker, and a stolen task resumes on another thread, so
//! the value cannot live in a thread-local for the task's lifetime. It lives in the
//! [`TaskLocalFuture`] instead; each poll moves it into the polling thread's slot and
//! back out when the poll returns or unwinds, so a thread's slot holds it only while
//! that future is being polled there.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread;

/// Declares task-local keys: `static`s of type [`LocalKey`](crate::task::LocalKey),
/// given a value for a future's extent with
/// [`scope`](crate::task::LocalKey::scope).
///
/// ```
/// uringo::task_local! {
///     static REQUEST_ID: u64;
///     pub static USER: String;
/// }
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     REQUEST_ID
///         .scope(7, async {
///             uringo::task::yield_now().await;
///             assert_eq!(REQUEST_ID.get(), 7);
///         })
///         .await;
///     assert!(USER.try_with(|_| ()).is_err());
/// });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

/// One key of [`task_local!`]: the thread-local slot it swaps values through.
#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static SLOT: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(SLOT)
        };
    };
}

/// A key for task-local values, declared with [`task_local!`](crate::task_local)
/// (tokio's `LocalKey`).
///
/// A value is set for the extent of a future with [`scope`](LocalKey::scope) (or of a
/// closure with [`sync_scope`](LocalKey::sync_scope)) and read with
/// [`with`](LocalKey::with), [`try_with`](LocalKey::try_with) or [`get`](LocalKey::get)
/// from anything that future runs, on whatever worker polls it. Scopes nest: an inner
/// scope hides the outer value until it ends.
///
/// ```
/// uringo::task_local! {
///     static DEPTH: u32;
/// }
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     DEPTH
///         .scope(1, async {
///             DEPTH.scope(2, async { assert_eq!(DEPTH.get(), 2) }).await;
///             assert_eq!(DEPTH.get(), 1);
///         })
///         .await;
/// });
/// ```
pub struct LocalKey<T: 'static> {
    slot: thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: 'static> LocalKey<T> {
    /// For [`task_local!`](crate::task_local) only.
    #[doc(hidden)]
    pub const fn __new(slot: thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Runs `future` with the key set to `value`. The value lives in the returned
    /// future and is dropped with it; code the future runs sees it on every poll,
    /// whichever thread polls.
    ///
    /// ```
    /// uringo::task_local! {
    ///     static NAME: &'static str;
    /// }
    ///
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let task = uringo::spawn(NAME.scope("worker", async {
    ///         uringo::task::yield_now().await;
    ///         NAME.get()
    ///     }));
    ///     assert_eq!(task.await.unwrap(), "worker");
    /// });
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            value: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with the key set to `value`, which is dropped when `f` returns.
    ///
    /// # Panics
    /// Inside [`with`](LocalKey::with) on the same key (its value is borrowed).
    ///
    /// ```
    /// uringo::task_local! {
    ///     static LIMIT: usize;
    /// }
    ///
    /// assert_eq!(LIMIT.sync_scope(3, || LIMIT.get() * 2), 6);
    /// assert!(LIMIT.try_get().is_err());
    /// ```
    #[track_caller]
    pub fn sync_scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        let mut value = Some(value);
        match self.enter(&mut value, f) {
            Ok(res) => res,
            Err(err) => err.panic(),
        }
    }

    /// Moves `value` into this thread's slot for the duration of `f`, and the slot's
    /// previous content back (also if `f` unwinds), so scopes nest and a poll leaves the
    /// thread as it found it.
    fn enter<R>(
        &'static self,
        value: &mut Option<T>,
        f: impl FnOnce() -> R,
    ) -> Result<R, ScopeError> {
        struct Restore<'a, T: 'static> {
            key: &'static LocalKey<T>,
            value: &'a mut Option<T>,
        }
        impl<T: 'static> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                // Entering borrowed and reached the slot, and `f` cannot leave a borrow
                // behind, so neither fails here.
                self.key
                    .slot
                    .with(|slot| mem::swap(self.value, &mut *slot.borrow_mut()));
            }
        }

        self.slot
            .try_with(|slot| {
                slot.try_borrow_mut()
                    .map(|mut slot| mem::swap(value, &mut *slot))
                    .map_err(|_| ScopeError::Borrowed)
            })
            .map_err(|_| ScopeError::Destroyed)??;
        let _restore = Restore { key: self, value };
        Ok(f())
    }

    /// Calls `f` with a reference to the value.
    ///
    /// # Panics
    /// Outside a scope of this key; see [`try_with`](LocalKey::try_with).
    ///
    /// ```
    /// uringo::task_local! {
    ///     static TAGS: Vec<&'static str>;
    /// }
    ///
    /// let n = TAGS.sync_scope(vec!["a", "b"], || TAGS.with(|tags| tags.len()));
    /// assert_eq!(n, 2);
    /// ```
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(res) => res,
            Err(_) => panic!("cannot access a task-local value outside a scope that sets it"),
        }
    }

    /// Calls `f` with a reference to the value, or fails if no scope of this key is
    /// running on this thread.
    ///
    /// ```
    /// uringo::task_local! {
    ///     static TRACE_ID: u64;
    /// }
    ///
    /// assert!(TRACE_ID.try_with(|id| *id).is_err());
    /// assert_eq!(TRACE_ID.sync_scope(9, || TRACE_ID.try_with(|id| *id)), Ok(9));
    /// ```
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        match self.slot.try_with(|slot| slot.borrow().as_ref().map(f)) {
            Ok(Some(res)) => Ok(res),
            Ok(None) | Err(_) => Err(AccessError(())),
        }
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A clone of the value (a copy, for `Copy` types).
    ///
    /// # Panics
    /// Outside a scope of this key; see [`try_get`](LocalKey::try_get).
    ///
    /// ```
    /// uringo::task_local! {
    ///     static ATTEMPT: u32;
    /// }
    ///
    /// assert_eq!(ATTEMPT.sync_scope(2, || ATTEMPT.get()), 2);
    /// ```
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(T::clone)
    }

    /// A clone of the value, or an error outside a scope of this key.
    ///
    /// ```
    /// uringo::task_local! {
    ///     static ATTEMPT: u32;
    /// }
    ///
    /// assert!(ATTEMPT.try_get().is_err());
    /// assert_eq!(ATTEMPT.sync_scope(2, || ATTEMPT.try_get()), Ok(2));
    /// ```
    pub fn try_get(&'static self) -> Result<T, AccessError> {
        self.try_with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

pin_project_lite::pin_project! {
    /// A future run with a task-local value set: made by
    /// [`LocalKey::scope`](crate::task::LocalKey::scope).
    ///
    /// ```
    /// uringo::task_local! {
    ///     static KEY: u8;
    /// }
    ///
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let scoped: uringo::task::futures::TaskLocalFuture<u8, _> =
    ///         KEY.scope(1, async { KEY.get() });
    ///     assert_eq!(scoped.await, 1);
    /// });
    /// ```
    pub struct TaskLocalFuture<T, F>
    where
        T: 'static,
    {
        key: &'static LocalKey<T>,
        value: Option<T>,
        #[pin]
        future: Option<F>,
    }

    impl<T: 'static, F> PinnedDrop for TaskLocalFuture<T, F> {
        fn drop(this: Pin<&mut Self>) {
            // A future dropped before it finished (an aborted task, a lost `select!`
            // branch) is dropped inside the scope, so its destructors see the value.
            let this = this.project();
            if mem::needs_drop::<F>() && this.future.is_some() {
                let mut future = this.future;
                let _ = this.key.enter(this.value, || future.set(None));
            }
        }
    }
}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    /// Takes the value out of the scope: after the future finished, to get back a value
    /// that code in the scope changed (through interior mutability, say). Taken earlier,
    /// the rest of the future runs without it.
    ///
    /// ```
    /// uringo::task_local! {
    ///     static HITS: std::cell::Cell<u32>;
    /// }
    ///
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut scoped = std::pin::pin!(HITS.scope(Default::default(), async {
    ///         HITS.with(|hits| hits.set(hits.get() + 1));
    ///     }));
    ///     scoped.as_mut().await;
    ///     assert_eq!(scoped.take_value().unwrap().get(), 1);
    /// });
    /// ```
    pub fn take_value(self: Pin<&mut Self>) -> Option<T> {
        self.project().value.take()
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut future = this.future;
        let polled = this.key.enter(this.value, || {
            let poll = future
                .as_mut()
                .as_pin_mut()
                .expect("`TaskLocalFuture` polled after it finished")
                .poll(cx);
            if poll.is_ready() {
                // Dropped inside the scope, like an unfinished one (see `drop`).
                future.set(None);
            }
            poll
        });
        match polled {
            Ok(poll) => poll,
            Err(err) => err.panic(),
        }
    }
}

impl<T: fmt::Debug + 'static, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

/// A task-local value was read outside a scope that sets it: returned by
/// [`LocalKey::try_with`] and [`LocalKey::try_get`].
///
/// ```
/// uringo::task_local! {
///     static KEY: u8;
/// }
///
/// let err: uringo::task::AccessError = KEY.try_get().unwrap_err();
/// assert_eq!(err.to_string(), "task-local value not set");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessError(());

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("task-local value not set")
    }
}

impl std::error::Error for AccessError {}

/// Why a scope could not be entered; a bug in the caller, so it panics.
enum ScopeError {
    /// Inside `with` on the same key.
    Borrowed,
    /// The thread is exiting and its thread-locals are gone.
    Destroyed,
}

impl ScopeError {
    #[track_caller]
    fn panic(self) -> ! {
        match self {
            ScopeError::Borrowed => {
                panic!("cannot enter a task-local scope inside `LocalKey::with` on the same key")
            }
            ScopeError::Destroyed => panic!(
                "cannot enter a task-local scope while the thread's thread-locals are destroyed"
            ),
        }
    }
}
