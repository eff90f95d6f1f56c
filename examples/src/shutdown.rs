//! Graceful shutdown for the servers: a one-way "stop" flag that any number of tasks can
//! await, set by SIGINT or SIGTERM, and a count of live connections to drain.
//!
//! The order a server follows: the signal sets the flag; accept loops see it and drop
//! their listeners (new connections are refused from then on); long-lived connections
//! that can end politely (an idle HTTP keep-alive) do so; the main task waits until the
//! connection count reaches zero or the drain deadline passes, whichever is first.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How often [`Drain::wait`] looks at the connection count.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// A flag that is set once and wakes every task waiting on it. Clones share the flag.
///
/// ```
/// # uringo::Runtime::new().unwrap().block_on(async {
/// let stop = uringo_examples::shutdown::Stop::new();
/// let waiter = uringo::spawn({
///     let stop = stop.clone();
///     async move { stop.wait().await }
/// });
/// stop.trigger();
/// waiter.await.unwrap();
/// assert!(stop.is_triggered());
/// # });
/// ```
#[derive(Clone, Default, Debug)]
pub struct Stop {
    inner: Arc<StopInner>,
}

#[derive(Default, Debug)]
struct StopInner {
    triggered: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Stop {
    /// A flag that is not set.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Sets the flag and wakes everyone waiting.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let waiters = std::mem::take(&mut *lock(&self.inner.waiters));
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Completes once the flag is set.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.is_triggered() {
                return Poll::Ready(());
            }
            let mut waiters = lock(&self.inner.waiters);
            // Checked again under the lock: `trigger` stores before taking the lock, so
            // it either sees this waker or we see the flag.
            if self.is_triggered() {
                return Poll::Ready(());
            }
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain Vec of wakers: still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets `stop` on the first SIGINT or SIGTERM, from a task on the current runtime.
///
/// Listening starts before this returns: call it before announcing the server, so that
/// a signal sent after that never takes its default action (ending the process at once).
///
/// ```
/// use uringo_examples::shutdown::{stop_on_signal, Stop};
///
/// # uringo::Runtime::new()?.block_on(async {
/// let stop = Stop::new();
/// stop_on_signal(stop.clone())?;
/// nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGTERM)?;
/// stop.wait().await;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stop_on_signal(stop: Stop) -> io::Result<()> {
    let mut interrupt = uringo::signal::ctrl_c()?;
    let mut terminate = uringo::signal::signal(uringo::signal::SignalKind::terminate())?;
    uringo::spawn(async move {
        let signal = match race(interrupt.recv(), terminate.recv()).await {
            Either::Left(_) => "SIGINT",
            Either::Right(_) => "SIGTERM",
        };
        tracing::info!(signal, "shutting down");
        stop.trigger();
    });
    Ok(())
}

/// Counts live connections; each holds a [`ConnectionGuard`].
#[derive(Clone, Default, Debug)]
pub struct Drain {
    live: Arc<AtomicUsize>,
}

/// Keeps one connection counted until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    live: Arc<AtomicUsize>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// A counter at zero.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Counts one more connection if fewer than `limit` are live; `None` at the limit.
    pub fn try_admit(&self, limit: usize) -> Option<ConnectionGuard> {
        self.live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionGuard {
                live: self.live.clone(),
            })
    }

    /// Counts one more connection, with no limit.
    pub fn admit(&self) -> ConnectionGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard {
            live: self.live.clone(),
        }
    }

    /// Connections live now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no connection is live or `deadline` passes; returns how many were
    /// still live (0 = fully drained).
    pub async fn wait(&self, deadline: Instant) -> usize {
        loop {
            let live = self.live();
            if live == 0 || Instant::now() >= deadline {
                return live;
            }
            uringo::time::sleep(DRAIN_POLL.min(deadline - Instant::now())).await;
        }
    }
}

/// Which of two futures finished first.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first one.
    Left(A),
    /// The second one.
    Right(B),
}

/// Runs `a` and `b` together and returns the first output; the other is dropped (for a
/// uringo I/O op, that cancels it). `a` is polled first on every wake.
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}
