//! The unix-domain stream listener.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::UnixStream;
use crate::net::accept::{Acceptor, Backoff};
use crate::net::socket;
use crate::net::tcp::DEFAULT_BACKLOG;

/// A unix-domain stream server. Accepts work as for [`TcpListener`]: one multishot
/// accept per listener, back-off on fd exhaustion.
///
/// [`TcpListener`]: crate::net::TcpListener
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let path = std::env::temp_dir().join(format!("uringo-doc-{}.sock", std::process::id()));
///     let _ = std::fs::remove_file(&path);
///     let listener = uringo::net::UnixListener::bind(&path).unwrap();
///     let client = uringo::spawn({
///         let path = path.clone();
///         async move { uringo::net::UnixStream::connect(&path).await }
///     });
///     let (_server_side, _addr) = listener.accept().await.unwrap();
///     client.await.unwrap().unwrap();
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    // Dropped first: the multishot accept is cancelled before the socket closes.
    acceptor: Acceptor,
    inner: Arc<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds to `path` and listens with a backlog of 1024. The path must not exist.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let inner = std::os::unix::net::UnixListener::bind(path)?;
        socket::listen(inner.as_fd(), DEFAULT_BACKLOG)?;
        Ok(UnixListener::from_std(inner))
    }

    /// Wraps a listening std socket.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> UnixListener {
        let listener = Arc::new(listener);
        UnixListener {
            acceptor: Acceptor::new(listener.clone()),
            inner: listener,
        }
    }

    /// Gives back the std socket (a multishot accept in flight is cancelled).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let UnixListener { acceptor, inner } = self;
        drop(acceptor);
        socket::unshare(inner)
    }

    /// Accepts a connection, with the peer's address (usually unnamed).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut backoff = Backoff::default();
        poll_fn(|cx| self.poll_accept_inner(cx, &mut backoff))
            .await
            .unwrap_or_else(|| Err(crate::net::accept::stopped()))
    }

    fn poll_accept_inner(
        &self,
        cx: &mut Context<'_>,
        backoff: &mut Backoff,
    ) -> Poll<Option<io::Result<(UnixStream, SocketAddr)>>> {
        let Some(fd) = std::task::ready!(self.acceptor.poll_accept(cx, backoff)) else {
            return Poll::Ready(None);
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        let stream = UnixStream::from(fd);
        Poll::Ready(Some(stream.peer_addr().map(|addr| (stream, addr))))
    }

    /// A stream of incoming connections; it ends only after
    /// [`stop_accepting`](Self::stop_accepting), once drained.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming {
            listener: self,
            backoff: Backoff::default(),
        }
    }

    /// Stops taking connections off the socket without losing any: see
    /// [`TcpListener::stop_accepting`](crate::net::TcpListener::stop_accepting).
    pub fn stop_accepting(&self) {
        self.acceptor.stop();
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Connections as they arrive, from [`UnixListener::incoming`].
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
    backoff: Backoff,
}

impl UnixIncoming<'_> {
    /// The next connection; `None` once the listener stopped accepting and every
    /// connection it had accepted was taken.
    pub async fn next(&mut self) -> Option<io::Result<UnixStream>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next connection (keep the `UnixIncoming` alive between polls, it
    /// holds the back-off timer).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<UnixStream>>> {
        self.listener
            .poll_accept_inner(cx, &mut self.backoff)
            .map(|res| res.map(|res| res.map(|(stream, _)| stream)))
    }
}

impl fmt::Debug for UnixIncoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixIncoming")
            .field("listener", &self.listener)
            .finish()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for UnixListener {
    /// # Safety
    /// `fd` must be an open listening unix stream socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixListener {
        // SAFETY: the caller's contract is exactly std's.
        UnixListener::from_std(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for UnixListener {
    fn from(fd: OwnedFd) -> UnixListener {
        UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
