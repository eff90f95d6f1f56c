//! Going to sleep without losing a wake-up.
//!
//! The protocol is `idle.rs`'s: announce the park (one SeqCst RMW and fence), then take
//! a last look at every queue this worker could be responsible for, and only then sleep
//! in the driver. A producer publishes first and reads the announcement after, so one
//! of the two sees the other. A wake that arrives after the last look but before the
//! driver sleeps is kept by the driver's unpark token (`Unpark` is sticky).

use super::super::driver::Driver;
use super::Worker;

impl<D: Driver> Worker<'_, D> {
    /// Sleeps in the driver until there is something to do.
    pub(super) fn park(&mut self) {
        let cx = self.cx;
        let shared = &cx.shared;
        let is_searching = std::mem::replace(&mut self.core.is_searching, false);
        // Announces us as parked, fenced before the last look below (idle.rs).
        let was_last_searcher = shared
            .idle
            .transition_worker_to_parked(cx.index, is_searching);
        let work_visible = shared.is_shutdown()
            || !shared.inject.is_empty()
            || !cx.remote().inbox.is_empty()
            || cx.with_local(|local| local.has_tasks())
            || (was_last_searcher && shared.any_work_queued());
        // Timers other threads queued for us count: they may be due before we wake,
        // and a due one puts its task in our queue.
        if !work_visible && !self.process_timers() {
            let now = shared.clock.now();
            let timeout = cx.timers().borrow().park_timeout(now);
            // Paused time passes only when everyone waits (`time/auto_advance.rs`):
            // no timeout to wait out.
            #[cfg(feature = "test-util")]
            let timeout = match shared.clock.auto_advance() {
                None => timeout,
                Some(_) => {
                    let next = cx.timers().borrow().next_wake(now);
                    shared.paused_time.worker_waits(shared, cx.index, next);
                    None
                }
            };
            let stats = cx.stats();
            stats.parking(now, timeout);
            let driver = &self.driver;
            let parked = cx.woken_by_the_loop(|| driver.park(timeout));
            stats.unparked(&parked);
        }
        if work_visible {
            crate::loom::retry_soon();
        }
        if !shared.idle.transition_worker_from_parked(cx.index) {
            // A producer picked us: we are counted as searching.
            self.core.is_searching = true;
        }
        // Counted as unparked again: the pending unpark can go, and what we published
        // of our timers no longer holds (`time/auto_advance.rs`).
        #[cfg(feature = "test-util")]
        shared.paused_time.worker_runs(shared, cx.index);
    }
}
