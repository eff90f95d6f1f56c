//! What every loom model uses: the model runner, a counting waker, and a runtime built
//! the way `Runtime::new` builds one, whose workers run the real scheduling loop over
//! [`LoomDriver`](super::LoomDriver).
//!
//! # Running the models
//!
//! The models live next to the code they check, in `#[cfg(all(test, loom))]` modules
//! (`scheduler/queue/loom.rs`, `scheduler/inject/loom.rs`, `scheduler/idle/loom.rs`,
//! `scheduler/worker/loom.rs`, `runtime/task/loom.rs`, `time/loom.rs`), so they use
//! the crate's internals as they are, with no re-exports:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 \
//!   cargo test --release -p uringo --lib -- loom::
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` bounds how many times loom preempts a runnable thread in one
//! execution (unset: [`DEFAULT_PREEMPTIONS`]); `.ci/run` gives each family its bound.
//! `.ci/loom-mutations` plants each deliberate bug (`crate::loom::mutation!`) in turn
//! and checks that its model fails.
//!
//! # What the whole-loop models cover
//!
//! `scheduler/worker/loom.rs` runs `Worker::run` itself, on loom threads: runnext,
//! yields and the budget, timers on the worker's wheel, stealing, the search spin (one
//! look: see `LoomDriver`), parking and its wake-ups, shutdown. What stays out of reach:
//! the kernel (SQE submission, CQE delivery, `MSG_RING`, eventfd: the driver's
//! `reap` finds nothing and the models' "completions" are wakes from other threads;
//! `uringo-uring` models its completion cells and park token on their own), the
//! monitor thread (loom cannot run a free-running thread beside its own), more than two
//! workers, and deeper preemption bounds than CI can afford.

use std::future::Future;
use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};
use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::sync::Arc;
use super::LoomDriver;
use crate::runtime::context;
use crate::runtime::task::{Id, JoinHandle, Notified};
use crate::scheduler::driver::Driver;
use crate::scheduler::queue::{self, Local};
use crate::scheduler::worker::{Worker, WorkerContext};
use crate::scheduler::{Config, Shared};
use crate::time::clock::{Clock, ManualClock};

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set. Every planted bug
/// is found within it.
pub(crate) const DEFAULT_PREEMPTIONS: usize = 2;

/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`, or
/// [`DEFAULT_PREEMPTIONS`] when unset (an unbounded search of most models would not
/// finish).
pub(crate) fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.check(f);
}

/// Task id `n`. Models pass fixed ids: the global counter behind `Id::next` would change
/// the registry shard a task lands in from one execution to the next.
pub(crate) fn task_id(n: u64) -> Id {
    Id::from_u64(n)
}

/// A waker that counts its wakes in a loom atomic, so a model can assert how often a
/// waiter was woken and loom orders the count like any other shared access.
pub(crate) struct CountingWaker {
    wakes: AtomicUsize,
}

impl CountingWaker {
    /// A fresh waker (as a `Waker`) and the handle to read its count.
    pub(crate) fn new() -> (Waker, StdArc<CountingWaker>) {
        let counter = StdArc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
        });
        (Waker::from(counter.clone()), counter)
    }

    /// How many times the waker was woken.
    pub(crate) fn wakes(&self) -> usize {
        self.wakes.load(SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: StdArc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

/// A runtime's shared state with `workers` run queues, as `Runtime::new` builds it,
/// except for its clock (manual, moved by the loom drivers) and per-poll timing (off:
/// it reads the TSC).
pub(crate) fn runtime(workers: usize) -> (Arc<Shared>, Vec<Local<Notified>>) {
    runtime_with(workers, Config::default())
}

/// [`runtime`] with `config` (per-poll timing is switched off whatever it says).
pub(crate) fn runtime_with(workers: usize, config: Config) -> (Arc<Shared>, Vec<Local<Notified>>) {
    let (locals, steals): (Vec<_>, Vec<_>) = (0..workers).map(|_| queue::local()).unzip();
    let config = Config {
        poll_timing: None,
        search_spin: std::time::Duration::from_micros(5),
        ..config
    };
    let clock = Clock::Manual(StdArc::new(ManualClock::new(Instant::now())));
    (Arc::new(Shared::new(steals, config, clock)), locals)
}

/// The loom driver for a worker of `shared`.
pub(crate) fn driver(shared: &Shared) -> LoomDriver {
    match &shared.clock {
        Clock::Manual(clock) => LoomDriver::new(clock.clone()),
        Clock::System => unreachable!("model runtimes run on a manual clock"),
    }
}

/// Starts worker `index` on a loom thread: the real loop (`Worker::run`) over a loom
/// driver, with the thread registered as that worker, as `worker_main` does. The
/// driver's unparker is registered before the thread starts, as `Runtime::new` waits
/// for every worker's before it hands the runtime out: a shutdown can then never miss
/// a worker that has not started yet.
pub(crate) fn start_worker(
    shared: &Arc<Shared>,
    index: usize,
    local: Local<Notified>,
) -> loom::thread::JoinHandle<()> {
    let shared = shared.clone();
    let driver = registered_driver(&shared, index);
    loom::thread::spawn(move || {
        as_worker_with(&shared, index, local, driver, |worker| worker.run());
    })
}

/// A loom driver for worker `index`, already registered as the way to unpark it.
pub(crate) fn registered_driver(shared: &Shared, index: usize) -> LoomDriver {
    let driver = driver(shared);
    let _ = shared.remotes[index].unpark.set(driver.unparker());
    driver
}

/// Runs `f` on this (loom) thread registered as worker `index` of `shared`, with the
/// worker's loop ready to drive.
pub(crate) fn as_worker<R>(
    shared: &Arc<Shared>,
    index: usize,
    local: Local<Notified>,
    f: impl FnOnce(&mut Worker<'_, LoomDriver>) -> R,
) -> R {
    as_worker_with(shared, index, local, registered_driver(shared, index), f)
}

fn as_worker_with<R>(
    shared: &Arc<Shared>,
    index: usize,
    local: Local<Notified>,
    driver: LoomDriver,
    f: impl FnOnce(&mut Worker<'_, LoomDriver>) -> R,
) -> R {
    let cx = WorkerContext::new(shared.clone(), index, local);
    let mut worker = Worker::new(&cx, driver);
    let _worker = context::set_worker(&cx);
    f(&mut worker)
}

/// `Handle::spawn` with a fixed task id (see [`task_id`]): from a worker of `shared`
/// the task goes to that worker's queues, from any other thread to the injector.
#[track_caller]
pub(crate) fn spawn<F>(shared: &Arc<Shared>, id: u64, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::scheduler::schedule::spawn_with_id(shared, task_id(id), future)
}

/// The runtime's shutdown after the workers have stopped (`Runtime::shut_down`).
pub(crate) fn finish_shutdown(shared: &Shared) {
    shared.owned.close_and_shutdown_all();
    shared.drain_orphaned_queues();
}
