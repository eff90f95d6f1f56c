//! TCP proxy: round robin over upstreams, bounded copying both ways, graceful shutdown, and
//! zero-downtime restart (`--handoff`).
//!
//! ```sh
//! cargo run --release -p uringo-examples --bin tcp-proxy -- \
//!     --listen 127.0.0.1:8000 --upstream 127.0.0.1:8080,127.0.0.1:8081
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uringo::net::TcpListener;
use uringo_examples::cli;
use uringo_examples::handoff::{self, Offer};
use uringo_examples::server::{bind_reuseport, exit_code, init_logging};
use uringo_examples::shutdown::stop_on_signal;
use uringo_examples::tcp_proxy::{Config, Proxy};

const HELP: &str = "\
tcp-proxy: a TCP proxy on uringo (uringo::io::copy_bidirectional between the two sockets)

Usage: tcp-proxy --upstream ADDR[,ADDR..] [FLAGS]

Flags:
  --listen ADDR               address to accept connections on [default: 127.0.0.1:8000]
  --upstream ADDR[,ADDR..]    where connections go, round robin (required)
  --workers N                 worker threads (and SO_REUSEPORT listeners) [default: 2]
  --connect-timeout DURATION  limit on connecting to an upstream [default: 3s]
  --idle-timeout DURATION     close a connection with no bytes either way for this long [default: off]
  --max-connections N         connections served at once; more are reset [default: 10000]
  --drain-timeout DURATION    on SIGINT/SIGTERM or a handoff, how long live connections may finish [default: 10s]
  --handoff PATH              unix socket for restarts: take over the listeners of the process
                              listening there (--listen is then ignored), and listen there for a successor
  --help                      print this help

Durations: 250ms, 5s, 2m, or off.
";

struct Args {
    listen: SocketAddr,
    workers: usize,
    handoff: Option<PathBuf>,
    config: Config,
}

fn parse() -> Result<Option<Args>, cli::Error> {
    use lexopt::prelude::*;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8000).into();
    let mut workers = 2;
    let mut handoff = None;
    let mut upstreams = None;
    let mut config = Config {
        upstreams: Vec::new(),
        connect_timeout: Duration::from_secs(3),
        idle_timeout: None,
        max_connections: 10_000,
        drain_timeout: Duration::from_secs(10),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = cli::addr(parser.value()?)?,
            Long("upstream") => upstreams = Some(cli::addr_list(parser.value()?)?),
            Long("workers") => workers = cli::positive(parser.value()?)?,
            Long("connect-timeout") => {
                config.connect_timeout = cli::duration(parser.value()?)?.unwrap_or(Duration::MAX)
            }
            Long("idle-timeout") => config.idle_timeout = cli::duration(parser.value()?)?,
            Long("max-connections") => config.max_connections = cli::positive(parser.value()?)?,
            Long("drain-timeout") => {
                config.drain_timeout = cli::duration(parser.value()?)?.unwrap_or_default()
            }
            Long("handoff") => handoff = Some(parser.value()?.into()),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    config.upstreams = upstreams.ok_or("--upstream is required")?;
    Ok(Some(Args {
        listen,
        workers,
        handoff,
        config,
    }))
}

fn main() -> ExitCode {
    init_logging();
    exit_code("tcp-proxy", run())
}

fn run() -> std::io::Result<()> {
    let Some(args) = parse().map_err(cli::into_io)? else {
        print!("{HELP}");
        return Ok(());
    };
    let upstreams = format!("{:?}", args.config.upstreams);
    let proxy = Proxy::new(args.config)?;
    // Before the runtime starts: a predecessor's sockets arrive in one short exchange.
    let taken = match &args.handoff {
        Some(path) => handoff::take_over(path)?,
        None => None,
    };
    let rt = uringo::Builder::new()
        .worker_threads(args.workers)
        .build()?;
    rt.block_on(async move {
        let stop = CancellationToken::new();
        stop_on_signal(stop.clone())?;
        let (listeners, predecessor) = match taken {
            Some((listeners, predecessor)) => {
                let listeners: Vec<_> = listeners.into_iter().map(TcpListener::from_std).collect();
                tracing::info!(
                    count = listeners.len(),
                    "took over the listeners of the running process"
                );
                (listeners, Some(predecessor))
            }
            None => (bind_reuseport(args.listen, args.workers)?, None),
        };
        let local = listeners[0].local_addr()?;
        let offer = match &args.handoff {
            Some(path) => Some(Offer::new(path, &listeners)?),
            None => None,
        };
        let serving = uringo::spawn({
            let stop = stop.clone();
            async move { proxy.serve(listeners, stop).await }
        });
        if let Some(predecessor) = predecessor {
            uringo::spawn_blocking(move || predecessor.accepting())
                .await
                .map_err(std::io::Error::other)??;
            tracing::info!("the previous process stopped accepting");
        }
        if let Some(offer) = offer {
            offer.serve(stop.clone())?;
        }
        tracing::info!(%upstreams, workers = args.workers, "listening on {local}");
        let _ = serving.await;
        Ok::<_, std::io::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
