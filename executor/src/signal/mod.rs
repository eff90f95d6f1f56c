//! Unix signals as something a task awaits: [`ctrl_c`], [`signal`].
//!
//! ```no_run
//! use uringo::signal::{signal, SignalKind};
//!
//! #[uringo::main]
//! async fn main() -> std::io::Result<()> {
//!     let mut terminate = signal(SignalKind::terminate())?;
//!     let mut hangup = signal(SignalKind::hangup())?;
//!     uringo::spawn(async move {
//!         while hangup.recv().await.is_some() {
//!             println!("reloading the configuration");
//!         }
//!     });
//!     terminate.recv().await;
//!     println!("shutting down");
//!     Ok(())
//! }
//! ```
//!
//! Every receiver in the process, whatever runtime (or none) polls it, is served by one
//! path: a `signal-hook-registry` action per signal and one thread that wakes the
//! receivers; the task dump of
//! [`Builder::dump_on_signal`](crate::Builder::dump_on_signal) rides the same path.
//! No worker thread waits for a signal, so receivers work from `block_on`, from tasks on
//! any worker and across runtimes, and a delivery reaches each of them.
//!
//! Listening replaces the signal's default action (for `SIGINT` and `SIGTERM`,
//! terminating the process) for the rest of the process's life, as with tokio: a signal
//! nobody listens for any more is swallowed. A handler the process had before is still
//! called, first.

mod dispatch;
pub(crate) mod kind;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

#[cfg(not(loom))]
pub(crate) use dispatch::add_hook;
pub use kind::SignalKind;

/// Listens for `kind` from now on. Deliveries coalesce: a signal that arrives several
/// times before the receiver looks counts once, and a receiver sees at least one
/// delivery for any signal that arrived after it was created.
///
/// # Errors
/// `InvalidInput` for a signal that cannot be caught or must not be: not a signal
/// number, `SIGKILL`, `SIGSTOP`, the fault signals (`SIGSEGV`, `SIGBUS`, `SIGFPE`,
/// `SIGILL`, `SIGTRAP`, `SIGSYS`, `SIGABRT`: a handler that returns would hide the
/// crash) and the real-time signals the C library keeps for itself. Otherwise, the
/// error of creating the eventfd, the thread or the handler, the first time.
///
/// ```
/// use uringo::signal::{signal, SignalKind};
///
/// # uringo::Runtime::new()?.block_on(async {
/// let mut user1 = signal(SignalKind::user_defined1())?;
/// nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGUSR1)?;
/// assert_eq!(user1.recv().await, Some(()));
///
/// let refused = signal(SignalKind::from_raw(libc::SIGKILL)).unwrap_err();
/// assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signum = kind::check(kind.as_raw_value(), "be listened for")?;
    Ok(Signal {
        kind,
        registration: dispatch::Registration::new(signum)?,
    })
}

/// Listens for `SIGINT` (Ctrl-C) from now on: [`signal`] with
/// [`SignalKind::interrupt`].
///
/// ```no_run
/// # uringo::Runtime::new()?.block_on(async {
/// let mut ctrl_c = uringo::signal::ctrl_c()?;
/// ctrl_c.recv().await;
/// println!("interrupted");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn ctrl_c() -> io::Result<Signal> {
    signal(SignalKind::interrupt())
}

/// The deliveries of one signal, from [`signal`] or [`ctrl_c`]. Dropping it stops
/// listening (the process-wide handler stays; see the [module docs](self)).
///
/// ```
/// use uringo::signal::{signal, SignalKind};
///
/// # uringo::Runtime::new()?.block_on(async {
/// let mut user2 = signal(SignalKind::user_defined2())?;
/// let waiter = uringo::spawn(async move { user2.recv().await });
/// nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGUSR2)?;
/// assert_eq!(waiter.await.unwrap(), Some(()));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Signal {
    kind: SignalKind,
    registration: dispatch::Registration,
}

impl Signal {
    /// Waits for the next delivery. Never `None`: the process-wide handler, once
    /// installed, lives as long as the process (the `Option` is tokio's shape, for code
    /// that ends a loop on it).
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery, for hand-written futures and `Stream` adapters.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.registration.poll_delivery(cx.waker()) {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }

    /// The signal this receiver listens for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}
