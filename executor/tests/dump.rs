//! `Handle::dump`: exactly the scripted tasks, with their spawn locations and states.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::with_watchdog;
use uringo::task::TaskState;

/// Waits (bounded) until `f` holds.
fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn dump_lists_the_scripted_tasks_with_locations_and_states() {
    with_watchdog("dump", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        // Three tasks that were polled once and now wait: idle.
        let polled = Arc::new(AtomicUsize::new(0));
        let idle: Vec<_> = (0..3)
            .map(|_| {
                let polled = polled.clone();
                rt.spawn(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await
                })
            })
            .collect();
        wait_for("the idle tasks' first poll", || {
            polled.load(Ordering::SeqCst) == 3
        });
        // One task that holds the only worker: running.
        let (started, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let running = {
            let (started, stop) = (started.clone(), stop.clone());
            rt.spawn(async move {
                started.store(true, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            })
        };
        wait_for("the spinner to start", || started.load(Ordering::SeqCst));
        // Two tasks that cannot run while the worker spins: scheduled.
        let scheduled: Vec<_> = (0..2).map(|_| rt.spawn(async {})).collect();

        let dump = rt.handle().dump();
        stop.store(true, Ordering::SeqCst);

        assert_eq!(dump.tasks().len(), 6, "{dump:#}");
        let info = |id: uringo::task::Id| {
            let t = dump.tasks().iter().find(|t| t.id() == id);
            let t = t.unwrap_or_else(|| panic!("task {id} missing from\n{dump:#}"));
            assert!(t.spawned_at().file().ends_with("dump.rs"), "{dump:#}");
            (t.state(), t.spawned_at())
        };
        let idle_info: Vec<_> = idle.iter().map(|h| info(h.id())).collect();
        let running_info = info(running.id());
        let scheduled_info: Vec<_> = scheduled.iter().map(|h| info(h.id())).collect();
        assert!(idle_info
            .iter()
            .all(|(s, l)| *s == TaskState::Idle && *l == idle_info[0].1));
        assert_eq!(running_info.0, TaskState::Running, "{dump:#}");
        assert!(scheduled_info
            .iter()
            .all(|(s, l)| *s == TaskState::Scheduled && *l == scheduled_info[0].1));
        assert_ne!(
            idle_info[0].1, running_info.1,
            "each spawn site is its own location"
        );
        assert_ne!(running_info.1, scheduled_info[0].1);
        let ids: Vec<_> = dump.tasks().iter().map(|t| t.id()).collect();
        for h in idle.iter().chain(scheduled.iter()) {
            assert!(ids.contains(&h.id()));
        }
        assert!(ids.contains(&running.id()));

        let grouped = dump.to_string();
        assert!(
            grouped.starts_with("uringo task dump: 6 tasks"),
            "{grouped}"
        );
        let first = grouped.lines().nth(1).unwrap();
        assert!(
            first.trim_start().starts_with("3 @ ") && first.contains("[idle]"),
            "{grouped}"
        );
        let full = format!("{dump:#}");
        for h in &idle {
            assert!(full.contains(&format!("task {} [idle]", h.id())), "{full}");
        }
        rt.block_on(running).unwrap();
        for h in scheduled {
            rt.block_on(h).unwrap();
        }
        assert_eq!(
            rt.handle().dump().tasks().len(),
            3,
            "finished tasks leave the dump"
        );
        for h in idle {
            h.abort();
        }
    });
}
