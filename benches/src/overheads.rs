//! `headtohead --overheads`: what the observability built into uringo's scheduler costs.
//!
//! Three switches, each measured on the shape that feels it most, against the same
//! runtime with the switch off and against tokio:
//!
//! - **the live-task registry** (what task dumps and shutdown use: every spawn enters
//!   the task, every completion removes it) on spawn_many_local, 10 000 spawns per
//!   iteration: uringo as built by default vs `Builder::__without_task_registry()`;
//! - **poll timing** (a random one in 32 polls timed with the time-stamp counter,
//!   feeding the scheduling-latency and poll-time histograms) on yield_many, 200 000
//!   yields per iteration: uringo as built by default vs `Builder::poll_timing(false)`;
//! - **the search spin** (a searching worker watches for work for 5 µs before it
//!   parks) on chained_spawn, 1 000 hand-offs per iteration: uringo as built by default
//!   vs `Builder::search_spin(Duration::ZERO)`. Its cost is CPU when work comes
//!   sporadically, which the `trickle` binary measures.
//!
//! Same protocol as the rest of the harness (`runner.rs`): one runtime alive at a time,
//! the variants of an experiment in alternating rounds, medians of iterations and of
//! rounds. The cost per operation is the difference of the medians over the operations
//! in one iteration. The differences are a few per cent of a shape, so each experiment
//! carries its own A/A check: every cycle runs default uringo twice, before and after
//! the variant without the switch (uringo, without, uringo #2, tokio), and the table
//! shows uringo/uringo #2 beside the cost; a cost inside that band is noise.
//!
//! The default runtime's yield_many rounds also report its scheduling latency and poll
//! time over their measured iterations ([`SchedLatency`]).

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use crate::runner::{self, median, Config, Shape};
use crate::sched::{self, CHAIN, NUM_SPAWN, NUM_YIELD, YIELD_TASKS};
use crate::schedlat::SchedLatency;

/// A runtime as one experiment builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `uringo::Builder::new()`: registry and poll timing on.
    Uringo,
    /// The same again, later in each cycle: the A/A check.
    UringoAgain,
    /// uringo without the live-task registry.
    UringoNoRegistry,
    /// uringo without poll timing.
    UringoUntimed,
    /// uringo whose searching worker parks at once instead of spinning first.
    UringoNoSpin,
    /// tokio, multi-threaded, every driver.
    Tokio,
}

impl Variant {
    /// Name in the tables and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Uringo => "uringo",
            Variant::UringoAgain => "uringo#2",
            Variant::UringoNoRegistry => "uringo-no-registry",
            Variant::UringoUntimed => "uringo-untimed",
            Variant::UringoNoSpin => "uringo-no-spin",
            Variant::Tokio => "tokio",
        }
    }

    /// One round of `shape` on a runtime of this variant, built here and dropped before
    /// returning; `latency`, when given, collects the default runtime's histograms.
    fn round(
        self,
        shape: &Shape,
        cfg: &Config,
        latency: Option<&mut SchedLatency>,
    ) -> io::Result<(Duration, usize)> {
        let mut builder = uringo::Builder::new();
        builder.worker_threads(cfg.workers);
        match self {
            Variant::Tokio => {
                return runner::round_on_tokio(&runner::tokio_runtime(cfg.workers)?, shape, cfg)
            }
            Variant::Uringo | Variant::UringoAgain => {}
            Variant::UringoNoRegistry => {
                builder.__without_task_registry();
            }
            Variant::UringoUntimed => {
                builder.poll_timing(false);
            }
            Variant::UringoNoSpin => {
                builder.search_spin(Duration::ZERO);
            }
        }
        let rt = builder.build()?;
        match latency {
            Some(total) => {
                let mut probe = total.watch(rt.metrics());
                runner::round_on_uringo(&rt, shape, cfg, Some(&mut probe))
            }
            None => runner::round_on_uringo(&rt, shape, cfg, None),
        }
    }
}

/// One switch: a shape, uringo with the switch on (the default), off, and tokio.
struct Experiment {
    /// What the switch is, as the table says it.
    switch: &'static str,
    /// The operation it costs on, per iteration.
    op: &'static str,
    shape: &'static str,
    /// Operations the switch acts on in one iteration of the shape.
    ops_per_iter: usize,
    without: Variant,
}

const EXPERIMENTS: [Experiment; 3] = [
    Experiment {
        switch: "task registry",
        op: "spawn",
        shape: "spawn_many_local",
        // The root task's own spawn is one more: under 0.01 %, left out.
        ops_per_iter: NUM_SPAWN,
        without: Variant::UringoNoRegistry,
    },
    Experiment {
        switch: "poll timing",
        op: "poll",
        shape: "yield_many",
        // Every yield is followed by a poll, and each task has its first poll too.
        ops_per_iter: YIELD_TASKS * (NUM_YIELD + 1),
        without: Variant::UringoUntimed,
    },
    // Not observability but the same question (what one scheduler switch does to one
    // shape), asked where the switch matters most: each link is a hand-off that a
    // worker which has just parked must be woken for. A cost below 1.00 is a saving.
    Experiment {
        switch: "search spin",
        op: "link",
        shape: "chained_spawn",
        ops_per_iter: CHAIN,
        without: Variant::UringoNoSpin,
    },
];

/// The figures of one experiment: per-round medians of each variant, in round order.
pub struct Overhead {
    /// What the switch is.
    pub switch: &'static str,
    /// The operation the cost is per.
    pub op: &'static str,
    /// The shape it ran on.
    pub shape: &'static str,
    /// Operations per iteration.
    pub ops_per_iter: usize,
    /// The variant with the switch off.
    pub without: Variant,
    /// Per variant (default uringo, uringo without the switch, default uringo again,
    /// tokio): its per-round median iteration times and iterations timed.
    pub rounds: Vec<(Variant, Vec<Duration>, Vec<usize>)>,
}

impl Overhead {
    fn rounds_of(&self, v: Variant) -> &[Duration] {
        self.rounds
            .iter()
            .find(|(w, ..)| *w == v)
            .map_or(&[], |(_, r, _)| r.as_slice())
    }

    /// Median over rounds of `v`'s per-iteration time.
    pub fn median(&self, v: Variant) -> Duration {
        median(self.rounds_of(v)).unwrap_or_default()
    }

    /// Median of `a` over median of `b`.
    pub fn ratio(&self, a: Variant, b: Variant) -> f64 {
        self.median(a).as_secs_f64() / self.median(b).as_secs_f64()
    }

    /// The switch's cost as a ratio: default uringo over uringo without it.
    pub fn cost_ratio(&self) -> f64 {
        self.ratio(Variant::Uringo, self.without)
    }

    /// Smallest and largest per-round cost ratio (round i over round i).
    pub fn cost_spread(&self) -> (f64, f64) {
        self.spread(Variant::Uringo, self.without)
    }

    /// The A/A check: default uringo over itself, run later in the same cycles.
    pub fn noise_ratio(&self) -> f64 {
        self.ratio(Variant::Uringo, Variant::UringoAgain)
    }

    /// Smallest and largest per-round A/A ratio.
    pub fn noise_spread(&self) -> (f64, f64) {
        self.spread(Variant::Uringo, Variant::UringoAgain)
    }

    fn spread(&self, a: Variant, b: Variant) -> (f64, f64) {
        self.rounds_of(a)
            .iter()
            .zip(self.rounds_of(b))
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            })
    }

    /// The switch's cost per operation in ns: difference of the medians over the
    /// operations in an iteration. Wall time: when every worker is busy (yield_many)
    /// the CPU time per operation is up to the worker count times this. Negative when
    /// noise outweighs it.
    pub fn cost_per_op_ns(&self) -> f64 {
        let diff =
            self.median(Variant::Uringo).as_secs_f64() - self.median(self.without).as_secs_f64();
        diff * 1e9 / self.ops_per_iter as f64
    }
}

/// Everything `--overheads` measured.
pub struct Overheads {
    /// One per switch.
    pub experiments: Vec<Overhead>,
    /// The default runtime's histograms over the measured iterations of its yield_many
    /// rounds.
    pub latency: SchedLatency,
}

/// Runs every experiment, `cfg.rounds` rounds per variant, the four variants of an
/// experiment alternating. `progress` is told about each finished round.
pub fn run(
    cfg: &Config,
    mut progress: impl FnMut(&str, Variant, Duration, usize),
) -> io::Result<Overheads> {
    let shapes = sched::shapes();
    let mut latency = SchedLatency::default();
    let mut experiments = Vec::with_capacity(EXPERIMENTS.len());
    for ex in &EXPERIMENTS {
        let shape = shapes
            .iter()
            .find(|s| s.name == ex.shape)
            .ok_or_else(|| io::Error::other(format!("no shape named {}", ex.shape)))?;
        let variants = [
            Variant::Uringo,
            ex.without,
            Variant::UringoAgain,
            Variant::Tokio,
        ];
        let mut rounds: Vec<_> = variants
            .iter()
            .map(|&v| (v, Vec::new(), Vec::new()))
            .collect();
        for _ in 0..cfg.rounds {
            for (v, times, iters) in rounds.iter_mut() {
                // The latency report is yield_many's: where every poll is a reschedule.
                let watch =
                    (*v == Variant::Uringo && ex.shape == "yield_many").then_some(&mut latency);
                let (t, n) = v.round(shape, cfg, watch)?;
                progress(ex.shape, *v, t, n);
                times.push(t);
                iters.push(n);
            }
        }
        experiments.push(Overhead {
            switch: ex.switch,
            op: ex.op,
            shape: ex.shape,
            ops_per_iter: ex.ops_per_iter,
            without: ex.without,
            rounds,
        });
    }
    Ok(Overheads {
        experiments,
        latency,
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl Overheads {
    /// The Markdown tables: one row per switch, then the latency report.
    pub fn tables(&self) -> String {
        let mut out = String::from(
            "| switch (shape, ops/iter) | uringo (median µs/iter) | without (median µs/iter) | tokio (median µs/iter) | cost: uringo/without (spread) | A/A: uringo/uringo#2 (spread) | cost per op | uringo/tokio | without/tokio |\n\
             |---|---:|---:|---:|---|---|---:|---:|---:|\n",
        );
        for e in &self.experiments {
            let (lo, hi) = e.cost_spread();
            let (aa_lo, aa_hi) = e.noise_spread();
            let _ = writeln!(
                out,
                "| {} ({}, {} {}s) | {:.1} | {:.1} | {:.1} | {:.3} ({:.2}..{:.2}) | {:.3} ({:.2}..{:.2}) | {:+.1} ns/{} | {:.2} | {:.2} |",
                e.switch,
                e.shape,
                e.ops_per_iter,
                e.op,
                micros(e.median(Variant::Uringo)),
                micros(e.median(e.without)),
                micros(e.median(Variant::Tokio)),
                e.cost_ratio(),
                lo,
                hi,
                e.noise_ratio(),
                aa_lo,
                aa_hi,
                e.cost_per_op_ns(),
                e.op,
                e.ratio(Variant::Uringo, Variant::Tokio),
                e.ratio(e.without, Variant::Tokio),
            );
        }
        let _ = write!(
            out,
            "\nuringo (default) under yield_many, measured iterations of {} rounds:\n{}",
            self.latency.rounds,
            self.latency.table()
        );
        out
    }

    /// Every round's figure, the derived ratios and the latency report, for `--json`.
    pub fn json(&self) -> serde_json::Value {
        let experiments: Vec<_> = self
            .experiments
            .iter()
            .map(|e| {
                let variants: Vec<_> = e
                    .rounds
                    .iter()
                    .map(|(v, times, iters)| {
                        serde_json::json!({
                            "variant": v.name(),
                            "median_us": micros(e.median(*v)),
                            "rounds_us": times.iter().map(|d| micros(*d)).collect::<Vec<_>>(),
                            "iters": iters,
                        })
                    })
                    .collect();
                let (lo, hi) = e.cost_spread();
                let (aa_lo, aa_hi) = e.noise_spread();
                serde_json::json!({
                    "switch": e.switch,
                    "shape": e.shape,
                    "op": e.op,
                    "ops_per_iter": e.ops_per_iter,
                    "without": e.without.name(),
                    "variants": variants,
                    "cost_ratio": e.cost_ratio(),
                    "cost_spread": [lo, hi],
                    "aa_ratio": e.noise_ratio(),
                    "aa_spread": [aa_lo, aa_hi],
                    "cost_per_op_ns": e.cost_per_op_ns(),
                    "uringo_vs_tokio": e.ratio(Variant::Uringo, Variant::Tokio),
                    "without_vs_tokio": e.ratio(e.without, Variant::Tokio),
                })
            })
            .collect();
        serde_json::json!({
            "experiments": experiments,
            "sched_latency_yield_many": self.latency.json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(x: u64) -> Duration {
        Duration::from_micros(x)
    }

    #[test]
    fn cost_is_the_difference_of_medians_per_operation() {
        let e = Overhead {
            switch: "s",
            op: "spawn",
            shape: "t",
            ops_per_iter: 1000,
            without: Variant::UringoNoRegistry,
            rounds: vec![
                // medians 110, 100, 200 µs; an outlier round each that they ignore.
                (
                    Variant::Uringo,
                    vec![us(110), us(500), us(108), us(111)],
                    vec![1; 4],
                ),
                (
                    Variant::UringoNoRegistry,
                    vec![us(100), us(99), us(101), us(900)],
                    vec![1; 4],
                ),
                (
                    Variant::UringoAgain,
                    vec![us(100), us(130), us(105), us(95)],
                    vec![1; 4],
                ),
                (
                    Variant::Tokio,
                    vec![us(200), us(200), us(1), us(200)],
                    vec![1; 4],
                ),
            ],
        };
        assert_eq!(e.median(Variant::Uringo), Duration::from_nanos(110_500));
        assert_eq!(
            e.median(Variant::UringoNoRegistry),
            Duration::from_nanos(100_500)
        );
        assert!((e.cost_ratio() - 110.5 / 100.5).abs() < 1e-12);
        // (110.5 - 100.5) µs over 1000 spawns.
        assert!(
            (e.cost_per_op_ns() - 10.0).abs() < 1e-9,
            "{}",
            e.cost_per_op_ns()
        );
        assert!((e.ratio(Variant::Uringo, Variant::Tokio) - 110.5 / 200.0).abs() < 1e-12);
        let (lo, hi) = e.cost_spread();
        assert!((hi - 500.0 / 99.0).abs() < 1e-12, "{hi}");
        assert!((lo - 111.0 / 900.0).abs() < 1e-12, "{lo}");
        // A/A: 110.5 over 102.5; per round 1.10, 3.85, 1.03, 1.17.
        assert!((e.noise_ratio() - 110.5 / 102.5).abs() < 1e-12);
        let (lo, hi) = e.noise_spread();
        assert!((lo - 108.0 / 105.0).abs() < 1e-12, "{lo}");
        assert!((hi - 500.0 / 130.0).abs() < 1e-12, "{hi}");
    }

    #[test]
    fn a_variant_slower_off_than_on_gives_a_negative_cost() {
        let e = Overhead {
            switch: "s",
            op: "poll",
            shape: "t",
            ops_per_iter: 10,
            without: Variant::UringoUntimed,
            rounds: vec![
                (Variant::Uringo, vec![us(1)], vec![1]),
                (Variant::UringoUntimed, vec![us(2)], vec![1]),
                (Variant::Tokio, vec![us(2)], vec![1]),
            ],
        };
        assert!((e.cost_per_op_ns() + 100.0).abs() < 1e-9);
    }

    /// A tiny real run: every variant's rounds alternate and land, and only the default
    /// runtime's yield_many rounds feed the latency report.
    #[test]
    fn a_smoke_run_measures_every_variant_and_the_latency_of_the_default_only() {
        let cfg = Config {
            workers: 2,
            rounds: 2,
            scale: 0.01,
            budget: Duration::from_millis(100),
        };
        let mut order = Vec::new();
        let o = run(&cfg, |shape, v, t, n| {
            assert!(t > Duration::ZERO && n > 0);
            order.push((shape.to_owned(), v));
        })
        .unwrap();
        let yield_order: Vec<_> = order
            .iter()
            .filter(|(s, _)| s == "yield_many")
            .map(|(_, v)| *v)
            .collect();
        use Variant::*;
        assert_eq!(
            yield_order,
            [
                Uringo,
                UringoUntimed,
                UringoAgain,
                Tokio,
                Uringo,
                UringoUntimed,
                UringoAgain,
                Tokio
            ]
        );
        assert_eq!(order.len(), 24);
        assert_eq!(o.experiments.len(), 3);
        assert_eq!(o.experiments[0].without, UringoNoRegistry);
        assert_eq!(o.experiments[2].without, UringoNoSpin);
        assert_eq!(o.latency.rounds, 2);
        // yield_many at scale 0.01: one measured iteration per round, 200 200 polls,
        // one in 32 of them (at random) with its scheduling latency recorded as it
        // starts.
        let timed = o.latency.sched_latency.count();
        assert!(timed >= 2 * 200_200 / 48, "{:?}", o.latency.sched_latency);
        // A poll's time is recorded as it ends: the last poll of a round can end after
        // the round's closing snapshot, at most one per worker.
        assert!(o.latency.poll_time.count() + 2 * 2 >= timed);
        assert!(o.tables().contains("| task registry (spawn_many_local"));
        assert!(o.tables().contains("| search spin (chained_spawn"));
        let json = o.json();
        assert!(json["experiments"][1]["cost_per_op_ns"].is_f64());
        assert!(json["experiments"][1]["aa_ratio"].as_f64().unwrap() > 0.0);
    }
}
