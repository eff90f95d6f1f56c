//! Timer entries (`time/entry.rs`), their slots (`time/slots.rs`) and the wheel
//! owner's cancellation path (`time/driver.rs`, `Sleep::deregister` in `sleep.rs`): a
//! worker fires a due timer while its `Sleep` is dropped (or polled) on another thread.
//! The timer fires at most once, never after a cancel that succeeded, a `Sleep` polled
//! while it fires is woken or sees it fired, and the slot goes back exactly once, after
//! both the wheel and the `Sleep` let go, with no waker left in it.
//!
//! Mutation `timer_fire_cas` (firing without winning the PENDING -> FIRED CAS) fires a
//! timer whose cancel already succeeded.

use std::time::{Duration, Instant};

use super::slots::TimerSlots;
use super::{TimerDriver, TimerRemote};
use crate::loom::model::{model, CountingWaker};
use loom::sync::Arc;
use loom::thread;

/// The owning worker's tick (`Worker::process_timers`): apply other threads'
/// cancellations, fire what is due, let go of each fired slot.
fn process_timers(driver: &mut TimerDriver, remote: &TimerRemote) -> usize {
    driver.drain_remote(remote);
    let mut fired = 0;
    // Well past every deadline of these models (tick 1), however fast the host is.
    let now = Instant::now() + Duration::from_millis(10);
    while let Some(slot) = driver.pop_expired(now) {
        remote.slots.get(slot).fire();
        drop(driver.release(&remote.slots, slot));
        fired += 1;
    }
    fired
}

/// The slot went back exactly once, to the owner's list or through `returned`, and
/// holds no waker.
fn assert_given_back_once(driver: &TimerDriver, slots: &TimerSlots, slot: u32) {
    let times = driver.free_slots().iter().filter(|&&s| s == slot).count()
        + slots.returned().iter().filter(|&&s| s == slot).count();
    assert_eq!(times, 1, "the slot went back {times} times");
    assert!(
        slots.get(slot).take_waker().is_none(),
        "a waker outlived the timer"
    );
}

#[test]
fn fire_vs_cancel_from_another_thread() {
    model(|| {
        let origin = Instant::now();
        let remote = Arc::new(TimerRemote::default());
        let mut driver = TimerDriver::new(origin);
        // A `Sleep` armed on the owner (`Sleep::arm`): its slot holds its waker from
        // the start, due at tick 1, so the next tick fires it.
        let (waker, wakes) = CountingWaker::new();
        let slot = driver.take_slot(&remote.slots);
        remote.slots.get(slot).arm(Some(waker.clone()));
        let key = driver.insert(1, slot);
        assert!(
            !remote.slots.get(slot).is_fired(),
            "nothing fires before the owner's tick"
        );

        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                let fired = process_timers(&mut driver, &remote);
                // The next tick applies a cancellation that came in late.
                process_timers(&mut driver, &remote);
                (driver, fired)
            })
        };
        // The task was stolen: its `Sleep` is dropped on this thread
        // (`Sleep::deregister` for a timer in another worker's wheel).
        let entry = remote.slots.get(slot);
        let cancelled = entry.cancel();
        if cancelled {
            remote.queue_cancellation(key);
        }
        let fired = entry.is_fired();
        remote.slots.release_elsewhere(slot);
        let (mut driver, popped) = owner.join().unwrap();
        // A cancellation queued after the owner's second tick.
        process_timers(&mut driver, &remote);

        assert!(popped <= 1, "popped from the wheel twice");
        if cancelled {
            assert!(!fired, "fired after a successful cancel");
            assert_eq!(wakes.wakes(), 0, "woken after a successful cancel");
        } else {
            assert!(fired, "cancel failed but the timer never fired");
            // The cancel may have taken the waker before the fire got to it: the
            // `Sleep` is gone, nobody waits for that wake.
            assert!(wakes.wakes() <= 1, "woken twice");
        }
        assert!(!driver.has_timers(), "the wheel still holds the timer");
        assert_given_back_once(&driver, &remote.slots, slot);
        drop(waker);
    });
}

/// A `Sleep` on a thread without a wheel hands its slot to a worker through the
/// registration queue (`Shared::register_remote_timer`) and is dropped while the worker
/// takes it in (`Sleep::deregister`): a cancelled timer never fires, and it leaves the
/// wheel at the owner's next tick whether the cancel came before or after the insert.
#[test]
fn remote_registration_vs_cancel() {
    model(|| {
        let remote = Arc::new(TimerRemote::default());
        let slot = remote.slots.take_remote();
        remote.slots.get(slot).arm(None);
        remote.queue_registration(slot, 1);
        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                let mut driver = TimerDriver::new(Instant::now());
                let fired = process_timers(&mut driver, &remote);
                (driver, fired)
            })
        };
        let entry = remote.slots.get(slot);
        if let Some(key) = entry.cancel_adopted() {
            remote.queue_cancellation(key);
        }
        let cancelled = entry.is_cancelled();
        let fired = entry.is_fired();
        remote.slots.release_elsewhere(slot);
        let (mut driver, popped) = owner.join().unwrap();
        // The owner's next tick.
        process_timers(&mut driver, &remote);
        assert!(
            !driver.has_timers(),
            "a cancelled remote timer stayed in the wheel"
        );
        assert!(popped <= 1);
        assert_eq!(fired, !cancelled, "fired after a successful cancel");
        assert_given_back_once(&driver, &remote.slots, slot);
    });
}

/// A `Sleep` polled (registering its waker) on one thread while its worker fires it:
/// the poll sees FIRED, or the fire wakes the waker it stored: never neither. A waker
/// stored just as the timer fired is dropped with the slot, not kept in it.
#[test]
fn fire_vs_poll_from_another_thread() {
    model(|| {
        let remote = Arc::new(TimerRemote::default());
        let mut driver = TimerDriver::new(Instant::now());
        let slot = driver.take_slot(&remote.slots);
        remote.slots.get(slot).arm(None);
        driver.insert(1, slot);
        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                let fired = process_timers(&mut driver, &remote);
                (driver, fired)
            })
        };
        let (waker, wakes) = CountingWaker::new();
        let saw_fired = remote.slots.get(slot).register(&waker);
        let (driver, popped) = owner.join().unwrap();
        assert_eq!(popped, 1);
        assert!(saw_fired || wakes.wakes() == 1, "wake-up lost");
        assert!(wakes.wakes() <= 1);
        // The `Sleep` completes (or, had it not seen the fire, its next poll would).
        remote.slots.release_elsewhere(slot);
        assert_given_back_once(&driver, &remote.slots, slot);
        drop(waker);
    });
}

/// Other threads queue a registration and a cancellation (of timers far from due, so
/// nothing fires to hide a lost one) while the owner drains: whatever the owner's drain
/// missed, its next tick applies, because each queuing thread raises `queued` after its
/// push (`TimerRemote::queued`). Mutation `timer_queued_flag` raises it before the
/// push: a drain between the two clears the flag and strands the item.
#[test]
fn queued_changes_reach_the_wheel_by_the_owners_next_tick() {
    model(|| {
        let far = 1 << 20;
        let remote = Arc::new(TimerRemote::default());
        let mut driver = TimerDriver::new(Instant::now());
        // A timer on the owner's wheel, whose `Sleep` is dropped on another thread.
        let owned = driver.take_slot(&remote.slots);
        remote.slots.get(owned).arm(None);
        let key = driver.insert(far, owned);
        // A timer armed on a thread without a wheel.
        let foreign = remote.slots.take_remote();
        remote.slots.get(foreign).arm(None);

        let owner = {
            let remote = remote.clone();
            thread::spawn(move || {
                driver.drain_remote(&remote);
                driver
            })
        };
        let canceller = {
            let remote = remote.clone();
            thread::spawn(move || {
                assert!(remote.slots.get(owned).cancel());
                remote.queue_cancellation(key);
            })
        };
        remote.queue_registration(foreign, far);
        canceller.join().unwrap();
        let mut driver = owner.join().unwrap();
        // The owner's next tick.
        driver.drain_remote(&remote);
        driver.publish_len(&remote);
        let cancelled = remote.cancelled.load(loom::sync::atomic::Ordering::Relaxed);
        let inserted = remote.armed.load(loom::sync::atomic::Ordering::Relaxed);
        assert_eq!(cancelled, 1, "a cancellation was stranded in its queue");
        assert_eq!(inserted, 2, "a registration was stranded in its queue");
        assert_eq!(remote.len.load(loom::sync::atomic::Ordering::Relaxed), 1);
    });
}
