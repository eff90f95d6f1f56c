//! A TCP socket not yet listening or connected, for setting options first.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{TcpListener, TcpStream};
use crate::net::socket;

/// A TCP socket to configure before it listens or connects (tokio's `TcpSocket`).
///
/// `SO_REUSEPORT` lets several listeners share one port: a proxy binds one per worker
/// and the kernel spreads connections over them.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let addr = "127.0.0.1:0".parse().unwrap();
///     let socket = uringo::net::TcpSocket::new_v4().unwrap();
///     socket.set_reuseport(true).unwrap();
///     socket.bind(addr).unwrap();
///     let listener = socket.listen(4096).unwrap();
///     assert_ne!(listener.local_addr().unwrap().port(), 0);
/// });
/// ```
pub struct TcpSocket {
    fd: OwnedFd,
}

impl TcpSocket {
    /// A new IPv4 TCP socket.
    pub fn new_v4() -> io::Result<TcpSocket> {
        socket::new_socket(libc::AF_INET, libc::SOCK_STREAM).map(|fd| TcpSocket { fd })
    }

    /// A new IPv6 TCP socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        socket::new_socket(libc::AF_INET6, libc::SOCK_STREAM).map(|fd| TcpSocket { fd })
    }

    /// `SO_REUSEADDR`: bind to a port still in `TIME_WAIT`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, on)
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        socket::get_flag(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR)
    }

    /// `SO_REUSEPORT`: several sockets may bind the same address and port.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, on)
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        socket::get_flag(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT)
    }

    /// `TCP_NODELAY` for the connection this socket becomes.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, on)
    }

    /// `SO_KEEPALIVE`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, on)
    }

    /// `SO_SNDBUF`.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        let size = size.min(libc::c_int::MAX as u32) as libc::c_int;
        socket::set_opt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, size)
    }

    /// `SO_RCVBUF`.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        let size = size.min(libc::c_int::MAX as u32) as libc::c_int;
        socket::set_opt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, size)
    }

    /// `IPV6_V6ONLY` (IPv6 sockets only).
    pub fn set_only_v6(&self, on: bool) -> io::Result<()> {
        socket::set_flag(self.fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, on)
    }

    /// Binds to `addr`.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let addr = uringo_uring::op::SockAddr::from(addr);
        // SAFETY: `addr` holds a valid sockaddr of `addr.len()` bytes for the call.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                addr.as_ptr().cast(),
                addr.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.fd.as_fd())
    }

    /// Starts listening with room for `backlog` pending connections.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        socket::listen(self.fd.as_fd(), backlog)?;
        Ok(TcpListener::from(self.fd))
    }

    /// Connects to `addr` through the ring.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let fd = socket::connect(self.fd, addr.into()).await?;
        Ok(TcpStream::from(fd))
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<OwnedFd> for TcpSocket {
    fn from(fd: OwnedFd) -> TcpSocket {
        TcpSocket { fd }
    }
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}
