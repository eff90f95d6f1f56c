//! Finding a task leak with a task dump: an echo server whose every connection leaves a
//! keep-alive ticker behind, a client that opens connections and closes some, the
//! live-task watermark warning, and `Handle::dump()` showing which spawn site leaks.
//!
//! ```sh
//! cargo run --release -p uringo-examples --example dump -- --connections 1000
//! ```

use std::process::ExitCode;

use uringo_examples::cli;
use uringo_examples::dump_demo::{self, Config, Report, SiteChange};
use uringo_examples::loadgen::raise_fd_limit;
use uringo_examples::server::init_logging;

/// Lines of the full (`{:#}`) dump to print.
const FULL_LINES: usize = 10;

const HELP: &str = "\
dump: an echo server that leaks a task per connection, and the task dump that shows it

Usage: dump [FLAGS]

Flags:
  --connections N       client connections to open and keep open [default: 1000]
  --close K             how many of them to close before the second dump [default: 100]
  --keepalive DURATION  the (leaking) keep-alive ticker's period [default: 1s]
  --workers N           worker threads of the server's runtime [default: 2]
  --warn-at N           live-task watermark for the leak warning [default: --connections]
  --help                print this help
";

fn parse() -> Result<Option<Config>, cli::Error> {
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut warn_at = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("connections") => config.connections = parser.value()?.parse()?,
            Long("close") => config.close = parser.value()?.parse()?,
            Long("keepalive") => config.keepalive = cli::duration_on(parser.value()?)?,
            Long("workers") => config.workers = cli::positive(parser.value()?)?,
            Long("warn-at") => warn_at = Some(parser.value()?.parse()?),
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    config.linger = config.keepalive * 3 / 2;
    config.task_count_warning = warn_at.unwrap_or(config.connections);
    Ok(Some(config))
}

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dump: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> std::io::Result<()> {
    let Some(config) = parse().map_err(cli::into_io)? else {
        print!("{HELP}");
        return Ok(());
    };
    // Both ends of every connection live in this process.
    raise_fd_limit()?;
    let report = dump_demo::run(&config)?;
    print_report(&report);
    Ok(())
}

fn print_report(report: &Report) {
    println!(
        "server on {}; the client opened {} connections, each sent a line and got its echo\n",
        report.addr, report.connections
    );
    println!(
        "== Handle::dump() with every connection open ==\n{}",
        report.before
    );
    println!(
        "== after the client closed {} of them ==\n{}",
        report.closed, report.after
    );
    let full = format!("{:#}", report.after);
    let total = full.lines().count();
    println!("== the same, in full ({{:#}}), first {FULL_LINES} of {total} lines ==");
    for line in full.lines().take(FULL_LINES) {
        println!("{line}");
    }
    println!("\n== reading it ==");
    let leaks = report.leaking_sites();
    for site in report.sites() {
        println!("{}", explain(report, &site, leaks.contains(&site)));
    }
    println!(
        "The tickers ticked {} times in all, {} of them after the client closed {} \
         connections: the first lines of the full dump above are tickers of closed \
         connections (no \"{}PEER\" task left for their peer), still waking up.",
        report.keepalive_ticks,
        report.ticks_since_close,
        report.closed,
        dump_demo::HANDLER_PREFIX
    );
}

/// What one spawn site's before/after counts say.
fn explain(report: &Report, site: &SiteChange, leaking: bool) -> String {
    let waits = report
        .after
        .grouped()
        .into_iter()
        .filter(|g| g.spawned_at == site.spawned_at)
        .flat_map(|g| g.waiting_on)
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let name = report
        .after
        .tasks()
        .iter()
        .chain(report.before.tasks())
        .find(|t| t.spawned_at() == site.spawned_at)
        .and_then(|t| t.name())
        .unwrap_or("unnamed");
    let head = format!(
        "{} (e.g. {name:?}): {} -> {} tasks, waiting on {waits}",
        site.spawned_at, site.before, site.after
    );
    if leaking {
        format!(
            "{head}\n  THE LEAK: one task per connection ever accepted, and it did not \
             shrink when {} connections closed. These are the keep-alive tickers: the \
             handler spawns one and never joins nor aborts it, and the ticker never looks \
             at its connection. Fix: keep the JoinHandle and abort it when the handler \
             returns.",
            report.closed
        )
    } else if site.before - site.after.min(site.before) == report.closed && report.closed > 0 {
        format!(
            "{head}\n  Follows the connections: one per open connection, {} fewer after \
             {} closed. The {} left wait on peers that never hang up (leak #2: no idle \
             timeout), bounded by the connection count.",
            report.closed, report.closed, site.after
        )
    } else {
        format!("{head}\n  Fixed machinery: does not grow with connections.")
    }
}
