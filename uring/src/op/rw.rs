//! Reads and writes at an offset, plain and vectored.
//!
//! The offset `u64::MAX` means "the file's current position" (and is what pipes and
//! sockets, which have no position, ignore anyway).

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::future::into_op_future;
use super::iov::{fill_in_order, iovecs, iovecs_mut, len_u32, read_into};
use crate::buf::{IoBuf, IoBufMut};
use crate::cqe::Cqe;
use crate::operation::Operation;

/// `IORING_OP_READ`: reads into `buf` from its start, up to its capacity.
///
/// ```
/// use uringo_uring::{op::ReadAt, Ring};
/// use std::os::fd::AsRawFd;
/// let ring = Ring::new()?;
/// let file = std::fs::File::open("/proc/self/comm")?;
/// let (n, buf) = ring.block_on(async { ReadAt::new(file.as_raw_fd(), Vec::with_capacity(64), 0).await });
/// assert_eq!(n?, buf.len());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ReadAt<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBufMut> ReadAt<B> {
    /// Reads from `fd` at `offset` into `buf`.
    pub fn new(fd: RawFd, buf: B, offset: u64) -> Self {
        Self { fd, buf, offset }
    }
}

// SAFETY: the SQE points at `buf`'s stable heap bytes, which live in the op until the CQE.
unsafe impl<B: IoBufMut> Operation for ReadAt<B> {
    type Output = (io::Result<usize>, B);

    fn build(&mut self) -> squeue::Entry {
        let len = len_u32(self.buf.bytes_total());
        opcode::Read::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        read_into(self.buf, cqe)
    }
}

/// `IORING_OP_WRITE`: writes `buf`'s initialized bytes at `offset`.
#[derive(Debug)]
pub struct WriteAt<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> WriteAt<B> {
    /// Writes `buf` to `fd` at `offset`.
    pub fn new(fd: RawFd, buf: B, offset: u64) -> Self {
        Self { fd, buf, offset }
    }
}

// SAFETY: the SQE points at `buf`'s stable heap bytes, which live in the op until the CQE.
unsafe impl<B: IoBuf> Operation for WriteAt<B> {
    type Output = (io::Result<usize>, B);

    fn build(&mut self) -> squeue::Entry {
        let len = len_u32(self.buf.bytes_init());
        opcode::Write::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.io_result().map(|n| n as usize), self.buf)
    }
}

/// `IORING_OP_READV`: scatters a read over several buffers, in order.
#[derive(Debug)]
pub struct Readv<B> {
    fd: RawFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
}

// SAFETY: the iovecs only point into `bufs`, which move with them; B is Send.
unsafe impl<B: Send> Send for Readv<B> {}

impl<B: IoBufMut> Readv<B> {
    /// Reads from `fd` at `offset` into `bufs`.
    pub fn new(fd: RawFd, bufs: Vec<B>, offset: u64) -> Self {
        Self {
            fd,
            bufs,
            iovecs: Vec::new(),
            offset,
        }
    }
}

// SAFETY: the iovec array and the buffers it points at are heap memory owned by the op.
unsafe impl<B: IoBufMut> Operation for Readv<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = iovecs_mut(&mut self.bufs);
        opcode::Readv::new(
            types::Fd(self.fd),
            self.iovecs.as_ptr(),
            len_u32(self.iovecs.len()),
        )
        .offset(self.offset)
        .build()
    }

    fn complete(mut self, cqe: Cqe) -> Self::Output {
        let result = cqe.io_result().map(|n| {
            fill_in_order(&mut self.bufs, n as usize);
            n as usize
        });
        (result, self.bufs)
    }
}

/// `IORING_OP_WRITEV`: gathers a write from several buffers, in order.
#[derive(Debug)]
pub struct Writev<B> {
    fd: RawFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    offset: u64,
}

// SAFETY: the iovecs only point into `bufs`, which move with them; B is Send.
unsafe impl<B: Send> Send for Writev<B> {}

impl<B: IoBuf> Writev<B> {
    /// Writes `bufs` to `fd` at `offset`.
    pub fn new(fd: RawFd, bufs: Vec<B>, offset: u64) -> Self {
        Self {
            fd,
            bufs,
            iovecs: Vec::new(),
            offset,
        }
    }
}

// SAFETY: the iovec array and the buffers it points at are heap memory owned by the op.
unsafe impl<B: IoBuf> Operation for Writev<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = iovecs(&self.bufs);
        opcode::Writev::new(
            types::Fd(self.fd),
            self.iovecs.as_ptr(),
            len_u32(self.iovecs.len()),
        )
        .offset(self.offset)
        .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.io_result().map(|n| n as usize), self.bufs)
    }
}

into_op_future!(
    ReadAt<B: IoBufMut>,
    WriteAt<B: IoBuf>,
    Readv<B: IoBufMut>,
    Writev<B: IoBuf>,
);
