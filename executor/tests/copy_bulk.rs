//! A gibibyte each way through `copy_bidirectional` at once, every byte checked: the
//! forwarding path moves between pool buffers and owned receives as the flows go bulk,
//! and none of that may lose, repeat or reorder a byte.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};
use std::thread;

use uringo::net::{TcpListener, TcpStream};

mod common;

const TOTAL: u64 = 1 << 30;

/// The byte at `offset` of stream `seed`: a period of 251 (prime), so a chunk sent twice,
/// dropped or out of order cannot line up again by accident.
fn byte_at(seed: u8, offset: u64) -> u8 {
    (offset % 251) as u8 ^ seed
}

/// Sends `TOTAL` bytes of stream `seed`, then half-closes.
fn send_all(mut conn: StdStream, seed: u8) {
    let period: Vec<u8> = (0..251 * 256).map(|i| byte_at(seed, i)).collect();
    let mut offset = 0u64;
    while offset < TOTAL {
        let start = (offset % 251) as usize;
        let len = (TOTAL - offset).min(251 * 255) as usize;
        conn.write_all(&period[start..start + len]).unwrap();
        offset += len as u64;
    }
    conn.shutdown(Shutdown::Write).unwrap();
}

/// Reads stream `seed` to its end, checking every byte; returns how many arrived.
fn check_all(mut conn: StdStream, seed: u8) -> u64 {
    let period: Vec<u8> = (0..251 * 512).map(|i| byte_at(seed, i)).collect();
    let mut buf = vec![0u8; 251 * 256];
    let mut offset = 0u64;
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            return offset;
        }
        let start = (offset % 251) as usize;
        assert!(
            buf[..n] == period[start..start + n],
            "stream {seed}: bytes at {offset} differ"
        );
        offset += n as u64;
    }
}

#[test]
fn a_gibibyte_each_way_arrives_intact() {
    common::with_watchdog("copy_bulk", || {
        let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
        let upstream = StdListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let proxy = rt
            .block_on(async { TcpListener::bind("127.0.0.1:0") })
            .unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let copied = rt.spawn(async move {
            let (mut client, _) = proxy.accept().await?;
            let mut server = TcpStream::connect(upstream_addr).await?;
            uringo::io::copy_bidirectional(&mut client, &mut server).await
        });

        let client = StdStream::connect(proxy_addr).unwrap();
        let (server, _) = upstream.accept().unwrap();
        let up = {
            let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            [
                thread::spawn(move || send_all(c, 1)),
                thread::spawn(move || send_all(s, 2)),
            ]
        };
        let to_server = thread::spawn(move || check_all(server, 1));
        let to_client = check_all(client, 2);
        for sender in up {
            sender.join().unwrap();
        }
        assert_eq!(to_server.join().unwrap(), TOTAL, "client to server");
        assert_eq!(to_client, TOTAL, "server to client");
        let copied = rt.block_on(copied).unwrap().unwrap();
        assert_eq!(copied, (TOTAL, TOTAL));
    });
}
