//! What the floors (`floor.rs`, `floor_proxy.rs`) share: the ring they are built on,
//! the provided-buffer ring their multishot recvs draw from, the chunk a send is working
//! through, and the SQEs they all submit. Shared so that the two floors cost the same
//! per operation and differ only in what they do with a received buffer.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd, Fixed};
use io_uring::{cqueue, opcode, squeue, IoUring};

/// Buffers in the provided-buffer ring (a power of two).
const BUFS: u16 = 1024;
/// Bytes per buffer: what every other server reads at most at once.
const BUF_SIZE: usize = super::server::BUF_SIZE;
/// The buffer group id.
const GROUP: u16 = 0;

/// The floors' ring: one thread submits, and completions run only when it enters, as
/// uringo's own rings are set up.
pub fn ring() -> io::Result<IoUring> {
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)
}

/// Queues `pending` (as much as fits), then submits and waits for one completion in a
/// single `io_uring_enter`; returns the completions.
///
/// # Safety
///
/// Every buffer an SQE in `pending` points to stays valid, and unused by anyone but the
/// kernel, until that SQE's (last) completion.
pub unsafe fn enter(
    ring: &mut IoUring,
    pending: &mut Vec<squeue::Entry>,
) -> io::Result<Vec<cqueue::Entry>> {
    {
        let mut sq = ring.submission();
        while let Some(sqe) = pending.pop() {
            // SAFETY: the caller keeps what every SQE points to valid until it completes.
            if unsafe { sq.push(&sqe) }.is_err() {
                pending.push(sqe);
                break;
            }
        }
    }
    ring.submit_and_wait(1)?;
    Ok(ring.completion().collect())
}

/// The provided-buffer ring and the buffers it hands out.
pub struct BufRing {
    /// Page-aligned ring of `BUFS` entries (mmap'd, shared with the kernel).
    entries: *mut BufRingEntry,
    /// `BUFS * BUF_SIZE` bytes of buffers, leaked: the kernel may write into them until
    /// the ring is gone, so they live as long as the process, like the mapping.
    memory: &'static mut [u8],
    tail: u16,
}

impl BufRing {
    /// Maps the ring, registers it as group `GROUP` of `ring` and fills it.
    pub fn new(ring: &IoUring) -> io::Result<BufRing> {
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
    pub fn give_back(&mut self, bid: u16) {
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

/// A received buffer on its way out: which buffer, how much of it the recv filled and
/// how much of that is already sent.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// The buffer id (the recv's CQE names it).
    pub bid: u16,
    offset: usize,
    len: usize,
}

impl Chunk {
    /// The `len` bytes a recv's CQE put into buffer `bid`.
    pub fn received(bid: u16, len: usize) -> Chunk {
        Chunk {
            bid,
            offset: 0,
            len,
        }
    }

    /// Counts off a send's result; whether bytes are left (a short send), in which case
    /// [`Chunk::send`] sends the rest.
    pub fn advance(&mut self, res: i32) -> bool {
        if res > 0 && (res as usize) < self.len - self.offset {
            self.offset += res as usize;
            true
        } else {
            false
        }
    }

    /// An `IORING_OP_SEND` to `socket` of what is left of the chunk.
    pub fn send(&self, bufs: &BufRing, socket: Socket, user_data: u64) -> squeue::Entry {
        // SAFETY: offset < len <= BUF_SIZE (`advance` keeps it so): inside buffer `bid`.
        let at = unsafe { bufs.buf(self.bid).add(self.offset) };
        let len = (self.len - self.offset) as u32;
        let sqe = match socket {
            Socket::Fd(fd) => opcode::Send::new(Fd(fd), at, len).build(),
            Socket::Fixed(index) => opcode::Send::new(Fixed(index), at, len).build(),
        };
        sqe.user_data(user_data)
    }
}

/// How an SQE names a socket: by fd, or by its index in the ring's registered file table
/// (`IOSQE_FIXED_FILE`, which spares the kernel a file lookup and reference per op).
#[derive(Clone, Copy, Debug)]
pub enum Socket {
    Fd(RawFd),
    Fixed(u32),
}

/// A multishot accept on `fd`.
pub fn accept(fd: RawFd, user_data: u64) -> squeue::Entry {
    opcode::AcceptMulti::new(Fd(fd))
        .build()
        .user_data(user_data)
}

/// A multishot recv on `socket` into the buffer ring.
pub fn recv(socket: Socket, user_data: u64) -> squeue::Entry {
    let sqe = match socket {
        Socket::Fd(fd) => opcode::RecvMulti::new(Fd(fd), GROUP).build(),
        Socket::Fixed(index) => opcode::RecvMulti::new(Fixed(index), GROUP).build(),
    };
    sqe.user_data(user_data)
}

/// Sets `TCP_NODELAY` on `fd`, as every server in the benchmark does (ping-pong of small
/// messages would otherwise wait on Nagle).
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a socket of the caller's; `one` is a c_int of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}
