//! A stand-in for the `uringo` runtime API the macros target (`Builder::new()`,
//! `.worker_threads(n)`, `.build() -> io::Result<Runtime>`, `Runtime::block_on`), so the
//! expansion is compiled and run here without depending on the `uringo` crate.
//!
//! Include it with `extern crate self as uringo;` at the crate root and `pub use` its items
//! there, so that the macros' default path `::uringo::Builder` resolves to it.

// The stand-in mirrors the real API, which has `Builder::new()` and no `Default`.
#![allow(clippy::new_without_default)]

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

thread_local! {
    /// `worker_threads` of the last runtime built on this thread: `Some(None)` when it was
    /// not set, `None` when no runtime was built.
    static LAST_BUILD: Cell<Option<Option<usize>>> = const { Cell::new(None) };
    /// Which `Builder` built the last runtime on this thread.
    static LAST_BUILDER: Cell<&'static str> = const { Cell::new("") };
}

/// What the last `build()` on this thread was given; see `LAST_BUILD`.
pub fn last_build() -> Option<Option<usize>> {
    LAST_BUILD.with(Cell::get)
}

/// Which builder (`"mock"` or `"alt"`) built the last runtime on this thread.
pub fn last_builder() -> &'static str {
    LAST_BUILDER.with(Cell::get)
}

pub struct Builder {
    worker_threads: Option<usize>,
    name: &'static str,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::named("mock")
    }

    pub fn named(name: &'static str) -> Builder {
        LAST_BUILD.with(|c| c.set(None));
        Builder {
            worker_threads: None,
            name,
        }
    }

    pub fn worker_threads(mut self, n: usize) -> Builder {
        assert!(n > 0);
        self.worker_threads = Some(n);
        self
    }

    pub fn build(self) -> io::Result<Runtime> {
        LAST_BUILD.with(|c| c.set(Some(self.worker_threads)));
        LAST_BUILDER.with(|c| c.set(self.name));
        Ok(Runtime { _private: () })
    }
}

pub struct Runtime {
    _private: (),
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl Runtime {
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    }
}

/// Returns `Pending` once (waking itself from another thread), then `Ready`: makes the
/// expanded body really suspend.
pub async fn yield_via_thread() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        let waker = cx.waker().clone();
        thread::spawn(move || waker.wake());
        Poll::Pending
    })
    .await
}

/// A second runtime path, for `crate = "..."`.
pub mod alt {
    pub use super::Runtime;

    pub struct Builder(super::Builder);

    impl Builder {
        pub fn new() -> Builder {
            Builder(super::Builder::named("alt"))
        }

        pub fn worker_threads(self, n: usize) -> Builder {
            Builder(self.0.worker_threads(n))
        }

        pub fn build(self) -> std::io::Result<Runtime> {
            self.0.build()
        }
    }
}
