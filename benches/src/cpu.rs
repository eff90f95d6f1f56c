//! What a runtime costs in CPU when it has almost nothing to do, and under timer-heavy
//! work: process CPU time (`getrusage`, every thread), not wall time.
//!
//! - `idle`: a runtime with no tasks, measured over a fixed window.
//! - `ticker_10ms`: one task looping on a 10 ms sleep.
//! - `timer_storm_cpu`: one iteration of `timer_storm` (100 000 sleeps armed, half
//!   cancelled, half fired), CPU per iteration.
//!
//! Same protocol as the rest: one runtime alive at a time, built and dropped per round,
//! peers alternating, medians of rounds, the ratio of the medians. Idle and ticker CPU
//! are in milliseconds of CPU per second of wall time; the storm in milliseconds per
//! iteration.

use std::io;
use std::time::{Duration, Instant};

use crate::peers::Rt;
use crate::runner::{tokio_runtime, Peer};

/// How long a runtime settles after it is built, before the window opens (workers
/// start, park, and the first monitor rounds pass).
const SETTLE: Duration = Duration::from_millis(200);

/// One CPU shape: run `window` of work on a live runtime.
struct CpuShape {
    name: &'static str,
    unit: &'static str,
    uringo: fn(&uringo::Runtime, Duration) -> Duration,
    tokio: fn(&tokio::runtime::Runtime, Duration) -> Duration,
}

/// One shape's result: the median per peer, in its unit, and the rounds' figures.
pub struct CpuResult {
    /// Shape name.
    pub name: &'static str,
    /// "ms/s" or "ms/iter".
    pub unit: &'static str,
    /// Median for uringo.
    pub uringo: f64,
    /// Median for tokio.
    pub tokio: f64,
}

fn shapes() -> [CpuShape; 3] {
    [
        CpuShape {
            name: "idle",
            unit: "ms/s",
            uringo: idle::<uringo::Runtime>,
            tokio: idle::<tokio::runtime::Runtime>,
        },
        CpuShape {
            name: "ticker_10ms",
            unit: "ms/s",
            uringo: ticker::<uringo::Runtime>,
            tokio: ticker::<tokio::runtime::Runtime>,
        },
        CpuShape {
            name: "timer_storm_cpu",
            unit: "ms/iter",
            uringo: storm::<uringo::Runtime>,
            tokio: storm::<tokio::runtime::Runtime>,
        },
    ]
}

/// Process CPU time so far (user + system, every thread).
pub fn process_cpu() -> Duration {
    // SAFETY: `usage` is a plain C struct that getrusage fills in; zeroed is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage struct.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU spent while the calling thread sleeps `window`.
fn cpu_over(window: Duration) -> Duration {
    let before = process_cpu();
    std::thread::sleep(window);
    process_cpu() - before
}

fn idle<R: Rt>(_rt: &R, window: Duration) -> Duration {
    cpu_over(window)
}

fn ticker<R: Rt>(rt: &R, window: Duration) -> Duration {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = rt.spawn_remote(async move {
        let mut next = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            next += Duration::from_millis(10);
            R::sleep_until(next).await;
        }
    });
    std::thread::sleep(SETTLE);
    let cpu = cpu_over(window);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = rt.block_on(task);
    cpu
}

fn storm<R: Rt>(rt: &R, _window: Duration) -> Duration {
    let before = process_cpu();
    crate::timers::storm_once(rt);
    process_cpu() - before
}

/// Runs every CPU shape for `rounds` rounds per peer, alternating, one runtime at a
/// time, `window` per idle or ticker round.
pub fn run(workers: usize, rounds: u32, window: Duration) -> io::Result<Vec<CpuResult>> {
    let mut results = Vec::new();
    for shape in shapes() {
        let mut figures = [Vec::new(), Vec::new()];
        for _ in 0..rounds.max(1) {
            for (i, peer) in [Peer::Uringo, Peer::Tokio].into_iter().enumerate() {
                let cpu = match peer {
                    Peer::Uringo => {
                        let rt = uringo::Builder::new().worker_threads(workers).build()?;
                        std::thread::sleep(SETTLE);
                        (shape.uringo)(&rt, window)
                    }
                    Peer::Tokio => {
                        let rt = tokio_runtime(workers)?;
                        std::thread::sleep(SETTLE);
                        (shape.tokio)(&rt, window)
                    }
                };
                let ms = cpu.as_secs_f64() * 1e3;
                figures[i].push(if shape.unit == "ms/s" {
                    ms / window.as_secs_f64()
                } else {
                    ms
                });
            }
        }
        results.push(CpuResult {
            name: shape.name,
            unit: shape.unit,
            uringo: median(&mut figures[0]),
            tokio: median(&mut figures[1]),
        });
    }
    Ok(results)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The results as a markdown table.
pub fn table(results: &[CpuResult]) -> String {
    let mut out = String::from(
        "| shape | uringo | tokio | unit | ratio uringo/tokio | uringo - tokio |\n|---|---:|---:|---|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} | {:.2} | {:+.3} |\n",
            r.name,
            r.uringo,
            r.tokio,
            r.unit,
            r.uringo / r.tokio.max(1e-9),
            r.uringo - r.tokio
        ));
    }
    out
}
