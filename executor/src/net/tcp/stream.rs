//! The TCP stream.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uringo_uring::{IoBuf, IoBufMut};

use super::TcpSocket;
use crate::net::split::{
    self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, Sealed as _, StreamSocket, WriteHalf,
};
use crate::net::{socket, ToSocketAddrs};

/// `zerocopy` is off.
const ZEROCOPY_OFF: usize = usize::MAX;

/// A TCP connection. Reads and writes take owned buffers and give them back.
///
/// Every method takes `&self`: each op owns its buffer, so a read and a write may be in
/// flight together, from one task or (after [`into_split`](Self::into_split)) from two.
/// Dropping an op's future cancels the op; the buffer is freed only once the kernel is
/// done with it, and the bytes that op moved are lost.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     uringo::spawn(async move {
///         let (stream, _) = listener.accept().await.unwrap();
///         let (n, buf) = stream.read(Vec::with_capacity(64)).await;
///         let (res, _) = stream.write_all(buf).await;
///         res.unwrap();
///         n.unwrap()
///     });
///     let stream = uringo::net::TcpStream::connect(addr).await.unwrap();
///     let (res, _) = stream.write_all(b"echo".to_vec()).await;
///     res.unwrap();
///     let (n, buf) = stream.read(Vec::with_capacity(64)).await;
///     assert_eq!(&buf[..n.unwrap()], b"echo");
/// });
/// ```
pub struct TcpStream {
    /// Shared with the ops in flight (see `socket::SharedFd`).
    inner: Arc<std::net::TcpStream>,
    zerocopy_from: AtomicUsize,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn, until one accepts).
    ///
    /// A host name in `addr` is resolved by [`lookup_host`](crate::net::lookup_host), on
    /// the blocking pool, so the worker goes on running tasks meanwhile.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_err = None;
        for addr in crate::net::lookup_host(addr).await? {
            let socket = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            match socket.connect(addr).await {
                Ok(stream) => return Ok(stream),
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

    /// Wraps a connected std socket (blocking or not: uringo never blocks on it).
    pub fn from_std(stream: std::net::TcpStream) -> TcpStream {
        TcpStream {
            inner: Arc::new(stream),
            zerocopy_from: AtomicUsize::new(ZEROCOPY_OFF),
        }
    }

    /// Gives back the std socket. If an op of a dropped future is still in flight, this
    /// is a `dup` of the socket (the original fd closes when that op completes), which
    /// can fail with `EMFILE`.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        socket::unshare(self.inner)
    }

    crate::net::split::read_methods!();
    crate::net::split::write_methods!();

    fn stream(&self) -> &Self {
        self
    }

    /// Sends `buf` with `SEND_ZC`: the kernel transmits from the buffer itself and the
    /// op completes (giving the buffer back) only when the NIC is done with it. Worth it
    /// for large buffers (tens of KiB and up); on kernels without `SEND_ZC` (< 6.0) it
    /// falls back to a copying send.
    pub async fn write_zc<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::send_zc(&self.shared_fd(), buf).await
    }

    /// Makes [`write`](Self::write) and [`write_all`](Self::write_all) use `SEND_ZC`
    /// for buffers of at least `min_len` bytes (`None`: never, the default).
    pub fn set_zerocopy_threshold(&self, min_len: Option<usize>) {
        self.zerocopy_from
            .store(min_len.unwrap_or(ZEROCOPY_OFF), Ordering::Relaxed);
    }

    /// Shuts down the read half, write half or both.
    pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        socket::shutdown(&self.shared_fd(), how)
    }

    /// Borrowed read and write halves, usable at once (for example in `join`).
    pub fn split(&self) -> (ReadHalf<'_, TcpStream>, WriteHalf<'_, TcpStream>) {
        split::split(self)
    }

    /// Owned halves that can move to different tasks. Dropping the write half shuts
    /// down the write direction; [`OwnedReadHalf::reunite`] puts them back together.
    ///
    /// ```
    /// # let rt = uringo::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// # let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # uringo::spawn(async move {
    /// #     let (s, _) = listener.accept().await.unwrap();
    /// #     let (n, b) = s.read(Vec::with_capacity(8)).await;
    /// #     let _ = s.write_all(b[..n.unwrap()].to_vec()).await;
    /// # });
    /// let stream = uringo::net::TcpStream::connect(addr).await.unwrap();
    /// let (reader, writer) = stream.into_split();
    /// let write = uringo::spawn(async move { writer.write_all(b"ping".to_vec()).await.0 });
    /// let (n, buf) = reader.read(Vec::with_capacity(8)).await;
    /// assert_eq!(&buf[..n.unwrap()], b"ping");
    /// write.await.unwrap().unwrap();
    /// # });
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>) {
        split::into_split(self)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Sets `SO_KEEPALIVE`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, on)
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        socket::get_flag(self.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE)
    }

    /// Sets `SO_LINGER` (`Some(Duration::ZERO)`: close sends a reset).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        socket::set_linger(self.as_fd(), linger)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        socket::linger(self.as_fd())
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Takes the socket's pending error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl split::Sealed for TcpStream {
    fn shared_fd(&self) -> socket::SharedFd {
        self.inner.clone()
    }
}

impl StreamSocket for TcpStream {
    fn zerocopy_threshold(&self) -> Option<usize> {
        let min = self.zerocopy_from.load(Ordering::Relaxed);
        (min != ZEROCOPY_OFF).then_some(min)
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for TcpStream {
    /// # Safety
    /// `fd` must be an open, connected TCP socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpStream {
        // SAFETY: the caller's contract is exactly std's.
        TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for TcpStream {
    fn from(fd: OwnedFd) -> TcpStream {
        TcpStream::from_std(std::net::TcpStream::from(fd))
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
