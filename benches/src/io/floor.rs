//! The floor: an echo server written straight on io_uring, with no runtime, to show
//! what the kernel's work costs and so how much of a runtime's figure is its own.
//!
//! One thread, one ring (`SINGLE_ISSUER | DEFER_TASKRUN`), one multishot accept, one
//! provided-buffer ring, a multishot recv per connection, and each received buffer
//! sent back as it is and returned to the buffer ring at the send's completion. One
//! `io_uring_enter` per loop, which submits and waits together. This is what uringo's
//! pooled echo does too (`recv_stream` on a `BufPool`), minus tasks, wakers and futures.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use io_uring::{cqueue, squeue};

use super::rawring::{self, BufRing, Chunk, Socket};

/// What a CQE completes: the top byte of its user_data.
const ACCEPT: u64 = 1 << 56;
const RECV: u64 = 2 << 56;
const SEND: u64 = 3 << 56;
const KIND: u64 = 0xff << 56;

/// Serves echo on `listener` until the process exits; counts accepted connections in
/// `started`.
pub fn serve(listener: TcpListener, started: &AtomicUsize) -> io::Result<()> {
    let mut ring = rawring::ring()?;
    let mut bufs = BufRing::new(&ring)?;
    let listen_fd = listener.as_raw_fd();
    // The sends in flight, by buffer, with the connection each goes to.
    let mut sending: HashMap<u16, (RawFd, Chunk)> = HashMap::new();
    let mut pending: Vec<squeue::Entry> = vec![rawring::accept(listen_fd, ACCEPT)];
    loop {
        // SAFETY: every SQE points only into `bufs`' memory, which is never freed (so it
        // outlives the ring, on every path out of this function), at a buffer that is
        // ours until its send completes.
        let cqes = unsafe { rawring::enter(&mut ring, &mut pending)? };
        for cqe in cqes {
            let data = cqe.user_data();
            let (res, flags) = (cqe.result(), cqe.flags());
            match data & KIND {
                ACCEPT => {
                    if res >= 0 {
                        rawring::set_nodelay(res);
                        started.fetch_add(1, Ordering::SeqCst);
                        pending.push(recv(res));
                    }
                    if !cqueue::more(flags) {
                        pending.push(rawring::accept(listen_fd, ACCEPT));
                    }
                }
                RECV => {
                    let fd = (data & 0xffff_ffff) as RawFd;
                    match (res, cqueue::buffer_select(flags)) {
                        (n, Some(bid)) if n > 0 => {
                            let chunk = Chunk::received(bid, n as usize);
                            pending.push(chunk.send(&bufs, Socket::Fd(fd), send_data(fd, bid)));
                            sending.insert(bid, (fd, chunk));
                            if !cqueue::more(flags) {
                                pending.push(recv(fd));
                            }
                        }
                        // Out of buffers: re-arm; the bytes wait in the socket.
                        (n, _) if n == -libc::ENOBUFS => pending.push(recv(fd)),
                        // End of stream or an error: the connection is done.
                        _ => {
                            if !cqueue::more(flags) {
                                // SAFETY: `fd` is a connection this loop accepted and
                                // nothing else holds.
                                unsafe { libc::close(fd) };
                            }
                        }
                    }
                }
                SEND => {
                    let bid = (data & 0xffff) as u16;
                    let Some((fd, mut chunk)) = sending.remove(&bid) else {
                        continue;
                    };
                    if chunk.advance(res) {
                        pending.push(chunk.send(&bufs, Socket::Fd(fd), send_data(fd, bid)));
                        sending.insert(bid, (fd, chunk));
                    } else {
                        bufs.give_back(bid);
                    }
                }
                _ => {}
            }
        }
    }
}

fn recv(fd: RawFd) -> squeue::Entry {
    rawring::recv(Socket::Fd(fd), RECV | fd as u32 as u64)
}

fn send_data(fd: RawFd, bid: u16) -> u64 {
    SEND | (u64::from(fd as u32) << 16) | u64::from(bid)
}
