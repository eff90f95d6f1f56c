//! The kernel's rare failures, injected (the `fault-injection` feature, which only test
//! builds turn on): a refused enter, a refused push, a dropped CQE, an overflowing CQ, a
//! failed buffer-ring registration. For each, what a user relies on: no op is lost or
//! completed twice, no fd or buffer leaks, and the ring does not sleep while
//! completions wait in its backlog.

mod common;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{block_on_thread, poll_once, with_deadline, CountedBuf, HANG};
use uringo_uring::op::{Close, Recv, RecvMultiStream};
use uringo_uring::{BufPool, Fault, Op, Ring};

/// Receives on `n` socket pairs, one op each. Pair `i` carries `i + 1` bytes of value
/// `i`, so a completion delivered to the wrong op, or twice, cannot pass for the right
/// one.
struct Recvs {
    pairs: Vec<(UnixStream, UnixStream)>,
    ops: Vec<Option<Op<Recv<CountedBuf>>>>,
    outcomes: Vec<Option<io::Result<usize>>>,
    live: Arc<AtomicUsize>,
}

impl Recvs {
    fn new(n: usize) -> Recvs {
        let live = Arc::new(AtomicUsize::new(0));
        let pairs: Vec<_> = (0..n).map(|_| UnixStream::pair().unwrap()).collect();
        let ops = pairs
            .iter()
            .map(|(a, _)| {
                Some(Op::new(Recv::new(
                    a.as_raw_fd(),
                    CountedBuf::new(64, &live),
                )))
            })
            .collect();
        Recvs {
            pairs,
            ops,
            outcomes: (0..n).map(|_| None).collect(),
            live,
        }
    }

    fn payload(i: usize) -> Vec<u8> {
        vec![i as u8; i + 1]
    }

    /// Every peer sends its payload.
    fn send(&self) {
        for (i, (_, peer)) in self.pairs.iter().enumerate() {
            (&*peer).write_all(&Self::payload(i)).unwrap();
        }
    }

    /// Polls every op not yet complete once (the first poll submits it) and checks the
    /// bytes of each that completes.
    fn poll(&mut self) {
        for (i, slot) in self.ops.iter_mut().enumerate() {
            let Some(op) = slot else { continue };
            let Poll::Ready((result, buf)) = poll_once(op) else {
                continue;
            };
            if let Ok(n) = &result {
                assert_eq!(
                    buf.data[..*n],
                    Self::payload(i),
                    "op {i} got another's bytes"
                );
            }
            self.outcomes[i] = Some(result);
            *slot = None;
        }
    }

    fn done(&self) -> bool {
        self.ops.iter().all(Option::is_none)
    }

    /// Drives the ring until every op has completed. Errors of the ring's own calls are
    /// the injected ones; they must not stop the ops.
    fn finish(&mut self, ring: &Ring) {
        let start = Instant::now();
        loop {
            self.poll();
            if self.done() {
                return;
            }
            assert!(start.elapsed() < HANG, "ops lost: {:?}", self.pending());
            let _ = ring.park(Some(Duration::from_millis(5)));
        }
    }

    fn pending(&self) -> Vec<usize> {
        (0..self.ops.len())
            .filter(|&i| self.ops[i].is_some())
            .collect()
    }

    /// Every op completed once, with its own bytes or one of the `allowed` errors;
    /// every buffer is back; the ring holds nothing and saw no stray CQE. Returns how
    /// many ops failed.
    fn assert_clean(&self, ring: &Ring, allowed: &[i32]) -> usize {
        let mut failed = 0;
        for (i, outcome) in self.outcomes.iter().enumerate() {
            match outcome.as_ref().expect("every op completed") {
                Ok(n) => assert_eq!(*n, i + 1, "op {i}"),
                Err(err) => {
                    assert!(
                        allowed.contains(&err.raw_os_error().unwrap_or(0)),
                        "op {i}: {err}"
                    );
                    failed += 1;
                }
            }
        }
        assert_eq!(self.live.load(Ordering::SeqCst), 0, "a buffer leaked");
        assert_eq!(ring.in_flight(), 0);
        assert_eq!(ring.metrics().unknown_cqes, 0, "a CQE matched no op");
        failed
    }
}

#[test]
fn refused_enters_on_the_submit_path_lose_no_op() {
    for errno in [libc::EBUSY, libc::EAGAIN, libc::ENOMEM, libc::EINTR] {
        with_deadline(move || {
            // A 4-entry SQ: pushing 32 ops enters the kernel to make room, and those
            // enters are refused.
            let ring = Ring::builder().sq_entries(4).build().unwrap();
            let _enter = ring.enter();
            let mut recvs = Recvs::new(32);
            recvs.send();
            for _ in 0..3 {
                ring.inject(Fault::Enter(errno));
            }
            recvs.poll();
            recvs.finish(&ring);
            let failed = recvs.assert_clean(&ring, &[errno]);
            // Only ENOMEM is passed on, to each op whose push needed room; the ring
            // retries the others.
            let expected = if errno == libc::ENOMEM { 3 } else { 0 };
            assert_eq!(failed, expected, "errno {errno}");
        });
    }
}

#[test]
fn refused_enters_while_parking_lose_no_op() {
    for errno in [libc::EINTR, libc::ENOMEM] {
        with_deadline(move || {
            let ring = Ring::new().unwrap();
            let _enter = ring.enter();
            let mut recvs = Recvs::new(8);
            recvs.poll();
            ring.submit_and_reap().unwrap();
            ring.inject(Fault::Enter(errno));
            let parked = ring.park(Some(Duration::from_millis(1)));
            match errno {
                libc::EINTR => assert!(parked.is_ok(), "an interrupted park is a wake-up"),
                _ => assert_eq!(parked.unwrap_err().raw_os_error(), Some(errno)),
            }
            recvs.send();
            recvs.finish(&ring);
            assert_eq!(recvs.assert_clean(&ring, &[]), 0);
        });
    }
}

#[test]
fn a_refused_push_fails_only_its_op_and_gives_its_buffer_back() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let mut recvs = Recvs::new(4);
        ring.inject(Fault::Push(libc::ENOMEM));
        recvs.poll();
        let first = recvs.outcomes[0].as_ref().expect("failed at once");
        assert_eq!(
            first.as_ref().unwrap_err().raw_os_error(),
            Some(libc::ENOMEM)
        );
        recvs.send();
        recvs.finish(&ring);
        assert_eq!(recvs.assert_clean(&ring, &[libc::ENOMEM]), 1);
    });
}

#[test]
fn a_forced_cq_overflow_loses_no_completion() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let mut recvs = Recvs::new(64);
        recvs.send();
        ring.inject(Fault::CqOverflow);
        recvs.poll();
        ring.submit_and_reap().unwrap();
        recvs.finish(&ring);
        assert_eq!(recvs.assert_clean(&ring, &[]), 0);
        assert!(ring.metrics().cq_overflow_flushes > 0, "the CQ overflowed");
    });
}

#[test]
fn a_failed_buffer_ring_registration_fails_the_stream_and_the_next_registers() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let pool = BufPool::new(4, 64).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        ring.inject(Fault::BufRingRegister(libc::ENOMEM));
        ring.block_on(async {
            let mut stream = RecvMultiStream::new(b.as_raw_fd(), &pool);
            let first = stream.next().await.expect("the failure is reported");
            assert_eq!(first.unwrap_err().raw_os_error(), Some(libc::ENOMEM));
            assert!(stream.next().await.is_none(), "then the stream ends");
        });
        assert_eq!(pool.capacity(), 0, "nothing was registered");
        assert_eq!(ring.in_flight(), 0);
        (&a).write_all(b"after").unwrap();
        let got = ring.block_on(async {
            let mut stream = RecvMultiStream::new(b.as_raw_fd(), &pool);
            stream.next().await.unwrap().unwrap().to_vec()
        });
        assert_eq!(got, b"after");
        assert_eq!(pool.capacity(), 4, "the next op registered the pool");
        assert_eq!(pool.available(), pool.capacity(), "every buffer is back");
    });
}

/// A pipe whose read end says whether every write end is closed: `read` returns 0 (EOF)
/// then, and EAGAIN while one is open. Unlike an fd number, which another test's thread
/// may reuse at once, this cannot be fooled.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh fds into `fds`.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
        0
    );
    // SAFETY: both are fresh fds nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn write_end_closed(read: &OwnedFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into a live u8.
    let n = unsafe { libc::read(read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
    n == 0
}

#[test]
fn a_close_that_never_reaches_the_kernel_still_closes_its_fd() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let (read, write) = pipe();
        ring.inject(Fault::Push(libc::ENOMEM));
        let closed = ring.block_on(async { Close::new(write).await });
        assert!(write_end_closed(&read), "the fd leaked");
        assert!(closed.is_ok(), "the fd was closed all the same: {closed:?}");
    });
}

#[test]
fn a_close_from_another_thread_that_never_reaches_the_kernel_still_closes_its_fd() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let (read, write) = pipe();
        let handle = ring.handle();
        ring.inject(Fault::Push(libc::ENOMEM));
        let closer = std::thread::spawn(move || {
            let _fallback = uringo_uring::set_fallback(handle);
            block_on_thread(async { Close::new(write).await })
        });
        let start = Instant::now();
        while !closer.is_finished() {
            assert!(start.elapsed() < HANG);
            let _ = ring.park(Some(Duration::from_millis(5)));
        }
        let closed = closer.join().unwrap();
        assert!(write_end_closed(&read), "the fd leaked");
        assert!(closed.is_ok(), "the fd was closed all the same: {closed:?}");
    });
}

/// Wakes `ring` from a thread without a ring (so through the eventfd) once its owner is
/// asleep in the kernel.
fn wake_when_parked(ring: &Ring) -> std::thread::JoinHandle<()> {
    let handle = ring.handle();
    std::thread::spawn(move || {
        while !handle.is_parked() {
            std::thread::yield_now();
        }
        handle.waker().wake();
    })
}

#[test]
fn a_failed_eventfd_rearm_loses_no_wake_from_another_thread() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        // The first wake arrives; re-arming the eventfd read after it is refused.
        ring.inject(Fault::Push(libc::ENOMEM));
        let waker = wake_when_parked(&ring);
        ring.park(None).unwrap();
        waker.join().unwrap();
        assert_eq!(ring.metrics().kicks_eventfd, 1);
        // The second must arrive as well: the park ends with the eventfd's CQE, not
        // with its timeout (which would dispatch nothing).
        let waker = wake_when_parked(&ring);
        let dispatched = ring.park(Some(Duration::from_secs(10))).unwrap();
        waker.join().unwrap();
        assert_eq!(ring.metrics().kicks_eventfd, 2);
        assert!(dispatched >= 1, "the ring slept through a wake");
    });
}

/// Wakes a ring that is still asleep after `after`, which a test must never need: a ring
/// sleeping with work to do would otherwise sleep until its timeout or forever.
struct Watchdog {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn new(ring: &Ring, after: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let waker = ring.waker();
        let thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while start.elapsed() < after {
                    if done.load(Ordering::SeqCst) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                waker.wake();
                true
            })
        };
        Watchdog { done, thread }
    }

    /// Whether the ring needed waking.
    fn fired(self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn a_refused_enter_while_parking_does_not_sleep_on_the_completions_it_set_aside() {
    for errno in [libc::EBUSY, libc::EAGAIN] {
        with_deadline(move || {
            let ring = Ring::new().unwrap();
            let _enter = ring.enter();
            let mut recvs = Recvs::new(1);
            recvs.poll();
            ring.submit_and_reap().unwrap();
            // The completion now waits in the kernel: the refused enter posts it, and the
            // ring moves it to its backlog to make room.
            recvs.send();
            ring.inject(Fault::Enter(errno));
            let watchdog = Watchdog::new(&ring, Duration::from_secs(10));
            let dispatched = ring.park(None).unwrap();
            assert!(
                !watchdog.fired(),
                "errno {errno}: parked with a completion in the backlog"
            );
            assert_eq!(dispatched, 1);
            recvs.poll();
            assert_eq!(recvs.assert_clean(&ring, &[]), 0);
        });
    }
}

#[test]
fn an_op_whose_cqe_the_kernel_dropped_still_completes_once() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let mut recvs = Recvs::new(8);
        recvs.poll();
        ring.submit_and_reap().unwrap();
        // Op 0 receives its bytes, and the kernel drops its CQE.
        ring.inject(Fault::DropCqe);
        (&recvs.pairs[0].1).write_all(&Recvs::payload(0)).unwrap();
        for _ in 0..100 {
            let _ = ring.park(Some(Duration::from_millis(10)));
            recvs.poll();
            if recvs.done() {
                break;
            }
        }
        assert!(recvs.done(), "ops never completed: {:?}", recvs.pending());
        // The lost completion is reported as such; the ring cancelled the others to
        // find it, and they say so.
        let lost = recvs.outcomes[0].as_ref().unwrap().as_ref().unwrap_err();
        assert_eq!(lost.raw_os_error(), Some(libc::EBADR));
        assert_eq!(
            recvs.assert_clean(&ring, &[libc::EBADR, libc::ECANCELED]),
            8
        );
        assert_eq!(ring.metrics().lost_cqes, 1);
        // The ring still works, and is still woken from other threads.
        let waker = wake_when_parked(&ring);
        assert!(ring.park(Some(Duration::from_secs(10))).unwrap() >= 1);
        waker.join().unwrap();
        let mut again = Recvs::new(2);
        again.send();
        again.poll();
        again.finish(&ring);
        assert_eq!(again.assert_clean(&ring, &[]), 0);
    });
}

#[test]
fn dropping_a_ring_with_a_dropped_cqe_neither_waits_out_its_timeout_nor_leaks() {
    with_deadline(|| {
        let (ring, mut recvs) = ring_with_recvs_in_flight(Duration::from_secs(30), 4);
        let handle = ring.handle();
        ring.inject(Fault::DropCqe);
        (&recvs.pairs[0].1).write_all(&Recvs::payload(0)).unwrap();
        drop(ring);
        // Past its timeout the ring would have leaked the op rather than free its
        // buffer under the kernel; it must have found it instead.
        assert_eq!(handle.metrics().leaked_ops, 0, "the drop leaked the op");
        recvs.poll();
        assert!(recvs.done());
        let lost = recvs.outcomes[0].as_ref().unwrap().as_ref().unwrap_err();
        assert_eq!(lost.raw_os_error(), Some(libc::EBADR));
        assert_eq!(recvs.live.load(Ordering::SeqCst), 0, "a buffer leaked");
    });
}

/// A ring with `n` recvs in flight on sockets nobody writes to, about to be dropped.
fn ring_with_recvs_in_flight(drop_timeout: Duration, n: usize) -> (Ring, Recvs) {
    let ring = Ring::builder().drop_timeout(drop_timeout).build().unwrap();
    let mut recvs = Recvs::new(n);
    {
        let _enter = ring.enter();
        recvs.poll();
    }
    ring.submit_and_reap().unwrap();
    assert_eq!(ring.in_flight(), n);
    (ring, recvs)
}

#[test]
fn dropping_a_ring_whose_cancel_is_refused_cancels_all_the_same() {
    with_deadline(|| {
        let (ring, mut recvs) = ring_with_recvs_in_flight(Duration::from_secs(30), 8);
        let handle = ring.handle();
        ring.inject(Fault::Push(libc::ENOMEM));
        drop(ring);
        assert_eq!(handle.metrics().leaked_ops, 0, "the drop leaked its ops");
        recvs.poll();
        assert!(recvs.done());
        for outcome in &recvs.outcomes {
            let err = outcome.as_ref().unwrap().as_ref().unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
        }
        assert_eq!(recvs.live.load(Ordering::SeqCst), 0, "a buffer leaked");
    });
}

#[test]
fn dropping_a_ring_whose_enters_are_refused_retries_them() {
    for errno in [libc::ENOMEM, libc::EAGAIN, libc::EINTR] {
        with_deadline(move || {
            let (ring, mut recvs) = ring_with_recvs_in_flight(Duration::from_secs(30), 8);
            let handle = ring.handle();
            for _ in 0..3 {
                ring.inject(Fault::Enter(errno));
            }
            drop(ring);
            assert_eq!(
                handle.metrics().leaked_ops,
                0,
                "errno {errno}: the drop leaked its ops"
            );
            recvs.poll();
            assert!(recvs.done());
            assert_eq!(recvs.live.load(Ordering::SeqCst), 0, "a buffer leaked");
        });
    }
}

#[test]
fn a_ring_that_cannot_reach_the_kernel_when_dropped_leaks_rather_than_frees() {
    with_deadline(|| {
        let (ring, mut recvs) = ring_with_recvs_in_flight(Duration::from_millis(50), 4);
        let handle = ring.handle();
        for _ in 0..100_000 {
            ring.inject(Fault::Enter(libc::ENOMEM));
        }
        drop(ring);
        // The kernel may still write into the buffers: they must outlive the ring.
        assert_eq!(handle.metrics().leaked_ops, 4);
        assert_eq!(
            recvs.live.load(Ordering::SeqCst),
            4,
            "a buffer the kernel holds was freed"
        );
        recvs.poll();
        assert!(!recvs.done(), "a leaked op never completes");
    });
}
