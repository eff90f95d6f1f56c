//! Ring behaviour: wake-ups, reaping without blocking, overflow, cross-thread ops, drop.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{block_on_thread, poll_once, CountedBuf};
use uringo_uring::op::{Nop, Recv};
use uringo_uring::{Op, Ring};

/// Generous bound for "this must not hang" loops; never a performance threshold.
const HANG: Duration = Duration::from_secs(20);

#[test]
fn reports_setup_flags() {
    let ring = Ring::new().unwrap();
    let f = ring.features();
    eprintln!("ring features on this kernel: {f}");
    assert!(f.cq_entries >= 2 * f.sq_entries, "CQ sized for networking");
}

#[test]
fn too_small_cq_is_rejected_with_a_clear_error() {
    let err = Ring::builder()
        .sq_entries(64)
        .cq_entries(64)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("at least 128"), "{err}");
}

#[test]
fn parked_ring_is_woken_from_a_foreign_thread() {
    let ring = Ring::new().unwrap();
    let waker = ring.waker();
    let handle = ring.handle();
    let t = std::thread::spawn(move || {
        // Wait until the owner is really asleep, then wake it.
        while !handle.is_parked() {
            std::thread::yield_now();
        }
        waker.wake();
    });
    // No timeout: only the wake can end this park.
    ring.park(None).unwrap();
    t.join().unwrap();
    let m = ring.metrics();
    assert_eq!(
        m.kicks_eventfd, 1,
        "a thread without a ring wakes through the eventfd"
    );
    assert_eq!(m.kicks_msg_ring, 0);
}

#[test]
fn parked_ring_is_woken_from_another_ring() {
    let ring = Ring::new().unwrap();
    let handle = ring.handle();
    let t = std::thread::spawn(move || {
        let own = Ring::new().unwrap();
        let _enter = own.enter();
        while !handle.is_parked() {
            std::thread::yield_now();
        }
        handle.waker().wake();
    });
    ring.park(None).unwrap();
    t.join().unwrap();
    let m = ring.metrics();
    assert_eq!(
        m.kicks_msg_ring, 1,
        "a thread with a ring wakes with MSG_RING"
    );
    assert_eq!(m.kicks_eventfd, 0);
}

#[test]
fn wakes_while_running_coalesce_into_a_token() {
    let ring = Ring::new().unwrap();
    let waker = ring.waker();
    for _ in 0..1000 {
        waker.wake();
    }
    let m = ring.metrics();
    assert_eq!(m.wake_requests, 1000);
    assert_eq!(
        m.kicks_eventfd + m.kicks_msg_ring,
        0,
        "the owner was awake: no syscall"
    );
    // The token makes the next park return without sleeping...
    ring.park(None).unwrap();
    assert_eq!(ring.metrics().parks, 0);
    // ...and is consumed: a short park now really sleeps (and times out).
    ring.park(Some(Duration::from_millis(1))).unwrap();
    assert_eq!(ring.metrics().parks, 1);
}

#[test]
fn submit_and_reap_alone_delivers_completions() {
    // A busy worker never parks; the completion must still arrive through the
    // non-blocking reap (with DEFER_TASKRUN that needs an enter with GETEVENTS).
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let (a, b) = UnixStream::pair().unwrap();
    let mut op = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
    assert!(poll_once(&mut op).is_pending());
    ring.submit_and_reap().unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        (&b).write_all_std(b"hi");
        b
    })
    .join()
    .unwrap();
    let start = std::time::Instant::now();
    while !op.is_complete() {
        assert!(
            start.elapsed() < HANG,
            "completion never reaped without parking"
        );
        ring.submit_and_reap().unwrap();
    }
    let std::task::Poll::Ready((n, buf)) = poll_once(&mut op) else {
        panic!("complete op not ready")
    };
    assert_eq!(n.unwrap(), 2);
    assert_eq!(buf, b"hi");
    assert_eq!(ring.metrics().parks, 0);
}

#[test]
fn has_events_says_when_a_reap_would_find_a_completion() {
    // A worker spinning before it parks polls `has_events` instead of entering the
    // kernel: it must turn true when a completion is pending and false once reaped.
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let (a, b) = UnixStream::pair().unwrap();
    let mut op = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
    assert!(poll_once(&mut op).is_pending());
    ring.submit_and_reap().unwrap();
    assert!(!ring.has_events(), "nothing is pending yet");
    (&b).write_all_std(b"hi");
    let start = std::time::Instant::now();
    while !ring.has_events() {
        assert!(start.elapsed() < HANG, "a pending completion never showed");
        std::hint::spin_loop();
    }
    assert!(!op.is_complete(), "seen, not yet reaped");
    ring.submit_and_reap().unwrap();
    assert!(op.is_complete());
    assert!(!ring.has_events(), "everything was reaped");
}

trait WriteAllStd {
    fn write_all_std(self, data: &[u8]);
}
impl WriteAllStd for &UnixStream {
    fn write_all_std(mut self, data: &[u8]) {
        std::io::Write::write_all(&mut self, data).unwrap();
    }
}

#[test]
fn tiny_cq_forced_to_overflow_loses_no_completion() {
    let ring = Ring::builder()
        .sq_entries(4)
        .cq_entries(4)
        .allow_small_cq(true)
        .build()
        .unwrap();
    let _enter = ring.enter();
    // Submit 1000 nops without reaping: the SQ (4) is submitted each time it fills, the
    // CQ (4) overflows into the kernel's buffer.
    let mut ops: Vec<_> = (0..1000).map(|_| Op::new(Nop::new())).collect();
    for op in &mut ops {
        assert!(poll_once(op).is_pending());
    }
    assert!(ring.metrics().sq_full_submits > 0);
    let start = std::time::Instant::now();
    while ring.in_flight() > 0 {
        assert!(
            start.elapsed() < HANG,
            "{} completions lost",
            ring.in_flight()
        );
        ring.submit_and_reap().unwrap();
    }
    for op in &mut ops {
        assert!(matches!(poll_once(op), std::task::Poll::Ready(Ok(()))));
    }
    let m = ring.metrics();
    assert!(m.cq_overflow_flushes > 0, "the CQ really overflowed: {m:?}");
    assert!(m.completions >= 1000);
}

#[test]
fn op_awaited_on_another_thread_is_completed_by_the_owner() {
    // Invariant 1: the task moves, the op stays. Submit on the ring's thread, then hand
    // the future to a thread with no ring; the owner's reap must wake that thread.
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let (a, b) = UnixStream::pair().unwrap();
    let mut op = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
    assert!(poll_once(&mut op).is_pending());
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let (n, buf) = block_on_thread(op);
        tx.send(()).unwrap();
        (n.unwrap(), buf)
    });
    (&b).write_all_std(b"moved");
    let start = std::time::Instant::now();
    while rx.try_recv().is_err() {
        assert!(start.elapsed() < HANG);
        ring.park(Some(Duration::from_millis(10))).unwrap();
    }
    let (n, buf) = waiter.join().unwrap();
    assert_eq!(n, 5);
    assert_eq!(buf, b"moved");
}

#[test]
fn thread_without_a_ring_submits_through_the_mailbox() {
    let ring = Ring::new().unwrap();
    let handle = ring.handle();
    let (a, b) = UnixStream::pair().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _fallback = uringo_uring::set_fallback(handle);
        block_on_thread(async { Nop::new().await }).unwrap();
        let (n, buf) =
            block_on_thread(async { Recv::new(a.as_raw_fd(), Vec::with_capacity(8)).await });
        done_tx.send(()).unwrap();
        (n.unwrap(), buf)
    });
    let start = std::time::Instant::now();
    let mut wrote = false;
    while done_rx.try_recv().is_err() {
        assert!(start.elapsed() < HANG, "remote submission never completed");
        ring.park(Some(Duration::from_millis(10))).unwrap();
        if !wrote && ring.metrics().remote_submits == 2 {
            (&b).write_all_std(b"remote");
            wrote = true;
        }
    }
    let (n, buf) = t.join().unwrap();
    assert_eq!(n, 6);
    assert_eq!(buf, b"remote");
    assert_eq!(ring.metrics().remote_submits, 2);
}

#[test]
fn op_dropped_on_another_thread_is_cancelled_through_the_mailbox() {
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let (a, _b) = UnixStream::pair().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let mut op = Op::new(Recv::new(a.as_raw_fd(), CountedBuf::new(8, &live)));
    assert!(poll_once(&mut op).is_pending());
    std::thread::spawn(move || drop(op)).join().unwrap();
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "the kernel still owns the buffer"
    );
    let start = std::time::Instant::now();
    while ring.in_flight() > 0 {
        assert!(start.elapsed() < HANG);
        ring.park(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "freed at the CQE");
    assert_eq!(ring.metrics().cancels, 1);
}

#[test]
fn dropping_10_000_pending_recvs_then_the_ring_leaks_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let (a, b) = UnixStream::pair().unwrap();
    {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let mut ops: Vec<_> = (0..10_000)
            .map(|_| Op::new(Recv::new(a.as_raw_fd(), CountedBuf::new(64, &live))))
            .collect();
        for op in &mut ops {
            assert!(poll_once(op).is_pending());
        }
        ring.submit_and_reap().unwrap();
        assert_eq!(ring.in_flight(), 10_000);
        drop(ops);
        assert_eq!(
            live.load(Ordering::SeqCst),
            10_000,
            "no buffer may be freed while the kernel holds it"
        );
    }
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "every buffer freed once its CQE arrived"
    );
    drop((a, b));
}

#[test]
fn dropping_the_ring_completes_pending_waiters_with_ecanceled() {
    let live = Arc::new(AtomicUsize::new(0));
    let (a, _b) = UnixStream::pair().unwrap();
    let ring = Ring::new().unwrap();
    let handle = ring.handle();
    let enter = ring.enter();
    let mut op = Op::new(Recv::new(a.as_raw_fd(), CountedBuf::new(64, &live)));
    assert!(poll_once(&mut op).is_pending());
    drop(enter);
    drop(ring);
    assert!(handle.is_closed());
    assert_eq!(handle.metrics().leaked_ops, 0);
    let std::task::Poll::Ready((res, buf)) = poll_once(&mut op) else {
        panic!("op still pending after its ring was dropped")
    };
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(
        live.load(Ordering::SeqCst),
        1,
        "the waiter got its buffer back"
    );
    drop(buf);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn submitting_to_a_dropped_ring_fails_cleanly() {
    let ring = Ring::new().unwrap();
    let handle = ring.handle();
    drop(ring);
    let err = std::thread::spawn(move || {
        let _fallback = uringo_uring::set_fallback(handle);
        block_on_thread(async { Nop::new().await })
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
}

#[test]
fn dropping_a_ring_with_every_kind_of_op_in_flight_cancels_them_all_and_frees_nothing_early() {
    use uringo_uring::op::{AcceptMulti, PollAdd, ReadAt, RecvMultiStream, Timeout};
    let live = Arc::new(AtomicUsize::new(0));
    let (a, _b) = UnixStream::pair().unwrap();
    let (pipe_read, _pipe_write) = UnixStream::pair().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pool = uringo_uring::BufPool::new(4, 64).unwrap();
    let ring = Ring::builder()
        .drop_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = ring.handle();
    let enter = ring.enter();
    let mut recv = Op::new(Recv::new(a.as_raw_fd(), CountedBuf::new(64, &live)));
    let mut read = Op::new(ReadAt::new(
        pipe_read.as_raw_fd(),
        CountedBuf::new(64, &live),
        0,
    ));
    let mut poll = Op::new(PollAdd::new(a.as_raw_fd(), libc::POLLIN as u32));
    let mut timeout = Op::new(Timeout::new(Duration::from_secs(3600)));
    let mut accepts = AcceptMulti::new(listener.as_raw_fd());
    let mut stream = RecvMultiStream::new(a.as_raw_fd(), &pool);
    let noop = &mut std::task::Context::from_waker(std::task::Waker::noop());
    assert!(poll_once(&mut recv).is_pending());
    assert!(poll_once(&mut read).is_pending());
    assert!(poll_once(&mut poll).is_pending());
    assert!(poll_once(&mut timeout).is_pending());
    assert!(accepts.poll_next(noop).is_pending());
    assert!(stream.poll_next(noop).is_pending());
    ring.submit_and_reap().unwrap();
    assert_eq!(ring.in_flight(), 6);
    drop(enter);
    drop(ring);
    assert_eq!(handle.metrics().leaked_ops, 0, "an op outlived the drop");
    assert_eq!(
        live.load(Ordering::SeqCst),
        2,
        "the waiters own their buffers again"
    );
    let canceled = |r: std::io::Result<usize>| r.unwrap_err().raw_os_error();
    let std::task::Poll::Ready((r, buf)) = poll_once(&mut recv) else {
        panic!("recv still pending")
    };
    assert_eq!(canceled(r), Some(libc::ECANCELED));
    drop(buf);
    let std::task::Poll::Ready((r, buf)) = poll_once(&mut read) else {
        panic!("read still pending")
    };
    assert_eq!(canceled(r), Some(libc::ECANCELED));
    drop(buf);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert!(poll_once(&mut poll).is_ready());
    assert!(poll_once(&mut timeout).is_ready());
    assert!(matches!(accepts.poll_next(noop), std::task::Poll::Ready(_)));
    assert!(matches!(stream.poll_next(noop), std::task::Poll::Ready(_)));
    assert_eq!(pool.capacity(), 0, "the buffer ring was unregistered");
}
