//! http-proxy holds nothing per finished connection: after thousands of
//! `Connection: close` requests, each on its own connection, the runtime's live tasks
//! return to where they were and the heap has not grown with the connection count.
//! (The proxy's earlier shutdown flag kept a waker, and with it a finished task's
//! memory, per connection: 1.6 KB each, for good.)

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uringo_examples::http_proxy::{Config, HttpProxy};
use uringo_examples::server::bind_reuseport;

/// Bytes allocated and not freed, by anyone in this test process.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// side effect with no bearing on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`realloc` above, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

use support::PATIENCE;

/// One request on its own connection, `Connection: close`, read to EOF.
fn close_per_request(proxy: SocketAddr) {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(response.ends_with(b"ok"));
}

fn run_clients(proxy: SocketAddr, count: usize) {
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || (0..count / 2).for_each(|_| close_per_request(proxy))))
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

#[test]
fn close_per_request_connections_leave_no_task_and_no_memory_behind() {
    let (upstream, _) = support::http_upstream(|_, _, _| "ok".into());
    let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
    let stop = CancellationToken::new();
    let (proxy, listeners) = rt.block_on(async {
        let config = Config {
            upstreams: vec![upstream],
            connect_timeout: Duration::from_secs(10),
            upstream_timeout: PATIENCE,
            header_read_timeout: PATIENCE,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024,
            pool_max_idle: 8,
            pool_idle_timeout: None,
            max_connections: 1000,
            drain_timeout: Duration::from_secs(1),
            tls: None,
        };
        let proxy = HttpProxy::new(config).unwrap();
        let listeners = bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        (proxy, listeners)
    });
    let addr = listeners[0].local_addr().unwrap();
    let serving = rt.spawn({
        let (proxy, stop) = (proxy.clone(), stop.clone());
        async move { proxy.serve(listeners, stop).await }
    });
    let metrics = rt.metrics();
    // Settles once every connection task has ended and the pool has its connections.
    let settle = |at_most: usize| {
        let deadline = Instant::now() + PATIENCE;
        while metrics.num_alive_tasks() > at_most || proxy.live_connections() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} tasks still alive (baseline {at_most}), {} connections",
                metrics.num_alive_tasks(),
                proxy.live_connections()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    // Warm up: upstream connections pooled, buffers and tables at their working size.
    run_clients(addr, 400);
    settle(usize::MAX);
    std::thread::sleep(Duration::from_millis(100));
    let tasks_before = metrics.num_alive_tasks();
    let bytes_before = LIVE_BYTES.load(Ordering::SeqCst);
    assert!(bytes_before > 0, "the counting allocator is not in use");

    run_clients(addr, 3000);
    settle(tasks_before);
    std::thread::sleep(Duration::from_millis(100));
    let grown = LIVE_BYTES.load(Ordering::SeqCst) - bytes_before;
    assert!(
        grown < 100 * 1024,
        "the heap grew by {grown} bytes over 3000 closed connections ({} per connection)",
        grown / 3000
    );

    stop.cancel();
    let left = rt.block_on(serving).unwrap();
    assert_eq!(left, 0);
}
