//! Pieces the proxies share: logging setup, SO_REUSEPORT listeners (one per worker),
//! and the accept loop with its error handling and shutdown.

use std::future::Future;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
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

/// A program's exit: success, or the error logged under the program's name.
pub fn exit_code(program: &str, result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "{program} failed");
            ExitCode::FAILURE
        }
    }
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

/// Runs one [`accept_until`] loop per listener, listener `i` on worker `i` (one ring
/// each), and returns once all have ended (after `stop`, or each on a listener error).
pub async fn accept_all(
    listeners: Vec<TcpListener>,
    stop: CancellationToken,
    on_connection: impl Fn(TcpStream, SocketAddr) + Clone + Send + 'static,
) {
    // Listener i accepts on worker i: its multishot accept, and the connections it
    // hands out, start on that worker's ring.
    let handle = uringo::Handle::current();
    let workers = handle.metrics().num_workers();
    let loops: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let accept_loop = accept_until(listener, stop.clone(), on_connection.clone());
            handle.spawn_on(i % workers, accept_loop)
        })
        .collect();
    for accept_loop in loops {
        let _ = accept_loop.await;
    }
}

/// The connections a server serves: at most a limit at once (more are reset), each
/// served by a task that a [`TaskTracker`] counts, for the drain.
#[derive(Debug)]
pub struct Connections {
    limit: usize,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Connections {
    /// At most `limit` connections at once.
    pub fn new(limit: usize) -> Connections {
        Connections {
            limit,
            slots: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            tasks: TaskTracker::new(),
        }
    }

    /// Serves `stream` with `serve` on a task of its own, or resets it when `limit`
    /// connections are being served already.
    pub fn serve<F>(&self, stream: TcpStream, peer: SocketAddr, serve: impl FnOnce(TcpStream) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = self.limit, "connection limit reached; resetting");
            reset(stream);
            return;
        };
        let served = serve(stream);
        uringo::spawn(self.tasks.track_future(async move {
            served.await;
            drop(slot);
        }));
    }

    /// The tracker of the connection tasks; other tasks that should hold the drain
    /// back (an upgraded connection's tunnel) can join it.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// Accepts on `listener` until `stop` is cancelled, handing each connection to
/// `on_connection`; the listener is closed when this returns.
///
/// On `stop`, connections the kernel already accepted for this listener are still
/// handed over rather than closed unserved ([`TcpListener::stop_accepting`]). Out of file descriptors (EMFILE) backs off and retries; a
/// connection reset before it was accepted is skipped; any other listener error ends
/// this loop only, not the connections already served.
pub async fn accept_until(
    listener: TcpListener,
    stop: CancellationToken,
    on_connection: impl Fn(TcpStream, SocketAddr),
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
    // Stop the kernel from accepting for us, then serve everything it already did,
    // up to the final completion of the cancelled accept: dropping the listener now
    // would close connections accepted but not yet claimed (those whose completions
    // were still on their way), and after a handoff those belong to nobody else.
    listener.stop_accepting();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => on_connection(stream, peer),
            // Everything accepted before the stop was handed over.
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => break,
            Err(err) => tracing::debug!(error = %err, "accept while stopping"),
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
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}
