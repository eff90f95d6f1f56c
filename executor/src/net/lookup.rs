//! Name resolution off the workers: [`lookup_host`] and the [`ToSocketAddrs`] it takes.
//!
//! The system resolver (`getaddrinfo`) blocks, for as long as DNS takes. On a worker
//! that would stall its ring and every task queued behind it, so a host name is resolved
//! on the blocking pool; an address literal needs no resolver and is parsed in place.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::vec;

/// What [`lookup_host`] and [`TcpStream::connect`](super::TcpStream::connect) take: a
/// socket address, a slice of them, an `(ip, port)` pair, or text — `"host:port"`,
/// `("host", port)` — whose host may be a name. Implemented for the same types as std's
/// `ToSocketAddrs` (sealed: the resolution it describes is uringo's business).
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use uringo::net::{lookup_host, ToSocketAddrs};
///
/// async fn first(addr: impl ToSocketAddrs) -> Option<SocketAddr> {
///     lookup_host(addr).await.ok()?.next()
/// }
///
/// # uringo::Runtime::new()?.block_on(async {
/// let ip = SocketAddr::from((Ipv4Addr::LOCALHOST, 80));
/// assert_eq!(first("127.0.0.1:80").await, Some(ip));
/// assert_eq!(first((Ipv4Addr::LOCALHOST, 80)).await, Some(ip));
/// assert_eq!(first(&[ip][..]).await, Some(ip));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

mod sealed {
    use std::io;
    use std::net::SocketAddr;

    pub trait ToSocketAddrsPriv {
        fn query(&self) -> Query;
    }

    /// What a [`super::ToSocketAddrs`] needs to become addresses.
    #[derive(Debug)]
    pub enum Query {
        /// Literals: resolved already.
        Done(io::Result<Vec<SocketAddr>>),
        /// Text with a host name: for the resolver, on the blocking pool.
        Host(String),
        HostPort(String, u16),
    }
}

use sealed::Query;

/// Resolves `host` to its socket addresses, like std's `ToSocketAddrs` but without
/// blocking the worker: a host name goes to the system resolver on the blocking pool
/// ([`spawn_blocking`](crate::spawn_blocking)); an address literal is parsed in place.
///
/// # Errors
/// What the resolver reports for a name it cannot resolve, or `InvalidInput` for text
/// that is no `host:port`.
///
/// # Panics
/// Outside a uringo runtime, when `host` is a name (it needs the blocking pool).
///
/// ```
/// # uringo::Runtime::new()?.block_on(async {
/// let listener = uringo::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let addrs: Vec<_> = uringo::net::lookup_host(("localhost", port)).await?.collect();
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == port));
///
/// let literal = uringo::net::lookup_host("[::1]:443").await?.next();
/// assert_eq!(literal, Some("[::1]:443".parse().unwrap()));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<impl Iterator<Item = SocketAddr>> {
    let addrs: io::Result<Vec<SocketAddr>> = match host.query() {
        Query::Done(addrs) => addrs,
        Query::Host(text) => {
            resolve(move || std::net::ToSocketAddrs::to_socket_addrs(text.as_str())).await
        }
        Query::HostPort(host, port) => {
            resolve(move || std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))).await
        }
    };
    addrs.map(Vec::into_iter)
}

async fn resolve(
    f: impl FnOnce() -> io::Result<vec::IntoIter<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    match crate::spawn_blocking(move || f().map(Iterator::collect)).await {
        Ok(addrs) => addrs,
        Err(err) => Err(io::Error::other(format!("name resolution failed: {err}"))),
    }
}

/// Literal addresses: std resolves them without the resolver.
fn literal(addr: impl std::net::ToSocketAddrs) -> Query {
    Query::Done(addr.to_socket_addrs().map(Iterator::collect))
}

macro_rules! literal_impls {
    ($($ty:ty),* $(,)?) => {$(
        impl ToSocketAddrs for $ty {}
        impl sealed::ToSocketAddrsPriv for $ty {
            fn query(&self) -> Query {
                literal(*self)
            }
        }
    )*};
}

literal_impls!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    &[SocketAddr],
);

impl ToSocketAddrs for str {}
impl sealed::ToSocketAddrsPriv for str {
    fn query(&self) -> Query {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Query::Done(Ok(vec![addr])),
            Err(_) => Query::Host(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {}
impl sealed::ToSocketAddrsPriv for String {
    fn query(&self) -> Query {
        self.as_str().query()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl sealed::ToSocketAddrsPriv for (&str, u16) {
    fn query(&self) -> Query {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Query::Done(Ok(vec![SocketAddr::new(ip, port)])),
            Err(_) => Query::HostPort(host.to_owned(), port),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl sealed::ToSocketAddrsPriv for (String, u16) {
    fn query(&self) -> Query {
        (self.0.as_str(), self.1).query()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> sealed::ToSocketAddrsPriv for &T {
    fn query(&self) -> Query {
        (**self).query()
    }
}
