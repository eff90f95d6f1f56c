//! `tokio::select!` on uringo, with no tokio runtime: uringo I/O, timers and join
//! handles as branches, and the losing branch's op cancelled without losing anything.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{runtime, wait_for, with_watchdog, HANG};
use uringo::net::{TcpListener, TcpStream};

/// Ops in flight on the single worker's ring.
fn in_flight(rt: &uringo::Runtime) -> u64 {
    rt.metrics().worker_ring_metrics(0).unwrap().in_flight
}

async fn pair() -> (TcpListener, TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (listener, client, server)
}

#[test]
fn a_sleep_beats_a_read_and_the_read_is_cancelled_cleanly() {
    with_watchdog("sleep beats read", || {
        let rt = runtime(1);
        let (_listener, client, server) = rt.block_on(rt.spawn(pair())).unwrap();
        let before = in_flight(&rt);
        let cancels = rt.metrics().worker_ring_metrics(0).unwrap().cancels;
        let server = rt
            .block_on(rt.spawn(async move {
                tokio::select! {
                    (res, _) = server.read(Vec::with_capacity(16)) => {
                        panic!("a read completed with nothing sent: {res:?}")
                    }
                    () = uringo::time::sleep(Duration::from_millis(5)) => {}
                }
                server
            }))
            .unwrap();
        wait_for("the losing read to be cancelled", || {
            in_flight(&rt) == before
        });
        assert!(rt.metrics().worker_ring_metrics(0).unwrap().cancels > cancels);

        // The socket is intact: what is sent now is read whole.
        rt.block_on(rt.spawn(async move {
            client.write_all(b"after".to_vec()).await.0.unwrap();
            let (n, buf) = server.read(Vec::with_capacity(16)).await;
            assert_eq!(&buf[..n.unwrap()], b"after");
        }))
        .unwrap();
    });
}

#[test]
fn a_read_beats_a_sleep_and_the_timer_is_disarmed() {
    with_watchdog("read beats sleep", || {
        let rt = runtime(1);
        let (_listener, client, server) = rt.block_on(rt.spawn(pair())).unwrap();
        let got = rt
            .block_on(rt.spawn(async move {
                client.write_all(b"first".to_vec()).await.0.unwrap();
                tokio::select! {
                    (n, buf) = server.read(Vec::with_capacity(16)) => buf[..n.unwrap()].to_vec(),
                    () = uringo::time::sleep(HANG) => panic!("the read never completed"),
                }
            }))
            .unwrap();
        assert_eq!(got, b"first");
        wait_for("the losing timer to be removed", || {
            rt.metrics().worker_timer_count(0) == 0
        });
    });
}

#[test]
fn an_accept_loop_with_a_shutdown_branch_loses_no_connection() {
    with_watchdog("accept loop", || {
        let rt = runtime(1);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn({
            let (listener, accepted) = (listener.clone(), accepted.clone());
            async move {
                let mut conns = Vec::new();
                loop {
                    // Each round drops the losing branch: the accept, until shutdown.
                    tokio::select! {
                        conn = listener.accept() => {
                            conns.push(conn.unwrap());
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        _ = &mut stop_rx => break,
                        // A short timer, so most rounds end with the accept dropped.
                        () = uringo::time::sleep(Duration::from_micros(200)) => {}
                    }
                }
                conns.len()
            }
        });
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        wait_for("three connections accepted", || {
            accepted.load(Ordering::SeqCst) == 3
        });
        stop_tx.send(()).unwrap();
        assert_eq!(rt.block_on(server).unwrap(), 3);

        // The dropped accepts lost nothing: a later connection is still accepted.
        let late = std::net::TcpStream::connect(addr).unwrap();
        let (_, peer) = rt.block_on(listener.accept()).unwrap();
        assert_eq!(peer, late.local_addr().unwrap());
        drop(clients);
    });
}

#[test]
fn join_handles_race_in_select_and_the_loser_is_aborted_on_request() {
    with_watchdog("join handles", || {
        let rt = runtime(1);
        rt.block_on(async {
            let slow = uringo::spawn(async {
                uringo::time::sleep(HANG).await;
                "slow"
            });
            let fast = uringo::spawn(async { "fast" });
            let abort = slow.abort_handle();
            let winner = tokio::select! {
                out = slow => out.unwrap(),
                out = fast => out.unwrap(),
            };
            assert_eq!(winner, "fast");
            abort.abort();
        });
        wait_for("the aborted task to go", || {
            rt.metrics().num_alive_tasks() == 0
        });
    });
}
