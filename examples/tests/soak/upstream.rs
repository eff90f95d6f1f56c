//! The upstream server of the soak: a thread per connection, each playing the
//! upstream side of the script named by the id the client sent first, and recording
//! what it saw.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::peer::{exchange, receive, reset, send, set_timeouts, End, Received};
use super::script::Script;

/// What the upstream saw of one connection.
#[derive(Debug)]
pub struct UpstreamOutcome {
    pub received: Received,
    /// How sending the response ended.
    pub sent: Result<(), ErrorKind>,
}

/// What the upstream recorded over a round.
pub struct Seen {
    /// By connection id.
    pub outcomes: HashMap<u64, UpstreamOutcome>,
    /// How each connection that ended before its id arrived ended.
    pub anonymous: Vec<End>,
    /// Ids that arrived on more than one connection.
    pub duplicates: Vec<u64>,
}

#[derive(Default)]
struct Record {
    outcomes: HashMap<u64, UpstreamOutcome>,
    /// Connections that ended before their id arrived.
    anonymous: Vec<End>,
    /// Ids that arrived on more than one connection.
    duplicates: Vec<u64>,
}

/// The running server.
pub struct Upstream {
    pub addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    live: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start(seed: u64) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(Record::default()));
        let live = Arc::new(AtomicUsize::new(0));
        let (rec, count) = (record.clone(), live.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (rec, count) = (rec.clone(), count.clone());
                std::thread::spawn(move || {
                    serve(conn, seed, &rec);
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, record, live }
    }

    /// Connections still being served.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Takes what was recorded since the last call.
    pub fn take(&self) -> Seen {
        let record = std::mem::take(&mut *self.record.lock().unwrap());
        Seen {
            outcomes: record.outcomes,
            anonymous: record.anonymous,
            duplicates: record.duplicates,
        }
    }
}

fn serve(mut socket: TcpStream, seed: u64, record: &Mutex<Record>) {
    set_timeouts(&socket);
    let mut id = [0u8; 8];
    if let Err(err) = socket.read_exact(&mut id) {
        let end = match err.kind() {
            ErrorKind::UnexpectedEof => End::Eof,
            kind => End::Error(kind),
        };
        record.lock().unwrap().anonymous.push(end);
        return;
    }
    let script = Script::new(seed, u64::from_le_bytes(id));
    let outcome = play(socket, &script);
    let mut record = record.lock().unwrap();
    if record.outcomes.insert(script.id, outcome).is_some() {
        record.duplicates.push(script.id);
    }
}

fn play(mut socket: TcpStream, script: &Script) -> UpstreamOutcome {
    let plan = script.upstream;
    if let Some(plan_reset) = plan.reset {
        let received = receive(
            &mut socket,
            script.request,
            Some(plan_reset.after_reading),
            plan.read_stall,
        );
        let sent = send(
            &mut socket,
            script.response,
            0,
            plan_reset.after_sending,
            plan.write_stall,
        );
        reset(socket);
        return UpstreamOutcome { received, sent };
    }
    let (received, sent) = exchange(
        socket,
        (script.response, plan.write_stall),
        (script.request, plan.read_stall),
    );
    UpstreamOutcome { received, sent }
}
