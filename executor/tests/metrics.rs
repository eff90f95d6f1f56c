//! Runtime metrics count what a scripted workload did, and `URINGO_SCHEDTRACE` prints
//! well-formed lines at its interval.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::with_watchdog;
use uringo::{Builder, RuntimeMetrics};

fn sum(m: &RuntimeMetrics, f: impl Fn(&RuntimeMetrics, usize) -> u64) -> u64 {
    (0..m.num_workers()).map(|w| f(m, w)).sum()
}

#[test]
fn spawns_polls_and_timers_are_counted_exactly() {
    with_watchdog("metrics_counts", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let m = rt.metrics();
        assert_eq!(m.spawned_tasks_count(), 0);
        // 500 spawns from outside, each spawning one child from a worker.
        let handles: Vec<_> = (0..500)
            .map(|_| rt.spawn(async { uringo::spawn(async {}).await.unwrap() }))
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(m.spawned_tasks_count(), 1000);
        assert!(sum(&m, RuntimeMetrics::worker_poll_count) >= 1000);

        // 40 sleeps that fire and 60 that are dropped while armed.
        rt.block_on(async {
            uringo::spawn(async {
                let long: Vec<_> = (0..60)
                    .map(|_| Box::pin(uringo::time::sleep(Duration::from_secs(30))))
                    .collect();
                // Poll each once so it registers on this worker's wheel.
                for mut s in long.into_iter() {
                    let polled = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(s.as_mut().poll_ready_once(cx))
                    })
                    .await;
                    assert!(!polled);
                    drop(s);
                }
                for _ in 0..40 {
                    uringo::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap();
        });
        assert_eq!(sum(&m, RuntimeMetrics::worker_timers_armed_count), 100);
        assert_eq!(sum(&m, RuntimeMetrics::worker_timers_cancelled_count), 60);
        assert_eq!(sum(&m, RuntimeMetrics::worker_timers_fired_count), 40);
        assert_eq!(sum(&m, |m, w| m.worker_timer_count(w) as u64), 0);
        assert!(sum(&m, RuntimeMetrics::worker_tick_count) > 0);
    });
}

/// A tiny extension so the test can poll a `Sleep` exactly once.
trait PollOnce {
    fn poll_ready_once(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> bool;
}

impl<F: std::future::Future> PollOnce for F {
    fn poll_ready_once(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> bool {
        self.poll(cx).is_ready()
    }
}

#[test]
fn an_unbalanced_load_is_stolen_and_the_victim_knows() {
    with_watchdog("metrics_steals", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let m = rt.metrics();
        let done = Arc::new(AtomicUsize::new(0));
        rt.block_on({
            let done = done.clone();
            async move {
                uringo::spawn(async move {
                    // All spawned on one worker; each spins a little, so the other
                    // worker, woken by the spawns, finds a queue worth stealing from.
                    let tasks: Vec<_> = (0..200)
                        .map(|_| {
                            let done = done.clone();
                            uringo::spawn(async move {
                                let until = Instant::now() + Duration::from_micros(200);
                                while Instant::now() < until {
                                    std::hint::spin_loop();
                                }
                                done.fetch_add(1, Ordering::Relaxed);
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
                .await
                .unwrap();
            }
        });
        assert_eq!(done.load(Ordering::Relaxed), 200);
        let stolen = sum(&m, RuntimeMetrics::worker_steal_count);
        let operations = sum(&m, RuntimeMetrics::worker_steal_operations);
        let robbed = sum(&m, RuntimeMetrics::worker_robbed_count);
        assert!(
            stolen > 0,
            "no steals with two workers and one loaded queue"
        );
        assert!(operations > 0 && operations <= stolen);
        assert_eq!(
            robbed, operations,
            "each steal operation robs one victim once"
        );
        assert!(sum(&m, |m, w| m.worker_busy_duration(w).as_nanos() as u64) > 0);
    });
}

/// Go's spinning M: the one searching worker keeps watching before it parks, and takes
/// work that arrives meanwhile without anyone being woken for it.
#[test]
fn a_spinning_searcher_takes_work_that_arrives_while_it_spins() {
    with_watchdog("search_spin", || {
        // Long enough that the searcher is certainly still spinning when the task comes,
        // and that a shutdown which waited out the spin would trip the watchdog.
        let rt = Builder::new()
            .worker_threads(2)
            .search_spin(Duration::from_secs(600))
            .build()
            .unwrap();
        let m = rt.metrics();
        let mut spins_seen = 0;
        for round in 0..5 {
            // After each task, the worker that ran it stops searching and wakes the
            // other (the last searcher must), which finds nothing and spins; the first
            // parks. Waited for twice, 10 ms apart, so that the parked one is asleep
            // rather than in its last look at the queues.
            let settled = || {
                sum(&m, RuntimeMetrics::worker_search_spin_count) > spins_seen
                    && m.num_searching_workers() == 1
                    && m.num_parked_workers() == 1
            };
            // The state arises from a hand-off; should a start-up race have left both
            // workers parked without one (seen once in a CI run), running a task sets
            // the hand-off off again. The round's assertion below is unchanged.
            while !settled_within(&settled, Duration::from_secs(5)) {
                rt.block_on(rt.spawn(async {})).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
            common::wait_for("the same, 10 ms later", settled);
            spins_seen = sum(&m, RuntimeMetrics::worker_search_spin_count);
            let finds = sum(&m, RuntimeMetrics::worker_search_spin_find_count);
            rt.block_on(rt.spawn(async {})).unwrap();
            assert_eq!(
                sum(&m, RuntimeMetrics::worker_search_spin_find_count),
                finds + 1,
                "round {round}: the spinning worker did not take the injected task"
            );
        }
        // Dropping the runtime (joining its workers) ends the spin.
        drop(rt);
    });
}

/// Whether `settled` holds within `limit`, polling every 2 ms.
fn settled_within(settled: &impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !settled() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn ring_gauges_follow_an_op_in_flight() {
    with_watchdog("metrics_ring", || {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let m = rt.metrics();
        rt.block_on(async {
            let (a, b) = uringo::net::UnixStream::pair().unwrap();
            let reader = uringo::spawn(async move {
                let (n, _) = a.read(Vec::with_capacity(8)).await;
                n.unwrap()
            });
            // Wait (bounded) until the read is in the kernel.
            let deadline = Instant::now() + Duration::from_secs(10);
            while m.worker_ring_metrics(0).unwrap().in_flight == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the read never showed as in flight"
                );
                uringo::time::sleep(Duration::from_millis(1)).await;
            }
            let before = m.worker_ring_metrics(0).unwrap();
            assert!(before.submitted >= 1);
            let (res, _) = b.write_all(b"x".to_vec()).await;
            res.unwrap();
            assert_eq!(reader.await.unwrap(), 1);
            let after = m.worker_ring_metrics(0).unwrap();
            assert!(after.completions > before.completions);
        });
        assert_eq!(m.worker_ring_metrics(0).unwrap().in_flight, 0);
    });
}

const CHILD_ENV: &str = "URINGO_METRICS_SCHEDTRACE_CHILD";

/// The child prints the trace (stderr) while it runs a small workload; the parent
/// checks the lines.
#[test]
fn schedtrace_prints_well_formed_lines_at_its_interval() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let until = Instant::now() + Duration::from_millis(400);
            while Instant::now() < until {
                let tasks: Vec<_> = (0..50).map(|_| uringo::spawn(async {})).collect();
                for t in tasks {
                    t.await.unwrap();
                }
                uringo::time::sleep(Duration::from_millis(5)).await;
            }
        });
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "schedtrace_prints_well_formed_lines_at_its_interval",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("URINGO_SCHEDTRACE", "50")
        .env("URINGO_SCHEDTRACE_DETAIL", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let sched: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("SCHED "))
        .collect();
    assert!(sched.len() >= 3, "too few SCHED lines:\n{stderr}");
    let mut last_ms = 0;
    for &i in &sched {
        let line = lines[i];
        let ms: u64 = line["SCHED ".len()..line.find("ms:").expect("ms: in line")]
            .parse()
            .expect("a millisecond count");
        assert_eq!(ms % 50, 0, "{line}");
        assert!(ms > last_ms, "{line}");
        last_ms = ms;
        for field in [
            "workers=2 ",
            "searching=",
            "idle=",
            "injector=",
            "runq=[",
            "runnext=[",
            "inflight=[",
            "timers=[",
            "steals=[",
            "blocking=",
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        // The child polls all along, so every interval has timed polls.
        for field in [
            " polls=",
            "schedlat_p50=",
            "schedlat_p99=",
            "schedlat_max=",
            "polltime_p99=",
        ] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        let micros = |field: &str| -> u64 {
            let v = &line[line.find(field).unwrap() + field.len()..];
            v[..v.find("us").expect("a value in us")]
                .parse()
                .expect("a number of microseconds")
        };
        assert!(
            micros("schedlat_p50=") <= micros("schedlat_p99=")
                && micros("schedlat_p99=") <= micros("schedlat_max="),
            "percentiles out of order: {line}"
        );
        let runq = &line[line.find("runq=[").unwrap() + 6..];
        let runq = &runq[..runq.find(']').unwrap()];
        assert_eq!(runq.split(' ').count(), 2, "one entry per worker: {line}");
        assert!(lines[i + 1].starts_with("  W0: ticks="), "{}", lines[i + 1]);
        assert!(lines[i + 2].starts_with("  W1: ticks="), "{}", lines[i + 2]);
    }
}
