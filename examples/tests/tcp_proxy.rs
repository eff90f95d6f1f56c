//! The `tcp-proxy` program, run as a user runs it: bytes arrive intact through it,
//! it spreads connections over upstreams and skips a dead one, it enforces its
//! connection limit and idle timeout, and SIGTERM drains it to a clean exit.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{closed_by_peer, refused_addr, Program, PATIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_tcp-proxy");

/// A thread-per-connection echo server; returns its address and a count of the
/// connections it accepted.
fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                // Echo the half-close back, as the proxy forwards it.
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, accepted)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    // A connection over the limit is reset as soon as it is accepted, and the reset can
    // surface here (a pending socket error); reads on it then fail at once, so it needs
    // no timeout.
    if let Err(err) = stream.set_read_timeout(Some(PATIENCE)) {
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
    stream
}

/// Sends `payload` in two writes, half-closes, and reads everything back to EOF.
fn round_trip_and_close(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    let (a, b) = payload.split_at(payload.len() / 2);
    stream.write_all(a).unwrap();
    stream.write_all(b).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    back
}

/// One exchange on an open connection: `payload` out, the same length back.
fn exchange(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(payload).unwrap();
    let mut back = vec![0; payload.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

fn payload(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|j| (seed.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(31)) as u8)
        .collect()
}

#[test]
fn thousand_connections_arrive_intact_then_sigterm_drains_and_exits_zero() {
    let (upstream, _) = echo_upstream();
    let mut proxy = Program::start(
        BIN,
        &["--upstream", &upstream.to_string(), "--workers", "2"],
    );
    let addr = proxy.addr;

    // 1 000 connections from 8 client threads, each with its own payload sent in two
    // writes and half-closed: everything must come back, byte for byte, then EOF.
    let clients: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..125u32 {
                    let id = t * 125 + i;
                    let sent = payload(id, 1024 + (id as usize % 7) * 1000);
                    let back = round_trip_and_close(addr, &sent);
                    assert!(back == sent, "connection {id}: bytes changed on the way");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }

    // A connection open across the signal must keep working until it closes.
    let mut open = connect(addr);
    assert_eq!(exchange(&mut open, b"before"), b"before");
    proxy.terminate();
    proxy.wait_for_log("stopped accepting");

    // New connections are no longer served: refused, or closed without an answer.
    if let Ok(mut late) = TcpStream::connect(addr) {
        late.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = late.write_all(b"late");
        assert!(
            closed_by_peer(&mut late),
            "a connection after SIGTERM was served"
        );
    }

    assert_eq!(exchange(&mut open, b"during drain"), b"during drain");
    open.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut open));
    drop(open);

    proxy.wait_clean_exit();
    assert!(
        proxy
            .log
            .iter()
            .any(|l| l.contains("all connections drained")),
        "log:\n{}",
        proxy.log.join("\n")
    );
}

#[test]
fn round_robin_spreads_connections_and_skips_a_dead_upstream() {
    let (first, first_count) = echo_upstream();
    let (second, second_count) = echo_upstream();
    let dead = refused_addr();
    let upstreams = format!("{first},{dead},{second}");
    let proxy = Program::start(BIN, &["--upstream", &upstreams]);
    for i in 0..30u32 {
        let sent = payload(i, 100);
        assert_eq!(
            round_trip_and_close(proxy.addr, &sent),
            sent,
            "connection {i}"
        );
    }
    let (a, b) = (
        first_count.load(Ordering::SeqCst),
        second_count.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 30, "every connection reached a live upstream");
    assert!(a > 0 && b > 0, "both live upstreams served: {a} and {b}");
}

#[test]
fn connections_over_the_limit_are_closed_and_served_again_once_below_it() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.to_string(),
            "--max-connections",
            "1",
        ],
    );
    let mut first = connect(proxy.addr);
    assert_eq!(exchange(&mut first, b"one"), b"one");

    let mut second = connect(proxy.addr);
    let _ = second.write_all(b"two");
    assert!(
        closed_by_peer(&mut second),
        "second connection was served over the limit"
    );

    first.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut first));
    drop(first);
    // The slot frees when the proxy's connection task ends; retry until it has.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut third = connect(proxy.addr);
        if third.write_all(b"three").is_ok() {
            let mut back = [0u8; 5];
            if third.read_exact(&mut back).is_ok() {
                assert_eq!(&back, b"three");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never served again after the first closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn payloads_larger_than_the_copy_buffer_arrive_intact_and_half_close() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(BIN, &["--upstream", &upstream.to_string()]);
    let clients: Vec<_> = (0..4u32)
        .map(|t| {
            let addr = proxy.addr;
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    let id = t * 50 + i;
                    // Up to ~300 KiB: several times the copy's largest (64 KiB) buffer.
                    let sent = payload(id, 1 + (id as usize * 1499) % 300_000);
                    let back = round_trip_and_close(addr, &sent);
                    assert!(back == sent, "connection {id}: bytes changed on the way");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.to_string(),
            "--idle-timeout",
            "300ms",
        ],
    );
    let mut stream = connect(proxy.addr);
    assert_eq!(exchange(&mut stream, b"hello"), b"hello");
    // Then silence: the proxy must end the connection (our own read timeout is far
    // longer, so a timeout here means the idle timeout never fired).
    assert!(
        closed_by_peer(&mut stream),
        "idle connection was never closed"
    );
}
