//! `uringo::net::lookup_host` and `TcpStream::connect` with names: a name is resolved on
//! the blocking pool, a literal in place, a name that does not resolve is an error.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::with_watchdog;
use uringo::net::{lookup_host, TcpListener, TcpStream};

/// One worker, and blocking threads that outlive any test: the count of pool threads
/// then says whether the pool was used.
fn runtime() -> uringo::Runtime {
    uringo::Builder::new()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .unwrap()
}

#[test]
fn a_literal_resolves_in_place_without_the_blocking_pool() {
    // Outside any runtime, a literal is ready at the first poll: nothing is spawned.
    let mut cx = Context::from_waker(Waker::noop());
    let lookup = pin!(lookup_host("127.0.0.1:8080")).poll(&mut cx);
    let Poll::Ready(Ok(addrs)) = lookup else {
        panic!("a literal was not resolved at once");
    };
    assert_eq!(
        addrs.collect::<Vec<_>>(),
        ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
    );

    with_watchdog("literal", || {
        let rt = runtime();
        rt.block_on(async {
            let v6: Vec<_> = lookup_host(("::1", 443)).await.unwrap().collect();
            assert_eq!(v6, ["[::1]:443".parse::<SocketAddr>().unwrap()]);
            let addr: SocketAddr = "10.1.2.3:9".parse().unwrap();
            assert_eq!(lookup_host(addr).await.unwrap().collect::<Vec<_>>(), [addr]);
        });
        assert_eq!(rt.metrics().num_blocking_threads(), 0);
    });
}

#[test]
fn localhost_resolves_on_the_blocking_pool_and_connect_takes_the_name() {
    with_watchdog("localhost", || {
        let rt = runtime();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let addrs: Vec<_> = lookup_host(format!("localhost:{port}"))
                .await
                .unwrap()
                .collect();
            assert!(
                addrs.contains(&SocketAddr::from(([127, 0, 0, 1], port))),
                "{addrs:?}"
            );

            let client = TcpStream::connect(("localhost", port)).await.unwrap();
            let (_server, peer) = listener.accept().await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        });
        assert!(
            rt.metrics().num_blocking_threads() >= 1,
            "the name was not resolved on the blocking pool"
        );
    });
}

#[test]
fn a_name_that_cannot_resolve_is_an_error() {
    with_watchdog("unresolvable", || {
        let rt = runtime();
        rt.block_on(async {
            // `.invalid` never resolves (RFC 6761).
            assert!(lookup_host("no-such-host.invalid:80").await.is_err());
            assert!(TcpStream::connect(("no-such-host.invalid", 80))
                .await
                .is_err());
            // No port: no address at all.
            assert!(lookup_host("localhost").await.is_err());
        });
    });
}
