//! # uringo: Go's scheduler on io_uring
//!
//! uringo runs Rust futures the way Go runs goroutines, on I/O that completes instead of
//! becoming ready. This comment is the map; each module says more.
//!
//! ## The pieces, in Go's words
//!
//! * A **task** (Go's G) is one allocation holding a state word, a vtable, the future
//!   and later its output (`runtime/task/`; [`task`] is its public face); a small one
//!   gets cache lines of its own, from per-thread magazines (`runtime/task/cell_pool.rs`).
//!   Its state word (`runtime/task/state.rs`) decides every race — poll versus wake
//!   versus abort versus shutdown — in one atomic step, and counts its references.
//! * A **worker** (Go's M *and* P: uringo never separates them) is a thread that owns
//!   an io_uring ring and a run queue: a 256-slot ring buffer that only it pushes to and
//!   that siblings steal half of (`scheduler/queue.rs`), plus a *runnext* slot for the
//!   task spawned or woken by the task that is running.
//! * The **injector** (Go's global run queue) takes tasks spawned or woken from outside
//!   the workers, and the overflow of a full local queue.
//!
//! ## The scheduling loop (`scheduler/worker/`)
//!
//! Go's `findrunnable`, with the netpoller replaced by the worker's own completion queue:
//! every 61 ticks the injector first (fairness); then the local queue; then a batch from
//! the injector; then the ring is reaped without blocking, which wakes the tasks whose
//! I/O completed into this worker's queue; then half of a random sibling's queue is
//! stolen; then, if it is the searching worker, it spins for a few µs watching for a
//! sibling's hand-off (Go's spinning M, backing off when it rarely catches one); and
//! only then does the worker park — in its ring, with one `io_uring_enter` that also
//! submits whatever its tasks queued. Every 61 ticks the ring is reaped even when the
//! queue is full, so completions are never starved. `scheduler/worker/mod.rs` opens
//! with the whole argument, including the fairness bound: a task at the back of a
//! worker's queue is polled within 261 of that worker's ticks.
//!
//! The loop runs over a small `Driver` trait (`scheduler/driver.rs`: reap, park,
//! has-events, unpark): io_uring in production, a loom stand-in so that loom checks the
//! loop itself (`loom/model.rs` lists the models), and a seeded simulated kernel that
//! runs thousands of schedules of the real loop in `cargo test`
//! (`scheduler/sim/`). The observability the loop feeds — counters, histograms,
//! per-poll timing, trace probes, the stuck-poll monitor — sits behind one door,
//! `observe/stats.rs`.
//!
//! ## Invariants
//!
//! 1. **A task may move; its in-flight operation may not.** An op goes to the ring of
//!    the worker that polls it; if the task is stolen, that ring's owner still reaps the
//!    CQE and wakes the task wherever it is (completion cells, in `uringo-uring`).
//! 2. **The kernel owns a buffer from submission to CQE.** Dropping a future mid-op
//!    cancels the op and frees the buffer at the CQE, never before.
//! 3. **Only the owner submits.** Other threads hand work to a ring through its mailbox.
//! 4. **Wake-ups across rings** are MSG_RING from worker to worker, an eventfd write
//!    from other threads.
//! 5. **One enter per tick** at most: submission and reaping share a syscall.
//! 6. **No lost wake-up.** A worker announces it is going to sleep before its last look
//!    at the queues; a producer that sees a sleeper wakes it (`scheduler/idle.rs`).
//! 7. **Fairness, with a stated bound.** runnext is capped at 3 consecutive polls, the
//!    injector is visited every 61 ticks, each task poll has a budget of 128 units that
//!    uringo's own futures consume (`runtime/coop.rs`), and a task that yields, spends
//!    its budget or wakes itself goes to the back of its worker's queue behind a share
//!    of the injector, where siblings can steal it and the monitor can rescue it.
//! 8. **Bad input gets a clear error, never a hang or UB**: io_uring unavailable is an
//!    error that names the cause and the fix; a panicking task is a `JoinError`, never a
//!    dead worker.
//!
//! ## Shutdown
//!
//! Dropping the [`Runtime`] closes the injector and the task registry, wakes every
//! worker; each cancels the tasks it can reach (dropping their futures, which cancels
//! their I/O), drops its queue and then its ring, which waits for the kernel to return
//! every buffer. Blocking threads are waited for up to a timeout.
//!
//! ## Seeing what the scheduler does
//!
//! [`RuntimeMetrics`] counts, and keeps two log-scale histograms per worker: scheduling
//! latency (wake to poll, Go's `/sched/latencies`) and poll time, fed like Go's by a
//! random sample of the polls (one in 8, each timed with the time-stamp counter:
//! `observe/clock.rs`; [`Builder::poll_timing_sample`] sets the share,
//! [`Builder::poll_timing`] turns it off). `URINGO_SCHEDTRACE=<ms>` prints Go-style `SCHED` lines, with the
//! interval's `schedlat_p99`; `URINGO_TRACE=<path>` (or [`Builder::trace_recorder`])
//! records every spawn, poll, wake, steal and park and writes `<path>.json` for Perfetto
//! and `<path>.html`, a self-contained zoomable timeline ([`trace`] explains the format
//! and the cost; `docs/timeline.png` shows one). [`Builder::on_task_spawn`] and its
//! siblings hook task spawn, termination and polls.
//!
//! ## Finding what is stuck or leaking
//!
//! [`Handle::dump`] lists every live task — id, [name](task::Builder::name), spawn
//! location, state, the worker it last ran on, its age and time since its last poll, and
//! the uringo op, timer or join handle it waits on — grouped by spawn location like Go's
//! `goroutine?debug=1`, or one line per task with `{:#}`. It reads the sharded task
//! registry that shutdown needs anyway and stamps the scheduler leaves in each task
//! header, so it costs nothing until taken; `URINGO_DUMP_ON=SIGUSR1` prints it on a
//! signal. Completed tasks whose `JoinHandle` never took the output stay listed;
//! [`Builder::task_count_warning`] logs the busiest spawn locations when live tasks pass
//! a mark.
//!
//! ## Groups of tasks, task-local values
//!
//! [`task::JoinSet`] owns a group of tasks and yields their outputs as they finish
//! (O(1) per finished task); dropping it aborts the ones still running.
//! [`task_local!`] declares [`task::LocalKey`]s: `KEY.scope(value, future)` makes
//! `value` visible to everything `future` runs, on whichever worker polls it (each poll
//! swaps it into that thread's slot and back out).
//!
//! ```
//! uringo::task_local! {
//!     static REQUEST_ID: u64;
//! }
//!
//! # let rt = uringo::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let mut set = uringo::task::JoinSet::new();
//!     for id in 0..3 {
//!         set.spawn(REQUEST_ID.scope(id, async {
//!             uringo::task::yield_now().await;
//!             REQUEST_ID.get() * 10
//!         }));
//!     }
//!     let mut outputs = set.join_all().await;
//!     outputs.sort();
//!     assert_eq!(outputs, [0, 10, 20]);
//! });
//! ```
//!
//! ## Channels, locks, `select!`: bring your own
//!
//! uringo ships no channel, lock or `select!` of its own: the runtime-agnostic ones
//! work on it, since all they need from an executor is a [`Waker`](std::task::Waker),
//! and uringo's wakers work from any thread (a worker, `block_on`, a plain thread,
//! another runtime). Each family below has a test file that runs it on uringo with no
//! tokio runtime in the process:
//!
//! | crate | what | test |
//! |---|---|---|
//! | `tokio` (features `sync`, `macros`) | `sync::{mpsc, oneshot, Mutex, Semaphore, Notify, watch, Barrier}` | `tests/interop_tokio_sync.rs` |
//! | `tokio` (feature `macros`) | `select!`, with uringo I/O, timers and join handles as branches; the losing branch's op is cancelled | `tests/interop_tokio_select.rs` |
//! | `futures` | `join_all`, `select`, `FuturesUnordered`, `StreamExt`, `futures-channel` | `tests/interop_futures.rs` |
//! | `tokio-util` | `sync::CancellationToken`, `task::TaskTracker` (track with `uringo::spawn(tracker.track_future(f))`) | `tests/interop_tokio_util.rs` |
//!
//! What needs a tokio runtime does not work here: `tokio::spawn`, `tokio::time`,
//! `tokio::net`, `TaskTracker::spawn`; use uringo's own [`spawn`], [`time`] and
//! [`net`]. For tokio's I/O traits, see `compat` (feature `tokio-io`).
//!
//! ```
//! use std::time::Duration;
//!
//! # let rt = uringo::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let (tx, mut rx) = tokio::sync::mpsc::channel(8);
//!     uringo::spawn(async move {
//!         for i in 0..3 {
//!             tx.send(i).await.unwrap();
//!         }
//!     });
//!     let mut deadline = std::pin::pin!(uringo::time::sleep(Duration::from_secs(60)));
//!     let mut got = Vec::new();
//!     loop {
//!         tokio::select! {
//!             msg = rx.recv() => match msg {
//!                 Some(i) => got.push(i),
//!                 None => break,
//!             },
//!             () = &mut deadline => panic!("nothing for a minute"),
//!         }
//!     }
//!     assert_eq!(got, [0, 1, 2]);
//! });
//! ```
//!
//! ## Example
//!
//! ```
//! use uringo::net::{TcpListener, TcpStream};
//!
//! #[uringo::main(worker_threads = 2)]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     uringo::spawn(async move {
//!         loop {
//!             let (stream, _) = listener.accept().await.unwrap();
//!             uringo::spawn(async move {
//!                 let mut buf = Vec::with_capacity(4096);
//!                 loop {
//!                     let (n, b) = stream.read(buf).await;
//!                     match n {
//!                         Ok(0) | Err(_) => return,
//!                         Ok(_) => {}
//!                     }
//!                     let (res, b) = stream.write_all(b).await;
//!                     if res.is_err() {
//!                         return;
//!                     }
//!                     buf = b;
//!                     buf.clear();
//!                 }
//!             });
//!         }
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     let (res, _) = client.write_all(b"hello".to_vec()).await;
//!     res?;
//!     let (n, buf) = client.read(Vec::with_capacity(16)).await;
//!     assert_eq!(&buf[..n?], b"hello");
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

#[cfg(any(feature = "tokio-io", feature = "futures-io", feature = "hyper"))]
pub mod compat;
pub mod fs;
pub mod io;
mod loom;
pub mod net;
mod observe;
mod runtime;
mod scheduler;
pub mod signal;
pub mod task;
pub mod time;
pub mod trace;

pub use runtime::{
    Builder, DurationHistogram, EnterGuard, Handle, Runtime, RuntimeMetrics, TryCurrentError,
};
pub use task::{spawn, spawn_blocking, JoinError, JoinHandle};
pub use trace::TaskMeta;
pub use uringo_macros::{main, test};
pub use uringo_uring::KernelFeature;

/// Owned buffers for I/O (the kernel holds them while an operation is in flight).
pub mod buf {
    pub use uringo_uring::{IoBuf, IoBufMut, Slice};
}
