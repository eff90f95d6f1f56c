//! What this crate tells an executor about the futures it polls: that an op was left
//! pending, and which (its opcode and fd), for task dumps.
//!
//! An executor that wants to know installs a hook once ([`set_pending_hook`]); every
//! [`Op`](crate::Op) or [`Multishot`](crate::Multishot) whose poll returns `Pending`
//! calls it on the polling thread. What the executor makes of it (which task, what
//! else it waits on) is its own business. Without a hook, reporting is one load.

use std::fmt;
use std::sync::OnceLock;

use io_uring::opcode;

/// An op a poll left pending: all the ring knows of what the poller waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingOp {
    /// `IORING_OP_*`.
    pub opcode: u8,
    /// The SQE's fd field (`-1` when the op has none).
    pub fd: i32,
}

static HOOK: OnceLock<fn(PendingOp)> = OnceLock::new();

/// Installs `hook`, called on the polling thread whenever an op's future returns
/// `Pending`. The first hook installed stays for the life of the process; returns
/// false, and drops `hook`, if one was already installed.
///
/// ```
/// use std::future::Future;
/// use std::os::fd::AsRawFd;
/// use std::sync::Mutex;
/// use std::task::Poll;
/// use uringo_uring::{op, opcodes, Op, PendingOp, Ring};
///
/// static SEEN: Mutex<Vec<PendingOp>> = Mutex::new(Vec::new());
/// fn hook(op: PendingOp) {
///     SEEN.lock().unwrap().push(op);
/// }
/// assert!(uringo_uring::set_pending_hook(hook));
///
/// let ring = Ring::new()?;
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// ring.block_on(async {
///     let mut recv = std::pin::pin!(Op::new(op::Recv::new(b.as_raw_fd(), Vec::with_capacity(4))));
///     std::future::poll_fn(|cx| Poll::Ready(assert!(recv.as_mut().poll(cx).is_pending()))).await;
///     let _ = op::Send::new(a.as_raw_fd(), b"ping".to_vec()).await;
///     let _ = recv.await;
/// });
/// let recv = PendingOp { opcode: opcodes::Recv::CODE, fd: b.as_raw_fd() };
/// assert!(SEEN.lock().unwrap().contains(&recv));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_pending_hook(hook: fn(PendingOp)) -> bool {
    HOOK.set(hook).is_ok()
}

impl PendingOp {
    /// The op an SQE stands for.
    #[inline]
    pub(crate) fn of_sqe(sqe: &io_uring::squeue::Entry) -> PendingOp {
        // `squeue::Entry` is `#[repr(C)]` around the kernel's `io_uring_sqe`, whose
        // layout is ABI: `opcode` is the byte at offset 0 and `fd` the i32 at offset 4.
        // SAFETY: so both reads are inside the entry and of initialized bytes.
        let (opcode, fd) = unsafe {
            let base = sqe as *const io_uring::squeue::Entry as *const u8;
            (*base, (base.add(4) as *const i32).read_unaligned())
        };
        PendingOp { opcode, fd }
    }

    /// Tells the installed hook, if any, that the poll in progress left this op
    /// pending.
    #[inline]
    pub(crate) fn report(self) {
        if let Some(hook) = HOOK.get() {
            hook(self);
        }
    }

    /// A short lowercase name for the opcode (`"recv"`, `"accept"`, ...; `"op"` for
    /// one this crate does not name).
    pub fn name(self) -> &'static str {
        match self.opcode {
            opcode::Nop::CODE => "nop",
            opcode::Readv::CODE => "readv",
            opcode::Writev::CODE => "writev",
            opcode::Fsync::CODE => "fsync",
            opcode::ReadFixed::CODE => "read_fixed",
            opcode::WriteFixed::CODE => "write_fixed",
            opcode::PollAdd::CODE => "poll",
            opcode::PollRemove::CODE => "poll_remove",
            opcode::SendMsg::CODE => "sendmsg",
            opcode::RecvMsg::CODE => "recvmsg",
            opcode::Timeout::CODE => "timeout",
            opcode::Accept::CODE => "accept",
            opcode::AsyncCancel::CODE => "cancel",
            opcode::Connect::CODE => "connect",
            opcode::Fallocate::CODE => "fallocate",
            opcode::OpenAt::CODE => "openat",
            opcode::Close::CODE => "close",
            opcode::Statx::CODE => "statx",
            opcode::Read::CODE => "read",
            opcode::Write::CODE => "write",
            opcode::Send::CODE => "send",
            opcode::Recv::CODE => "recv",
            opcode::Splice::CODE => "splice",
            opcode::Tee::CODE => "tee",
            opcode::Shutdown::CODE => "shutdown",
            opcode::RenameAt::CODE => "renameat",
            opcode::UnlinkAt::CODE => "unlinkat",
            opcode::MkDirAt::CODE => "mkdirat",
            opcode::MsgRingData::CODE => "msg_ring",
            opcode::Socket::CODE => "socket",
            opcode::SendZc::CODE => "send_zc",
            opcode::SendMsgZc::CODE => "sendmsg_zc",
            opcode::ReadMulti::CODE => "read_multishot",
            opcode::FutexWait::CODE => "futex_wait",
            opcode::Ftruncate::CODE => "ftruncate",
            _ => "op",
        }
    }
}

/// `recv on fd 7`, or the bare name for an op without an fd.
impl fmt::Display for PendingOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fd >= 0 {
            write!(f, "{} on fd {}", self.name(), self.fd)
        } else {
            f.write_str(self.name())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqes_are_described_by_opcode_and_fd() {
        let sqe = opcode::Recv::new(io_uring::types::Fd(11), std::ptr::null_mut(), 0).build();
        let op = PendingOp::of_sqe(&sqe);
        assert_eq!(
            op,
            PendingOp {
                opcode: opcode::Recv::CODE,
                fd: 11
            }
        );
        assert_eq!(op.to_string(), "recv on fd 11");
        let nop = PendingOp::of_sqe(&opcode::Nop::new().build());
        assert_eq!(nop.to_string(), "nop");
    }
}
