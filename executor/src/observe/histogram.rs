//! Log-scale histograms of durations: scheduling latency (wake to poll) and poll time,
//! one of each per worker.
//!
//! Recording is on the hot path (every poll), so a [`Recorder`] is written by its worker
//! only — a relaxed load and store per sample, no locked instruction — and counts clock
//! *ticks* (see `clock.rs`); bucket bounds become time when a snapshot is taken.
//!
//! Buckets are log-linear: every power of two is split into four, so a bucket's upper
//! bound is at most 25 % above any value in it. Percentiles are reported as the upper
//! bound of the bucket they fall in (never below the truth by more than the bucket),
//! clamped to the largest value seen.

use std::fmt;
use std::ops::Range;
// Not loom atomics: histograms are statistics, not part of any protocol a model checks,
// and loom would track each of the hundreds of buckets.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::clock;

/// Sub-buckets per power of two (as a shift).
const SUB_BITS: u32 = 2;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for 2^40 ticks (minutes, even at several GHz); longer lands in the last.
const BUCKETS: usize = ((40 - SUB_BITS + 1) * SUB as u32) as usize + SUB as usize;

#[inline]
fn bucket_of(ticks: u64) -> usize {
    if ticks < SUB {
        return ticks as usize;
    }
    let exp = 63 - ticks.leading_zeros();
    let sub = (ticks >> (exp - SUB_BITS)) & (SUB - 1);
    (((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize).min(BUCKETS - 1)
}

/// Smallest tick count in bucket `i`.
fn bucket_floor(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let exp = i / SUB - 1 + SUB_BITS as u64;
    let sub = i % SUB;
    (SUB + sub) << (exp - SUB_BITS as u64)
}

/// The hot-path side: one worker writes it.
pub(crate) struct Recorder {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// Counts one sample. Only the owning worker calls this.
    #[inline]
    pub(crate) fn record(&self, ticks: u64) {
        let bucket = &self.buckets[bucket_of(ticks)];
        bucket.store(bucket.load(Relaxed) + 1, Relaxed);
        if ticks > self.max.load(Relaxed) {
            self.max.store(ticks, Relaxed);
        }
    }

    /// The counts so far, with bounds converted at `nanos_per_tick`.
    pub(crate) fn snapshot_at(&self, nanos_per_tick: f64) -> DurationHistogram {
        DurationHistogram {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            max_ticks: self.max.load(Relaxed),
            nanos_per_tick,
        }
    }
}

/// A snapshot of a duration histogram from [`RuntimeMetrics`](crate::RuntimeMetrics):
/// how many samples fell in each log-scale bucket, and the largest.
///
/// ```
/// let rt = uringo::Builder::new().worker_threads(1).build()?;
/// rt.block_on(async {
///     for _ in 0..1000 {
///         uringo::spawn(async {}).await.unwrap();
///     }
/// });
/// // A random sample of the polls, one in 32 by default.
/// let latency = rt.metrics().worker_sched_latency(0);
/// assert!(latency.count() >= 1);
/// assert!(latency.p50() <= latency.p99() && latency.p99() <= latency.max());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct DurationHistogram {
    counts: Vec<u64>,
    max_ticks: u64,
    nanos_per_tick: f64,
}

impl Default for DurationHistogram {
    fn default() -> DurationHistogram {
        DurationHistogram {
            counts: vec![0; BUCKETS],
            max_ticks: 0,
            nanos_per_tick: 1.0,
        }
    }
}

impl DurationHistogram {
    fn time(&self, ticks: u64) -> Duration {
        clock::to_duration_at(ticks, self.nanos_per_tick)
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The largest sample (zero when empty).
    pub fn max(&self) -> Duration {
        self.time(self.max_ticks)
    }

    /// The `q`-quantile (`q` in 0..=1): the upper bound of the bucket holding it,
    /// clamped to [`max`](Self::max). Zero when empty.
    pub fn percentile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = bucket_floor(i + 1).saturating_sub(1);
                return self.time(upper.min(self.max_ticks));
            }
        }
        self.max()
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// The non-empty buckets, shortest first: the range of durations each covers and its
    /// count.
    pub fn buckets(&self) -> impl Iterator<Item = (Range<Duration>, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                (
                    self.time(bucket_floor(i))..self.time(bucket_floor(i + 1)),
                    n,
                )
            })
    }

    /// Adds `other`'s samples (another worker's, say) to these.
    pub fn merge(&mut self, other: &DurationHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max_ticks = self.max_ticks.max(other.max_ticks);
    }

    /// The samples recorded after `earlier` (a previous snapshot of the same histogram)
    /// was taken: what a periodic report wants. The maximum of the interval is estimated
    /// as the upper bound of its highest non-empty bucket, clamped to the overall max.
    pub fn since(&self, earlier: &DurationHistogram) -> DurationHistogram {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let max_ticks = counts
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, |i| (bucket_floor(i + 1) - 1).min(self.max_ticks));
        DurationHistogram {
            counts,
            max_ticks,
            nanos_per_tick: self.nanos_per_tick,
        }
    }
}

impl fmt::Debug for DurationHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurationHistogram")
            .field("count", &self.count())
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .field("max", &self.max())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_line_without_gaps() {
        for i in 0..BUCKETS - 1 {
            let (lo, hi) = (bucket_floor(i), bucket_floor(i + 1));
            assert!(lo < hi, "bucket {i}: {lo}..{hi}");
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi - 1), i);
            if lo >= SUB {
                assert!(
                    (hi - lo) * SUB <= lo,
                    "bucket {i} is wider than a quarter of its floor"
                );
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    fn histogram(samples: &[u64]) -> DurationHistogram {
        let r = Recorder::default();
        for &s in samples {
            r.record(s);
        }
        r.snapshot_at(1.0)
    }

    #[test]
    fn percentiles_bound_the_true_value_within_a_bucket() {
        let samples: Vec<u64> = (1..=10_000).collect();
        let h = histogram(&samples);
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), Duration::from_nanos(10_000));
        for (q, truth) in [(0.5, 5_000u64), (0.99, 9_900), (0.999, 9_990)] {
            let got = h.percentile(q).as_nanos() as u64;
            assert!(
                got >= truth && got <= truth + truth / 4,
                "q={q}: {got} vs {truth}"
            );
        }
        assert_eq!(h.percentile(1.0), h.max());
        assert_eq!(DurationHistogram::default().p99(), Duration::ZERO);
    }

    #[test]
    fn since_subtracts_and_merge_adds() {
        let r = Recorder::default();
        for _ in 0..10 {
            r.record(100);
        }
        let before = r.snapshot_at(1.0);
        for _ in 0..5 {
            r.record(5_000);
        }
        let after = r.snapshot_at(1.0);
        let delta = after.since(&before);
        assert_eq!(delta.count(), 5);
        assert!(delta.p50() >= Duration::from_nanos(5_000));
        assert!(delta.max() <= after.max());
        let mut merged = before.clone();
        merged.merge(&delta);
        assert_eq!(merged.count(), after.count());
        assert_eq!(merged.buckets().map(|(_, n)| n).sum::<u64>(), 15);
    }
}
