//! The accept backlog: connections the multishot accept produced that no `accept` has
//! claimed, the stream that produces them, and the limit that pauses it.
//!
//! The stream's cell wakes the backlog itself ([`CqeWaker`]), on the ring's owner right
//! after the CQE is reaped; the backlog moves the connection into its queue and, at the
//! limit, cancels the stream there and then, so the cancel goes out with the owner's
//! next `io_uring_enter`, before it runs the kernel's accept again.
//!
//! The queue has a lock. A wake from another thread waits for it (the holders are short:
//! a few queue operations, at most one submission). A wake on the thread that holds it —
//! a waker registration that races a CQE makes the registering thread wake in place —
//! leaves a flag instead, which the holder reads before it lets go.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use uringo_uring::op::{AcceptMulti, Anchored};
use uringo_uring::Multishot;

use crate::net::socket::SharedFd;

type AcceptStream = Multishot<Anchored<AcceptMulti, SharedFd>>;

thread_local! {
    /// The backlog whose lock this thread holds, if any.
    static HOLDING: Cell<*const Backlog> = const { Cell::new(std::ptr::null()) };
}

pub(super) struct Backlog {
    /// The listening socket, anchored to each multishot accept (see `socket::SharedFd`).
    fd: SharedFd,
    state: Mutex<State>,
    /// A CQE's wake came on the thread holding `state`: look at the stream again.
    again: AtomicBool,
    /// What the stream's cell wakes.
    cqe_waker: Waker,
    /// Tasks waiting for a connection; woken all at once.
    waiters: Mutex<Vec<Waker>>,
}

struct State {
    stream: Option<AcceptStream>,
    /// Accepted by the kernel, not yet claimed (errors too, in order).
    queue: VecDeque<io::Result<OwnedFd>>,
    /// `usize::MAX` when there is none.
    limit: usize,
    /// The stream was cancelled (at the limit, or stopped); its final CQE has not come
    /// yet.
    cancelling: bool,
    /// [`Backlog::stop`] was called: no stream is armed again.
    stopped: bool,
    /// The stream yielded or ended since the waiters were last woken.
    news: bool,
}

/// The stream cell's waker. Weak: the cell lives in the stream, which lives in the
/// backlog.
struct CqeWaker(Weak<Backlog>);

impl Wake for CqeWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(backlog) = self.0.upgrade() {
            backlog.on_cqe();
        }
    }
}

/// `state`, locked; while it lives, [`HOLDING`] names its backlog on this thread.
struct Held<'a> {
    state: MutexGuard<'a, State>,
    outer: *const Backlog,
}

impl Deref for Held<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        HOLDING.with(|h| h.set(self.outer));
    }
}

fn lock_list(list: &Mutex<Vec<Waker>>) -> MutexGuard<'_, Vec<Waker>> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backlog {
    pub(super) fn new(fd: SharedFd) -> Arc<Backlog> {
        Arc::new_cyclic(|backlog| Backlog {
            fd,
            state: Mutex::new(State {
                stream: None,
                queue: VecDeque::new(),
                limit: usize::MAX,
                cancelling: false,
                stopped: false,
                news: false,
            }),
            again: AtomicBool::new(false),
            cqe_waker: Waker::from(Arc::new(CqeWaker(backlog.clone()))),
            waiters: Mutex::default(),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(super) fn set_limit(&self, limit: usize) {
        let mut held = self.lock();
        held.limit = limit;
        self.pump(&mut held);
        self.unlock(held, None);
    }

    pub(super) fn limit(&self) -> usize {
        let held = self.lock();
        let limit = held.limit;
        self.unlock(held, None);
        limit
    }

    pub(super) fn len(&self) -> usize {
        let held = self.lock();
        let len = held.queue.len();
        self.unlock(held, None);
        len
    }

    /// Cancels the stream for good: what the kernel accepted before the cancel took
    /// effect still comes into the queue; later connections stay in the socket's listen
    /// queue.
    pub(super) fn stop(&self) {
        let mut held = self.lock();
        held.stopped = true;
        self.pump(&mut held);
        held.news = true;
        self.unlock(held, None);
    }

    /// Takes the oldest unclaimed connection, arming the stream (on this thread's ring)
    /// when there is none and the queue is below the limit. Once stopped and drained:
    /// `Ready(None)`.
    pub(super) fn poll_claim(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<OwnedFd>>> {
        self.register(cx.waker());
        let mut held = self.lock();
        let claimed = held.queue.pop_front();
        if held.stream.is_none() && !held.stopped && held.queue.len() < held.limit {
            held.stream = Some(Anchored::multishot(
                AcceptMulti::op(self.fd.as_raw_fd()),
                self.fd.clone(),
            ));
        }
        // Submits a new stream, and takes what the kernel accepted since the last look.
        self.pump(&mut held);
        let claimed = claimed.or_else(|| held.queue.pop_front());
        let drained = held.stopped && held.stream.is_none();
        self.unlock(held, Some(cx.waker()));
        match claimed {
            Some(item) => Poll::Ready(Some(item)),
            None if drained => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn register(&self, waker: &Waker) {
        let mut list = lock_list(&self.waiters);
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    /// A CQE arrived: count it.
    fn on_cqe(&self) {
        if std::ptr::eq(HOLDING.with(Cell::get), self) {
            // This thread is inside `pump`, further up its stack; `unlock` looks again.
            self.again.store(true, Ordering::Relaxed);
            return;
        }
        let mut held = self.lock();
        self.pump(&mut held);
        self.unlock(held, None);
    }

    fn lock(&self) -> Held<'_> {
        // The state is a queue and flags, consistent between any two statements: a
        // panic while it is locked leaves nothing to repair.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let outer = HOLDING.with(|h| h.replace(self));
        Held { state, outer }
    }

    /// Lets go of the lock, after counting what a wake in place announced; then wakes
    /// the waiters (but `me`) if there is news for them.
    fn unlock(&self, mut held: Held<'_>, me: Option<&Waker>) {
        while self.again.swap(false, Ordering::Relaxed) {
            self.pump(&mut held);
        }
        let news = std::mem::take(&mut held.news);
        drop(held);
        if news {
            let wakers = std::mem::take(&mut *lock_list(&self.waiters));
            for waker in wakers {
                if !me.is_some_and(|me| waker.will_wake(me)) {
                    waker.wake();
                }
            }
        }
    }

    /// Moves what the kernel accepted from the stream into the queue, and cancels the
    /// stream once the queue reaches the limit or the backlog is stopped.
    fn pump(&self, state: &mut State) {
        let mut cx = Context::from_waker(&self.cqe_waker);
        while let Some(stream) = &mut state.stream {
            match stream.poll_next(&mut cx) {
                // The final CQE of our own cancel: no connection, no error to report.
                Poll::Ready(Some(Err(err)))
                    if state.cancelling && err.raw_os_error() == Some(libc::ECANCELED) => {}
                Poll::Ready(Some(item)) => {
                    state.queue.push_back(item);
                    state.news = true;
                }
                // The kernel ended the stream: after an error item, or cancelled. The
                // next claim arms a new one.
                Poll::Ready(None) => {
                    state.stream = None;
                    state.cancelling = false;
                    state.news = true;
                }
                Poll::Pending => break,
            }
        }
        if (state.stopped || state.queue.len() >= state.limit) && !state.cancelling {
            if let Some(stream) = &mut state.stream {
                stream.cancel();
                state.cancelling = true;
            }
        }
    }
}
