//! Compatibility with the poll-based I/O ecosystem: tokio's and `futures`' I/O traits,
//! and hyper's runtime traits.
//!
//! uringo's streams do completion I/O with owned buffers (`stream.read(buf).await`
//! gives the buffer back with the result); the traits most libraries are written
//! against lend a borrowed buffer to each poll instead. [`Compat`] bridges the two by
//! owning the stream and one buffer per direction; its documentation states exactly
//! when a write counts as done and where errors are reported.
//!
//! Everything here is behind features, all off by default:
//!
//! | feature | gives |
//! |---|---|
//! | `tokio-io` | tokio's `AsyncRead`, `AsyncBufRead`, `AsyncWrite` for [`Compat`] (tokio without default features: no tokio runtime) |
//! | `futures-io` | `futures_io`'s `AsyncRead`, `AsyncBufRead`, `AsyncWrite` for [`Compat`] |
//! | `hyper` | `HyperExecutor`, `HyperTimer`, and `hyper::rt::Read`/`Write` for [`Compat`] |
//!
//! `hyper` does not need `tokio-io`: the adapter implements hyper's own I/O traits, so
//! hyper-util's `TokioIo` is not needed either (it still works, on top of `tokio-io`).
//!
//! ## Running hyper on uringo
//!
//! Accept with [`crate::net::TcpListener`], wrap each connection in [`Compat`], and
//! hand it to hyper with `HyperTimer` (for hyper's timeouts) and `HyperExecutor`
//! (wherever hyper asks for one: the HTTP/2 builders, hyper-util's client):
//!
//! ```
//! # #[cfg(feature = "hyper")]
//! # fn main() {
//! use http_body_util::{BodyExt, Full};
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use uringo::compat::{Compat, HyperExecutor, HyperTimer};
//! use uringo::net::{TcpListener, TcpStream};
//!
//! async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
//!     let body = req.into_body().collect().await?.to_bytes();
//!     Ok(Response::new(Full::new(Bytes::from(format!("got {} bytes", body.len())))))
//! }
//!
//! uringo::Runtime::new().unwrap().block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     // The server: one task per connection.
//!     uringo::spawn(async move {
//!         loop {
//!             let (stream, _) = listener.accept().await.unwrap();
//!             uringo::spawn(async move {
//!                 let served = hyper::server::conn::http1::Builder::new()
//!                     .timer(HyperTimer)
//!                     .serve_connection(Compat::new(stream), hyper::service::service_fn(hello))
//!                     .await;
//!                 if let Err(err) = served {
//!                     eprintln!("connection error: {err}");
//!                 }
//!             });
//!         }
//!     });
//!     // A client over one keep-alive connection; hyper's connection task is spawned
//!     // with the executor.
//!     let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
//!     hyper::rt::Executor::execute(&HyperExecutor::new(), async move {
//!         let _ = conn.await;
//!     });
//!     let request = Request::post("/").body(Full::new(Bytes::from_static(b"ping"))).unwrap();
//!     let response = sender.send_request(request).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, "got 4 bytes");
//! });
//! # }
//! # #[cfg(not(feature = "hyper"))]
//! # fn main() {}
//! ```
//!
//! A stream type becomes adaptable by implementing the sealed [`CompatStream`] marker,
//! which uringo does for each of its stream sockets.

mod stream;

#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "tokio-io")]
mod tokio_io;

#[cfg(feature = "hyper")]
pub use self::hyper::{HyperExecutor, HyperTimer};
pub use stream::{Compat, CompatStream, DEFAULT_READ_CAPACITY, DEFAULT_WRITE_CAPACITY};
