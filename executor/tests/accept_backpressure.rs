//! `TcpListener::set_accept_backlog_limit`: past the limit, connections wait in the
//! kernel's listen backlog instead of being accepted, and every one is served once the
//! server accepts again.
//!
//! The kernel's side is read from `/proc/net/tcp`, whose `rx_queue` for a listening
//! socket is the number of connections in its listen backlog.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use common::{runtime, wait_for, with_watchdog, HANG};
use uringo::net::TcpListener;

/// Connections in the kernel's listen backlog of the IPv4 listener on `addr`.
fn kernel_backlog(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{:04X}", addr.port());
    let row = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[1] == local && f[3] == "0A")
        .unwrap_or_else(|| panic!("no listening socket {local} in\n{table}"));
    let (_tx, rx) = row[4].split_once(':').unwrap();
    usize::from_str_radix(rx, 16).unwrap()
}

fn connect(addr: SocketAddr) -> std::net::TcpStream {
    let client = std::net::TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client
}

/// Accepts `n` connections and writes each its index; each client must read its own.
fn serve_all(
    rt: &uringo::Runtime,
    listener: &Arc<TcpListener>,
    clients: &mut [std::net::TcpStream],
) {
    let listener = listener.clone();
    let n = clients.len();
    let server = rt.spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..n {
            let (stream, peer) = listener.accept().await.unwrap();
            streams.push((stream, peer));
        }
        streams
    });
    let streams = rt.block_on(server).unwrap();
    for (stream, peer) in streams {
        let index = clients
            .iter()
            .position(|c| c.local_addr().unwrap() == peer)
            .expect("accepted a connection no client made");
        rt.block_on(stream.write_all(vec![index as u8])).0.unwrap();
    }
    for (index, client) in clients.iter_mut().enumerate() {
        let mut byte = [0u8];
        client.read_exact(&mut byte).unwrap();
        assert_eq!(usize::from(byte[0]), index);
    }
}

/// A one-worker runtime and a listener with `limit`, whose multishot accept one served
/// client (the first of the returned clients) has armed; nobody accepts after it.
fn armed(
    limit: Option<usize>,
) -> (
    uringo::Runtime,
    Arc<TcpListener>,
    SocketAddr,
    Vec<std::net::TcpStream>,
) {
    let rt = runtime(1);
    let listener = Arc::new(
        rt.block_on(async { TcpListener::bind("127.0.0.1:0") })
            .unwrap(),
    );
    listener.set_accept_backlog_limit(limit);
    let addr = listener.local_addr().unwrap();
    let mut clients = vec![connect(addr)];
    serve_all(&rt, &listener, &mut clients[..]);
    (rt, listener, addr, clients)
}

#[test]
fn past_the_limit_connections_wait_in_the_kernel_backlog() {
    const LIMIT: usize = 4;
    const EXTRA: usize = 3;
    with_watchdog("backpressure", || {
        let (rt, listener, addr, mut clients) = armed(Some(LIMIT));

        // One at a time, so each is accepted on its own: the kernel takes them until the
        // limit...
        for queued in 1..=LIMIT {
            clients.push(connect(addr));
            wait_for("the kernel to hand over the connection", || {
                listener.accept_backlog_len() == queued
            });
        }
        assert_eq!(kernel_backlog(addr), 0);
        // ...and no further: these wait in the listen backlog.
        for _ in 0..EXTRA {
            clients.push(connect(addr));
        }
        wait_for("the extra connections in the kernel's backlog", || {
            kernel_backlog(addr) == EXTRA
        });
        assert_eq!(listener.accept_backlog_len(), LIMIT);

        // Accepting again serves every one, the waiting ones included.
        serve_all(&rt, &listener, &mut clients[1..]);
        assert_eq!(kernel_backlog(addr), 0);
        assert_eq!(listener.accept_backlog_len(), 0);
    });
}

#[test]
fn without_a_limit_every_connection_leaves_the_kernel_backlog() {
    const CLIENTS: usize = 7;
    with_watchdog("no limit", || {
        let (rt, listener, addr, mut clients) = armed(None);
        assert_eq!(listener.accept_backlog_limit(), None);

        for _ in 0..CLIENTS {
            clients.push(connect(addr));
        }
        wait_for("the kernel to hand over every connection", || {
            listener.accept_backlog_len() == CLIENTS
        });
        assert_eq!(kernel_backlog(addr), 0);
        serve_all(&rt, &listener, &mut clients[1..]);
    });
}
