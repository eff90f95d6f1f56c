//! Zero-downtime restart: a running server hands its listening sockets to its
//! successor over a unix socket (SCM_RIGHTS), then stops accepting and drains.
//!
//! The sequence, with the same `--handoff PATH` on both command lines:
//!
//! 1. The running process listens on `PATH` ([`Offer::serve`]).
//! 2. The successor connects to `PATH` ([`take_over`]) and receives the listening
//!    sockets themselves, not copies bound anew: one socket in two processes, so the
//!    kernel's queue of pending connections is never closed and no client is refused.
//! 3. The successor starts accepting, then says so ([`Predecessor::accepting`]).
//! 4. The predecessor cancels its stop token: its accept loops stop accepting
//!    (`TcpListener::stop_accepting`), serve what the kernel had already accepted for
//!    them, and drop their listeners (the socket stays open in the successor); its
//!    connections drain, it exits. It closes the handoff connection,
//!    and the successor binds `PATH` for the next restart.
//!
//! If the successor dies before step 3, the predecessor keeps serving and waits for the
//! next one; the sockets it sent close with the dead process's copies.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio_util::sync::CancellationToken;
use uringo::net::{TcpListener, UnixListener};

/// The most listening sockets one handoff carries.
pub const MAX_LISTENERS: usize = 64;
/// The one data byte that carries the sockets.
const LISTENERS: u8 = b'L';
/// The successor's "I am accepting".
const ACCEPTING: u8 = b'A';

/// The successor's side of a handoff in progress: tell the predecessor once accepting.
#[derive(Debug)]
pub struct Predecessor {
    stream: StdUnixStream,
}

/// Asks whoever listens on `path` for its listening sockets. `Ok(None)` when no one
/// does (no file, or a stale one): start fresh. Blocking; call it before serving.
pub fn take_over(path: &Path) -> io::Result<Option<(Vec<std::net::TcpListener>, Predecessor)>> {
    let stream = match StdUnixStream::connect(path) {
        Ok(stream) => stream,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(err) => return Err(err),
    };
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; MAX_LISTENERS]);
    let mut iov = [IoSliceMut::new(&mut byte)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut listeners = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed `fd` in this process's table just now;
                // nothing else knows the number, so this is its only owner.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                listeners.push(std::net::TcpListener::from(owned));
            }
        }
    }
    if msg.bytes != 1 || byte[0] != LISTENERS || listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a handoff from a predecessor", path.display()),
        ));
    }
    Ok(Some((listeners, Predecessor { stream })))
}

impl Predecessor {
    /// Tells the predecessor that this process accepts on the sockets now, and waits
    /// until it has stopped accepting (it closes the connection). Blocking.
    pub fn accepting(mut self) -> io::Result<()> {
        self.stream.write_all(&[ACCEPTING])?;
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest)?;
        Ok(())
    }
}

/// The predecessor's side: its listening sockets, ready to be handed over.
#[derive(Debug)]
pub struct Offer {
    path: PathBuf,
    fds: Vec<OwnedFd>,
}

impl Offer {
    /// Duplicates the descriptors of `listeners` (one socket each, shared), so the
    /// offer holds them whatever becomes of the listeners themselves.
    pub fn new(path: &Path, listeners: &[TcpListener]) -> io::Result<Offer> {
        if listeners.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {MAX_LISTENERS} listeners can be handed over"),
            ));
        }
        let fds = listeners
            .iter()
            .map(|listener| listener.as_fd().try_clone_to_owned())
            .collect::<io::Result<_>>()?;
        Ok(Offer {
            path: path.to_path_buf(),
            fds,
        })
    }

    /// Listens on the path (replacing a stale file) and hands the sockets to the first
    /// successor that takes them and reports accepting; then cancels `stop`. Ends
    /// early, handing nothing, if `stop` is cancelled otherwise.
    pub fn serve(self, stop: CancellationToken) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let listener = UnixListener::bind(&self.path)?;
        uringo::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = stop.cancelled() => return,
                    conn = listener.accept() => conn,
                };
                let stream = match conn.and_then(|(stream, _)| stream.into_std()) {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "handoff: accept failed");
                        continue;
                    }
                };
                let fds: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
                // A rare, short exchange on a socket of its own: blocking calls on the
                // blocking pool rather than a protocol of ops.
                let handed = uringo::spawn_blocking(move || hand_over(stream, &fds)).await;
                match handed {
                    Ok(Ok(stream)) => {
                        tracing::info!(
                            listeners = self.fds.len(),
                            "handed the listeners to a successor; stopping"
                        );
                        stop.cancel();
                        // Closing it tells the successor we stopped accepting.
                        drop(stream);
                        return;
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "handoff: the successor went away; still serving")
                    }
                    Err(err) => tracing::warn!(error = %err, "handoff task failed"),
                }
            }
        });
        Ok(())
    }
}

/// Sends `fds` and waits for the successor's "accepting".
fn hand_over(mut stream: StdUnixStream, fds: &[RawFd]) -> io::Result<StdUnixStream> {
    stream.set_nonblocking(false)?;
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&[LISTENERS])],
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    if byte[0] != ACCEPTING {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected handoff message",
        ));
    }
    Ok(stream)
}
