//! Handled ops (`uringo_uring::op::Handled`) through the ring's rare paths: an
//! overflowing CQ, a refused push, a lost CQE, and the drop of a ring with handled ops
//! in flight. What a handler relies on: it sees each CQE of its op exactly once, a
//! follow-up that cannot be submitted comes back to it, and its op is dropped once the
//! kernel is done with it.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::with_deadline;
use io_uring::{opcode, squeue, types};
use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled};
use uringo_uring::{Fault, Ring};

/// What the handlers of one test saw.
#[derive(Default)]
struct Seen {
    /// CQEs seen, per op index.
    cqes: Mutex<Vec<usize>>,
    /// Results of final CQEs, in order.
    results: Mutex<Vec<i32>>,
    /// Errors of follow-ups that could not be submitted.
    refused: Mutex<Vec<i32>>,
    /// Ops dropped.
    dropped: AtomicUsize,
}

/// A nop (or, with `fd`, a recv into `buf`) that notes each CQE, and whose final CQE
/// submits `follow_ups` more nops, one after the other.
struct Noted {
    index: usize,
    seen: Arc<Seen>,
    fd: Option<i32>,
    buf: Vec<u8>,
    follow_ups: usize,
}

impl Noted {
    fn nop(index: usize, seen: &Arc<Seen>) -> Noted {
        Noted {
            index,
            seen: seen.clone(),
            fd: None,
            buf: Vec::new(),
            follow_ups: 0,
        }
    }

    /// A recv of up to 16 bytes on `fd`.
    fn recv(index: usize, seen: &Arc<Seen>, fd: i32) -> Noted {
        Noted {
            index,
            seen: seen.clone(),
            fd: Some(fd),
            buf: vec![0; 16],
            follow_ups: 0,
        }
    }
}

impl Drop for Noted {
    fn drop(&mut self) {
        self.seen.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: a nop's SQE points at nothing; a recv's points into `buf`, which the op holds
// (and never resizes) until its final CQE.
unsafe impl Handled for Noted {
    fn build(&mut self) -> squeue::Entry {
        match self.fd {
            None => opcode::Nop::new().build(),
            Some(fd) => {
                opcode::Recv::new(types::Fd(fd), self.buf.as_mut_ptr(), self.buf.len() as u32)
                    .build()
            }
        }
    }

    fn on_cqe(&mut self, ring: &Dispatch<'_>, cqe: Cqe, _: u32, last: bool) {
        {
            let mut cqes = self.seen.cqes.lock().unwrap();
            if cqes.len() <= self.index {
                cqes.resize(self.index + 1, 0);
            }
            cqes[self.index] += 1;
        }
        if !last {
            return;
        }
        self.seen.results.lock().unwrap().push(cqe.result);
        if self.follow_ups > 0 {
            let mut next = Noted::nop(self.index + 1, &self.seen);
            next.follow_ups = self.follow_ups - 1;
            if let Err((op, err)) = ring.submit(next) {
                let errno = err.raw_os_error().unwrap_or(0);
                self.seen.refused.lock().unwrap().push(errno);
                drop(op);
            }
        }
    }
}

/// Turns `ring` until `done`, or fails after a while.
fn turn_until(ring: &Ring, done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        let _ = ring.park(Some(Duration::from_millis(5)));
    }
    assert!(done(), "the handlers never saw every CQE");
}

#[test]
fn every_cqe_reaches_its_handler_once_through_an_overflowing_cq() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let seen = Arc::new(Seen::default());
        ring.inject(Fault::CqOverflow);
        const OPS: usize = 64;
        for index in 0..OPS {
            assert!(submit_handled(Noted::nop(index, &seen)).is_ok());
        }
        turn_until(&ring, || seen.results.lock().unwrap().len() == OPS);
        assert_eq!(*seen.cqes.lock().unwrap(), vec![1; OPS]);
        assert_eq!(seen.dropped.load(Ordering::SeqCst), OPS);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn a_refused_push_gives_the_op_back_to_its_submitter_and_to_a_handler() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let seen = Arc::new(Seen::default());
        // From a task's side.
        ring.inject(Fault::Push(libc::ENOMEM));
        let (op, err) = submit_handled(Noted::nop(0, &seen)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOMEM));
        assert_eq!(op.index, 0, "the very op comes back");
        drop(op);
        // From a handler's: the first nop completes, its follow-up is refused. (A turn
        // first, so that the ring's own SQEs are queued and the fault hits the
        // follow-up.)
        ring.submit_and_reap().unwrap();
        let mut first = Noted::nop(0, &seen);
        first.follow_ups = 1;
        assert!(submit_handled(first).is_ok());
        ring.inject(Fault::Push(libc::ENOMEM));
        turn_until(&ring, || !seen.refused.lock().unwrap().is_empty());
        assert_eq!(*seen.refused.lock().unwrap(), vec![libc::ENOMEM]);
        // Both refused ops were handed back and dropped, and the one that ran too.
        assert_eq!(seen.dropped.load(Ordering::SeqCst), 3);
        assert_eq!(ring.in_flight(), 0);
    });
}

#[test]
fn a_lost_cqe_reaches_its_handler_as_ebadr() {
    with_deadline(|| {
        let ring = Ring::new().unwrap();
        let _enter = ring.enter();
        let seen = Arc::new(Seen::default());
        let (a, b) = UnixStream::pair().unwrap();
        let recv = Noted::recv(0, &seen, a.as_raw_fd());
        assert!(submit_handled(recv).is_ok());
        ring.submit_and_reap().unwrap();
        ring.inject(Fault::DropCqe);
        (&b).write_all(b"lost").unwrap();
        turn_until(&ring, || !seen.results.lock().unwrap().is_empty());
        assert_eq!(*seen.results.lock().unwrap(), vec![-libc::EBADR]);
        assert_eq!(*seen.cqes.lock().unwrap(), vec![1]);
        assert_eq!(seen.dropped.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_dropped_ring_ends_its_handled_ops_and_refuses_their_follow_ups() {
    with_deadline(|| {
        let seen = Arc::new(Seen::default());
        let (a, _b) = UnixStream::pair().unwrap();
        {
            let ring = Ring::new().unwrap();
            let _enter = ring.enter();
            let mut recv = Noted::recv(0, &seen, a.as_raw_fd());
            recv.follow_ups = 1;
            let op = submit_handled(recv).map_err(|(_, err)| err).unwrap();
            ring.submit_and_reap().unwrap();
            drop(op);
            // The drop cancels the recv; its handler's follow-up finds the ring closing.
        }
        assert_eq!(*seen.results.lock().unwrap(), vec![-libc::ECANCELED]);
        assert_eq!(*seen.refused.lock().unwrap(), vec![libc::ECANCELED]);
        assert_eq!(seen.dropped.load(Ordering::SeqCst), 2);
    });
}
