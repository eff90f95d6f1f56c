//! Timer entries (`time/entry.rs`) and the wheel owner's cancellation path
//! (`time/driver.rs`, `Sleep::deregister` in `sleep.rs`): a worker fires a
//! due timer while its `Sleep` is dropped (or polled) on another thread. The timer fires
//! at most once, never after a cancel that succeeded, a `Sleep` polled while it fires
//! is woken or sees it fired, and the entry is freed exactly once.
//!
//! The entry is shared through loom's `Arc` (the executor's sync facade), so loom
//! reports it if the wheel or the `Sleep` leaks it; a double free is a double drop.
//!
//! Mutation `timer_fire_cas` (firing without winning the PENDING -> FIRED CAS) fires a
//! timer whose cancel already succeeded.

use std::time::{Duration, Instant};

use super::{TimerDriver, TimerEntry, TimerRemote};
use crate::loom::model::{model, CountingWaker};
use loom::sync::Arc;
use loom::thread;

/// The owning worker's tick (`WorkerContext::process_timers`): apply other threads'
/// cancellations, fire what is due.
fn process_timers(driver: &mut TimerDriver, remote: &TimerRemote) -> usize {
    driver.drain_remote(remote);
    let mut fired = 0;
    // Well past every deadline of these models (tick 1), however fast the host is.
    let now = Instant::now() + Duration::from_millis(10);
    while let Some(entry) = driver.pop_expired(now) {
        entry.fire();
        fired += 1;
    }
    fired
}

#[test]
fn fire_vs_cancel_from_another_thread() {
    model(|| {
        let origin = Instant::now();
        let remote = Arc::new(TimerRemote::default());
        let mut driver = TimerDriver::new(origin);
        // A `Sleep` armed on the owner (`Sleep::arm`): created holding its waker, due
        // at tick 1, so the next tick fires it.
        let (waker, wakes) = CountingWaker::new();
        let entry = Arc::new(TimerEntry::with_waker(1, waker.clone()));
        let key = driver.insert(entry.clone());
        assert!(!entry.is_fired(), "nothing fires before the owner's tick");

        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                let fired = process_timers(&mut driver, &remote);
                // The next tick applies a cancellation that came in late.
                process_timers(&mut driver, &remote);
                drop(driver);
                fired
            })
        };
        // The task was stolen: its `Sleep` is dropped on this thread
        // (`Sleep::deregister` for a timer in another worker's wheel).
        let cancelled = entry.cancel();
        if cancelled {
            remote.cancellations.push(key);
        }
        let popped = owner.join().unwrap();

        assert!(popped <= 1, "popped from the wheel twice");
        if cancelled {
            assert!(!entry.is_fired(), "fired after a successful cancel");
            assert_eq!(wakes.wakes(), 0, "woken after a successful cancel");
        } else {
            assert!(entry.is_fired(), "cancel failed but the timer never fired");
            // The cancel may have taken the waker before the fire got to it: the
            // `Sleep` is gone, nobody waits for that wake.
            assert!(wakes.wakes() <= 1, "woken twice");
        }
        assert_eq!(
            Arc::strong_count(&entry),
            1,
            "the wheel still holds the entry"
        );
        drop(waker);
    });
}

/// A `Sleep` on a thread without a wheel hands its entry to a worker through the
/// registration queue (`Shared::register_remote_timer`) and is dropped while the worker
/// takes it in (`Sleep::deregister`): a cancelled entry never fires, and it leaves the
/// wheel at the owner's next tick whether the cancel came before or after the insert.
#[test]
fn remote_registration_vs_cancel() {
    model(|| {
        let remote = Arc::new(TimerRemote::default());
        let entry = Arc::new(TimerEntry::new(1));
        remote.registrations.push(entry.clone());
        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                let mut driver = TimerDriver::new(Instant::now());
                let fired = process_timers(&mut driver, &remote);
                (driver, fired)
            })
        };
        let key = entry.cancel_adopted();
        if let Some(key) = key {
            remote.cancellations.push(key);
        }
        let cancelled = entry.is_cancelled();
        let (mut driver, fired) = owner.join().unwrap();
        // The owner's next tick.
        process_timers(&mut driver, &remote);
        assert!(
            !driver.has_timers(),
            "a cancelled remote timer stayed in the wheel"
        );
        assert!(fired <= 1);
        assert_eq!(
            entry.is_fired(),
            !cancelled,
            "fired after a successful cancel"
        );
        assert_eq!(Arc::strong_count(&entry), 1, "the worker leaked the entry");
    });
}

/// A `Sleep` polled (registering its waker) on one thread while its worker fires it:
/// the poll sees FIRED, or the fire wakes the waker it stored: never neither.
#[test]
fn fire_vs_poll_from_another_thread() {
    model(|| {
        let remote = Arc::new(TimerRemote::default());
        let mut driver = TimerDriver::new(Instant::now());
        let entry = Arc::new(TimerEntry::new(1));
        driver.insert(entry.clone());
        let owner = {
            let remote = remote.clone();
            thread::spawn(move || process_timers(&mut driver, &remote))
        };
        let (waker, wakes) = CountingWaker::new();
        let saw_fired = entry.register(&waker);
        assert_eq!(owner.join().unwrap(), 1);
        assert!(saw_fired || wakes.wakes() == 1, "wake-up lost");
        assert!(wakes.wakes() <= 1);
        assert_eq!(Arc::strong_count(&entry), 1);
        drop(waker);
    });
}
