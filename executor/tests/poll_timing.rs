//! Per-poll timing: the scheduling-latency and poll-time histograms of `RuntimeMetrics`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::with_watchdog;

fn polls(m: &uringo::RuntimeMetrics) -> u64 {
    (0..m.num_workers()).map(|w| m.worker_poll_count(w)).sum()
}

/// Every poll a worker runs adds exactly one sample to each histogram.
#[test]
fn each_poll_adds_one_sample_to_each_histogram() {
    with_watchdog("one_sample_per_poll", || {
        let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    uringo::spawn(async move {
                        for _ in 0..(i % 7) {
                            uringo::task::yield_now().await;
                        }
                        uringo::time::sleep(Duration::from_micros(i as u64 * 10)).await;
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        // Shut down first: a worker records a poll's time after the poll, which may be
        // after its task's completion woke us; joining the workers makes every record
        // visible.
        let m = rt.metrics();
        drop(rt);
        let polls = polls(&m);
        assert!(polls >= 200 * 2, "{polls} polls");
        let latency = m.sched_latency();
        let poll_time = m.poll_time();
        assert_eq!(latency.count(), polls);
        assert_eq!(poll_time.count(), polls);
        for w in 0..m.num_workers() {
            assert_eq!(m.worker_sched_latency(w).count(), m.worker_poll_count(w));
        }
        assert!(latency.p50() <= latency.p99() && latency.p99() <= latency.max());
        assert_eq!(
            latency.buckets().map(|(_, n)| n).sum::<u64>(),
            latency.count()
        );
    });
}

/// A task woken while its only worker is busy waits at least as long as the worker
/// stays busy, and the histograms say so: the latency and the busy poll both show up.
#[test]
fn a_wait_behind_a_long_poll_shows_in_both_histograms() {
    with_watchdog("long_poll", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let busy = Duration::from_millis(30);
        let started = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(std::sync::Mutex::new(None));
        let hog = {
            let (started, ended) = (started.clone(), ended.clone());
            rt.spawn(async move {
                started.store(true, Ordering::SeqCst);
                let until = Instant::now() + busy;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                *ended.lock().unwrap() = Some(Instant::now());
            })
        };
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Spawned from outside while the worker spins: it cannot run until the hog's
        // poll returns.
        let woken_at = Instant::now();
        let waiter = rt.spawn(async {});
        rt.block_on(hog).unwrap();
        rt.block_on(waiter).unwrap();
        let hog_end = ended.lock().unwrap().expect("the hog finished");
        let must_have_waited = hog_end.saturating_duration_since(woken_at);
        let m = rt.metrics();
        let latency = m.worker_sched_latency(0);
        let poll_time = m.worker_poll_time(0);
        assert!(
            latency.max() >= must_have_waited.mul_f64(0.95),
            "max latency {:?}, but the waiter sat behind the hog for {must_have_waited:?}",
            latency.max(),
        );
        assert!(poll_time.max() >= busy, "max poll {:?}", poll_time.max());
        assert!(
            poll_time.max() < busy * 100,
            "poll time {:?} is not in the right unit",
            poll_time.max()
        );
    });
}

/// With timing off nothing is recorded, and dumps have no last-poll times.
#[test]
fn timing_off_records_nothing() {
    with_watchdog("timing_off", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .poll_timing(false)
            .build()
            .unwrap();
        let idle = rt.spawn(std::future::pending::<()>());
        rt.block_on(async {
            for _ in 0..10 {
                uringo::spawn(uringo::task::yield_now()).await.unwrap();
            }
        });
        let m = rt.metrics();
        assert!(polls(&m) >= 20);
        assert_eq!(m.sched_latency().count(), 0);
        assert_eq!(m.poll_time().count(), 0);
        let dump = rt.handle().dump();
        let t = &dump.tasks()[0];
        assert_eq!(t.id(), idle.id());
        assert_eq!(t.worker(), Some(0), "the worker is still known");
        assert_eq!(t.since_last_poll(), None);
        idle.abort();
    });
}
