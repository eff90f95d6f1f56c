//! The echo example serves 1 000 concurrent loopback connections correctly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uringo::net::{TcpListener, TcpStream};

/// Raises the soft fd limit to the hard limit: 1 000 connections need 2 000 fds here
/// (both ends live in this process). Returns the new soft limit.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return 0;
        }
    }
    lim.rlim_cur
}

#[test]
fn echo_serves_1000_concurrent_connections() {
    let limit = raise_fd_limit();
    assert!(
        limit >= 2_200,
        "need 2 200 fds for this test, hard limit is {limit}"
    );
    let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let checked = Arc::new(AtomicUsize::new(0));
    let c2 = checked.clone();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        uringo::spawn(uringo_examples::echo::serve(listener));
        let clients: Vec<_> = (0..1000u32)
            .map(|i| {
                let checked = c2.clone();
                uringo::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    // 1 KiB payload unique to this client, sent in two writes.
                    let payload: Vec<u8> = (0..1024u32).map(|j| (i * 31 + j) as u8).collect();
                    let (res, _) = stream.write_all(payload[..512].to_vec()).await;
                    res.unwrap();
                    let (res, _) = stream.write_all(payload[512..].to_vec()).await;
                    res.unwrap();
                    let mut got = Vec::with_capacity(1024);
                    while got.len() < 1024 {
                        let (n, buf) = stream.read(Vec::with_capacity(1024)).await;
                        let n = n.unwrap();
                        assert!(n > 0, "server closed early");
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert_eq!(got, payload, "client {i} got someone else's bytes");
                    stream.shutdown(std::net::Shutdown::Write).await.unwrap();
                    let (n, _) = stream.read(Vec::with_capacity(16)).await;
                    assert_eq!(n.unwrap(), 0, "server closes after the client does");
                    checked.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 1000);
}
