//! HTTP reverse proxy: hyper on both sides through `uringo::compat`; HTTP/1.1 and h2c
//! (or h2 over TLS) to clients, HTTP/1.1 to a pool of upstream connections.
//!
//! ```sh
//! cargo run --release -p uringo-examples --bin http-proxy -- \
//!     --listen 127.0.0.1:8000 --upstream 127.0.0.1:8080
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uringo_examples::cli;
use uringo_examples::http_proxy::{Config, HttpProxy};
use uringo_examples::server::{bind_reuseport, exit_code, init_logging};
use uringo_examples::shutdown::stop_on_signal;

const HELP: &str = "\
http-proxy: an HTTP reverse proxy on uringo (hyper through uringo::compat)

Usage: http-proxy --upstream ADDR[,ADDR..] [FLAGS]

Clients may speak HTTP/1.1 or HTTP/2 (h2c with prior knowledge; h2 by ALPN with TLS).

Flags:
  --listen ADDR                 address to accept connections on [default: 127.0.0.1:8000]
  --upstream ADDR[,ADDR..]      where requests go, round robin, failing over in turn (required)
  --workers N                   worker threads (and SO_REUSEPORT listeners) [default: 2]
  --connect-timeout DURATION    limit on connecting to one upstream [default: 3s]
  --upstream-timeout DURATION   limit on an upstream's response head (then 504) [default: 30s]
  --header-timeout DURATION     limit on reading a request head, a new connection's and
                                the keep-alive wait and TLS handshake included [default: 30s]
  --max-header-bytes N          largest request head (then 431); at least 8192 [default: 16384]
  --max-body-bytes N            largest request body (then 413) [default: 10485760]
  --pool-size N                 idle keep-alive connections kept per upstream [default: 256]
  --pool-idle-timeout DURATION  close an upstream connection idle this long [default: 90s]
  --max-connections N           client connections served at once; more are reset [default: 10000]
  --drain-timeout DURATION      on SIGINT/SIGTERM, how long requests in progress may finish [default: 10s]
  --tls-cert PATH               terminate TLS with this PEM certificate chain (with --tls-key)
  --tls-key PATH                the PEM private key of --tls-cert
  --help                        print this help

Durations: 250ms, 5s, 2m, or off.
";

struct Args {
    listen: SocketAddr,
    workers: usize,
    tls: Option<(PathBuf, PathBuf)>,
    config: Config,
}

fn parse() -> Result<Option<Args>, cli::Error> {
    use lexopt::prelude::*;
    let forever = Duration::MAX;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8000).into();
    let mut workers = 2;
    let (mut cert, mut key) = (None, None);
    let mut upstreams = None;
    let mut config = Config {
        upstreams: Vec::new(),
        connect_timeout: Duration::from_secs(3),
        upstream_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        max_body_bytes: 10 * 1024 * 1024,
        pool_max_idle: 256,
        pool_idle_timeout: Some(Duration::from_secs(90)),
        max_connections: 10_000,
        drain_timeout: Duration::from_secs(10),
        tls: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = cli::addr(parser.value()?)?,
            Long("upstream") => upstreams = Some(cli::addr_list(parser.value()?)?),
            Long("workers") => workers = cli::positive(parser.value()?)?,
            Long("connect-timeout") => {
                config.connect_timeout = cli::duration(parser.value()?)?.unwrap_or(forever)
            }
            Long("upstream-timeout") => {
                config.upstream_timeout = cli::duration(parser.value()?)?.unwrap_or(forever)
            }
            Long("header-timeout") => {
                config.header_read_timeout = cli::duration(parser.value()?)?.unwrap_or(forever)
            }
            Long("max-header-bytes") => config.max_header_bytes = parser.value()?.parse()?,
            Long("max-body-bytes") => config.max_body_bytes = parser.value()?.parse()?,
            Long("pool-size") => config.pool_max_idle = parser.value()?.parse()?,
            Long("pool-idle-timeout") => config.pool_idle_timeout = cli::duration(parser.value()?)?,
            Long("max-connections") => config.max_connections = cli::positive(parser.value()?)?,
            Long("drain-timeout") => {
                config.drain_timeout = cli::duration(parser.value()?)?.unwrap_or_default()
            }
            Long("tls-cert") => cert = Some(PathBuf::from(parser.value()?)),
            Long("tls-key") => key = Some(PathBuf::from(parser.value()?)),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    config.upstreams = upstreams.ok_or("--upstream is required")?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Some(Args {
        listen,
        workers,
        tls,
        config,
    }))
}

fn main() -> ExitCode {
    init_logging();
    exit_code("http-proxy", run())
}

fn run() -> std::io::Result<()> {
    let Some(mut args) = parse().map_err(cli::into_io)? else {
        print!("{HELP}");
        return Ok(());
    };
    if let Some((cert, key)) = &args.tls {
        args.config.tls = Some(uringo_examples::tls::server_config(cert, key)?);
    }
    let upstreams = format!("{:?}", args.config.upstreams);
    let scheme = if args.tls.is_some() { "https" } else { "http" };
    let rt = uringo::Builder::new()
        .worker_threads(args.workers)
        .build()?;
    rt.block_on(async move {
        let stop = CancellationToken::new();
        stop_on_signal(stop.clone())?;
        let proxy = HttpProxy::new(args.config)?;
        let listeners = bind_reuseport(args.listen, args.workers)?;
        let local = listeners[0].local_addr()?;
        tracing::info!(%upstreams, workers = args.workers, %scheme, "listening on {local}");
        proxy.serve(listeners, stop).await;
        Ok::<_, std::io::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
