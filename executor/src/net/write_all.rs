//! [`WriteAll`]: the future of every stream's `write_all`.
//!
//! It is written out by hand, not as an `async fn` loop over `write`, for its size. A
//! task that ever awaits `write_all` carries the future's size in its allocation for as
//! long as it lives, idle or not: an echo or proxy connection task waiting in a read still
//! has room for the write it does after. The `async fn` version keeps its arguments and
//! locals beside the op that already holds the buffer, and both the copying and the
//! zero-copy branches of `write` side by side: 280 bytes. Here the op in flight holds the
//! buffer, the future holds the socket, the two counts and one op, and the two kinds of
//! send share the op's slot with the poll that waits out a full socket (sends never wait
//! inside the kernel: see `socket::writable`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use uringo_uring::op::{PollAdd, Send, SendZc};
use uringo_uring::{IoBuf, Slice};

use super::socket::{is_full, run, writable, SharedFd, SocketOp, NO_WAIT};
use crate::runtime::coop::Coop;

/// Sends all of a buffer's initialized bytes, then gives the buffer back with the result
/// (see `TcpStream::write_all`). On an error some bytes may have been sent. Dropping it
/// cancels the send in flight; the buffer is freed at that send's completion.
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct WriteAll<B: IoBuf> {
    fd: SharedFd,
    /// Sends of at least this many bytes go zero-copy (`SEND_ZC`); `None` once the
    /// kernel has refused one.
    zerocopy_from: Option<usize>,
    written: usize,
    total: usize,
    send: Sending<B>,
}

enum Sending<B: IoBuf> {
    /// Between sends: the buffer, back from the last one (taken when the next starts).
    Idle(Option<B>),
    Copying(Coop<SocketOp<Send<Slice<B>>>>),
    ZeroCopy(Coop<SocketOp<SendZc<Slice<B>>>>),
    /// The socket was full: waiting for room (`socket::writable`) with the buffer.
    Writable(Coop<SocketOp<PollAdd>>, Option<B>),
}

impl<B: IoBuf> WriteAll<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, zerocopy_from: Option<usize>) -> WriteAll<B> {
        WriteAll {
            fd,
            zerocopy_from,
            written: 0,
            total: buf.bytes_init(),
            send: Sending::Idle(Some(buf)),
        }
    }

    /// Starts sending what is left of `buf`.
    fn start(&mut self, buf: B) {
        let rest = buf.slice(self.written..self.total);
        let raw = self.fd.as_raw_fd();
        self.send = match self.zerocopy_from {
            Some(min) if rest.bytes_init() >= min => {
                Sending::ZeroCopy(run(&self.fd, SendZc::new(raw, rest).flags(NO_WAIT)))
            }
            _ => Sending::Copying(run(&self.fd, Send::new(raw, rest).flags(NO_WAIT))),
        };
    }
}

impl<B: IoBuf> Future for WriteAll<B> {
    type Output = (io::Result<()>, B);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let (res, slice) = match &mut this.send {
                Sending::Idle(buf) => {
                    let buf = buf.take().expect("WriteAll polled after completion");
                    if this.written >= this.total {
                        return Poll::Ready((Ok(()), buf));
                    }
                    this.start(buf);
                    continue;
                }
                Sending::Writable(poll, buf) => {
                    let res = std::task::ready!(Pin::new(poll).poll(cx));
                    let buf = buf.take().expect("the buffer waits with the poll");
                    if let Err(err) = res {
                        this.send = Sending::Idle(None);
                        return Poll::Ready((Err(err), buf));
                    }
                    this.start(buf);
                    continue;
                }
                Sending::Copying(op) => std::task::ready!(Pin::new(op).poll(cx)),
                Sending::ZeroCopy(op) => {
                    let (res, slice) = std::task::ready!(Pin::new(op).poll(cx));
                    // A kernel without SEND_ZC fails it before touching the buffer:
                    // send copying from here on.
                    if matches!(&res, Err(err) if err.raw_os_error() == Some(libc::EINVAL)) {
                        this.zerocopy_from = None;
                        this.start(slice.into_inner());
                        continue;
                    }
                    (res, slice)
                }
            };
            let buf = slice.into_inner();
            match res {
                Ok(0) => {
                    this.send = Sending::Idle(None);
                    let err =
                        io::Error::new(io::ErrorKind::WriteZero, "failed to write whole buffer");
                    return Poll::Ready((Err(err), buf));
                }
                Ok(n) => this.written += n,
                Err(_) if is_full(&res) => {
                    this.send = Sending::Writable(writable(&this.fd), Some(buf));
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    this.send = Sending::Idle(None);
                    return Poll::Ready((Err(err), buf));
                }
            }
            this.send = Sending::Idle(Some(buf));
        }
    }
}
