//! `futures` combinators on uringo: join_all, select, FuturesUnordered and StreamExt
//! drive uringo tasks, timers and I/O, and streams fed by uringo tasks.

mod common;

use std::time::Duration;

use common::{runtime, with_watchdog, HANG};
use futures_channel::{mpsc, oneshot};
use futures_util::future::{join_all, select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use uringo::net::{TcpListener, TcpStream};

/// An echo server for `n` connections; its address.
fn echo_server(n: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    uringo::spawn(async move {
        for _ in 0..n {
            let (stream, _) = listener.accept().await.unwrap();
            uringo::spawn(async move {
                let (n, buf) = stream.read(Vec::with_capacity(64)).await;
                let n = n.unwrap();
                stream.write_all(buf[..n].to_vec()).await.0.unwrap();
            });
        }
    });
    addr
}

async fn round_trip(addr: std::net::SocketAddr, msg: String) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(msg.into_bytes()).await.0.unwrap();
    let (n, buf) = stream.read(Vec::with_capacity(64)).await;
    String::from_utf8(buf[..n.unwrap()].to_vec()).unwrap()
}

#[test]
fn join_all_awaits_uringo_io_and_join_handles_in_order() {
    with_watchdog("join_all", || {
        let rt = runtime(2);
        rt.block_on(async {
            let addr = echo_server(8);
            let echoes = join_all((0..8).map(|i| round_trip(addr, format!("msg {i}")))).await;
            assert_eq!(
                echoes,
                (0..8).map(|i| format!("msg {i}")).collect::<Vec<_>>()
            );

            let handles = (0..16u64).map(|i| {
                uringo::spawn(async move {
                    uringo::time::sleep(Duration::from_micros(16 - i)).await;
                    i * i
                })
            });
            let squares: Vec<u64> = join_all(handles)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(squares, (0..16u64).map(|i| i * i).collect::<Vec<_>>());
        });
    });
}

#[test]
fn select_takes_the_first_and_hands_back_the_other_still_usable() {
    with_watchdog("select", || {
        let rt = runtime(2);
        rt.block_on(async {
            let (tx, rx) = oneshot::channel::<&str>();
            let sleep = std::pin::pin!(uringo::time::sleep(HANG));
            uringo::spawn(async move { tx.send("message").unwrap() });
            let sleep = match select(rx, sleep).await {
                Either::Left((msg, sleep)) => {
                    assert_eq!(msg.unwrap(), "message");
                    sleep
                }
                Either::Right(_) => panic!("an hour passed"),
            };
            // The loser comes back unfinished and can still be raced.
            let (tx, rx) = oneshot::channel::<()>();
            drop(tx);
            assert!(matches!(
                select(sleep, rx).await,
                Either::Right((Err(_), _))
            ));
        });
    });
}

#[test]
fn futures_unordered_yields_uringo_ops_as_they_complete() {
    with_watchdog("FuturesUnordered", || {
        let rt = runtime(2);
        rt.block_on(async {
            // Tasks that finish in the order their go-ahead comes, one at a time.
            let mut go = Vec::new();
            let mut tasks = FuturesUnordered::new();
            for i in 0..3 {
                let (tx, rx) = oneshot::channel::<()>();
                go.push(Some(tx));
                tasks.push(uringo::spawn(async move {
                    rx.await.unwrap();
                    uringo::time::sleep(Duration::from_micros(100)).await;
                    i
                }));
            }
            for i in [2, 0, 1] {
                go[i].take().unwrap().send(()).unwrap();
                assert_eq!(tasks.next().await.unwrap().unwrap(), i);
            }
            assert!(tasks.next().await.is_none());

            let addr = echo_server(5);
            let mut echoes: FuturesUnordered<_> =
                (0..5).map(|i| round_trip(addr, i.to_string())).collect();
            let mut got = Vec::new();
            while let Some(echo) = echoes.next().await {
                got.push(echo);
            }
            got.sort();
            assert_eq!(got, ["0", "1", "2", "3", "4"]);
        });
    });
}

#[test]
fn stream_ext_adapts_a_channel_fed_by_uringo_tasks() {
    with_watchdog("StreamExt", || {
        let rt = runtime(2);
        rt.block_on(async {
            let (tx, rx) = mpsc::unbounded::<u32>();
            for producer in 0..4u32 {
                let tx = tx.clone();
                uringo::spawn(async move {
                    for i in 0..10 {
                        tx.unbounded_send(producer * 10 + i).unwrap();
                        uringo::time::sleep(Duration::from_micros(50)).await;
                    }
                });
            }
            drop(tx);
            let mut evens: Vec<u32> = rx
                .filter(|v| std::future::ready(v % 2 == 0))
                .map(|v| v * 10)
                .collect()
                .await;
            evens.sort_unstable();
            assert_eq!(
                evens,
                (0..40)
                    .filter(|v| v % 2 == 0)
                    .map(|v| v * 10)
                    .collect::<Vec<_>>()
            );

            // buffer_unordered runs uringo I/O futures from a stream, a few at a time.
            let addr = echo_server(6);
            let mut echoes: Vec<String> = futures_util::stream::iter(0..6)
                .map(|i| round_trip(addr, format!("#{i}")))
                .buffer_unordered(3)
                .collect()
                .await;
            echoes.sort();
            assert_eq!(echoes, ["#0", "#1", "#2", "#3", "#4", "#5"]);
        });
    });
}
