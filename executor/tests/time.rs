//! uringo::time end to end: many timers, cancellation from other threads, timers whose
//! task moves, timeout around I/O, interval semantics.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{with_watchdog, HANG};
use uringo::time::{interval_at, sleep, sleep_until, timeout, MissedTickBehavior};
use uringo::Builder;

fn rt(workers: usize) -> uringo::Runtime {
    common::watch(Builder::new().worker_threads(workers).build().unwrap())
}

/// xorshift, so the test needs no rand crate.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn one_hundred_thousand_timers_all_fire_and_none_early() {
    with_watchdog("100k timers", || {
        let rt = rt(2);
        let early = Arc::new(AtomicUsize::new(0));
        let fired = Arc::new(AtomicUsize::new(0));
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        let base = Instant::now();
        let handles: Vec<_> = (0..100_000)
            .map(|_| {
                let deadline = base + Duration::from_micros(rng(&mut seed) % 200_000);
                let (early, fired) = (early.clone(), fired.clone());
                rt.spawn(async move {
                    sleep_until(deadline).await;
                    if Instant::now() < deadline {
                        early.fetch_add(1, Ordering::Relaxed);
                    }
                    fired.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(fired.load(Ordering::Relaxed), 100_000);
        assert_eq!(
            early.load(Ordering::Relaxed),
            0,
            "a timer fired before its deadline"
        );
        let m = rt.metrics();
        assert_eq!((0..2).map(|w| m.worker_timer_count(w)).sum::<usize>(), 0);
    });
}

#[test]
fn timers_cancelled_from_other_threads_never_fire_and_free_their_entries() {
    with_watchdog("cross-thread cancel", || {
        let rt = rt(2);
        let sleeps = rt
            .block_on(rt.spawn(async {
                // Arm 1 000 timers on this worker's wheel (one poll each), then hand them
                // out of the runtime.
                let mut sleeps = Vec::new();
                for _ in 0..1000 {
                    let mut s = Box::pin(sleep(Duration::from_millis(30)));
                    let polled = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
                    assert!(polled.is_pending());
                    sleeps.push(s);
                }
                sleeps
            }))
            .unwrap();
        let m = rt.metrics();
        let armed: usize = (0..2).map(|w| m.worker_timer_count(w)).sum();
        assert_eq!(armed, 1000);
        let fired_before: u64 = (0..2).map(|w| m.worker_timers_fired_count(w)).sum();
        // Drop them on a thread that is not a worker: each goes through its owner's
        // cancellation queue.
        std::thread::spawn(move || drop(sleeps)).join().unwrap();
        // Past their deadline, nothing of theirs fired and the wheels are empty.
        rt.block_on(sleep(Duration::from_millis(60)));
        let fired_after: u64 = (0..2).map(|w| m.worker_timers_fired_count(w)).sum();
        assert!(
            fired_after - fired_before <= 1,
            "only block_on's own sleep fired"
        );
        let start = Instant::now();
        while (0..2).map(|w| m.worker_timer_count(w)).sum::<usize>() > 0 {
            assert!(start.elapsed() < HANG, "cancelled entries never freed");
            rt.block_on(uringo::task::yield_now());
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

#[test]
fn a_sleep_armed_on_one_worker_wakes_its_task_on_another() {
    with_watchdog("moved sleep", || {
        let rt = rt(2);
        // Arm on a worker, then await from a task running on the other worker.
        common::poll_then_move(&rt, || sleep(Duration::from_millis(20)));
        // The same from a thread with no wheel at all (block_on's thread): the sleep is
        // returned un-awaited on purpose, armed on a worker's wheel.
        #[allow(clippy::async_yields_async)]
        let s = rt
            .block_on(rt.spawn(async {
                let mut s = Box::pin(sleep(Duration::from_millis(5)));
                let _ = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
                s
            }))
            .unwrap();
        rt.block_on(s);
    });
}

#[test]
fn sleep_on_a_thread_without_a_wheel_goes_through_a_worker() {
    let rt = rt(2);
    let start = Instant::now();
    rt.block_on(sleep(Duration::from_millis(10)));
    assert!(start.elapsed() >= Duration::from_millis(10));
    let handle = rt.handle().clone();
    let t = std::thread::spawn(move || {
        let _enter = handle.enter();
        // A thread that entered the runtime but is not a worker.
        let s = uringo::time::sleep(Duration::from_millis(5));
        handle.block_on(s);
    });
    t.join().unwrap();
}

/// A one-hour `timeout` in a loop on `block_on`'s thread (no wheel of its own): each
/// is dropped once its worker has put it in the wheel, and must leave the wheel then,
/// not an hour later, or such a loop piles up entries without bound.
#[test]
fn timeouts_dropped_on_a_thread_without_a_wheel_leave_the_wheel_at_once() {
    const TIMEOUTS: u64 = 3000;
    let rt = rt(2);
    let m = rt.metrics();
    let armed = || (0..2).map(|w| m.worker_timers_armed_count(w)).sum::<u64>();
    let before = armed();
    for i in 1..=TIMEOUTS {
        // Ready once a worker has armed this timeout's timer: it is in a wheel when
        // the timeout is dropped.
        let in_a_wheel = std::future::poll_fn(|cx| {
            if armed() >= before + i {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let result = rt.block_on(timeout(Duration::from_secs(3600), in_a_wheel));
        assert!(result.is_ok());
    }
    assert_eq!(armed() - before, TIMEOUTS);
    common::wait_for("the dropped timeouts to leave the wheels", || {
        (0..2).map(|w| m.worker_timer_count(w)).sum::<usize>() == 0
    });
}

#[test]
fn zero_sleep_completes_at_once_but_yields_when_budget_is_spent() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        // A fresh task has its whole budget: the first poll completes it.
        let mut zero = std::pin::pin!(sleep(Duration::ZERO));
        let first = std::future::poll_fn(|cx| Poll::Ready(zero.as_mut().poll(cx))).await;
        assert!(first.is_ready(), "a zero sleep waited on its first poll");
        let mut zero = std::pin::pin!(timeout(Duration::ZERO, std::future::pending::<()>()));
        let first = std::future::poll_fn(|cx| Poll::Ready(zero.as_mut().poll(cx))).await;
        assert!(
            matches!(first, Poll::Ready(Err(_))),
            "a zero timeout waited on its first poll"
        );
        for _ in 0..10_000 {
            sleep(Duration::ZERO).await;
        }
    }))
    .unwrap();
    assert!(rt.metrics().worker_budget_forced_yield_count(0) > 0);
}

#[test]
fn timeout_around_a_pending_read_cancels_it_and_frees_its_buffer() {
    let rt = rt(2);
    let live = Arc::new(AtomicUsize::new(0));
    let l2 = live.clone();
    rt.block_on(rt.spawn(async move {
        let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = uringo::net::TcpStream::connect(addr).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let buf = Counted::new(&l2);
        let res = timeout(Duration::from_millis(20), client.read(buf)).await;
        assert!(res.is_err(), "nothing was sent, the read must time out");
        // The buffer stays alive until the kernel returns it with the cancel's CQE.
        let start = Instant::now();
        while l2.load(Ordering::SeqCst) > 0 {
            assert!(
                start.elapsed() < HANG,
                "the timed-out read's buffer never came back"
            );
            uringo::task::yield_now().await;
        }
        // The connection still works afterwards.
        let (n, _) = client.write(b"still alive".to_vec()).await;
        assert_eq!(n.unwrap(), 11);
    }))
    .unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 0);
    let m = rt.metrics();
    let cancels: u64 = (0..2)
        .filter_map(|w| m.worker_ring_metrics(w))
        .map(|r| r.cancels)
        .sum();
    assert!(cancels >= 1, "the read was cancelled in the kernel");
}

/// Polls `iv` once; true when its tick was ready.
fn tick_is_ready(iv: &mut uringo::time::Interval) -> impl Future<Output = bool> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(iv.poll_tick(cx).is_ready()))
}

#[test]
fn an_intervals_first_tick_and_an_immediate_reset_complete_at_their_first_poll() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        let mut iv = uringo::time::interval(Duration::from_secs(3600));
        assert!(tick_is_ready(&mut iv).await, "the first tick waited");
        assert!(!tick_is_ready(&mut iv).await, "the second tick came early");
        iv.reset_immediately();
        assert!(tick_is_ready(&mut iv).await, "the immediate tick waited");
    }))
    .unwrap();
}

#[test]
fn interval_burst_fires_missed_ticks_back_to_back() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        let start = Instant::now() + Duration::from_millis(5);
        let period = Duration::from_millis(10);
        let mut iv = interval_at(start, period);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
        assert_eq!(iv.tick().await, start);
        std::thread::sleep(Duration::from_millis(40)); // miss ~3 ticks
        assert_eq!(iv.tick().await, start + period);
        assert_eq!(iv.tick().await, start + period * 2);
        assert_eq!(iv.tick().await, start + period * 3);
    }))
    .unwrap();
}

#[test]
fn interval_delay_restarts_the_schedule_from_the_late_tick() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        let start = Instant::now() + Duration::from_millis(5);
        let period = Duration::from_millis(10);
        let mut iv = interval_at(start, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        assert_eq!(iv.tick().await, start);
        std::thread::sleep(Duration::from_millis(40));
        let late = iv.tick().await;
        assert_eq!(late, start + period, "the missed tick is reported once");
        let observed = Instant::now();
        let next = iv.tick().await;
        assert!(
            next >= observed + period - Duration::from_millis(1),
            "next is a period after the late tick"
        );
        assert!(next - late >= period);
    }))
    .unwrap();
}

#[test]
fn interval_skip_drops_missed_ticks_and_keeps_the_grid() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        let start = Instant::now() + Duration::from_millis(5);
        let period = Duration::from_millis(10);
        let mut iv = interval_at(start, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        assert_eq!(iv.tick().await, start);
        std::thread::sleep(Duration::from_millis(40));
        let woke = Instant::now();
        assert_eq!(iv.tick().await, start + period);
        let next = iv.tick().await;
        let offset = next - start;
        assert_eq!(
            offset.as_nanos() % period.as_nanos(),
            0,
            "still on the original grid"
        );
        assert!(next > woke, "missed ticks were skipped, not replayed");
    }))
    .unwrap();
}

#[test]
fn sleep_reset_moves_the_deadline() {
    let rt = rt(1);
    rt.block_on(rt.spawn(async {
        let mut s = Box::pin(sleep(Duration::from_secs(3600)));
        let polled = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
        let target = Instant::now() + Duration::from_millis(10);
        s.as_mut().reset(target);
        s.as_mut().await;
        assert!(Instant::now() >= target);
        assert!(s.is_elapsed());
        // Reset after completion re-arms it.
        let target = Instant::now() + Duration::from_millis(5);
        s.as_mut().reset(target);
        assert!(!s.is_elapsed());
        s.await;
        assert!(Instant::now() >= target);
    }))
    .unwrap();
}

/// A `Sleep` armed on a worker and one handed to a worker by `block_on`'s thread both
/// outlive their runtime: they stay pending, and dropping them afterwards, on a thread
/// of no runtime, gives their slots back without touching a worker that is gone.
#[test]
// The spawned task's output is the armed `Sleep` itself: the test hands it out.
#[allow(clippy::async_yields_async)]
fn sleeps_that_outlive_their_runtime_stay_pending_and_drop_cleanly() {
    with_watchdog("sleeps outliving the runtime", || {
        let rt = rt(1);
        let (on_worker, from_block_on) = rt.block_on(async {
            let on_worker = uringo::spawn(async {
                let mut s = Box::pin(sleep(Duration::from_secs(60)));
                let polled = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
                assert!(polled.is_pending());
                s
            })
            .await
            .unwrap();
            let mut from_block_on = Box::pin(sleep(Duration::from_secs(60)));
            let polled =
                std::future::poll_fn(|cx| Poll::Ready(from_block_on.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            (on_worker, from_block_on)
        });
        drop(rt);
        assert!(!on_worker.is_elapsed());
        assert!(!from_block_on.is_elapsed());
        std::thread::spawn(move || drop((on_worker, from_block_on)))
            .join()
            .unwrap();
    });
}

#[test]
#[should_panic(expected = "outside a uringo runtime")]
fn sleep_outside_a_runtime_panics_clearly() {
    common_block_on(sleep(Duration::from_millis(1)));
}

fn common_block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A buffer that counts live instances.
struct Counted(Vec<u8>, Arc<AtomicUsize>);

impl Counted {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Counted(Vec::with_capacity(64), live.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner Vec, whose heap bytes do not move.
unsafe impl uringo::buf::IoBuf for Counted {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl uringo::buf::IoBufMut for Counted {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { uringo::buf::IoBufMut::set_init(&mut self.0, pos) }
    }
}
