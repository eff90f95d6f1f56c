//! The client end of a soak connection.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};

use super::peer::{exchange, reset, send, set_timeouts, Received};
use super::script::Script;

/// What the client saw.
#[derive(Debug)]
pub struct ClientOutcome {
    /// Connecting to the proxy, or sending the id, failed.
    pub refused: Option<ErrorKind>,
    /// The response (none when the client resets: it does not read).
    pub received: Option<Received>,
    /// How sending the request ended.
    pub sent: Result<(), ErrorKind>,
}

/// Runs `script`'s client side against the proxy at `proxy`.
pub fn run(proxy: SocketAddr, script: &Script) -> ClientOutcome {
    let mut socket = match TcpStream::connect(proxy) {
        Ok(socket) => socket,
        Err(err) => return refused(err.kind()),
    };
    set_timeouts(&socket);
    if let Err(err) = socket.write_all(&script.id.to_le_bytes()) {
        return refused(err.kind());
    }
    let plan = script.client;
    if let Some(plan_reset) = plan.reset {
        let sent = send(
            &mut socket,
            script.request,
            0,
            plan_reset.after_sending,
            plan.write_stall,
        );
        reset(socket);
        return ClientOutcome {
            refused: None,
            received: None,
            sent,
        };
    }
    let (received, sent) = exchange(
        socket,
        (script.request, plan.write_stall),
        (script.response, plan.read_stall),
    );
    ClientOutcome {
        refused: None,
        received: Some(received),
        sent,
    }
}

fn refused(kind: ErrorKind) -> ClientOutcome {
    ClientOutcome {
        refused: Some(kind),
        received: None,
        sent: Err(kind),
    }
}
