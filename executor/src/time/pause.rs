//! Time that tests control (feature `test-util`): tokio's `time::pause`, `advance`
//! and `resume` for uringo's multi-threaded runtime.
//!
//! While time is paused, every timer of the runtime reads a frozen clock. It moves by
//! [`advance`], and by itself when there is nothing else to do: when the last worker
//! or `block_on` thread goes to wait, it moves the clock to the earliest timer of any
//! worker and wakes that timer's worker (`auto_advance.rs`). So `sleep(Duration::from_secs(30))`
//! completes at once in a paused test, and a proxy's 30 s idle timeout can be tested
//! in milliseconds. I/O still happens in real time, and a task blocked in
//! `spawn_blocking` does not hold the clock back.

use std::time::Duration;

use super::clock::{self, Clock};

/// Pauses time for the runtime this thread works for (from `block_on` or a task).
///
/// # Panics
///
/// Outside a runtime, or if time is already paused.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     uringo::time::pause();
///     let start = uringo::time::Instant::now();
///     uringo::time::sleep(std::time::Duration::from_secs(3600)).await;
///     // An hour of timer time, almost no real time.
///     assert!(start.elapsed() < std::time::Duration::from_secs(3600));
/// });
/// ```
pub fn pause() {
    with_pausable("pause", |clock| {
        assert!(clock.pause(), "uringo::time::pause: time is already paused");
    });
}

/// Lets time run again from where it stands.
///
/// # Panics
///
/// Outside a runtime, or if time is not paused.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     uringo::time::pause();
///     uringo::time::resume();
/// });
/// ```
pub fn resume() {
    with_pausable("resume", |clock| {
        assert!(clock.resume(), "uringo::time::resume: time is not paused");
    });
}

/// Moves paused time forward by `duration`; the timers that became due fire, and the
/// caller yields once so the tasks they woke can run first.
///
/// # Panics
///
/// Outside a runtime, or if time is not paused.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     use std::time::Duration;
///     uringo::time::pause();
///     let timeout = uringo::spawn(uringo::time::sleep(Duration::from_secs(30)));
///     uringo::time::advance(Duration::from_secs(31)).await;
///     timeout.await.unwrap();
/// });
/// ```
pub async fn advance(duration: Duration) {
    with_pausable("advance", |clock| {
        assert!(
            clock.advance(duration),
            "uringo::time::advance: time is not paused"
        );
    });
    // Every worker looks at its wheel again: the ones asleep had no timeout to wake on.
    crate::runtime::context::with_current_shared(|shared| {
        if let Some(shared) = shared {
            for remote in shared.remotes.iter() {
                remote.unpark();
            }
        }
    });
    crate::task::yield_now().await;
}

fn with_pausable<R>(what: &str, f: impl FnOnce(&clock::PausableClock) -> R) -> R {
    clock::with_current(|clock| match clock {
        Some(Clock::Pausable(clock)) => f(clock),
        Some(_) => unreachable!("with test-util every runtime has a pausable clock"),
        None => panic!("uringo::time::{what} called outside a uringo runtime"),
    })
}
