//! The servers under test, run in a child process of their own (`headtohead --serve
//! KIND`), so that the child's CPU time and RSS are exactly the server's.
//!
//! Every server has the same shape: one worker, the whole process pinned to one CPU, one
//! task per connection, each echoing what it reads; the accept loop is a task too. The
//! main thread only talks to the parent over stdin/stdout:
//!
//! - on start the child prints `listening ADDR`;
//! - a line `count` on stdin is answered with `count N`, the connections whose task has
//!   started (and is about to wait in its first read);
//! - end of stdin exits the process.

use std::future::Future;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use uringo_examples::loadgen;

/// Bytes each connection reads at most at once (its buffer, or a pool buffer's size).
pub const BUF_SIZE: usize = 4096;
/// Buffers in the shared pool of the `uringo-pool` server (per ring: one worker here).
pub const POOL_BUFS: usize = 256;
/// Listen backlog on every server: thousands of connects arrive in a burst.
const BACKLOG: u32 = 4096;

/// Which server a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// uringo, each connection reading into its own `Vec::with_capacity(4096)`.
    Uringo,
    /// uringo, each connection a multishot `recv_stream` on one shared `BufPool`.
    UringoPool,
    /// tokio (multi-thread, one worker), each connection reading into its own 4 KiB
    /// heap buffer.
    Tokio,
    /// A uringo TCP proxy: per connection, connect to the upstream and
    /// `uringo::io::copy_bidirectional`.
    ProxyUringo,
    /// The same proxy on tokio: `tokio::io::copy_bidirectional`.
    ProxyTokio,
    /// The floor: echo written straight on io_uring, no runtime (`floor.rs`).
    Floor,
    /// The proxy floor: the TCP proxy written straight on io_uring, no runtime
    /// (`floor_proxy.rs`).
    ProxyFloor,
    /// The proxy floor naming its sockets by index in a registered file table
    /// (`IOSQE_FIXED_FILE`), to measure what registered files save.
    ProxyFloorFixed,
    /// monoio on its io_uring driver, one thread, each connection as monoio's own echo
    /// example writes it: a `Vec` read into and written back whole.
    Monoio,
    /// The http_proxy shape's upstream: uringo, answering every HTTP/1.1 request on a
    /// keep-alive connection with a small fixed response (`http::RESPONSE`).
    HttpUpstream,
    /// The `http-proxy` example (uringo + hyper through `uringo::compat`), run as its
    /// own binary (see `http.rs`), not through `--serve`.
    HttpProxy,
    /// The `http-proxy-tokio` example: the same request handling with hyper on tokio;
    /// its own binary too.
    HttpProxyTokio,
}

impl Server {
    /// Every server, in the order the idle shape runs them.
    pub const ALL: [Server; 3] = [Server::UringoPool, Server::Uringo, Server::Tokio];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Server::Uringo => "uringo",
            Server::UringoPool => "uringo-pool",
            Server::Tokio => "tokio",
            Server::ProxyUringo => "proxy-uringo",
            Server::ProxyTokio => "proxy-tokio",
            Server::Floor => "floor",
            Server::ProxyFloor => "proxy-floor",
            Server::ProxyFloorFixed => "proxy-floor-fixed",
            Server::Monoio => "monoio",
            Server::HttpUpstream => "http-upstream",
            Server::HttpProxy => "http-proxy",
            Server::HttpProxyTokio => "http-proxy-tokio",
        }
    }

    /// The server named `name`, among those `--serve` runs (not the HTTP proxies, which
    /// are binaries of their own).
    pub fn parse(name: &str) -> Option<Server> {
        [
            Server::Uringo,
            Server::UringoPool,
            Server::Tokio,
            Server::ProxyUringo,
            Server::ProxyTokio,
            Server::Floor,
            Server::ProxyFloor,
            Server::ProxyFloorFixed,
            Server::Monoio,
            Server::HttpUpstream,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// The hand-written floor this server's CPU per request is measured against (the
    /// "× floor" column): the echo floor for echo servers, the proxy floor for TCP
    /// proxies.
    pub fn floor(self) -> Option<Server> {
        match self {
            Server::Uringo
            | Server::UringoPool
            | Server::Tokio
            | Server::Floor
            | Server::Monoio => Some(Server::Floor),
            Server::ProxyUringo
            | Server::ProxyTokio
            | Server::ProxyFloor
            | Server::ProxyFloorFixed => Some(Server::ProxyFloor),
            Server::HttpUpstream | Server::HttpProxy | Server::HttpProxyTokio => None,
        }
    }

    /// Whether this is one of the HTTP reverse proxies, binaries of uringo-examples run
    /// as they are (`http.rs`).
    pub fn is_http_proxy(self) -> bool {
        matches!(self, Server::HttpProxy | Server::HttpProxyTokio)
    }

    /// Whether this is a proxy (it needs `--upstream ADDR`).
    pub fn is_proxy(self) -> bool {
        matches!(
            self,
            Server::ProxyUringo | Server::ProxyTokio | Server::ProxyFloor | Server::ProxyFloorFixed
        )
    }
}

/// The child's `main`: `args` follow `--serve`, i.e.
/// `KIND [--cpu N] [--upstream ADDR]` (proxies need the upstream).
pub fn main(args: &[String]) -> io::Result<()> {
    let usage = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: --serve KIND [--cpu N] [--upstream ADDR]",
        )
    };
    let server = args
        .first()
        .and_then(|k| Server::parse(k))
        .ok_or_else(usage)?;
    let (mut cpu, mut upstream) = (None, None);
    let mut parser = lexopt::Parser::from_args(&args[1..]);
    while let Some(arg) = parser.next().map_err(|_| usage())? {
        use lexopt::prelude::*;
        match arg {
            Long("cpu") => {
                cpu = Some(
                    parser
                        .value()
                        .and_then(|v| v.parse::<usize>())
                        .map_err(|_| usage())?,
                )
            }
            Long("upstream") => {
                upstream = Some(
                    parser
                        .value()
                        .and_then(|v| v.parse::<SocketAddr>())
                        .map_err(|_| usage())?,
                )
            }
            _ => return Err(usage()),
        }
    }
    if server.is_proxy() != upstream.is_some() {
        return Err(usage());
    }
    loadgen::raise_fd_limit()?;
    if let Some(cpu) = cpu {
        // Before any runtime thread exists: they all inherit the mask.
        loadgen::pin_current_thread(cpu)?;
    }
    let started = Arc::new(AtomicUsize::new(0));
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    // The runtime must outlive the control loop; it is torn down by process exit.
    let _runtime = match server {
        Server::HttpProxy | Server::HttpProxyTokio => return Err(usage()),
        Server::Uringo | Server::UringoPool | Server::ProxyUringo | Server::HttpUpstream => {
            let rt = uringo::Builder::new()
                .worker_threads(1)
                .pin_workers(cpu.is_some())
                .build()?;
            let socket = uringo::net::TcpSocket::new_v4()?;
            socket.bind(addr)?;
            let listener = socket.listen(BACKLOG)?;
            announce(listener.local_addr()?)?;
            let serve = match (server, upstream) {
                (Server::UringoPool, _) => {
                    Serve::Pool(uringo::net::BufPool::new(POOL_BUFS, BUF_SIZE)?)
                }
                (Server::ProxyUringo, Some(upstream)) => Serve::Proxy(upstream),
                (Server::HttpUpstream, _) => Serve::Http,
                _ => Serve::Echo,
            };
            rt.spawn(uringo_accept(listener, serve, started.clone()));
            Runtime::Uringo(rt)
        }
        Server::Tokio | Server::ProxyTokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()?;
            let listener = rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(addr)?;
                socket.listen(BACKLOG)
            })?;
            announce(listener.local_addr()?)?;
            rt.spawn(tokio_accept(listener, upstream, started.clone()));
            Runtime::Tokio(rt)
        }
        Server::Floor | Server::ProxyFloor | Server::ProxyFloorFixed | Server::Monoio => {
            let listener = std::net::TcpListener::bind(addr)?;
            announce(listener.local_addr()?)?;
            let started = started.clone();
            // Spawned after the pinning above, so the loop runs on the server's CPU (and
            // monoio's runtime, which is not Send, is built on the thread it runs on).
            std::thread::spawn(move || {
                let res = match (server, upstream) {
                    (Server::ProxyFloor | Server::ProxyFloorFixed, Some(upstream)) => {
                        let fixed = server == Server::ProxyFloorFixed;
                        super::floor_proxy::serve(listener, upstream, &started, fixed)
                    }
                    (Server::Monoio, _) => monoio_serve(listener, started),
                    _ => super::floor::serve(listener, &started),
                };
                if let Err(err) = res {
                    tracing::error!(%err, server = server.name(), "the server's loop failed");
                    std::process::exit(1);
                }
            });
            Runtime::Thread
        }
    };
    control_loop(&started)
}

/// Keeps the runtime alive (it is never dropped: the process exits under it).
enum Runtime {
    Uringo(#[allow(dead_code)] uringo::Runtime),
    Tokio(#[allow(dead_code)] tokio::runtime::Runtime),
    /// A thread of its own (the floors', monoio's), which runs until the process exits.
    Thread,
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening {addr}")?;
    out.flush()
}

/// Answers `count` until stdin closes, then exits the process without dropping the
/// runtime (tearing down 10 000 connections would only slow the next round down).
fn control_loop(started: &AtomicUsize) -> io::Result<()> {
    for line in io::stdin().lock().lines() {
        match line?.trim() {
            "count" => {
                let mut out = io::stdout().lock();
                writeln!(out, "count {}", started.load(Ordering::SeqCst))?;
                out.flush()?;
            }
            other => tracing::warn!(command = other, "unknown control command"),
        }
    }
    std::process::exit(0)
}

/// What a uringo connection task does.
#[derive(Clone)]
enum Serve {
    Echo,
    Pool(uringo::net::BufPool),
    Proxy(SocketAddr),
    Http,
}

async fn uringo_accept(
    listener: uringo::net::TcpListener,
    serve: Serve,
    started: Arc<AtomicUsize>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                uringo::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // One spawn per kind, so that each task is as large as its own job's future.
        let started = started.clone();
        match &serve {
            Serve::Pool(pool) => uringo::spawn(connection(
                started,
                uringo_echo_pooled(stream, pool.clone()),
            )),
            Serve::Echo => uringo::spawn(connection(started, uringo_echo(stream))),
            Serve::Proxy(upstream) => {
                uringo::spawn(connection(started, uringo_proxy(stream, *upstream)))
            }
            Serve::Http => uringo::spawn(connection(started, super::http::upstream(stream))),
        };
    }
}

pin_project_lite::pin_project! {
    /// A connection's task on either runtime: counted as started when first polled,
    /// then `job`, whose error is logged. A future of its own, not an `async fn`: one
    /// that takes `job` and awaits it keeps it twice (its argument and its awaited
    /// value get separate slots), which doubled every task of the idle shape.
    struct Connection<F> {
        started: Option<Arc<AtomicUsize>>,
        #[pin]
        job: F,
    }
}

fn connection<F: Future<Output = io::Result<()>>>(
    started: Arc<AtomicUsize>,
    job: F,
) -> Connection<F> {
    Connection {
        started: Some(started),
        job,
    }
}

impl<F: Future<Output = io::Result<()>>> Future for Connection<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if let Some(started) = this.started.take() {
            started.fetch_add(1, Ordering::SeqCst);
        }
        let res = std::task::ready!(this.job.poll(cx));
        if let Err(err) = res {
            tracing::debug!(%err, "connection failed");
        }
        Poll::Ready(())
    }
}

/// Owned-buffer echo: the buffer goes to the read, comes back with the data, goes to
/// the write, comes back again.
async fn uringo_echo(stream: uringo::net::TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(BUF_SIZE);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        if res? == 0 {
            return Ok(());
        }
        let (res, b) = stream.write_all(b).await;
        res?;
        buf = b;
    }
}

/// Pool echo: an idle connection holds no buffer, and each received chunk is sent back
/// as it is, as the floor sends it (no copy, no allocation). The chunk's pool buffer goes
/// back to the ring when the write is done, so a write waiting on a peer slow to read
/// holds one buffer of the pool until then.
async fn uringo_echo_pooled(
    stream: uringo::net::TcpStream,
    pool: uringo::net::BufPool,
) -> io::Result<()> {
    let mut chunks = stream.recv_stream(&pool);
    while let Some(chunk) = chunks.next().await {
        let (res, _) = stream.write_all(chunk?).await;
        res?;
    }
    Ok(())
}

/// The proxy every uringo user writes: connect, then copy both ways.
async fn uringo_proxy(mut client: uringo::net::TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let mut server = uringo::net::TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    uringo::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// The same on tokio.
async fn tokio_proxy(mut client: tokio::net::TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let mut server = tokio::net::TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

async fn tokio_accept(
    listener: tokio::net::TcpListener,
    upstream: Option<SocketAddr>,
    started: Arc<AtomicUsize>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let started = started.clone();
        match upstream {
            Some(upstream) => tokio::spawn(connection(started, tokio_proxy(stream, upstream))),
            None => tokio::spawn(connection(started, tokio_echo(stream))),
        };
    }
}

/// monoio's accept loop: a runtime on its io_uring driver, a task per connection.
fn monoio_serve(listener: std::net::TcpListener, started: Arc<AtomicUsize>) -> io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::from_std(listener)?;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let started = started.clone();
            monoio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                if let Err(err) = monoio_echo(stream).await {
                    tracing::debug!(%err, "connection failed");
                }
            });
        }
    })
}

/// monoio's own echo (its `examples/echo.rs`), with a `BUF_SIZE` buffer instead of
/// 8 KiB: the owned buffer goes to the read and to `write_all` and comes back each time.
async fn monoio_echo(mut stream: monoio::net::TcpStream) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut buf: Vec<u8> = Vec::with_capacity(BUF_SIZE);
    let mut res;
    loop {
        (res, buf) = stream.read(buf).await;
        if res? == 0 {
            return Ok(());
        }
        (res, buf) = stream.write_all(buf).await;
        res?;
        buf.clear();
    }
}

/// The usual tokio echo: a heap buffer per connection, `read` then `write_all`.
async fn tokio_echo(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}
