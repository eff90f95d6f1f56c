//! The unix-domain stream.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use uringo_uring::op::SockAddr;
use uringo_uring::{IoBuf, IoBufMut};

use crate::net::socket;
use crate::net::split::{
    self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, Sealed as _, StreamSocket, WriteHalf,
};

/// A unix-domain stream connection, with the same owned-buffer methods as
/// [`TcpStream`](crate::net::TcpStream).
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (a, b) = uringo::net::UnixStream::pair().unwrap();
///     let (res, _) = a.write_all(b"over the socket".to_vec()).await;
///     res.unwrap();
///     let (res, buf) = b.read_exact(Vec::with_capacity(15)).await;
///     res.unwrap();
///     assert_eq!(buf, b"over the socket");
/// });
/// ```
pub struct UnixStream {
    /// Shared with the ops in flight (see `socket::SharedFd`).
    inner: Arc<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path` through the ring.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path.as_ref())?;
        let fd = socket::new_socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        Ok(UnixStream::from(socket::connect(fd, addr).await?))
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a), UnixStream::from_std(b)))
    }

    /// Wraps a connected std socket.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream {
            inner: Arc::new(stream),
        }
    }

    /// Gives back the std socket (a `dup` of it if an op of a dropped future is still
    /// in flight, as for [`TcpStream::into_std`](crate::net::TcpStream::into_std)).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        socket::unshare(self.inner)
    }

    fn stream(&self) -> &Self {
        self
    }

    split::read_methods!();
    split::write_methods!();

    /// Shuts down the read half, write half or both.
    pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        socket::shutdown(&self.shared_fd(), how)
    }

    /// Borrowed read and write halves, usable at once.
    pub fn split(&self) -> (ReadHalf<'_, UnixStream>, WriteHalf<'_, UnixStream>) {
        split::split(self)
    }

    /// Owned halves that can move to different tasks (see
    /// [`TcpStream::into_split`](crate::net::TcpStream::into_split)).
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        split::into_split(self)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Takes the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl split::Sealed for UnixStream {
    fn shared_fd(&self) -> socket::SharedFd {
        self.inner.clone()
    }
}

impl StreamSocket for UnixStream {
    fn zerocopy_threshold(&self) -> Option<usize> {
        // SEND_ZC is for network devices; unix sockets copy anyway.
        None
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for UnixStream {
    /// # Safety
    /// `fd` must be an open, connected unix stream socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixStream {
        // SAFETY: the caller's contract is exactly std's.
        UnixStream::from_std(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for UnixStream {
    fn from(fd: OwnedFd) -> UnixStream {
        UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
