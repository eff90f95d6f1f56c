//! `headtohead`: uringo against tokio on tokio's own scheduler benchmark shapes, with the
//! same worker count, one runtime alive at a time, rounds alternating between peers.
//! See README.md beside this crate for the method and the latest results.
//!
//! ```text
//! cargo run --release -p uringo-benches --bin headtohead -- [--workers N] [--rounds N]
//!     [--filter NAME[,NAME..]] [--all] [--aa] [--scale F] [--budget SECS] [--json PATH]
//!     [--lateness]
//! ```

mod oneshot;
mod peers;
mod report;
mod runner;
mod sched;
mod timers;

use std::process::ExitCode;
use std::time::Duration;

use runner::{Comparison, Config, Peer, Shape};

const USAGE: &str = "\
usage: headtohead [--workers N] [--rounds N] [--filter NAME[,NAME..]] [--all] [--aa]
                  [--scale F] [--budget SECS] [--json PATH] [--lateness]

  --workers N   worker threads for both runtimes (default: nproc)
  --rounds N    rounds per peer, alternating (default: 5)
  --filter S    run only shapes whose name contains one of the comma-separated S
                (shapes left out of the default run must be named exactly)
  --all         run every shape, including those left out of the default run
  --aa          A/A check: tokio vs tokio and uringo vs uringo (ratios should be ~1.00)
  --scale F     multiply every shape's measured iterations by F (default: 1)
  --budget SECS timed work per round before it stops early, after 3 iterations (default: 1)
  --json PATH   also write the results as JSON
  --lateness    instead of ratios: how late timers fire on each runtime (p50, p99, max)";

struct Args {
    cfg: Config,
    lateness: bool,
    filter: Vec<String>,
    all: bool,
    aa: bool,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        cfg: Config {
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            rounds: 5,
            scale: 1.0,
            budget: Duration::from_secs(1),
        },
        lateness: false,
        filter: Vec::new(),
        all: false,
        aa: false,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--workers" => args.cfg.workers = parse_positive(&flag, &value()?)?,
            "--rounds" => args.cfg.rounds = parse_positive(&flag, &value()?)?,
            "--scale" => {
                let v = value()?;
                args.cfg.scale = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--scale wants a positive number, got {v:?}"))?;
            }
            "--filter" => {
                let v = value()?;
                args.filter = v.split(',').map(str::to_owned).collect();
            }
            "--budget" => {
                let v = value()?;
                args.cfg.budget = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("--budget wants seconds, got {v:?}"))?;
            }
            "--all" => args.all = true,
            "--json" => args.json = Some(value()?),
            "--aa" => args.aa = true,
            "--lateness" => args.lateness = true,
            "-h" | "--help" => return Err(String::new()),
            // `cargo bench` passes this to every bench target; accept it silently.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Whether `--filter` / `--all` pick `shape`.
fn selected(shape: &Shape, args: &Args) -> bool {
    if args.all {
        return true;
    }
    if args.filter.is_empty() {
        return shape.in_default_run;
    }
    args.filter.iter().any(|f| {
        shape.name == f.as_str() || (shape.in_default_run && shape.name.contains(f.as_str()))
    })
}

fn parse_positive(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} wants a positive integer, got {v:?}"))
}

/// Runs every shape as `a` against `b`, printing each round's figure to stderr as it
/// lands (a long run shows it is alive, and a wild round is visible at once).
fn run_all(shapes: &[Shape], a: Peer, b: Peer, cfg: &Config) -> std::io::Result<Vec<Comparison>> {
    let mut out = Vec::with_capacity(shapes.len());
    for shape in shapes {
        eprint!("{:<24}", shape.name);
        let mut n = 0;
        let cmp = runner::compare(shape, a, b, cfg, |_round, peer, t, iters| {
            // Rounds alternate a, b, a, b: in an A/A run the parity tells the sides apart.
            let tag = match (a == b, n % 2) {
                (false, _) => "",
                (true, 0) => "#1",
                (true, _) => "#2",
            };
            n += 1;
            eprint!(
                " {}{tag}={:.0}µs×{iters}",
                peer.name(),
                t.as_secs_f64() * 1e6
            );
        })?;
        eprintln!("  ratio {:.2}", cmp.ratio());
        out.push(cmp);
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("headtohead: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    if args.lateness {
        return lateness(&args.cfg);
    }
    // Each shape group contributes its table here (I/O to come).
    let shapes: Vec<Shape> = sched::shapes()
        .into_iter()
        .chain(timers::shapes())
        .filter(|s| selected(s, &args))
        .collect();
    if shapes.is_empty() {
        eprintln!("headtohead: no shape matches {:?}", args.filter);
        return ExitCode::from(2);
    }

    let machine = report::Machine::detect();
    println!("{}", report::header(&machine, &args.cfg));
    let pairs: &[(&str, Peer, Peer)] = if args.aa {
        &[
            ("aa-tokio", Peer::Tokio, Peer::Tokio),
            ("aa-uringo", Peer::Uringo, Peer::Uringo),
        ]
    } else {
        &[("ab", Peer::Uringo, Peer::Tokio)]
    };

    let mut tables = Vec::new();
    for &(mode, a, b) in pairs {
        eprintln!("== {mode}: {} vs {}", a.name(), b.name());
        match run_all(&shapes, a, b, &args.cfg) {
            Ok(results) => tables.push((mode, results)),
            Err(err) => {
                eprintln!("headtohead: {mode}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    for (mode, results) in &tables {
        println!("\n{mode}:\n{}", report::table(results));
    }
    if let Some(path) = &args.json {
        if let Err(err) = report::write_json(path, &machine, &args.cfg, &tables) {
            eprintln!("headtohead: writing {path}: {err}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}

/// `--lateness`: fire time minus deadline, per runtime.
fn lateness(cfg: &Config) -> ExitCode {
    let machine = report::Machine::detect();
    println!("{}", report::header(&machine, cfg));
    match timers::lateness(cfg) {
        Ok(results) => {
            println!(
                "\ntimer lateness (fire time - deadline), 10 000 sleeps over 0-200 ms x {} rounds:",
                cfg.rounds
            );
            println!("| runtime | p50 | p99 | max |\n|---|---:|---:|---:|");
            for (peer, sorted) in &results {
                println!(
                    "| {} | {:?} | {:?} | {:?} |",
                    peer.name(),
                    timers::quantile(sorted, 0.5),
                    timers::quantile(sorted, 0.99),
                    sorted.last().copied().unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("headtohead: lateness: {err}");
            ExitCode::FAILURE
        }
    }
}
