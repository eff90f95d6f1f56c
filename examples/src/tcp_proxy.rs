//! A TCP proxy: every accepted connection is joined to one of the upstreams (round
//! robin, skipping one that refuses) and bytes are moved both ways by
//! [`uringo::io::copy_bidirectional`] (ring ops only: a client that stops reading costs
//! no thread and no CPU, and at most 64 KiB per direction is in flight).
//!
//! ## Idle timeout
//!
//! `copy_bidirectional` has no hook for "bytes moved", and wrapping it in a timeout
//! would cap the connection's whole lifetime, not its idle time. Rather than write a copy
//! loop of its own to count bytes, the proxy runs a watchdog next to the copy that asks
//! the kernel:
//! `TCP_INFO` on both sockets gives `bytes_received` and `bytes_acked`, which move
//! whenever data flows either way. The watchdog samples them every quarter of the idle
//! timeout, and when they have not moved for the whole timeout it ends the connection
//! (dropping the copy cancels its ops). So a connection is closed between 1× and 1.25×
//! the idle timeout after its last byte, at the cost of one timer and two `getsockopt`s
//! per quarter-period per connection, and no cost per byte. A peer that stops reading
//! (zero window) counts as idle too: nothing is acknowledged.
//!
//! ## Connection limit
//!
//! Beyond `max_connections`, a connection is accepted and closed at once with a reset
//! ([`Connections`]). Leaving it in the kernel's backlog instead
//! (`TcpListener::set_accept_backlog_limit`) would leave clients hanging until their own
//! connect timeout once the backlog fills; a reset tells the client right away, and
//! keeps the proxy's fd use bounded by the limit.
//!
//! ## Restart
//!
//! `tcp-proxy --handoff PATH` hands its listening sockets to a successor: see
//! [`crate::handoff`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uringo::net::{TcpListener, TcpStream};

use crate::server::{accept_all, Connections};
use crate::shutdown::drain;

/// What the proxy does; see `tcp-proxy --help` for each field's flag.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where connections go, tried in turn.
    pub upstreams: Vec<SocketAddr>,
    /// Limit on connecting to one upstream.
    pub connect_timeout: Duration,
    /// Close a connection when no byte moved either way for this long.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once; more are reset.
    pub max_connections: usize,
    /// After a shutdown signal, how long live connections may take to finish.
    pub drain_timeout: Duration,
}

/// The proxy's shared state: its configuration, the round-robin cursor, the
/// connection limit and the live connection tasks.
#[derive(Debug)]
pub struct Proxy {
    config: Config,
    next_upstream: AtomicUsize,
    connections: Connections,
}

impl Proxy {
    /// A proxy for `config`; fails on an empty upstream list or a zero limit.
    pub fn new(config: Config) -> io::Result<Arc<Proxy>> {
        if config.upstreams.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one upstream is needed",
            ));
        }
        if config.max_connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max connections must be at least 1",
            ));
        }
        Ok(Arc::new(Proxy {
            connections: Connections::new(config.max_connections),
            config,
            next_upstream: AtomicUsize::new(0),
        }))
    }

    /// Runs the accept loops until `stop` is cancelled, then waits for live connections
    /// to finish, at most the drain timeout. Returns how many were still live then.
    pub async fn serve(
        self: &Arc<Self>,
        listeners: Vec<TcpListener>,
        stop: CancellationToken,
    ) -> usize {
        let proxy = self.clone();
        accept_all(listeners, stop, move |client, peer| {
            let served = proxy.clone();
            proxy.connections.serve(client, peer, |client| async move {
                served.serve_connection(client, peer).await
            })
        })
        .await;
        drain(self.connections.tasks(), self.config.drain_timeout).await
    }

    async fn serve_connection(&self, client: TcpStream, peer: SocketAddr) {
        let started = Instant::now();
        match self.proxy(client, peer).await {
            Ok((upstream, sent, received)) => tracing::debug!(
                %peer, %upstream, sent, received, elapsed = ?started.elapsed(), "connection closed"
            ),
            Err(err) => tracing::info!(%peer, error = %err, "connection ended with an error"),
        }
    }

    /// Connects to an upstream and copies until both sides are done; returns the
    /// upstream and the bytes moved each way.
    async fn proxy(
        &self,
        mut client: TcpStream,
        peer: SocketAddr,
    ) -> io::Result<(SocketAddr, u64, u64)> {
        let _ = client.set_nodelay(true);
        let (mut upstream, upstream_addr) = self.connect_upstream(peer).await?;
        let _ = upstream.set_nodelay(true);
        let fds = [client.as_raw_fd(), upstream.as_raw_fd()];
        let copy = uringo::io::copy_bidirectional(&mut client, &mut upstream);
        let (sent, received) = match self.config.idle_timeout {
            None => copy.await?,
            Some(idle) => tokio::select! {
                copied = copy => copied?,
                err = watch_idle(fds, idle) => return Err(err),
            },
        };
        Ok((upstream_addr, sent, received))
    }

    /// Tries each upstream once, starting at the round-robin cursor.
    async fn connect_upstream(&self, peer: SocketAddr) -> io::Result<(TcpStream, SocketAddr)> {
        let upstreams = &self.config.upstreams;
        let first = self.next_upstream.fetch_add(1, Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..upstreams.len() {
            let addr = upstreams[(first + i) % upstreams.len()];
            let connect = TcpStream::connect(addr);
            match uringo::time::timeout(self.config.connect_timeout, connect).await {
                Ok(Ok(stream)) => return Ok((stream, addr)),
                Ok(Err(err)) => {
                    tracing::warn!(%peer, upstream = %addr, error = %err, "upstream connect failed");
                    last_err = Some(err);
                }
                Err(_) => {
                    tracing::warn!(%peer, upstream = %addr, timeout = ?self.config.connect_timeout, "upstream connect timed out");
                    last_err = Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {addr} timed out"),
                    ));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::ErrorKind::NotConnected.into()))
    }
}

/// Completes (with a `TimedOut` error) once none of `fds`' byte counters moved for
/// `idle`. Never completes while bytes flow.
async fn watch_idle(fds: [RawFd; 2], idle: Duration) -> io::Error {
    let period = (idle / 4).max(Duration::from_millis(1));
    let mut last = activity(&fds);
    let mut last_change = Instant::now();
    loop {
        uringo::time::sleep(period).await;
        let now = activity(&fds);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= idle {
            return io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no bytes either way for {idle:?}"),
            );
        }
    }
}

/// Sum of bytes received and bytes acknowledged by the peer on each socket; `None`
/// for a socket whose TCP_INFO cannot be read (it then counts as unchanged).
fn activity(fds: &[RawFd; 2]) -> [Option<(u64, u64)>; 2] {
    fds.map(tcp_bytes)
}

fn tcp_bytes(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain old data (integers only); all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a socket owned by the caller's live TcpStream for the duration of
    // this call (the watchdog runs inside the connection task that owns both streams);
    // `info` and `len` point to writable memory of the size given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((info.tcpi_bytes_received, info.tcpi_bytes_acked))
}
