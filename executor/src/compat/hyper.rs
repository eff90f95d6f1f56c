//! hyper 1.x runtime glue (feature `hyper`): [`HyperExecutor`] spawns hyper's
//! background futures on uringo, [`HyperTimer`] gives hyper uringo's timers, and
//! [`Compat`] implements `hyper::rt::Read`/`Write` itself, so hyper-util's `TokioIo`
//! wrapper is not needed.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Executor, ReadBufCursor, Sleep, Timer};

use super::{Compat, CompatStream};
use crate::Handle;

/// A `hyper::rt::Executor` that spawns on uringo.
///
/// [`HyperExecutor::new`] spawns on the runtime current where `execute` is called
/// (hyper calls it from the connection's task, so that is normally the right one);
/// [`HyperExecutor::with_handle`] always spawns on the given runtime. The spawned task
/// is detached.
///
/// ```
/// use hyper::rt::Executor;
/// # uringo::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = std::sync::mpsc::channel();
/// uringo::compat::HyperExecutor::new().execute(async move { tx.send(7).unwrap() });
/// # let value = uringo::spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
/// # assert_eq!(value, 7);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct HyperExecutor {
    handle: Option<Handle>,
}

impl HyperExecutor {
    /// Spawns on whichever uringo runtime is current when a future is executed.
    pub fn new() -> HyperExecutor {
        HyperExecutor { handle: None }
    }

    /// Spawns on `handle`'s runtime, wherever `execute` is called from.
    pub fn with_handle(handle: Handle) -> HyperExecutor {
        HyperExecutor {
            handle: Some(handle),
        }
    }
}

impl<F> Executor<F> for HyperExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// # Panics
    /// When made by [`HyperExecutor::new`] and called outside a uringo runtime.
    fn execute(&self, fut: F) {
        match &self.handle {
            Some(handle) => drop(handle.spawn(fut)),
            None => drop(crate::spawn(fut)),
        }
    }
}

impl fmt::Debug for HyperExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperExecutor")
            .field("fixed_runtime", &self.handle.is_some())
            .finish()
    }
}

/// A `hyper::rt::Timer` backed by [`crate::time::Sleep`]: hyper's timeouts (header
/// read timeout, keep-alive, pool idle) go on the polling worker's timer wheel, fire no
/// earlier than asked (1 ms resolution), and are moved in O(1) when hyper resets them.
///
/// ```
/// use hyper::rt::Timer;
/// # uringo::Runtime::new().unwrap().block_on(async {
/// let start = std::time::Instant::now();
/// uringo::compat::HyperTimer.sleep(std::time::Duration::from_millis(5)).await;
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

/// The `hyper::rt::Sleep` that [`HyperTimer`] hands out.
struct HyperSleep {
    inner: crate::time::Sleep,
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

impl Sleep for HyperSleep {}

impl Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep {
            inner: crate::time::sleep(duration),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep {
            inner: crate::time::sleep_until(deadline),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(ours) => Pin::new(&mut ours.get_mut().inner).reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

impl<S: CompatStream> hyper::rt::Read for Compat<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.get_mut()
            .poll_read_with(cx, room, |data| buf.put_slice(data))
            .map_ok(drop)
    }
}

impl<S: CompatStream> hyper::rt::Write for Compat<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown_inner(cx)
    }
}
