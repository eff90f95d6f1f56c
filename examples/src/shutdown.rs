//! Graceful shutdown for the servers, on tokio-util's primitives (they run on uringo
//! with no tokio runtime): a `CancellationToken` that SIGINT or SIGTERM cancels, and a
//! `TaskTracker` of the live connection tasks to drain.
//!
//! The order a server follows: the signal cancels the token; accept loops see it and
//! drop their listeners (new connections are refused from then on); long-lived
//! connections that can end politely (an idle HTTP keep-alive) do so; the main task
//! waits until the tracker is empty or the drain deadline passes, whichever is first.

use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cancels `stop` on the first SIGINT or SIGTERM, from a task on the current runtime.
///
/// Listening starts before this returns: call it before announcing the server, so that
/// a signal sent after that never takes its default action (ending the process at once).
///
/// ```
/// use tokio_util::sync::CancellationToken;
/// use uringo_examples::shutdown::stop_on_signal;
///
/// # uringo::Runtime::new()?.block_on(async {
/// let stop = CancellationToken::new();
/// stop_on_signal(stop.clone())?;
/// nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGTERM)?;
/// stop.cancelled().await;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn stop_on_signal(stop: CancellationToken) -> io::Result<()> {
    let mut interrupt = uringo::signal::ctrl_c()?;
    let mut terminate = uringo::signal::signal(uringo::signal::SignalKind::terminate())?;
    uringo::spawn(async move {
        let signal = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            () = stop.cancelled() => return,
        };
        tracing::info!(signal, "shutting down");
        stop.cancel();
    });
    Ok(())
}

/// Closes `tracker` and waits until its tasks have ended or `timeout` passed; returns
/// how many were still running (0 = fully drained), and logs the outcome.
///
/// ```
/// # uringo::Runtime::new().unwrap().block_on(async {
/// let tracker = tokio_util::task::TaskTracker::new();
/// uringo::spawn(tracker.track_future(async {}));
/// let left = uringo_examples::shutdown::drain(&tracker, std::time::Duration::from_secs(60)).await;
/// assert_eq!(left, 0);
/// # });
/// ```
pub async fn drain(tracker: &TaskTracker, timeout: Duration) -> usize {
    tracker.close();
    tracing::info!(
        live = tracker.len(),
        drain_timeout = ?timeout,
        "stopped accepting; draining connections"
    );
    let _ = uringo::time::timeout(timeout, tracker.wait()).await;
    let left = tracker.len();
    if left > 0 {
        tracing::warn!(left, "drain deadline passed; closing remaining connections");
    } else {
        tracing::info!("all connections drained");
    }
    left
}
