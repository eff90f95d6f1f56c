//! tokio-util's `CancellationToken` and `TaskTracker` on uringo, with no tokio runtime:
//! cancellation reaches uringo tasks wherever it comes from, and `TaskTracker::wait`
//! returns once every task spawned with `uringo::spawn(tracker.track_future(..))` ends.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{runtime, wait_until_idle, with_watchdog, HANG};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[test]
fn cancelling_from_a_plain_thread_stops_every_child_task() {
    with_watchdog("cancel", || {
        let rt = runtime(2);
        let root = CancellationToken::new();
        let stopped = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (token, stopped) = (root.child_token(), stopped.clone());
                rt.spawn(async move {
                    // No tokio runtime is behind any of this.
                    assert!(tokio::runtime::Handle::try_current().is_err());
                    tokio::select! {
                        () = token.cancelled() => stopped.fetch_add(1, Ordering::SeqCst),
                        () = uringo::time::sleep(HANG) => panic!("never cancelled"),
                    };
                })
            })
            .collect();
        wait_until_idle(&rt);
        let from_thread = root.clone();
        std::thread::spawn(move || from_thread.cancel())
            .join()
            .unwrap();
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert_eq!(stopped.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn a_cancelled_child_leaves_its_parent_running() {
    with_watchdog("child", || {
        let rt = runtime(2);
        rt.block_on(async {
            let parent = CancellationToken::new();
            let child = parent.child_token();
            let waiter = uringo::spawn({
                let child = child.clone();
                async move { child.cancelled().await }
            });
            child.cancel();
            waiter.await.unwrap();
            assert!(!parent.is_cancelled());

            let out = parent
                .run_until_cancelled(async {
                    uringo::time::sleep(Duration::from_millis(1)).await;
                    "finished"
                })
                .await;
            assert_eq!(out, Some("finished"));
        });
    });
}

#[test]
fn task_tracker_waits_for_every_tracked_uringo_task() {
    with_watchdog("tracker", || {
        let rt = runtime(2);
        let tracker = TaskTracker::new();
        let done = Arc::new(AtomicUsize::new(0));
        let release = CancellationToken::new();
        rt.block_on(async {
            for i in 0..10u64 {
                let (done, release) = (done.clone(), release.clone());
                uringo::spawn(tracker.track_future(async move {
                    release.cancelled().await;
                    uringo::time::sleep(Duration::from_micros(10 * i)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }));
            }
        });
        tracker.close();
        assert_eq!(tracker.len(), 10);
        let waiter = rt.spawn({
            let tracker = tracker.clone();
            async move { tracker.wait().await }
        });
        // Every task, the waiter included, is parked: `wait` has not returned early.
        wait_until_idle(&rt);
        assert!(!waiter.is_finished());

        release.cancel();
        rt.block_on(waiter).unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 10);
        assert!(tracker.is_empty());
    });
}
