//! Firing this worker's due timers from the loop.
//!
//! The wheel (`time/driver.rs`) is this worker's alone; other threads reach it through
//! two queues in `Remote::timers` (registrations from threads without a wheel,
//! cancellations of timers dropped elsewhere), applied here first. Firing wakes tasks,
//! which may arm new timers, so each timer fires with no borrow of the wheel held.

use super::super::driver::Driver;
use super::Worker;

impl<D: Driver> Worker<'_, D> {
    /// Applies other threads' timer changes and fires what is due. Cheap when there are
    /// no timers: two loads, inlined into the loop, and no clock read. Returns true if a
    /// timer fired.
    #[inline]
    pub(super) fn process_timers(&mut self) -> bool {
        let cx = self.cx;
        let remote = &cx.remote().timers;
        if remote.has_queued() {
            cx.with_timers(|t| t.drain_remote(remote));
        }
        if !cx.timers().borrow().has_timers() {
            return false;
        }
        self.fire_due_timers()
    }

    #[inline(never)]
    fn fire_due_timers(&mut self) -> bool {
        let cx = self.cx;
        let remote = &cx.remote().timers;
        let now = cx.shared.clock.now();
        let fired = cx.woken_by_the_loop(|| {
            let mut fired = 0;
            loop {
                // Popped in a statement of its own: the wheel is not borrowed while the
                // timer fires.
                let slot = cx.timers().borrow_mut().pop_expired(now);
                let Some(slot) = slot else { break };
                if fired == 0 {
                    cx.stats().timers_due();
                }
                remote.slots.get(slot).fire();
                let leftover = cx.timers().borrow_mut().release(&remote.slots, slot);
                drop(leftover);
                fired += 1;
            }
            fired
        });
        if fired > 0 {
            cx.stats().timers_fired(fired);
            cx.timers().borrow().publish_len(remote);
        }
        fired > 0
    }
}
