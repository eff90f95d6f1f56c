//! Socket operations.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::future::{into_op_future, Multishot};
use super::iov::{fill_in_order, iovecs, iovecs_mut, len_u32, read_into};
use super::sockaddr::SockAddr;
use crate::buf::{IoBuf, IoBufMut};
use crate::cqe::Cqe;
use crate::operation::{MultishotOperation, Operation};

/// Closes an fd the kernel produced for a future that no longer exists.
pub(crate) fn close_orphan_fd(cqe: Cqe) {
    if cqe.result >= 0 {
        // SAFETY: a non-negative result of accept/open is a fresh fd nobody else owns.
        drop(unsafe { OwnedFd::from_raw_fd(cqe.result) });
    }
}

/// `IORING_OP_RECV`: receives into `buf` from its start, up to its capacity.
#[derive(Debug)]
pub struct Recv<B> {
    fd: RawFd,
    buf: B,
    flags: i32,
}

impl<B: IoBufMut> Recv<B> {
    /// Receives from socket `fd` into `buf`.
    pub fn new(fd: RawFd, buf: B) -> Self {
        Self { fd, buf, flags: 0 }
    }

    /// `MSG_*` flags for the receive.
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags;
        self
    }
}

// SAFETY: the SQE points at `buf`'s stable heap bytes, owned by the op until the CQE.
unsafe impl<B: IoBufMut> Operation for Recv<B> {
    type Output = (io::Result<usize>, B);

    fn build(&mut self) -> squeue::Entry {
        let len = len_u32(self.buf.bytes_total());
        opcode::Recv::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        read_into(self.buf, cqe)
    }
}

/// `IORING_OP_SEND`: sends `buf`'s initialized bytes (`MSG_NOSIGNAL` is always set: a
/// reset peer is an `EPIPE` error, not a process-killing signal).
#[derive(Debug)]
pub struct Send<B> {
    fd: RawFd,
    buf: B,
    flags: i32,
}

impl<B: IoBuf> Send<B> {
    /// Sends `buf` on socket `fd`.
    pub fn new(fd: RawFd, buf: B) -> Self {
        Self {
            fd,
            buf,
            flags: libc::MSG_NOSIGNAL,
        }
    }

    /// Extra `MSG_*` flags.
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags | libc::MSG_NOSIGNAL;
        self
    }
}

// SAFETY: the SQE points at `buf`'s stable heap bytes, owned by the op until the CQE.
unsafe impl<B: IoBuf> Operation for Send<B> {
    type Output = (io::Result<usize>, B);

    fn build(&mut self) -> squeue::Entry {
        let len = len_u32(self.buf.bytes_init());
        opcode::Send::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.io_result().map(|n| n as usize), self.buf)
    }
}

/// `IORING_OP_SEND_ZC`: zero-copy send. The kernel pins `buf` until it posts a
/// notification CQE; the op completes (and gives the buffer back) only then.
#[derive(Debug)]
pub struct SendZc<B> {
    fd: RawFd,
    buf: B,
    flags: i32,
}

impl<B: IoBuf> SendZc<B> {
    /// Sends `buf` on socket `fd` without copying it.
    pub fn new(fd: RawFd, buf: B) -> Self {
        Self {
            fd,
            buf,
            flags: libc::MSG_NOSIGNAL,
        }
    }

    /// Extra `MSG_*` flags (`MSG_DONTWAIT`: `EAGAIN` rather than waiting for room).
    ///
    /// ```
    /// use uringo_uring::op::SendZc;
    /// let send = SendZc::new(3, b"hello".to_vec()).flags(libc::MSG_DONTWAIT);
    /// # drop(send);
    /// ```
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags | libc::MSG_NOSIGNAL;
        self
    }
}

// SAFETY: `buf` stays in the op's cell until the final (notification) CQE.
unsafe impl<B: IoBuf> Operation for SendZc<B> {
    type Output = (io::Result<usize>, B);

    fn build(&mut self) -> squeue::Entry {
        let len = len_u32(self.buf.bytes_init());
        opcode::SendZc::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        // The cell keeps the first CQE's result (the byte count) and ORs in the
        // notification's flags.
        (cqe.io_result().map(|n| n as usize), self.buf)
    }
}

/// `IORING_OP_RECVMSG`: receives into several buffers and learns the sender's address.
#[derive(Debug)]
pub struct RecvMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    addr: SockAddr,
    msghdr: libc::msghdr,
    flags: u32,
}

// SAFETY: the raw pointers in `iovecs`/`msghdr` only point into the op itself.
unsafe impl<B: core::marker::Send> core::marker::Send for RecvMsg<B> {}

impl<B: IoBufMut> RecvMsg<B> {
    /// Receives from socket `fd` into `bufs`.
    pub fn new(fd: RawFd, bufs: Vec<B>) -> Self {
        Self {
            fd,
            bufs,
            iovecs: Vec::new(),
            addr: SockAddr::empty(),
            // SAFETY: msghdr is plain data; zeroed is "no name, no iov, no control".
            msghdr: unsafe { std::mem::zeroed() },
            flags: 0,
        }
    }
}

// SAFETY: the msghdr, its iovecs, the buffers and the address storage all live in the op
// (the op sits at a fixed address in its cell until the CQE).
unsafe impl<B: IoBufMut> Operation for RecvMsg<B> {
    type Output = (io::Result<(usize, SockAddr)>, Vec<B>);

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = iovecs_mut(&mut self.bufs);
        self.addr = SockAddr::empty();
        self.msghdr.msg_name = self.addr.as_mut_ptr().cast();
        self.msghdr.msg_namelen = self.addr.len;
        self.msghdr.msg_iov = self.iovecs.as_mut_ptr();
        self.msghdr.msg_iovlen = self.iovecs.len();
        opcode::RecvMsg::new(types::Fd(self.fd), &mut self.msghdr)
            .flags(self.flags)
            .build()
    }

    fn complete(mut self, cqe: Cqe) -> Self::Output {
        let result = cqe.io_result().map(|n| {
            fill_in_order(&mut self.bufs, n as usize);
            self.addr.len = self.msghdr.msg_namelen;
            (n as usize, self.addr.clone())
        });
        (result, self.bufs)
    }
}

/// `IORING_OP_SENDMSG`: sends several buffers, optionally to an explicit address.
#[derive(Debug)]
pub struct SendMsg<B> {
    fd: RawFd,
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
    addr: Option<SockAddr>,
    msghdr: libc::msghdr,
    flags: u32,
}

// SAFETY: the raw pointers in `iovecs`/`msghdr` only point into the op itself.
unsafe impl<B: core::marker::Send> core::marker::Send for SendMsg<B> {}

impl<B: IoBuf> SendMsg<B> {
    /// Sends `bufs` on socket `fd`, to `addr` if given (unconnected UDP).
    pub fn new(fd: RawFd, bufs: Vec<B>, addr: Option<SockAddr>) -> Self {
        Self {
            fd,
            bufs,
            iovecs: Vec::new(),
            addr,
            // SAFETY: msghdr is plain data; zeroed is "no name, no iov, no control".
            msghdr: unsafe { std::mem::zeroed() },
            flags: libc::MSG_NOSIGNAL as u32,
        }
    }

    /// Extra `MSG_*` flags (`MSG_DONTWAIT`: `EAGAIN` rather than waiting for room).
    ///
    /// ```
    /// use uringo_uring::op::SendMsg;
    /// let send = SendMsg::new(3, vec![b"hello".to_vec()], None).flags(libc::MSG_DONTWAIT);
    /// # drop(send);
    /// ```
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = (flags | libc::MSG_NOSIGNAL) as u32;
        self
    }
}

// SAFETY: as for RecvMsg.
unsafe impl<B: IoBuf> Operation for SendMsg<B> {
    type Output = (io::Result<usize>, Vec<B>);

    fn build(&mut self) -> squeue::Entry {
        self.iovecs = iovecs(&self.bufs);
        if let Some(addr) = &mut self.addr {
            self.msghdr.msg_name = addr.as_mut_ptr().cast();
            self.msghdr.msg_namelen = addr.len;
        }
        self.msghdr.msg_iov = self.iovecs.as_mut_ptr();
        self.msghdr.msg_iovlen = self.iovecs.len();
        opcode::SendMsg::new(types::Fd(self.fd), &self.msghdr)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe.io_result().map(|n| n as usize), self.bufs)
    }
}

/// `IORING_OP_ACCEPT`: one connection, with the peer's address. The new socket is
/// `SOCK_CLOEXEC`; if the future is dropped after the kernel accepted, the socket is
/// closed rather than leaked.
#[derive(Debug)]
pub struct Accept {
    fd: RawFd,
    addr: SockAddr,
    flags: i32,
}

impl Accept {
    /// Accepts on listening socket `fd`.
    pub fn new(fd: RawFd) -> Self {
        Self {
            fd,
            addr: SockAddr::empty(),
            flags: libc::SOCK_CLOEXEC,
        }
    }
}

// SAFETY: the address storage and its length live in the op until the CQE.
unsafe impl Operation for Accept {
    type Output = io::Result<(OwnedFd, SockAddr)>;

    fn build(&mut self) -> squeue::Entry {
        self.addr = SockAddr::empty();
        let addr = self.addr.as_mut_ptr();
        opcode::Accept::new(types::Fd(self.fd), addr, &mut self.addr.len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        let fd = cqe.io_result()?;
        // SAFETY: a successful accept returns a fresh fd that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok((fd, self.addr))
    }

    fn orphaned(self, cqe: Cqe) {
        close_orphan_fd(cqe);
    }
}

/// Multishot `IORING_OP_ACCEPT` (5.19+): one SQE accepts connection after connection;
/// each yields a `SOCK_CLOEXEC` socket (no peer address: ask with `getpeername`).
///
/// The stream ends when the kernel stops the op (an error, or cancellation); accept
/// again to continue. Sockets accepted after the stream is dropped are closed.
#[derive(Debug)]
pub struct AcceptMulti {
    fd: RawFd,
}

impl AcceptMulti {
    /// Accepts repeatedly on listening socket `fd`.
    pub fn new(fd: RawFd) -> Multishot<AcceptMulti> {
        Multishot::new(Self::op(fd))
    }

    /// The op itself, to wrap before it becomes a stream (e.g. in [`super::anchored::Anchored`]).
    pub fn op(fd: RawFd) -> AcceptMulti {
        Self { fd }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl MultishotOperation for AcceptMulti {
    type Item = io::Result<OwnedFd>;

    fn build(&self) -> squeue::Entry {
        opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    fn item(&self, cqe: Cqe) -> Self::Item {
        let fd = cqe.io_result()?;
        // SAFETY: a successful accept returns a fresh fd that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    fn orphaned_item(&self, cqe: Cqe) {
        close_orphan_fd(cqe);
    }
}

/// `IORING_OP_CONNECT`.
#[derive(Debug)]
pub struct Connect {
    fd: RawFd,
    addr: SockAddr,
}

impl Connect {
    /// Connects socket `fd` to `addr`.
    pub fn new(fd: RawFd, addr: impl Into<SockAddr>) -> Self {
        Self {
            fd,
            addr: addr.into(),
        }
    }
}

// SAFETY: the address lives in the op until the CQE.
unsafe impl Operation for Connect {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Connect::new(types::Fd(self.fd), self.addr.as_ptr(), self.addr.len).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_SHUTDOWN`.
///
/// The kernel never issues this op inline: it refuses it on the non-blocking path (it
/// may take the socket lock) and runs every one on an io-wq worker thread, starting
/// that thread on first use. `shutdown(2)` on a socket does not block, so a hot path
/// (a proxy half-closing each connection) is better served by the plain syscall, which
/// is what the `uringo` sockets do; this op is for code that wants the result as a CQE.
///
/// ```
/// use std::os::fd::AsRawFd;
/// use uringo_uring::{op::Shutdown, Ring};
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let ring = Ring::new().unwrap();
/// let shutdown = Shutdown::new(a.as_raw_fd(), std::net::Shutdown::Write);
/// ring.block_on(async { shutdown.await }).unwrap();
/// ```
#[derive(Debug)]
pub struct Shutdown {
    fd: RawFd,
    how: std::net::Shutdown,
}

impl Shutdown {
    /// Shuts down the read half, write half or both of socket `fd`.
    pub fn new(fd: RawFd, how: std::net::Shutdown) -> Self {
        Self { fd, how }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Shutdown {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        let how = match self.how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        opcode::Shutdown::new(types::Fd(self.fd), how).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

into_op_future!(
    Recv<B: IoBufMut>,
    Send<B: IoBuf>,
    SendZc<B: IoBuf>,
    RecvMsg<B: IoBufMut>,
    SendMsg<B: IoBuf>,
    Accept,
    Connect,
    Shutdown,
);
