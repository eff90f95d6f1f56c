//! `uringo::compat` end to end: hyper serving and calling over one keep-alive
//! connection, tokio and futures I/O traits moving real bytes, and the write semantics
//! the adapter documents (flush, errors, shutdown, dropping mid-read).
#![cfg(all(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]

mod common;

use std::future::poll_fn;
use std::io::{ErrorKind, Read};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{read_to_eof, tcp_pair as pair, with_watchdog};
use uringo::compat::{Compat, HyperExecutor, HyperTimer};
use uringo::net::{TcpListener, TcpStream};
use uringo::Builder;

fn rt() -> uringo::Runtime {
    common::watch(Builder::new().worker_threads(2).build().unwrap())
}

/// xorshift, so the tests need no rand crate.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// `len` bytes that differ from any shifted copy of themselves, so a lost, duplicated
/// or reordered chunk shows up as a mismatch.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len).map(|_| rng(&mut s) as u8).collect()
}

/// Reads with uringo's own API until exactly `len` bytes arrived.
async fn read_exactly(stream: &TcpStream, len: usize) -> Vec<u8> {
    let mut all = Vec::new();
    while all.len() < len {
        let (n, buf) = stream.read(Vec::with_capacity(len - all.len())).await;
        assert_ne!(n.unwrap(), 0, "EOF after {} of {len} bytes", all.len());
        all.extend_from_slice(&buf);
    }
    all
}

mod hyper_on_uringo {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    /// Echoes the body back, with the request path in a header.
    async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await?.to_bytes();
        let mut response = Response::new(Full::new(body));
        response
            .headers_mut()
            .insert("x-path", path.parse().unwrap());
        Ok(response)
    }

    #[test]
    fn server_and_keep_alive_client_exchange_1000_requests_on_one_connection() {
        with_watchdog("hyper keep-alive", || {
            rt().block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let connections = Arc::new(AtomicUsize::new(0));
                let accepted = connections.clone();
                uringo::spawn(async move {
                    loop {
                        let (stream, _) = listener.accept().await.unwrap();
                        accepted.fetch_add(1, Ordering::SeqCst);
                        uringo::spawn(async move {
                            // The server goes through tokio's traits and hyper-util's
                            // TokioIo; the client below uses hyper's traits directly.
                            let io = TokioIo::new(Compat::new(stream));
                            hyper::server::conn::http1::Builder::new()
                                .timer(HyperTimer)
                                .serve_connection(io, hyper::service::service_fn(echo))
                                .await
                                .unwrap();
                        });
                    }
                });

                let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
                let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                    .handshake(stream)
                    .await
                    .unwrap();
                hyper::rt::Executor::execute(&HyperExecutor::new(), async move {
                    let _ = conn.await;
                });

                for i in 0..1000u64 {
                    // Mostly small requests, as a keep-alive connection carries; every
                    // tenth from empty to well past both adapter buffers.
                    let len = if i % 10 == 0 {
                        (i as usize * 1237) % 150_000
                    } else {
                        (i as usize * 37) % 2048
                    };
                    let body = pattern(len, i + 1);
                    let request = Request::post(format!("/req/{i}"))
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    sender.ready().await.unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.headers()["x-path"], format!("/req/{i}").as_str());
                    let got = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(got.len(), body.len(), "request {i}");
                    assert!(got == body, "request {i}: body corrupted");
                }
                assert_eq!(
                    connections.load(Ordering::SeqCst),
                    1,
                    "keep-alive: every request went over the first connection"
                );
            })
        });
    }

    #[test]
    fn timer_sleep_fires_no_earlier_than_asked_and_reset_moves_it() {
        use hyper::rt::Timer;
        with_watchdog("hyper timer", || {
            rt().block_on(async {
                for ms in [1u64, 7, 30] {
                    let asked = Duration::from_millis(ms);
                    let start = Instant::now();
                    HyperTimer.sleep(asked).await;
                    assert!(start.elapsed() >= asked, "{ms} ms sleep fired early");
                }
                // An hour-long sleep reset to 20 ms completes (the watchdog catches a
                // reset that did not move it), and not before the new deadline.
                let mut sleep = HyperTimer.sleep(Duration::from_secs(3600));
                let deadline = Instant::now() + Duration::from_millis(20);
                HyperTimer.reset(&mut sleep, deadline);
                sleep.await;
                assert!(Instant::now() >= deadline);
            })
        });
    }
}

mod tokio_traits {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn unix_streams_adapt_too() {
        with_watchdog("unix compat", || {
            rt().block_on(async {
                let (a, b) = uringo::net::UnixStream::pair().unwrap();
                let (mut a, mut b) = (Compat::new(a), Compat::new(b));
                let data = pattern(200_000, 5);
                let writer = {
                    let data = data.clone();
                    uringo::spawn(async move {
                        a.write_all(&data).await.unwrap();
                        a.shutdown().await.unwrap();
                    })
                };
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                assert_eq!(got, data);
            });
        });
    }

    /// Writes `data` with `write_all` in random chunk sizes up to `max_chunk`.
    async fn write_in_chunks(
        io: &mut Compat<TcpStream>,
        data: &[u8],
        seed: &mut u64,
        max_chunk: u64,
    ) {
        let mut at = 0;
        while at < data.len() {
            let n = (1 + rng(seed) % max_chunk) as usize;
            let end = (at + n).min(data.len());
            io.write_all(&data[at..end]).await.unwrap();
            at = end;
        }
    }

    #[test]
    fn one_mib_round_trip_in_random_chunks_arrives_intact() {
        with_watchdog("tokio round trip", || {
            rt().block_on(async {
                let data = pattern(1 << 20, 42);
                let (client, server) = pair().await;
                let echo = uringo::spawn(async move {
                    // Small, odd buffer sizes so chunks straddle buffer boundaries.
                    let mut io = Compat::with_capacity(server, 1000, 3001);
                    let mut seed = 7;
                    let mut received = Vec::new();
                    loop {
                        let mut chunk = vec![0; (1 + rng(&mut seed) % 5000) as usize];
                        let n = io.read(&mut chunk).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        received.extend_from_slice(&chunk[..n]);
                    }
                    write_in_chunks(&mut io, &received, &mut seed, 40_000).await;
                    io.shutdown().await.unwrap();
                    received.len()
                });
                let mut io = Compat::new(client);
                let mut seed = 99;
                write_in_chunks(&mut io, &data, &mut seed, 70_000).await;
                io.shutdown().await.unwrap();
                let mut back = Vec::new();
                io.read_to_end(&mut back).await.unwrap();
                assert_eq!(echo.await.unwrap(), data.len());
                assert_eq!(back.len(), data.len());
                assert!(back == data, "bytes corrupted on the way");
            })
        });
    }

    #[test]
    fn vectored_writes_are_sent_in_order() {
        with_watchdog("vectored", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let mut io = Compat::with_capacity(client, 1024, 100);
                let parts = [
                    pattern(70, 1),
                    pattern(0, 2),
                    pattern(250, 3),
                    pattern(9, 4),
                ];
                let expected: Vec<u8> = parts.concat();
                let mut slices: Vec<std::io::IoSlice<'_>> =
                    parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
                let mut slices = &mut slices[..];
                while !slices.is_empty() {
                    let n = io.write_vectored(slices).await.unwrap();
                    assert!(n > 0 && n <= 100, "one batch at most the write capacity");
                    std::io::IoSlice::advance_slices(&mut slices, n);
                }
                io.shutdown().await.unwrap();
                assert_eq!(read_to_eof(&server).await, expected);
            })
        });
    }

    #[test]
    fn a_peer_that_reads_late_gets_every_byte_of_a_large_write() {
        with_watchdog("backpressure", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let data = pattern(8 << 20, 8);
                let reader = uringo::spawn(async move {
                    // Let the socket buffers fill, so the writer waits on the peer.
                    uringo::time::sleep(Duration::from_millis(50)).await;
                    read_to_eof(&server).await
                });
                let mut io = Compat::new(client);
                io.write_all(&data).await.unwrap();
                io.shutdown().await.unwrap();
                let got = reader.await.unwrap();
                assert_eq!(got.len(), data.len());
                assert!(got == data, "bytes corrupted under backpressure");
            })
        });
    }

    #[test]
    fn after_flush_the_peer_can_read_every_byte_written() {
        with_watchdog("flush", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                let data = pattern(300_000, 5);
                io.write_all(&data).await.unwrap();
                io.flush().await.unwrap();
                // No shutdown, no close: the bytes must already be on their way.
                assert!(read_exactly(&server, data.len()).await == data);
            })
        });
    }

    #[test]
    fn a_write_left_pending_is_flushed_and_its_retry_sends_nothing_twice() {
        with_watchdog("pending write", || {
            // On a worker, so the send's SQE waits in the local SQ until the tick ends and
            // the first poll cannot find its CQE. From `block_on` the send goes through a
            // worker's mailbox and completed before the poll returned in 16 runs of 300.
            let rt = rt();
            rt.block_on(rt.spawn(async move {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                let data = pattern(10_000, 6);
                // Poll the write once and abandon it.
                let first = poll_fn(|cx| {
                    Poll::Ready(tokio::io::AsyncWrite::poll_write(
                        Pin::new(&mut io),
                        cx,
                        &data,
                    ))
                })
                .await;
                assert!(
                    first.is_pending(),
                    "a send's CQE cannot be in before submission"
                );
                io.flush().await.unwrap();
                assert!(read_exactly(&server, data.len()).await == data);
                // The caller, told nothing was written, retries: no second copy.
                io.write_all(&data).await.unwrap();
                io.write_all(b"END").await.unwrap();
                io.shutdown().await.unwrap();
                assert_eq!(read_to_eof(&server).await, b"END");
            }))
            .unwrap();
        });
    }

    /// Counts wake-ups, so a test can see which poll was followed by one.
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// hyper's HTTP/1 client retries a `Pending` write from inside its flush and, when
    /// that succeeds, returns without looking for its next request: it relies on being
    /// polled again. Before the adapter woke the task on such a retry, a keep-alive
    /// client hung about once in 20 000 requests.
    #[test]
    fn a_retried_write_that_completes_wakes_its_task_again() {
        with_watchdog("retry wake", || {
            // On a worker, so the send's SQE waits in the local SQ until the tick ends:
            // the first poll cannot find it complete (from `block_on` the send goes
            // through a worker's mailbox and may complete before that poll returns).
            let rt = rt();
            rt.block_on(rt.spawn(async {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                let data = pattern(100, 9);
                let mut polls = 0;
                let woken_after_ready = loop {
                    polls += 1;
                    // A fresh waker per poll: only a wake-up caused by *this* poll
                    // counts, not the CQE's wake-up of the poll before.
                    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
                    let polled = {
                        let waker = std::task::Waker::from(counter.clone());
                        let mut cx = std::task::Context::from_waker(&waker);
                        tokio::io::AsyncWrite::poll_write(Pin::new(&mut io), &mut cx, &data)
                    };
                    match polled {
                        Poll::Ready(written) => {
                            assert_eq!(written.unwrap(), data.len());
                            break counter.0.load(Ordering::SeqCst);
                        }
                        // Let the worker reap the send's CQE.
                        Poll::Pending => uringo::task::yield_now().await,
                    }
                };
                assert!(polls > 1, "the first poll submits and cannot be done");
                // At least once: a late CQE wake-up of an earlier poll may add one.
                assert!(
                    woken_after_ready >= 1,
                    "the completing retry did not re-wake the task"
                );
                assert!(read_exactly(&server, data.len()).await == data);
            }))
            .unwrap();
        });
    }

    #[test]
    fn writing_to_a_reset_peer_fails_instead_of_hanging() {
        with_watchdog("reset peer", || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                let (mut peer, _) = listener.accept().unwrap();
                let mut byte = [0];
                peer.read_exact(&mut byte).unwrap();
                // Closing with unread bytes makes the kernel send RST, not FIN.
                let _ = peer.peek(&mut byte);
            });
            rt().block_on(async {
                let mut io = Compat::new(TcpStream::connect(addr).await.unwrap());
                io.write_all(b"ab").await.unwrap();
                io.flush().await.unwrap();
                peer.join().unwrap();
                let chunk = vec![0u8; 64 * 1024];
                let mut failure = None;
                for _ in 0..1000 {
                    let result = match io.write_all(&chunk).await {
                        Ok(()) => io.flush().await,
                        Err(err) => Err(err),
                    };
                    if let Err(err) = result {
                        failure = Some(err);
                        break;
                    }
                }
                let err = failure.expect("64 MiB written to a reset peer without an error");
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                    ),
                    "unexpected error {err:?}"
                );
            })
        });
    }

    #[test]
    fn shutdown_makes_the_peer_read_eof_and_leaves_reading_open() {
        with_watchdog("shutdown", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                io.write_all(b"bye").await.unwrap();
                io.shutdown().await.unwrap();
                io.shutdown().await.unwrap();
                assert_eq!(read_to_eof(&server).await, b"bye");
                let (res, _) = server.write_all(b"still here".to_vec()).await;
                res.unwrap();
                let mut reply = [0; 10];
                io.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"still here");
            })
        });
    }

    #[test]
    fn dropping_the_adapter_mid_read_cancels_the_receive_and_closes_the_socket() {
        with_watchdog("drop mid-read", || {
            let runtime = rt();
            runtime.block_on(async {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                let mut buf = [0u8; 16];
                let polled = poll_fn(|cx| {
                    let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
                    Poll::Ready(tokio::io::AsyncRead::poll_read(
                        Pin::new(&mut io),
                        cx,
                        &mut read_buf,
                    ))
                })
                .await;
                assert!(polled.is_pending(), "nothing was sent, the receive waits");
                drop(io);
                // An in-flight receive holds a reference to the socket: the peer sees
                // EOF only once the receive was cancelled and the fd really closed.
                assert_eq!(read_to_eof(&server).await, b"");
            });
            // Shutting the runtime down waits for every op's CQE; it must not hang.
            drop(runtime);
        });
    }

    #[test]
    fn a_read_abandoned_while_pending_loses_no_bytes() {
        with_watchdog("abandoned read", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let mut io = Compat::new(client);
                let mut buf = [0u8; 4];
                let polled = poll_fn(|cx| {
                    let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
                    Poll::Ready(tokio::io::AsyncRead::poll_read(
                        Pin::new(&mut io),
                        cx,
                        &mut read_buf,
                    ))
                })
                .await;
                assert!(polled.is_pending());
                let (res, _) = server.write_all(b"hello".to_vec()).await;
                res.unwrap();
                drop(server);
                let mut all = Vec::new();
                io.read_to_end(&mut all).await.unwrap();
                assert_eq!(all, b"hello");
            })
        });
    }
}

mod futures_traits {
    use super::*;
    use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    #[test]
    fn futures_io_copy_moves_every_byte_and_close_ends_the_stream() {
        with_watchdog("futures copy", || {
            rt().block_on(async {
                let data = pattern(200_000, 11);
                let (client, server) = pair().await;
                let sender = {
                    let data = data.clone();
                    uringo::spawn(async move {
                        let mut io = Compat::with_capacity(client, 4096, 5000);
                        let copied = futures_util::io::copy(&mut &data[..], &mut io)
                            .await
                            .unwrap();
                        io.close().await.unwrap();
                        copied
                    })
                };
                let mut io = Compat::with_capacity(server, 777, 4096);
                // Buffered reading: up to the first newline byte, then the rest.
                let mut got = Vec::new();
                io.read_until(b'\n', &mut got).await.unwrap();
                assert_eq!(got.last(), Some(&b'\n'));
                let mut rest = Vec::new();
                io.read_to_end(&mut rest).await.unwrap();
                assert_eq!(sender.await.unwrap(), data.len() as u64);
                got.extend_from_slice(&rest);
                assert!(got == data, "bytes corrupted by futures-io copy");
            })
        });
    }

    #[test]
    fn futures_io_write_then_read_back() {
        with_watchdog("futures echo", || {
            rt().block_on(async {
                let (client, server) = pair().await;
                let echo = uringo::spawn(async move {
                    let mut io = Compat::new(server);
                    let mut buf = [0u8; 5];
                    io.read_exact(&mut buf).await.unwrap();
                    io.write_all(&buf).await.unwrap();
                    io.flush().await.unwrap();
                });
                let mut io = Compat::new(client);
                io.write_all(b"howdy").await.unwrap();
                let mut back = [0u8; 5];
                io.read_exact(&mut back).await.unwrap();
                assert_eq!(&back, b"howdy");
                echo.await.unwrap();
            })
        });
    }
}

/// The adapter can move into spawned tasks and be shared by reference across threads.
#[test]
fn compat_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Compat<TcpStream>>();
}
