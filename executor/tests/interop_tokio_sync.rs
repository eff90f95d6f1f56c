//! `tokio::sync` on uringo, with no tokio runtime: mpsc, oneshot, Mutex, Semaphore,
//! Notify, watch (and Barrier) wake uringo tasks, including a task parked on one worker woken from
//! a thread that is no worker of its runtime (a plain thread, or another runtime's).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{runtime, wait_until_idle, with_watchdog};
use tokio::sync::{mpsc, oneshot, watch, Barrier, Mutex, Notify, Semaphore};

#[test]
fn mpsc_carries_every_message_and_wakes_a_parked_receiver_from_a_plain_thread() {
    with_watchdog("mpsc", || {
        let rt = runtime(2);
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        // Capacity 1: the producers wait on the channel as well as the consumer.
        for p in 0..4u32 {
            let tx = tx.clone();
            rt.spawn(async move {
                for i in 0..25 {
                    tx.send(p * 100 + i).await.unwrap();
                    uringo::task::yield_now().await;
                }
            });
        }
        drop(tx);
        let mut got = rt.block_on(async {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        got.sort_unstable();
        let want: Vec<u32> = (0..4)
            .flat_map(|p| (0..25).map(move |i| p * 100 + i))
            .collect();
        assert_eq!(got, want);

        let (tx, mut rx) = mpsc::unbounded_channel::<&str>();
        let receiver = rt.spawn(async move { rx.recv().await });
        wait_until_idle(&rt);
        std::thread::spawn(move || tx.send("from a plain thread").unwrap())
            .join()
            .unwrap();
        assert_eq!(rt.block_on(receiver).unwrap(), Some("from a plain thread"));
    });
}

#[test]
fn oneshot_wakes_a_task_from_another_runtimes_worker() {
    with_watchdog("oneshot", || {
        let (a, b) = (runtime(1), runtime(1));
        let (tx, rx) = oneshot::channel::<u64>();
        let waiter = a.spawn(rx);
        wait_until_idle(&a);
        b.block_on(b.spawn(async move { tx.send(42).unwrap() }))
            .unwrap();
        assert_eq!(a.block_on(waiter).unwrap(), Ok(42));

        // A dropped sender closes the channel.
        let (tx, rx) = oneshot::channel::<u64>();
        let waiter = a.spawn(rx);
        drop(tx);
        assert!(a.block_on(waiter).unwrap().is_err());
    });
}

#[test]
fn mutex_held_across_awaits_serialises_tasks_on_every_worker() {
    with_watchdog("mutex", || {
        let rt = runtime(2);
        let counter = Arc::new(Mutex::new(0u32));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let counter = counter.clone();
                rt.spawn(async move {
                    for _ in 0..50 {
                        let mut guard = counter.lock().await;
                        let seen = *guard;
                        // Held across a yield and a timer: others must wait for it.
                        uringo::task::yield_now().await;
                        uringo::time::sleep(Duration::from_micros(10)).await;
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
            assert_eq!(*counter.lock().await, 400);
        });
    });
}

#[test]
fn semaphore_bounds_how_many_tasks_run_at_once() {
    with_watchdog("semaphore", || {
        let rt = runtime(2);
        let permits = Arc::new(Semaphore::new(2));
        // Each permit holder waits for a second one: two must run at once, and the
        // count shows whether a third ever got in.
        let pair = Arc::new(Barrier::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (permits, pair) = (permits.clone(), pair.clone());
                let (running, most) = (running.clone(), most.clone());
                rt.spawn(async move {
                    let _permit = permits.acquire().await.unwrap();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    pair.wait().await;
                    uringo::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(permits.available_permits(), 2);
    });
}

#[test]
fn notify_wakes_parked_tasks_from_a_plain_thread() {
    with_watchdog("notify", || {
        let rt = runtime(2);
        let notify = Arc::new(Notify::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let notify = notify.clone();
                rt.spawn(async move { notify.notified().await })
            })
            .collect();
        wait_until_idle(&rt);
        let from_thread = notify.clone();
        std::thread::spawn(move || from_thread.notify_waiters())
            .join()
            .unwrap();
        rt.block_on(async {
            for waiter in waiters {
                waiter.await.unwrap();
            }
        });

        // A permit stored before anyone waits is taken by the next waiter.
        notify.notify_one();
        rt.block_on(notify.notified());
    });
}

#[test]
fn watch_receivers_on_two_runtimes_see_the_latest_value_sent_from_a_plain_thread() {
    with_watchdog("watch", || {
        let (a, b) = (runtime(2), runtime(1));
        let (tx, rx) = watch::channel(0u32);
        let watcher = |mut rx: watch::Receiver<u32>| async move {
            while *rx.borrow_and_update() < 3 {
                rx.changed().await.unwrap();
            }
            *rx.borrow()
        };
        let on_a = a.spawn(watcher(rx.clone()));
        let on_b = b.spawn(watcher(rx));
        wait_until_idle(&a);
        wait_until_idle(&b);
        // The sender lives on: the watchers see values, not a closed channel.
        let _tx = std::thread::spawn(move || {
            for v in 1..=3 {
                tx.send(v).unwrap();
            }
            tx
        })
        .join()
        .unwrap();
        assert_eq!(a.block_on(on_a).unwrap(), 3);
        assert_eq!(b.block_on(on_b).unwrap(), 3);
    });
}
