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
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use io_uring::types::{BufRingEntry, Fd};
use io_uring::{cqueue, opcode, squeue, IoUring};

/// Buffers in the provided-buffer ring (a power of two).
const BUFS: u16 = 1024;
/// Bytes per buffer.
const BUF_SIZE: usize = 4096;
/// The buffer group id.
const GROUP: u16 = 0;

/// What a CQE completes: the top byte of its user_data.
const ACCEPT: u64 = 1 << 56;
const RECV: u64 = 2 << 56;
const SEND: u64 = 3 << 56;
const KIND: u64 = 0xff << 56;

/// A send in flight: which buffer, and how much of it is still to go.
struct Sending {
    fd: RawFd,
    offset: usize,
    len: usize,
}

/// The provided-buffer ring and the buffers it hands out.
struct BufRing {
    /// Page-aligned ring of `BUFS` entries (mmap'd, shared with the kernel).
    entries: *mut BufRingEntry,
    /// `BUFS * BUF_SIZE` bytes of buffers, leaked: the kernel may write into them until
    /// the ring is gone, so they live as long as the process, like the mapping.
    memory: &'static mut [u8],
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<BufRing> {
        let size = usize::from(BUFS) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; no memory of ours is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut bufs = BufRing {
            entries: ptr.cast(),
            memory: vec![0; usize::from(BUFS) * BUF_SIZE].leak(),
            tail: 0,
        };
        // SAFETY: the mapping is page-aligned and holds BUFS entries; it lives (never
        // unmapped) as long as the process, so as long as the ring that uses it.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, BUFS, GROUP, 0)?
        };
        for bid in 0..BUFS {
            bufs.give_back(bid);
        }
        Ok(bufs)
    }

    /// The bytes of buffer `bid`.
    fn buf(&self, bid: u16) -> *const u8 {
        self.memory[usize::from(bid) * BUF_SIZE..].as_ptr()
    }

    /// Puts buffer `bid` back at the ring's tail, where the kernel takes it again.
    fn give_back(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (BUFS - 1));
        // SAFETY: `slot` < BUFS, inside the mapping; the kernel reads entries only up to
        // the tail, which is published after the entry is written.
        unsafe {
            let entry = &mut *self.entries.add(slot);
            entry.set_addr(self.buf(bid) as u64);
            entry.set_len(BUF_SIZE as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field of the first entry, in the mapping; the kernel reads it
        // with an acquire load, so the release store publishes the entry above.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// Serves echo on `listener` until the process exits; counts accepted connections in
/// `started`.
pub fn serve(listener: TcpListener, started: &AtomicUsize) -> io::Result<()> {
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)?;
    let mut bufs = BufRing::new(&ring)?;
    let listen_fd = listener.as_raw_fd();
    let mut sending: HashMap<u16, Sending> = HashMap::new();
    let mut pending: Vec<squeue::Entry> = vec![accept(listen_fd)];
    loop {
        {
            let mut sq = ring.submission();
            while let Some(sqe) = pending.pop() {
                // SAFETY: every SQE points only into `bufs.memory`, which is never freed
                // (so it outlives the ring, on every path out of this function), at a
                // buffer that is ours until its send completes.
                if unsafe { sq.push(&sqe) }.is_err() {
                    pending.push(sqe);
                    break;
                }
            }
        }
        ring.submit_and_wait(1)?;
        let cqes: Vec<cqueue::Entry> = ring.completion().collect();
        for cqe in cqes {
            let data = cqe.user_data();
            let (res, flags) = (cqe.result(), cqe.flags());
            match data & KIND {
                ACCEPT => {
                    if res >= 0 {
                        let one: libc::c_int = 1;
                        // SAFETY: `res` is the fd the kernel just accepted; `one` is a
                        // c_int of the size passed.
                        unsafe {
                            libc::setsockopt(
                                res,
                                libc::IPPROTO_TCP,
                                libc::TCP_NODELAY,
                                (&one as *const libc::c_int).cast(),
                                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                            )
                        };
                        started.fetch_add(1, Ordering::SeqCst);
                        pending.push(recv(res));
                    }
                    if !cqueue::more(flags) {
                        pending.push(accept(listen_fd));
                    }
                }
                RECV => {
                    let fd = (data & 0xffff_ffff) as RawFd;
                    match (res, cqueue::buffer_select(flags)) {
                        (n, Some(bid)) if n > 0 => {
                            let len = n as usize;
                            sending.insert(bid, Sending { fd, offset: 0, len });
                            pending.push(send(fd, bufs.buf(bid), len, bid));
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
                    let Some(mut s) = sending.remove(&bid) else {
                        continue;
                    };
                    if res > 0 && (res as usize) < s.len - s.offset {
                        s.offset += res as usize;
                        // SAFETY: offset < len <= BUF_SIZE: still inside buffer `bid`.
                        let at = unsafe { bufs.buf(bid).add(s.offset) };
                        pending.push(send(s.fd, at, s.len - s.offset, bid));
                        sending.insert(bid, s);
                    } else {
                        bufs.give_back(bid);
                    }
                }
                _ => {}
            }
        }
    }
}

fn accept(fd: RawFd) -> squeue::Entry {
    opcode::AcceptMulti::new(Fd(fd)).build().user_data(ACCEPT)
}

fn recv(fd: RawFd) -> squeue::Entry {
    opcode::RecvMulti::new(Fd(fd), GROUP)
        .build()
        .user_data(RECV | fd as u32 as u64)
}

fn send(fd: RawFd, buf: *const u8, len: usize, bid: u16) -> squeue::Entry {
    opcode::Send::new(Fd(fd), buf, len as u32)
        .build()
        .user_data(SEND | (u64::from(fd as u32) << 16) | u64::from(bid))
}
