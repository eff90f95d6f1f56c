//! The load generator drives an echo server, counts only checked echoes, and fails
//! loudly when the server sends back something else.

use std::time::{Duration, Instant};

use uringo::net::TcpListener;
use uringo_examples::loadgen::{Config, LoadGen};

/// Starts `serve` on a fresh listener in its own runtime; returns the address and the
/// runtime (dropping it stops the server).
fn server<F, Fut>(serve: F) -> (std::net::SocketAddr, uringo::Runtime)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(serve(listener));
    (addr, rt)
}

fn config(addr: std::net::SocketAddr) -> Config {
    Config {
        connections: 8,
        size: 1500,
        ..Config::new(addr)
    }
}

#[test]
fn pings_an_echo_server_and_counts_checked_echoes() {
    let (addr, _server) = server(|l| async move {
        let _ = uringo_examples::echo::serve(l).await;
    });
    let load = LoadGen::start(&config(addr)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.completed() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = load.stop().unwrap();
    assert!(done >= 100, "only {done} requests completed");
}

#[test]
fn a_server_that_garbles_the_echo_fails_the_load() {
    let (addr, _server) = server(|l| async move {
        while let Ok((stream, _)) = l.accept().await {
            uringo::spawn(async move {
                loop {
                    let (res, mut buf) = stream.read(Vec::with_capacity(4096)).await;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    buf[0] ^= 0xff;
                    let (res, _) = stream.write_all(buf).await;
                    if res.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let load = LoadGen::start(&config(addr)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(load.completed(), 0, "a garbled echo was counted");
    let err = load.stop().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn an_empty_config_is_an_error_not_a_hang() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let cfg = Config {
        connections: 0,
        ..Config::new(addr)
    };
    let err = LoadGen::start(&cfg).err().expect("0 connections must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
