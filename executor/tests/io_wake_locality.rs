//! A completion that arrives while every worker is parked wakes only the worker whose
//! ring holds the op: the sibling stays parked and does not steal the task away from
//! the ring its I/O lives on (the CQE is dispatched inside the owner's park, where a
//! plain push would count the owner as a sleeper still and wake the sibling).

mod common;

use std::io::Write;
use std::sync::mpsc;

use common::{wait_until_idle, HANG};

/// The index of the worker running this code, from its thread name.
fn worker_index() -> usize {
    let thread = std::thread::current();
    let name = thread.name().expect("workers are named");
    name.strip_prefix("wake-test-")
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a worker thread: {name}"))
}

#[test]
fn a_completion_during_park_wakes_only_the_ring_owner() {
    const ROUNDS: usize = 20;
    let rt = uringo::Builder::new()
        .worker_threads(2)
        .thread_name("wake-test")
        .build()
        .unwrap();
    let m = rt.metrics();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    // The task reads one byte per round and reports the worker that submitted the
    // read (whose ring holds it) and the one that ran the task once it completed.
    let (report, reports) = mpsc::channel();
    let (submitting, submitted) = mpsc::channel();
    let reader = rt.spawn(async move {
        let stream = uringo::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 1];
        for _ in 0..ROUNDS {
            submitting.send(()).unwrap();
            let owner = worker_index();
            let (n, back) = stream.read(buf).await;
            assert_eq!(n.unwrap(), 1);
            buf = back;
            report.send((owner, worker_index())).unwrap();
        }
    });
    let (mut peer, _) = listener.accept().unwrap();

    for round in 0..ROUNDS {
        submitted.recv_timeout(HANG).unwrap();
        // Both parked: the task waits on its read, nothing else is running.
        wait_until_idle(&rt);
        let unparks: Vec<u64> = (0..2).map(|w| m.worker_unpark_count(w)).collect();
        let steals: u64 = (0..2).map(|w| m.worker_steal_count(w)).sum();

        peer.write_all(b"x").unwrap();
        let (owner, ran_on) = reports.recv_timeout(HANG).unwrap();
        wait_until_idle(&rt);

        let sibling = 1 - owner;
        assert_eq!(
            ran_on, owner,
            "round {round}: the task left the worker whose ring holds its read"
        );
        assert!(
            m.worker_unpark_count(owner) > unparks[owner],
            "round {round}: the completion never woke the ring's owner"
        );
        assert_eq!(
            m.worker_unpark_count(sibling),
            unparks[sibling],
            "round {round}: the sibling was woken for a task the owner runs"
        );
        assert_eq!(
            (0..2).map(|w| m.worker_steal_count(w)).sum::<u64>(),
            steals,
            "round {round}: a task was stolen"
        );
    }
    rt.block_on(reader).unwrap();
}
