//! `Handle::spawn_on`: a placed task's first poll runs on the chosen worker, whatever
//! the other workers are doing, so the I/O it starts is on that worker's ring.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{wait_for, with_watchdog};
use uringo::net::TcpSocket;
use uringo::Builder;

/// The index in the name of the worker thread running the caller.
fn worker_index() -> usize {
    let name = std::thread::current().name().unwrap_or_default().to_owned();
    let index = name.rsplit('-').next().unwrap_or_default();
    index
        .parse()
        .unwrap_or_else(|_| panic!("not on a worker: {name}"))
}

#[test]
fn a_placed_task_is_first_polled_on_its_worker() {
    with_watchdog("placed", || {
        let rt = Builder::new().worker_threads(3).build().unwrap();
        for round in 0..20 {
            for worker in 0..3 {
                let ran_on = rt.block_on(rt.handle().spawn_on(worker, async { worker_index() }));
                assert_eq!(ran_on.unwrap(), worker, "round {round}");
            }
        }
    });
}

#[test]
fn a_placed_task_waits_for_its_busy_worker_rather_than_run_elsewhere() {
    with_watchdog("placed busy", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let busy_started = Arc::new(AtomicBool::new(false));
        // Worker 1 is stuck in one poll until released; worker 0 is idle and would
        // happily take anything stealable.
        let blocker = {
            let (release, started) = (release.clone(), busy_started.clone());
            rt.handle().spawn_on(1, async move {
                started.store(true, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            })
        };
        wait_for("the blocker to run", || busy_started.load(Ordering::SeqCst));
        let placed_ran = Arc::new(AtomicBool::new(false));
        let placed = {
            let ran = placed_ran.clone();
            rt.handle().spawn_on(1, async move {
                ran.store(true, Ordering::SeqCst);
                worker_index()
            })
        };
        // Plenty of chances for worker 0 to take it, if it could.
        for _ in 0..50 {
            rt.block_on(rt.spawn(async { uringo::task::yield_now().await }))
                .unwrap();
        }
        assert!(
            !placed_ran.load(Ordering::SeqCst),
            "the placed task ran before its worker was free"
        );
        release.store(true, Ordering::SeqCst);
        rt.block_on(blocker).unwrap();
        assert_eq!(rt.block_on(placed).unwrap(), 1);
    });
}

#[test]
fn one_reuseport_listener_per_worker_is_armed_on_each_workers_ring() {
    with_watchdog("reuseport", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let m = rt.metrics();
        let baseline: Vec<u64> = (0..2)
            .map(|w| m.worker_ring_metrics(w).unwrap().in_flight)
            .collect();
        let first = TcpSocket::new_v4().unwrap();
        first.set_reuseport(true).unwrap();
        first.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let mut sockets = vec![first];
        let second = TcpSocket::new_v4().unwrap();
        second.set_reuseport(true).unwrap();
        second.bind(addr).unwrap();
        sockets.push(second);
        let acceptors: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(worker, socket)| {
                rt.handle().spawn_on(worker, async move {
                    let listener = socket.listen(128).unwrap();
                    let (_stream, _) = listener.accept().await.unwrap();
                    worker_index()
                })
            })
            .collect();
        // Each worker's ring holds its own listener's multishot accept.
        wait_for("an accept in flight on each ring", || {
            (0..2).all(|w| m.worker_ring_metrics(w).unwrap().in_flight > baseline[w])
        });
        for acceptor in &acceptors {
            acceptor.abort();
        }
        for acceptor in acceptors {
            assert!(rt.block_on(acceptor).unwrap_err().is_cancelled());
        }
    });
}

#[test]
#[should_panic(expected = "worker 2 does not exist")]
fn placing_on_a_worker_that_does_not_exist_panics() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    drop(rt.handle().spawn_on(2, async {}));
}

/// Never completes; counts its drop.
struct Forever(Arc<std::sync::atomic::AtomicUsize>);

impl std::future::Future for Forever {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn placed_tasks_pending_at_shutdown_are_cancelled_and_dropped() {
    with_watchdog("placed shutdown", || {
        let rt = Builder::new().worker_threads(2).build().unwrap();
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Some are polled before shutdown, some are still in an inbox: all must end.
        let handles: Vec<_> = (0..64)
            .map(|i| rt.handle().spawn_on(i % 2, Forever(drops.clone())))
            .collect();
        drop(rt);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            64,
            "a placed future was leaked"
        );
        for handle in handles {
            let mut handle = std::pin::pin!(handle);
            let out = std::future::Future::poll(
                handle.as_mut(),
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
            );
            assert!(
                matches!(out, std::task::Poll::Ready(Err(ref e)) if e.is_cancelled()),
                "{out:?}"
            );
        }
    });
}
