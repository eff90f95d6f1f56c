//! One direction of a copy: the state machine behind [`super::copy`] and
//! [`super::copy_bidirectional`]. The rules it keeps are in `copy.rs`'s module docs; this
//! file is how.
//!
//! Received bytes wait in `pending`, a queue of segments in the order they arrived, and
//! leave it one send at a time, oldest first:
//!
//! - a [`Segment::Pooled`] chunk is sent straight from its pool buffer with
//!   `MSG_DONTWAIT`, so it completes in the tick it is submitted;
//! - a [`Segment::Owned`] vector is sent with `MSG_DONTWAIT` too; what the destination
//!   does not take waits in the direction's memory for a `POLLOUT` poll
//!   ([`Sending::Writable`]), then goes in another such send.
//!
//! No send here waits for room inside the kernel, which could move it to an io-wq
//! thread (`net::socket::writable` says when and why).
//!
//! When a pooled send comes back short (or with `EAGAIN`), its rest and every pooled
//! chunk behind it are copied into one owned segment and their buffers go back: this is
//! *spilling*. A chunk received while an owned segment is waiting to go joins it (a copy)
//! instead of holding its buffer.
//!
//! The receive side has three modes:
//!
//! - **relayed**: a [`Relay`] moves the flow at ring level, each chunk sent on from its
//!   receive's CQE with no task poll (`relay.rs`). It is where every flow starts, and it
//!   hands the flow back to one of the other modes on anything but the steady state of
//!   an interactive flow;
//! - **pooled**: the multishot receive on the shared pool, driven by the task, paused
//!   while the bytes held reach the limit and resumed at half of it. A flow uses it
//!   where no relay can run (a thread that owns no ring, a single-shot pool) and after
//!   a relay's receive ended for want of buffers;
//! - **owned**: single-shot receives into the direction's own vectors (no copy at all),
//!   each submitted only while the bytes held plus its size fit in the limit, which is
//!   the strict bound a slow destination needs. The vector starts at [`FIRST_OWNED`] and
//!   doubles, up to the limit, while receives fill it.
//!
//! A flow switches to owned when it spills (its destination is slow) or when a chunk
//! fills a whole pool buffer (it is a bulk flow, which owned receives move with fewer,
//! larger ops). Before the first owned receive, the multishot (or the relay) is
//! cancelled and drained, so no bytes are reordered. It switches back, to a relay where
//! one can run, after [`SHORT_TO_POOLED`] owned receives in a row that did not fill
//! their vector, once nothing is held.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use uringo_uring::op::{Anchored, PollAdd, Recv, RecvMultiStream, Send};
use uringo_uring::{BufPool, IoBuf, Op, PooledBuf, Slice};

use super::relay::{Handover, Relay, Stop};
use crate::net::socket::{self, SharedFd};
use crate::runtime::coop;

/// The first owned receive buffer of a flow.
const FIRST_OWNED: usize = 16 * 1024;
/// Owned receives in a row that come back short before a flow goes back to the pool.
const SHORT_TO_POOLED: u8 = 2;

/// A send that holds its socket until its CQE.
type SendOp<B> = Op<Anchored<Send<Slice<B>>, SharedFd>>;
/// A receive into an owned vector, holding its socket until its CQE.
type RecvOp = Op<Anchored<Recv<Vec<u8>>, SharedFd>>;
/// A wait for room in the destination, holding its socket until its CQE.
type WritableOp = Op<Anchored<PollAdd, SharedFd>>;

/// Received bytes waiting to be sent.
enum Segment {
    Pooled(PooledBuf),
    Owned(Vec<u8>),
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Segment::Pooled(chunk) => chunk.len(),
            Segment::Owned(vec) => vec.len(),
        }
    }
}

/// The one send in flight.
enum Sending {
    Pooled(SendOp<PooledBuf>),
    Owned(SendOp<Vec<u8>>),
    /// The destination was full: `rest` goes once it reports room (`POLLOUT`).
    Writable {
        poll: WritableOp,
        rest: Option<Slice<Vec<u8>>>,
    },
}

/// How the source is read.
enum Mode {
    /// Not polled yet: the first poll starts a relay if it can.
    Start,
    Relayed(Relay),
    Pooled,
    /// Switching to owned: waiting for the cancelled multishot to yield its last chunk.
    Stopping,
    Owned {
        recv: Option<RecvOp>,
        /// Size of the next owned receive.
        size: usize,
        /// Owned receives in a row that did not fill their vector.
        short: u8,
    },
}

/// Receives from `src` and sends everything to `dst` until end of stream; the output is
/// the number of bytes copied.
pub(super) struct Forward<'a> {
    src: SharedFd,
    dst: &'a SharedFd,
    multishot: RecvMultiStream,
    mode: Mode,
    /// End of stream seen on `src`.
    eof: bool,
    /// Bytes held (received, not yet sent) past which receiving stops.
    limit: usize,
    pending: VecDeque<Segment>,
    pending_bytes: usize,
    sending: Option<Sending>,
    /// Bytes of the send in flight still to go.
    sending_bytes: usize,
    /// The vector of the last owned send, reused by the next owned receive.
    spare: Option<Vec<u8>>,
    total: u64,
    counts: Counts,
}

/// What a forward did, for tests and debugging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// Chunks received from the multishot into pool buffers.
    pub(super) pooled_chunks: u64,
    /// Owned receives that returned bytes.
    pub(super) owned_recvs: u64,
    /// Pooled sends that came back short, whose rest was copied out.
    pub(super) spills: u64,
    /// Switches from owned receives back to the pool.
    pub(super) back_to_pooled: u64,
    /// Relays started.
    pub(super) relays: u64,
}

impl<'a> Forward<'a> {
    pub(super) fn new(src: &SharedFd, dst: &'a SharedFd, pool: &BufPool, limit: usize) -> Self {
        Forward {
            src: src.clone(),
            dst,
            multishot: RecvMultiStream::shared(src.clone(), pool),
            mode: Mode::Start,
            eof: false,
            limit: limit.max(1),
            pending: VecDeque::new(),
            pending_bytes: 0,
            sending: None,
            sending_bytes: 0,
            spare: None,
            total: 0,
            counts: Counts::default(),
        }
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn counts(&self) -> Counts {
        self.counts
    }

    /// Received bytes not yet sent, wherever they are.
    fn held(&self) -> usize {
        let relayed = match &self.mode {
            Mode::Relayed(relay) => relay.held(),
            _ => 0,
        };
        self.pending_bytes + self.sending_bytes + relayed
    }

    /// Moves the flow to a relay if one can run here, else to the task's multishot.
    /// Nothing may be held or in flight.
    fn relay_or_pooled(&mut self) {
        debug_assert_eq!(self.held(), 0);
        match Relay::start(&self.src, self.dst, self.multishot.pool(), self.limit) {
            Some(relay) => {
                self.counts.relays += 1;
                self.mode = Mode::Relayed(relay);
            }
            None => {
                self.mode = Mode::Pooled;
                self.multishot.resume();
            }
        }
    }

    /// Takes a stopped relay's flow back.
    fn take_over(&mut self, handover: Handover) -> io::Result<()> {
        self.total += handover.sent;
        self.counts.pooled_chunks += handover.chunks;
        self.eof |= handover.eof;
        self.mode = match handover.stop {
            None => Mode::Pooled,
            Some(Stop::Failed(err)) => return Err(err),
            Some(Stop::Ended) => Mode::Pooled,
            Some(Stop::Full | Stop::Bulk | Stop::Limit) => Mode::Owned {
                recv: None,
                size: FIRST_OWNED.min(self.limit),
                short: 0,
            },
        };
        for chunk in handover.queue {
            self.pending_bytes += chunk.len();
            self.pending.push_back(Segment::Pooled(chunk));
        }
        if let Some((chunk, at)) = handover.rest {
            self.spill(&chunk[at..]);
        }
        Ok(())
    }

    /// Queues received bytes behind everything received before them, or sends them at
    /// once when nothing is ahead of them: then they never touch the queue's buffer,
    /// which on a proxy with many connections is a cache miss per chunk.
    fn push(&mut self, segment: Segment) {
        if self.sending.is_none() && self.pending.is_empty() {
            return self.put_in_flight(segment);
        }
        self.pending_bytes += segment.len();
        // A chunk behind an owned segment would only wait there holding its buffer.
        if let (Some(Segment::Owned(last)), Segment::Pooled(chunk)) =
            (self.pending.back_mut(), &segment)
        {
            last.extend_from_slice(chunk);
            return;
        }
        let spilled = matches!(
            self.sending,
            Some(Sending::Owned(_) | Sending::Writable { .. })
        );
        match segment {
            Segment::Pooled(chunk) if spilled && self.pending.is_empty() => {
                self.pending.push_back(Segment::Owned(chunk.to_vec()))
            }
            segment => self.pending.push_back(segment),
        }
    }

    /// A chunk from the multishot.
    fn accept(&mut self, chunk: PooledBuf, pool_buf_size: usize) {
        self.counts.pooled_chunks += 1;
        let full = chunk.len() == pool_buf_size;
        self.push(Segment::Pooled(chunk));
        if full && matches!(self.mode, Mode::Pooled) {
            self.switch_to_owned();
        }
    }

    fn switch_to_owned(&mut self) {
        self.multishot.pause();
        self.mode = Mode::Stopping;
    }

    /// Copies `rest` and every pooled chunk still pending into one owned segment at the
    /// front, giving their buffers back (the destination is slow).
    fn spill(&mut self, rest: &[u8]) {
        self.counts.spills += 1;
        let mut vec = rest.to_vec();
        while let Some(Segment::Pooled(chunk)) = self.pending.front() {
            vec.extend_from_slice(chunk);
            self.pending.pop_front();
        }
        self.pending_bytes += rest.len();
        self.pending.push_front(Segment::Owned(vec));
        if matches!(self.mode, Mode::Pooled) {
            self.switch_to_owned();
        }
    }

    /// Polls the send in flight; true when it finished (a short owned send then goes on
    /// with its rest).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(sending) = &mut self.sending else {
            return Poll::Ready(Ok(false));
        };
        match sending {
            Sending::Pooled(op) => {
                let (res, slice) = std::task::ready!(Pin::new(op).poll(cx));
                self.sending = None;
                let begin = slice.begin();
                let chunk = slice.into_inner();
                let sent = sent(res, chunk.len() - begin)?;
                self.total += sent as u64;
                self.sending_bytes = 0;
                if begin + sent < chunk.len() {
                    self.spill(&chunk[begin + sent..]);
                }
            }
            Sending::Owned(op) => {
                let (res, slice) = std::task::ready!(Pin::new(op).poll(cx));
                self.sending = None;
                let (begin, end) = (slice.begin(), slice.end());
                if matches!(res, Ok(0)) && begin < end {
                    let msg = "the destination took no bytes of a send";
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, msg)));
                }
                let full = socket::is_full(&res);
                let sent = sent(res, end - begin)?;
                self.total += sent as u64;
                self.sending_bytes -= sent;
                let vec = slice.into_inner();
                if begin + sent < end {
                    // The rest goes at once after a short send (the socket may have
                    // room again already), after a poll only once it said `EAGAIN`.
                    let rest = slice_of(vec, begin + sent, end);
                    self.sending = Some(if full {
                        self.when_writable(rest)
                    } else {
                        Sending::Owned(send(self.dst, rest, socket::NO_WAIT))
                    });
                } else {
                    self.spare = Some(vec);
                }
            }
            Sending::Writable { poll, rest } => {
                let res = std::task::ready!(Pin::new(poll).poll(cx));
                let rest = rest.take().expect("the bytes waiting for room");
                // An error or hang-up also ends the poll; the send then reports it.
                match res {
                    Err(err) if !is_retry(&err) => return Poll::Ready(Err(err)),
                    _ => {}
                }
                self.sending = Some(Sending::Owned(send(self.dst, rest, socket::NO_WAIT)));
            }
        }
        Poll::Ready(Ok(true))
    }

    /// Starts sending the oldest pending segment if nothing is in flight.
    fn start_send(&mut self) -> bool {
        if self.sending.is_some() {
            return false;
        }
        let Some(segment) = self.pending.pop_front() else {
            return false;
        };
        self.pending_bytes -= segment.len();
        self.put_in_flight(segment);
        true
    }

    /// Puts `segment` in flight; nothing else may be.
    fn put_in_flight(&mut self, segment: Segment) {
        debug_assert!(self.sending.is_none());
        let len = segment.len();
        self.sending_bytes = len;
        self.sending = Some(match segment {
            Segment::Pooled(chunk) => {
                Sending::Pooled(send(self.dst, slice_of(chunk, 0, len), socket::NO_WAIT))
            }
            Segment::Owned(vec) => {
                Sending::Owned(send(self.dst, slice_of(vec, 0, len), socket::NO_WAIT))
            }
        });
    }

    /// Waits for room in the destination, then sends `rest` (see the module docs).
    fn when_writable(&self, rest: Slice<Vec<u8>>) -> Sending {
        Sending::Writable {
            poll: socket::room(self.dst),
            rest: Some(rest),
        }
    }

    /// Polls the source in the current mode; true when something happened.
    fn poll_recv(&mut self, cx: &mut Context<'_>, pool_buf_size: usize) -> Poll<io::Result<bool>> {
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        match &mut self.mode {
            Mode::Start => {
                self.relay_or_pooled();
                return Poll::Ready(Ok(true));
            }
            Mode::Relayed(relay) => {
                let handover = std::task::ready!(relay.poll_handover(cx));
                self.take_over(handover)?;
                return Poll::Ready(Ok(true));
            }
            _ => {}
        }
        if let Mode::Owned { recv, size, short } = &mut self.mode {
            if recv.is_none() {
                let held = self.pending_bytes + self.sending_bytes;
                if held > 0 && held + *size > self.limit {
                    return Poll::Ready(Ok(false));
                }
                if held == 0 && *short >= SHORT_TO_POOLED {
                    self.counts.back_to_pooled += 1;
                    self.relay_or_pooled();
                    return Poll::Ready(Ok(true));
                }
                let vec = match self.spare.take() {
                    Some(mut vec) if vec.capacity() == *size => {
                        vec.clear();
                        vec
                    }
                    _ => Vec::with_capacity(*size),
                };
                *recv = Some(Op::new(Anchored::new(
                    Recv::new(self.src.as_raw_fd(), vec),
                    self.src.clone(),
                )));
            }
            let op = recv.as_mut().expect("an owned receive was just started");
            let (res, vec) = std::task::ready!(Pin::new(op).poll(cx));
            *recv = None;
            match res {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.counts.owned_recvs += 1;
                    if n == vec.capacity() {
                        *short = 0;
                        *size = (*size * 2).min(self.limit);
                    } else {
                        *short += 1;
                    }
                    self.push(Segment::Owned(vec));
                }
                Err(err) if is_retry(&err) => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
            return Poll::Ready(Ok(true));
        }
        // Pooled or stopping: the multishot.
        if matches!(self.mode, Mode::Pooled) {
            let held = self.held();
            if held >= self.limit {
                self.multishot.pause();
            } else if self.multishot.is_paused() && held <= self.limit / 2 {
                self.multishot.resume();
            }
        }
        match self.multishot.poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.accept(chunk, pool_buf_size);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Err(err)),
            Poll::Ready(None) => {
                self.eof = true;
                Poll::Ready(Ok(true))
            }
            Poll::Pending if matches!(self.mode, Mode::Stopping) && self.multishot.is_stopped() => {
                self.mode = Mode::Owned {
                    recv: None,
                    size: FIRST_OWNED.min(self.limit),
                    short: 0,
                };
                Poll::Ready(Ok(true))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Future for Forward<'_> {
    type Output = io::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let pool_buf_size = this.multishot.pool().buf_size();
        loop {
            let mut progress = false;
            if let Poll::Ready(res) = this.poll_send(cx) {
                progress |= res?;
            }
            progress |= this.start_send();
            let budget = std::task::ready!(coop::poll_proceed(cx));
            if let Poll::Ready(res) = this.poll_recv(cx, pool_buf_size) {
                if res? {
                    budget.made_progress();
                    progress = true;
                }
            }
            progress |= this.start_send();
            if this.eof && this.held() == 0 && this.sending.is_none() {
                return Poll::Ready(Ok(this.total));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }
}

/// A send of `buf` on `fd` with `flags`, holding the socket until its CQE.
fn send<B: IoBuf>(fd: &SharedFd, buf: Slice<B>, flags: i32) -> SendOp<B> {
    Op::new(Anchored::new(
        Send::new(fd.as_raw_fd(), buf).flags(flags),
        fd.clone(),
    ))
}

/// `buf[begin..end]` as an op's buffer.
fn slice_of<B: IoBuf>(buf: B, begin: usize, end: usize) -> Slice<B> {
    buf.slice(begin..end)
}

/// How many bytes a send of `len` took; a retryable error took none.
fn sent(res: io::Result<usize>, len: usize) -> io::Result<usize> {
    match res {
        Ok(n) => Ok(n.min(len)),
        Err(err) if is_retry(&err) => Ok(0),
        Err(err) => Err(err),
    }
}

/// Errors after which the bytes are simply sent again.
fn is_retry(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EINTR))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::net::split::Sealed;
    use crate::net::UnixStream;

    /// The byte at `offset` of every test stream: a period that is not a power of two, so
    /// a chunk sent out of order or twice cannot line up again by accident.
    fn byte_at(offset: u64) -> u8 {
        (offset % 251) as u8 ^ (offset / 251 % 7) as u8
    }

    fn pattern(offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| byte_at(offset + i)).collect()
    }

    /// Writes the pattern from `*offset` to `end` in pieces of `piece` bytes.
    async fn feed(writer: &UnixStream, offset: &AtomicU64, end: u64, piece: usize) {
        loop {
            let at = offset.load(Ordering::Relaxed);
            if at >= end {
                return;
            }
            let len = (end - at).min(piece as u64) as usize;
            let (res, _) = writer.write_all(pattern(at, len)).await;
            res.unwrap();
            offset.store(at + len as u64, Ordering::Relaxed);
        }
    }

    /// Reads exactly `len` bytes at `offset` of the pattern and checks them.
    async fn expect(reader: &UnixStream, offset: u64, len: usize) {
        let (res, got) = reader.read_exact(Vec::with_capacity(len)).await;
        res.unwrap();
        assert!(got == pattern(offset, len), "bytes at {offset} differ");
    }

    /// Reads `reader` to its end and checks every byte against the pattern from `offset`.
    async fn check_to_end(reader: &UnixStream, mut offset: u64) -> u64 {
        let mut buf = Vec::with_capacity(8192);
        loop {
            buf.clear();
            let (res, b) = reader.read(buf).await;
            buf = b;
            if res.unwrap() == 0 {
                return offset;
            }
            assert!(
                buf == pattern(offset, buf.len()),
                "bytes at {offset} differ"
            );
            offset += buf.len() as u64;
        }
    }

    /// What a forward task reports when it ends.
    #[derive(Debug, Default)]
    struct Report {
        /// Polls of the forward.
        polls: AtomicUsize,
        max_held: AtomicUsize,
        counts: Mutex<Counts>,
    }

    /// A forward over two fresh socket pairs: write into `writer`, read from `reader`.
    struct Setup {
        writer: UnixStream,
        reader: UnixStream,
        forward: crate::JoinHandle<io::Result<u64>>,
        report: Arc<Report>,
    }

    fn start(pool: &BufPool, limit: usize) -> Setup {
        let (writer, from) = UnixStream::pair().unwrap();
        let (to, reader) = UnixStream::pair().unwrap();
        let report = Arc::new(Report::default());
        let forward = crate::spawn({
            let (pool, report) = (pool.clone(), report.clone());
            async move {
                let (src, dst) = (from.shared_fd(), to.shared_fd());
                let mut forward = Forward::new(&src, &dst, &pool, limit);
                std::future::poll_fn(|cx| {
                    let out = Pin::new(&mut forward).poll(cx);
                    report.polls.fetch_add(1, Ordering::Relaxed);
                    report.max_held.fetch_max(forward.held(), Ordering::Relaxed);
                    *report.counts.lock().unwrap() = forward.counts();
                    out
                })
                .await
            }
        });
        Setup {
            writer,
            reader,
            forward,
            report,
        }
    }

    /// Forwards `total` pattern bytes written in pieces of `piece`; returns what the
    /// forward counted, what arrived intact, and the forward's counts.
    fn bulk(pool: &BufPool, limit: usize, total: u64, piece: usize) -> (u64, u64, Counts) {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async move {
            let Setup {
                writer,
                reader,
                forward,
                report,
            } = start(pool, limit);
            crate::spawn(async move {
                feed(&writer, &AtomicU64::new(0), total, piece).await;
            });
            let arrived = check_to_end(&reader, 0).await;
            let copied = forward.await.unwrap().unwrap();
            let counts = *report.counts.lock().unwrap();
            (copied, arrived, counts)
        })
    }

    /// One message at a time, each smaller than a pool buffer and read before the next
    /// is written: every chunk goes from its pool buffer to the destination as it is,
    /// and one relay moves them all from their CQEs, so the forward's task is polled to
    /// start it and at the end, not per message.
    #[test]
    fn interactive_messages_are_sent_from_their_pool_buffers() {
        let pool = BufPool::new(16, 1024).unwrap();
        let rt = crate::Runtime::new().unwrap();
        let (counts, polls) = rt.block_on(async move {
            let s = start(&pool, 8192);
            let offset = AtomicU64::new(0);
            for i in 0..200u64 {
                feed(&s.writer, &offset, (i + 1) * 100, 100).await;
                expect(&s.reader, i * 100, 100).await;
            }
            drop(s.writer);
            assert_eq!(s.forward.await.unwrap().unwrap(), 200 * 100);
            assert_eq!(pool.in_use(), 0, "every buffer went back");
            let counts = *s.report.counts.lock().unwrap();
            (counts, s.report.polls.load(Ordering::Relaxed))
        });
        // 200, or a few more where an incremental buffer ended inside a message.
        assert!((200..220).contains(&counts.pooled_chunks), "{counts:?}");
        assert_eq!(counts.owned_recvs, 0, "{counts:?}");
        assert_eq!(counts.spills, 0, "{counts:?}");
        assert_eq!(counts.relays, 1, "{counts:?}");
        assert!(
            polls < 10,
            "the forward was polled {polls} times for 200 messages"
        );
    }

    /// A bulk flow fills pool buffers, so it moves to owned receives; messages one at a
    /// time afterwards bring it back to the pool. Every byte arrives in order.
    #[test]
    fn a_bulk_flow_moves_to_owned_receives_and_back() {
        let pool = BufPool::new(16, 1024).unwrap();
        let rt = crate::Runtime::new().unwrap();
        let counts = rt.block_on(async move {
            let s = start(&pool, 64 * 1024);
            let offset = AtomicU64::new(0);
            const BULK: u64 = 4 << 20;
            let drain = async {
                let (res, got) = s.reader.read_exact(Vec::with_capacity(BULK as usize)).await;
                res.unwrap();
                assert!(
                    got == pattern(0, BULK as usize),
                    "the bulk part arrives intact"
                );
            };
            futures_util::join!(feed(&s.writer, &offset, BULK, 64 * 1024), drain);
            for i in 0..20u64 {
                feed(&s.writer, &offset, BULK + (i + 1) * 10, 10).await;
                expect(&s.reader, BULK + i * 10, 10).await;
            }
            drop(s.writer);
            assert_eq!(s.forward.await.unwrap().unwrap(), BULK + 200);
            let counts = *s.report.counts.lock().unwrap();
            counts
        });
        assert!(counts.owned_recvs > 0, "{counts:?}");
        assert!(counts.back_to_pooled > 0, "{counts:?}");
        assert!(
            counts.relays >= 2,
            "back to a relay after the bulk part: {counts:?}"
        );
    }

    #[test]
    fn a_pool_that_runs_dry_loses_nothing() {
        let pool = BufPool::new(2, 64).unwrap();
        let total = 1 << 20;
        let (copied, arrived, _) = bulk(&pool, 4096, total, 3001);
        assert_eq!((copied, arrived), (total, total));
        assert_eq!(pool.in_use(), 0, "every buffer went back");
    }

    #[test]
    fn a_single_shot_pool_forwards_intact() {
        let pool = BufPool::new(8, 4096).unwrap();
        pool.use_single_shot();
        let total = 1 << 20;
        let (copied, arrived, _) = bulk(&pool, 16 * 1024, total, 3001);
        assert_eq!((copied, arrived), (total, total));
    }

    /// A destination that stops reading: once the writer is stuck, the forward holds at
    /// most its limit plus what the multishot had received before it stopped, no pool
    /// buffer stays held, and every byte arrives once the destination reads again.
    fn stall(piece: usize) -> (u64, u64, usize, Counts) {
        const LIMIT: usize = 8 * 1024;
        let pool = BufPool::new(64, 1024).unwrap();
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async move {
            let s = start(&pool, LIMIT);
            let written = Arc::new(AtomicU64::new(0));
            let feeder = crate::spawn({
                let written = written.clone();
                async move { feed(&s.writer, &written, 64 << 20, piece).await }
            });
            // Wait until the writer has been stuck for a while: every buffer between it
            // and the reader is full.
            let deadline = Instant::now() + Duration::from_secs(60);
            let (mut last, mut still) = (u64::MAX, 0);
            while still < 10 {
                assert!(Instant::now() < deadline, "the writer never stalled");
                crate::time::sleep(Duration::from_millis(20)).await;
                let now = written.load(Ordering::Relaxed);
                (last, still) = if now == last {
                    (now, still + 1)
                } else {
                    (now, 0)
                };
            }
            assert!(last < 64 << 20, "the writer stalled before the end");
            assert_eq!(pool.in_use(), 0, "a stalled direction holds no pool buffer");
            feeder.abort();
            let arrived = check_to_end(&s.reader, 0).await;
            let copied = s.forward.await.unwrap().unwrap();
            let max_held = s.report.max_held.load(Ordering::Relaxed);
            let counts = *s.report.counts.lock().unwrap();
            assert!(
                max_held <= LIMIT + 64 * 1024,
                "held {max_held} bytes with a limit of {LIMIT} ({counts:?})"
            );
            assert!(counts.relays >= 1, "the flow started relayed: {counts:?}");
            (copied, arrived, max_held, counts)
        })
    }

    #[test]
    fn a_stalled_destination_of_a_bulk_flow_holds_the_limit_and_no_pool_buffer() {
        let (copied, arrived, max_held, counts) = stall(64 * 1024);
        assert_eq!(
            copied, arrived,
            "every byte the forward counted arrived intact"
        );
        eprintln!("max held {max_held}, {counts:?}");
    }

    #[test]
    fn a_stalled_destination_of_small_messages_holds_the_limit_and_no_pool_buffer() {
        let (copied, arrived, max_held, counts) = stall(100);
        assert_eq!(
            copied, arrived,
            "every byte the forward counted arrived intact"
        );
        eprintln!("max held {max_held}, {counts:?}");
    }

    /// Forwards dropped at arbitrary points, with sends and receives in flight, give every
    /// pool buffer back once their ops complete.
    #[test]
    fn forwards_dropped_at_any_point_return_every_buffer() {
        let pool = BufPool::new(64, 512).unwrap();
        let rt = crate::Runtime::new().unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for round in 0..40 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let (polls, piece) = (seed % 64, [10, 700, 64 * 1024][(seed >> 8) as usize % 3]);
            let round_pool = pool.clone();
            rt.block_on(async move {
                let pool = round_pool;
                let (writer, from) = UnixStream::pair().unwrap();
                let (to, reader) = UnixStream::pair().unwrap();
                let feeder = crate::spawn(async move {
                    feed(&writer, &AtomicU64::new(0), 1 << 20, piece).await;
                });
                let drain = crate::spawn(async move { check_to_end(&reader, 0).await });
                let (src, dst) = (from.shared_fd(), to.shared_fd());
                let run = async move {
                    let mut forward = Forward::new(&src, &dst, &pool, 4096);
                    for _ in 0..polls {
                        let _ =
                            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut forward).poll(cx)))
                                .await;
                        crate::task::yield_now().await;
                    }
                    let relays = forward.counts().relays;
                    drop(forward);
                    (src, dst, relays)
                };
                // Odd rounds on a worker, where the flow is relayed; even rounds on the
                // thread of `block_on`, which owns no ring, so the task receives.
                let (src, dst, relays) = if round % 2 == 1 {
                    crate::spawn(run).await.unwrap()
                } else {
                    run.await
                };
                if polls > 0 {
                    assert_eq!(relays, round % 2, "round {round}");
                }
                feeder.abort();
                drop((from, to, src, dst));
                let _ = drain.await;
            });
            let deadline = Instant::now() + Duration::from_secs(30);
            while pool.in_use() != 0 {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: {} buffers never came back",
                    pool.in_use()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
