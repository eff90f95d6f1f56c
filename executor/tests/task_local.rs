//! Task-local storage (`uringo::task_local!`, `task::LocalKey`): a value set by
//! `scope` is seen on every poll of that future, on whichever worker polls it, by that
//! future alone; scopes nest; the value is dropped when the scope ends.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use common::{poll_then_move, runtime, with_watchdog, DropCounter, Tracked};
use uringo::task::yield_now;

uringo::task_local! {
    static REQUEST: u64;
    static NAME: String;
    static GUARD: Tracked;
}

/// `REQUEST`'s value here, or `None` outside its scopes.
fn request() -> Option<u64> {
    REQUEST.try_get().ok()
}

#[test]
fn a_value_is_seen_across_awaits_and_after_the_future_changes_worker() {
    with_watchdog("moved future", || {
        let rt = runtime(2);
        let seen = poll_then_move(&rt, || {
            REQUEST.scope(7, async {
                let before = request();
                yield_now().await;
                (before, request())
            })
        });
        assert_eq!(seen, (Some(7), Some(7)), "before and after the move");
    });
}

#[test]
fn values_follow_stolen_tasks_and_never_leak_into_others() {
    with_watchdog("stolen tasks", || {
        let rt = runtime(2);
        // One task spawns scoped and unscoped children onto its own worker's queue; each
        // checks what it sees after every yield and reports the threads it ran on.
        // Uneven amounts of work leave one worker idle while the other still holds
        // half-run tasks, which it steals. A round that happens to steal none is run
        // again.
        let mut moved = false;
        for _round in 0..20 {
            let threads: Vec<HashSet<ThreadId>> = rt
                .block_on(rt.spawn(async {
                    let children: Vec<_> = (0..32u64)
                        .map(|i| {
                            let work = async move {
                                let expected = (i % 2 == 0).then_some(i);
                                let mut threads = HashSet::new();
                                for _ in 0..8 + i % 13 {
                                    for n in 0..(i % 5 + 1) * 5_000 {
                                        std::hint::black_box(n);
                                    }
                                    assert_eq!(request(), expected, "task {i}");
                                    threads.insert(std::thread::current().id());
                                    yield_now().await;
                                }
                                assert_eq!(request(), expected, "task {i}");
                                threads.insert(std::thread::current().id());
                                threads
                            };
                            if i % 2 == 0 {
                                uringo::spawn(async move { REQUEST.scope(i, work).await })
                            } else {
                                uringo::spawn(work)
                            }
                        })
                        .collect();
                    let mut threads = Vec::new();
                    for child in children {
                        threads.push(child.await.unwrap());
                    }
                    threads
                }))
                .unwrap();
            if threads.iter().step_by(2).any(|t| t.len() > 1) {
                moved = true;
                break;
            }
        }
        assert!(moved, "no scoped task ever ran on both workers");
    });
}

#[test]
fn nested_scopes_shadow_and_restore_the_outer_value() {
    with_watchdog("nested", || {
        let rt = runtime(1);
        rt.block_on(rt.spawn(async {
            REQUEST
                .scope(1, async {
                    assert_eq!(request(), Some(1));
                    REQUEST
                        .scope(2, async {
                            yield_now().await;
                            assert_eq!(request(), Some(2));
                            assert_eq!(REQUEST.sync_scope(3, request), Some(3));
                            assert_eq!(request(), Some(2));
                        })
                        .await;
                    yield_now().await;
                    assert_eq!(request(), Some(1));
                    // Another key's scope leaves this one alone.
                    NAME.scope("n".to_string(), async {
                        assert_eq!((request(), NAME.get()), (Some(1), "n".to_string()));
                    })
                    .await;
                })
                .await;
            assert_eq!(request(), None);
        }))
        .unwrap();
    });
}

#[test]
fn reading_outside_a_scope_is_an_error_and_with_panics() {
    assert_eq!(
        REQUEST.try_with(|v| *v).unwrap_err().to_string(),
        "task-local value not set"
    );
    assert!(NAME.try_get().is_err());
    NAME.sync_scope("set".into(), || {
        assert!(
            REQUEST.try_get().is_err(),
            "another key's scope does not set it"
        )
    });
    let panic = std::panic::catch_unwind(|| REQUEST.with(|v| *v)).unwrap_err();
    let message = panic.downcast_ref::<&str>().unwrap();
    assert!(message.contains("outside a scope"), "{message}");
}

#[test]
fn the_value_is_dropped_when_its_scope_ends() {
    with_watchdog("drop at end", || {
        let rt = runtime(2);
        let live = DropCounter::new();
        let tracked = live.track();
        let count = live.clone();
        rt.block_on(rt.spawn(async move {
            GUARD
                .scope(tracked, async {
                    yield_now().await;
                    assert_eq!(count.live(), 1, "alive inside the scope");
                })
                .await;
            assert_eq!(count.live(), 0, "dropped as soon as the scope's future is");
        }))
        .unwrap();
    });
}

#[test]
fn an_aborted_scope_drops_its_future_inside_the_scope_then_the_value() {
    with_watchdog("drop on abort", || {
        let rt = runtime(2);
        let live = DropCounter::new();
        /// Records, when dropped, whether `GUARD` was set and how many values lived.
        struct SeesGuard(DropCounter, Arc<Mutex<Option<(bool, usize)>>>);
        impl Drop for SeesGuard {
            fn drop(&mut self) {
                *self.1.lock().unwrap() = Some((GUARD.try_with(|_| ()).is_ok(), self.0.live()));
            }
        }
        let seen = Arc::new(Mutex::new(None));
        let sees = SeesGuard(live.clone(), seen.clone());
        let task = rt.spawn(GUARD.scope(live.track(), async move {
            let _sees = sees;
            std::future::pending::<()>().await
        }));
        task.abort();
        assert!(rt.block_on(task).unwrap_err().is_cancelled());
        assert_eq!(
            *seen.lock().unwrap(),
            Some((true, 1)),
            "the future's destructor ran inside the scope, the value still alive"
        );
        assert_eq!(live.live(), 0, "then the value was dropped");
    });
}

#[test]
fn a_task_panicking_inside_a_scope_leaves_the_worker_without_its_value() {
    with_watchdog("panic in scope", || {
        // One worker: the next task runs on the thread the panic unwound through.
        let rt = runtime(1);
        let err = rt
            .block_on(rt.spawn(REQUEST.scope(9, async {
                yield_now().await;
                panic!("inside the scope")
            })))
            .unwrap_err();
        assert!(err.is_panic());
        let after = rt.block_on(rt.spawn(async { request() })).unwrap();
        assert_eq!(after, None);
        let panic = std::panic::catch_unwind(|| REQUEST.sync_scope(1, || panic!("sync")));
        assert!(panic.is_err());
        assert_eq!(request(), None, "sync_scope restores on unwind too");
    });
}
