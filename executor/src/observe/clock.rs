//! The clock behind poll timing: scheduling latency, poll time, and the spawn and
//! last-poll stamps of a task dump.
//!
//! Timing a poll means reading a clock at the wake and around the poll, and
//! `Instant::now()` costs about 26 ns on the 2-vCPU VM the benches run on — half of
//! what a whole `yield_now` round trip costs. So only a random sample of the polls is
//! timed ([`Sampling`]), and this clock counts *ticks*:
//!
//! * the CPU's time-stamp counter (`rdtsc`, about 10 ns there) when the kernel itself
//!   keeps time with it (`/sys/.../current_clocksource` is `tsc`: the kernel has checked
//!   that it is invariant and in step across CPUs);
//! * nanoseconds of `Instant` since the process's first reading otherwise (other
//!   architectures, KVM guests on `kvm-clock`, containers without `/sys`).
//!
//! Ticks are converted to time only when someone looks (a metrics snapshot, a dump),
//! with a rate measured between the first reading and that moment, so the hot path
//! never multiplies and the rate gets more precise the longer the process runs.
//!
//! A worker also keeps its latest reading in a thread-local ([`recent`]): the end of its
//! last timed poll (which is also the start of the next, if that one is timed too and
//! the worker did nothing else in between), a timed wake, or the end of a park. Untimed
//! stamps (a dump's "runnable since" and "last polled") take that value instead of
//! reading the clock: they can be older than the truth by the time since the worker last
//! read it, a few polls on average. Timed stamps are always fresh readings.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which counter `now` reads, and where it started.
struct Source {
    /// `rdtsc` rather than `Instant`.
    tsc: bool,
    /// The first reading, as ticks and as an `Instant` (for the tick rate).
    base_ticks: u64,
    base: Instant,
    /// Nanoseconds per tick (f64 bits) once measured over at least a second; 0 before.
    settled_rate: AtomicU64,
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let tsc = kernel_uses_tsc();
        let (base_ticks, base) = if tsc {
            paired_reading()
        } else {
            (0, Instant::now())
        };
        Source {
            tsc,
            base_ticks,
            base,
            settled_rate: AtomicU64::new(0),
        }
    })
}

/// The TSC and `Instant` read at one moment, for the tick rate: the TSC is read on both
/// sides of the `Instant` and the pair retried while the two reads are far apart. A
/// thread preempted between a tick reading and its `Instant` would otherwise skew the
/// rate by the time it was away: 100 µs away in a process 3 ms old is a rate 3 % off,
/// which a task dump's ages carry until the rate settles.
fn paired_reading() -> (u64, Instant) {
    /// About a microsecond at the TSC rates of current CPUs; an undisturbed pair takes
    /// a few hundred ticks.
    const CLOSE: u64 = 2_000;
    let mut best: Option<(u64, u64, Instant)> = None;
    for _ in 0..8 {
        let before = rdtsc();
        let now = Instant::now();
        let gap = rdtsc().wrapping_sub(before);
        if best.is_none_or(|(best_gap, ..)| gap < best_gap) {
            best = Some((gap, before + gap / 2, now));
        }
        if gap <= CLOSE {
            break;
        }
    }
    let (_, ticks, now) = best.expect("at least one reading");
    (ticks, now)
}

/// Whether the kernel keeps time with the TSC (so it is invariant and synchronised).
fn kernel_uses_tsc() -> bool {
    if !cfg!(all(target_arch = "x86_64", not(loom))) {
        return false;
    }
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

#[cfg(all(target_arch = "x86_64", not(loom)))]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 CPU and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(all(target_arch = "x86_64", not(loom))))]
#[inline]
fn rdtsc() -> u64 {
    unreachable!("the TSC is only used on x86_64")
}

/// The current time in ticks. Only differences mean anything; convert them with
/// [`to_duration`].
#[inline]
pub(crate) fn now() -> u64 {
    let source = source();
    if source.tsc {
        rdtsc()
    } else {
        source.base.elapsed().as_nanos() as u64
    }
}

/// The process-wide origin of `Instant`s packed into 62-bit nanosecond counts (a timer
/// deadline in a task's wait word): the clock's first reading.
pub(crate) fn instant_origin() -> Instant {
    source().base
}

/// `at` as nanoseconds since [`instant_origin`] (0 for earlier instants).
pub(crate) fn nanos_since_origin(at: Instant) -> u64 {
    at.saturating_duration_since(source().base).as_nanos() as u64
}

crate::loom::thread_locals! {
    /// The latest reading of this thread's worker; 0 on other threads.
    static RECENT: Cell<u64> = const { Cell::new(0) };
}

/// A reading from no longer ago than this worker's current poll (see the module doc);
/// a fresh reading on threads that are not workers.
#[inline]
pub(crate) fn recent() -> u64 {
    match RECENT.with(Cell::get) {
        0 => now(),
        t => t,
    }
}

/// Reads the clock and makes the reading this thread's [`recent`] one.
#[inline]
pub(crate) fn refresh() -> u64 {
    let t = now().max(1);
    RECENT.with(|r| r.set(t));
    t
}

/// Which scheduling events are timed: one in `n` on average, each chosen at random on
/// the thread that makes the task runnable. Go's scheduler does the same for its
/// `/sched/latencies` metric (`gTrackingPeriod`, 8): timing every event costs a clock
/// read per poll, which a poll that does almost nothing (a `yield_now` loop) pays for
/// with a fifth of its time, and a uniform sample gives the same distribution.
///
/// uringo samples one in 32 ([`DEFAULT_SAMPLE`]), not Go's 8. Its cheapest poll, a
/// `yield_now` round trip, takes about 20 ns (Go's goroutine switch several times
/// that), a timed one about 9 ns more, and each random "timed or not" branch is
/// mispredicted about once per `n` events: at 8, those mispredictions alone cost a
/// `yield_now` loop some 15 % of its time (`benches/README.md`, 2026-12-04).
///
/// A timed event is marked in its stamp (see [`Sampling::stamp`]): the stamp is a fresh
/// reading with its lowest bit set. Every other stamp has that bit clear, so a task
/// carries its own "time this one" flag from the wake to the poll, with no extra word
/// and no second decision at the poll (which could not know when the wake happened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sampling {
    /// An event is timed when this thread's next random `u32` is below this; 2^32
    /// times every event.
    below: u64,
}

/// One scheduling event in this many is timed unless the builder says otherwise (see
/// [`Sampling`] for why not Go's 8).
pub(crate) const DEFAULT_SAMPLE: u32 = 32;

/// The stamp bit that says "this scheduling event is timed" (see [`Sampling`]).
const TIMED: u64 = 1;

impl Sampling {
    /// One event in `n` (at least 1: every event).
    pub(crate) fn one_in(n: u32) -> Sampling {
        Sampling {
            below: (1u64 << 32) / u64::from(n.max(1)),
        }
    }

    /// The stamp of a task made runnable now on this thread: for a sampled event a
    /// fresh reading marked [`is_timed`], else this thread's [`recent`] reading,
    /// unmarked (good enough for a dump's "runnable since", and free).
    #[inline]
    pub(crate) fn stamp(self) -> u64 {
        if u64::from(next_random()) < self.below {
            let t = now();
            // A worker keeps the fresher reading; other threads keep none.
            RECENT.with(|r| {
                if r.get() != 0 {
                    r.set(t.max(1));
                }
            });
            t | TIMED
        } else {
            untimed(recent())
        }
    }
}

/// Whether `stamp` marks a timed scheduling event (see [`Sampling`]).
#[inline]
pub(crate) fn is_timed(stamp: u64) -> bool {
    stamp & TIMED != 0
}

/// `t` as a stamp that marks nothing (one tick of precision is given up for the mark).
#[inline]
pub(crate) fn untimed(t: u64) -> u64 {
    t & !TIMED
}

crate::loom::thread_locals! {
    /// This thread's xorshift32 state for [`Sampling`]; 0 until first used.
    static RANDOM: Cell<u32> = const { Cell::new(0) };
}

/// A cheap pseudo-random `u32` (xorshift32), never 0. Only sampling uses it: it needs
/// no quality beyond spreading the timed events evenly over tasks and time.
#[inline]
fn next_random() -> u32 {
    RANDOM.with(|r| {
        let mut x = r.get();
        if x == 0 {
            // Seeded from the clock and the thread's own slot, so threads differ.
            x = (now() as u32 ^ (r as *const Cell<u32> as usize as u32)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        r.set(x);
        x
    })
}

/// Stops this thread from handing out stale readings (a worker about to exit).
pub(crate) fn forget_recent() {
    RECENT.with(|r| r.set(0));
}

/// Nanoseconds per tick.
pub(crate) fn nanos_per_tick() -> f64 {
    let source = source();
    if !source.tsc {
        return 1.0;
    }
    let settled = source.settled_rate.load(Ordering::Relaxed);
    if settled != 0 {
        return f64::from_bits(settled);
    }
    // Too short a baseline makes a poor rate; the first look may have to wait a little.
    let min = Duration::from_millis(2);
    let elapsed = source.base.elapsed();
    if elapsed < min {
        std::thread::sleep(min - elapsed);
    }
    let (ticks, now) = paired_reading();
    let elapsed = now.saturating_duration_since(source.base);
    let rate = elapsed.as_nanos() as f64 / ticks.saturating_sub(source.base_ticks).max(1) as f64;
    if elapsed >= Duration::from_secs(1) {
        source.settled_rate.store(rate.to_bits(), Ordering::Relaxed);
    }
    rate
}

/// A tick difference as time, at a rate the caller already has.
pub(crate) fn to_duration_at(ticks: u64, nanos_per_tick: f64) -> Duration {
    Duration::from_nanos((ticks as f64 * nanos_per_tick) as u64)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_time_that_passed() {
        let (t0, i0) = (now(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (t1, i1) = (now(), Instant::now());
        let measured = to_duration_at(t1 - t0, nanos_per_tick());
        let real = i1 - i0;
        let error = measured.abs_diff(real);
        assert!(
            error < real / 20,
            "20 ms of ticks read as {measured:?} (Instant says {real:?})"
        );
    }

    #[test]
    fn recent_is_fresh_off_workers_and_cached_on_them() {
        forget_recent();
        let a = recent();
        std::thread::sleep(Duration::from_millis(1));
        assert!(recent() > a, "off a worker, recent() reads the clock");
        let t = refresh();
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(recent(), t, "after refresh, recent() is the cached reading");
        forget_recent();
    }
}
