//! The live-task registry under load: 100 000 tasks spawned from workers and from
//! outside threads at once, completing, being joined, dropped and aborted concurrently.
//! At every quiescent point the live count and the dump must agree with what the test
//! knows it left behind.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;

use common::{wait_for, with_watchdog};
use uringo::task::{Id, TaskState};
use uringo::JoinHandle;

const SPAWNERS_OUTSIDE: usize = 2;
const SPAWNERS_INSIDE: usize = 2;
const PER_SPAWNER: usize = 25_000;

/// What a spawner left behind: handles of completed tasks nobody joined yet, and of
/// tasks that wait forever.
#[derive(Default)]
struct Leftovers {
    held: Vec<JoinHandle<u64>>,
    pending: Vec<JoinHandle<u64>>,
}

/// One spawner's script: task `i` is detached (its handle dropped at once), joined at
/// once, held (completes, joined later) or pending (never completes), in turn.
async fn script(spawn: impl Fn(u8) -> JoinHandle<u64>) -> Leftovers {
    let mut left = Leftovers::default();
    for i in 0..PER_SPAWNER {
        let handle = spawn((i % 4) as u8);
        match i % 4 {
            0 => drop(handle),
            1 => assert_eq!(handle.await.unwrap(), 1),
            2 => left.held.push(handle),
            _ => left.pending.push(handle),
        }
        if i % 1_000 == 0 {
            uringo::task::yield_now().await;
        }
    }
    left
}

async fn task(kind: u8) -> u64 {
    match kind {
        3 => std::future::pending().await,
        1 => {
            uringo::task::yield_now().await;
            1
        }
        k => u64::from(k),
    }
}

#[test]
fn the_registry_stays_consistent_under_100_000_concurrent_spawns_and_completions() {
    with_watchdog("registry_100k", || {
        let rt = uringo::Builder::new()
            .worker_threads(2)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let leftovers = Mutex::new(Vec::<Leftovers>::new());
        std::thread::scope(|s| {
            for _ in 0..SPAWNERS_OUTSIDE {
                let handle = rt.handle().clone();
                let leftovers = &leftovers;
                s.spawn(move || {
                    // Outside a runtime `yield_now` needs a task: drive the script with
                    // block_on on this thread, spawning through the handle.
                    let left = handle.block_on(script(|k| handle.spawn(task(k))));
                    leftovers.lock().unwrap().push(left);
                });
            }
            let inside: Vec<_> = (0..SPAWNERS_INSIDE)
                .map(|_| rt.spawn(script(|k| uringo::spawn(task(k)))))
                .collect();
            for spawner in inside {
                let left = rt.block_on(spawner).unwrap();
                leftovers.lock().unwrap().push(left);
            }
        });
        let leftovers = leftovers.into_inner().unwrap();
        let spawners = SPAWNERS_OUTSIDE + SPAWNERS_INSIDE;
        let total = spawners * PER_SPAWNER;
        assert_eq!(total, 100_000);

        let pending: HashSet<Id> = leftovers
            .iter()
            .flat_map(|l| l.pending.iter().map(|h| h.id()))
            .collect();
        let held: HashSet<Id> = leftovers
            .iter()
            .flat_map(|l| l.held.iter().map(|h| h.id()))
            .collect();
        assert_eq!(pending.len(), total / 4);
        assert_eq!(held.len(), total / 4);

        // Quiescent once every task but the pending ones has completed.
        let m = rt.metrics();
        wait_for("all non-pending tasks to complete", || {
            m.num_alive_tasks() == pending.len()
        });
        wait_for("the pending tasks' first poll", || {
            rt.handle()
                .dump()
                .tasks()
                .iter()
                .filter(|t| t.state() == TaskState::Idle)
                .count()
                == pending.len()
        });
        assert_eq!(m.num_unjoined_tasks(), held.len());
        let dump = rt.handle().dump();
        assert_eq!(dump.tasks().len(), pending.len() + held.len());
        for t in dump.tasks() {
            let expected = if pending.contains(&t.id()) {
                TaskState::Idle
            } else {
                assert!(held.contains(&t.id()), "unexpected task {t}");
                TaskState::Completed
            };
            assert_eq!(t.state(), expected, "{t}");
        }
        assert_eq!(
            m.spawned_tasks_count(),
            (total + SPAWNERS_INSIDE) as u64,
            "every spawn counted once"
        );

        // Join half the held tasks and drop the other half's handles, from two threads
        // at once; every entry must go.
        let (mut joined, mut dropped, mut pending_handles) = (Vec::new(), Vec::new(), Vec::new());
        for (i, l) in leftovers.into_iter().enumerate() {
            if i % 2 == 0 {
                joined.extend(l.held);
            } else {
                dropped.extend(l.held);
            }
            pending_handles.extend(l.pending);
        }
        std::thread::scope(|s| {
            let handle = rt.handle().clone();
            s.spawn(move || {
                handle.block_on(async move {
                    for h in joined {
                        assert!(h.await.unwrap() == 2);
                    }
                })
            });
            s.spawn(move || drop(dropped));
        });
        assert_eq!(m.num_alive_tasks(), pending.len());
        assert_eq!(m.num_unjoined_tasks(), 0);
        let dump = rt.handle().dump();
        assert_eq!(
            dump.tasks().len(),
            pending.len(),
            "joined or dropped entries left"
        );
        assert!(dump.tasks().iter().all(|t| pending.contains(&t.id())));

        // Abort the pending ones: the registry empties.
        for h in &pending_handles {
            h.abort();
        }
        rt.block_on(async move {
            for h in pending_handles {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        assert_eq!(m.num_alive_tasks(), 0);
        assert!(rt.handle().dump().tasks().is_empty());
    });
}
