//! Receiving into a shared buffer pool: multishot recv with provided buffers.
//!
//! A connection read with [`TcpStream::read`] pins its buffer while it waits; a proxy
//! with thousands of idle connections pins thousands of buffers. [`TcpStream::recv_stream`]
//! instead arms one multishot recv that names a [`BufPool`]: the kernel takes a buffer
//! only when bytes arrive, so idle connections hold none. Each chunk arrives as a
//! [`PooledBuf`]; dropping it (on any thread) returns the buffer.
//!
//! The pool is registered lazily on each worker's ring the first time a recv using it
//! is submitted there (the recv goes to the ring of whichever worker polls it), and the
//! stream re-arms itself transparently when the pool runs dry. The details — per-ring
//! registration, the return path, what happens on kernels without buffer rings (a
//! single-shot fallback into owned buffers) — are in `uringo_uring`'s `BufPool` docs.

use std::io;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use uringo_uring::op::RecvMultiStream;
pub use uringo_uring::{BufPool, PooledBuf};

use super::split::StreamSocket;
use super::{TcpStream, UnixStream};
use crate::runtime::coop;

impl TcpStream {
    /// A stream of the bytes received on this connection, in buffers of `pool`.
    ///
    /// Yields `Ok(buf)` per received chunk (never empty) in order, one `Err` if the
    /// connection fails (then ends), and ends with `None` at EOF. Dropping the stream
    /// cancels the receive. The stream borrows the socket, so writes can go on at the
    /// same time.
    ///
    /// ```
    /// use uringo::net::{BufPool, TcpListener, TcpStream};
    ///
    /// # let rt = uringo::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let pool = BufPool::new(64, 4096).unwrap();
    ///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     uringo::spawn(async move {
    ///         let client = TcpStream::connect(addr).await.unwrap();
    ///         let (res, _) = client.write_all(b"hello".to_vec()).await;
    ///         res.unwrap();
    ///     });
    ///     let (conn, _) = listener.accept().await.unwrap();
    ///     let mut received = Vec::new();
    ///     let mut chunks = conn.recv_stream(&pool);
    ///     while let Some(chunk) = chunks.next().await {
    ///         received.extend_from_slice(&chunk.unwrap());
    ///     }
    ///     assert_eq!(received, b"hello");
    /// });
    /// ```
    pub fn recv_stream<'a>(&'a self, pool: &BufPool) -> RecvStream<'a> {
        RecvStream::new(self, pool)
    }
}

impl UnixStream {
    /// A stream of the bytes received on this connection, in buffers of `pool` (see
    /// [`TcpStream::recv_stream`]).
    pub fn recv_stream<'a>(&'a self, pool: &BufPool) -> RecvStream<'a> {
        RecvStream::new(self, pool)
    }
}

/// The stream [`TcpStream::recv_stream`] returns: received chunks in [`PooledBuf`]s of a
/// [`BufPool`], until EOF or an error.
///
/// Each chunk consumes one unit of the task's cooperative budget, so a connection that
/// always has data cannot starve the other tasks of its worker.
#[derive(Debug)]
pub struct RecvStream<'a> {
    inner: RecvMultiStream,
    /// The socket the recv reads; borrowed so it outlives the stream (and its op).
    _socket: PhantomData<&'a ()>,
}

impl<'a> RecvStream<'a> {
    /// A stream over a connected stream socket of this crate.
    pub(crate) fn new<S: StreamSocket>(socket: &'a S, pool: &BufPool) -> RecvStream<'a> {
        RecvStream {
            inner: RecvMultiStream::shared(socket.shared_fd(), pool),
            _socket: PhantomData,
        }
    }

    /// The next chunk, the connection's error, or `None` at EOF (and after an error).
    pub async fn next(&mut self) -> Option<io::Result<PooledBuf>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next chunk (see [`RecvStream::next`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<PooledBuf>>> {
        let budget = std::task::ready!(coop::poll_proceed(cx));
        let item = self.inner.poll_next(cx);
        if item.is_ready() {
            budget.made_progress();
        }
        item
    }
}
