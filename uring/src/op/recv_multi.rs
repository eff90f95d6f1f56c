//! Multishot recv into a [`BufPool`]: one SQE, a CQE per chunk of received bytes, each in
//! a buffer the kernel picked from the pool when the bytes arrived.
//!
//! [`RecvMulti`] is the raw op: its stream ends whenever the kernel ends the multishot
//! (`ENOBUFS` when the pool runs dry, an error, EOF). [`RecvMultiStream`] is what users
//! want: it re-arms transparently after `ENOBUFS` (once a buffer has come back — it sleeps
//! until then, it does not spin) and after any other end that is not EOF or an error, so
//! the caller sees one ordered byte stream. No data is lost on a re-arm: when the kernel
//! has no buffer it leaves the bytes in the socket.

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::{opcode, squeue, types};

use super::anchored::{Anchored, SharedFd};
use super::future::{Multishot, Op};
use super::net::Recv;
use crate::buf_ring::{BufPool, BufSelect, BufWaiter, Bundle, PooledBuf, RingBufs};
use crate::cqe::Cqe;
use crate::operation::MultishotOperation;
use crate::sync::Arc;

/// Multishot `IORING_OP_RECV` with `IOSQE_BUFFER_SELECT` (kernel 6.0+): yields each chunk
/// received on socket `fd` as a [`PooledBuf`] from `pool`, and an empty buffer at EOF.
///
/// The stream ends after any CQE without `F_MORE` (EOF, an error, `ENOBUFS`); see
/// [`RecvMultiStream`] for the re-arming stream. Buffers of CQEs that arrive after the
/// stream is dropped go straight back to the pool.
#[derive(Debug)]
pub struct RecvMulti {
    fd: RawFd,
    select: Arc<BufSelect>,
}

impl RecvMulti {
    /// Receives repeatedly on socket `fd` into buffers of `pool`.
    pub fn new(fd: RawFd, pool: &BufPool) -> Multishot<RecvMulti> {
        Multishot::new(RecvMulti {
            fd,
            select: Arc::new(BufSelect::new(pool)),
        })
    }
}

// SAFETY: the SQE carries no pointers; the kernel writes into pool buffers that the
// ring's registration keeps alive until after the op's final CQE.
unsafe impl MultishotOperation for RecvMulti {
    type Item = io::Result<PooledBuf>;

    fn build(&self) -> squeue::Entry {
        opcode::RecvMulti::new(types::Fd(self.fd), self.select.group()).build()
    }

    fn item(&self, cqe: Cqe) -> Self::Item {
        self.item_at(cqe, 0)
    }

    fn item_at(&self, cqe: Cqe, buf_start: u32) -> Self::Item {
        let buf = self.select.take(&cqe, buf_start);
        let len = cqe.io_result()?;
        match buf {
            Some(buf) => Ok(buf),
            None if len == 0 => Ok(PooledBuf::owned(Vec::new())),
            None => Err(io::Error::other(
                "multishot recv completed with data but without a provided buffer",
            )),
        }
    }

    fn orphaned_item(&self, cqe: Cqe) {
        self.orphaned_item_at(cqe, 0)
    }

    fn orphaned_item_at(&self, cqe: Cqe, buf_start: u32) {
        drop(self.select.take(&cqe, buf_start));
    }

    fn buf_select(&self) -> Option<&BufSelect> {
        Some(&self.select)
    }
}

/// The multishot recv behind [`RecvMultiStream`]: [`RecvMulti`], but taking bundles
/// where the ring can, so a CQE carries one buffer or several.
struct StreamRecv {
    fd: RawFd,
    select: Arc<BufSelect>,
}

// SAFETY: as for `RecvMulti`: the SQE carries no pointers, and the pool buffers it
// fills stay registered until after the op's final CQE.
unsafe impl MultishotOperation for StreamRecv {
    type Item = io::Result<Bundle>;

    fn build(&self) -> squeue::Entry {
        // The ring makes it a bundle recv once bound, if it can (`BufSelect::takes_bundles`).
        opcode::RecvMulti::new(types::Fd(self.fd), self.select.group()).build()
    }

    fn item(&self, cqe: Cqe) -> Self::Item {
        self.item_at(cqe, 0)
    }

    fn item_at(&self, cqe: Cqe, buf_start: u32) -> Self::Item {
        let bufs = self.select.take_all(&cqe, buf_start);
        let len = cqe.io_result()?;
        match bufs {
            Some(bufs) => Ok(bufs),
            None if len == 0 => Ok(Bundle {
                first: PooledBuf::owned(Vec::new()),
                rest: Vec::new(),
            }),
            None => Err(io::Error::other(
                "multishot recv completed with data but without a provided buffer",
            )),
        }
    }

    fn orphaned_item(&self, cqe: Cqe) {
        self.orphaned_item_at(cqe, 0)
    }

    fn orphaned_item_at(&self, cqe: Cqe, buf_start: u32) {
        drop(self.select.take_all(&cqe, buf_start));
    }

    fn buf_select(&self) -> Option<&BufSelect> {
        Some(&self.select)
    }
}

/// An ordered stream of the bytes received on a socket, in buffers of a [`BufPool`]:
/// multishot recv that re-arms itself when the pool runs dry.
///
/// Yields `Ok(buf)` per received chunk (never empty), `Err` once on a socket error (then
/// ends), and ends (`None`) at EOF. A chunk is at most a buffer; with incremental buffers
/// (see the `BufPool` docs) it can also end where its buffer ends, so read messages as a
/// byte stream, never one per chunk. While the pool is exhausted it waits for a buffer to be
/// returned (a [`PooledBuf`] dropped, on any thread) and then re-arms; bytes stay in the
/// socket meanwhile. A reader that holds every buffer of the pool and waits for more data
/// before dropping one waits forever: size pools for what readers hold.
///
/// Dropping the stream cancels the recv; buffers still arriving go back to the pool.
///
/// A pool switched to single-shot mode ([`BufPool::use_single_shot`]) makes the stream
/// use single-shot recv into a `Vec` of the pool's buffer size per chunk.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use uringo_uring::{op::RecvMultiStream, BufPool, Ring};
///
/// let ring = Ring::new()?;
/// let pool = BufPool::new(4, 1024)?;
/// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
/// let chunk = ring.block_on(async {
///     let mut stream = RecvMultiStream::new(b.as_raw_fd(), &pool);
///     a.write_all(b"ping").unwrap();
///     stream.next().await
/// });
/// assert_eq!(&*chunk.unwrap()?, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct RecvMultiStream {
    fd: RawFd,
    /// Set by [`RecvMultiStream::pause`], cleared by [`RecvMultiStream::resume`]: once
    /// the recv in flight has ended, arm nothing.
    paused: bool,
    /// The recv in flight was cancelled by `pause`: its `ECANCELED` end is not an error.
    cancelling: bool,
    /// Keeps the socket open until every op of this stream has completed (see
    /// [`Anchored`]); `None` when the caller promised to keep it open.
    anchor: Option<SharedFd>,
    pool: BufPool,
    state: State,
    waiter: Option<Arc<BufWaiter>>,
    /// The buffers of a bundle after the one yielded, last first.
    pending: Vec<PooledBuf>,
}

/// The single-shot recv of the fallback mode, holding the socket like every op here.
type FallbackRecv = Anchored<Recv<Vec<u8>>, Option<SharedFd>>;

enum State {
    /// Arm a new multishot recv on the next poll.
    Idle,
    Armed {
        op: Multishot<Anchored<StreamRecv, Option<SharedFd>>>,
        select: Arc<BufSelect>,
    },
    /// The pool ran dry on this ring: wait for a buffer to come back.
    Starved(Arc<RingBufs>),
    /// Paused with no recv in flight: nothing happens until `resume`.
    Paused,
    Fallback(Option<Op<FallbackRecv>>),
    Done,
}

impl std::fmt::Debug for RecvMultiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Idle => "idle",
            State::Armed { .. } => "armed",
            State::Starved(_) => "waiting for a buffer",
            State::Paused => "paused",
            State::Fallback(_) => "single-shot",
            State::Done => "done",
        };
        f.debug_struct("RecvMultiStream")
            .field("fd", &self.fd)
            .field("pool", &self.pool)
            .field("state", &state)
            .field("paused", &self.paused)
            .finish()
    }
}

impl RecvMultiStream {
    /// Receives on socket `fd` (which must stay open while the stream lives) into
    /// buffers of `pool`. Nothing is submitted until the first poll.
    pub fn new(fd: RawFd, pool: &BufPool) -> RecvMultiStream {
        RecvMultiStream {
            fd,
            paused: false,
            cancelling: false,
            anchor: None,
            pool: pool.clone(),
            state: State::Idle,
            waiter: None,
            pending: Vec::new(),
        }
    }

    /// Receives on `socket`, which every op of the stream holds until its completion,
    /// so dropping the stream and then the socket can never let an op run on a reused
    /// fd number.
    pub fn shared(socket: SharedFd, pool: &BufPool) -> RecvMultiStream {
        RecvMultiStream {
            fd: socket.as_raw_fd(),
            paused: false,
            cancelling: false,
            anchor: Some(socket),
            pool: pool.clone(),
            state: State::Idle,
            waiter: None,
            pending: Vec::new(),
        }
    }

    /// Stops receiving, for backpressure: the recv in flight is cancelled, chunks the
    /// kernel received before the cancel took effect are still yielded (nothing is
    /// lost), and after them `poll_next` returns `Pending` until [`resume`] — without
    /// registering the waker, since only the caller's own `resume` can end the pause.
    /// Bytes that arrive meanwhile stay in the socket, where TCP's flow control pushes
    /// back on the sender.
    ///
    /// [`resume`]: RecvMultiStream::resume
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use uringo_uring::{op::RecvMultiStream, BufPool, Ring};
    ///
    /// let ring = Ring::new()?;
    /// let pool = BufPool::new(4, 1024)?;
    /// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    /// ring.block_on(async {
    ///     let mut stream = RecvMultiStream::new(b.as_raw_fd(), &pool);
    ///     a.write_all(b"one").unwrap();
    ///     assert_eq!(&*stream.next().await.unwrap()?, b"one");
    ///     stream.pause();
    ///     assert!(stream.is_paused());
    ///     a.write_all(b"two").unwrap();      // stays in the socket while paused
    ///     stream.resume();
    ///     assert_eq!(&*stream.next().await.unwrap()?, b"two");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.paused = true;
        match &mut self.state {
            State::Armed { op, .. } => {
                op.cancel();
                self.cancelling = true;
            }
            State::Fallback(Some(op)) => {
                op.cancel();
                self.cancelling = true;
            }
            State::Idle | State::Starved(_) | State::Fallback(None) => self.state = State::Paused,
            State::Paused | State::Done => {}
        }
    }

    /// Undoes [`RecvMultiStream::pause`]: the next poll arms a recv again (or, if the
    /// cancelled one has not ended yet, the stream re-arms once it has).
    pub fn resume(&mut self) {
        self.paused = false;
        if matches!(self.state, State::Paused) {
            self.state = State::Idle;
        }
    }

    /// The pool the stream receives into.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// Whether [`RecvMultiStream::pause`] is in effect.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the stream is paused and everything received before the pause has been
    /// yielded: no recv is in flight, so bytes read from the socket by other means now
    /// come after every chunk this stream gave out.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Paused | State::Done) && self.pending.is_empty()
    }

    /// The next chunk, an error, or `None` at EOF (and after an error).
    pub async fn next(&mut self) -> Option<io::Result<PooledBuf>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next chunk (see [`RecvMultiStream::next`]).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<PooledBuf>>> {
        if let Some(buf) = self.pending.pop() {
            return Poll::Ready(Some(Ok(buf)));
        }
        loop {
            match &mut self.state {
                State::Idle | State::Starved(_) | State::Fallback(None) if self.paused => {
                    self.state = State::Paused
                }
                State::Paused => return Poll::Pending,
                State::Idle if self.pool.is_fallback() => self.state = State::Fallback(None),
                State::Idle => {
                    let select = Arc::new(BufSelect::with_bundles(&self.pool));
                    let recv = StreamRecv {
                        fd: self.fd,
                        select: select.clone(),
                    };
                    let op = Anchored::multishot(recv, self.anchor.clone());
                    self.state = State::Armed { op, select };
                }
                State::Armed { op, select } => {
                    let end = match std::task::ready!(op.poll_next(cx)) {
                        Some(Ok(bufs)) if !bufs.first.is_empty() => {
                            self.pending = bufs.rest;
                            return Poll::Ready(Some(Ok(bufs.first)));
                        }
                        Some(Ok(_eof)) => {
                            self.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Some(Err(err)) => Some(err),
                        None => None,
                    };
                    // Every other item ends this recv.
                    let cancelled = std::mem::take(&mut self.cancelling);
                    match end {
                        // The end of a recv that `pause` cancelled: arm again on resume.
                        Some(err) if cancelled && err.raw_os_error() == Some(libc::ECANCELED) => {
                            self.state = State::Idle;
                        }
                        Some(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                            tracing::debug!(
                                fd = self.fd,
                                group = self.pool.group(),
                                "buffer pool exhausted; recv re-arms when a buffer returns"
                            );
                            self.state = match select.bound() {
                                Some(bufs) => State::Starved(bufs.clone()),
                                None => State::Idle,
                            };
                        }
                        Some(err) => {
                            self.state = State::Done;
                            return Poll::Ready(Some(Err(err)));
                        }
                        // The kernel ended the multishot without EOF or error: re-arm.
                        None => self.state = State::Idle,
                    }
                }
                State::Starved(bufs) => {
                    let waiter = self.waiter.get_or_insert_with(BufWaiter::new);
                    if !bufs.has_available() && !bufs.wait(waiter, cx.waker()) {
                        return Poll::Pending;
                    }
                    self.state = State::Idle;
                }
                State::Fallback(op) => {
                    let size = self.pool.buf_size();
                    let (fd, anchor) = (self.fd, &self.anchor);
                    let op = op.get_or_insert_with(|| {
                        let recv = Recv::new(fd, Vec::with_capacity(size));
                        Op::new(Anchored::new(recv, anchor.clone()))
                    });
                    let (result, buf) = std::task::ready!(Pin::new(op).poll(cx));
                    self.state = State::Fallback(None);
                    let cancelled = std::mem::take(&mut self.cancelling);
                    match result {
                        Err(err) if cancelled && err.raw_os_error() == Some(libc::ECANCELED) => {}
                        Ok(0) => {
                            self.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(_) => return Poll::Ready(Some(Ok(PooledBuf::owned(buf)))),
                        Err(err) => {
                            self.state = State::Done;
                            return Poll::Ready(Some(Err(err)));
                        }
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}
