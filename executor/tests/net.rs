//! Networking end to end: TCP, UDP, unix sockets, splitting, faults, and the
//! zero-copy proxy loop.

mod common;

use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{read_to_eof as read_to_end, with_watchdog};
use uringo::net::{
    TcpListener, TcpSocket, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use uringo::{Builder, Runtime};

fn rt(workers: usize) -> Runtime {
    common::watch(Builder::new().worker_threads(workers).build().unwrap())
}

/// Deterministic test bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn unix_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("uringo-net-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn echo_100_connections_across_workers_bytes_intact() {
    with_watchdog("echo_100", || {
        let rt = rt(2);
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            uringo::spawn(async move {
                let mut incoming = listener.incoming();
                while let Some(conn) = incoming.next().await {
                    let conn = conn.unwrap();
                    uringo::spawn(async move {
                        let mut buf = Vec::with_capacity(4096);
                        loop {
                            buf.clear();
                            let (n, b) = conn.read(buf).await;
                            if n.unwrap() == 0 {
                                return;
                            }
                            let (res, b) = conn.write_all(b).await;
                            res.unwrap();
                            buf = b;
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..100u8)
                .map(|i| {
                    uringo::spawn(async move {
                        let stream = TcpStream::connect(addr).await.unwrap();
                        let data = pattern(64 * 1024 + i as usize, i);
                        let (reader, writer) = stream.into_split();
                        let sent = data.clone();
                        let w = uringo::spawn(async move {
                            let (res, _) = writer.write_all(sent).await;
                            res.unwrap();
                            // Dropping the owned write half sends FIN.
                        });
                        let mut got = Vec::new();
                        while got.len() < data.len() {
                            let (n, buf) = reader.read(Vec::with_capacity(8192)).await;
                            assert_ne!(n.unwrap(), 0, "early EOF");
                            got.extend_from_slice(&buf);
                        }
                        w.await.unwrap();
                        assert_eq!(got, data, "connection {i}");
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
        });
    });
}

#[test]
fn concurrent_acceptors_share_one_listener_and_lose_no_connection() {
    with_watchdog("acceptors", || {
        let rt = rt(2);
        rt.block_on(async {
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let addr = listener.local_addr().unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let acceptors: Vec<_> = (0..4)
                .map(|_| {
                    let (listener, accepted) = (listener.clone(), accepted.clone());
                    uringo::spawn(async move {
                        let mut mine = Vec::new();
                        while accepted.load(Ordering::SeqCst) < 60 {
                            let accept = uringo::time::timeout(
                                Duration::from_millis(200),
                                listener.accept(),
                            );
                            if let Ok(conn) = accept.await {
                                accepted.fetch_add(1, Ordering::SeqCst);
                                mine.push(conn.unwrap().0);
                            }
                        }
                        mine.len()
                    })
                })
                .collect();
            let mut clients = Vec::new();
            for _ in 0..60 {
                clients.push(TcpStream::connect(addr).await.unwrap());
            }
            let mut total = 0;
            for a in acceptors {
                total += a.await.unwrap();
            }
            assert_eq!(total, 60);
        });
    });
}

#[test]
fn a_dropped_accept_loses_no_connection() {
    let rt = rt(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // An accept that is abandoned before any connection arrives...
        let res = uringo::time::timeout(Duration::from_millis(20), listener.accept()).await;
        assert!(res.is_err());
        // ...leaves the connection that comes next for the next accept.
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    });
}

/// The completion cell keeps one waker; the listener fans it out. A task that polled
/// accept last and then gave up must not take the wake-up meant for a task still
/// waiting.
#[test]
fn an_abandoned_accept_does_not_strand_another_acceptor() {
    let rt = rt(1);
    rt.block_on(async {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let waiting = uringo::spawn({
            let listener = listener.clone();
            async move { listener.accept().await.map(|(_, peer)| peer) }
        });
        // Let the waiting task poll first, then poll (and abandon) an accept here.
        uringo::time::sleep(Duration::from_millis(50)).await;
        let abandoned = uringo::time::timeout(Duration::from_millis(10), listener.accept()).await;
        assert!(abandoned.is_err());
        let client = TcpStream::connect(addr).await.unwrap();
        let peer = uringo::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting acceptor was woken")
            .unwrap()
            .unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    });
}

#[test]
fn reset_by_peer_is_an_error_on_that_stream_only() {
    let rt = rt(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let doomed = TcpStream::connect(addr).await.unwrap();
        let (doomed_server, _) = listener.accept().await.unwrap();
        let healthy = TcpStream::connect(addr).await.unwrap();
        let (healthy_server, _) = listener.accept().await.unwrap();

        // SO_LINGER 0: close sends RST.
        doomed_server.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(doomed_server.linger().unwrap(), Some(Duration::ZERO));
        drop(doomed_server);
        let (res, _) = doomed.read(Vec::with_capacity(16)).await;
        let err = res.expect_err("read after RST");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

        let (res, _) = healthy.write_all(b"still fine".to_vec()).await;
        res.unwrap();
        let (res, buf) = healthy_server.read_exact(Vec::with_capacity(10)).await;
        res.unwrap();
        assert_eq!(buf, b"still fine");
    });
}

#[test]
fn half_close_lets_the_other_direction_finish() {
    let rt = rt(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = uringo::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let request = read_to_end(&conn).await;
            // The client has stopped writing; we can still answer.
            let (res, _) = conn
                .write_all(request.iter().rev().copied().collect::<Vec<u8>>())
                .await;
            res.unwrap();
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (res, _) = client.write_all(b"abcdef".to_vec()).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        assert_eq!(read_to_end(&client).await, b"fedcba");
        server.await.unwrap();
    });
}

#[test]
fn peek_read_exact_readv_writev() {
    let rt = rt(1);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();

        let (n, _) = client
            .writev(vec![
                b"hello ".to_vec(),
                b"vectored ".to_vec(),
                b"world".to_vec(),
            ])
            .await;
        assert_eq!(n.unwrap(), 20);

        let (res, peeked) = server.read_exact(Vec::with_capacity(0)).await;
        res.unwrap();
        assert!(peeked.is_empty());
        let (n, peeked) = server.peek(Vec::with_capacity(5)).await;
        assert_eq!(&peeked[..n.unwrap()], b"hello");
        let (n, bufs) = server
            .readv(vec![
                Vec::with_capacity(6),
                Vec::with_capacity(9),
                Vec::with_capacity(5),
            ])
            .await;
        assert_eq!(n.unwrap(), 20, "peek left the bytes in place");
        assert_eq!(
            bufs,
            vec![b"hello ".to_vec(), b"vectored ".to_vec(), b"world".to_vec()]
        );

        let (res, _) = client.write_all(b"abc".to_vec()).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let (res, partial) = server.read_exact(Vec::with_capacity(10)).await;
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(partial, b"abc", "bytes read before EOF stay in the buffer");
    });
}

#[test]
fn socket_options_round_trip() {
    let rt = rt(1);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        assert!(stream.nodelay().unwrap());
        stream.set_keepalive(true).unwrap();
        assert!(stream.keepalive().unwrap());
        stream.set_keepalive(false).unwrap();
        assert!(!stream.keepalive().unwrap());
        stream.set_linger(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(stream.linger().unwrap(), Some(Duration::from_secs(3)));
        stream.set_linger(None).unwrap();
        assert_eq!(stream.linger().unwrap(), None);
        stream.set_ttl(42).unwrap();
        assert_eq!(stream.ttl().unwrap(), 42);
        assert!(stream.take_error().unwrap().is_none());
    });
}

#[test]
fn reuseport_lets_two_listeners_share_a_port() {
    let rt = rt(1);
    rt.block_on(async {
        let bind = |addr: SocketAddr| {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseport(true).unwrap();
            assert!(socket.reuseport().unwrap());
            socket.bind(addr).unwrap();
            socket.listen(128).unwrap()
        };
        let first = bind("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap();
        let second = bind(addr);
        assert_eq!(second.local_addr().unwrap(), addr);
        // Without SO_REUSEPORT the same bind fails.
        let plain = TcpSocket::new_v4().unwrap();
        assert_eq!(
            plain.bind(addr).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
    });
}

#[test]
fn reunite_checks_the_halves_belong_together() {
    let rt = rt(1);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (r1, w1) = TcpStream::connect(addr).await.unwrap().into_split();
        let (r2, w2) = TcpStream::connect(addr).await.unwrap().into_split();
        let err = r1.reunite(w2).unwrap_err();
        let (r1, w2) = (err.0, err.1);
        let s1 = r1.reunite(w1).unwrap();
        let s2 = w2.reunite(r2).unwrap();
        assert_ne!(s1.local_addr().unwrap(), s2.local_addr().unwrap());
        // A reunited stream was not shut down: it still writes.
        let (server, _) = listener.accept().await.unwrap();
        let (res, _) = s1.write_all(b"x".to_vec()).await;
        res.unwrap();
        let (n, _) = server.read(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 1);
    });
}

#[test]
fn zerocopy_writes_arrive_intact() {
    let rt = rt(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = uringo::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            read_to_end(&conn).await
        });
        let client = TcpStream::connect(addr).await.unwrap();
        client.set_zerocopy_threshold(Some(16 * 1024));
        let big = pattern(1 << 20, 7);
        let (res, big_back) = client.write_all(big).await;
        res.unwrap();
        let (n, small) = client.write_zc(b"tail".to_vec()).await;
        assert_eq!(n.unwrap(), 4);
        client.shutdown(Shutdown::Write).await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), big_back.len() + small.len());
        assert_eq!(&got[..big_back.len()], &big_back[..]);
        assert_eq!(&got[big_back.len()..], b"tail");
    });
}

#[test]
fn udp_send_to_recv_from_connect_and_truncation() {
    let rt = rt(2);
    rt.block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (n, _) = a.send_to(b"datagram one".to_vec(), b_addr).await;
        assert_eq!(n.unwrap(), 12);
        let (res, buf) = b.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = res.unwrap();
        assert_eq!((&buf[..n], from), (&b"datagram one"[..], a_addr));

        a.connect(b_addr).unwrap();
        b.connect(a_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let (n, _) = b.send(b"0123456789".to_vec()).await;
        assert_eq!(n.unwrap(), 10);
        let (n, peeked) = a.peek(Vec::with_capacity(64)).await;
        assert_eq!(&peeked[..n.unwrap()], b"0123456789");
        // A datagram longer than the buffer is truncated, the rest discarded.
        let (n, buf) = a.recv(Vec::with_capacity(4)).await;
        assert_eq!(&buf[..n.unwrap()], b"0123");
        let (n, _) = b.send(b"next".to_vec()).await;
        n.unwrap();
        let (n, buf) = a.recv(Vec::with_capacity(64)).await;
        assert_eq!(&buf[..n.unwrap()], b"next", "one datagram per recv");
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
    });
}

#[test]
fn unix_stream_listener_pair_and_split() {
    with_watchdog("unix_stream", || {
        let rt = rt(2);
        let path = unix_path("stream");
        rt.block_on(async {
            let listener = UnixListener::bind(&path).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_pathname(),
                Some(path.as_path())
            );
            let server = uringo::spawn(async move {
                let (conn, _) = listener.accept().await.unwrap();
                let (r, w) = conn.into_split();
                let (res, buf) = r.read_exact(Vec::with_capacity(5)).await;
                res.unwrap();
                let (res, _) = w.write_all(buf).await;
                res.unwrap();
            });
            let client = UnixStream::connect(&path).await.unwrap();
            let (res, _) = client.write_all(b"hello".to_vec()).await;
            res.unwrap();
            let (res, buf) = client.read_exact(Vec::with_capacity(5)).await;
            res.unwrap();
            assert_eq!(buf, b"hello");
            server.await.unwrap();
            // The server's write half was dropped: we read EOF.
            let (n, _) = client.read(Vec::with_capacity(1)).await;
            assert_eq!(n.unwrap(), 0);

            let (a, b) = UnixStream::pair().unwrap();
            let (ra, wa) = a.split();
            let (res, _) = wa.write_all(b"ping".to_vec()).await;
            res.unwrap();
            let (res, buf) = b.read_exact(Vec::with_capacity(4)).await;
            res.unwrap();
            assert_eq!(buf, b"ping");
            drop(b);
            let (n, _) = ra.read(Vec::with_capacity(4)).await;
            assert_eq!(n.unwrap(), 0);
        });
        let missing = rt.block_on(UnixStream::connect(unix_path("nobody-listens")));
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn unix_datagrams_with_paths_and_unbound_senders() {
    let rt = rt(1);
    let path = unix_path("dgram");
    rt.block_on(async {
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        let (n, _) = client.send_to(b"hi".to_vec(), &path).await;
        assert_eq!(n.unwrap(), 2);
        let (res, buf) = server.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = res.unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(from.as_unix_path(), None, "an unbound sender has no path");

        let named_path = unix_path("dgram-client");
        let named = UnixDatagram::bind(&named_path).unwrap();
        let (n, _) = named.send_to(b"from a path".to_vec(), &path).await;
        n.unwrap();
        let (res, _) = server.recv_from(Vec::with_capacity(16)).await;
        assert_eq!(
            res.unwrap().1.as_unix_path().as_deref(),
            Some(named_path.as_path())
        );

        let (n, _) = client.send_to(b"x".to_vec(), unix_path("nobody")).await;
        assert_eq!(n.unwrap_err().kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_file(&named_path).unwrap();
    });
    std::fs::remove_file(&path).unwrap();
}

/// A proxy in front of an echo-ish upstream: 1 MiB each way, concurrently, with a
/// half-close in the middle; the proxy reports the byte counts.
#[test]
fn copy_bidirectional_proxies_both_ways_with_half_close() {
    with_watchdog("copy_bidirectional", || {
        let rt = rt(2);
        rt.block_on(async {
            let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
            let upstream_addr = upstream.local_addr().unwrap();
            // Upstream: sends 1 MiB of its own while it reads the client's 1 MiB to EOF,
            // then sends a digest of what it got and closes.
            uringo::spawn(async move {
                let (conn, _) = upstream.accept().await.unwrap();
                let (r, w) = conn.into_split();
                let writer = uringo::spawn(async move {
                    let (res, _) = w.write_all(pattern(1 << 20, 2)).await;
                    res.unwrap();
                    w
                });
                let mut got = Vec::new();
                loop {
                    let (n, buf) = r.read(Vec::with_capacity(32 * 1024)).await;
                    if n.unwrap() == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf);
                }
                let w = writer.await.unwrap();
                let ok = got == pattern(1 << 20, 1);
                let (res, _) = w.write_all(vec![ok as u8]).await;
                res.unwrap();
            });

            let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
            let proxy_addr = proxy.local_addr().unwrap();
            let proxy_task = uringo::spawn(async move {
                let (mut client, _) = proxy.accept().await.unwrap();
                let mut server = TcpStream::connect(upstream_addr).await.unwrap();
                uringo::io::copy_bidirectional(&mut client, &mut server).await
            });

            let client = TcpStream::connect(proxy_addr).await.unwrap();
            let (r, w) = client.into_split();
            let writer = uringo::spawn(async move {
                let (res, _) = w.write_all(pattern(1 << 20, 1)).await;
                res.unwrap();
                // Dropping the write half half-closes; the proxy must pass that on.
            });
            let mut got = Vec::new();
            loop {
                let (n, buf) = r.read(Vec::with_capacity(64 * 1024)).await;
                if n.unwrap() == 0 {
                    break;
                }
                got.extend_from_slice(&buf);
            }
            writer.await.unwrap();
            let (from_upstream, digest) = got.split_at(1 << 20);
            assert_eq!(from_upstream, &pattern(1 << 20, 2)[..]);
            assert_eq!(digest, [1], "the upstream saw the client's bytes intact");
            let (sent, received) = proxy_task.await.unwrap().unwrap();
            assert_eq!((sent, received), (1 << 20, (1 << 20) + 1));
        });
    });
}

#[test]
fn copy_bidirectional_over_unix_sockets_and_a_reset() {
    with_watchdog("copy_unix", || {
        let rt = rt(2);
        rt.block_on(async {
            let (mut a_inner, a_outer) = UnixStream::pair().unwrap();
            let (mut b_inner, b_outer) = UnixStream::pair().unwrap();
            let copy = uringo::spawn(async move {
                uringo::io::copy_bidirectional(&mut a_inner, &mut b_inner).await
            });
            let (res, _) = a_outer.write_all(pattern(300_000, 3)).await;
            res.unwrap();
            let (res, got) = b_outer.read_exact(Vec::with_capacity(300_000)).await;
            res.unwrap();
            assert_eq!(got, pattern(300_000, 3));
            drop(a_outer);
            drop(b_outer);
            // Both peers gone: the copy ends (EOF one way, EPIPE/reset or EOF the other)
            // rather than hanging.
            let _ = copy.await.unwrap();
        });
        rt.block_on(async {
            // A TCP peer that resets mid-copy is an error from the copy, not a hang.
            let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
            let upstream_addr = upstream.local_addr().unwrap();
            let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
            let proxy_addr = proxy.local_addr().unwrap();
            let copy = uringo::spawn(async move {
                let (mut client, _) = proxy.accept().await.unwrap();
                let mut server = TcpStream::connect(upstream_addr).await.unwrap();
                uringo::io::copy_bidirectional(&mut client, &mut server).await
            });
            let client = TcpStream::connect(proxy_addr).await.unwrap();
            let (server, _) = upstream.accept().await.unwrap();
            let (res, _) = client.write_all(b"hello".to_vec()).await;
            res.unwrap();
            let (res, _) = server.read_exact(Vec::with_capacity(5)).await;
            res.unwrap();
            server.set_linger(Some(Duration::ZERO)).unwrap();
            drop(server);
            let err = copy.await.unwrap().expect_err("the reset reaches the copy");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        });
    });
}

/// Copies relaying at ring level while their runtime is dropped: the drop ends (the
/// workers' rings refuse the relays' next sends), and every peer sees its stream end
/// instead of hanging.
#[test]
fn a_runtime_dropped_while_copies_relay_shuts_down_and_ends_every_stream() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as StdStream;

    with_watchdog("copy_runtime_drop", || {
        let rt = rt(2);
        let exchanges = Arc::new(AtomicUsize::new(0));
        let mut peers = Vec::new();
        for _ in 0..20 {
            let (client, a_inner) = StdStream::pair().unwrap();
            let (b_inner, server) = StdStream::pair().unwrap();
            rt.spawn(async move {
                let mut a = UnixStream::from_std(a_inner);
                let mut b = UnixStream::from_std(b_inner);
                let _ = uringo::io::copy_bidirectional(&mut a, &mut b).await;
            });
            // The server echoes until its stream ends.
            peers.push(std::thread::spawn(move || {
                let mut server = server;
                let mut buf = [0u8; 512];
                loop {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if server.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
            // The client pings until its stream ends.
            let exchanges = exchanges.clone();
            peers.push(std::thread::spawn(move || {
                let mut client = client;
                let mut buf = [0u8; 100];
                loop {
                    if client.write_all(&[7u8; 100]).is_err() {
                        return;
                    }
                    match client.read_exact(&mut buf) {
                        Ok(()) => {
                            exchanges.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        while exchanges.load(Ordering::Relaxed) < 2_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(rt);
        for peer in peers {
            peer.join().unwrap();
        }
    });
}

#[test]
fn dropping_a_copy_mid_flight_leaves_streams_usable() {
    with_watchdog("copy_drop", || {
        let rt = rt(2);
        rt.block_on(async {
            let (mut a_inner, a_outer) = UnixStream::pair().unwrap();
            let (mut b_inner, b_outer) = UnixStream::pair().unwrap();
            {
                let copy = uringo::io::copy_bidirectional(&mut a_inner, &mut b_inner);
                // Idle both ways: the copy waits in its recvs, then is dropped.
                let res = uringo::time::timeout(Duration::from_millis(30), copy).await;
                assert!(res.is_err());
            }
            // The original sockets were never closed or shut down by the copy.
            let (res, _) = a_inner.write_all(b"direct".to_vec()).await;
            res.unwrap();
            let (res, buf) = a_outer.read_exact(Vec::with_capacity(6)).await;
            res.unwrap();
            assert_eq!(buf, b"direct");
            let (res, _) = b_outer.write_all(b"back".to_vec()).await;
            res.unwrap();
            let (res, buf) = b_inner.read_exact(Vec::with_capacity(4)).await;
            res.unwrap();
            assert_eq!(buf, b"back");
        });
    });
}

/// A read polled once (its SQE queued, not yet seen by the kernel), then dropped with
/// its socket in the same tick: the fd number must not be reusable before the kernel is
/// done with the orphaned op, or that op would eat the next socket's bytes.
#[test]
fn an_orphaned_op_never_reads_a_reused_fd_number() {
    use std::future::Future;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::task::Poll;

    let rt = rt(1);
    let stolen = rt.block_on(async {
        uringo::spawn(async {
            let mut stolen = 0;
            for _ in 0..20 {
                let (a, _a_peer) = UnixStream::pair().unwrap();
                let old_fd = a.as_raw_fd();
                let mut read = Box::pin(a.read(Vec::with_capacity(64)));
                std::future::poll_fn(|cx| {
                    assert!(read.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                drop(read);
                drop(a);
                // Still in the same tick: the recv SQE has not been submitted yet.
                let (b, mut b_peer) = std::os::unix::net::UnixStream::pair().unwrap();
                b_peer.write_all(b"for b only").unwrap();
                let b = UnixStream::from_std(b);
                let reused = b.as_raw_fd() == old_fd || b_peer.as_raw_fd() == old_fd;
                let read = b.read_exact(Vec::with_capacity(10));
                let (res, buf) = uringo::time::timeout(Duration::from_secs(5), read)
                    .await
                    .unwrap_or_else(|_| panic!("b's bytes were taken (fd reused: {reused})"));
                res.unwrap();
                assert_eq!(buf, b"for b only");
                stolen += reused as usize;
            }
            stolen
        })
        .await
        .unwrap()
    });
    assert_eq!(
        stolen, 0,
        "an fd number was reused while an op still named it"
    );
}

/// Writing `&'static str` and `&'static [u8]` from a spawned (so `Send`) task compiles
/// and works: the op futures must not carry bounds rustc cannot prove for them.
#[test]
fn static_buffers_from_spawned_tasks() {
    let rt = rt(1);
    rt.block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = uringo::spawn(async move {
            let (res, _) = a.write_all("static str, ").await;
            res.unwrap();
            let (res, _) = a.write_all(&b"static bytes"[..]).await;
            res.unwrap();
        });
        writer.await.unwrap();
        let (res, buf) = b.read_exact(Vec::with_capacity(24)).await;
        res.unwrap();
        assert_eq!(buf, b"static str, static bytes");
    });
}

/// `read_exact` fills from the buffer's start like `read` does, so a fully initialised
/// buffer (`Box<[u8]>`, a `Vec` with a length) is overwritten, not skipped.
#[test]
fn read_exact_fills_initialised_buffers_from_the_start() {
    let rt = rt(1);
    rt.block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (res, _) = a.write_all(b"abcdefgh".to_vec()).await;
        res.unwrap();
        let (res, boxed) = b.read_exact(vec![0u8; 4].into_boxed_slice()).await;
        res.unwrap();
        assert_eq!(&boxed[..], b"abcd");
        let mut with_len = Vec::with_capacity(4);
        with_len.extend_from_slice(b"zz");
        let (res, buf) = b.read_exact(with_len).await;
        res.unwrap();
        assert_eq!(buf, b"efgh");
    });
}

/// A connection task carries the futures of the reads and writes it awaits for as long as
/// it lives, idle or not (an echo task waiting in its read still has room for the write
/// it does after): they stay a handful of words, not hundreds of bytes.
#[test]
fn read_and_write_all_futures_stay_small() {
    let rt = rt(1);
    rt.block_on(async {
        let (a, _b) = UnixStream::pair().unwrap();
        let read = a.read(Vec::with_capacity(16));
        let write_all = a.write_all(vec![1u8; 16]);
        assert!(
            std::mem::size_of_val(&read) <= 64,
            "read: {} bytes",
            std::mem::size_of_val(&read)
        );
        assert!(
            std::mem::size_of_val(&write_all) <= 160,
            "write_all: {} bytes",
            std::mem::size_of_val(&write_all)
        );
    });
}
