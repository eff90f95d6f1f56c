//! Micro-benchmarks of the ring layer.
//!
//! - `nop/uringo`: one `Nop` op through the whole op layer (cell, slab, submit, one
//!   `io_uring_enter`, dispatch, poll) — the per-op cost a task pays.
//! - `nop/raw`: the floor, a hand-written loop on the `io-uring` crate (push, enter,
//!   pop) with none of that machinery.
//! - `nop_batch32/*`: 32 nops per enter, the shape of a busy tick; `handled` submits
//!   them as handled ops (`op::Handled`: a cell and a slab slot each, but no future, no
//!   waker and no poll), which is what the op layer costs without the future protocol.
//! - `wake/msg_ring`, `wake/eventfd`: ping-pong between two threads that each own a
//!   ring and park in it; each iteration is one wake of a parked ring (half a round trip).
//!
//! Run: `cargo bench -p uringo-benches --bench ring`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled, Nop};
use uringo_uring::{Op, Ring, RingHandle};

fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

fn nop(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    g.measurement_time(Duration::from_secs(3));
    let ring = Ring::new().unwrap();
    eprintln!("ring features: {}", ring.features());
    let _enter = ring.enter();
    g.bench_function("uringo", |b| {
        b.iter(|| {
            let mut op = Op::new(Nop::new());
            assert!(poll_once(&mut op).is_pending());
            ring.submit_and_reap().unwrap();
            assert!(matches!(poll_once(&mut op), Poll::Ready(Ok(()))));
        })
    });
    let mut raw = io_uring::IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(256)
        .unwrap();
    g.bench_function("raw", |b| {
        b.iter(|| {
            let sqe = io_uring::opcode::Nop::new().build().user_data(7);
            // SAFETY: a nop SQE carries no pointers.
            unsafe { raw.submission().push(&sqe).unwrap() };
            raw.submit_and_wait(1).unwrap();
            let cqe: io_uring::cqueue::Entry = raw.completion().next().unwrap();
            assert_eq!(cqe.user_data(), 7);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("nop_batch32");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(criterion::Throughput::Elements(32));
    g.bench_function("uringo", |b| {
        b.iter(|| {
            let mut ops: [Op<Nop>; 32] = std::array::from_fn(|_| Op::new(Nop::new()));
            for op in &mut ops {
                assert!(poll_once(op).is_pending());
            }
            ring.submit_and_reap().unwrap();
            for op in &mut ops {
                assert!(matches!(poll_once(op), Poll::Ready(Ok(()))));
            }
        })
    });
    g.bench_function("handled", |b| {
        b.iter(|| {
            let before = HANDLED.get();
            for _ in 0..32 {
                assert!(submit_handled(CountedNop).is_ok());
            }
            ring.submit_and_reap().unwrap();
            assert_eq!(HANDLED.get(), before + 32);
        })
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            for i in 0..32 {
                let sqe = io_uring::opcode::Nop::new().build().user_data(i);
                // SAFETY: a nop SQE carries no pointers.
                unsafe { raw.submission().push(&sqe).unwrap() };
            }
            raw.submit_and_wait(32).unwrap();
            assert_eq!(raw.completion().count(), 32);
        })
    });
    g.finish();
}

thread_local! {
    /// Completions the `CountedNop` handlers saw on this thread (the ring's).
    static HANDLED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A nop whose handler counts its completion.
struct CountedNop;

// SAFETY: a nop's SQE points at nothing.
unsafe impl Handled for CountedNop {
    fn build(&mut self) -> io_uring::squeue::Entry {
        io_uring::opcode::Nop::new().build()
    }

    fn on_cqe(&mut self, _: &Dispatch<'_>, _: Cqe, _: u32, _: bool) {
        HANDLED.set(HANDLED.get() + 1);
    }
}

/// Ping-pong of wakes between two parked rings; returns the time for `iters` wakes.
fn ping_pong(iters: u64, msg_ring: bool) -> Duration {
    let rounds = iters.div_ceil(2);
    // `turn` counts wakes delivered; odd turns belong to the pong thread.
    let turn = Arc::new(AtomicU64::new(0));
    let (to_pong, from_ping) = std::sync::mpsc::channel::<RingHandle>();
    let (to_ping, from_pong) = std::sync::mpsc::channel::<RingHandle>();
    let pong = {
        let turn = turn.clone();
        std::thread::spawn(move || {
            let ring = Ring::builder().msg_ring_wakeups(msg_ring).build().unwrap();
            let _enter = ring.enter();
            to_ping.send(ring.handle()).unwrap();
            let ping = from_ping.recv().unwrap();
            for round in 0..rounds {
                while turn.load(Ordering::Acquire) != 2 * round + 1 {
                    ring.park(None).unwrap();
                }
                while !ping.is_parked() {
                    std::hint::spin_loop();
                }
                turn.store(2 * round + 2, Ordering::Release);
                ping.waker().wake();
            }
            ring.metrics()
        })
    };
    let ring = Ring::builder().msg_ring_wakeups(msg_ring).build().unwrap();
    let _enter = ring.enter();
    to_pong.send(ring.handle()).unwrap();
    let pong_handle = from_pong.recv().unwrap();
    let start = Instant::now();
    for round in 0..rounds {
        while !pong_handle.is_parked() {
            std::hint::spin_loop();
        }
        turn.store(2 * round + 1, Ordering::Release);
        pong_handle.waker().wake();
        while turn.load(Ordering::Acquire) != 2 * round + 2 {
            ring.park(None).unwrap();
        }
    }
    let elapsed = start.elapsed();
    let pong_metrics = pong.join().unwrap();
    let kicks = if msg_ring {
        pong_metrics.kicks_msg_ring
    } else {
        pong_metrics.kicks_eventfd
    };
    assert_eq!(kicks, rounds, "every wake went through the path under test");
    elapsed
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake");
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(30);
    g.bench_function("msg_ring", |b| {
        b.iter_custom(|iters| ping_pong(iters, true))
    });
    g.bench_function("eventfd", |b| {
        b.iter_custom(|iters| ping_pong(iters, false))
    });
    g.finish();
}

criterion_group!(benches, nop, wake);
criterion_main!(benches);
