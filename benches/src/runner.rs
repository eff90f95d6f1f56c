//! The measurement protocol, and the statistics over it.
//!
//! The machines these benchmarks run on are shared and noisy, and two runtimes alive in
//! one process bias each other (idle workers still spin, park and steal CPU from the
//! peer: tokio measured against itself read 0.71 that way). So:
//!
//! 1. **One runtime at a time.** A round builds its runtime, runs the shape's warm-up
//!    iterations, times its measured iterations, and drops the runtime (which joins its
//!    workers) before the next round starts.
//! 2. **Alternate.** Rounds go A, B, A, B, ... so slow drifts of the machine (another
//!    tenant, frequency changes) hit both peers alike.
//! 3. **Medians.** A round's figure is the median of its iterations; a peer's figure is
//!    the median of its rounds. Both shrug off the odd preempted iteration or round.
//! 4. **Ratios.** Absolute times on a shared machine mean little; A/B does. Each pair
//!    of adjacent rounds also gives a ratio, and their min..max is the spread.
//!
//! `--aa` runs the same protocol with the same runtime on both sides; its ratios should
//! be ~1.00, and how far they stray is the noise floor of any A/B figure.

use std::io;
use std::time::{Duration, Instant};

/// One benchmark shape: a name, how many iterations a round times, and one function per
/// runtime. Each function gets a live runtime and a [`Bencher`]; it may set things up
/// (e.g. background load), must call [`Bencher::iter`] once, then tear its setup down.
/// The runtime is built and dropped by the runner, never by the shape.
pub struct Shape {
    /// Name used in the table and by `--filter`.
    pub name: &'static str,
    /// Measured iterations per round (before `--scale`).
    pub iters: u32,
    /// The uringo implementation.
    pub uringo: fn(&uringo::Runtime, &mut Bencher),
    /// The tokio implementation.
    pub tokio: fn(&tokio::runtime::Runtime, &mut Bencher),
    /// Part of a run without `--filter`; the others run only when named exactly (or
    /// with `--all`), e.g. a shape on which one peer takes seconds per iteration.
    pub in_default_run: bool,
}

/// A peer's side of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// uringo, built with `uringo::Builder`.
    Uringo,
    /// tokio's multi-threaded runtime with everything enabled.
    Tokio,
}

impl Peer {
    /// Lower-case name, as in the table.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Uringo => "uringo",
            Peer::Tokio => "tokio",
        }
    }

    /// Runs one round of `shape` on a runtime of its own, built here and dropped before
    /// returning. Returns the median iteration time and how many iterations were timed.
    fn round(self, shape: &Shape, cfg: &Config) -> io::Result<(Duration, usize)> {
        match self {
            Peer::Uringo => {
                let rt = uringo::Builder::new().worker_threads(cfg.workers).build()?;
                round_on_uringo(&rt, shape, cfg, None)
            }
            Peer::Tokio => round_on_tokio(&tokio_runtime(cfg.workers)?, shape, cfg),
        }
    }
}

/// tokio as both harnesses build it: multi-threaded, `workers` threads, every driver.
pub fn tokio_runtime(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// One round of `shape` on `rt`, a uringo runtime the caller built (so it can measure a
/// builder setting) and drops after. `probe`, if any, is sampled right before the first
/// measured iteration and right after the last: warm-up stays out of it. Returns the
/// median iteration time and how many iterations were timed.
pub fn round_on_uringo(
    rt: &uringo::Runtime,
    shape: &Shape,
    cfg: &Config,
    probe: Option<&mut dyn Probe>,
) -> io::Result<(Duration, usize)> {
    let mut bencher = Bencher::for_round(shape, cfg);
    bencher.probe = probe;
    (shape.uringo)(rt, &mut bencher);
    bencher.result(shape)
}

/// One round of `shape` on `rt`, a tokio runtime the caller built and drops after.
pub fn round_on_tokio(
    rt: &tokio::runtime::Runtime,
    shape: &Shape,
    cfg: &Config,
) -> io::Result<(Duration, usize)> {
    let mut bencher = Bencher::for_round(shape, cfg);
    (shape.tokio)(rt, &mut bencher);
    bencher.result(shape)
}

/// Runs `iters` timed iterations of `shape` on a fresh runtime of `peer` (no warm-up,
/// no budget) and returns their total time: what criterion's `iter_custom` wants.
pub fn total_time(shape: &Shape, peer: Peer, workers: usize, iters: u64) -> io::Result<Duration> {
    let iters = u32::try_from(iters).unwrap_or(u32::MAX).max(1);
    let mut bencher = Bencher::new(workers, 0, iters, Duration::MAX);
    match peer {
        Peer::Uringo => {
            let rt = uringo::Builder::new().worker_threads(workers).build()?;
            (shape.uringo)(&rt, &mut bencher);
        }
        Peer::Tokio => (shape.tokio)(&tokio_runtime(workers)?, &mut bencher),
    }
    Ok(bencher.samples.iter().sum())
}

/// Settings shared by every round.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads, the same on both sides.
    pub workers: usize,
    /// Rounds per peer.
    pub rounds: usize,
    /// Multiplier on each shape's measured iterations.
    pub scale: f64,
    /// Timed work one round may spend before it stops early (after at least
    /// [`MIN_ITERS`]); warm-up gets a quarter of it. Keeps a pathologically slow peer
    /// from stretching the run to hours, at the cost of fewer samples for that peer.
    pub budget: Duration,
}

/// Measured iterations a round runs whatever its budget: a median of fewer is noise.
pub const MIN_ITERS: u32 = 3;

/// Something sampled around a round's measured iterations (the runtime's own
/// histograms, say), so that what it reports excludes the warm-up.
pub trait Probe {
    /// Called right before the first measured iteration.
    fn start(&mut self);
    /// Called right after the last measured iteration.
    fn stop(&mut self);
}

/// Times a shape's iterations within one round.
pub struct Bencher<'p> {
    workers: usize,
    warmup: u32,
    iters: u32,
    budget: Duration,
    samples: Vec<Duration>,
    probe: Option<&'p mut dyn Probe>,
}

impl<'p> Bencher<'p> {
    fn new(workers: usize, warmup: u32, iters: u32, budget: Duration) -> Self {
        Bencher {
            workers,
            warmup,
            iters,
            budget,
            samples: Vec::with_capacity(iters as usize),
            probe: None,
        }
    }

    /// A bencher for one round of `shape` under `cfg`: its iterations times `--scale`,
    /// and a fifth of the work again, at least one iteration, as warm-up (first-touch
    /// allocations, thread start-up and cold caches stay out of the timed iterations).
    fn for_round(shape: &Shape, cfg: &Config) -> Self {
        let iters = ((f64::from(shape.iters) * cfg.scale).round() as u32).max(1);
        Bencher::new(cfg.workers, (iters / 5).max(1), iters, cfg.budget)
    }

    /// The round's median and sample count, once the shape has run.
    fn result(&self, shape: &Shape) -> io::Result<(Duration, usize)> {
        let median = self.median().ok_or_else(|| {
            io::Error::other(format!("shape {} never called Bencher::iter", shape.name))
        })?;
        Ok((median, self.samples()))
    }

    /// The runtime's worker count (shapes that load every worker need it).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `f` for the warm-up iterations untimed, then for the measured ones timed;
    /// each phase stops early once it has used up its share of the round's budget.
    pub fn iter(&mut self, mut f: impl FnMut()) {
        let start = Instant::now();
        for _ in 0..self.warmup {
            f();
            if start.elapsed() >= self.budget / 4 {
                break;
            }
        }
        let mut spent = Duration::ZERO;
        if let Some(probe) = self.probe.as_mut() {
            probe.start();
        }
        for i in 0..self.iters {
            let start = Instant::now();
            f();
            let t = start.elapsed();
            self.samples.push(t);
            spent += t;
            if i + 1 >= MIN_ITERS && spent >= self.budget {
                break;
            }
        }
        if let Some(probe) = self.probe.as_mut() {
            probe.stop();
        }
    }

    /// Measured iterations so far.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    fn median(&self) -> Option<Duration> {
        median(&self.samples)
    }
}

/// Median of `xs` (mean of the middle two for an even count); `None` when empty.
pub fn median<T: Copy + PartialOrd + Midpoint>(xs: &[T]) -> Option<T> {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in timings"));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(T::midpoint(v[n / 2 - 1], v[n / 2])),
    }
}

/// The value halfway between two others (what an even-length median needs).
pub trait Midpoint {
    /// Halfway between `a` and `b`.
    fn midpoint(a: Self, b: Self) -> Self;
}

impl Midpoint for Duration {
    fn midpoint(a: Self, b: Self) -> Self {
        (a + b) / 2
    }
}

impl Midpoint for f64 {
    fn midpoint(a: Self, b: Self) -> Self {
        (a + b) / 2.0
    }
}

/// The outcome of one shape: per-round figures of both sides, in round order.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The shape's name.
    pub shape: &'static str,
    /// Left side (the numerator of the ratio).
    pub a: Peer,
    /// Right side (the denominator).
    pub b: Peer,
    /// Per-round median iteration time of `a`.
    pub a_rounds: Vec<Duration>,
    /// Per-round median iteration time of `b`.
    pub b_rounds: Vec<Duration>,
    /// Iterations timed in each round of `a` (fewer than planned when the budget ran out).
    pub a_iters: Vec<usize>,
    /// Iterations timed in each round of `b`.
    pub b_iters: Vec<usize>,
}

impl Comparison {
    /// Median over rounds of `a`'s per-iteration time.
    pub fn a_median(&self) -> Duration {
        median(&self.a_rounds).unwrap_or_default()
    }

    /// Median over rounds of `b`'s per-iteration time.
    pub fn b_median(&self) -> Duration {
        median(&self.b_rounds).unwrap_or_default()
    }

    /// The headline figure: median of `a` over median of `b`; below 1, `a` is faster.
    pub fn ratio(&self) -> f64 {
        self.a_median().as_secs_f64() / self.b_median().as_secs_f64()
    }

    /// Ratio of each pair of adjacent rounds (`a` round i over `b` round i).
    pub fn round_ratios(&self) -> Vec<f64> {
        self.a_rounds
            .iter()
            .zip(&self.b_rounds)
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect()
    }

    /// Smallest and largest per-round ratio.
    pub fn spread(&self) -> (f64, f64) {
        self.round_ratios()
            .into_iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            })
    }
}

/// Runs `shape` for `cfg.rounds` rounds of `a` alternating with as many of `b` (which
/// may be the same peer: the A/A check). `progress` is told about each finished round.
pub fn compare(
    shape: &Shape,
    a: Peer,
    b: Peer,
    cfg: &Config,
    mut progress: impl FnMut(usize, Peer, Duration, usize),
) -> io::Result<Comparison> {
    let mut cmp = Comparison {
        shape: shape.name,
        a,
        b,
        a_rounds: Vec::with_capacity(cfg.rounds),
        b_rounds: Vec::with_capacity(cfg.rounds),
        a_iters: Vec::with_capacity(cfg.rounds),
        b_iters: Vec::with_capacity(cfg.rounds),
    };
    for round in 0..cfg.rounds {
        let (t, n) = a.round(shape, cfg)?;
        progress(round, a, t, n);
        cmp.a_rounds.push(t);
        cmp.a_iters.push(n);
        let (t, n) = b.round(shape, cfg)?;
        progress(round, b, t, n);
        cmp.b_rounds.push(t);
        cmp.b_iters.push(n);
    }
    Ok(cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(x: u64) -> Duration {
        Duration::from_micros(x)
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[us(5), us(1), us(3)]), Some(us(3)));
        assert_eq!(
            median(&[us(4), us(1), us(3), us(100)]),
            Some(Duration::from_nanos(3500))
        );
        assert_eq!(median::<Duration>(&[]), None);
        assert_eq!(median(&[2.0, 8.0]), Some(5.0));
    }

    #[test]
    fn ratio_is_median_over_median_and_spread_is_per_round() {
        let cmp = Comparison {
            shape: "t",
            a: Peer::Uringo,
            b: Peer::Tokio,
            // medians: a = 10, b = 20; an outlier round each that the median ignores.
            a_rounds: vec![us(10), us(9), us(50)],
            b_rounds: vec![us(20), us(18), us(25)],
            a_iters: vec![1; 3],
            b_iters: vec![1; 3],
        };
        assert_eq!(cmp.a_median(), us(10));
        assert_eq!(cmp.b_median(), us(20));
        assert!((cmp.ratio() - 0.5).abs() < 1e-12);
        let (lo, hi) = cmp.spread();
        assert!((lo - 0.5).abs() < 1e-12, "{lo}");
        assert!((hi - 2.0).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn bencher_times_only_measured_iterations() {
        let mut b = Bencher::new(2, 3, 4, Duration::from_secs(60));
        let mut calls = 0;
        b.iter(|| calls += 1);
        assert_eq!(calls, 7);
        assert_eq!(b.samples(), 4);
        assert!(b.median().is_some());
    }

    #[test]
    fn bencher_budget_stops_early_but_not_below_min_iters() {
        let mut b = Bencher::new(2, 10, 100, Duration::ZERO);
        let mut calls = 0;
        b.iter(|| calls += 1);
        assert_eq!(b.samples(), MIN_ITERS as usize);
        assert_eq!(calls, 1 + MIN_ITERS);
    }

    #[test]
    fn compare_alternates_and_builds_one_runtime_per_round() {
        fn uringo_shape(_: &uringo::Runtime, b: &mut Bencher) {
            b.iter(|| {});
        }
        fn tokio_shape(_: &tokio::runtime::Runtime, b: &mut Bencher) {
            b.iter(|| {});
        }
        let shape = Shape {
            name: "noop",
            iters: 2,
            uringo: uringo_shape,
            tokio: tokio_shape,
            in_default_run: true,
        };
        let cfg = Config {
            workers: 1,
            rounds: 2,
            scale: 1.0,
            budget: Duration::from_secs(1),
        };
        let mut order = Vec::new();
        let cmp = compare(&shape, Peer::Uringo, Peer::Tokio, &cfg, |r, p, _, _| {
            order.push((r, p))
        })
        .unwrap();
        assert_eq!(
            order,
            [
                (0, Peer::Uringo),
                (0, Peer::Tokio),
                (1, Peer::Uringo),
                (1, Peer::Tokio)
            ]
        );
        assert_eq!(cmp.a_rounds.len(), 2);
        assert_eq!(cmp.b_rounds.len(), 2);
    }
}
