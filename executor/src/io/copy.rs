//! Copying between stream sockets: the inner loop of a TCP proxy.
//!
//! ## The problem
//!
//! A proxy moves bytes from one socket to another, both ways, for as long as either peer
//! sends. It must keep memory bounded when one side is faster than the other, it must
//! cost nothing while a connection idles or a peer stops reading, and it must pass end of
//! stream on as a half-close.
//!
//! ## What was rejected
//!
//! Splice (socket → pipe → socket) keeps the payload out of user space, but io_uring has
//! no non-blocking path for it: the kernel runs every splice on an io-wq worker thread.
//! A splice into a socket whose peer stopped reading blocks that thread until the peer
//! drains, so 100 stalled downloads parked 100 `iou-wrk` kernel threads in the process,
//! and 10 000 would park 10 000. Waiting for `POLLOUT` first narrows the window but does
//! not close it: a 64 KiB splice into a socket with 4 KiB of room still blocks. On small
//! messages splice also lost outright (a poll and two thread hand-offs per message:
//! 1.45× tokio's proxy CPU per request on a 1 KiB ping-pong).
//!
//! Copying through a `Vec` per direction (a receive into it, then a send of it) costs
//! a submitted receive per message, and each receive that finds no data arms an
//! internal poll in the kernel; a request/response proxy pays that on every message.
//!
//! ## The rule
//!
//! Each direction keeps one multishot receive armed on its source, taking buffers from
//! a pool the worker's ring shares with every other copy (`IORING_RECV_MULTISHOT` on a
//! provided-buffer ring, see [`BufPool`]): one SQE for the life of an interactive flow,
//! and an idle connection holds no buffer. Each received buffer is sent as it is, with
//! `MSG_DONTWAIT`, and goes back to the ring at that send's completion; nothing is
//! copied in user space while the destination keeps up.
//!
//! In that steady state no task runs at all. The receive's CQE submits the send of its
//! buffer and the send's CQE the next one, on the ring where they land, as a
//! hand-written io_uring proxy does it (`relay.rs`, on `uringo_uring::op::Handled`):
//! a task wake and poll per CQE was most of a proxy's user time. The task is woken
//! only when the flow leaves the steady state, for the cases below.
//!
//! A pool buffer never waits on a slow peer: otherwise ten thousand readers that stop
//! reading would hold the whole pool, and every other connection of the worker would
//! stop with them. A send from a pool buffer cannot wait (`MSG_DONTWAIT`: the kernel
//! answers `EAGAIN` instead of parking it), and what the destination does not take at
//! once is copied into the direction's own memory and sent from there, again with
//! `MSG_DONTWAIT`, each time a `POLLOUT` poll says the destination has room (a send
//! that waited inside the kernel could be moved to an io-wq thread and block it: see
//! `net::socket::writable`).
//!
//! A multishot receive cannot be held to a byte count: the kernel keeps filling buffers
//! while the socket has data. So a flow whose destination is slow, or whose chunks fill
//! whole pool buffers (a bulk transfer), leaves the pool: the multishot is cancelled and
//! drained, and the direction receives into vectors of its own, each receive submitted
//! only while the bytes held (received, not yet sent) plus its size fit in the limit.
//! That is the backpressure, and a stalled peer then costs at most the limit, plus what
//! the multishot had received before it stopped (at most the ring's pool, once), one
//! poll armed in the kernel, no pool buffer, no thread and no CPU. Owned receives also
//! suit bulk: they grow to the limit, so a bulk flow pays one receive and one send per
//! limit's worth of bytes. A flow whose owned receives come back short goes back to the
//! pool.
//!
//! The state machine is in `forward.rs`.

use std::future::{poll_fn, Future};
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::task::Poll;

use std::sync::OnceLock;

use uringo_uring::BufPool;

use super::forward::Forward;
use crate::net::socket::{self, SharedFd};
use crate::net::StreamSocket;

/// The default limit on a direction's bytes in flight (received, not yet sent).
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// Buffers per worker ring in the pool every copy receives into.
const POOL_BUFS: usize = 256;
/// Bytes per pool buffer: the most one receive takes from a bulk flow.
const POOL_BUF_SIZE: usize = 16 * 1024;

/// The pool every copy shares (registered lazily on each ring that receives into it).
fn pool() -> io::Result<&'static BufPool> {
    static POOL: OnceLock<BufPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = BufPool::new(POOL_BUFS, POOL_BUF_SIZE)?;
    Ok(POOL.get_or_init(|| pool))
}

/// Copies `from` to `to` until `from` reaches end of stream; returns the bytes copied.
///
/// Unlike [`copy_bidirectional`], end of stream is not passed on: `to` stays open for
/// writing (call `shutdown` on it to half-close). Small messages go from the worker's
/// shared receive buffers to `to` without a copy, and, on a worker thread, without a poll
/// of the copying task: each receive's completion submits the send (see the module docs
/// in the source). When `to` falls behind, the copy stops receiving once
/// [`DEFAULT_LIMIT`] bytes wait for it (plus, once, what the kernel had already
/// received). The first error on either socket ends the copy; dropping the future
/// cancels the ops in flight (bytes received but not yet sent are lost, as in any proxy
/// that stops forwarding).
///
/// `from` and `to` are borrowed, not mutably: uringo streams take `&self` for I/O, so the
/// same two sockets can be copied the other way at the same time.
///
/// ```
/// use uringo::net::UnixStream;
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (writer, from) = UnixStream::pair().unwrap();
///     let (to, reader) = UnixStream::pair().unwrap();
///     let copy = uringo::spawn(async move { uringo::io::copy(&from, &to).await });
///     let (res, _) = writer.write_all(b"hello".to_vec()).await;
///     res.unwrap();
///     drop(writer);
///     assert_eq!(copy.await.unwrap().unwrap(), 5);
///     let (res, got) = reader.read_exact(Vec::with_capacity(5)).await;
///     res.unwrap();
///     assert_eq!(got, b"hello");
/// });
/// ```
pub async fn copy<R, W>(from: &R, to: &W) -> io::Result<u64>
where
    R: StreamSocket + ?Sized,
    W: StreamSocket + ?Sized,
{
    forward(&from.shared_fd(), &to.shared_fd(), DEFAULT_LIMIT).await
}

/// Copies data both ways between `a` and `b` until both directions reach end of stream;
/// returns the bytes copied `(a → b, b → a)`.
///
/// End of stream from `a` shuts down `b`'s write side (and the other way round), so
/// half-closed connections work. Each direction works as [`copy`] does: a reader that
/// stops reading stops the copy towards it once [`DEFAULT_LIMIT`] bytes wait for it, and
/// costs no thread, no CPU and none of the shared receive buffers while it waits. The
/// first error in either direction ends the copy with that error; dropping the future
/// stops both directions.
///
/// ```
/// use uringo::net::{TcpListener, TcpStream};
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     // An upstream that answers "pong" to whatever it is sent.
///     let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
///     let upstream_addr = upstream.local_addr().unwrap();
///     uringo::spawn(async move {
///         let (conn, _) = upstream.accept().await.unwrap();
///         let (_, _) = conn.read(Vec::with_capacity(16)).await;
///         let _ = conn.write_all(b"pong".to_vec()).await;
///     });
///     // The proxy.
///     let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
///     let proxy_addr = proxy.local_addr().unwrap();
///     uringo::spawn(async move {
///         let (mut client, _) = proxy.accept().await.unwrap();
///         let mut server = TcpStream::connect(upstream_addr).await.unwrap();
///         uringo::io::copy_bidirectional(&mut client, &mut server).await
///     });
///     let client = TcpStream::connect(proxy_addr).await.unwrap();
///     let (res, _) = client.write_all(b"ping".to_vec()).await;
///     res.unwrap();
///     let (res, buf) = client.read_exact(Vec::with_capacity(4)).await;
///     res.unwrap();
///     assert_eq!(buf, b"pong");
/// });
/// ```
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: StreamSocket + ?Sized,
    B: StreamSocket + ?Sized,
{
    copy_bidirectional_with_sizes(a, b, DEFAULT_LIMIT, DEFAULT_LIMIT).await
}

/// [`copy_bidirectional`] with a limit per direction on the bytes in flight (received,
/// not yet sent), as tokio's function of the same name takes buffer sizes. Zero is raised to 1.
///
/// ```
/// use uringo::net::UnixStream;
///
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (client, mut a) = UnixStream::pair().unwrap();
///     let (mut b, upstream) = UnixStream::pair().unwrap();
///     let proxy = uringo::spawn(async move {
///         uringo::io::copy_bidirectional_with_sizes(&mut a, &mut b, 4096, 1 << 20).await
///     });
///     let (res, _) = client.write_all(b"request".to_vec()).await;
///     res.unwrap();
///     client.shutdown(std::net::Shutdown::Write).await.unwrap();
///     let (res, got) = upstream.read_exact(Vec::with_capacity(7)).await;
///     res.unwrap();
///     assert_eq!(got, b"request");
///     drop(upstream);
///     assert_eq!(proxy.await.unwrap().unwrap(), (7, 0));
/// });
/// ```
pub async fn copy_bidirectional_with_sizes<A, B>(
    a: &mut A,
    b: &mut B,
    a_to_b_limit: usize,
    b_to_a_limit: usize,
) -> io::Result<(u64, u64)>
where
    A: StreamSocket + ?Sized,
    B: StreamSocket + ?Sized,
{
    let (a, b) = (a.shared_fd(), b.shared_fd());
    let mut a_to_b = pin!(forward_then_half_close(&a, &b, a_to_b_limit));
    let mut b_to_a = pin!(forward_then_half_close(&b, &a, b_to_a_limit));
    let (mut sent, mut received) = (None, None);
    poll_fn(|cx| {
        if sent.is_none() {
            if let Poll::Ready(n) = a_to_b.as_mut().poll(cx) {
                sent = Some(n?);
            }
        }
        if received.is_none() {
            if let Poll::Ready(n) = b_to_a.as_mut().poll(cx) {
                received = Some(n?);
            }
        }
        match (sent, received) {
            (Some(sent), Some(received)) => Poll::Ready(Ok((sent, received))),
            _ => Poll::Pending,
        }
    })
    .await
}

async fn forward_then_half_close(src: &SharedFd, dst: &SharedFd, limit: usize) -> io::Result<u64> {
    let total = forward(src, dst, limit).await?;
    match socket::shutdown(dst, Shutdown::Write) {
        // The peer is already gone: nothing left to tell it.
        Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {}
        res => res?,
    }
    Ok(total)
}

/// Receives from `src` and sends all of it to `dst` until end of stream (see the module
/// docs).
async fn forward(src: &SharedFd, dst: &SharedFd, limit: usize) -> io::Result<u64> {
    Forward::new(src, dst, pool()?, limit).await
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::net::split::Sealed;
    use crate::net::UnixStream;

    /// `copy` takes `&mut` as tokio's does (the references coerce), and leaves `to`
    /// open for writing after `from`'s end of stream.
    #[test]
    #[allow(clippy::unnecessary_mut_passed)] // code ported from tokio passes `&mut`
    fn copy_accepts_mutable_references_and_does_not_half_close() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let (writer, mut from) = UnixStream::pair().unwrap();
            let (mut to, reader) = UnixStream::pair().unwrap();
            let (res, _) = writer.write_all(b"abc".to_vec()).await;
            res.unwrap();
            drop(writer);
            assert_eq!(super::copy(&mut from, &mut to).await.unwrap(), 3);
            let (res, _) = to.write_all(b"d".to_vec()).await;
            res.unwrap();
            let (res, got) = reader.read_exact(Vec::with_capacity(4)).await;
            res.unwrap();
            assert_eq!(got, b"abcd");
        });
    }

    /// A mebibyte through a limit that is not a power of two (the buffer grows 3000 and
    /// stops there) arrives whole and in order.
    #[test]
    fn bulk_flow_arrives_intact_through_a_small_limit() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let (writer, from) = UnixStream::pair().unwrap();
            let (to, reader) = UnixStream::pair().unwrap();
            let copy =
                crate::spawn(
                    async move { forward(&from.shared_fd(), &to.shared_fd(), 3000).await },
                );
            let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7) as u8).collect();
            let expected = data.clone();
            let feed = crate::spawn(async move {
                let (res, _) = writer.write_all(data).await;
                res.unwrap();
            });
            let (res, got) = reader.read_exact(Vec::with_capacity(1 << 20)).await;
            res.unwrap();
            assert!(got == expected, "bytes arrive in order");
            feed.await.unwrap();
            assert_eq!(copy.await.unwrap().unwrap(), 1 << 20);
        });
    }
}
