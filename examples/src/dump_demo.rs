//! A task leak, found with a task dump: the program behind `--example dump`.
//!
//! An echo server spawns, for every connection, a handler (reads until EOF, echoes) and a
//! keep-alive ticker that the handler never joins nor cancels, and that never notices its
//! connection is gone: the bug this demo exists to find. A client in the same process
//! (blocking std sockets on the calling thread, so its sockets are not tasks and stay out
//! of the dump) opens connections, sends a little, keeps them open, then closes some.
//!
//! Two dumps tell the story: with every connection open the handlers and the tickers
//! are two groups of the same size; after `close` connections are gone, the handler
//! group shrank by `close` and the ticker group did not. A spawn site whose count does
//! not follow the connection count is the leak ([`Report::leaking_sites`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use uringo_examples::dump_demo::{run, Config};
//!
//! let report = run(&Config { connections: 100, close: 10, ..Config::default() })?;
//! println!("{}", report.after);
//! for site in report.leaking_sites() {
//!     println!("leak at {}: {} -> {}", site.spawned_at, site.before, site.after);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uringo::net::{TcpListener, TcpStream};
use uringo::task::{TaskDump, TaskState};

/// Name of the accept loop's task.
pub const ACCEPT_TASK: &str = "accept-loop";
/// Prefix of a connection handler's task name (`conn 127.0.0.1:50432`).
pub const HANDLER_PREFIX: &str = "conn ";
/// Prefix of a keep-alive ticker's task name (`keepalive 127.0.0.1:50432`).
pub const TICKER_PREFIX: &str = "keepalive ";

/// What the demo does.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client connections to open (each is two fds in this process).
    pub connections: usize,
    /// How many of them the client closes after the first dump.
    pub close: usize,
    /// The keep-alive ticker's period.
    pub keepalive: Duration,
    /// Worker threads of the server's runtime.
    pub workers: usize,
    /// `Builder::task_count_warning` for the server's runtime.
    pub task_count_warning: usize,
    /// How long to wait after closing connections before the second dump, so their
    /// tickers show they live on (a little over `keepalive` lets each tick once more).
    pub linger: Duration,
    /// How long to wait for the server to settle before each dump.
    pub settle_timeout: Duration,
}

impl Default for Config {
    /// 1 000 connections, 100 closed, a 1 s keep-alive, 1.5 s from closing to the second
    /// dump, 2 workers, a warning at 1 000 live tasks (the leak passes it at about 500
    /// connections, and again at 1 000).
    fn default() -> Config {
        Config {
            connections: 1000,
            close: 100,
            keepalive: Duration::from_secs(1),
            linger: Duration::from_millis(1500),
            workers: 2,
            task_count_warning: 1000,
            settle_timeout: Duration::from_secs(10),
        }
    }
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where the server listened.
    pub addr: SocketAddr,
    /// Connections opened.
    pub connections: usize,
    /// Connections closed between the two dumps.
    pub closed: usize,
    /// The dump with every connection open.
    pub before: TaskDump,
    /// The dump after `closed` connections were closed and the server saw them go.
    pub after: TaskDump,
    /// Ticks of every keep-alive ticker, all told, when `after` was taken.
    pub keepalive_ticks: u64,
    /// How many of those came after the client closed connections.
    pub ticks_since_close: u64,
}

/// How many tasks one spawn site held in each dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteChange {
    /// The spawn site.
    pub spawned_at: &'static Location<'static>,
    /// Its live tasks in [`Report::before`].
    pub before: usize,
    /// Its live tasks in [`Report::after`].
    pub after: usize,
}

impl Report {
    /// Live tasks per spawn site in both dumps (all states together), busiest first.
    pub fn sites(&self) -> Vec<SiteChange> {
        let mut sites: Vec<SiteChange> = Vec::new();
        let mut add = |dump: &TaskDump, after: bool| {
            for group in dump.grouped() {
                let i = match sites.iter().position(|s| s.spawned_at == group.spawned_at) {
                    Some(i) => i,
                    None => {
                        sites.push(SiteChange {
                            spawned_at: group.spawned_at,
                            before: 0,
                            after: 0,
                        });
                        sites.len() - 1
                    }
                };
                if after {
                    sites[i].after += group.count;
                } else {
                    sites[i].before += group.count;
                }
            }
        };
        add(&self.before, false);
        add(&self.after, true);
        sites.sort_by_key(|s| std::cmp::Reverse(s.before.max(s.after)));
        sites
    }

    /// The leak's signature: sites that held a task per connection and did not shrink
    /// when connections closed. (A site that shrank by the closed count follows the
    /// connections' lifetime; one with a handful of tasks is fixed machinery.)
    pub fn leaking_sites(&self) -> Vec<SiteChange> {
        self.sites()
            .into_iter()
            .filter(|s| self.closed > 0 && s.before >= self.connections && s.after >= s.before)
            .collect()
    }
}

/// Counters the server keeps, as a real one would export them.
#[derive(Debug, Default)]
struct Stats {
    /// Connections whose handler is running.
    open: AtomicUsize,
    /// Bytes echoed back (each count taken after its send completed).
    echoed: AtomicUsize,
    /// Keep-alive ticks, all tickers together.
    ticks: AtomicU64,
}

/// Runs the demo: starts the server on its own runtime, connects, dumps, closes
/// `close` connections (the first ones opened), waits `linger`, dumps again, shuts the
/// runtime down.
///
/// Errors: `InvalidInput` for a `close` above `connections` or zero workers; a client
/// socket's error (with which connection and a hint for `EMFILE`); `TimedOut` when the
/// server does not settle (every task idle, every byte echoed, the expected
/// connections open) in time.
pub fn run(config: &Config) -> io::Result<Report> {
    if config.close > config.connections {
        return Err(invalid(format!(
            "cannot close {} of {} connections",
            config.close, config.connections
        )));
    }
    if config.workers == 0 {
        return Err(invalid("need at least one worker thread".to_string()));
    }
    let rt = uringo::Builder::new()
        .worker_threads(config.workers)
        .task_count_warning(config.task_count_warning.max(1))
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    uringo::task::Builder::new().name(ACCEPT_TASK).spawn_on(
        accept_loop(listener, stats.clone(), config.keepalive),
        rt.handle(),
    );

    let mut clients = Vec::with_capacity(config.connections);
    let mut sent = 0;
    for i in 0..config.connections {
        let (client, n) = connect_and_ping(addr, i).map_err(|err| {
            let hint = match err.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) => {
                    " (each connection is two fds in this process: raise `ulimit -n` or \
                     lower --connections)"
                }
                _ => "",
            };
            io::Error::new(err.kind(), format!("client connection {i}: {err}{hint}"))
        })?;
        clients.push(client);
        sent += n;
    }
    let before = settle(&rt, &stats, config.connections, sent, config.settle_timeout)?;

    let ticks_at_close = stats.ticks.load(Ordering::Relaxed);
    // Leak #2 stays: the rest of the clients never hang up.
    clients.drain(..config.close);
    std::thread::sleep(config.linger);
    let open = config.connections - config.close;
    let after = settle(&rt, &stats, open, sent, config.settle_timeout)?;
    let keepalive_ticks = stats.ticks.load(Ordering::Relaxed);

    drop(clients);
    // The leaked tickers are cancelled with the runtime: nothing else ever stops them.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(Report {
        addr,
        connections: config.connections,
        closed: config.close,
        before,
        after,
        keepalive_ticks,
        ticks_since_close: keepalive_ticks - ticks_at_close,
    })
}

/// Accepts forever, one handler task per connection.
async fn accept_loop(listener: TcpListener, stats: Arc<Stats>, keepalive: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let name = format!("{HANDLER_PREFIX}{peer}");
                let handler = handle(stream, peer, stats.clone(), keepalive);
                // The JoinHandle is dropped: a handler ends with its connection.
                if let Err(err) = uringo::task::Builder::new().name(&name).spawn(handler) {
                    tracing::warn!(error = %err, "could not spawn a connection handler");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                uringo::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Echoes one connection until EOF — and starts its keep-alive ticker, which is the
/// bug: the handler neither keeps the ticker's JoinHandle to abort it on exit nor
/// tells it the connection closed, so every connection leaves a ticker behind.
async fn handle(stream: TcpStream, peer: SocketAddr, stats: Arc<Stats>, keepalive: Duration) {
    stats.open.fetch_add(1, Ordering::SeqCst);
    let ticker = keepalive_ticker(stats.clone(), keepalive);
    let name = format!("{TICKER_PREFIX}{peer}");
    if let Err(err) = uringo::task::Builder::new().name(&name).spawn(ticker) {
        tracing::warn!(error = %err, "could not start the keep-alive ticker");
    }
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (n, b) = stream.read(buf).await;
        match n {
            Ok(0) => break,
            Ok(n) => {
                let (res, b) = stream.write_all(b).await;
                if let Err(err) = res {
                    tracing::debug!(%peer, error = %err, "echo write failed");
                    break;
                }
                stats.echoed.fetch_add(n, Ordering::SeqCst);
                tracing::trace!(%peer, n, "echoed");
                buf = b;
                buf.clear();
            }
            Err(err) => {
                tracing::debug!(%peer, error = %err, "read failed");
                break;
            }
        }
    }
    stats.open.fetch_sub(1, Ordering::SeqCst);
}

/// The leaking side-task: loops forever; nothing in it looks at the connection.
async fn keepalive_ticker(stats: Arc<Stats>, period: Duration) {
    loop {
        uringo::time::sleep(period).await;
        stats.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connects, sends a short message and waits for its echo, so the server has accepted
/// the connection and echoed. Returns the stream and the bytes sent.
fn connect_and_ping(addr: SocketAddr, i: usize) -> io::Result<(std::net::TcpStream, usize)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    // A server that stops echoing must fail the demo, not hang it.
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let msg = format!("hello {i}\n");
    stream.write_all(msg.as_bytes())?;
    let mut echo = vec![0; msg.len()];
    stream.read_exact(&mut echo)?;
    if echo != msg.as_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the echo differs from what was sent",
        ));
    }
    Ok((stream, msg.len()))
}

/// Takes dumps until the server is at rest and returns that one: `open` handlers
/// running, every byte the client sent echoed, and every task idle (none mid-poll
/// or queued, e.g. a ticker that just fired).
///
/// The echo count matters: the client can read a reply before the worker has reaped
/// the send's completion, which leaves the handler idle on `send` for a moment. A
/// handler counts its echo after the send completed, in the poll that goes on to start
/// the next read, so once it is counted and idle, it waits on `recv`.
fn settle(
    rt: &uringo::Runtime,
    stats: &Stats,
    open: usize,
    echoed: usize,
    timeout: Duration,
) -> io::Result<TaskDump> {
    let deadline = Instant::now() + timeout;
    loop {
        // Counters first: a handler that counted and is still mid-poll shows as running.
        let now_open = stats.open.load(Ordering::SeqCst);
        let now_echoed = stats.echoed.load(Ordering::SeqCst);
        let dump = rt.handle().dump();
        let all_idle = dump.tasks().iter().all(|t| t.state() == TaskState::Idle);
        if all_idle && now_open == open && now_echoed == echoed {
            return Ok(dump);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the server did not settle in {timeout:?}: {now_open} connections open \
                     (want {open}), {now_echoed} bytes echoed (want {echoed}), tasks:\n{dump}"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
