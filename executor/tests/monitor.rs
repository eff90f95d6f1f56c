//! The monitor thread (Go's sysmon): a worker stuck inside one poll loses its queued
//! work to a sibling.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::with_watchdog;
use uringo::Builder;

const SPIN: Duration = Duration::from_millis(200);

/// A task wakes a second task into its worker's runnext slot, then spins without
/// yielding. Without the monitor the second task would wait the whole spin; with it,
/// it starts on the other worker long before.
#[test]
fn a_task_behind_a_stuck_poll_runs_elsewhere() {
    with_watchdog("stuck_worker", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let m = rt.metrics();
        let (delay, spinner_thread, runner_thread) = rt.block_on(async {
            uringo::spawn(async {
                let started = Arc::new(Mutex::new(None));
                let t0 = Instant::now();
                // Spawned from a worker: it goes to this worker's runnext slot.
                let second = uringo::spawn({
                    let started = started.clone();
                    async move {
                        *started.lock().unwrap() = Some(t0.elapsed());
                        std::thread::current().name().map(str::to_owned)
                    }
                });
                let spinner = std::thread::current().name().map(str::to_owned);
                while t0.elapsed() < SPIN {
                    std::hint::spin_loop();
                }
                let runner = second.await.unwrap();
                let delay = started.lock().unwrap().expect("the second task ran");
                (delay, spinner, runner)
            })
            .await
            .unwrap()
        });
        assert!(
            delay < SPIN * 3 / 4,
            "the task behind the stuck poll started after {delay:?} (spin: {SPIN:?})"
        );
        assert_ne!(spinner_thread, runner_thread, "it ran on the other worker");
        let stuck: u64 = (0..2).map(|w| m.worker_stuck_poll_count(w)).sum();
        let retaken: u64 = (0..2).map(|w| m.worker_retaken_count(w)).sum();
        assert!(stuck >= 1, "the monitor saw the stuck poll");
        assert!(retaken >= 1, "the monitor moved the runnext task");
        eprintln!("runnext task started after {delay:?} behind a {SPIN:?} stuck poll");
    });
}

/// A poll that keeps spawning while it spins refills its runnext slot after every
/// retake. The monitor hands out the first at once and then backs off, as it does in
/// quiet rounds: retaking every 20 µs for the whole poll would move one task per round
/// at the price of two context switches each, on the cores the runtime is using. The
/// spawned tasks still all run, on the other worker while the poll lasts.
#[test]
fn a_stuck_poll_that_keeps_spawning_is_not_retaken_every_round() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    with_watchdog("stuck_spawner", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let m = rt.metrics();
        let ran = Arc::new(AtomicUsize::new(0));
        let (spawned, ran_during) = rt.block_on({
            let ran = ran.clone();
            async move {
                uringo::spawn(async move {
                    let t0 = Instant::now();
                    let mut handles = Vec::new();
                    while t0.elapsed() < SPIN {
                        let ran = ran.clone();
                        handles.push(uringo::spawn(async move {
                            ran.fetch_add(1, Ordering::Relaxed);
                        }));
                        let pause = Instant::now();
                        while pause.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                    }
                    let ran_during = ran.load(Ordering::Relaxed);
                    let spawned = handles.len();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                    (spawned, ran_during)
                })
                .await
                .unwrap()
            }
        });
        assert_eq!(
            ran.load(Ordering::Relaxed),
            spawned,
            "every spawned task ran"
        );
        assert!(
            ran_during > 0,
            "tasks ran on the other worker during the poll"
        );
        let retaken: u64 = (0..2).map(|w| m.worker_retaken_count(w)).sum();
        // Backing off to half the 10 ms threshold, a 200 ms poll sees a few dozen rounds;
        // retaking every 20 µs was thousands.
        assert!(
            (1..200).contains(&retaken),
            "{retaken} retakes during one {SPIN:?} poll that spawned {spawned} tasks"
        );
        eprintln!("{spawned} spawned, {ran_during} ran during the poll, {retaken} retakes");
    });
}

/// With the monitor off, the same task waits for the spin to end: the test above is
/// measuring the monitor, not luck.
#[test]
fn without_the_monitor_the_task_waits_for_the_spin() {
    with_watchdog("stuck_worker_off", || {
        let rt = Builder::new()
            .worker_threads(2)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let delay = rt.block_on(async {
            uringo::spawn(async {
                let t0 = Instant::now();
                let second = uringo::spawn(async move { t0.elapsed() });
                while t0.elapsed() < SPIN {
                    std::hint::spin_loop();
                }
                second.await.unwrap()
            })
            .await
            .unwrap()
        });
        assert!(delay >= SPIN, "started after {delay:?}");
    });
}

/// `block_in_place` hands the worker's queue (runnext included) to its sibling before
/// blocking. The monitor is off, so nothing else could rescue the runnext task.
#[test]
fn block_in_place_keeps_the_queued_tasks_running() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    with_watchdog("block_in_place", || {
        let rt = Builder::new()
            .worker_threads(2)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let (done_during_block, total) = rt.block_on(async {
            uringo::spawn(async {
                let done = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..20)
                    .map(|_| {
                        let done = done.clone();
                        uringo::spawn(async move {
                            done.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                    .collect();
                let during = uringo::task::block_in_place(|| {
                    // Wait (bounded) for the queued tasks to run elsewhere.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while done.load(Ordering::SeqCst) < 20 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    done.load(Ordering::SeqCst)
                });
                for t in tasks {
                    t.await.unwrap();
                }
                (during, done.load(Ordering::SeqCst))
            })
            .await
            .unwrap()
        });
        assert_eq!(total, 20);
        assert_eq!(
            done_during_block, 20,
            "queued tasks waited for the blocking call"
        );
    });
}

#[test]
fn block_in_place_outside_a_worker_just_runs() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    assert_eq!(rt.block_on(async { uringo::task::block_in_place(|| 7) }), 7);
    assert_eq!(uringo::task::block_in_place(|| 8), 8);
}
