//! Accepting connections: one multishot accept per listener, shared by every task that
//! accepts on it, an optional limit on connections accepted but not yet claimed, and
//! back-off when the process runs out of file descriptors.
//!
//! A multishot accept (5.19+) is one SQE that yields a CQE per connection, so a busy
//! listener costs no SQE per accept. Its stream is armed on the ring of the worker that
//! first polls it and re-armed (on whichever worker polls next) when the kernel ends it,
//! which it does after any error. The stream belongs to the listener, not to one ring:
//! a task that accepts may be stolen to another worker between two accepts, and a
//! per-ring stream would strand connections on the ring it left. Servers that want
//! accepts spread over rings bind one `SO_REUSEPORT` listener per worker.
//!
//! Each CQE wakes the acceptor itself, which moves the connection from the stream into
//! its own queue (the *accept backlog*: accepted by the kernel, not yet claimed by an
//! `accept`) and wakes every task waiting on the listener; the first to look takes the
//! connection and the others wait again. A task that stops waiting (its future dropped)
//! leaves a stale waker that costs one spurious wake. Counting at the CQE, on the ring's
//! owner, is what lets a limit act while nobody accepts: once the queue holds `limit`
//! connections the multishot is cancelled, and later connections wait in the kernel's
//! listen backlog (clients see a slow accept, not a reset). An `accept` that leaves the
//! queue below the limit arms a new one. The kernel accepts in batches — every
//! connection its backlog holds when it runs the accept — so the queue can pass the
//! limit by one batch.
//!
//! `backlog.rs` holds that queue and the stream.
//!
//! `EMFILE`/`ENFILE` (out of fds) and `ENOBUFS`/`ENOMEM` are not the listener's fault:
//! the connection stays in the backlog, so the acceptor logs a warning, sleeps (10 ms
//! doubling to 1 s) and tries again, and the listener keeps serving once fds are freed.
//! `ECONNABORTED` (the peer gave up while queued) is skipped.

mod backlog;

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::socket::SharedFd;
use crate::runtime::coop;
use crate::time::Sleep;
use backlog::Backlog;

const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The accept side of a listening socket (TCP or Unix).
pub(crate) struct Acceptor {
    backlog: Arc<Backlog>,
}

/// Back-off state of one accepting caller (an `accept()` call or an `Incoming` stream).
#[derive(Default)]
pub(crate) struct Backoff {
    sleep: Option<Pin<Box<Sleep>>>,
    delay: Option<Duration>,
}

impl Acceptor {
    /// Accepts on listening socket `fd`, with no limit.
    pub(crate) fn new(fd: SharedFd) -> Acceptor {
        Acceptor {
            backlog: Backlog::new(fd),
        }
    }

    /// Caps the connections accepted but not yet claimed (`None`: no cap; 0 counts as 1).
    pub(crate) fn set_backlog_limit(&self, limit: Option<usize>) {
        self.backlog
            .set_limit(limit.map_or(usize::MAX, |n| n.max(1)));
    }

    /// The cap set by [`set_backlog_limit`](Self::set_backlog_limit).
    pub(crate) fn backlog_limit(&self) -> Option<usize> {
        Some(self.backlog.limit()).filter(|&n| n != usize::MAX)
    }

    /// Connections accepted but not yet claimed.
    pub(crate) fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Stops the multishot accept for good; what it already accepted stays claimable.
    pub(crate) fn stop(&self) {
        self.backlog.stop();
    }

    /// Waits for a connection, backing off on fd exhaustion (see the module doc).
    /// `None` once [`stop`](Self::stop) was called and every connection accepted before
    /// it was claimed.
    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
        backoff: &mut Backoff,
    ) -> Poll<Option<io::Result<OwnedFd>>> {
        loop {
            if let Some(sleep) = &mut backoff.sleep {
                std::task::ready!(sleep.as_mut().poll(cx));
                backoff.sleep = None;
            }
            let coop = std::task::ready!(coop::poll_proceed(cx));
            let Some(result) = std::task::ready!(self.backlog.poll_claim(cx)) else {
                return Poll::Ready(None);
            };
            coop.made_progress();
            match result {
                Ok(fd) => {
                    backoff.delay = None;
                    return Poll::Ready(Some(Ok(fd)));
                }
                Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(err) if is_exhaustion(&err) => {
                    let delay = backoff
                        .delay
                        .map_or(BACKOFF_FIRST, |d| (d * 2).min(BACKOFF_MAX));
                    backoff.delay = Some(delay);
                    tracing::warn!(
                        fd = self.backlog.fd(),
                        error = %err,
                        retry_in_ms = delay.as_millis() as u64,
                        "accept failed for lack of resources; backing off, the listener stays open"
                    );
                    backoff.sleep = Some(Box::pin(crate::time::sleep(delay)));
                }
                Err(err) => return Poll::Ready(Some(Err(err))),
            }
        }
    }
}

/// What `accept` returns on a listener that stopped accepting, once drained.
pub(crate) fn stopped() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the listener stopped accepting (stop_accepting)",
    )
}

fn is_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
