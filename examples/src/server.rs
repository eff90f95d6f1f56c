//! Pieces both proxies share: logging setup, SO_REUSEPORT listeners (one per worker)
//! and the EMFILE test for accept loops.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;

use uringo::net::{TcpListener, TcpSocket};

/// Sends `tracing` events to stderr. The level comes from `RUST_LOG` when it names one
/// (`error`, `warn`, `info`, `debug`, `trace`), else `info`.
pub fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|raw| raw.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// Binds `count` listeners on `addr` with SO_REUSEPORT, so the kernel spreads incoming
/// connections over `count` accept loops instead of one loop feeding every worker.
/// With port 0, the first bind picks the port and the others join it.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Whether an accept error means "out of file descriptors" (back off and retry) rather
/// than a broken listener.
pub fn is_fd_exhaustion(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Whether an accept error concerns only the one connection (it was reset before we
/// got to it): log and keep accepting.
pub fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotConnected
    )
}
