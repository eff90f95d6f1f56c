//! What the runtime allocates in a steady state, counted per thread.
//!
//! - Arming a timer allocates nothing once its worker has armed timers before: the entry
//!   is a slot of the worker's, reused once the wheel and the `Sleep` have let go
//!   (`time/slots.rs`). So a burst of timers leaves no freed small chunks behind for the
//!   allocator to sort out later, on a worker, in the middle of firing other timers.
//! - A spawn allocates nothing once the worker has run as many tasks before, even when
//!   it overflows the local queue into the injector: a small task's cell is a slot the
//!   thread's magazines hold (`runtime/task/cell_pool.rs`), and queueing a task
//!   allocates nothing once the queues have held as many before. An allocation per
//!   queued task, made on the spawning worker and freed on the one that takes it, would
//!   send every such free through the spawner's malloc arena lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// Counts the allocations each thread makes.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a
// const-initialised thread-local without a destructor, so counting allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations_here() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `round` 100 times to warm the worker up, then 1 000 times, on a one-worker
/// runtime (so the task never leaves the worker's thread), and returns how many
/// allocations that thread made in the 1 000.
fn allocations_in<F: Future<Output = ()> + Send>(round: impl Fn() -> F + Send + 'static) -> u64 {
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        uringo::spawn(async move {
            for _ in 0..100 {
                round().await;
            }
            let before = allocations_here();
            for _ in 0..1_000 {
                round().await;
            }
            allocations_here() - before
        })
        .await
        .unwrap()
    })
}

#[test]
fn sleeps_that_fire_allocate_nothing_once_the_worker_is_warm() {
    let allocations = allocations_in(|| uringo::time::sleep(Duration::from_micros(50)));
    assert_eq!(allocations, 0, "1 000 sleeps allocated {allocations} times");
}

#[test]
fn sleeps_dropped_before_they_fire_allocate_nothing_once_the_worker_is_warm() {
    let allocations = allocations_in(|| async {
        // Armed by its first poll, then dropped: `timeout` around work that finishes.
        let mut sleep = pin!(uringo::time::sleep(Duration::from_secs(60)));
        poll_fn(|cx| {
            assert!(sleep.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    });
    assert_eq!(allocations, 0, "1 000 sleeps allocated {allocations} times");
}

#[test]
fn spawns_that_overflow_into_the_injector_allocate_nothing_once_the_worker_is_warm() {
    const SPAWNS: usize = 1_000;
    let allocations = allocations_in(|| async {
        // More than the 256-slot local queue holds: most of them go through the injector.
        let mut handles = Vec::with_capacity(SPAWNS);
        for _ in 0..SPAWNS {
            handles.push(uringo::spawn(async {}));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
    // Per round: the vector of handles, and nothing for the tasks.
    assert_eq!(
        allocations, 1_000,
        "1 000 rounds of {SPAWNS} spawns allocated {allocations} times, not 1 000"
    );
}
