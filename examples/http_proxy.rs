//! HTTP/1.1 reverse proxy: hyper on both sides through `uringo::compat`.
//!
//! ```sh
//! cargo run --release -p uringo-examples --bin http-proxy -- \
//!     --listen 127.0.0.1:8000 --upstream 127.0.0.1:8080
//! ```

use std::process::ExitCode;
use std::time::Duration;

use uringo_examples::args::{self, Flag, Parsed};
use uringo_examples::http_proxy::{Config, HttpProxy};
use uringo_examples::server::{bind_reuseport, init_logging};
use uringo_examples::shutdown::{stop_on_signal, Stop};

const ABOUT: &str = "an HTTP/1.1 reverse proxy on uringo (hyper through uringo::compat)";

const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        value: "ADDR",
        default: Some("127.0.0.1:8000"),
        help: "address to accept connections on",
    },
    Flag {
        name: "upstream",
        value: "ADDR[,ADDR..]",
        default: None,
        help: "where requests go, round robin (required)",
    },
    Flag {
        name: "workers",
        value: "N",
        default: Some("2"),
        help: "worker threads (and SO_REUSEPORT listeners)",
    },
    Flag {
        name: "connect-timeout",
        value: "DURATION",
        default: Some("3s"),
        help: "limit on connecting to an upstream (then 504)",
    },
    Flag {
        name: "upstream-timeout",
        value: "DURATION",
        default: Some("30s"),
        help: "limit on an upstream's response head (then 504)",
    },
    Flag {
        name: "header-timeout",
        value: "DURATION",
        default: Some("30s"),
        help: "limit on reading a request head, keep-alive wait included",
    },
    Flag {
        name: "max-header-bytes",
        value: "N",
        default: Some("16384"),
        help: "largest request head (then 431); at least 8192",
    },
    Flag {
        name: "max-body-bytes",
        value: "N",
        default: Some("10485760"),
        help: "largest request body (then 413)",
    },
    Flag {
        name: "pool-size",
        value: "N",
        default: Some("256"),
        help: "idle keep-alive connections kept per upstream",
    },
    Flag {
        name: "drain-timeout",
        value: "DURATION",
        default: Some("10s"),
        help: "on SIGINT/SIGTERM, how long requests in progress may finish",
    },
];

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "http-proxy failed");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let args = match args::parse(std::env::args().skip(1), FLAGS)? {
        Parsed::Help => {
            print!("{}", args::usage("http-proxy", ABOUT, FLAGS));
            return Ok(());
        }
        Parsed::Args(args) => args,
    };
    let listen = args.addr("listen")?;
    let workers = args.number("workers")?.max(1);
    let forever = Duration::MAX;
    let config = Config {
        upstreams: args.addr_list("upstream")?,
        connect_timeout: args.duration("connect-timeout")?.unwrap_or(forever),
        upstream_timeout: args.duration("upstream-timeout")?.unwrap_or(forever),
        header_read_timeout: args.duration("header-timeout")?.unwrap_or(forever),
        max_header_bytes: args.number("max-header-bytes")?,
        max_body_bytes: args.number("max-body-bytes")?,
        pool_size: args.number("pool-size")?,
        drain_timeout: args.duration("drain-timeout")?.unwrap_or_default(),
    };
    let upstreams = args.get("upstream").unwrap_or_default().to_string();
    let proxy = HttpProxy::new(config)?;
    let rt = uringo::Builder::new().worker_threads(workers).build()?;
    rt.block_on(async move {
        let stop = Stop::new();
        stop_on_signal(stop.clone())?;
        let listeners = bind_reuseport(listen, workers)?;
        let local = listeners[0].local_addr()?;
        tracing::info!(%upstreams, workers, "listening on {local}");
        proxy.serve(listeners, stop).await;
        Ok::<_, std::io::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
