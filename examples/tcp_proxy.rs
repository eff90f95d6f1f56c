//! TCP proxy: round robin over upstreams, zero-copy splice, graceful shutdown.
//!
//! ```sh
//! cargo run --release -p uringo-examples --bin tcp-proxy -- \
//!     --listen 127.0.0.1:8000 --upstream 127.0.0.1:8080,127.0.0.1:8081
//! ```

use std::process::ExitCode;

use uringo_examples::args::{self, Flag, Parsed};
use uringo_examples::server::{bind_reuseport, init_logging};
use uringo_examples::shutdown::{stop_on_signal, Stop};
use uringo_examples::tcp_proxy::{Config, Proxy};

const ABOUT: &str = "a TCP proxy on uringo (zero-copy splice between the two sockets)";

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
        help: "where connections go, round robin (required)",
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
        help: "limit on connecting to an upstream",
    },
    Flag {
        name: "idle-timeout",
        value: "DURATION",
        default: Some("off"),
        help: "close a connection with no bytes either way for this long",
    },
    Flag {
        name: "copy",
        value: "splice|buffer",
        default: Some("splice"),
        help: "move bytes by zero-copy splice, or through a buffer per direction",
    },
    Flag {
        name: "max-connections",
        value: "N",
        default: Some("10000"),
        help: "connections served at once; more are reset",
    },
    Flag {
        name: "drain-timeout",
        value: "DURATION",
        default: Some("10s"),
        help: "on SIGINT/SIGTERM, how long live connections may finish",
    },
];

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "tcp-proxy failed");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let args = match args::parse(std::env::args().skip(1), FLAGS)? {
        Parsed::Help => {
            print!("{}", args::usage("tcp-proxy", ABOUT, FLAGS));
            return Ok(());
        }
        Parsed::Args(args) => args,
    };
    let listen = args.addr("listen")?;
    let workers = args.number("workers")?.max(1);
    let config = Config {
        upstreams: args.addr_list("upstream")?,
        connect_timeout: args
            .duration("connect-timeout")?
            .unwrap_or(std::time::Duration::MAX),
        idle_timeout: args.duration("idle-timeout")?,
        copy: args.get("copy").unwrap_or("splice").parse()?,
        max_connections: args.number("max-connections")?,
        drain_timeout: args.duration("drain-timeout")?.unwrap_or_default(),
    };
    let upstreams = args.get("upstream").unwrap_or_default().to_string();
    let proxy = Proxy::new(config)?;
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
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
