//! Networking at scale: 10 000 connections echoed through multishot accept and one
//! shared buffer-ring pool, and `copy_bidirectional` moving a gibibyte each way.
//!
//! Sizes can be lowered for a quick local run with `URINGO_SCALE_CONNS` and
//! `URINGO_COPY_BYTES`; the defaults are the sizes the tests promise.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{with_watchdog, HANG};
use uringo::net::{BufPool, TcpListener, TcpSocket, TcpStream};
use uringo::Builder;

/// Reads a size override from the environment.
fn size_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{var}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// xorshift64, so the tests need no rand crate.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Raises the soft fd limit to the hard one: 10 000 sockets are past common defaults.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

mod ten_thousand_connections {
    use super::*;

    const CLIENT_ENV: &str = "URINGO_SCALE_CLIENT_OF";
    const TEST_NAME: &str = "ten_thousand_connections::every_connection_is_echoed_through_one_pool";

    fn connections() -> usize {
        size_from_env("URINGO_SCALE_CONNS", 10_000) as usize
    }

    /// Connection `i`'s message: its own length (1 B to ~5 KiB, so many span several
    /// 1 KiB pool buffers) and its own bytes, so a crossed or truncated echo shows.
    fn message_len(i: usize) -> usize {
        1 + (i * 7919) % 5000
    }

    fn message(i: usize) -> Vec<u8> {
        let mut s = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..message_len(i)).map(|_| rng(&mut s) as u8).collect()
    }

    /// The server holds every connection at once (10 000 fds plus the runtime's), so
    /// the clients (another 10 000) live in a child process: one process may hold at
    /// most the hard `RLIMIT_NOFILE`, 20 000 on CI machines we know of.
    #[test]
    fn every_connection_is_echoed_through_one_pool() {
        if let Some(addr) = std::env::var_os(CLIENT_ENV) {
            return client(addr.to_str().unwrap().parse().unwrap());
        }
        raise_fd_limit();
        let n = connections();
        let rt = Builder::new().worker_threads(2).build().unwrap();
        // Far fewer buffers than connections: the pool runs dry thousands of times, and
        // every stream must re-arm and lose nothing.
        let pool = BufPool::new(64, 1024).unwrap();
        let listener = rt.block_on(async {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            // The kernel caps it at somaxconn; a full queue only delays a connect.
            socket.listen(4096).unwrap()
        });
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let most_open = Arc::new(AtomicUsize::new(0));
        let server = rt.spawn(serve(listener, n, pool.clone(), open, most_open.clone()));

        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CLIENT_ENV, addr.to_string())
            .env("URINGO_SCALE_CONNS", n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > HANG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the client process hung for {HANG:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("CLIENT-CHECKED {n}")),
            "the client did not check every echo\n{stdout}"
        );

        let echoed = rt
            .block_on(async { uringo::time::timeout(HANG, server).await })
            .expect("the server ends once every client closed")
            .unwrap();
        let expected: usize = (0..n).map(message_len).sum();
        assert_eq!(echoed, expected, "the server echoed every byte it received");
        assert_eq!(
            most_open.load(Ordering::SeqCst),
            n,
            "every connection was open at the same time"
        );
        assert!(!pool.is_fallback(), "the pool ran on a buffer ring");
        eprintln!(
            "{n} connections echoed {echoed} bytes in {:?}; the pool ran dry {} times",
            started.elapsed(),
            pool.enobufs()
        );
        rt.block_on(async {
            let back = uringo::time::timeout(Duration::from_secs(10), async {
                while pool.available() != pool.capacity() {
                    uringo::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
            assert!(
                back.is_ok(),
                "{} of {} pool buffers never came back",
                pool.capacity() - pool.available(),
                pool.capacity()
            );
        });
    }

    /// Accepts `n` connections and echoes each through `recv_stream(&pool)` until the
    /// client closes; returns the bytes echoed.
    async fn serve(
        listener: TcpListener,
        n: usize,
        pool: BufPool,
        open: Arc<AtomicUsize>,
        most_open: Arc<AtomicUsize>,
    ) -> usize {
        let mut echoes = Vec::with_capacity(n);
        for _ in 0..n {
            let (conn, _) = listener.accept().await.unwrap();
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            most_open.fetch_max(now, Ordering::SeqCst);
            let pool = pool.clone();
            let open = open.clone();
            echoes.push(uringo::spawn(async move {
                let echoed = echo(&conn, &pool).await;
                open.fetch_sub(1, Ordering::SeqCst);
                echoed
            }));
        }
        let mut total = 0;
        for echo in echoes {
            total += echo.await.unwrap();
        }
        total
    }

    async fn echo(conn: &TcpStream, pool: &BufPool) -> usize {
        let mut chunks = conn.recv_stream(pool);
        let mut echoed = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.unwrap();
            assert!(!chunk.is_empty(), "recv_stream yields no empty chunk");
            // Copied out so the pool buffer goes back before the write waits.
            let bytes = chunk.to_vec();
            drop(chunk);
            echoed += bytes.len();
            let (res, _) = conn.write_all(bytes).await;
            res.unwrap();
        }
        echoed
    }

    /// The child: opens every connection before writing on any, sends each its
    /// message, checks every echoed byte, then closes and checks the server closed too.
    fn client(addr: SocketAddr) {
        raise_fd_limit();
        let n = connections();
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let conn = std::net::TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connect {i} of {n}: {e}"));
            conns.push(conn);
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.write_all(&message(i)).unwrap();
        }
        let mut bytes = 0;
        for (i, conn) in conns.iter_mut().enumerate() {
            let sent = message(i);
            let mut got = vec![0; sent.len()];
            conn.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("echo of connection {i}: {e}"));
            assert!(
                got == sent,
                "connection {i}: echo differs from what was sent"
            );
            bytes += got.len();
        }
        for conn in &conns {
            conn.shutdown(std::net::Shutdown::Write).unwrap();
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            let mut extra = [0u8; 1];
            let n = conn.read(&mut extra).unwrap();
            assert_eq!(n, 0, "connection {i}: the server sent more than the echo");
        }
        println!("CLIENT-CHECKED {n} connections, {bytes} bytes");
    }
}

mod copy_a_gibibyte {
    use super::*;

    /// Bytes sent each way; the stream is made of whole blocks.
    fn bytes_each_way() -> u64 {
        let n = size_from_env("URINGO_COPY_BYTES", 1 << 30);
        assert_eq!(
            n % BLOCK as u64,
            0,
            "URINGO_COPY_BYTES must be a multiple of {BLOCK}"
        );
        n
    }

    const BLOCK: usize = 64 * 1024;
    /// Every `STAMP_EVERY` bytes a block carries its stream, block and position, so a
    /// lost, repeated or reordered piece changes the checksum even though every block
    /// shares one random base.
    const STAMP_EVERY: usize = 4096;

    /// A deterministic stream, generated one block at a time: no gibibyte in memory,
    /// and cheap enough in a debug build (a copy and sixteen stamps per block).
    struct Stream {
        base: Vec<u8>,
        id: u64,
        next_block: u64,
    }

    impl Stream {
        fn new(id: u64) -> Stream {
            let mut s = id.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
            let base = (0..BLOCK).map(|_| rng(&mut s) as u8).collect();
            Stream {
                base,
                id,
                next_block: 0,
            }
        }

        fn fill_next(&mut self, block: &mut [u8]) {
            block.copy_from_slice(&self.base);
            for (j, piece) in block.chunks_exact_mut(STAMP_EVERY).enumerate() {
                let stamp =
                    (self.id << 56) ^ (self.next_block * (BLOCK / STAMP_EVERY) as u64 + j as u64);
                piece[..8].copy_from_slice(&stamp.to_le_bytes());
            }
            self.next_block += 1;
        }
    }

    /// FNV-1a over 64-bit words, chained across blocks (so order matters).
    struct Checksum(u64);

    impl Checksum {
        fn new() -> Checksum {
            Checksum(0xcbf2_9ce4_8422_2325)
        }

        fn add(&mut self, words: &[u64]) {
            // An index loop: iterator adapters are slow in a debug build.
            let mut i = 0;
            while i < words.len() {
                self.0 = (self.0 ^ words[i]).wrapping_mul(0x0100_0000_01b3);
                i += 1;
            }
        }
    }

    /// A block-sized buffer aligned for the checksum's words.
    struct Block(Vec<u64>);

    impl Block {
        fn new() -> Block {
            Block(vec![0; BLOCK / 8])
        }

        fn bytes(&mut self) -> &mut [u8] {
            // The view borrows `self` mutably.
            // SAFETY: u64 has no invalid bit patterns and u8 no alignment: words as bytes.
            unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), BLOCK) }
        }
    }

    /// Sends stream `id` (`total` bytes) and shuts down writing; returns its checksum.
    fn send(mut conn: std::net::TcpStream, id: u64, total: u64) -> u64 {
        let (mut stream, mut block, mut sum) = (Stream::new(id), Block::new(), Checksum::new());
        for _ in 0..total / BLOCK as u64 {
            stream.fill_next(block.bytes());
            conn.write_all(block.bytes()).unwrap();
            sum.add(&block.0);
        }
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        sum.0
    }

    /// Receives until end of stream; returns the byte count and checksum.
    fn receive(mut conn: std::net::TcpStream) -> (u64, u64) {
        let (mut block, mut sum, mut total) = (Block::new(), Checksum::new(), 0u64);
        loop {
            let mut filled = 0;
            while filled < BLOCK {
                match conn.read(&mut block.bytes()[filled..]).unwrap() {
                    0 => {
                        assert_eq!(filled, 0, "the stream ended mid-block after {total} bytes");
                        return (total, sum.0);
                    }
                    n => filled += n,
                }
            }
            sum.add(&block.0);
            total += BLOCK as u64;
        }
    }

    /// client ⇄ proxy ⇄ upstream: the proxy task runs `copy_bidirectional` between its
    /// two TCP connections while both ends send a gibibyte at once (two GiB moved in
    /// all), then each end compares what it got with what the other sent.
    #[test]
    fn copy_bidirectional_moves_a_gibibyte_each_way_intact() {
        with_watchdog("copy 1 GiB", || {
            let total = bytes_each_way();
            let rt = Builder::new().worker_threads(2).build().unwrap();
            let (client, server, copy) = common::copy_proxy(&rt);
            let started = Instant::now();
            let ends = [(client, 1u64), (server, 2u64)].map(|(conn, id)| {
                let reader = conn.try_clone().unwrap();
                (
                    std::thread::spawn(move || send(conn, id, total)),
                    std::thread::spawn(move || receive(reader)),
                )
            });
            let [(client_sent, client_got), (server_sent, server_got)] =
                ends.map(|(s, r)| (s.join().unwrap(), r.join().unwrap()));
            let copied = rt
                .block_on(async { uringo::time::timeout(HANG, copy).await })
                .expect("the copy ends after both directions reach end of stream")
                .unwrap()
                .unwrap();
            eprintln!("moved 2 × {total} bytes in {:?}", started.elapsed());

            assert_eq!(
                copied,
                (total, total),
                "bytes copied (client → upstream, back)"
            );
            assert_eq!(server_got.0, total, "upstream received every byte");
            assert_eq!(client_got.0, total, "client received every byte");
            assert_eq!(server_got.1, client_sent, "client → upstream checksum");
            assert_eq!(client_got.1, server_sent, "upstream → client checksum");
        });
    }
}
