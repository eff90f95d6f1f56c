//! An HTTP reverse proxy: hyper on both sides, through `uringo::compat`.
//!
//! Clients speak HTTP/1.1 or HTTP/2 (h2c with prior knowledge on plain TCP; h2 or
//! HTTP/1.1 by ALPN behind `--tls-cert`), detected per connection by hyper-util's
//! `auto` server. Each request goes to the next upstream in round-robin order over
//! HTTP/1.1, through hyper-util's pooled client (`hyper_util::client::legacy::Client`)
//! behind [`UpstreamConnector`], which connects with uringo's `TcpStream`. The proxy
//! adds `X-Forwarded-For`, drops hop-by-hop headers, limits the body size, passes
//! `Upgrade` (WebSocket) through, and answers for its own failures:
//!
//! | status | when |
//! |---|---|
//! | 400 | the request does not parse (hyper answers), or HTTP/1.1 without `Host` |
//! | 413 | the body is larger than the limit (declared, or found while streaming) |
//! | 431 | the request head is larger than the limit (hyper answers) |
//! | 502 | no upstream accepted the connection, or it reset it or sent garbage |
//! | 504 | connecting to the upstreams, or the response head, took too long |
//!
//! ## Upstream connections
//!
//! hyper-util's pool keys connections by the request URI's authority, which names the
//! upstream the round robin chose. A new connection is opened by
//! [`UpstreamConnector`]: the chosen upstream first and, if it refuses or times out,
//! the others in turn (failover); a connection that reached another upstream is then
//! pooled under the chosen one's name until it idles out. The pool keeps at most
//! `pool_max_idle` idle connections per upstream and closes one idle for
//! `pool_idle_timeout`; a request that a pooled connection closed before taking it is
//! retried on another by the pool itself.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::{Connect, Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio_util::sync::CancellationToken;
use uringo::compat::{Compat, HyperExecutor, HyperTimer};
use uringo::net::{TcpListener, TcpStream};

use crate::server::{accept_all, Connections};
use crate::shutdown::drain;

/// The error type of the bodies the proxy passes along.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body as the proxy forwards it.
pub type ProxyBody = BoxBody<Bytes, BodyError>;
/// A task the proxy starts beside a request: an upgraded connection's tunnel.
pub type Spawn = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;

/// Why a body stopped part way: the client or upstream failed, or the size limit hit.
///
/// A named type rather than `BoxError` itself: with a boxed trait object as the body
/// error, hyper's `Into<BoxError>` bounds hit a compiler limitation on higher-ranked
/// lifetimes when the connection future is checked for `Send` (rust-lang/rust#102211).
#[derive(Debug)]
pub struct BodyError(BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// hyper's smallest allowed read buffer, which is what bounds the request head.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Headers that describe one hop, not the message: never forwarded as they are.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the proxy does; see `http-proxy --help` for each field's flag.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go, round robin, failing over in turn.
    pub upstreams: Vec<SocketAddr>,
    /// Limit on connecting to one upstream.
    pub connect_timeout: Duration,
    /// Limit from sending a request upstream to receiving its response head (then 504).
    pub upstream_timeout: Duration,
    /// Limit on reading a request head from a client, including a new connection's wait
    /// for its first request and the wait for the next one on a keep-alive connection,
    /// and on the TLS handshake.
    pub header_read_timeout: Duration,
    /// Largest request head accepted (then 431); at least [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Largest request body accepted (then 413).
    pub max_body_bytes: usize,
    /// Idle keep-alive connections kept per upstream.
    pub pool_max_idle: usize,
    /// An idle upstream connection is closed after this long (`None`: kept).
    pub pool_idle_timeout: Option<Duration>,
    /// Client connections served at once; more are reset.
    pub max_connections: usize,
    /// After a shutdown signal, how long live connections may take to finish.
    pub drain_timeout: Duration,
    /// Terminate TLS on the client side with this config.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Connects to upstreams for hyper-util's pooled client: a `tower::Service<Uri>` that
/// dials with uringo's [`TcpStream`] and wraps the stream in [`Compat`].
///
/// The URI's authority names the upstream to try first; if it refuses or does not
/// answer within the connect timeout, the others follow in their configured order.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    upstreams: Arc<[SocketAddr]>,
    connect_timeout: Duration,
}

impl UpstreamConnector {
    /// A connector over `upstreams`, each attempt limited to `connect_timeout`.
    pub fn new(upstreams: Vec<SocketAddr>, connect_timeout: Duration) -> UpstreamConnector {
        UpstreamConnector {
            upstreams: upstreams.into(),
            connect_timeout,
        }
    }

    async fn connect(self, uri: Uri) -> io::Result<UpstreamConn> {
        let first: Option<SocketAddr> = uri.authority().and_then(|a| a.as_str().parse().ok());
        let rest = self.upstreams.iter().copied().filter(|&a| Some(a) != first);
        let mut last_err = None;
        for addr in first.into_iter().chain(rest) {
            match uringo::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(UpstreamConn(Compat::new(stream)));
                }
                Ok(Err(err)) => {
                    tracing::warn!(upstream = %addr, error = %err, "upstream connect failed");
                    last_err = Some(err);
                }
                Err(_) => {
                    tracing::warn!(upstream = %addr, timeout = ?self.connect_timeout, "upstream connect timed out");
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

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamConn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<UpstreamConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// An upstream connection: a [`Compat`] stream, with what hyper-util's pool asks of a
/// connection ([`Connection`]).
#[derive(Debug)]
pub struct UpstreamConn(Compat<TcpStream>);

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for UpstreamConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl Write for UpstreamConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What the proxy does to a request, whatever runtime carries it: checks, header
/// rewriting, the choice of upstream, the pooled client, the error answers and the
/// `Upgrade` tunnel. `http-proxy` runs it on uringo, `http-proxy-tokio` on tokio.
pub struct Forwarder<C> {
    client: Client<C, ProxyBody>,
    upstreams: Vec<SocketAddr>,
    next_upstream: AtomicUsize,
    upstream_timeout: Duration,
    max_body_bytes: usize,
    spawn: Spawn,
    sleep: fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<C> std::fmt::Debug for Forwarder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Forwarder<C> {
    /// A forwarder to `upstreams` through `client`; `spawn` starts upgrade tunnels and
    /// `sleep` times the upstream timeout, both on the caller's runtime.
    pub fn new(
        client: Client<C, ProxyBody>,
        upstreams: Vec<SocketAddr>,
        upstream_timeout: Duration,
        max_body_bytes: usize,
        spawn: Spawn,
        sleep: fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Forwarder<C> {
        Forwarder {
            client,
            upstreams,
            next_upstream: AtomicUsize::new(0),
            upstream_timeout,
            max_body_bytes,
            spawn,
            sleep,
        }
    }

    /// Forwards one request, or answers it with the proxy's own error response.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        match self.forward(req, peer).await {
            Ok(response) => response,
            Err(err) => {
                tracing::info!(%peer, %method, %path, status = err.status().as_u16(), error = %err, "request failed");
                err.into_response()
            }
        }
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if req.version() == Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
            return Err(ProxyError::BadRequest(
                "HTTP/1.1 request without Host".into(),
            ));
        }
        if let Some(declared) = content_length(req.headers()) {
            if declared > self.max_body_bytes as u64 {
                return Err(ProxyError::TooLarge);
            }
        }
        let upgrade = upgrade_protocol(&req);
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            set_upgrade(&mut parts.headers, protocol.clone());
        }
        // HTTP/2 carries the host in the URI (`:authority`); HTTP/1.1 upstreams want it
        // in `Host`.
        if let Some(authority) = parts.uri.authority() {
            if !parts.headers.contains_key(header::HOST) {
                if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                    parts.headers.insert(header::HOST, host);
                }
            }
        }
        append_forwarded_for(&mut parts.headers, peer);
        let upstream = self.upstreams
            [self.next_upstream.fetch_add(1, Ordering::Relaxed) % self.upstreams.len()];
        parts.uri = upstream_uri(upstream, &parts.uri);
        parts.version = Version::HTTP_11;
        let body = Limited::new(body, self.max_body_bytes)
            .map_err(BodyError)
            .boxed();
        let request = Request::from_parts(parts, body);

        let sent = pin!(self.client.request(request));
        let timeout = (self.sleep)(self.upstream_timeout);
        let mut response = match futures_util::future::select(sent, timeout).await {
            Either::Left((response, _)) => {
                response.map_err(|err| ProxyError::from_client(upstream, err))?
            }
            Either::Right(_) => {
                return Err(ProxyError::GatewayTimeout(format!(
                    "{upstream} sent no response within {:?}",
                    self.upstream_timeout
                )))
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let (Some(protocol), Some(client_upgrade)) = (upgrade, client_upgrade) {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                (self.spawn)(Box::pin(tunnel(client_upgrade, upstream_upgrade, peer)));
                let (mut parts, _) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                set_upgrade(&mut parts.headers, protocol);
                return Ok(Response::from_parts(parts, empty()));
            }
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            body.map_err(|err| BodyError(Box::new(err))).boxed(),
        ))
    }
}

/// Copies both ways between the client's and the upstream's upgraded connections until
/// both are done.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    peer: SocketAddr,
) {
    let (client, upstream) = match futures_util::future::try_join(client, upstream).await {
        Ok(both) => both,
        Err(err) => {
            tracing::info!(%peer, error = %err, "upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((sent, received)) => {
            tracing::debug!(%peer, sent, received, "upgraded connection closed")
        }
        Err(err) => tracing::debug!(%peer, error = %err, "upgraded connection ended with an error"),
    }
}

/// The proxy's shared state.
pub struct HttpProxy {
    config: Config,
    forwarder: Forwarder<UpstreamConnector>,
    server: auto::Builder<HyperExecutor>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Connections,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("config", &self.config)
            .finish()
    }
}

impl HttpProxy {
    /// A proxy for `config`; fails on an empty upstream list, a zero connection limit
    /// or a header limit below [`MIN_HEADER_BYTES`]. Call it on a uringo runtime: the
    /// pool's idle sweeper is spawned there.
    pub fn new(config: Config) -> io::Result<Arc<HttpProxy>> {
        if config.upstreams.is_empty() {
            return Err(invalid("at least one upstream is needed".into()));
        }
        if config.max_connections == 0 {
            return Err(invalid("max connections must be at least 1".into()));
        }
        if config.max_header_bytes < MIN_HEADER_BYTES {
            return Err(invalid(format!(
                "the header limit must be at least {MIN_HEADER_BYTES} bytes"
            )));
        }
        let connector = UpstreamConnector::new(config.upstreams.clone(), config.connect_timeout);
        let client = Client::builder(HyperExecutor::new())
            .timer(HyperTimer)
            .pool_timer(HyperTimer)
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .build(connector);
        let connections = Connections::new(config.max_connections);
        let spawn: Spawn = {
            let connections = connections.tasks().clone();
            Arc::new(move |task| drop(uringo::spawn(connections.track_future(task))))
        };
        let forwarder = Forwarder::new(
            client,
            config.upstreams.clone(),
            config.upstream_timeout,
            config.max_body_bytes,
            spawn,
            |d| Box::pin(uringo::time::sleep(d)),
        );
        let mut server = auto::Builder::new(HyperExecutor::new());
        server
            .http1()
            .timer(HyperTimer)
            .keep_alive(true)
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes);
        server
            .http2()
            .timer(HyperTimer)
            .max_header_list_size(config.max_header_bytes.min(u32::MAX as usize) as u32);
        let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        Ok(Arc::new(HttpProxy {
            config,
            forwarder,
            server,
            tls,
            connections,
        }))
    }

    /// Client connections (and upgraded tunnels) live now.
    pub fn live_connections(&self) -> usize {
        self.connections.tasks().len()
    }

    /// Runs the accept loops until `stop`, then lets live connections finish their
    /// current request (idle keep-alive connections close at once), at most the drain
    /// timeout. Returns how many were still live then.
    pub async fn serve(
        self: &Arc<Self>,
        listeners: Vec<TcpListener>,
        stop: CancellationToken,
    ) -> usize {
        let proxy = self.clone();
        let on_stop = stop.clone();
        accept_all(listeners, stop, move |stream, peer| {
            let (served, stop) = (proxy.clone(), on_stop.clone());
            proxy.connections.serve(stream, peer, |stream| async move {
                served.serve_connection(stream, peer, stop).await
            })
        })
        .await;
        drain(self.connections.tasks(), self.config.drain_timeout).await
    }

    async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: CancellationToken,
    ) {
        let _ = stream.set_nodelay(true);
        let stream = Compat::new(stream);
        let Some(acceptor) = &self.tls else {
            return self.serve_http(stream, peer, stop).await;
        };
        let handshake = acceptor.accept(stream);
        match uringo::time::timeout(self.config.header_read_timeout, handshake).await {
            Ok(Ok(tls)) => self.serve_http(TokioIo::new(tls), peer, stop).await,
            Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP/1 or HTTP/2 (whichever the client speaks) on one connection.
    async fn serve_http<I>(self: &Arc<Self>, io: I, peer: SocketAddr, stop: CancellationToken)
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let proxy = self.clone();
        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let requested = requested.clone();
            hyper::service::service_fn(move |req| {
                requested.store(true, Ordering::Relaxed);
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.forwarder.handle(req, peer).await) }
            })
        };
        // The first request's head must arrive within the header timeout, counted from
        // here: hyper-util's `auto` reads the first bytes to tell HTTP/1 from HTTP/2
        // with no limit of its own, and hyper's header timeout starts only after it.
        // Without this, connections that never send a byte are held until the client
        // closes them.
        let first_request_late = async {
            uringo::time::sleep(self.config.header_read_timeout).await;
            if requested.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let mut conn = pin!(self.server.serve_connection_with_upgrades(io, service));
        let (stopped, first_request_late) = (pin!(stop.cancelled()), pin!(first_request_late));
        let ended = futures_util::future::select(stopped, first_request_late);
        let served = match futures_util::future::select(conn.as_mut(), ended).await {
            Either::Left((served, _)) => served,
            Either::Right((Either::Left(_), mut conn)) => {
                // Finish the requests in progress, if any, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            Either::Right((Either::Right(_), _)) => {
                tracing::debug!(%peer, "no request within the header timeout");
                return;
            }
        };
        if let Err(err) = served {
            tracing::debug!(%peer, error = %err, "client connection ended with an error");
        }
    }
}

/// Why the proxy answers a request itself.
#[derive(Debug)]
pub enum ProxyError {
    /// 400: the request cannot be forwarded as it is.
    BadRequest(String),
    /// 413: the body is over the limit.
    TooLarge,
    /// 502: the upstream failed.
    BadGateway(String),
    /// 504: the upstream was too slow.
    GatewayTimeout(String),
}

impl ProxyError {
    /// Sorts a client error: our body limit tripping while streaming is 413, a
    /// connect or read that timed out 504, anything else the upstream's fault (502).
    fn from_client(addr: SocketAddr, err: hyper_util::client::legacy::Error) -> ProxyError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut timed_out = false;
        while let Some(cause) = source {
            if cause.is::<LengthLimitError>() {
                return ProxyError::TooLarge;
            }
            timed_out |= cause
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
                || cause
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
            source = cause.source();
        }
        let what = if err.is_connect() {
            "connecting via"
        } else {
            "from"
        };
        if timed_out {
            ProxyError::GatewayTimeout(format!("{what} {addr}: {err:#}"))
        } else {
            ProxyError::BadGateway(format!("{what} {addr}: {err:#}"))
        }
    }

    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The proxy's own answer for this error.
    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let body = format!("{}\n", status.canonical_reason().unwrap_or("error"));
        let mut response = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::BadRequest(why) => write!(f, "bad request: {why}"),
            ProxyError::TooLarge => f.write_str("request body over the limit"),
            ProxyError::BadGateway(why) => write!(f, "upstream failed: {why}"),
            ProxyError::GatewayTimeout(why) => write!(f, "upstream timed out: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Removes the hop-by-hop headers, including any that `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends the client's address to `X-Forwarded-For`, folding earlier values (from
/// proxies in front of this one) into one comma-separated header.
fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    const XFF: &str = "x-forwarded-for";
    let mut chain: Vec<String> = headers
        .get_all(XFF)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_string)
        .collect();
    chain.push(peer.ip().to_string());
    if let Ok(value) = HeaderValue::from_str(&chain.join(", ")) {
        headers.insert(XFF, value);
    }
}

/// `http://{upstream}{path and query}`: the authority picks the pool (and the upstream
/// tried first); the client sends the upstream origin-form, whatever the client sent.
fn upstream_uri(upstream: SocketAddr, uri: &Uri) -> Uri {
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    Uri::builder()
        .scheme("http")
        .authority(upstream.to_string())
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` and an
/// `Upgrade` header), if any.
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Puts back the two hop-by-hop headers an upgrade needs on the next hop.
fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
