//! Socket addresses in the kernel's layout, owned by the op that lends them.

use std::fmt;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A `sockaddr_storage` plus its length: what `accept`, `connect`, `recvmsg` and
/// `sendmsg` exchange with the kernel. Converts to and from [`SocketAddr`]; other
/// families (AF_UNIX) are kept raw and exposed through [`SockAddr::as_unix_path`].
///
/// ```
/// use uringo_uring::op::SockAddr;
/// let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// assert_eq!(SockAddr::from(addr).as_socket(), Some(addr));
/// ```
#[derive(Clone)]
pub struct SockAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl SockAddr {
    /// An empty address with room for any family (for the kernel to fill in).
    pub fn empty() -> Self {
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (AF_UNSPEC) value.
        let storage = unsafe { mem::zeroed() };
        SockAddr {
            storage,
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub fn family(&self) -> libc::sa_family_t {
        self.storage.ss_family
    }

    /// Length of the address in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the kernel filled in nothing (e.g. an unnamed unix socket).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address as an IP socket address, if it is one.
    pub fn as_socket(&self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in; storage is
                // large enough and suitably aligned for it.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The path of an `AF_UNIX` address, if it is one and is bound to a path (not
    /// unnamed, not abstract).
    pub fn as_unix_path(&self) -> Option<std::path::PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        if i32::from(self.storage.ss_family) != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says the storage holds a sockaddr_un.
        let sun = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_un) };
        let offset = mem::size_of::<libc::sa_family_t>();
        let path_len = (self.len as usize).checked_sub(offset)?;
        let bytes: Vec<u8> = sun.sun_path[..path_len.min(sun.sun_path.len())]
            .iter()
            .map(|&c| c as u8)
            .take_while(|&b| b != 0)
            .collect();
        if bytes.is_empty() {
            return None;
        }
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
            &bytes,
        )))
    }

    /// A unix-domain address for `path` (fails when the path does not fit).
    pub fn unix(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        let mut addr = SockAddr::empty();
        // SAFETY: storage is large enough and aligned for sockaddr_un.
        let sun = unsafe { &mut *(&mut addr.storage as *mut _ as *mut libc::sockaddr_un) };
        if bytes.len() >= sun.sun_path.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "unix socket path too long",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        addr.len = (mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        Ok(addr)
    }

    /// The raw `sockaddr`, valid for [`len`](Self::len) bytes while `self` lives (for
    /// `bind(2)` and friends).
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        &mut self.storage as *mut _ as *mut libc::sockaddr
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> Self {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                // SAFETY: storage is large enough and aligned for sockaddr_in.
                let sin = unsafe { &mut *(&mut out.storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                };
                out.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(v6) => {
                // SAFETY: storage is large enough and aligned for sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut out.storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr = libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                };
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                out.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        out
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.as_socket() {
            return write!(f, "{addr}");
        }
        if let Some(path) = self.as_unix_path() {
            return write!(f, "unix:{}", path.display());
        }
        write!(f, "SockAddr(family={}, len={})", self.family(), self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_v6_and_unix() {
        for s in ["10.1.2.3:443", "[::1]:8080", "[fe80::1%2]:1"] {
            let addr: SocketAddr = s.parse().unwrap();
            assert_eq!(SockAddr::from(addr).as_socket(), Some(addr), "{s}");
        }
        let unix = SockAddr::unix(std::path::Path::new("/tmp/x.sock")).unwrap();
        assert_eq!(
            unix.as_unix_path().unwrap(),
            std::path::Path::new("/tmp/x.sock")
        );
        assert!(SockAddr::unix(std::path::Path::new(&"a".repeat(200))).is_err());
    }
}
