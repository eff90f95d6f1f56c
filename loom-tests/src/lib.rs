//! Loom model checks of uringo's concurrent core, run over the real code.
//!
//! Built only with `RUSTFLAGS="--cfg loom"`; see `README.md` for how to run the models
//! and what each one proves. Without `cfg(loom)` this crate is empty.

#![cfg(loom)]
#![warn(missing_docs)]

use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set. Every bug the
/// mutations plant is found within it (README.md); CI sets it explicitly.
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// Runs `f` under loom with the preemption bound from `LOOM_MAX_PREEMPTIONS`, or
/// [`DEFAULT_PREEMPTIONS`] when unset (an unbounded search of most models would not
/// finish).
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.check(f);
}

/// A waker that counts its wakes in a loom atomic, so a model can assert how often a
/// waiter was woken and loom orders the count like any other shared access.
pub struct CountingWaker {
    wakes: AtomicUsize,
}

impl CountingWaker {
    /// A fresh waker (as a `Waker`) and the handle to read its count.
    pub fn new() -> (Waker, StdArc<CountingWaker>) {
        let counter = StdArc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
        });
        (Waker::from(counter.clone()), counter)
    }

    /// How many times the waker was woken.
    pub fn wakes(&self) -> usize {
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

pub mod worker;

use std::future::Future;

use uringo::__loom::{local, task_id, Config, JoinHandle, Local, Notified, Schedule, Shared};

/// A runtime's shared state with `workers` run queues, as `Runtime::new` builds it.
pub fn runtime(workers: usize) -> (loom::sync::Arc<Shared>, Vec<Local<Notified>>) {
    let (locals, steals): (Vec<_>, Vec<_>) = (0..workers).map(|_| local()).unzip();
    let config = Config::default();
    (loom::sync::Arc::new(Shared::new(steals, config)), locals)
}

/// `Handle::spawn` from a thread that is not a worker: register the task, schedule it
/// (the real `Schedule` impl sends it to the injector and wakes a parked worker). `id`
/// must be the same in every execution of the model (see `task_id`).
pub fn spawn<F>(shared: &loom::sync::Arc<Shared>, id: u64, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (join, notified) = shared.owned.bind(future, shared.clone(), task_id(id));
    if let Some(notified) = notified {
        shared.schedule(notified);
    }
    join
}

/// `Handle::spawn` on worker `worker`: the task goes to that worker's local queue.
/// `id` as for [`spawn`].
pub fn spawn_local<F>(worker: &mut worker::ModelWorker, id: u64, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let shared = worker.shared.clone();
    let (join, notified) = shared.owned.bind(future, shared.clone(), task_id(id));
    if let Some(notified) = notified {
        worker.push_back(notified);
    }
    join
}

/// The runtime's shutdown after the workers have stopped (`Runtime::shut_down`).
pub fn finish_shutdown(shared: &Shared) {
    shared.owned.close_and_shutdown_all();
    while let Some(task) = shared.inject.pop() {
        drop(task);
    }
}
