//! An echo server: every byte a client sends comes back.
//!
//! One task per connection, owned buffers reused across reads (the read gives the buffer
//! back with the data in it; the write gives it back again). When the process runs out
//! of fds, accept fails with EMFILE: the server logs, backs off briefly and keeps
//! serving the connections it has.

use std::io;

use uringo::net::{TcpListener, TcpStream};

/// Size of each connection's buffer.
pub const BUF_SIZE: usize = 16 * 1024;

/// Accepts connections forever, spawning an echo task for each.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                uringo::spawn(async move {
                    let _ = echo(stream).await;
                });
            }
            Err(err) if is_fd_exhaustion(&err) => {
                eprintln!("echo: accept: {err}; backing off");
                // No timers yet in this runtime version: yield a few times instead of
                // sleeping, letting connection tasks finish and free fds.
                for _ in 0..64 {
                    uringo::task::yield_now().await;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Echoes one connection until the peer closes it. Returns the bytes echoed.
pub async fn echo(stream: TcpStream) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(BUF_SIZE);
    let mut total = 0;
    loop {
        let (n, b) = stream.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(total);
        }
        let (res, b) = stream.write_all(b).await;
        res?;
        total += n as u64;
        buf = b;
        buf.clear();
    }
}

fn is_fd_exhaustion(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
