//! What both ends of a soak connection do with a socket: send a stream (pausing where
//! the script says), receive and check one, reset. Every socket has a read and a write
//! timeout of [`PATIENCE`]: a connection the proxy leaves hanging ends with a timeout,
//! which no judgement accepts.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

use super::data::{Checker, Stream};
use super::script::Stall;
use crate::support::PATIENCE;

/// How receiving ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The peer's FIN, after the bytes received.
    Eof,
    /// We stopped on purpose, after the bytes we meant to read.
    Stopped,
    /// A read failed.
    Error(ErrorKind),
    /// Bytes differed from the stream's (or went past its end).
    Corrupt(String),
}

/// What one side received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Bytes received and found right.
    pub bytes: usize,
    /// Whether that was the whole stream.
    pub complete: bool,
    pub end: End,
}

impl Received {
    /// The whole stream, then EOF.
    pub fn is_whole(&self) -> bool {
        self.complete && self.end == End::Eof
    }
}

pub fn set_timeouts(stream: &TcpStream) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
}

/// Writes `stream`'s bytes `from..to`, pausing once at `stall`.
pub fn send(
    socket: &mut TcpStream,
    stream: Stream,
    from: usize,
    to: usize,
    stall: Option<Stall>,
) -> Result<(), ErrorKind> {
    let mut at = from;
    let mut pieces = Vec::new();
    match stall {
        Some(stall) if (from..to).contains(&stall.at) => {
            pieces.push((stall.at, None));
            pieces.push((to, Some(stall)));
        }
        _ => pieces.push((to, None)),
    }
    for (until, pause_first) in pieces {
        if let Some(stall) = pause_first {
            std::thread::sleep(stall.pause);
        }
        for slice in stream.slices(at, until) {
            socket.write_all(slice).map_err(|err| err.kind())?;
        }
        at = until;
    }
    Ok(())
}

/// Reads and checks `stream` until EOF, an error, or `limit` bytes (then stops),
/// pausing once at `stall`.
pub fn receive(
    socket: &mut TcpStream,
    stream: Stream,
    limit: Option<usize>,
    stall: Option<Stall>,
) -> Received {
    let mut checker = Checker::new(stream);
    let mut stall = stall;
    let mut buf = vec![0u8; 64 << 10];
    let end = loop {
        if limit == Some(checker.pos) {
            break End::Stopped;
        }
        if let Some(pause) = stall.filter(|s| s.at <= checker.pos) {
            std::thread::sleep(pause.pause);
            stall = None;
        }
        let mut want = buf.len();
        if let Some(limit) = limit {
            want = want.min(limit - checker.pos);
        }
        if let Some(s) = stall {
            want = want.min(s.at - checker.pos);
        }
        match socket.read(&mut buf[..want]) {
            Ok(0) => break End::Eof,
            Ok(n) => {
                if let Err(what) = checker.feed(&buf[..n]) {
                    break End::Corrupt(what);
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => break End::Error(err.kind()),
        }
    };
    Received {
        bytes: checker.pos,
        complete: checker.is_complete(),
        end,
    }
}

/// Both directions at once, as a proxy carries them: sends all of `out` and
/// half-closes, on a thread of its own, while receiving and checking `incoming` until
/// EOF; each with its stall. Returns what was received and how sending ended.
pub fn exchange(
    mut socket: TcpStream,
    out: (Stream, Option<Stall>),
    incoming: (Stream, Option<Stall>),
) -> (Received, Result<(), ErrorKind>) {
    let mut writer = socket.try_clone().expect("clone the socket");
    std::thread::scope(|scope| {
        let sending = scope.spawn(move || {
            send(&mut writer, out.0, 0, out.0.len, out.1)?;
            writer.shutdown(Shutdown::Write).map_err(|err| err.kind())
        });
        let received = receive(&mut socket, incoming.0, None, incoming.1);
        (received, sending.join().unwrap())
    })
}

/// Closes `socket` with a reset rather than a FIN (linger 0).
pub fn reset(socket: TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&socket, Linger, &linger).expect("SO_LINGER");
    drop(socket);
}

/// Whether an error is what a reset by either side explains (`NotConnected`: a
/// shutdown of a socket the peer has reset).
pub fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
    )
}
