//! Test helpers: a minimal oneshot channel, a drop counter, a hang watchdog, a bounded
//! wait, a log capture, and moving a half-run future to another worker.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Generous bound after which a test declares a hang; never a performance threshold.
pub const HANG: Duration = Duration::from_secs(60);

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

pub struct Sender<T>(Arc<Mutex<Slot<T>>>);
pub struct Receiver<T>(Arc<Mutex<Slot<T>>>);

pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    pub fn send(self, value: T) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock().unwrap();
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Counts live instances; put one in a future to see when it is dropped.
#[derive(Clone)]
pub struct DropCounter(pub Arc<AtomicUsize>);

pub struct Tracked(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> Self {
        DropCounter(Arc::new(AtomicUsize::new(0)))
    }
    pub fn track(&self) -> Tracked {
        self.0.fetch_add(1, Ordering::SeqCst);
        Tracked(self.0.clone())
    }
    pub fn live(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runtimes built inside a watchdog's thread, by that thread's name, so a hang can say
/// what each task waits on.
static WATCHED: Mutex<Vec<(String, uringo::Handle)>> = Mutex::new(Vec::new());

/// Registers `rt` with the watchdog running on this thread (if any): on a hang its task
/// dump and per-worker counters are printed before the test fails.
pub fn watch(rt: uringo::Runtime) -> uringo::Runtime {
    if let Some(name) = std::thread::current().name() {
        WATCHED
            .lock()
            .unwrap()
            .push((name.to_string(), rt.handle().clone()));
    }
    rt
}

/// What each runtime registered under `name` is doing: every task and what it waits on,
/// and each worker's counters.
fn hang_report(name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (_, handle) in WATCHED.lock().unwrap().iter().filter(|(n, _)| n == name) {
        let m = handle.metrics();
        let _ = writeln!(
            out,
            "{:#}searching {} parked {} global queue {}",
            handle.dump(),
            m.num_searching_workers(),
            m.num_parked_workers(),
            m.global_queue_depth()
        );
        for w in 0..m.num_workers() {
            let _ = writeln!(
                out,
                "worker {w}: ticks {} polls {} parks {} unparks {} reaps {} timers {} steals {}",
                m.worker_tick_count(w),
                m.worker_poll_count(w),
                m.worker_park_count(w),
                m.worker_unpark_count(w),
                m.worker_ring_reap_count(w),
                m.worker_timer_count(w),
                m.worker_steal_count(w),
            );
        }
    }
    out
}

/// Runs `f` on a thread and fails the test if it does not finish within `HANG`; runtimes
/// passed through [`watch`] on that thread are described in the failure.
pub fn with_watchdog<R: Send + 'static>(name: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    struct Unwatch(String);
    impl Drop for Unwatch {
        fn drop(&mut self) {
            if let Ok(mut w) = WATCHED.lock() {
                w.retain(|(n, _)| *n != self.0);
            }
        }
    }
    let _unwatch = Unwatch(name.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let r = f();
            let _ = tx.send(());
            r
        })
        .unwrap();
    match rx.recv_timeout(HANG) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("{name}: hung for {HANG:?}\n{}", hang_report(name)),
    }
}

/// Waits until `f` holds, polling every 2 ms; fails the test after `HANG` (a hang, never
/// a performance bound).
pub fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Collects what a `tracing` fmt subscriber writes, for tests that check log lines.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that contain `pattern`.
    pub fn lines_with(&self, pattern: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(pattern))
            .map(str::to_owned)
            .collect()
    }

    /// A subscriber (INFO and up, no colours) that writes here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let captured = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || captured.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish()
    }
}

/// Waits until every worker of `rt` is parked: every task it has is waiting on
/// something, so a wake that comes after this is a real wake of a pending task.
pub fn wait_until_idle(rt: &uringo::Runtime) {
    let workers = rt.metrics().num_workers();
    wait_for("every worker parked", || {
        rt.metrics().num_parked_workers() == workers
    });
}

/// A runtime with `workers` workers and the defaults otherwise.
pub fn runtime(workers: usize) -> uringo::Runtime {
    uringo::Builder::new()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Makes a future on one of `rt`'s workers and polls it once there (it must be
/// pending), then awaits the rest of it from a task on another worker, and returns its
/// output.
pub fn poll_then_move<F>(
    rt: &uringo::Runtime,
    make: impl FnOnce() -> F + Send + 'static,
) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (mut future, first) = rt
        .block_on(rt.spawn(async move {
            let mut future = Box::pin(make());
            let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "the future finished in its first poll");
            (future, std::thread::current().id())
        }))
        .unwrap();
    rt.block_on(rt.spawn(async move {
        if std::thread::current().id() != first {
            return future.await;
        }
        // On the first worker: spawn the rest here, then block this worker on purpose;
        // block_in_place hands its queue (the new task included) to the other worker.
        let (started, on) = std::sync::mpsc::channel();
        let rest = uringo::spawn(async move {
            started.send(std::thread::current().id()).unwrap();
            future.as_mut().await
        });
        let ran_on = uringo::task::block_in_place(|| on.recv_timeout(HANG))
            .expect("the handed-off task never started");
        assert_ne!(ran_on, first);
        rest.await.unwrap()
    }))
    .unwrap()
}

/// A connected TCP pair on loopback: (client side, server side).
pub async fn tcp_pair() -> (uringo::net::TcpStream, uringo::net::TcpStream) {
    let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = uringo::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Reads `stream` with uringo's own API until end of stream.
pub async fn read_to_eof(stream: &uringo::net::TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let (n, buf) = stream.read(Vec::with_capacity(64 * 1024)).await;
        match n.unwrap() {
            0 => return all,
            _ => all.extend_from_slice(&buf),
        }
    }
}

/// Threads of this process that are io_uring's io-wq workers (`iou-wrk-*`).
pub fn io_wq_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("iou-wrk"))
        .count()
}

/// client ⇄ proxy ⇄ upstream on loopback: a task on `rt` accepts one connection and runs
/// `copy_bidirectional` between it and a new connection to the upstream. Returns the
/// client's and the upstream's ends (plain std sockets) and the copy's handle.
pub fn copy_proxy(
    rt: &uringo::Runtime,
) -> (
    std::net::TcpStream,
    std::net::TcpStream,
    uringo::JoinHandle<std::io::Result<(u64, u64)>>,
) {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let proxy = rt.block_on(async { uringo::net::TcpListener::bind("127.0.0.1:0").unwrap() });
    let proxy_addr = proxy.local_addr().unwrap();
    let copy = rt.spawn(async move {
        let (mut inbound, _) = proxy.accept().await?;
        let mut outbound = uringo::net::TcpStream::connect(upstream_addr).await?;
        uringo::io::copy_bidirectional(&mut inbound, &mut outbound).await
    });
    let client = std::net::TcpStream::connect(proxy_addr).unwrap();
    let (server, _) = upstream.accept().unwrap();
    (client, server, copy)
}
