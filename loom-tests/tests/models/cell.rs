//! Completion cells (`uring/src/cell.rs`): where a CQE meets the future waiting for it.
//! The op's data (the buffer the kernel writes) is released exactly once, and only after
//! the final CQE, whoever goes last: the waiter that takes the output, the waiter that
//! drops the future (orphan), or the owner's CQE after an orphan.
//!
//! The buffer is a loom cell that the "kernel" (the owner thread, just before it reaps
//! the CQE) writes and that releasing the data writes too, so loom flags any release
//! not ordered after the kernel's write.
//!
//! Mutation `orphan_check` (the orphaning waiter releases the data without checking
//! COMPLETE) frees a buffer the kernel still writes.

use std::sync::Arc as StdArc;
use std::task::{Context, Poll};

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::SeqCst;
use uringo_loom_tests::{model, CountingWaker};
use uringo_uring::__loom::{Completion, OpCell};
use uringo_uring::op::Operation;
use uringo_uring::Cqe;

/// The buffer's memory, shared by the op's data and the "kernel".
struct Mem(UnsafeCell<u8>);

// SAFETY: every access goes through loom's cell, which checks that accesses from
// different threads are ordered (that is what the models test).
unsafe impl Sync for Mem {}

impl Mem {
    fn with_mut<R>(&self, f: impl FnOnce(*mut u8) -> R) -> R {
        self.0.with_mut(f)
    }

    fn with<R>(&self, f: impl FnOnce(*const u8) -> R) -> R {
        self.0.with(f)
    }
}

/// An op's data: a buffer the kernel writes, released exactly once.
struct Buf {
    mem: Arc<Mem>,
    released: Arc<AtomicUsize>,
}

impl Drop for Buf {
    fn drop(&mut self) {
        // Freeing the buffer is a write to it as far as the kernel is concerned.
        self.mem.with_mut(|p| {
            // SAFETY: loom checks this access is exclusive and ordered after the kernel's.
            unsafe { *p = 0 }
        });
        self.released.fetch_add(1, SeqCst);
    }
}

// SAFETY: the SQE carries no pointers (a NOP); the "kernel" of the models writes `mem`
// through its own handle.
unsafe impl Operation for Buf {
    type Output = u8;

    fn build(&mut self) -> io_uring::squeue::Entry {
        io_uring::opcode::Nop::new().build()
    }

    fn complete(self, _cqe: Cqe) -> u8 {
        self.mem.with(|p| {
            // SAFETY: loom checks the kernel's write happens-before this read.
            unsafe { *p }
        })
    }

    fn orphaned(self, _cqe: Cqe) {}
}

struct Setup {
    cell: StdArc<OpCell<Buf>>,
    kernel: Arc<Mem>,
    released: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let kernel = Arc::new(Mem(UnsafeCell::new(0u8)));
    let released = Arc::new(AtomicUsize::new(0));
    let cell = StdArc::new(OpCell::new(Buf {
        mem: kernel.clone(),
        released: released.clone(),
    }));
    Setup {
        cell,
        kernel,
        released,
    }
}

/// The ring owner: the kernel fills the buffer, then the owner reaps the final CQE.
fn spawn_owner(cell: StdArc<OpCell<Buf>>, kernel: Arc<Mem>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        kernel.with_mut(|p| {
            // SAFETY: the kernel owns the buffer until the CQE (loom checks it).
            unsafe { *p = 7 }
        });
        drop(kernel);
        cell.complete(
            Cqe {
                result: 1,
                flags: 0,
            },
            true,
        );
    })
}

#[test]
fn orphan_racing_the_cqe_releases_exactly_once() {
    model(|| {
        let s = setup();
        let owner = spawn_owner(s.cell.clone(), s.kernel);
        s.cell.orphan();
        owner.join().unwrap();
        assert_eq!(s.released.load(SeqCst), 1);
    });
}

#[test]
fn cqe_racing_a_poll_wakes_the_waiter() {
    model(|| {
        let s = setup();
        let owner = spawn_owner(s.cell.clone(), s.kernel);
        let out = loom::future::block_on(std::future::poll_fn(|cx| s.cell.poll_complete(cx)));
        assert_eq!(out, 7);
        owner.join().unwrap();
        assert_eq!(s.released.load(SeqCst), 1);
    });
}

/// The future is polled on one worker, then its task is stolen and the future dropped
/// on another, while the owner reaps the CQE: the data is released once, after the CQE.
#[test]
fn poll_then_drop_on_another_thread_vs_cqe() {
    model(|| {
        let s = setup();
        let owner = spawn_owner(s.cell.clone(), s.kernel);
        let first = {
            let cell = s.cell.clone();
            thread::spawn(move || {
                let (waker, _count) = CountingWaker::new();
                cell.poll_complete(&mut Context::from_waker(&waker))
            })
        };
        match first.join().unwrap() {
            Poll::Ready(out) => assert_eq!(out, 7),
            // The task moved to this thread, which drops the future.
            Poll::Pending => {
                s.cell.orphan();
            }
        }
        owner.join().unwrap();
        assert_eq!(s.released.load(SeqCst), 1);
    });
}
