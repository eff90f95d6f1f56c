//! Unix-domain datagrams.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use std::sync::Arc;

use uringo_uring::op::SockAddr;
use uringo_uring::{IoBuf, IoBufMut};

use crate::net::socket;

/// A unix-domain datagram socket.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (a, b) = uringo::net::UnixDatagram::pair().unwrap();
///     let (res, _) = a.send(b"one datagram".to_vec()).await;
///     res.unwrap();
///     let (n, buf) = b.recv(Vec::with_capacity(64)).await;
///     assert_eq!(&buf[..n.unwrap()], b"one datagram");
/// });
/// ```
pub struct UnixDatagram {
    /// Shared with the ops in flight (see `socket::SharedFd`).
    inner: Arc<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to `path` (which must not exist).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::bind(path).map(UnixDatagram::from_std)
    }

    /// A socket bound to no address (it can send, and receive replies only if it
    /// connects or the peer knows it some other way).
    pub fn unbound() -> io::Result<UnixDatagram> {
        std::os::unix::net::UnixDatagram::unbound().map(UnixDatagram::from_std)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a), UnixDatagram::from_std(b)))
    }

    /// Wraps a std socket.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            inner: Arc::new(socket),
        }
    }

    /// Gives back the std socket (a `dup` of it if an op of a dropped future is still
    /// in flight).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        socket::unshare(self.inner)
    }

    /// Sets the default peer (completes at once: nothing is sent).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.inner.connect(path)
    }

    fn shared_fd(&self) -> socket::SharedFd {
        self.inner.clone()
    }

    /// Sends one datagram to the socket bound at `path`.
    pub async fn send_to<B: IoBuf>(
        &self,
        buf: B,
        path: impl AsRef<Path>,
    ) -> (io::Result<usize>, B) {
        let addr = match SockAddr::unix(path.as_ref()) {
            Ok(addr) => addr,
            Err(err) => return (Err(err), buf),
        };
        socket::send_to(&self.shared_fd(), buf, Some(addr)).await
    }

    /// Receives one datagram and the sender's address (empty when the sender is
    /// unbound: check [`SockAddr::as_unix_path`]).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> (io::Result<(usize, SockAddr)>, B) {
        socket::recv_from(&self.shared_fd(), buf).await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::write(self.shared_fd(), buf, None).await
    }

    /// Receives one datagram (truncated to the buffer's capacity).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::read(self.shared_fd(), buf).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        self.inner.peer_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for UnixDatagram {
    /// # Safety
    /// `fd` must be an open unix datagram socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixDatagram {
        // SAFETY: the caller's contract is exactly std's.
        UnixDatagram::from_std(unsafe { std::os::unix::net::UnixDatagram::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for UnixDatagram {
    fn from(fd: OwnedFd) -> UnixDatagram {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
