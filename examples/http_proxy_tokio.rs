//! The tokio twin of `http-proxy`, for side-by-side measurement: the same request
//! handling ([`Forwarder`]: checks, header rewriting, round robin, hyper-util's pooled
//! client, error answers, upgrades) and the same hyper-util server (HTTP/1.1 and h2c),
//! on a tokio runtime with tokio's sockets and hyper-util's `HttpConnector`. Only
//! what a benchmark needs: no TLS, no failover, no connection limit, no drain.
//!
//! ```sh
//! cargo run --release -p uringo-examples --bin http-proxy-tokio -- \
//!     --listen 127.0.0.1:8002 --upstream 127.0.0.1:8080 --workers 1
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use uringo_examples::cli;
use uringo_examples::http_proxy::{Forwarder, Spawn};
use uringo_examples::server::init_logging;

const HELP: &str = "\
http-proxy-tokio: http-proxy's request handling on a tokio runtime (for comparison)

Usage: http-proxy-tokio --upstream ADDR[,ADDR..] [FLAGS]

Flags:
  --listen ADDR             address to accept connections on [default: 127.0.0.1:8002]
  --upstream ADDR[,ADDR..]  where requests go, round robin (required)
  --workers N               tokio worker threads [default: 2]
  --help                    print this help
";

fn parse() -> Result<Option<(SocketAddr, Vec<SocketAddr>, usize)>, cli::Error> {
    use lexopt::prelude::*;
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8002).into();
    let (mut upstreams, mut workers) = (None, 2);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = cli::addr(parser.value()?)?,
            Long("upstream") => upstreams = Some(cli::addr_list(parser.value()?)?),
            Long("workers") => workers = cli::positive(parser.value()?)?,
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some((
        listen,
        upstreams.ok_or("--upstream is required")?,
        workers,
    )))
}

fn main() -> ExitCode {
    init_logging();
    let (listen, upstreams, workers) = match parse() {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            tracing::error!(error = %cli::into_io(err), "http-proxy-tokio failed");
            return ExitCode::FAILURE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(serve(listen, upstreams)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "http-proxy-tokio failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> std::io::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector);
    let spawn: Spawn = Arc::new(|task| drop(tokio::spawn(task)));
    let forwarder = Arc::new(Forwarder::new(
        client,
        upstreams.clone(),
        Duration::from_secs(30),
        10 * 1024 * 1024,
        spawn,
        |d| Box::pin(tokio::time::sleep(d)),
    ));
    let mut server = auto::Builder::new(TokioExecutor::new());
    server
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(Duration::from_secs(30));
    server.http2().timer(TokioTimer::new());
    let server = Arc::new(server);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(?upstreams, "listening on {}", listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let (forwarder, server) = (forwarder.clone(), server.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let forwarder = forwarder.clone();
                async move { Ok::<_, Infallible>(forwarder.handle(req, peer).await) }
            });
            if let Err(err) = server
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "client connection ended with an error");
            }
        });
    }
}
