//! SIGINT/SIGTERM as an awaitable event, through a signalfd read on the ring.
//!
//! A classic signal handler runs on whichever thread the kernel picks and may only do
//! async-signal-safe things, so it cannot wake a task. Instead the signals are blocked
//! (they stay pending instead of killing the process) and a signalfd reports them: a
//! uringo read on it completes when one arrives. The mask must be set before the
//! runtime's worker threads exist, because threads inherit their creator's mask and a
//! signal is delivered to any thread that does not block it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Size of the kernel's `struct signalfd_siginfo`.
const SIGINFO_SIZE: usize = 128;

/// SIGINT and SIGTERM, blocked and readable through a signalfd.
#[derive(Debug)]
pub struct ShutdownSignals {
    fd: OwnedFd,
}

impl ShutdownSignals {
    /// Blocks SIGINT and SIGTERM on the calling thread and opens a signalfd for them.
    ///
    /// Call it on the main thread before building the runtime, so that every worker
    /// thread inherits the mask; otherwise a signal may go to a worker and kill the
    /// process the default way.
    pub fn install() -> io::Result<ShutdownSignals> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.thread_block().map_err(io::Error::from)?;
        let signalfd =
            SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        let fd = signalfd.as_fd().try_clone_to_owned()?;
        Ok(ShutdownSignals { fd })
    }

    /// Waits for SIGINT or SIGTERM; returns which one arrived.
    pub async fn recv(self) -> io::Result<Signal> {
        let file = uringo::fs::File::from_std(std::fs::File::from(self.fd));
        loop {
            // A signalfd has no file position: the offset is ignored.
            let (res, buf) = file.read_at(Vec::with_capacity(SIGINFO_SIZE), 0).await;
            // The kernel hands out whole `signalfd_siginfo` records, never less.
            if res? < SIGINFO_SIZE {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "short read from the signalfd",
                ));
            }
            let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            match Signal::try_from(signo as i32) {
                Ok(signal) => return Ok(signal),
                Err(_) => continue,
            }
        }
    }
}
