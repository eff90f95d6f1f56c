//! The user-space alternative to splice for a proxy: each direction reads into its own
//! buffer and writes it out. One copy in and one out per chunk, but only a read and a
//! write per message, both completing inline on the ring; splice needs a poll and two
//! splices, and the kernel runs every splice on an io-wq worker thread. For the small
//! request/response messages of HTTP that trade favours buffers (see
//! `examples/README.md` for figures); for bulk transfers splice avoids the copies.

use std::future::{poll_fn, Future};
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::task::Poll;

use uringo::net::TcpStream;

/// Bytes per read, per direction.
pub const BUF_SIZE: usize = 16 * 1024;

/// Copies both ways between `a` and `b` until both directions reach end of stream;
/// end of stream one way half-closes the other socket, like
/// [`uringo::io::copy_bidirectional`]. Returns the bytes copied `(a → b, b → a)`; the
/// first error either way ends the copy.
pub async fn copy_bidirectional_buffered(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    let mut a_to_b = pin!(copy_one_way(a, b));
    let mut b_to_a = pin!(copy_one_way(b, a));
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

async fn copy_one_way(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(BUF_SIZE);
    let mut total = 0u64;
    loop {
        buf.clear();
        let (n, filled) = src.read(buf).await;
        buf = filled;
        if n? == 0 {
            break;
        }
        let (res, written) = dst.write_all(buf).await;
        buf = written;
        res?;
        total += buf.len() as u64;
    }
    match dst.shutdown(Shutdown::Write).await {
        // The peer is already gone: nothing left to tell it.
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(total),
        res => res.map(|()| total),
    }
}
