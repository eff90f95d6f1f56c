//! An HTTP/1.1 reverse proxy: hyper on both sides, through `uringo::compat`.
//!
//! Each client connection is served by hyper's HTTP/1 server (keep-alive, header read
//! timeout, header size limit); each request is forwarded to the next upstream in
//! round-robin order over a pooled keep-alive connection driven by hyper's HTTP/1
//! client. The proxy adds `X-Forwarded-For`, drops hop-by-hop headers, limits the body
//! size, and answers for its own failures:
//!
//! | status | when |
//! |---|---|
//! | 400 | the request does not parse (hyper answers), or HTTP/1.1 without `Host` |
//! | 413 | the body is larger than the limit (declared, or found while streaming) |
//! | 431 | the request head is larger than the limit (hyper answers) |
//! | 502 | the upstream refused the connection, reset it or sent garbage |
//! | 504 | connecting to the upstream, or its response head, took too long |
//!
//! ## The upstream pool
//!
//! An HTTP/1 connection carries one request at a time. The pool keeps, per upstream,
//! the `SendRequest` handles of connections it opened; a request takes one that is
//! ready (the previous response was read to the end), or opens a new connection. A
//! pooled connection the upstream closed meanwhile is caught by `try_send_request`,
//! which hands the request back unsent, and it is retried once on a new connection.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use uringo::compat::{Compat, HyperTimer};
use uringo::net::{TcpListener, TcpStream};

use crate::server::{is_fd_exhaustion, is_per_connection};
use crate::shutdown::{race, ConnectionGuard, Drain, Either, Stop};

/// The error type of the bodies the proxy passes along.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body as the proxy forwards it.
pub type ProxyBody = BoxBody<Bytes, BodyError>;

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

/// How long an accept loop waits after EMFILE before trying again.
const FD_BACKOFF: Duration = Duration::from_millis(50);
/// hyper's smallest allowed read buffer, which is what bounds the request head.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Headers that describe one hop, not the message: never forwarded.
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
    /// Where requests go, round robin.
    pub upstreams: Vec<SocketAddr>,
    /// Limit on opening a connection to an upstream (then 504).
    pub connect_timeout: Duration,
    /// Limit from sending a request upstream to receiving its response head (then 504).
    pub upstream_timeout: Duration,
    /// Limit on reading a request head from a client, including the wait for the next
    /// request on a keep-alive connection.
    pub header_read_timeout: Duration,
    /// Largest request head accepted (then 431); at least [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Largest request body accepted (then 413).
    pub max_body_bytes: usize,
    /// Idle keep-alive connections kept per upstream.
    pub pool_size: usize,
    /// After a shutdown signal, how long live connections may take to finish.
    pub drain_timeout: Duration,
}

/// The proxy's shared state.
#[derive(Debug)]
pub struct HttpProxy {
    config: Config,
    next_upstream: AtomicUsize,
    pools: Vec<Pool>,
    drain: Drain,
}

impl HttpProxy {
    /// A proxy for `config`; fails on an empty upstream list or a header limit below
    /// [`MIN_HEADER_BYTES`].
    pub fn new(config: Config) -> io::Result<Arc<HttpProxy>> {
        if config.upstreams.is_empty() {
            return Err(invalid("at least one upstream is needed".into()));
        }
        if config.max_header_bytes < MIN_HEADER_BYTES {
            return Err(invalid(format!(
                "the header limit must be at least {MIN_HEADER_BYTES} bytes"
            )));
        }
        let pools = config
            .upstreams
            .iter()
            .map(|&addr| Pool {
                addr,
                idle: Mutex::new(Vec::new()),
            })
            .collect();
        Ok(Arc::new(HttpProxy {
            config,
            next_upstream: AtomicUsize::new(0),
            pools,
            drain: Drain::new(),
        }))
    }

    /// Runs the accept loops until `stop`, then lets live connections finish their
    /// current request (idle keep-alive connections close at once), at most the drain
    /// timeout. Returns how many were still live then.
    pub async fn serve(self: &Arc<Self>, listeners: Vec<TcpListener>, stop: Stop) -> usize {
        let loops: Vec<_> = listeners
            .into_iter()
            .map(|listener| {
                let proxy = self.clone();
                let stop = stop.clone();
                uringo::spawn(async move { proxy.accept_loop(listener, stop).await })
            })
            .collect();
        for accept_loop in loops {
            let _ = accept_loop.await;
        }
        tracing::info!(
            live = self.drain.live(),
            "stopped accepting; draining connections"
        );
        let left = self
            .drain
            .wait(Instant::now() + self.config.drain_timeout)
            .await;
        if left > 0 {
            tracing::warn!(left, "drain deadline passed; closing remaining connections");
        } else {
            tracing::info!("all connections drained");
        }
        left
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, stop: Stop) {
        loop {
            let accepted = match race(stop.wait(), listener.accept()).await {
                Either::Left(()) => return,
                Either::Right(accepted) => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // No connection limit of its own: keep-alive makes connections
                    // cheap to hold, and the fd limit is the real bound (EMFILE below).
                    let guard = self.drain.admit();
                    let proxy = self.clone();
                    let stop = stop.clone();
                    uringo::spawn(async move {
                        proxy.serve_connection(stream, peer, stop, guard).await
                    });
                }
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
    }

    async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stop: Stop,
        _guard: ConnectionGuard,
    ) {
        let _ = stream.set_nodelay(true);
        let proxy = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let mut conn = pin!(hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .keep_alive(true)
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes)
            .serve_connection(Compat::new(stream), service));
        let served = match race(conn.as_mut(), stop.wait()).await {
            Either::Left(served) => served,
            Either::Right(()) => {
                // Finish the request in progress, if any, then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = served {
            tracing::debug!(%peer, error = %err, "client connection ended with an error");
        }
    }

    /// Forwards one request, or answers it with the proxy's own error response.
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
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
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if req.version() == Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
            return Err(ProxyError::BadRequest(
                "HTTP/1.1 request without Host".into(),
            ));
        }
        if let Some(declared) = content_length(req.headers()) {
            if declared > self.config.max_body_bytes as u64 {
                return Err(ProxyError::TooLarge);
            }
        }
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        append_forwarded_for(&mut parts.headers, peer);
        parts.uri = origin_form(&parts.uri);
        parts.version = Version::HTTP_11;
        let body = Limited::new(body, self.config.max_body_bytes)
            .map_err(BodyError)
            .boxed();
        let request = Request::from_parts(parts, body);

        let pool =
            &self.pools[self.next_upstream.fetch_add(1, Ordering::Relaxed) % self.pools.len()];
        let response = match uringo::time::timeout(
            self.config.upstream_timeout,
            pool.send(request, self.config.connect_timeout, self.config.pool_size),
        )
        .await
        {
            Ok(response) => response?,
            Err(_) => {
                return Err(ProxyError::GatewayTimeout(format!(
                    "{} sent no response within {:?}",
                    pool.addr, self.config.upstream_timeout
                )))
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(
            parts,
            body.map_err(|err| BodyError(Box::new(err))).boxed(),
        ))
    }
}

/// Keep-alive connections to one upstream.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<ProxyBody>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("addr", &self.addr).finish()
    }
}

impl Pool {
    /// Sends `request` on a pooled connection (or a new one) and returns the response
    /// head; the connection goes back to the pool to be reused once the response body
    /// has been read.
    async fn send(
        &self,
        request: Request<ProxyBody>,
        connect_timeout: Duration,
        pool_size: usize,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut request = request;
        let mut may_reuse = true;
        loop {
            let pooled = if may_reuse { self.take_ready() } else { None };
            let reused = pooled.is_some();
            let mut sender = match pooled {
                Some(sender) => sender,
                None => self.connect(connect_timeout).await?,
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.put_back(sender, pool_size);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    // The pooled connection died before taking the request: nothing was
                    // sent, so a retry on a fresh connection is safe for any method.
                    Some(unsent) if reused => {
                        tracing::debug!(upstream = %self.addr, error = %err.error(), "pooled connection was closed; retrying on a new one");
                        request = unsent;
                        may_reuse = false;
                    }
                    _ => return Err(ProxyError::from_upstream(self.addr, err.into_error())),
                },
            }
        }
    }

    fn take_ready(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = lock(&self.idle);
        idle.retain(|sender| !sender.is_closed());
        let ready = idle.iter().position(SendRequest::is_ready)?;
        Some(idle.swap_remove(ready))
    }

    fn put_back(&self, sender: SendRequest<ProxyBody>, pool_size: usize) {
        let mut idle = lock(&self.idle);
        if idle.len() < pool_size {
            idle.push(sender);
        }
        // Else dropped: the connection closes once its response is read.
    }

    async fn connect(
        &self,
        connect_timeout: Duration,
    ) -> Result<SendRequest<ProxyBody>, ProxyError> {
        let stream =
            match uringo::time::timeout(connect_timeout, TcpStream::connect(self.addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    return Err(ProxyError::BadGateway(format!(
                        "connecting to {}: {err}",
                        self.addr
                    )))
                }
                Err(_) => {
                    return Err(ProxyError::GatewayTimeout(format!(
                        "connecting to {} took longer than {connect_timeout:?}",
                        self.addr
                    )))
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(Compat::new(stream))
            .await
            .map_err(|err| ProxyError::from_upstream(self.addr, err))?;
        let addr = self.addr;
        uringo::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(upstream = %addr, error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
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
    /// Sorts a hyper client error: our body limit tripping while streaming is 413,
    /// hyper's own timeout 504, anything else the upstream's fault (502).
    fn from_upstream(addr: SocketAddr, err: hyper::Error) -> ProxyError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(cause) = source {
            if cause.is::<LengthLimitError>() {
                return ProxyError::TooLarge;
            }
            source = cause.source();
        }
        if err.is_timeout() {
            ProxyError::GatewayTimeout(format!("{addr}: {err}"))
        } else {
            ProxyError::BadGateway(format!("{addr}: {err}"))
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

    fn into_response(self) -> Response<ProxyBody> {
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

/// The path and query only: the upstream gets origin-form, whatever the client sent.
fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map(|pq| Uri::from(pq.clone()))
        .unwrap_or_else(|| Uri::from_static("/"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The pool is a plain Vec of handles: still consistent after a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
