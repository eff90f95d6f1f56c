//! `TcpStream::recv_stream`: multishot recv into a shared buffer pool, on the runtime.

mod common;

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::TcpListener as StdListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::with_watchdog;
use uringo::net::{BufPool, PooledBuf, TcpStream};
use uringo::{Builder, Runtime};

fn rt() -> Runtime {
    common::watch(Builder::new().worker_threads(2).build().unwrap())
}

/// A connected pair: a blocking std client and a uringo server side.
fn connected(listener: &StdListener) -> (std::net::TcpStream, TcpStream) {
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, TcpStream::from_std(server))
}

fn listener() -> StdListener {
    StdListener::bind("127.0.0.1:0").unwrap()
}

/// A byte pattern with no period that divides the buffer size.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// Waits (on the runtime's timer, bounded by the watchdog) until every buffer of `pool`
/// is back: returns travel through the owners' next ticks.
async fn all_buffers_back(pool: &BufPool) {
    while pool.available() != pool.capacity() {
        uringo::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn megabyte_streams_in_order_through_four_buffers_while_the_reader_holds_three() {
    with_watchdog("recv_stream_1mib", || {
        let rt = rt();
        let pool = BufPool::new(4, 4096).unwrap();
        let listener = listener();
        let (mut client, server) = connected(&listener);
        let sent = pattern(1 << 20);
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || client.write_all(&sent).unwrap())
        };
        let task_pool = pool.clone();
        let received = rt
            .block_on(rt.spawn(async move {
                let mut chunks = server.recv_stream(&task_pool);
                let mut held: VecDeque<PooledBuf> = VecDeque::new();
                let mut received = Vec::with_capacity(1 << 20);
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.unwrap();
                    assert!(!chunk.is_empty() && chunk.len() <= 4096);
                    received.extend_from_slice(&chunk);
                    held.push_back(chunk);
                    if held.len() > 3 {
                        held.pop_front();
                    }
                }
                received
            }))
            .unwrap();
        writer.join().unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "bytes differ or arrived out of order");
        // Where the kernel takes recv bundles, a bundle that takes the last free buffers
        // ends the recv without an error and the stream re-arms, usually after the
        // reader has returned one: that is this path's drought.
        assert!(
            pool.enobufs() > 0 || pool.bundles() > 0,
            "the pool never ran dry; the test proved nothing"
        );
        rt.block_on(all_buffers_back(&pool));
        assert!(pool.capacity() >= 4);
        assert_eq!(pool.in_use(), 0);
    });
}

#[test]
fn reading_from_block_on_goes_through_the_mailbox_and_returns_buffers() {
    with_watchdog("recv_stream_block_on", || {
        let rt = rt();
        let pool = BufPool::new(4, 1024).unwrap();
        let listener = listener();
        let (mut client, server) = connected(&listener);
        rt.block_on(async {
            let mut chunks = server.recv_stream(&pool);
            let mut held = Vec::new();
            for word in [&b"alpha"[..], b"beta", b"gamma"] {
                client.write_all(word).unwrap();
                let chunk = chunks.next().await.unwrap().unwrap();
                assert_eq!(&*chunk, word);
                held.push(chunk);
            }
            // The chunks keep their bytes while later ones arrive (with incremental
            // buffers they share one buffer).
            for (chunk, word) in held.iter().zip([&b"alpha"[..], b"beta", b"gamma"]) {
                assert_eq!(&**chunk, word);
            }
            drop(held);
            all_buffers_back(&pool).await;
            assert_eq!(pool.available(), pool.capacity());
            assert_eq!(pool.capacity(), 4, "one ring served this stream");
        });
    });
}

#[test]
fn buffers_dropped_off_their_worker_return_and_are_reused() {
    with_watchdog("recv_stream_remote_drop", || {
        let rt = rt();
        let pool = BufPool::new(4, 256).unwrap();
        let listener = listener();
        let (client, server) = connected(&listener);
        let server = Arc::new(server);
        let client = Arc::new(std::sync::Mutex::new(client));
        for round in 0..3u8 {
            let (server, client, task_pool) = (server.clone(), client.clone(), pool.clone());
            // A worker receives all four buffers and hands them to this (non-worker)
            // thread, which drops them.
            let held: Vec<PooledBuf> = rt
                .block_on(rt.spawn(async move {
                    let mut chunks = server.recv_stream(&task_pool);
                    let mut held = Vec::new();
                    for i in 0..4u8 {
                        client
                            .lock()
                            .unwrap()
                            .write_all(&[round * 10 + i; 7])
                            .unwrap();
                        let chunk = chunks.next().await.unwrap().unwrap();
                        assert_eq!(&*chunk, &[round * 10 + i; 7]);
                        held.push(chunk);
                    }
                    held
                }))
                .unwrap();
            assert_eq!(held.len(), 4);
            drop(held);
            rt.block_on(all_buffers_back(&pool));
        }
        // Three rounds of four buffers from a pool of four per ring: every round reused
        // buffers returned from another thread.
        assert_eq!(pool.in_use(), 0);
    });
}

#[test]
fn dropping_the_stream_mid_flight_returns_every_buffer() {
    with_watchdog("recv_stream_drop", || {
        let rt = rt();
        let pool = BufPool::new(16, 1024).unwrap();
        let listener = listener();
        let (mut client, server) = connected(&listener);
        let data = pattern(4 << 20);
        let writer = std::thread::spawn(move || {
            // The reader goes away mid-stream: the write ends with a reset or a pipe error.
            let _ = client.write_all(&data);
        });
        let task_pool = pool.clone();
        let first_len = rt
            .block_on(rt.spawn(async move {
                let mut chunks = server.recv_stream(&task_pool);
                let first = chunks.next().await.unwrap().unwrap();
                let len = first.len();
                drop(chunks); // recv still armed, data still flowing
                drop(first);
                drop(server); // close: the writer stops
                len
            }))
            .unwrap();
        assert!(first_len > 0);
        writer.join().unwrap();
        rt.block_on(all_buffers_back(&pool));
        assert_eq!(pool.in_use(), 0);
        assert!(pool.capacity() >= 16);
    });
}

#[test]
fn two_hundred_idle_connections_hold_no_buffer_then_all_get_their_data() {
    with_watchdog("recv_stream_idle", || {
        let rt = rt();
        let pool = BufPool::new(32, 512).unwrap();
        let listener = listener();
        let armed = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (client, server) = connected(&listener);
            clients.push(client);
            let (pool, armed) = (pool.clone(), armed.clone());
            tasks.push(rt.spawn(async move {
                let mut chunks = server.recv_stream(&pool);
                // The first poll arms the recv; then report it and wait for data.
                let first = std::future::poll_fn(|cx| {
                    let poll = chunks.poll_next(cx);
                    if poll.is_pending() {
                        armed.fetch_add(1, Ordering::SeqCst);
                    }
                    poll
                })
                .await;
                // An incremental buffer can end inside the message: read all of it.
                let expected = format!("conn {i}");
                let mut got = first.unwrap().unwrap().to_vec();
                while got.len() < expected.len() {
                    got.extend_from_slice(&chunks.next().await.unwrap().unwrap());
                }
                assert_eq!(got, expected.as_bytes());
                got.len()
            }));
        }
        rt.block_on(async {
            while armed.load(Ordering::SeqCst) < 200 {
                uringo::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(pool.capacity() >= 32, "no ring registered the pool");
        assert_eq!(
            pool.available(),
            pool.capacity(),
            "idle connections hold buffers"
        );
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_all(format!("conn {i}").as_bytes()).unwrap();
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let len = rt.block_on(task).unwrap();
            assert_eq!(len, format!("conn {i}").len());
        }
        rt.block_on(all_buffers_back(&pool));
    });
}

#[test]
fn eof_ends_the_stream() {
    with_watchdog("recv_stream_eof", || {
        let rt = rt();
        let pool = BufPool::new(4, 64).unwrap();
        let listener = listener();
        let (mut client, server) = connected(&listener);
        client.write_all(b"bye").unwrap();
        drop(client);
        rt.block_on(async {
            let mut chunks = server.recv_stream(&pool);
            let mut received = Vec::new();
            while let Some(chunk) = chunks.next().await {
                received.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(received, b"bye");
            assert!(
                chunks.next().await.is_none(),
                "the stream restarted after EOF"
            );
        });
    });
}

#[test]
fn peer_reset_gives_an_error_item() {
    with_watchdog("recv_stream_reset", || {
        let rt = rt();
        let pool = BufPool::new(4, 64).unwrap();
        let listener = listener();
        let (client, server) = connected(&listener);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads a live `linger` of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        rt.block_on(async {
            let mut chunks = server.recv_stream(&pool);
            // Zero linger: close sends RST, not FIN.
            drop(client);
            let err = chunks.next().await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset);
            assert!(chunks.next().await.is_none());
        });
    });
}

/// `Builder::avoid_kernel_feature(RecvBundle)` keeps a runtime off recv bundles even where
/// the kernel has them; without it, bytes waiting in a socket arrive in bundles there.
/// Either way they arrive whole and in order.
#[test]
fn avoiding_recv_bundles_takes_none_and_loses_nothing() {
    let kernel_bundles = uringo_uring::Ring::new().unwrap().features().recv_bundle;
    for avoid in [true, false] {
        with_watchdog("recv_stream_avoid_bundles", move || {
            let mut builder = Builder::new();
            builder.worker_threads(1);
            if avoid {
                builder.avoid_kernel_feature(uringo::KernelFeature::RecvBundle);
            }
            let rt = common::watch(builder.build().unwrap());
            let pool = BufPool::new(64, 4096).unwrap();
            let listener = listener();
            let (mut client, server) = connected(&listener);
            let sent = pattern(192 * 1024);
            let writer = {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    // In bursts that wait in the socket before the recv sees them.
                    for part in sent.chunks(64 * 1024) {
                        client.write_all(part).unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            };
            let task_pool = pool.clone();
            let want = sent.len();
            let received = rt
                .block_on(rt.spawn(async move {
                    let mut chunks = server.recv_stream(&task_pool);
                    let mut received = Vec::with_capacity(want);
                    while received.len() < want {
                        received.extend_from_slice(&chunks.next().await.unwrap().unwrap());
                    }
                    received
                }))
                .unwrap();
            writer.join().unwrap();
            assert!(received == sent, "bytes differ or arrived out of order");
            if avoid || !kernel_bundles {
                assert_eq!(pool.bundles(), 0, "a bundle with bundles avoided");
            } else {
                assert!(pool.bundles() > 0, "no receive took a bundle");
            }
            rt.block_on(all_buffers_back(&pool));
        });
    }
}
