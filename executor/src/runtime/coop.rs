//! Cooperative budget: each task poll may make 128 units of progress, then uringo's own
//! futures (I/O, timers, joins) return `Pending` after re-waking the task, so one busy
//! task cannot starve the others or the ring (design invariant 7).
//!
//! The budget is per thread and set around each task poll by the worker; a task that
//! runs from the runnext slot right after another inherits what is left (Go gives
//! runnext the rest of the time slice for the same reason: a ping-ponging pair must not
//! monopolise the worker).

use std::cell::Cell;
use std::task::{Context, Poll};

/// Units of progress per task poll (tokio uses the same number).
pub(crate) const INITIAL: u8 = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Budget(Option<u8>);

crate::loom::thread_locals! {
    static BUDGET: Cell<Budget> = const { Cell::new(Budget(None)) };
    static FORCED_YIELDS: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with a fresh budget, restoring the previous one afterwards.
pub(crate) fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Budget(Some(INITIAL)), f)
}

/// Runs `f` with no budget limit (blocking tasks, `block_on` of the runtime itself).
pub(crate) fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Budget(None), f)
}

fn with_budget<R>(budget: Budget, f: impl FnOnce() -> R) -> R {
    struct Reset(Budget);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = BUDGET.try_with(|b| b.set(self.0));
        }
    }
    let prev = BUDGET.with(|b| b.replace(budget));
    let _reset = Reset(prev);
    f()
}

/// Whether the current poll may still make progress.
pub(crate) fn has_budget_remaining() -> bool {
    BUDGET.with(|b| b.get().0 != Some(0))
}

/// Takes the forced-yield count accumulated on this thread (for worker metrics).
pub(crate) fn take_forced_yields() -> u64 {
    FORCED_YIELDS.with(|c| c.replace(0))
}

/// Consumes one unit. When none is left, wakes the task and returns `Pending` so it
/// yields; the caller returns `Pending` too.
///
/// The returned guard gives the unit back if the caller's poll turns out not to make
/// progress (call [`RestoreOnPending::made_progress`] when it does).
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    BUDGET.with(|cell| {
        let mut budget = cell.get();
        match budget.0 {
            Some(0) => {
                FORCED_YIELDS.with(|c| c.set(c.get() + 1));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(n) => {
                budget.0 = Some(n - 1);
                cell.set(budget);
                Poll::Ready(RestoreOnPending(Cell::new(Some(n))))
            }
            None => Poll::Ready(RestoreOnPending(Cell::new(None))),
        }
    })
}

/// Returns the unit consumed by [`poll_proceed`] unless progress was made.
pub(crate) struct RestoreOnPending(Cell<Option<u8>>);

impl RestoreOnPending {
    pub(crate) fn made_progress(&self) {
        self.0.set(None);
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        if let Some(n) = self.0.get() {
            let _ = BUDGET.try_with(|b| {
                if b.get().0.is_some() {
                    b.set(Budget(Some(n)));
                }
            });
        }
    }
}

/// Wraps a uringo-internal future so every poll that completes consumes budget.
pub(crate) struct Coop<F> {
    inner: F,
}

impl<F> Coop<F> {
    pub(crate) fn new(inner: F) -> Self {
        Coop { inner }
    }
}

impl<F: std::future::Future + Unpin> std::future::Future for Coop<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let coop = std::task::ready!(poll_proceed(cx));
        let out = std::pin::Pin::new(&mut self.inner).poll(cx);
        if out.is_ready() {
            coop.made_progress();
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_after_128_units_and_wakes() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        budget(|| {
            for _ in 0..INITIAL {
                let guard = poll_proceed(&mut cx);
                let Poll::Ready(guard) = guard else {
                    panic!("budget ran out early")
                };
                guard.made_progress();
            }
            assert!(!has_budget_remaining());
            assert!(poll_proceed(&mut cx).is_pending());
        });
        assert!(has_budget_remaining(), "budget restored outside the poll");
        assert_eq!(take_forced_yields(), 1);
    }

    #[test]
    fn pending_without_progress_gives_the_unit_back() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        budget(|| {
            for _ in 0..1000 {
                let Poll::Ready(guard) = poll_proceed(&mut cx) else {
                    panic!()
                };
                drop(guard); // no progress
            }
            assert!(has_budget_remaining());
        });
    }
}
