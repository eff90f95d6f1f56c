//! The scheduler's own view of a shape: uringo's scheduling-latency and poll-time
//! histograms (`RuntimeMetrics::sched_latency` / `poll_time`), taken over a round's
//! measured iterations only and summed over rounds.
//!
//! Each round runs on a fresh runtime whose histograms start empty, but its warm-up
//! iterations (cold caches, first-touch allocations, thread start-up) land in them
//! too; so [`SchedLatency`] is a [`Probe`]: it snapshots both histograms right before
//! the first measured iteration and right after the last, and keeps the difference
//! (`DurationHistogram::since`). The edges are exact to within the polls running as a
//! snapshot is taken, at most one per worker: a poll's scheduling latency is recorded
//! as it starts, its poll time as it ends, possibly just after the last iteration's
//! completion signal reached the main thread.

use std::fmt::Write as _;

use uringo::{DurationHistogram, RuntimeMetrics};

use crate::runner::Probe;

/// Scheduling latency and poll time over the measured iterations of every round it
/// watched.
#[derive(Default)]
pub struct SchedLatency {
    /// Time from a task being woken (or yielding) to its next poll starting.
    pub sched_latency: DurationHistogram,
    /// Time inside each poll.
    pub poll_time: DurationHistogram,
    /// Rounds watched.
    pub rounds: usize,
}

impl SchedLatency {
    /// A probe on `metrics` (one round's runtime) that adds what it sees to `self`.
    pub fn watch(&mut self, metrics: RuntimeMetrics) -> RoundProbe<'_> {
        RoundProbe {
            total: self,
            metrics,
            before: None,
        }
    }

    /// A Markdown table: samples, p50, p99 and max of both histograms.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| histogram | samples | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n");
        for (name, h) in self.histograms() {
            let _ = writeln!(
                out,
                "| {name} | {} | {:?} | {:?} | {:?} |",
                h.count(),
                h.p50(),
                h.p99(),
                h.max()
            );
        }
        out
    }

    /// Both histograms' figures, for the JSON file.
    pub fn json(&self) -> serde_json::Value {
        let ns = |d: std::time::Duration| d.as_nanos() as u64;
        let mut doc = serde_json::Map::new();
        doc.insert("rounds".into(), self.rounds.into());
        for (name, h) in self.histograms() {
            doc.insert(
                name.replace(' ', "_"),
                serde_json::json!({
                    "samples": h.count(),
                    "p50_ns": ns(h.p50()),
                    "p99_ns": ns(h.p99()),
                    "max_ns": ns(h.max()),
                }),
            );
        }
        doc.into()
    }

    fn histograms(&self) -> [(&'static str, &DurationHistogram); 2] {
        [
            ("sched latency", &self.sched_latency),
            ("poll time", &self.poll_time),
        ]
    }
}

/// [`SchedLatency`]'s probe on one round's runtime.
pub struct RoundProbe<'a> {
    total: &'a mut SchedLatency,
    metrics: RuntimeMetrics,
    before: Option<(DurationHistogram, DurationHistogram)>,
}

impl Probe for RoundProbe<'_> {
    fn start(&mut self) {
        self.before = Some((self.metrics.sched_latency(), self.metrics.poll_time()));
    }

    fn stop(&mut self) {
        // A shape that never reached its measured iterations adds nothing.
        let Some((sched, poll)) = self.before.take() else {
            return;
        };
        self.total
            .sched_latency
            .merge(&self.metrics.sched_latency().since(&sched));
        self.total
            .poll_time
            .merge(&self.metrics.poll_time().since(&poll));
        self.total.rounds += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{round_on_uringo, Bencher, Config, Shape};
    use std::time::Duration;

    fn spawn_and_join(rt: &uringo::Runtime, b: &mut Bencher) {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..10 {
                    uringo::spawn(uringo::task::yield_now()).await.unwrap();
                }
            })
        });
    }

    fn unused(_: &tokio::runtime::Runtime, _: &mut Bencher) {}

    fn shape() -> Shape {
        Shape {
            name: "spawn_and_join",
            iters: 5,
            uringo: spawn_and_join,
            tokio: unused,
            in_default_run: false,
        }
    }

    fn cfg() -> Config {
        Config {
            workers: 1,
            rounds: 1,
            scale: 1.0,
            budget: Duration::from_secs(60),
        }
    }

    /// What the report relies on: the warm-up's polls stay out, every measured poll is
    /// in, and rounds add up.
    #[test]
    fn counts_the_measured_iterations_of_every_round_and_not_the_warm_up() {
        let mut total = SchedLatency::default();
        let mut whole_runtime = 0;
        for _ in 0..2 {
            let rt = uringo::Builder::new()
                .worker_threads(1)
                .poll_timing_sample(1)
                .build()
                .unwrap();
            let mut probe = total.watch(rt.metrics());
            round_on_uringo(&rt, &shape(), &cfg(), Some(&mut probe)).unwrap();
            whole_runtime += rt.metrics().sched_latency().count();
        }
        assert_eq!(total.rounds, 2);
        let measured = total.sched_latency.count();
        // 5 measured iterations of 10 tasks polled twice (spawn, then after the yield),
        // and the one warm-up iteration's 20 polls on top in the whole runtime's count.
        assert!(measured >= 2 * 5 * 20, "{measured}");
        assert!(measured < whole_runtime, "{measured} vs {whole_runtime}");
        // (A poll's time is recorded as it ends, possibly after the closing snapshot.)
        assert!(total.poll_time.count() + 2 >= measured);
        assert!(total.sched_latency.p50() <= total.sched_latency.p99());
        assert!(total.sched_latency.p99() <= total.sched_latency.max());
        assert!(total.table().contains("| sched latency | "));
        assert_eq!(total.json()["rounds"], 2);
    }

    #[test]
    fn a_runtime_without_poll_timing_reports_no_samples() {
        let mut total = SchedLatency::default();
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .poll_timing(false)
            .build()
            .unwrap();
        let mut probe = total.watch(rt.metrics());
        round_on_uringo(&rt, &shape(), &cfg(), Some(&mut probe)).unwrap();
        assert_eq!(total.rounds, 1);
        assert_eq!(total.sched_latency.count(), 0);
        assert_eq!(total.poll_time.count(), 0);
    }
}
