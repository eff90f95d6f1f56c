//! TCP listener and stream.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use uringo_uring::op::{Accept, Connect, Recv, Send, Shutdown};
use uringo_uring::{IoBuf, IoBufMut, Op};

use crate::runtime::coop::Coop;

/// Listen backlog: large enough that a burst of connects is queued, not dropped (a
/// dropped SYN costs the client a one-second retransmit).
const BACKLOG: libc::c_int = 1024;

/// A TCP socket server, listening for connections.
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
    inner: std::net::TcpListener,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works) and listens with a backlog of
    /// 1024. `SO_REUSEADDR` is set.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let inner = std::net::TcpListener::bind(addr)?;
        // SAFETY: listen(2) on a socket we own; calling it again only raises the backlog.
        if unsafe { libc::listen(inner.as_raw_fd(), BACKLOG) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpListener { inner })
    }

    /// Wraps a listening std socket.
    pub fn from_std(listener: std::net::TcpListener) -> TcpListener {
        TcpListener { inner: listener }
    }

    /// Accepts a connection.
    ///
    /// Errors are returned as they come, including `EMFILE`/`ENFILE` when the process
    /// is out of fds: the listener stays usable, and a server should back off briefly
    /// and accept again rather than stop serving.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = Coop::new(Op::new(Accept::new(self.inner.as_raw_fd()))).await?;
        let stream = TcpStream::from_owned_fd(fd);
        let addr = match addr.as_socket() {
            Some(addr) => addr,
            None => stream.peer_addr()?,
        };
        Ok((stream, addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
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

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// A TCP connection. Reads and writes take owned buffers and give them back.
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
    inner: std::net::TcpStream,
}

impl TcpStream {
    /// Connects to `addr` (each resolved address in turn, until one accepts).
    ///
    /// Name resolution, if `addr` is a host name, is done on the calling thread by the
    /// system resolver; pass a `SocketAddr` to avoid it.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_err = None;
        for addr in addr.to_socket_addrs()? {
            match Self::connect_addr(addr).await {
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

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: socket(2) returns a fresh fd or -1.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Coop::new(Op::new(Connect::new(fd.as_raw_fd(), addr))).await?;
        Ok(TcpStream::from_owned_fd(fd))
    }

    fn from_owned_fd(fd: OwnedFd) -> TcpStream {
        TcpStream {
            inner: std::net::TcpStream::from(fd),
        }
    }

    /// Wraps a connected std socket.
    pub fn from_std(stream: std::net::TcpStream) -> TcpStream {
        TcpStream { inner: stream }
    }

    /// Reads into `buf` (from its start, up to its capacity). `Ok(0)` is end of stream.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        Coop::new(Op::new(Recv::new(self.inner.as_raw_fd(), buf))).await
    }

    /// Writes some of `buf`'s initialized bytes; returns how many.
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        Coop::new(Op::new(Send::new(self.inner.as_raw_fd(), buf))).await
    }

    /// Writes all of `buf`'s initialized bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut written = 0;
        let mut buf = buf;
        while written < total {
            let (res, slice) = self.write(buf.slice(written..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let err =
                        io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer");
                    return (Err(err), buf);
                }
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return (Err(err), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Shuts down the read half, write half or both.
    pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        Coop::new(Op::new(Shutdown::new(self.inner.as_raw_fd(), how))).await
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

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
