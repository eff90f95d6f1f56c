//! Timer shapes: what a proxy's timeouts cost.
//!
//! - `timer_storm`: 100 000 tasks each arm a sleep of 1–20 ms; once all are armed, half
//!   the tasks are aborted (their sleeps cancelled, mostly from a thread other than the
//!   one whose wheel holds them) and the other half fire. Per-worker wheels against
//!   tokio's shared, mutex-protected wheel.
//! - `timeout_ready`: 100 000 `timeout(1 s, ready)` calls in one task: the cost of
//!   wrapping an operation that completes at once (no timer should ever be armed).
//!
//! [`lateness`] is not a ratio but a distribution: how late timers fire
//! (fire time minus deadline) on each runtime, beside the floor: one plain thread that
//! sleeps until each deadline in turn, so the host's own wake-up latency shows.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::peers::Rt;
use crate::runner::{Bencher, Config, Peer, Shape};

const STORM: usize = 100_000;
const TIMEOUTS: usize = 100_000;

/// The timer shapes, uringo and tokio side by side.
pub fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "timer_storm",
            iters: 10,
            uringo: timer_storm::<uringo::Runtime>,
            tokio: timer_storm::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
        Shape {
            name: "timeout_ready",
            iters: 40,
            uringo: timeout_ready::<uringo::Runtime>,
            tokio: timeout_ready::<tokio::runtime::Runtime>,
            in_default_run: true,
        },
    ]
}

fn timer_storm<R: Rt>(rt: &R, b: &mut Bencher) {
    b.iter(|| storm_once(rt));
}

/// One storm: 100 000 sleeps of 1–20 ms armed, then half aborted and half awaited.
pub fn storm_once<R: Rt>(rt: &R) {
    let (tx, rx) = mpsc::channel();
    // Detached: completion is signalled through `tx`.
    drop(rt.spawn_remote(async move {
        let armed = Arc::new(AtomicUsize::new(0));
        let base = Instant::now();
        let handles: Vec<_> = (0..STORM)
            .map(|i| {
                let armed = armed.clone();
                let deadline = base + Duration::from_millis(1 + (i as u64 * 7919) % 20);
                R::spawn_local(async move {
                    let mut sleep = pin!(R::sleep_until(deadline));
                    // Arm it (first poll), then count it.
                    if poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx)))
                        .await
                        .is_ready()
                    {
                        armed.fetch_add(1, Relaxed);
                        return;
                    }
                    armed.fetch_add(1, Relaxed);
                    sleep.await;
                })
            })
            .collect();
        while armed.load(Relaxed) < STORM {
            R::yield_now().await;
        }
        for h in handles.iter().step_by(2) {
            R::abort(h);
        }
        for h in handles {
            let _ = h.await;
        }
        tx.send(()).unwrap();
    }));
    rx.recv().unwrap();
}

fn timeout_ready<R: Rt>(rt: &R, b: &mut Bencher) {
    b.iter(|| {
        let (tx, rx) = mpsc::channel();
        drop(rt.spawn_remote(async move {
            let mut sum = 0usize;
            for i in 0..TIMEOUTS {
                sum += R::timeout(Duration::from_secs(1), std::future::ready(i))
                    .await
                    .unwrap();
            }
            tx.send(sum).unwrap();
        }));
        assert_eq!(rx.recv().unwrap(), TIMEOUTS * (TIMEOUTS - 1) / 2);
    });
}

/// Sleeps per lateness round at `--scale 1`.
pub const LATENESS_SLEEPS: u64 = 10_000;

/// The deadlines of one lateness round: `n` spread over 0–200 ms after a base that
/// leaves 2 µs per sleep, plus 5 ms, for spawning and arming them all. So the figure is
/// how late armed timers fire, not how long 100 000 spawns take; a runtime that cannot
/// arm that fast shows up as late.
fn lateness_deadlines(n: u64) -> impl Iterator<Item = Instant> {
    let base = Instant::now() + Duration::from_millis(5) + Duration::from_micros(2 * n);
    (0..n).map(move |i| base + Duration::from_micros((i * 7919) % 200_000))
}

/// Fire time minus deadline, for `n` sleeps with deadlines spread over 0–200 ms; `None`
/// for a sleep that ended before its deadline.
fn lateness_sample<R: Rt>(rt: &R, n: u64) -> Vec<Option<Duration>> {
    let handles: Vec<_> = lateness_deadlines(n)
        .map(|deadline| {
            rt.spawn_remote(async move {
                R::sleep_until(deadline).await;
                Instant::now().checked_duration_since(deadline)
            })
        })
        .collect();
    rt.block_on(async {
        let mut late = Vec::with_capacity(handles.len());
        for h in handles {
            late.push(h.await.unwrap());
        }
        late
    })
}

/// The floor: the same deadlines on one plain thread that sleeps until the earliest
/// one not yet due and then counts every deadline that has passed as fired, the way a
/// timer wheel with no tick would. What is left is the host's wake-up latency.
fn lateness_floor(n: u64) -> Vec<Option<Duration>> {
    let mut deadlines: Vec<Instant> = lateness_deadlines(n).collect();
    deadlines.sort_unstable();
    let mut late = Vec::with_capacity(deadlines.len());
    let mut next = 0;
    while next < deadlines.len() {
        let now = Instant::now();
        if let Some(wait) = deadlines[next].checked_duration_since(now) {
            std::thread::sleep(wait);
            continue;
        }
        while next < deadlines.len() && deadlines[next] <= now {
            late.push(Some(now - deadlines[next]));
            next += 1;
        }
    }
    late
}

/// How late one runtime's (or the floor's) sleeps fired.
pub struct Lateness {
    pub name: &'static str,
    /// Fire time minus deadline of every sleep that did not end early, sorted.
    pub sorted: Vec<Duration>,
    /// Sleeps that ended before their deadline.
    pub early: usize,
}

/// Timer lateness per runtime and for the floor, over `cfg.rounds` alternating rounds
/// (one runtime alive at a time), each of `LATENESS_SLEEPS` times `--scale` sleeps.
pub fn lateness(cfg: &Config) -> std::io::Result<Vec<Lateness>> {
    let n = ((LATENESS_SLEEPS as f64 * cfg.scale).round() as u64).max(1);
    let mut out: Vec<Lateness> = [
        Peer::Uringo.name(),
        Peer::Tokio.name(),
        "floor (one thread sleeping)",
    ]
    .into_iter()
    .map(|name| Lateness {
        name,
        sorted: Vec::new(),
        early: 0,
    })
    .collect();
    for _ in 0..cfg.rounds {
        for (i, result) in out.iter_mut().enumerate() {
            let sample = match i {
                0 => {
                    let rt = uringo::Builder::new().worker_threads(cfg.workers).build()?;
                    lateness_sample(&rt, n)
                }
                1 => {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(cfg.workers)
                        .enable_all()
                        .build()?;
                    lateness_sample(&rt, n)
                }
                _ => lateness_floor(n),
            };
            result.early += sample.iter().filter(|late| late.is_none()).count();
            result.sorted.extend(sample.into_iter().flatten());
        }
    }
    for result in out.iter_mut() {
        result.sorted.sort_unstable();
    }
    Ok(out)
}

/// The `q`-quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_right_elements() {
        let xs: Vec<Duration> = (0..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile(&xs, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&xs, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&xs, 1.0), Duration::from_micros(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
