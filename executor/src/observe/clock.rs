//! The clock behind per-poll timing: scheduling latency, poll time, and the spawn and
//! last-poll stamps of a task dump.
//!
//! Timing every poll means reading a clock on every poll, and `Instant::now()` costs
//! about 26 ns on the 2-vCPU VM the benches run on — half of what a whole `yield_now`
//! round trip costs. So this clock counts *ticks*:
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
//! A worker also keeps its latest reading in a thread-local ([`recent`]): it reads the
//! clock when a poll ends (which is also when the next one starts, unless the worker
//! did something else in between) and after parking, and everything stamped on that
//! thread in the meantime — a task woken or spawned during a poll — takes that value
//! instead of reading the clock again. A wake during a poll is therefore stamped with
//! the poll's start: its measured latency can be longer than the true one by at most
//! the waking poll's duration.

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
        let base = Instant::now();
        Source {
            tsc,
            base_ticks: if tsc { rdtsc() } else { 0 },
            base,
            settled_rate: AtomicU64::new(0),
        }
    })
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
    let (ticks, elapsed) = (rdtsc(), source.base.elapsed());
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
