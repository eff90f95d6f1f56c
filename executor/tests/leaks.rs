//! Dropping 10 000 in-flight operations at random points leaks no fd and no buffer.
//!
//! Every kind of operation a server abandons — reads on idle sockets, writes stuck on a
//! full socket buffer, `read_exact` half done, `recv_stream`s, `copy_bidirectional`,
//! `accept`, UDP receives, reads of a FIFO — is started and dropped after a random
//! number of polls, a random short timeout or an abort of its task, and its socket closed
//! right after. The kernel may still own
//! the buffer at that moment, so buffers are freed and fds closed only at each op's
//! completion; the test then waits (bounded) until every counted buffer is gone, every
//! pool buffer is back and `/proc/self/fd` is back to its count before the run.
//!
//! Counting this process's fds only works if no other test opens any meanwhile, so this
//! binary holds this one test. The seed can be changed with `URINGO_LEAK_SEED`.

mod common;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::with_watchdog;
use uringo::buf::{IoBuf, IoBufMut};
use uringo::fs::File;
use uringo::net::{BufPool, TcpListener, TcpStream, UnixStream};
use uringo::Builder;

const VICTIMS: usize = 10_000;
/// Victims alive at once; bounded so the fds of a batch stay far below the limit.
const BATCH: usize = 250;
/// How long the runtime gets to finish the cancellations (a bound, not a timing).
const SETTLE: Duration = Duration::from_secs(10);

/// xorshift64, so the test needs no rand crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A buffer that counts how many of its kind are alive.
struct CountedBuf {
    data: Vec<u8>,
    live: Arc<AtomicUsize>,
}

impl CountedBuf {
    fn new(data: Vec<u8>, counts: &Counts) -> CountedBuf {
        counts.live_bufs.fetch_add(1, Ordering::SeqCst);
        counts.made_bufs.fetch_add(1, Ordering::SeqCst);
        CountedBuf {
            data,
            live: counts.live_bufs.clone(),
        }
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner Vec, whose heap bytes do not move while it is not
// touched (and nothing touches it while the buffer is lent to an op).
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.data.set_init(pos) }
    }
}

#[derive(Default)]
struct Counts {
    live_bufs: Arc<AtomicUsize>,
    made_bufs: Arc<AtomicUsize>,
    /// Victims dropped while still pending (the rest finished before their turn ended).
    dropped_pending: AtomicUsize,
}

fn counted(len: usize, counts: &Counts) -> CountedBuf {
    CountedBuf::new(Vec::with_capacity(len), counts)
}

/// Polls a future at most `left + 1` times (yielding between polls), then gives up and
/// drops it: a `select!` that another branch won.
struct PollTimes<F> {
    fut: F,
    left: u64,
}

impl<F: Future + Unpin> Future for PollTimes<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if let Poll::Ready(v) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(Some(v));
        }
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

type Victim = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The peers a batch keeps open until all its victims are gone, so that no victim
/// sees end of stream and finishes early.
#[derive(Default)]
struct Keep {
    tcp: Vec<TcpStream>,
    unix: Vec<UnixStream>,
    listeners: Vec<TcpListener>,
    files: Vec<std::fs::File>,
}

async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Sets up victim `i` of a random kind; the sockets it uses are moved into it, so they
/// close right after the op is dropped.
async fn victim(
    i: usize,
    rng: &mut Rng,
    keep: &mut Keep,
    listener: &TcpListener,
    pool: &BufPool,
    dir: &Path,
    counts: &Arc<Counts>,
) -> Victim {
    let c = counts.clone();
    match rng.below(9) {
        // A read on an idle TCP connection.
        0 => {
            let (a, b) = tcp_pair(listener).await;
            keep.tcp.push(b);
            Box::pin(async move {
                let _ = a.read(counted(4096, &c)).await;
            })
        }
        // A read on an idle unix stream.
        1 => {
            let (a, b) = UnixStream::pair().unwrap();
            keep.unix.push(b);
            Box::pin(async move {
                let _ = a.read(counted(4096, &c)).await;
            })
        }
        // A write bigger than the socket buffers, to a peer that never reads: it stops
        // mid-way with the kernel holding the rest of the buffer.
        2 => {
            let (a, b) = UnixStream::pair().unwrap();
            keep.unix.push(b);
            let len = 256 * 1024 + rng.below(768 * 1024) as usize;
            Box::pin(async move {
                let _ = a.write_all(CountedBuf::new(vec![0xa5; len], &c)).await;
            })
        }
        // `read_exact` after part of the bytes arrived.
        3 => {
            let (a, b) = tcp_pair(listener).await;
            let partial = 1 + rng.below(99) as usize;
            let (res, _) = b.write_all(vec![7; partial]).await;
            res.unwrap();
            keep.tcp.push(b);
            Box::pin(async move {
                let _ = a.read_exact(counted(100, &c)).await;
            })
        }
        // A recv_stream that holds some of its chunks when it is dropped; sometimes data
        // keeps coming, sometimes the pool is empty and it waits for a buffer.
        4 => {
            let (a, b) = UnixStream::pair().unwrap();
            let burst = rng.below(8 * 1024) as usize;
            if burst > 0 {
                let (res, _) = b.write_all(vec![i as u8; burst]).await;
                res.unwrap();
            }
            keep.unix.push(b);
            let pool = pool.clone();
            let hold = rng.below(4) as usize;
            Box::pin(async move {
                let mut chunks = a.recv_stream(&pool);
                let mut held = Vec::new();
                while let Some(Ok(chunk)) = chunks.next().await {
                    if held.len() < hold {
                        held.push(chunk);
                    }
                }
            })
        }
        // A proxy copy between two TCP connections, with bytes flowing one way.
        5 => {
            let (mut a, a_peer) = tcp_pair(listener).await;
            let (mut b, b_peer) = tcp_pair(listener).await;
            let burst = rng.below(256 * 1024) as usize;
            if burst > 0 {
                // One write: as much as the socket buffers take right now.
                let (res, _) = a_peer.write(vec![3; burst]).await;
                res.unwrap();
            }
            keep.tcp.push(a_peer);
            keep.tcp.push(b_peer);
            Box::pin(async move {
                let _ = uringo::io::copy_bidirectional(&mut a, &mut b).await;
            })
        }
        // An accept, on a listener of its own; half the time a connection is queued, so
        // the accepted socket may arrive for a future that is gone.
        6 => {
            let own = TcpListener::bind("127.0.0.1:0").unwrap();
            if rng.below(2) == 0 {
                let client = std::net::TcpStream::connect(own.local_addr().unwrap()).unwrap();
                keep.tcp.push(TcpStream::from_std(client));
            }
            Box::pin(async move {
                let _ = own.accept().await;
            })
        }
        // A datagram receive on a socket nobody sends to.
        7 => {
            let socket = uringo::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            Box::pin(async move {
                let _ = socket.recv_from(counted(1500, &c)).await;
            })
        }
        // A read of a FIFO nobody writes to (the writer end stays open).
        _ => {
            let path = dir.join(format!("fifo-{i}"));
            mkfifo(&path);
            // O_NONBLOCK lets the open return without a writer; io_uring still waits
            // for data instead of failing with EAGAIN.
            let reader = File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .await
                .unwrap();
            let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            keep.files.push(writer);
            Box::pin(async move {
                let _ = reader.read_at(counted(512, &c), u64::MAX).await;
            })
        }
    }
}

/// Runs `victim` and drops it after a random number of polls, a random timeout, or by
/// aborting its task after a random delay.
fn run_victim(victim: Victim, rng: &mut Rng, counts: Arc<Counts>) -> uringo::JoinHandle<()> {
    let polls = rng.below(8);
    let delay = Duration::from_micros(rng.below(3000));
    match rng.below(3) {
        0 => uringo::spawn(async move {
            if uringo::time::timeout(delay, victim).await.is_err() {
                counts.dropped_pending.fetch_add(1, Ordering::SeqCst);
            }
        }),
        1 => uringo::spawn(async move {
            let fut = PollTimes {
                fut: victim,
                left: polls,
            };
            if fut.await.is_none() {
                counts.dropped_pending.fetch_add(1, Ordering::SeqCst);
            }
        }),
        _ => uringo::spawn(async move {
            let task = uringo::spawn(victim);
            uringo::time::sleep(delay).await;
            task.abort();
            // The abort drops the victim on whichever worker runs its task.
            if task.await.is_err() {
                counts.dropped_pending.fetch_add(1, Ordering::SeqCst);
            }
        }),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn dropping_ten_thousand_in_flight_ops_leaks_no_fd_and_no_buffer() {
    with_watchdog("leaks", || {
        let seed = std::env::var("URINGO_LEAK_SEED")
            .map(|s| s.parse().unwrap())
            .unwrap_or(0x5eed_1eaf_u64);
        let before_runtime = open_fds();
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let counts = Arc::new(Counts::default());
        let pool = BufPool::new(64, 1024).unwrap();
        let dir = std::env::temp_dir().join(format!("uringo-leaks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        rt.block_on(async {
            // Anything the runtime creates lazily (timers) exists before the count.
            uringo::time::sleep(Duration::from_millis(1)).await;
            let baseline = open_fds();
            // Mixed, so neighbouring seeds differ and none is the all-zero state.
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            for batch in 0..VICTIMS / BATCH {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let mut keep = Keep::default();
                let mut handles = Vec::with_capacity(BATCH);
                for j in 0..BATCH {
                    let i = batch * BATCH + j;
                    let v = victim(i, &mut rng, &mut keep, &listener, &pool, &dir, &counts).await;
                    handles.push(run_victim(v, &mut rng, counts.clone()));
                }
                for handle in handles {
                    handle.await.unwrap();
                }
                keep.listeners.push(listener);
                drop(keep);
            }

            let settled = uringo::time::timeout(SETTLE, async {
                while counts.live_bufs.load(Ordering::SeqCst) != 0
                    || pool.available() != pool.capacity()
                    || open_fds() != baseline
                {
                    uringo::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            let dropped_pending = counts.dropped_pending.load(Ordering::SeqCst);
            eprintln!(
                "seed {seed:#x}: {dropped_pending} of {VICTIMS} dropped in flight, {} buffers made",
                counts.made_bufs.load(Ordering::SeqCst)
            );
            assert!(
                settled.is_ok(),
                "seed {seed:#x}: after {SETTLE:?}: {} counted buffers alive, {} of {} pool \
                 buffers out, {} fds open against {baseline} before",
                counts.live_bufs.load(Ordering::SeqCst),
                pool.capacity() - pool.available(),
                pool.capacity(),
                open_fds(),
            );
            // The test means something only if most victims really were in flight.
            assert!(
                dropped_pending > VICTIMS / 2,
                "only {dropped_pending} victims were dropped in flight"
            );
            assert!(counts.made_bufs.load(Ordering::SeqCst) > VICTIMS / 4);
        });
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            open_fds(),
            before_runtime,
            "the runtime closed all its own fds at shutdown"
        );
    });
}
