//! `bulk_recv`: worker CPU per MiB of a bulk TCP download read through `recv_stream`,
//! with and without recv bundles and incremental buffers.
//!
//! A thread writes 4 GiB (by default) over loopback TCP as fast as it can; one uringo
//! worker reads it through `TcpStream::recv_stream` on a 256 × 16 KiB pool and drops each
//! chunk. The figure is the worker thread's own CPU time (`RUSAGE_THREAD`) per MiB, so
//! the writer's is left out. Each mode avoids the features it goes without
//! (`Builder::avoid_kernel_feature`); on a kernel that lacks one, the modes that use it
//! measure the same path as those that do not. Modes run in alternating rounds, one
//! runtime alive at a time.
//!
//! ```text
//! cargo run --release -p uringo-benches --bin bulk_recv [-- ROUNDS [GIB]]
//! ```

use std::io::Write;
use std::time::Instant;

use lexopt::ValueExt as _;
use uringo::net::{BufPool, TcpStream};
use uringo::{Builder, KernelFeature};

/// The calling thread's CPU time, user plus system, in seconds.
fn thread_cpu_secs() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct, and
    // `getrusage` only writes into the one we pass, which outlives the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A mode: which of the two buffer features the runtime may use.
#[derive(Clone, Copy)]
struct Mode {
    bundles: bool,
    incremental: bool,
}

impl Mode {
    fn name(self) -> String {
        let on = |yes: bool| if yes { "on" } else { "off" };
        format!(
            "bundles {:3}  incremental {:3}",
            on(self.bundles),
            on(self.incremental)
        )
    }
}

/// One download of `total` bytes; returns the reader's CPU µs per MiB and MiB/s.
fn download(mode: Mode, total: usize) -> (f64, f64, u64) {
    let mut builder = Builder::new();
    builder.worker_threads(1);
    if !mode.bundles {
        builder.avoid_kernel_feature(KernelFeature::RecvBundle);
    }
    if !mode.incremental {
        builder.avoid_kernel_feature(KernelFeature::BufRingIncremental);
    }
    let rt = builder.build().expect("runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let writer = std::thread::spawn(move || {
        let mut socket = std::net::TcpStream::connect(addr).expect("connect");
        let block = vec![7u8; 1 << 20];
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            socket.write_all(&block[..n]).expect("write");
            left -= n;
        }
    });
    let (server, _) = listener.accept().expect("accept");
    let server = TcpStream::from_std(server);
    let pool = BufPool::new(256, 16 * 1024).expect("pool");
    let task_pool = pool.clone();
    let (cpu, secs) = rt
        .block_on(rt.spawn(async move {
            let start = Instant::now();
            let cpu_start = thread_cpu_secs();
            let mut chunks = server.recv_stream(&task_pool);
            let mut got = 0;
            while let Some(chunk) = chunks.next().await {
                got += chunk.expect("recv").len();
            }
            assert_eq!(got, total, "bytes lost");
            (thread_cpu_secs() - cpu_start, start.elapsed().as_secs_f64())
        }))
        .expect("reader task");
    writer.join().expect("writer");
    let mib = (total >> 20) as f64;
    (cpu * 1e6 / mib, mib / secs, pool.bundles())
}

fn main() -> Result<(), lexopt::Error> {
    let mut positional = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            lexopt::Arg::Value(value) => positional.push(value.parse::<usize>()?),
            other => return Err(other.unexpected()),
        }
    }
    let rounds = positional.first().copied().unwrap_or(3);
    let gib = positional.get(1).copied().unwrap_or(4);
    let modes = [false, true].into_iter().flat_map(|bundles| {
        [false, true].map(|incremental| Mode {
            bundles,
            incremental,
        })
    });
    let modes: Vec<Mode> = modes.collect();
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 1..=rounds {
        for (i, mode) in modes.iter().enumerate() {
            let (us_per_mib, mib_per_s, bundles) = download(*mode, gib << 30);
            println!(
                "round {round}  {}  {us_per_mib:6.1} µs/MiB  {mib_per_s:6.0} MiB/s  {bundles} bundle CQEs",
                mode.name()
            );
            figures[i].push(us_per_mib);
        }
    }
    println!("\nmedian worker CPU per MiB over {rounds} rounds:");
    for (mode, figures) in modes.iter().zip(&mut figures) {
        figures.sort_by(f64::total_cmp);
        println!(
            "  {}  {:6.1} µs/MiB",
            mode.name(),
            figures[figures.len() / 2]
        );
    }
    Ok(())
}
