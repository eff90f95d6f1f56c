//! Pieces the proxies share: logging setup, SO_REUSEPORT listeners (one per worker),
//! and the accept loop with its error handling and shutdown.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use uringo::net::{TcpListener, TcpSocket, TcpStream};

/// How long an accept loop waits after EMFILE before trying again.
const FD_BACKOFF: Duration = Duration::from_millis(50);

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

/// Accepts on `listener` until `stop` is cancelled, handing each connection to
/// `on_connection`; the listener is closed when this returns.
///
/// On `stop`, connections the kernel already accepted for this listener (its accept
/// backlog, see [`TcpListener::accept_backlog_len`]) are still handed over rather than
/// closed unserved. Out of file descriptors (EMFILE) backs off and retries; a
/// connection reset before it was accepted is skipped; any other listener error ends
/// this loop only, not the connections already served.
pub async fn accept_until(
    listener: TcpListener,
    stop: CancellationToken,
    mut on_connection: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => on_connection(stream, peer),
            Err(err) if is_fd_exhaustion(&err) => {
                tracing::warn!(error = %err, "accept: out of file descriptors; backing off");
                uringo::time::sleep(FD_BACKOFF).await;
            }
            Err(err) if is_per_connection(&err) => {
                tracing::debug!(error = %err, "accept: connection gone before it was accepted");
            }
            Err(err) => {
                tracing::error!(error = %err, "accept failed; this listener stops");
                return;
            }
        }
    }
    // Claimed in one go, with no await before the listener drops: what is queued now
    // is served, and the drop cancels the accept before the kernel runs it again.
    while listener.accept_backlog_len() > 0 {
        match listener.accept().now_or_never() {
            Some(Ok((stream, peer))) => on_connection(stream, peer),
            Some(Err(err)) => tracing::debug!(error = %err, "accept while stopping"),
            None => break,
        }
    }
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

/// Resets `stream` (linger 0: close sends RST), for a connection over the limit: the
/// client learns at once and no TIME_WAIT is left behind here.
pub fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}
