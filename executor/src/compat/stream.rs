//! [`Compat`]: one owned stream, one internal read buffer, one internal write buffer,
//! at most one receive and one send in flight.
//!
//! The poll-based traits this adapter serves lend it a borrowed buffer for the length of
//! one call; io_uring needs a buffer it can own until the CQE. So every byte goes
//! through a buffer the adapter owns: a receive lands in the read buffer and is copied
//! out, a write is copied into the write buffer and sent from there.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown as How;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use uringo_uring::op::{Anchored, Operation, PollAdd, Recv, Send};
use uringo_uring::{IoBuf, Op, Slice};

use crate::net::socket::{self, SocketOp, NO_WAIT};
use crate::net::{StreamSocket, TcpStream};
use crate::runtime::coop;

/// Default capacity of the read buffer: one receive asks the kernel for up to this much.
pub const DEFAULT_READ_CAPACITY: usize = 16 * 1024;

/// Default capacity of the write buffer: the most one write call sends in one batch.
pub const DEFAULT_WRITE_CAPACITY: usize = 64 * 1024;

/// A uringo stream that [`Compat`] can adapt: a connected, stream-oriented socket that
/// `recv`/`send`/`shutdown` work on — [`TcpStream`] and
/// [`UnixStream`](crate::net::UnixStream). Sealed through [`StreamSocket`].
pub trait CompatStream: StreamSocket + Unpin {}

impl<S: StreamSocket + Unpin> CompatStream for S {}

/// A uringo stream behind the poll-based I/O traits: tokio's `AsyncRead`/`AsyncWrite`
/// (feature `tokio-io`), `futures_io::AsyncRead`/`AsyncWrite` (feature `futures-io`)
/// and `hyper::rt::Read`/`Write` (feature `hyper`), plus the `AsyncBufRead` of the
/// first two.
///
/// # Reads
///
/// A read copies out what the read buffer holds; when it is empty, it submits one
/// receive of up to the buffer's capacity (16 KiB by default) and returns `Pending`
/// until the CQE. A read that is abandoned while `Pending` loses nothing: the receive
/// stays in flight and the next read takes its bytes.
///
/// # Writes
///
/// * **`poll_write` returns `Ready` only once the kernel has taken the bytes.** It
///   copies up to the write buffer's capacity (64 KiB by default) into the write
///   buffer, submits a send, and returns `Pending` until the send's CQE; a short send
///   is continued from where it stopped. So `Ready(Ok(n))` means *n bytes were handed
///   to the kernel*, and a send error is returned by the very call whose bytes failed.
///   (The alternative, answering `Ready(Ok(n))` as soon as the bytes are copied, is
///   faster for tiny writes but reports a failed send on some later, unrelated call.)
/// * **`Pending` means the bytes are already in flight.** Call again with the same
///   bytes, as every user of these traits does (`write_all`, `copy`, hyper): the retry
///   returns their count once sent, and sends nothing twice. A call made with
///   different bytes first waits for the earlier batch (returning its error, if it
///   failed: the connection is broken then) and then writes the new bytes; the
///   abandoned bytes have still been sent. Which call is the retry is decided by
///   content: the first write call after a `Pending` one whose bytes start with the
///   in-flight batch claims it (even after a flush in between completed the batch).
/// * **`poll_flush` returns `Ready(Ok)` only when every byte accepted so far has been
///   handed to the kernel** (the last send's CQE was seen). The adapter never holds
///   accepted bytes back, so after a `Ready(Ok(n))` write a flush completes at once; it
///   does real work only after a write that was left `Pending`.
/// * **A retry that completes wakes the task once more.** The wake-up the send's CQE
///   delivered was spent on the poll that found the batch done; a caller that retried
///   from inside its flush (hyper's HTTP/1 client does) and does not loop would never
///   be polled again. The extra poll costs one run-queue push.
/// * **`poll_shutdown`** flushes, then shuts the write half (the peer reads EOF).
/// * **Vectored writes** are coalesced into the write buffer and sent as one batch.
///
/// # Dropping
///
/// Dropping the adapter (or [`Compat::into_inner`]) cancels a receive or send still in
/// flight; their buffers are freed at the cancellation's CQE, never before. Bytes of a
/// cancelled send may or may not have left; bytes received but not yet read are lost.
///
/// # Example
///
/// ```
/// # #[cfg(feature = "tokio-io")]
/// # uringo::Runtime::new().unwrap().block_on(async {
/// use tokio::io::{AsyncRead, AsyncWrite};
/// use uringo::compat::Compat;
/// use uringo::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let client = Compat::new(TcpStream::connect(addr).await.unwrap());
/// let (server, _) = listener.accept().await.unwrap();
///
/// // Any code written against tokio's traits works with the adapter.
/// fn is_tokio_io<T: AsyncRead + AsyncWrite + Unpin>(_: &T) {}
/// is_tokio_io(&client);
/// assert_eq!(client.get_ref().peer_addr().unwrap(), server.local_addr().unwrap());
/// # });
/// ```
pub struct Compat<S> {
    // Fields drop in declaration order: the ops (which only hold the raw fd) are
    // cancelled before the stream closes the fd, so a cancellation never names an fd
    // number that may already have been reused.
    read: ReadSide,
    write: WriteSide,
    write_shut: bool,
    stream: S,
}

struct ReadSide {
    /// `None` while a receive is in flight (the op owns it).
    buf: Option<Vec<u8>>,
    /// Bytes of `buf` before this index have been read out.
    pos: usize,
    capacity: usize,
    op: Option<SocketOp<Recv<Vec<u8>>>>,
}

struct WriteSide {
    /// The current batch's bytes; `None` while a send is in flight (the op owns it).
    buf: Option<Vec<u8>>,
    /// How much of the batch the kernel has taken (sends can be short).
    sent: usize,
    capacity: usize,
    op: Option<SocketOp<Send<Slice<Vec<u8>>>>>,
    /// The socket was full: the batch waits here for room (sends never wait inside the
    /// kernel, see `net::socket::writable`).
    room: Option<(SocketOp<PollAdd>, Vec<u8>)>,
    /// The batch was submitted by a write call that returned `Pending` and has not been
    /// reported to a caller yet; a retry presenting the same bytes claims it.
    unclaimed: bool,
}

impl<S: CompatStream> Compat<S> {
    /// Wraps `stream` with the default buffer capacities (16 KiB read, 64 KiB write).
    /// Buffers are allocated at first use.
    pub fn new(stream: S) -> Compat<S> {
        Compat::with_capacity(stream, DEFAULT_READ_CAPACITY, DEFAULT_WRITE_CAPACITY)
    }

    /// Wraps `stream` with a read buffer of `read_capacity` bytes (the most one receive
    /// asks for) and a write buffer of `write_capacity` bytes (the most one write call
    /// sends). A capacity of 0 is raised to 1: an empty receive would look like EOF.
    ///
    /// ```
    /// # uringo::Runtime::new().unwrap().block_on(async {
    /// let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let stream = uringo::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    /// let compat = uringo::compat::Compat::with_capacity(stream, 4096, 4096);
    /// assert_eq!(compat.read_capacity(), 4096);
    /// # });
    /// ```
    pub fn with_capacity(stream: S, read_capacity: usize, write_capacity: usize) -> Compat<S> {
        Compat {
            read: ReadSide {
                buf: Some(Vec::new()),
                pos: 0,
                capacity: read_capacity.max(1),
                op: None,
            },
            write: WriteSide {
                buf: Some(Vec::new()),
                sent: 0,
                capacity: write_capacity.max(1),
                op: None,
                room: None,
                unclaimed: false,
            },
            write_shut: false,
            stream,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The read buffer's capacity.
    pub fn read_capacity(&self) -> usize {
        self.read.capacity
    }

    /// The write buffer's capacity.
    pub fn write_capacity(&self) -> usize {
        self.write.capacity
    }

    /// Bytes received but not read out yet.
    pub fn read_buffer(&self) -> &[u8] {
        match &self.read.buf {
            Some(buf) => &buf[self.read.pos..],
            None => &[],
        }
    }

    /// Gives the stream back. A receive or send still in flight is cancelled, and
    /// bytes in the read buffer ([`Compat::read_buffer`]) are dropped: flush first to
    /// be sure every write reached the kernel.
    pub fn into_inner(self) -> S {
        let Compat {
            read,
            write,
            stream,
            ..
        } = self;
        // Cancel the ops while the fd they name is still open (see the field order).
        drop((read, write));
        stream
    }

    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// `op` holding the socket until its CQE, so an op cancelled by dropping the adapter
    /// never runs on a reused fd number.
    fn anchored<T: Operation>(&self, op: T) -> SocketOp<T> {
        Op::new(Anchored::new(op, self.stream.shared_fd()))
    }

    /// The buffered bytes, receiving more first if there are none. An empty slice is
    /// end of stream.
    pub(crate) fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let coop = ready!(coop::poll_proceed(cx));
        if self.read.op.is_none() && !self.read_buffer().is_empty() {
            coop.made_progress();
            return Poll::Ready(Ok(self.read_buffer()));
        }
        if self.read.op.is_none() {
            let mut buf = self.read.buf.take().unwrap_or_default();
            buf.clear();
            buf.reserve_exact(self.read.capacity);
            self.read.pos = 0;
            self.read.op = Some(self.anchored(Recv::new(self.fd(), buf)));
        }
        let op = self.read.op.as_mut().expect("receive in flight");
        let (result, buf) = ready!(Pin::new(op).poll(cx));
        self.read.op = None;
        self.read.buf = Some(buf);
        coop.made_progress();
        match result {
            Ok(_) => Poll::Ready(Ok(self.read_buffer())),
            Err(err) => {
                if let Some(buf) = &mut self.read.buf {
                    buf.clear();
                }
                Poll::Ready(Err(err))
            }
        }
    }

    /// Marks `n` buffered bytes as read.
    pub(crate) fn consume(&mut self, n: usize) {
        let buffered = self.read_buffer().len();
        self.read.pos += n.min(buffered);
    }

    /// Copies buffered (or freshly received) bytes out through `put`, at most `room`.
    /// `Ready(Ok(0))` with `room > 0` is end of stream.
    pub(crate) fn poll_read_with(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<usize>> {
        if room == 0 {
            return Poll::Ready(Ok(0));
        }
        let data = ready!(self.poll_fill_buf(cx))?;
        let n = data.len().min(room);
        put(&data[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// Writes `bufs` (their concatenation) as described on [`Compat`].
    pub(crate) fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let coop = ready!(coop::poll_proceed(cx));
        // Whatever is in flight finishes first: it is either this call's own batch
        // (the caller is retrying after `Pending`) or an abandoned one.
        if let Err(err) = ready!(self.poll_drain(cx)) {
            coop.made_progress();
            return Poll::Ready(Err(err));
        }
        if self.write.unclaimed {
            self.write.unclaimed = false;
            let batch = self.write.buf.as_deref().unwrap_or_default();
            if starts_with(bufs, batch) {
                coop.made_progress();
                // The send's CQE already woke the task, and this poll consumed that
                // wake-up. A caller that retried the write from inside its flush
                // (hyper's HTTP/1 dispatcher does) may not look for new work after it
                // succeeds and would wait for a wake-up that never comes; one more poll
                // lets it pick its next message up.
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(batch.len()));
            }
            tracing::trace!(
                abandoned = batch.len(),
                "compat: write retried with different bytes; the earlier batch was sent"
            );
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            coop.made_progress();
            return Poll::Ready(Ok(0));
        }
        let mut batch = self.write.buf.take().unwrap_or_default();
        batch.clear();
        let len = total.min(self.write.capacity);
        batch.reserve_exact(len);
        for buf in bufs {
            let take = buf.len().min(len - batch.len());
            batch.extend_from_slice(&buf[..take]);
            if batch.len() == len {
                break;
            }
        }
        self.write.sent = 0;
        self.write.unclaimed = true;
        self.submit_send(batch);
        match self.poll_drain(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.write.unclaimed = false;
                coop.made_progress();
                Poll::Ready(result.map(|()| len))
            }
        }
    }

    fn submit_send(&mut self, batch: Vec<u8>) {
        let end = batch.len();
        let remainder = batch.slice(self.write.sent..end);
        self.write.op = Some(self.anchored(Send::new(self.fd(), remainder).flags(NO_WAIT)));
    }

    /// Drives the batch in flight until the kernel has taken all of it. On error the
    /// batch is dropped (its bytes' fate is unknown; the error says why).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some((poll, _)) = self.write.room.as_mut() {
                let result = ready!(Pin::new(poll).poll(cx));
                let (_, batch) = self.write.room.take().expect("the batch waits for room");
                if let Err(err) = result {
                    return Poll::Ready(Err(self.drop_batch(batch, err)));
                }
                self.submit_send(batch);
            }
            let Some(op) = self.write.op.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            let (result, slice) = ready!(Pin::new(op).poll(cx));
            self.write.op = None;
            let batch = slice.into_inner();
            let len = batch.len();
            let full = socket::is_full(&result);
            let failure = match result {
                Ok(0) => Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the socket accepted no bytes of a send",
                )),
                Ok(n) => {
                    self.write.sent += n;
                    None
                }
                Err(_) if full => None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => None,
                Err(err) => Some(err),
            };
            if let Some(err) = failure {
                return Poll::Ready(Err(self.drop_batch(batch, err)));
            }
            if full {
                self.write.room = Some((socket::room(&self.stream.shared_fd()), batch));
            } else if self.write.sent < len {
                tracing::trace!(
                    sent = self.write.sent,
                    len,
                    "compat: short send, continuing"
                );
                self.submit_send(batch);
            } else {
                self.write.buf = Some(batch);
            }
        }
    }

    /// A send of the batch failed with `err`: its bytes' fate is unknown, so it is
    /// dropped (its memory kept for the next batch); returns `err`.
    fn drop_batch(&mut self, mut batch: Vec<u8>, err: io::Error) -> io::Error {
        batch.clear();
        self.write.buf = Some(batch);
        self.write.unclaimed = false;
        self.write.sent = 0;
        err
    }

    /// Ready when every accepted byte has been handed to the kernel.
    pub(crate) fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let coop = ready!(coop::poll_proceed(cx));
        let result = ready!(self.poll_drain(cx));
        coop.made_progress();
        Poll::Ready(result)
    }

    /// Flushes, then shuts the write half down (the peer reads EOF). Idempotent.
    pub(crate) fn poll_shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush_inner(cx))?;
        if self.write_shut {
            return Poll::Ready(Ok(()));
        }
        // `shutdown(2)` itself, which never blocks (see `socket::shutdown`).
        let result = socket::shutdown_now(self.fd(), How::Write);
        if result.is_ok() {
            self.write_shut = true;
        }
        Poll::Ready(result)
    }
}

/// Whether the concatenation of `bufs` begins with `prefix`.
fn starts_with(bufs: &[IoSlice<'_>], mut prefix: &[u8]) -> bool {
    for buf in bufs {
        if prefix.is_empty() {
            break;
        }
        let n = buf.len().min(prefix.len());
        if buf[..n] != prefix[..n] {
            return false;
        }
        prefix = &prefix[n..];
    }
    prefix.is_empty()
}

impl From<TcpStream> for Compat<TcpStream> {
    fn from(stream: TcpStream) -> Self {
        Compat::new(stream)
    }
}

impl<S: fmt::Debug> fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("stream", &self.stream)
            .field("read_in_flight", &self.read.op.is_some())
            .field(
                "write_in_flight",
                &(self.write.op.is_some() || self.write.room.is_some()),
            )
            .field("write_shut", &self.write_shut)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_spans_slices() {
        let a = [
            IoSlice::new(b"he"),
            IoSlice::new(b"llo"),
            IoSlice::new(b"!"),
        ];
        assert!(starts_with(&a, b"hello"));
        assert!(starts_with(&a, b"hello!"));
        assert!(starts_with(&a, b""));
        assert!(!starts_with(&a, b"help"));
        assert!(!starts_with(&a, b"hello!!"));
    }
}
