//! UDP.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use std::sync::Arc;

use uringo_uring::op::SockAddr;
use uringo_uring::{IoBuf, IoBufMut};

use super::socket;

/// A UDP socket. Datagrams go in and out of owned buffers, through the ring.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let a = uringo::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = uringo::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let (res, _) = a.send_to(b"hello".to_vec(), b.local_addr().unwrap()).await;
///     res.unwrap();
///     let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
///     let (n, from) = res.unwrap();
///     assert_eq!(&buf[..n], b"hello");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
pub struct UdpSocket {
    /// Shared with the ops in flight (see `socket::SharedFd`).
    inner: Arc<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (the first resolved address that works).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        std::net::UdpSocket::bind(addr).map(UdpSocket::from_std)
    }

    /// Wraps a std socket.
    pub fn from_std(socket: std::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            inner: Arc::new(socket),
        }
    }

    /// Gives back the std socket (a `dup` of it if an op of a dropped future is still
    /// in flight).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        socket::unshare(self.inner)
    }

    /// Sets the default peer: `send` goes there and `recv` only takes its datagrams.
    /// (A UDP connect sends nothing, so it completes at once.)
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.connect(addr)
    }

    /// Sends one datagram to `target`; returns the bytes sent.
    pub async fn send_to<B: IoBuf>(&self, buf: B, target: SocketAddr) -> (io::Result<usize>, B) {
        socket::send_to(&self.shared_fd(), buf, Some(SockAddr::from(target))).await
    }

    /// Receives one datagram and its sender. A datagram longer than the buffer's
    /// capacity is truncated (the rest is discarded, as with `recvfrom`).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> (io::Result<(usize, SocketAddr)>, B) {
        let (res, buf) = socket::recv_from(&self.shared_fd(), buf).await;
        let res = res.and_then(|(n, addr)| {
            let addr = addr.as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
            })?;
            Ok((n, addr))
        });
        (res, buf)
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::write(self.shared_fd(), buf, None).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::read(self.shared_fd(), buf).await
    }

    /// Receives the next datagram without taking it off the queue.
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        socket::peek(self.shared_fd(), buf).await
    }

    fn shared_fd(&self) -> socket::SharedFd {
        self.inner.clone()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.inner.broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.ttl()
    }

    /// Joins an IPv4 multicast group on `interface`.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.inner.join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.inner.leave_multicast_v4(&group, &interface)
    }

    /// Joins an IPv6 multicast group on interface index `interface`.
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.inner.leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.inner.set_multicast_loop_v4(on)
    }

    /// Takes the socket's pending error (`SO_ERROR`), e.g. an ICMP port unreachable.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for UdpSocket {
    /// # Safety
    /// `fd` must be an open UDP socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> UdpSocket {
        // SAFETY: the caller's contract is exactly std's.
        UdpSocket::from_std(unsafe { std::net::UdpSocket::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for UdpSocket {
    fn from(fd: OwnedFd) -> UdpSocket {
        UdpSocket::from_std(std::net::UdpSocket::from(fd))
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
