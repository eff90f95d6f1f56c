//! Poll timing: the scheduling-latency and poll-time histograms of `RuntimeMetrics`,
//! for every poll (`poll_timing_sample(1)`) or for a random sample (the default).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::with_watchdog;

fn polls(m: &uringo::RuntimeMetrics) -> u64 {
    (0..m.num_workers()).map(|w| m.worker_poll_count(w)).sum()
}

/// Timing every poll, each poll a worker runs adds exactly one sample to each histogram.
#[test]
fn each_poll_adds_one_sample_to_each_histogram() {
    with_watchdog("one_sample_per_poll", || {
        let rt = uringo::Builder::new()
            .worker_threads(2)
            .poll_timing_sample(1)
            .build()
            .unwrap();
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
            .poll_timing_sample(1)
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

/// By default one poll in 32 is timed, at random: the histograms hold about one in 32
/// of the polls, spread over all the tasks, and their quantiles still say how long
/// tasks waited. Here 100 tasks each yield 200 times on one worker, so every poll but a
/// task's first waits behind the other 99 tasks' polls: the sampled median must be
/// about that, not zero.
#[test]
fn by_default_a_random_one_in_32_of_the_polls_is_timed() {
    with_watchdog("sampled_timing", || {
        let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
        let tasks = 100;
        let yields = 200;
        rt.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    uringo::spawn(async move {
                        for _ in 0..yields {
                            uringo::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        let m = rt.metrics();
        drop(rt);
        let polls = polls(&m);
        assert!(polls >= (tasks * (yields + 1)) as u64, "{polls} polls");
        let latency = m.sched_latency();
        let poll_time = m.poll_time();
        // One in 32 on average: 20 100 polls give 628 ± 25 (one standard deviation).
        let (low, high) = (polls / 48, polls / 22);
        assert!(
            (low..=high).contains(&latency.count()),
            "{} of {polls} polls timed, expected about one in 32",
            latency.count()
        );
        assert_eq!(poll_time.count(), latency.count());
        // A yielded task waits for the other 99 tasks' polls: its latency is at least
        // 99 polls' worth of the mean poll time, whatever the machine's speed.
        assert!(
            latency.p50() >= poll_time.p50() * 20,
            "median latency {:?} vs median poll time {:?}: the sample is not of waits \
             behind 99 other tasks",
            latency.p50(),
            poll_time.p50()
        );
    });
}

/// `URINGO_POLL_TIMING` picks the default: `0` is off, `n` samples one in `n`.
#[test]
fn the_environment_sets_the_default_sampling() {
    with_watchdog("timing_env", || {
        let timed = |env: &str| {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "env_child", "--nocapture", "--include-ignored"])
                .env("URINGO_POLL_TIMING", env)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("timed="))
                .unwrap_or_else(|| panic!("no timed= line in {text}"));
            let (timed, polls) = line.split_once('/').unwrap();
            (timed.parse::<u64>().unwrap(), polls.parse::<u64>().unwrap())
        };
        let (off, polls) = timed("0");
        assert!(polls >= 2000);
        assert_eq!(off, 0);
        let (every, polls) = timed("1");
        assert_eq!(every, polls);
        let (half, polls) = timed("2");
        assert!(
            (polls / 3..=polls * 2 / 3).contains(&half),
            "{half}/{polls}"
        );
    });
}

/// Run by `the_environment_sets_the_default_sampling` in a process of its own.
#[test]
#[ignore = "run by the_environment_sets_the_default_sampling"]
fn env_child() {
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        for _ in 0..1000 {
            uringo::spawn(uringo::task::yield_now()).await.unwrap();
        }
    });
    let m = rt.metrics();
    drop(rt);
    println!("timed={}/{}", m.sched_latency().count(), polls(&m));
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
