//! The per-worker half of time: a worker's wheel and the queues through which other
//! threads add and cancel timers on it.
//!
//! Go keeps a timer heap per P; uringo keeps a hierarchical wheel (`uringo-timers`) per
//! worker. Nothing here takes a lock shared by two timers: the wheel is touched only by
//! its worker, and other threads reach it through two lock-free queues the worker drains
//! on the next tick, told to by one flag (`TimerRemote::queued`).

use std::task::Waker;
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crossbeam_queue::SegQueue;
use uringo_timers::{TimerKey, TimerWheel};

use super::slots::TimerSlots;
use crate::loom::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
use crate::loom::SegQueue;

/// Tick length: 250 µs. A sleep fires at the first tick at or after its deadline, so
/// the tick is the lateness a timer has by design before any wake-up latency: at 1 ms,
/// p99 lateness over 10 000 sleeps was 1.07 ms here, at 250 µs 0.41 ms. Finer ticks
/// cost no extra wake-ups for a lone timer (a worker parks until `next_wake`, the exact
/// deadline when a slot holds few timers), and the wheel still spans 2^36 ticks (199
/// days) before its far-future list.
pub(crate) const TICK: Duration = Duration::from_micros(250);

/// Nanoseconds per tick.
const TICK_NANOS: u32 = TICK.subsec_nanos();

/// Ticks per second. A second is a whole number of ticks (checked below), so a
/// duration's ticks are its whole seconds' ticks plus its nanoseconds' ticks, each in
/// `u64`: no 128-bit division (`__udivti3`, a call on x86-64) on every timer
/// registration and every scheduler tick that checks the wheel.
const TICKS_PER_SEC: u64 = 1_000_000_000 / TICK_NANOS as u64;
const _: () = assert!(TICK.as_secs() == 0 && 1_000_000_000 % TICK_NANOS == 0);

/// `d` in whole ticks, rounded up when `ceil` (saturating at `u64::MAX`).
#[inline]
fn ticks(d: Duration, ceil: bool) -> u64 {
    let nanos = d.subsec_nanos();
    let part = if ceil {
        nanos.div_ceil(TICK_NANOS)
    } else {
        nanos / TICK_NANOS
    };
    d.as_secs()
        .saturating_mul(TICKS_PER_SEC)
        .saturating_add(u64::from(part))
}

/// Converts an instant to the tick at or after it (so a timer never fires early).
pub(crate) fn deadline_tick(origin: Instant, deadline: Instant) -> u64 {
    ticks(deadline.saturating_duration_since(origin), true)
}

/// The tick `now` falls in (rounded down).
pub(crate) fn now_tick(origin: Instant, now: Instant) -> u64 {
    ticks(now.saturating_duration_since(origin), false)
}

/// What other threads may touch of a worker's timers.
pub(crate) struct TimerRemote {
    /// The entries of this worker's timers (`time/slots.rs`).
    pub slots: TimerSlots,
    /// Timers armed by threads that own no wheel, to insert: slot and deadline tick
    /// ([`TimerRemote::queue_registration`]).
    registrations: SegQueue<(u32, u64)>,
    /// Keys of timers dropped on other threads (remote registrations included, once
    /// inserted), to remove ([`TimerRemote::queue_cancellation`]).
    cancellations: SegQueue<TimerKey>,
    /// Something may be waiting in `registrations` or `cancellations`, so the owner's
    /// tick costs one load of a line nobody writes instead of four (each queue's head
    /// and tail). Raised by the thread that queued, *after* its push (a Release swap);
    /// cleared by the owner with an Acquire swap *before* it drains
    /// (`TimerDriver::drain_remote`).
    /// An item is therefore never stranded: either the owner's swap reads the store
    /// that followed its push, and then sees the push, or that store comes after the
    /// swap and the flag is set for the next tick. A set flag with empty queues (items
    /// drained after the swap that set it again) costs one empty drain.
    queued: AtomicBool,
    /// Timers in the wheel (a gauge for metrics).
    pub len: AtomicUsize,
    /// Timers ever inserted into the wheel (published by the worker).
    pub armed: AtomicU64,
    /// Timers removed from the wheel before they fired (published by the worker).
    pub cancelled: AtomicU64,
    /// While time is paused: when this worker's next timer is due (nanoseconds past
    /// the clock origin, `u64::MAX`: none, 0: unknown while it runs), published as it
    /// parks, so the last participant to wait can move the clock there
    /// (`time/auto_advance.rs`).
    #[cfg(feature = "test-util")]
    pub next_wake: AtomicU64,
}

impl TimerRemote {
    /// Queues a timer armed on a thread without a wheel (slot and deadline tick) for the
    /// owner to insert on its next tick.
    pub(crate) fn queue_registration(&self, slot: u32, tick: u64) {
        self.queue(&self.registrations, (slot, tick));
    }

    /// Queues the removal of a timer dropped on another thread.
    pub(crate) fn queue_cancellation(&self, key: TimerKey) {
        self.queue(&self.cancellations, key);
    }

    fn queue<T>(&self, queue: &SegQueue<T>, item: T) {
        // Mutation point: the flag set before the push lets the owner's drain run
        // between the two and strand the item.
        if crate::loom::mutation!("timer_queued_flag") {
            self.queued.swap(true, Ordering::Release);
            return queue.push(item);
        }
        queue.push(item);
        // An RMW, not a plain store: a store would do in the C++ memory model too, but
        // loom orders concurrent plain stores only partially and then lets the owner's
        // next swap read an older value than the newest; RMWs it orders totally.
        self.queued.swap(true, Ordering::Release);
    }

    /// Whether another thread may have queued something since the owner last drained.
    #[inline]
    pub(crate) fn has_queued(&self) -> bool {
        self.queued.load(Ordering::Relaxed)
    }
}

impl Default for TimerRemote {
    fn default() -> TimerRemote {
        TimerRemote {
            slots: TimerSlots::default(),
            registrations: SegQueue::default(),
            cancellations: SegQueue::default(),
            queued: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            armed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            #[cfg(feature = "test-util")]
            next_wake: AtomicU64::new(super::auto_advance::UNKNOWN),
        }
    }
}

/// The worker-owned wheel, holding the slot of each timer in it.
pub(crate) struct TimerDriver {
    wheel: TimerWheel<u32>,
    /// Slots this worker's timers gave back on this worker, to hand out first.
    free: Vec<u32>,
    origin: Instant,
    /// Counted here, published with the length: the wheel is the worker's alone.
    armed: u64,
    cancelled: u64,
    /// The tick of the latest clock reading that looked for due timers
    /// ([`TimerDriver::pop_expired`]); only moves forward. A timer whose deadline tick
    /// is at or before it has certainly passed, so arming one needs no clock read of
    /// its own: a deadline before it completes at once, any other goes in the wheel
    /// and, if it has passed since, fires at the next tick's reading. tokio's and Go's
    /// timers arm the same way.
    seen: u64,
}

impl TimerDriver {
    pub(crate) fn new(origin: Instant) -> TimerDriver {
        TimerDriver {
            wheel: TimerWheel::new(),
            free: Vec::new(),
            origin,
            armed: 0,
            cancelled: 0,
            seen: 0,
        }
    }

    /// Whether a deadline at `tick` had passed by the latest reading (see `seen`).
    pub(crate) fn has_passed(&self, tick: u64) -> bool {
        tick <= self.seen
    }

    /// A free slot of `slots` (this worker's), for a timer armed here.
    pub(crate) fn take_slot(&mut self, slots: &TimerSlots) -> u32 {
        slots.take(&mut self.free)
    }

    /// Lets go of one hold on `slot`, on this worker; the last one gives it back, and
    /// returns the waker it may still hold for the caller to drop once the driver is
    /// no longer borrowed ([`TimerEntry::take_waker`](super::entry::TimerEntry::take_waker)).
    #[must_use = "drop the waker outside the driver's borrow"]
    pub(crate) fn release(&mut self, slots: &TimerSlots, slot: u32) -> Option<Waker> {
        let entry = slots.get(slot);
        if !entry.release() {
            return None;
        }
        let waker = entry.take_waker();
        self.free.push(slot);
        waker
    }

    /// The slots given back on this worker (for the models).
    #[cfg(all(test, loom))]
    pub(crate) fn free_slots(&self) -> &[u32] {
        &self.free
    }

    /// Puts an armed slot in the wheel: the wheel's hold is now the wheel's.
    pub(crate) fn insert(&mut self, tick: u64, slot: u32) -> TimerKey {
        self.armed += 1;
        self.wheel.insert(tick, slot)
    }

    /// Removes a timer, and with it the wheel's hold; a stale key (the timer fired or
    /// was removed) does nothing.
    pub(crate) fn cancel(&mut self, slots: &TimerSlots, key: TimerKey) {
        if let Some(slot) = self.wheel.cancel(key) {
            self.cancelled += 1;
            // No waker is left: the `Sleep` took it when it cancelled, and polls no more.
            drop(self.release(slots, slot));
        }
    }

    /// Moves a timer; false when the key is stale (it fired or was cancelled).
    pub(crate) fn reset(&mut self, key: TimerKey, tick: u64) -> bool {
        self.wheel.reset(key, tick)
    }

    /// Applies what other threads queued (see `TimerRemote::queued`).
    pub(crate) fn drain_remote(&mut self, remote: &TimerRemote) {
        if !remote.queued.swap(false, Ordering::Acquire) {
            return;
        }
        while let Some(key) = remote.cancellations.pop() {
            self.cancel(&remote.slots, key);
        }
        while let Some((slot, tick)) = remote.registrations.pop() {
            // A remote timer dropped before we got to it never enters the wheel; one
            // dropped after comes back through `cancellations`.
            if !remote.slots.get(slot).adopt(|| self.insert(tick, slot)) {
                // As in `cancel`: the cancel took the waker.
                drop(self.release(&remote.slots, slot));
            }
        }
    }

    /// Takes the next expired timer's slot, if any, without allocating. The caller
    /// fires it with no borrow of the driver held (firing wakes a task, which may arm
    /// a timer), then lets go of the wheel's hold ([`TimerDriver::release`]).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        let now = now_tick(self.origin, now);
        self.seen = self.seen.max(now);
        let next = self.wheel.next_expiration()?;
        if next > now {
            return None;
        }
        self.wheel.poll(now).map(|(_, slot)| slot)
    }

    /// How long the worker may sleep before a timer is due (`None`: no timers).
    pub(crate) fn park_timeout(&self, now: Instant) -> Option<Duration> {
        Some(self.next_wake(now)?.saturating_duration_since(now))
    }

    /// When the worker should wake for its timers (`None`: no timers).
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Instant> {
        let next = self.wheel.next_wake()?;
        let offset = Duration::from_nanos(next.saturating_mul(TICK.as_nanos() as u64));
        // Past what an Instant can hold: wake in a day; the wheel keeps the exact deadline.
        Some(
            self.origin
                .checked_add(offset)
                .unwrap_or(now + Duration::from_secs(86_400)),
        )
    }

    #[inline]
    pub(crate) fn has_timers(&self) -> bool {
        !self.wheel.is_empty()
    }

    pub(crate) fn publish_len(&self, remote: &TimerRemote) {
        remote.len.store(self.wheel.len(), Ordering::Relaxed);
        remote.armed.store(self.armed, Ordering::Relaxed);
        remote.cancelled.store(self.cancelled, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The 128-bit formulas the `u64` ones replaced.
    fn reference(d: Duration, ceil: bool) -> u64 {
        let (nanos, tick) = (d.as_nanos(), TICK.as_nanos());
        let t = if ceil {
            nanos.div_ceil(tick)
        } else {
            nanos / tick
        };
        t.min(u64::MAX as u128) as u64
    }

    #[test]
    fn tick_conversion_matches_the_128_bit_formula() {
        let tick = u64::from(TICK_NANOS);
        let mut durations = vec![
            Duration::ZERO,
            Duration::MAX,
            Duration::from_secs(u64::MAX / TICKS_PER_SEC),
        ];
        for secs in [
            0,
            1,
            2,
            59,
            3_600,
            86_400 * 365 * 30,
            u64::MAX / TICKS_PER_SEC + 1,
        ] {
            for nanos in [
                0,
                1,
                tick - 1,
                tick,
                tick + 1,
                999_999_999 - tick,
                999_999_999,
            ] {
                durations.push(Duration::new(secs, nanos as u32));
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..10_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            durations.push(Duration::new(
                state % (1 << 40),
                (state >> 34) as u32 % 1_000_000_000,
            ));
        }
        for d in durations {
            for ceil in [false, true] {
                assert_eq!(ticks(d, ceil), reference(d, ceil), "{d:?} ceil={ceil}");
            }
        }
    }
}
