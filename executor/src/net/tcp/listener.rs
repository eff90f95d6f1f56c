//! The TCP listener.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{TcpSocket, TcpStream};
use crate::net::accept::{Acceptor, Backoff};
use crate::net::socket;

/// Listen backlog of [`TcpListener::bind`]: large enough that a burst of connects is
/// queued, not dropped (a dropped SYN costs the client a one-second retransmit).
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;

/// A TCP socket server, listening for connections.
///
/// Accepts are served by one multishot accept per listener (one SQE for any number of
/// connections). Running out of file descriptors does not stop the listener: `accept`
/// logs a warning, backs off and continues once fds are free. By default the kernel's
/// accepted connections are taken as they come, whether or not a task accepts; for
/// backpressure, cap them with
/// [`set_accept_backlog_limit`](Self::set_accept_backlog_limit).
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = uringo::spawn(async move { uringo::net::TcpStream::connect(addr).await });
///     let (_server_side, peer) = listener.accept().await.unwrap();
///     let client = client.await.unwrap().unwrap();
///     assert_eq!(peer, client.local_addr().unwrap());
/// });
/// ```
pub struct TcpListener {
    // Dropped first: the multishot accept is cancelled before the socket closes.
    acceptor: Acceptor,
    inner: Arc<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first resolved address that works) with `SO_REUSEADDR` and a
    /// backlog of 1024. For `SO_REUSEPORT` or another backlog, use [`TcpSocket`].
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let mut last_err = None;
        for addr in addr.to_socket_addrs()? {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            socket.set_reuseaddr(true)?;
            match socket
                .bind(addr)
                .and_then(|()| socket.listen(DEFAULT_BACKLOG))
            {
                Ok(listener) => return Ok(listener),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        }))
    }

    /// Wraps a listening std socket.
    pub fn from_std(listener: std::net::TcpListener) -> TcpListener {
        let listener = Arc::new(listener);
        TcpListener {
            acceptor: Acceptor::new(listener.clone()),
            inner: listener,
        }
    }

    /// Gives back the std socket. A multishot accept in flight is cancelled; connections
    /// it accepted that nobody took are closed.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let TcpListener { acceptor, inner } = self;
        drop(acceptor);
        socket::unshare(inner)
    }

    /// Accepts a connection; the peer's address comes with it.
    ///
    /// Dropping the future loses nothing: a connection accepted after that is handed to
    /// the next `accept` on this listener.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = Backoff::default();
        poll_fn(|cx| self.poll_accept_inner(cx, &mut backoff))
            .await
            .unwrap_or_else(|| Err(crate::net::accept::stopped()))
    }

    fn poll_accept_inner(
        &self,
        cx: &mut Context<'_>,
        backoff: &mut Backoff,
    ) -> Poll<Option<io::Result<(TcpStream, SocketAddr)>>> {
        let Some(fd) = std::task::ready!(self.acceptor.poll_accept(cx, backoff)) else {
            return Poll::Ready(None);
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        let stream = TcpStream::from_std(std::net::TcpStream::from(fd));
        // Multishot accept does not return the address; getpeername is a cheap syscall.
        // It fails (ENOTCONN) only if the peer already reset: report that connection's
        // error, the listener is fine.
        Poll::Ready(Some(stream.peer_addr().map(|addr| (stream, addr))))
    }

    /// A stream of incoming connections: `while let Some(conn) = incoming.next().await`.
    /// It ends (`None`) only after [`stop_accepting`](Self::stop_accepting), once the
    /// connections accepted before it are taken.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            backoff: Backoff::default(),
        }
    }

    /// Caps the connections accepted by the kernel but not yet claimed by
    /// [`accept`](Self::accept) (`None`, the default: no cap; `Some(0)` counts as 1).
    ///
    /// A multishot accept keeps taking connections off the kernel's listen backlog
    /// whether or not a task accepts them, so an overloaded server would hold any number
    /// of connections it cannot serve yet. With a cap, the multishot accept is cancelled
    /// once `limit` connections wait unclaimed: later ones wait in the kernel's listen
    /// backlog, and once that is full the kernel drops new SYNs, which clients retry —
    /// TCP's own backpressure. The `accept` that leaves fewer than `limit` waiting arms a
    /// new multishot accept. The kernel accepts in batches (every connection in its
    /// backlog at once), so the count can pass `limit` by one batch, at most the listen
    /// backlog ([`TcpSocket::listen`] sets a smaller one). A cap below the connections
    /// already waiting cancels the multishot accept at once (the cancel reaches the kernel
    /// with its ring's next `io_uring_enter`); a higher one re-arms it at the next
    /// `accept`.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     listener.set_accept_backlog_limit(Some(64));
    ///     assert_eq!(listener.accept_backlog_limit(), Some(64));
    ///     let addr = listener.local_addr().unwrap();
    ///     let client = std::net::TcpStream::connect(addr).unwrap();
    ///     let (_server_side, peer) = listener.accept().await.unwrap();
    ///     assert_eq!(peer, client.local_addr().unwrap());
    ///     assert_eq!(listener.accept_backlog_len(), 0);
    /// });
    /// ```
    pub fn set_accept_backlog_limit(&self, limit: Option<usize>) {
        self.acceptor.set_backlog_limit(limit);
    }

    /// The cap set by [`set_accept_backlog_limit`](Self::set_accept_backlog_limit).
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let listener = uringo::net::TcpListener::from_std(listener);
    /// assert_eq!(listener.accept_backlog_limit(), None);
    /// ```
    pub fn accept_backlog_limit(&self) -> Option<usize> {
        self.acceptor.backlog_limit()
    }

    /// Connections accepted by the kernel that no [`accept`](Self::accept) has claimed
    /// yet (the listen backlog inside the kernel is not counted).
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     assert_eq!(listener.accept_backlog_len(), 0);
    /// });
    /// ```
    pub fn accept_backlog_len(&self) -> usize {
        self.acceptor.backlog_len()
    }

    /// Stops taking connections off the socket, for good, without losing any.
    ///
    /// The listener's multishot accept is cancelled; connections the kernel had already
    /// handed to it are still returned by [`accept`](Self::accept) and
    /// [`incoming`](Self::incoming), and after them `accept` fails with
    /// [`io::ErrorKind::InvalidInput`] (as `accept(2)` does on a socket that is not
    /// listening) and `incoming` ends. Connections that arrive later
    /// wait in the socket's listen queue, for whoever else holds the socket: this is the
    /// old process's half of a zero-downtime restart, where the listening socket was
    /// handed to a successor (over `SCM_RIGHTS`) that accepts on it now. Dropping the
    /// listener instead would close every connection accepted but not yet claimed.
    ///
    /// ```
    /// use uringo::net::TcpListener;
    ///
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let _early = std::net::TcpStream::connect(addr).unwrap();
    ///     let (_conn, _) = listener.accept().await.unwrap();
    ///     listener.stop_accepting();
    ///     // Nothing more was accepted: the listener says so instead of waiting forever.
    ///     let err = listener.accept().await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// });
    /// ```
    pub fn stop_accepting(&self) {
        self.acceptor.stop();
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Takes the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

/// Connections as they arrive, from [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    backoff: Backoff,
}

impl Incoming<'_> {
    /// The next connection; `None` once the listener stopped accepting and every
    /// connection it had accepted was taken (see [`TcpListener::stop_accepting`]).
    pub async fn next(&mut self) -> Option<io::Result<TcpStream>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next connection (for hand-written futures and `Stream`
    /// adapters; keep the `Incoming` alive between polls, it holds the back-off timer).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<TcpStream>>> {
        self.listener
            .poll_accept_inner(cx, &mut self.backoff)
            .map(|res| res.map(|res| res.map(|(stream, _)| stream)))
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .finish()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for TcpListener {
    /// # Safety
    /// `fd` must be an open listening TCP socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpListener {
        // SAFETY: the caller's contract is exactly std's.
        TcpListener::from_std(unsafe { std::net::TcpListener::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for TcpListener {
    fn from(fd: OwnedFd) -> TcpListener {
        TcpListener::from_std(std::net::TcpListener::from(fd))
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
