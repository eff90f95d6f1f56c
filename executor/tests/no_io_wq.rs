//! Socket work never lands on an io-wq kernel thread (named `iou-wrk-*`). io_uring
//! moves an op there when it cannot finish it without blocking and has no poll to wait
//! on instead, and the thread then blocks for as long as the op waits: one per stalled
//! peer, in a proxy. Two ways in, each shut here:
//!
//! - `IORING_OP_SHUTDOWN` always goes to io-wq, and a proxy half-closes every connection
//!   it forwards: `TcpStream::shutdown`, the split write half's, `Compat`'s and
//!   `copy_bidirectional`'s make the `shutdown(2)` call themselves;
//! - a send that may wait is moved to io-wq once the socket has woken it often enough
//!   without room, which a writer whose peer sends back at the same time reaches: no
//!   stream send (`write`, `write_all`, `writev`, `Compat`, `copy_bidirectional`) is
//!   submitted so that it may wait (`net::socket::writable` in the crate).
//!
//! Its own test binary: io-wq threads are counted per process, and a thread, once
//! started, stays until the ring is gone. `Compat`'s part needs the `tokio-io` feature
//! (CI runs this file with it too).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use uringo::net::split::OwnedWriteHalf;
use uringo::net::TcpStream;

mod common;
use common::{io_wq_threads, read_to_eof, tcp_pair};

#[test]
fn half_closing_sockets_starts_no_io_wq_thread() {
    common::with_watchdog("shutdown inline", || {
        let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
        rt.block_on(async {
            for _ in 0..8 {
                // `TcpStream::shutdown`.
                let (client, server) = tcp_pair().await;
                client.shutdown(Shutdown::Write).await.unwrap();
                assert_eq!(read_to_eof(&server).await, b"");

                // The owned write half's `shutdown`.
                let (client, server) = tcp_pair().await;
                let (_read, write) = client.into_split();
                write.shutdown().await.unwrap();
                assert_eq!(read_to_eof(&server).await, b"");

                // `Compat::poll_shutdown`, after a write it flushes first.
                #[cfg(feature = "tokio-io")]
                {
                    use tokio::io::AsyncWriteExt;
                    let (client, server) = tcp_pair().await;
                    let mut io = uringo::compat::Compat::new(client);
                    io.write_all(b"bye").await.unwrap();
                    io.shutdown().await.unwrap();
                    assert_eq!(read_to_eof(&server).await, b"bye");
                }

                // `copy_bidirectional` half-closes each side when the other ends.
                let (mut a, a_peer) = tcp_pair().await;
                let (mut b, b_peer) = tcp_pair().await;
                let copy =
                    uringo::spawn(
                        async move { uringo::io::copy_bidirectional(&mut a, &mut b).await },
                    );
                a_peer.shutdown(Shutdown::Write).await.unwrap();
                assert_eq!(read_to_eof(&b_peer).await, b"");
                b_peer.shutdown(Shutdown::Write).await.unwrap();
                assert_eq!(read_to_eof(&a_peer).await, b"");
                assert_eq!(copy.await.unwrap().unwrap(), (0, 0));
            }
        });
        assert_eq!(
            io_wq_threads(),
            0,
            "a shutdown went to io-wq, which started a kernel thread for it"
        );
    });
}

/// Bytes each end of the bulk copy sends.
const BULK: usize = 256 << 20;

/// Writes `BULK` bytes of a pattern that depends on `seed` and the offset, then
/// half-closes.
fn send_bulk(mut conn: std::net::TcpStream, seed: u8) {
    let mut block = vec![0u8; 64 * 1024];
    for i in 0..BULK / block.len() {
        block.fill(seed.wrapping_add(i as u8));
        conn.write_all(&block).unwrap();
    }
    conn.shutdown(Shutdown::Write).unwrap();
}

/// Reads to end of stream; checks the pattern `send_bulk` wrote with `seed` (by slice
/// comparison, which stays fast in debug builds). It reads in small pieces, so that the
/// other end's sends keep finding its socket full, while its own sends keep that end's
/// socket receiving: the wake-ups that made the kernel give up on waiting sends.
fn receive_bulk(mut conn: std::net::TcpStream, seed: u8) -> usize {
    const BLOCK: usize = 64 * 1024;
    let mut buf = vec![0u8; 2048];
    let mut at = 0usize;
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            return at;
        }
        let mut done = 0;
        while done < n {
            let block = (at + done) / BLOCK;
            let len = (BLOCK - (at + done) % BLOCK).min(n - done);
            let expected = vec![seed.wrapping_add(block as u8); len];
            assert!(
                buf[done..done + len] == expected[..],
                "block {block} arrived intact"
            );
            done += len;
        }
        at += n;
    }
}

#[test]
fn a_bidirectional_bulk_copy_starts_no_io_wq_thread() {
    common::with_watchdog("bidirectional bulk", || {
        let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
        let (client, server, copy) = common::copy_proxy(&rt);
        let ends = [(client, 1u8, 2u8), (server, 2, 1)].map(|(conn, mine, theirs)| {
            let reader = conn.try_clone().unwrap();
            (
                thread::spawn(move || send_bulk(conn, mine)),
                thread::spawn(move || receive_bulk(reader, theirs)),
            )
        });
        for (sender, receiver) in ends {
            sender.join().unwrap();
            assert_eq!(receiver.join().unwrap(), BULK, "every byte arrived");
        }
        let copied = rt.block_on(copy).unwrap().unwrap();
        assert_eq!(copied, (BULK as u64, BULK as u64));
        assert_eq!(
            io_wq_threads(),
            0,
            "a send of the copy went to io-wq, which started a kernel thread for it"
        );
    });
}

/// How a uringo task writes `BULK` bytes, in 64 KiB blocks, to a peer that sends back.
#[derive(Clone, Copy, Debug)]
enum Writer {
    WriteAll,
    Write,
    Writev,
    #[cfg(feature = "tokio-io")]
    Compat,
}

/// Writes `block` the way `how` says.
async fn write_block(stream: &OwnedWriteHalf<TcpStream>, how: Writer, block: Vec<u8>) {
    match how {
        Writer::WriteAll => stream.write_all(block).await.0.unwrap(),
        Writer::Write | Writer::Writev => {
            let mut at = 0;
            while at < block.len() {
                let rest = block[at..].to_vec();
                let n = match how {
                    Writer::Write => stream.write(rest).await.0.unwrap(),
                    _ => stream.writev(vec![rest]).await.0.unwrap(),
                };
                at += n;
            }
        }
        #[cfg(feature = "tokio-io")]
        Writer::Compat => unreachable!("Compat owns its stream"),
    }
}

/// A uringo writer sends `BULK` bytes while its std peer sends as many back; both sides
/// check every byte, and no io-wq thread may appear.
fn write_against_a_peer_that_sends(how: Writer) {
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let reader = conn.try_clone().unwrap();
        let sender = thread::spawn(move || send_bulk(conn, 1));
        let got = receive_bulk(reader, 2);
        sender.join().unwrap();
        got
    });
    rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let blocks = (0..BULK / (64 << 10)).map(|i| vec![2u8.wrapping_add(i as u8); 64 << 10]);
        let reading = match how {
            #[cfg(feature = "tokio-io")]
            Writer::Compat => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut read, mut write) = tokio::io::split(uringo::compat::Compat::new(stream));
                let reading = uringo::spawn(async move {
                    let mut all = Vec::new();
                    read.read_to_end(&mut all).await.unwrap();
                    all.len()
                });
                for block in blocks {
                    write.write_all(&block).await.unwrap();
                }
                write.shutdown().await.unwrap();
                reading
            }
            _ => {
                let (read, write) = stream.into_split();
                let reading = uringo::spawn(async move {
                    let mut got = 0;
                    loop {
                        let (res, _) = read.read(Vec::with_capacity(64 << 10)).await;
                        match res.unwrap() {
                            0 => return got,
                            n => got += n,
                        }
                    }
                });
                for block in blocks {
                    write_block(&write, how, block).await;
                }
                write.shutdown().await.unwrap();
                reading
            }
        };
        assert_eq!(
            reading.await.unwrap(),
            BULK,
            "{how:?}: every byte came back"
        );
    });
    assert_eq!(
        peer.join().unwrap(),
        BULK,
        "{how:?}: the peer got every byte"
    );
    assert_eq!(
        io_wq_threads(),
        0,
        "{how:?}: a send went to io-wq, which started a kernel thread for it"
    );
}

#[test]
fn writers_whose_peer_sends_back_start_no_io_wq_thread() {
    common::with_watchdog("writers", || {
        write_against_a_peer_that_sends(Writer::WriteAll);
        write_against_a_peer_that_sends(Writer::Write);
        write_against_a_peer_that_sends(Writer::Writev);
        #[cfg(feature = "tokio-io")]
        write_against_a_peer_that_sends(Writer::Compat);
    });
}
