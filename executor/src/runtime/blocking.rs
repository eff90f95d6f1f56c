//! `spawn_blocking`: a pool of threads for code that blocks (Go's `entersyscall`
//! hand-off, done by moving the work instead of the P).
//!
//! Threads are started on demand up to `max_blocking_threads` (default 512) and exit
//! after `keep_alive` (10 s) without work. A blocking task is an ordinary task whose
//! future runs the closure in its single poll, so it has a normal `JoinHandle`; it is in
//! no run queue and not in the owned-task registry (it cannot be interrupted, only
//! waited for: runtime shutdown waits up to its timeout, and cancels tasks that never
//! started).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{context, coop, Handle, ThreadHooks};
use crate::loom::sync::{Arc, Condvar, Mutex};
use crate::runtime::task::{self, JoinHandle, Notified, RawTask, Schedule, Task};

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    condvar: Condvar,
    /// Signalled when a thread exits, for shutdown to wait on.
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    hooks: ThreadHooks,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Notified>,
    num_threads: usize,
    num_idle: usize,
    /// Idle threads already signalled for queued work (so two spawns wake two threads).
    num_notify: usize,
    shutdown: bool,
    next_thread_id: usize,
}

/// Blocking tasks are never re-scheduled (their one poll runs to completion), and they
/// are not registered, so the scheduler has nothing to do.
#[derive(Clone)]
struct BlockingSchedule {
    pool: Arc<Inner>,
}

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        // Only an `abort` of a queued task can get here; put it back so a thread runs
        // (and thus cancels) it.
        let mut state = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.push_back(task);
        self.pool.condvar.notify_one();
    }

    fn release(&self, _task: &RawTask) -> Option<Task> {
        None
    }
}

/// Runs the closure in its single poll, with no cooperative budget.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("blocking task polled twice");
        Poll::Ready(coop::unconstrained(f))
    }
}

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        hooks: ThreadHooks,
    ) -> Self {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                condvar: Condvar::new(),
                exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                thread_name,
                hooks,
            }),
        }
    }

    pub(crate) fn spawn<F, R>(&self, f: F, handle: &Handle) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scheduler = BlockingSchedule {
            pool: self.inner.clone(),
        };
        let (task, notified, join) = task::new_task(
            BlockingTask(Some(f)),
            scheduler,
            task::Id::next(),
            Location::caller(),
        );
        // Not registered: the registry's reference is not needed.
        drop(task);
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.shutdown {
            drop(state);
            notified.shutdown();
            return join;
        }
        state.queue.push_back(notified);
        if state.num_idle > state.num_notify {
            state.num_notify += 1;
            self.inner.condvar.notify_one();
        } else if state.num_threads < self.inner.max_threads {
            state.num_threads += 1;
            let id = state.next_thread_id;
            state.next_thread_id += 1;
            drop(state);
            if let Err(err) = self.spawn_thread(id, handle.clone()) {
                tracing::error!(%err, "cannot start a blocking thread; the task waits for a running one");
                let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
                state.num_threads -= 1;
            }
        }
        join
    }

    fn spawn_thread(&self, id: usize, handle: Handle) -> std::io::Result<()> {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("{}-{id}", self.inner.thread_name))
            .spawn(move || {
                let _current = context::set_current(handle.clone());
                let _ring = handle.fallback_ring().map(uringo_uring::set_fallback);
                if let Some(start) = &inner.hooks.on_start {
                    start();
                }
                inner.run();
                if let Some(stop) = &inner.hooks.on_stop {
                    stop();
                }
            })
            .map(drop)
    }

    /// Number of blocking threads alive, and how many of them are idle.
    pub(crate) fn max_threads(&self) -> usize {
        self.inner.max_threads
    }

    pub(crate) fn thread_counts(&self) -> (usize, usize) {
        let state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.num_threads, state.num_idle)
    }

    /// Number of blocking tasks waiting for a thread.
    pub(crate) fn queue_depth(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queue
            .len()
    }

    /// Cancels queued tasks and waits up to `timeout` for running ones. Returns false
    /// if threads were still busy when the time ran out (they are left to finish).
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        let queued: Vec<Notified> = {
            let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
            state.shutdown = true;
            self.inner.condvar.notify_all();
            state.queue.drain(..).collect()
        };
        for task in queued {
            task.shutdown();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.num_threads > 0 {
            match deadline {
                None => {
                    state = self
                        .inner
                        .exited
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        tracing::warn!(
                            busy = state.num_threads,
                            "blocking threads still running after the shutdown timeout"
                        );
                        return false;
                    }
                    state = self
                        .inner
                        .exited
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }
}

impl Inner {
    fn run(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        'outer: loop {
            while let Some(task) = state.queue.pop_front() {
                drop(state);
                task.run();
                state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            }
            if state.shutdown {
                break;
            }
            state.num_idle += 1;
            let idle_since = Instant::now();
            loop {
                let waited = self
                    .condvar
                    .wait_timeout(state, self.keep_alive.saturating_sub(idle_since.elapsed()))
                    .unwrap_or_else(|e| e.into_inner());
                state = waited.0;
                if state.num_notify > 0 {
                    state.num_notify -= 1;
                    state.num_idle -= 1;
                    continue 'outer;
                }
                if !state.queue.is_empty() {
                    state.num_idle -= 1;
                    continue 'outer;
                }
                if state.shutdown {
                    state.num_idle -= 1;
                    break 'outer;
                }
                if idle_since.elapsed() >= self.keep_alive {
                    state.num_idle -= 1;
                    if state.queue.is_empty() {
                        break 'outer;
                    }
                    continue 'outer;
                }
            }
        }
        state.num_threads -= 1;
        self.exited.notify_all();
    }
}
