//! Provided buffer rings and multishot recv: what a proxy relies on.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

mod common;

use common::with_deadline;
use uringo_uring::op::{Nop, RecvMultiStream};
use uringo_uring::{BufPool, KernelFeature, PooledBuf, Ring};

/// A byte pattern with no period that divides the buffer size, so a reordered or
/// repeated chunk cannot compare equal.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// A ring with neither incremental buffers nor bundles, even where the kernel has them:
/// every chunk takes a buffer of its own and every CQE carries one, which is what the
/// tests that count buffers count.
fn whole_buffer_ring() -> Ring {
    Ring::builder()
        .pretend_missing(KernelFeature::BufRingIncremental)
        .pretend_missing(KernelFeature::RecvBundle)
        .build()
        .unwrap()
}

/// How a ring hands out provided buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mode {
    /// `IOU_PBUF_RING_INC`: chunks share a buffer.
    incremental: bool,
    /// Recv bundles: a CQE may carry several buffers.
    bundles: bool,
}

/// Every buffer mode this kernel offers, the plain one (both features off) first.
fn each_buffer_mode() -> Vec<Mode> {
    let features = Ring::new().unwrap().features().clone();
    let mut modes = Vec::new();
    for incremental in [false, true] {
        for bundles in [false, true] {
            if (incremental && !features.buf_ring_incremental) || (bundles && !features.recv_bundle)
            {
                eprintln!("this kernel lacks incremental: {incremental} bundles: {bundles}");
                continue;
            }
            modes.push(Mode {
                incremental,
                bundles,
            });
        }
    }
    modes
}

/// A ring in buffer mode `mode` (see [`each_buffer_mode`]).
fn ring_in_mode(mode: Mode) -> Ring {
    let mut builder = Ring::builder();
    if !mode.incremental {
        builder.pretend_missing(KernelFeature::BufRingIncremental);
    }
    if !mode.bundles {
        builder.pretend_missing(KernelFeature::RecvBundle);
    }
    let ring = builder.build().unwrap();
    assert_eq!(ring.features().buf_ring_incremental, mode.incremental);
    assert_eq!(ring.features().recv_bundle, mode.bundles);
    ring
}

fn settle(ring: &Ring) {
    for _ in 0..100 {
        ring.block_on(async { Nop::new().await.unwrap() });
        if ring.in_flight() == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("ops still in flight: {}", ring.in_flight());
}

#[test]
fn megabyte_streams_in_order_through_four_buffers_while_the_reader_holds_three() {
    for mode in each_buffer_mode() {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(4, 4096).unwrap();
            let (mut tx, rx) = UnixStream::pair().unwrap();
            let sent = pattern(1 << 20);
            let writer = {
                let sent = sent.clone();
                std::thread::spawn(move || tx.write_all(&sent).unwrap())
            };
            let received = ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                let mut held: VecDeque<PooledBuf> = VecDeque::new();
                let mut received = Vec::with_capacity(1 << 20);
                while let Some(buf) = stream.next().await {
                    let buf = buf.unwrap();
                    assert!(!buf.is_empty() && buf.len() <= 4096);
                    received.extend_from_slice(&buf);
                    held.push_back(buf);
                    // Hold three of the four buffers: the kernel runs dry again and again.
                    if held.len() > 3 {
                        held.pop_front();
                    }
                }
                received
            });
            writer.join().unwrap();
            assert_eq!(received.len(), sent.len());
            assert!(
                received == sent,
                "bytes differ or arrived out of order ({mode:?})"
            );
            // A bundle that takes the last free buffers ends the multishot without an
            // error, and the stream re-arms; by then the reader has usually returned a
            // buffer, so a bundle recv seldom sees ENOBUFS here (`a_starved_stream_wakes`
            // starves one on purpose).
            assert!(
                pool.enobufs() > 0 || (mode.bundles && pool.bundles() > 0),
                "the pool never ran dry; the test proved nothing ({mode:?})"
            );
            assert_eq!(pool.available(), pool.capacity());
            assert_eq!(pool.capacity(), 4);
        });
    }
}

#[test]
fn buffers_return_to_the_pool_on_drop() {
    with_deadline(|| {
        let ring = whole_buffer_ring();
        let pool = BufPool::new(8, 256).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            let mut held = Vec::new();
            for chunk in [&b"one"[..], b"two", b"three"] {
                tx.write_all(chunk).unwrap();
                let buf = stream.next().await.unwrap().unwrap();
                assert_eq!(&*buf, chunk);
                held.push(buf);
            }
            assert_eq!(pool.capacity(), 8);
            assert_eq!(pool.in_use(), 3);
            assert_eq!(pool.available(), 5);
            drop(held);
            assert_eq!(pool.in_use(), 0);
            assert_eq!(pool.available(), 8);
        });
    });
}

#[test]
fn a_buffer_dropped_on_another_thread_goes_back_to_its_ring() {
    with_deadline(|| {
        let ring = whole_buffer_ring();
        let pool = BufPool::new(4, 64).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            let mut held = Vec::new();
            for i in 0..4u8 {
                tx.write_all(&[i; 10]).unwrap();
                held.push(stream.next().await.unwrap().unwrap());
            }
            assert_eq!(pool.available(), 0);
            std::thread::spawn(move || drop(held)).join().unwrap();
            assert_eq!(pool.available(), 4);
            // The kernel can fill all four again: they really went back into the ring,
            // so the recv neither ran dry nor lost bytes.
            let mut again = Vec::new();
            for i in 10..14u8 {
                tx.write_all(&[i; 10]).unwrap();
                let buf = stream.next().await.unwrap().unwrap();
                assert_eq!(&*buf, &[i; 10]);
                again.push(buf);
            }
            assert_eq!(pool.enobufs(), 0);
        });
    });
}

#[test]
fn a_starved_stream_wakes_when_another_thread_returns_a_buffer() {
    // Whole buffers, so that two small messages take both.
    for mode in each_buffer_mode().into_iter().filter(|m| !m.incremental) {
        a_starved_stream_wakes(mode);
    }
}

fn a_starved_stream_wakes(mode: Mode) {
    with_deadline(move || {
        let ring = ring_in_mode(mode);
        let pool = BufPool::new(2, 64).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            let mut held = Vec::new();
            for i in 0..2u8 {
                tx.write_all(&[i; 5]).unwrap();
                held.push(stream.next().await.unwrap().unwrap());
            }
            // Both buffers go to a thread that gives them back only once the stream has
            // run dry and gone to sleep waiting for one.
            let dropper = {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    while pool.enobufs() == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    drop(held);
                })
            };
            tx.write_all(b"after the drought").unwrap();
            let buf = stream.next().await.unwrap().unwrap();
            assert_eq!(&*buf, b"after the drought");
            assert!(pool.enobufs() >= 1);
            dropper.join().unwrap();
        });
    });
}

#[test]
fn dropping_the_stream_mid_flight_returns_every_buffer() {
    for mode in each_buffer_mode() {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(16, 1024).unwrap();
            let (mut tx, rx) = UnixStream::pair().unwrap();
            tx.set_nonblocking(true).unwrap();
            // Fill the socket so the kernel is busy posting CQEs when the stream goes away.
            let data = pattern(256 * 1024);
            let mut written = 0;
            while written < data.len() {
                match tx.write(&data[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let first = ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                let first = stream.next().await.unwrap().unwrap();
                assert!(pool.in_use() >= 1);
                first
                // The stream is dropped here, its recv still armed.
            });
            assert_eq!(&*first, &data[..first.len()]);
            settle(&ring);
            drop(first);
            assert_eq!(ring.in_flight(), 0, "the cancelled recv is still in flight");
            assert_eq!(pool.in_use(), 0);
            assert_eq!(pool.available(), pool.capacity());
        });
    }
}

/// Polls every future until all are done (a minimal join for `block_on`).
async fn join_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[test]
fn two_hundred_idle_connections_hold_no_buffer_then_all_get_their_data() {
    for mode in each_buffer_mode() {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(32, 512).unwrap();
            let pairs: Vec<(UnixStream, UnixStream)> =
                (0..200).map(|_| UnixStream::pair().unwrap()).collect();
            let mut streams: Vec<RecvMultiStream> = pairs
                .iter()
                .map(|(_, rx)| RecvMultiStream::new(rx.as_raw_fd(), &pool))
                .collect();
            ring.block_on(async {
                // Arm every recv.
                std::future::poll_fn(|cx| {
                    for stream in &mut streams {
                        assert!(stream.poll_next(cx).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                Nop::new().await.unwrap();
            });
            assert!(ring.in_flight() >= 200, "recvs armed: {}", ring.in_flight());
            assert_eq!(pool.capacity(), 32);
            assert_eq!(pool.available(), 32, "idle connections hold buffers");

            for (i, (tx, _)) in pairs.iter().enumerate() {
                (&*tx).write_all(format!("conn {i}").as_bytes()).unwrap();
            }
            let got = ring.block_on(join_all(
                streams
                    .iter_mut()
                    .enumerate()
                    .map(|(i, stream)| {
                        // An incremental buffer can end inside a message: read it whole.
                        let len = format!("conn {i}").len();
                        Box::pin(async move {
                            let mut bytes = Vec::new();
                            while bytes.len() < len {
                                bytes.extend_from_slice(&stream.next().await.unwrap().unwrap());
                            }
                            bytes
                        }) as Pin<Box<dyn Future<Output = Vec<u8>>>>
                    })
                    .collect(),
            ));
            for (i, bytes) in got.iter().enumerate() {
                assert_eq!(bytes, format!("conn {i}").as_bytes());
            }
            assert_eq!(pool.available(), 32);
        });
    }
}

#[test]
fn eof_ends_the_stream() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let pool = BufPool::new(4, 64).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        tx.write_all(b"last words").unwrap();
        drop(tx);
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            assert_eq!(&*stream.next().await.unwrap().unwrap(), b"last words");
            assert!(stream.next().await.is_none());
            assert!(
                stream.next().await.is_none(),
                "the stream restarted after EOF"
            );
        });
        assert_eq!(pool.available(), 4);
    });
}

/// A connected loopback TCP pair: (client, server).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn peer_reset_gives_an_error_item() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let pool = BufPool::new(4, 64).unwrap();
        let (client, server) = tcp_pair();
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
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(server.as_raw_fd(), &pool);
            // Closing with a zero linger sends RST instead of FIN.
            drop(client);
            let err = stream.next().await.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ConnectionReset);
            assert!(stream.next().await.is_none());
        });
    });
}

#[test]
fn received_bytes_outlive_the_ring() {
    with_deadline(|| {
        let pool = BufPool::new(4, 64).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        tx.write_all(b"still here").unwrap();
        let buf = {
            let ring = Ring::new().unwrap();
            ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                stream.next().await.unwrap().unwrap()
            })
        };
        // The ring and its buffer ring are gone; the bytes are not.
        assert_eq!(&*buf, b"still here");
        assert_eq!(pool.capacity(), 0, "a dropped ring still counts");
        drop(buf);
    });
}

#[test]
fn single_shot_mode_streams_the_same_bytes() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let pool = BufPool::new(4, 4096).unwrap();
        pool.use_single_shot();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let sent = pattern(64 * 1024);
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || tx.write_all(&sent).unwrap())
        };
        let received = ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            let mut received = Vec::new();
            while let Some(buf) = stream.next().await {
                let buf = buf.unwrap();
                assert_eq!(buf.buf_id(), None);
                received.extend_from_slice(&buf);
            }
            received
        });
        writer.join().unwrap();
        assert!(received == sent);
        assert!(pool.is_fallback());
        assert_eq!(
            pool.capacity(),
            0,
            "single-shot mode registered a buffer ring"
        );
    });
}

#[test]
fn bad_pool_shapes_are_refused_with_a_clear_error() {
    for (count, size) in [(0, 64), (3, 64), (65536, 64), (4, 0)] {
        let err = BufPool::new(count, size).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{count} x {size}");
    }
    assert!(BufPool::new(32768, 1).is_ok());
}

#[test]
fn pools_and_buffers_cross_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    fn sendable<T: Send>() {}
    shareable::<BufPool>();
    sendable::<PooledBuf>();
    sendable::<RecvMultiStream>();
}

/// Pausing mid-flow, again and again, in both modes: every chunk received before a pause
/// still comes out, the stream then reports itself stopped with no buffer held by the
/// kernel, and after `resume` the bytes go on in order.
#[test]
fn pausing_and_resuming_mid_flow_loses_and_reorders_nothing() {
    let plain = each_buffer_mode()[0];
    let modes = each_buffer_mode().into_iter().map(|mode| (mode, false));
    for (mode, single_shot) in modes.chain([(plain, true)]) {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(8, 1024).unwrap();
            if single_shot {
                pool.use_single_shot();
            }
            let (mut tx, rx) = UnixStream::pair().unwrap();
            let sent = pattern(1 << 20);
            let writer = {
                let sent = sent.clone();
                std::thread::spawn(move || tx.write_all(&sent).unwrap())
            };
            let (received, pauses) = ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                let mut received = Vec::with_capacity(1 << 20);
                let mut pauses = 0;
                loop {
                    let item = std::future::poll_fn(|cx| match stream.poll_next(cx) {
                        Poll::Pending if stream.is_stopped() => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(item) => Poll::Ready(Some(item)),
                    })
                    .await;
                    match item {
                        // Stopped: nothing more comes until `resume`.
                        None => {
                            assert!(stream.is_paused());
                            stream.resume();
                        }
                        Some(None) => return (received, pauses),
                        Some(Some(buf)) => {
                            received.extend_from_slice(&buf.unwrap());
                            if received.len() % 7 == 0 || pauses % 3 == 0 {
                                stream.pause();
                                pauses += 1;
                            }
                        }
                    }
                }
            });
            writer.join().unwrap();
            assert!(pauses > 10, "the stream was paused {pauses} times");
            assert!(received == sent, "bytes arrive whole and in order");
            settle(&ring);
            if !single_shot {
                assert_eq!(pool.in_use(), 0);
            }
        });
    }
}

/// Incremental buffers (`IOU_PBUF_RING_INC`): small chunks share one buffer, each chunk
/// keeps its bytes while later ones land behind it, and the buffer goes back to the ring
/// only once the kernel has finished it and every chunk of it has dropped, on whatever
/// thread.
#[test]
fn incremental_chunks_share_a_buffer_that_returns_after_its_last_chunk() {
    for mode in each_buffer_mode().into_iter().filter(|m| m.incremental) {
        incremental_chunks_share_a_buffer(mode);
    }
}

fn incremental_chunks_share_a_buffer(mode: Mode) {
    with_deadline(move || {
        let ring = ring_in_mode(mode);
        let pool = BufPool::new(2, 1000).unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
            let mut chunks = Vec::new();
            for i in 0..4u8 {
                tx.write_all(&[i; 300]).unwrap();
                chunks.push(stream.next().await.unwrap().unwrap());
            }
            // Four 300-byte messages into 1000-byte buffers: the fourth one finishes the
            // first buffer with 100 bytes and goes on with 200 in the second.
            chunks.push(stream.next().await.unwrap().unwrap());
            let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert_eq!(lens, [300, 300, 300, 100, 200]);
            let ids: Vec<Option<u16>> = chunks.iter().map(|c| c.buf_id()).collect();
            assert!(ids[..4].iter().all(|id| *id == ids[0]) && ids[4] != ids[0]);
            assert_eq!(pool.in_use(), 1, "the kernel finished one buffer");

            let mut chunks = chunks.into_iter();
            let first_three: Vec<PooledBuf> = chunks.by_ref().take(3).collect();
            for (i, chunk) in first_three.iter().enumerate() {
                assert!(
                    chunk.iter().all(|b| *b == i as u8),
                    "a chunk was overwritten"
                );
            }
            std::thread::spawn(move || drop(first_three))
                .join()
                .unwrap();
            assert_eq!(pool.in_use(), 1, "the buffer's last chunk still holds it");
            let (last_of_first, in_second) = (chunks.next().unwrap(), chunks.next().unwrap());
            assert!(last_of_first.iter().all(|b| *b == 3));
            drop(last_of_first);
            assert_eq!(pool.in_use(), 0, "the buffer went back with its last chunk");

            // 900 more bytes: 800 finish the second buffer behind the 200 still held,
            // 100 go into the first one, given back and filled from its start again.
            tx.write_all(&[9; 900]).unwrap();
            let mut more = 0;
            while more < 900 {
                let chunk = stream.next().await.unwrap().unwrap();
                assert!(chunk.iter().all(|b| *b == 9));
                more += chunk.len();
            }
            assert!(
                in_second.iter().all(|b| *b == 3),
                "a held chunk was overwritten"
            );
        });
        settle(&ring);
        assert_eq!(pool.available(), 2);
    });
}

/// Recv bundles: bytes already waiting in a TCP socket come out of one receive spread over
/// several buffers, yielded one after another, whole and in order, and every buffer goes
/// back. Without bundles (the feature forced off) no receive carries more than one.
#[test]
fn waiting_bytes_arrive_in_bundles_of_buffers_where_the_kernel_takes_them() {
    for mode in each_buffer_mode() {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(64, 4096).unwrap();
            let (mut tx, rx) = tcp_pair();
            let sent = pattern(192 * 1024);
            let writer = {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    // In three bursts, each waiting in the socket before the recv sees it.
                    for part in sent.chunks(64 * 1024) {
                        tx.write_all(part).unwrap();
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            };
            let received = ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                let mut received = Vec::with_capacity(sent.len());
                while received.len() < sent.len() {
                    let buf = stream.next().await.unwrap().unwrap();
                    assert!(!buf.is_empty() && buf.len() <= 4096);
                    received.extend_from_slice(&buf);
                }
                received
            });
            writer.join().unwrap();
            assert!(
                received == sent,
                "bytes differ or arrived out of order ({mode:?})"
            );
            if mode.bundles {
                assert!(pool.bundles() > 0, "no receive took a bundle ({mode:?})");
            } else {
                assert_eq!(pool.bundles(), 0, "a bundle with bundles off ({mode:?})");
            }
            settle(&ring);
            assert_eq!(pool.available(), pool.capacity(), "{mode:?}");
        });
    }
}

/// A bundle's buffers are whatever the ring entries after its first one hold, not the
/// next buffer ids: with buffers given back in reverse, a bundle spans ids 7, 6, 5, ...
/// and its bytes still come out whole and in order.
#[test]
fn a_bundle_over_buffers_given_back_out_of_order_keeps_its_bytes_in_order() {
    for mode in each_buffer_mode() {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(8, 1024).unwrap();
            let (mut tx, rx) = tcp_pair();
            let sent = pattern(24 * 1024);
            ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                // Eight messages of one buffer each, every buffer then held.
                let mut held = Vec::new();
                for part in sent[..8 * 1024].chunks(1024) {
                    tx.write_all(part).unwrap();
                    let mut got = 0;
                    while got < part.len() {
                        let buf = stream.next().await.unwrap().unwrap();
                        assert_eq!(&*buf, &part[got..got + buf.len()]);
                        got += buf.len();
                        held.push(buf);
                    }
                }
                // Back in reverse: the ring's next entries hold the ids high to low.
                while let Some(buf) = held.pop() {
                    drop(buf);
                }
                let writer = {
                    let rest = sent[8 * 1024..].to_vec();
                    std::thread::spawn(move || tx.write_all(&rest).unwrap())
                };
                let mut received = sent[..8 * 1024].to_vec();
                while received.len() < sent.len() {
                    received.extend_from_slice(&stream.next().await.unwrap().unwrap());
                }
                writer.join().unwrap();
                assert!(
                    received == sent,
                    "bytes differ or arrived out of order ({mode:?})"
                );
            });
            if mode.bundles {
                assert!(pool.bundles() > 0, "no receive took a bundle ({mode:?})");
            }
            settle(&ring);
            assert_eq!(pool.available(), pool.capacity(), "{mode:?}");
        });
    }
}

/// A CQE the kernel drops (EBADR) takes its chunk's bytes with it, and its op ends
/// cancelled. An incremental buffer that chunk was part of must not go out of step: the
/// next stream's bytes are read from where the kernel put them, not from where the lost
/// chunk began.
#[test]
fn after_a_dropped_cqe_an_incremental_buffer_is_read_where_the_kernel_filled_it() {
    for mode in each_buffer_mode().into_iter().filter(|m| m.incremental) {
        with_deadline(move || {
            let ring = ring_in_mode(mode);
            let pool = BufPool::new(2, 1000).unwrap();
            let (mut tx, rx) = UnixStream::pair().unwrap();
            ring.block_on(async {
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                tx.write_all(&[1; 100]).unwrap();
                let first = stream.next().await.unwrap().unwrap();
                assert_eq!(&*first, &[1; 100]);
                ring.inject(uringo_uring::Fault::DropCqe);
                tx.write_all(&[2; 100]).unwrap();
                // The CQE of those bytes is lost: the ring finds out, cancels the recv,
                // and the stream ends with the error.
                let end = stream.next().await;
                assert!(matches!(end, Some(Err(_))), "{mode:?}: {end:?}");
                drop(stream);
                let mut stream = RecvMultiStream::new(rx.as_raw_fd(), &pool);
                tx.write_all(&[3; 100]).unwrap();
                let next = stream.next().await.unwrap().unwrap();
                assert!(
                    next.iter().all(|b| *b == 3),
                    "{mode:?}: read bytes the kernel did not put there: {:?}",
                    &next[..8.min(next.len())]
                );
                drop(first);
            });
            settle(&ring);
        });
    }
}
