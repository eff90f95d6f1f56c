//! Clients that stop reading: a download forwarded by `copy_bidirectional` to a client
//! that no longer reads must cost no kernel thread. io_uring runs some ops (splice among
//! them) on io-wq worker threads, named `iou-wrk-*`, where a write into a full socket
//! blocks until the peer drains; one such op per stalled connection would park a thread
//! per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use uringo::net::{TcpListener, TcpStream};

mod common;

const CONNECTIONS: usize = 100;
/// Far more than every socket buffer between the upstream and the client can hold.
const DOWNLOAD: u64 = 64 << 20;

/// An upstream that sends each connection `DOWNLOAD` bytes, a thread per connection,
/// counting what its sends have handed to the kernel.
fn upstream(sent: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().take(CONNECTIONS) {
            let (mut conn, sent, stop) = (conn.unwrap(), sent.clone(), stop.clone());
            conn.set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            thread::spawn(move || {
                let chunk = vec![7u8; 64 * 1024];
                let mut left = DOWNLOAD;
                while left > 0 && !stop.load(Ordering::Relaxed) {
                    match conn.write(&chunk[..chunk.len().min(left as usize)]) {
                        Ok(n) => {
                            left -= n as u64;
                            sent.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn stalled_downloads_park_no_kernel_thread() {
    common::with_watchdog("copy_stalled", || {
        let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
        let (sent, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let upstream_addr = upstream(sent.clone(), stop.clone());
        let proxy = rt
            .block_on(async { TcpListener::bind("127.0.0.1:0") })
            .unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        rt.spawn(async move {
            loop {
                let Ok((mut client, _)) = proxy.accept().await else {
                    return;
                };
                uringo::spawn(async move {
                    let mut server = TcpStream::connect(upstream_addr).await?;
                    uringo::io::copy_bidirectional(&mut client, &mut server).await
                });
            }
        });
        let before = common::io_wq_threads();

        // Every client reads the start of its download, then stops reading.
        let clients: Vec<StdStream> = (0..CONNECTIONS)
            .map(|_| {
                let mut client = StdStream::connect(proxy_addr).unwrap();
                let mut start = [0u8; 256 * 1024];
                client.read_exact(&mut start).unwrap();
                assert!(start.iter().all(|b| *b == 7), "the download arrives intact");
                client
            })
            .collect();

        // Wait until nothing moves any more: every path from upstream to client is full.
        let deadline = Instant::now() + common::HANG;
        let mut last = (sent.load(Ordering::Relaxed), 0);
        while last.1 < 10 {
            assert!(Instant::now() < deadline, "the downloads never stalled");
            thread::sleep(Duration::from_millis(30));
            let now = sent.load(Ordering::Relaxed);
            last = if now == last.0 {
                (now, last.1 + 1)
            } else {
                (now, 0)
            };
        }
        assert!(
            last.0 < DOWNLOAD * CONNECTIONS as u64,
            "the downloads stalled, they did not finish"
        );
        let stalled = common::io_wq_threads();
        assert_eq!(
            stalled, before,
            "{CONNECTIONS} stalled downloads left {stalled} io-wq threads (there were {before})"
        );

        // The client that reads again gets the rest of its bytes unchanged.
        let mut first = clients.into_iter().next().unwrap();
        let mut more = vec![0u8; 1 << 20];
        first.read_exact(&mut more).unwrap();
        assert!(more.iter().all(|b| *b == 7));
        first.write_all(b"bye").unwrap();
        stop.store(true, Ordering::Relaxed);
        drop(rt);
    });
}
