//! Accepting connections: one multishot accept per listener, shared by every task that
//! accepts on it, with back-off when the process runs out of file descriptors.
//!
//! A multishot accept (5.19+) is one SQE that yields a CQE per connection, so a busy
//! listener costs no SQE per accept. Its stream is armed on the ring of the worker that
//! first polls it and re-armed (on whichever worker polls next) when the kernel ends it,
//! which it does after any error. The stream belongs to the listener, not to one ring:
//! a task that accepts may be stolen to another worker between two accepts, and a
//! per-ring stream would strand connections on the ring it left. Servers that want
//! accepts spread over rings bind one `SO_REUSEPORT` listener per worker.
//!
//! The completion cell holds one waker. Several tasks may accept on one listener at
//! once, so the stream is polled with a fan-out waker that wakes every task waiting on
//! it; the first to poll takes the connection and the others wait again. A task that
//! stops waiting (its future dropped) leaves a stale waker that costs one spurious wake.
//!
//! `EMFILE`/`ENFILE` (out of fds) and `ENOBUFS`/`ENOMEM` are not the listener's fault:
//! the connection stays in the backlog, so the acceptor logs a warning, sleeps (10 ms
//! doubling to 1 s) and tries again, and the listener keeps serving once fds are freed.
//! `ECONNABORTED` (the peer gave up while queued) is skipped.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use uringo_uring::op::{AcceptMulti, Anchored};
use uringo_uring::Multishot;

use super::socket::SharedFd;
use crate::runtime::coop;
use crate::time::Sleep;

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The accept side of a listening socket (TCP or Unix).
pub(crate) struct Acceptor {
    /// The listening socket, anchored to each multishot accept (see `socket::SharedFd`).
    fd: SharedFd,
    state: Mutex<State>,
    waiters: Arc<Waiters>,
}

struct State {
    stream: Option<Multishot<Anchored<AcceptMulti, SharedFd>>>,
}

/// Wakers of every task waiting for a connection; woken all at once.
#[derive(Default)]
struct Waiters {
    list: Mutex<Vec<Waker>>,
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()));
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl Waiters {
    fn wake_all_but(&self, me: &Waker) {
        let wakers = std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers {
            if !waker.will_wake(me) {
                waker.wake();
            }
        }
    }

    fn register(&self, waker: &Waker) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

/// Back-off state of one accepting caller (an `accept()` call or an `Incoming` stream).
#[derive(Default)]
pub(crate) struct Backoff {
    sleep: Option<Pin<Box<Sleep>>>,
    delay: Option<Duration>,
}

impl Acceptor {
    /// Accepts on listening socket `fd`.
    pub(crate) fn new(fd: SharedFd) -> Acceptor {
        Acceptor {
            fd,
            state: Mutex::new(State { stream: None }),
            waiters: Arc::default(),
        }
    }

    /// Waits for a connection, backing off on fd exhaustion (see the module doc).
    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
        backoff: &mut Backoff,
    ) -> Poll<io::Result<OwnedFd>> {
        loop {
            if let Some(sleep) = &mut backoff.sleep {
                std::task::ready!(sleep.as_mut().poll(cx));
                backoff.sleep = None;
            }
            let coop = std::task::ready!(coop::poll_proceed(cx));
            let result = std::task::ready!(self.poll_once(cx));
            coop.made_progress();
            match result {
                Ok(fd) => {
                    backoff.delay = None;
                    return Poll::Ready(Ok(fd));
                }
                Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(err) if is_exhaustion(&err) => {
                    let delay = backoff
                        .delay
                        .map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX));
                    backoff.delay = Some(delay);
                    tracing::warn!(
                        fd = self.fd.as_raw_fd(),
                        error = %err,
                        retry_in_ms = delay.as_millis() as u64,
                        "accept failed for lack of resources; backing off, the listener stays open"
                    );
                    backoff.sleep = Some(Box::pin(crate::time::sleep(delay)));
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    fn poll_once(&self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        self.waiters.register(cx.waker());
        let fan_out = Waker::from(self.waiters.clone());
        let mut fan_out_cx = Context::from_waker(&fan_out);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let stream = state.stream.get_or_insert_with(|| {
                Anchored::multishot(AcceptMulti::op(self.fd.as_raw_fd()), self.fd.clone())
            });
            match stream.poll_next(&mut fan_out_cx) {
                Poll::Ready(Some(item)) => {
                    drop(state);
                    // Others waiting may have been passed over: let them look again.
                    self.waiters.wake_all_but(cx.waker());
                    return Poll::Ready(item);
                }
                // The kernel ended the multishot (after an error item, or cancelled):
                // arm a new one.
                Poll::Ready(None) => state.stream = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn is_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
