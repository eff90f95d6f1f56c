//! The results table (Markdown, so it pastes into the README as is) and the JSON file.

use std::fmt::Write as _;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::runner::{Comparison, Config};

/// What the figures were measured on: without it, a ratio cannot be compared with
/// another run's.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPUs this process may run on (what `nproc` prints).
    pub nproc: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
}

impl Machine {
    /// Reads the machine's description; unknown parts read "unknown".
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism().map_or(0, usize::from);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine { nproc, kernel, cpu }
    }
}

/// The header line: machine, workers, rounds.
pub fn header(machine: &Machine, cfg: &Config) -> String {
    format!(
        "machine: nproc={} kernel=Linux {} cpu=\"{}\"; workers={} rounds={} scale={} budget={}s",
        machine.nproc,
        machine.kernel,
        machine.cpu,
        cfg.workers,
        cfg.rounds,
        cfg.scale,
        cfg.budget.as_secs_f64()
    )
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A Markdown table of comparisons that share their two peers. In an A/A table the
/// columns are told apart as `#1` (the rounds that ran first) and `#2`.
pub fn table(results: &[Comparison]) -> String {
    let Some(first) = results.first() else {
        return String::from("(no shape matched)\n");
    };
    let (a, b) = if first.a == first.b {
        (
            format!("{} #1", first.a.name()),
            format!("{} #2", first.b.name()),
        )
    } else {
        (first.a.name().to_owned(), first.b.name().to_owned())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| shape | {a} (median µs/iter) | {b} (median µs/iter) | ratio {a}/{b} | spread (min..max) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for c in results {
        let (lo, hi) = c.spread();
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.2} | {:.2}..{:.2} |",
            c.shape,
            micros(c.a_median()),
            micros(c.b_median()),
            c.ratio(),
            lo,
            hi
        );
    }
    out
}

/// Writes every table's comparisons, with the machine and settings, as JSON.
pub fn write_json(
    path: &str,
    machine: &Machine,
    cfg: &Config,
    tables: &[(&str, Vec<Comparison>)],
    io: serde_json::Value,
) -> io::Result<()> {
    let results: Vec<_> = tables
        .iter()
        .flat_map(|(mode, cmps)| cmps.iter().map(move |c| (mode, c)))
        .map(|(mode, c)| {
            let (lo, hi) = c.spread();
            serde_json::json!({
                "mode": mode,
                "shape": c.shape,
                "a": c.a.name(),
                "b": c.b.name(),
                "a_median_us": micros(c.a_median()),
                "b_median_us": micros(c.b_median()),
                "ratio": c.ratio(),
                "spread": [lo, hi],
                "a_rounds_us": c.a_rounds.iter().map(|d| micros(*d)).collect::<Vec<_>>(),
                "b_rounds_us": c.b_rounds.iter().map(|d| micros(*d)).collect::<Vec<_>>(),
                "a_iters": c.a_iters,
                "b_iters": c.b_iters,
            })
        })
        .collect();
    write_json_fields(
        path,
        machine,
        cfg,
        [("results", results.into()), ("io", io)],
    )
}

/// Writes `fields` (a mode's own results) after the machine and settings, as JSON.
pub fn write_json_fields(
    path: &str,
    machine: &Machine,
    cfg: &Config,
    fields: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
) -> io::Result<()> {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut doc = serde_json::json!({
        "unix_time": unix_time,
        "machine": { "nproc": machine.nproc, "kernel": machine.kernel, "cpu": machine.cpu },
        "workers": cfg.workers,
        "rounds": cfg.rounds,
        "scale": cfg.scale,
        "budget_s": cfg.budget.as_secs_f64(),
    });
    for (key, value) in fields {
        doc[key] = value;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}
