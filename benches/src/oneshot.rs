//! A minimal, runtime-agnostic oneshot channel.
//!
//! uringo has no channel type yet and tokio's `sync::oneshot` is tuned for tokio (it
//! even takes part in tokio's coop budget), so using it on one side only would compare
//! channels, not schedulers. Both peers therefore use this one: a `Mutex` around the
//! value and the receiver's waker. It is not fast, but it costs the same on both sides,
//! and the work it does on wake (`Waker::wake`) is exactly the scheduler path we want
//! to measure.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender is gone: after it, `value` can no longer change.
    closed: bool,
}

/// Sending half; consumed by [`Sender::send`].
pub struct Sender<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// Receiving half: a future that resolves to the value, or to [`Closed`] when the
/// sender was dropped without sending.
pub struct Receiver<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The sender was dropped without sending.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// A connected sender/receiver pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Inner {
        value: None,
        waker: None,
        closed: false,
    }));
    (
        Sender {
            inner: inner.clone(),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    /// Stores `value` and wakes the receiver. Returns the value back when the
    /// receiver is already gone.
    pub fn send(self, value: T) -> Result<(), T> {
        // Only the receiver holds the other reference: when it is gone, nobody reads.
        if Arc::strong_count(&self.inner) == 1 {
            return Err(value);
        }
        let waker = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner.value = Some(value);
            inner.closed = true;
            inner.waker.take()
        };
        // Wake outside the lock, so a receiver polled at once on another thread does
        // not contend on it.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.closed {
                // `send` already did the work.
                return;
            }
            inner.closed = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = inner.value.take() {
            return Poll::Ready(Ok(value));
        }
        if inner.closed {
            return Poll::Ready(Err(Closed));
        }
        match &mut inner.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<T>(rx: &mut Receiver<T>, waker: &Waker) -> Poll<Result<T, Closed>> {
        Pin::new(rx).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn value_sent_before_poll_is_ready() {
        let (tx, mut rx) = channel();
        tx.send(7).unwrap();
        let waker = Waker::noop();
        assert_eq!(poll(&mut rx, waker), Poll::Ready(Ok(7)));
    }

    #[test]
    fn send_after_poll_wakes_the_receiver_once() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let (tx, mut rx) = channel();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        tx.send("hi").unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &waker), Poll::Ready(Ok("hi")));
    }

    #[test]
    fn dropped_sender_closes_and_wakes() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let (tx, mut rx) = channel::<u8>();
        assert_eq!(poll(&mut rx, &waker), Poll::Pending);
        drop(tx);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &waker), Poll::Ready(Err(Closed)));
    }

    #[test]
    fn send_to_dropped_receiver_returns_the_value() {
        let (tx, rx) = channel();
        drop(rx);
        assert_eq!(tx.send(3), Err(3));
    }

    #[test]
    fn works_across_threads_on_both_runtimes() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let (tx, rx) = channel();
            tokio::spawn(async move { tx.send(41).unwrap() });
            rx.await.unwrap() + 1
        });
        assert_eq!(got, 42);
        drop(rt);

        let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
        let got = rt.block_on(async {
            let (tx, rx) = channel();
            uringo::spawn(async move { tx.send(41).unwrap() });
            rx.await.unwrap() + 1
        });
        assert_eq!(got, 42);
    }
}
