//! The head-to-head program behind both binaries: `headtohead` (every knob) and `versus`
//! (the README's main command: a quick run of every shape, a table and an HTML report).
//! See README.md beside this crate for the method and the latest results.
//!
//! ```text
//! cargo run --release -p uringo-benches --bin versus -- [--full] [--json PATH] [--report PATH]
//! cargo run --release -p uringo-benches --bin headtohead -- [--workers N] [--rounds N]
//!     [--filter NAME[,NAME..]] [--all] [--aa] [--scale F] [--budget SECS] [--json PATH]
//!     [--lateness] [--overheads] [--quick] [--window SECS] [--smoke] [--report PATH]
//! ```
//!
//! The I/O shapes run each server in a child process: the same executable, started
//! with the hidden `--serve KIND [--cpu N]` (see `io::server`).

use crate::sched;
use crate::{io, overheads, report, runner, timers};
use std::process::ExitCode;
use std::time::Duration;

use io::echo::EchoComparison;
use io::server::Server;
use io::IoConfig;
use runner::{Comparison, Config, Peer, Shape};

const USAGE: &str = "\
usage: headtohead [--workers N] [--rounds N] [--filter NAME[,NAME..]] [--all] [--aa]
                  [--scale F] [--budget SECS] [--json PATH] [--lateness]
                  [--overheads] [--quick] [--window SECS] [--smoke]

  --workers N   worker threads for both runtimes (default: nproc)
  --rounds N    rounds per peer, alternating (default: 5; --overheads: 9)
  --filter S    run only shapes whose name contains one of the comma-separated S
                (shapes left out of the default run must be named exactly; `cpu`
                is the process-CPU table: idle, a 10 ms ticker, the timer storm)
  --all         run every shape, including those left out of the default run
  --aa          A/A check: tokio vs tokio and uringo vs uringo (ratios should be ~1.00)
  --scale F     multiply every shape's measured iterations by F (default: 1)
  --budget SECS timed work per round before it stops early, after 3 iterations (default: 1)
  --json PATH   also write the results as JSON
  --lateness    instead of ratios: how late timers fire on each runtime (p50, p99, max),
                beside one plain sleeping thread; 10 000 sleeps x --scale
  --overheads   instead of ratios: what uringo's task registry costs a spawn
                (spawn_many_local), its poll timing a poll (yield_many) and its
                search spin a hand-off (chained_spawn), each against uringo with it
                off and tokio; then uringo's scheduling latency and poll time under
                yield_many
  --quick       I/O shapes: 0.5 s echo windows and one idle round (a first look);
                --overheads: 3 rounds, 0.5 s budget
  --window SECS I/O shapes: the measured window of each echo round (default: 2)
  --smoke       tiny sizes everywhere, one round: checks that every shape runs, measures
                nothing (what the tests use)

I/O shapes: echo_pingpong (100 connections x 1 KiB ping-pong; server: one worker pinned
to CPU 0, in a child process; client: the loadgen, pinned to CPU 1), echo_pingpong_pool
(the same with uringo's recv_stream + BufPool server; not in the default run),
echo_floor (that pooled uringo server against the floor: the same echo written straight
on io_uring with no runtime, src/io/floor.rs), echo_monoio (uringo's echo against
monoio's own echo example on its io_uring driver; not in the default run), proxy
(the same load through a TCP proxy pinned to CPU 0: uringo copy_bidirectional
vs tokio copy_bidirectional, upstream a uringo echo on CPU 1), proxy_floor (that uringo
proxy against the proxy floor: the same proxy written straight on io_uring with no
runtime, src/io/floor_proxy.rs), http_proxy (HTTP/1.1 keep-alive GETs from 64
connections through the http-proxy example, uringo + hyper, vs the same proxy on tokio,
http-proxy-tokio, one worker pinned to CPU 0; upstream a uringo HTTP server on CPU 1;
the two binaries are looked for beside this one: build them with
cargo build --release -p uringo-examples --bin http-proxy --bin http-proxy-tokio),
idle_rss
(server RSS growth with 10 000 idle connections; uringo pool, uringo read, tokio read).";

/// Which binary is running: they share everything but their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// Every knob; the long default run.
    HeadToHead,
    /// The README's main command: quick by default (`--full` for the long run), and it
    /// always writes the HTML report.
    Versus,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::HeadToHead => "headtohead",
            Program::Versus => "versus",
        }
    }
}

const VERSUS_USAGE: &str = "\
usage: versus [--full] [--json PATH] [--report PATH] [any headtohead flag]

uringo against tokio on every shape (scheduler, timers, I/O), alternating rounds, one
runtime alive at a time. Prints a table and writes an HTML report with bar charts
(default: target/versus/report.html).

  --full         longer run: 7 rounds per peer, 2 s I/O windows (default: 3 rounds, 0.5 s)
  --json PATH    also write the results as JSON
  --report PATH  where to write the HTML report
Every flag of headtohead works too (see headtohead --help).";

struct Args {
    cfg: Config,
    report: Option<std::path::PathBuf>,
    io: IoConfig,
    lateness: bool,
    overheads: bool,
    filter: Vec<String>,
    all: bool,
    aa: bool,
    json: Option<String>,
}

fn parse_args(program: Program) -> Result<Args, String> {
    let versus = program == Program::Versus;
    let mut args = Args {
        cfg: Config {
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            rounds: if versus { 3 } else { 5 },
            scale: 1.0,
            budget: Duration::from_secs_f64(if versus { 0.5 } else { 1.0 }),
        },
        report: versus.then(default_report_path),
        io: IoConfig::new(5),
        lateness: false,
        overheads: false,
        filter: Vec::new(),
        all: false,
        aa: false,
        json: None,
    };
    let (mut quick, mut smoke, mut window) = (versus, false, None);
    let mut rounds_given = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        use lexopt::prelude::*;
        let flag = match &arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) => return Err(format!("unexpected argument {v:?}")),
        };
        let mut value = || -> Result<String, String> {
            parser
                .value()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|v| format!("{flag}: {v:?} is not UTF-8"))
        };
        match flag.as_str() {
            "--workers" => args.cfg.workers = parse_positive(&flag, &value()?)?,
            "--rounds" => {
                args.cfg.rounds = parse_positive(&flag, &value()?)?;
                rounds_given = true;
            }
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
            "--budget" => args.cfg.budget = parse_duration(&flag, &value()?)?,
            "--all" => args.all = true,
            "--json" => args.json = Some(value()?),
            "--aa" => args.aa = true,
            "--lateness" => args.lateness = true,
            "--overheads" => args.overheads = true,
            "--quick" => quick = true,
            "--full" => {
                quick = false;
                args.cfg.rounds = 7;
                args.cfg.budget = Duration::from_secs(1);
            }
            "--report" => args.report = Some(value()?.into()),
            "--smoke" => smoke = true,
            "--window" => {
                let v = parse_duration(&flag, &value()?)?;
                if v.is_zero() {
                    return Err("--window must be more than zero".into());
                }
                window = Some(v);
            }
            "-h" | "--help" => return Err(String::new()),
            // `cargo bench` passes this to every bench target; accept it silently.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.overheads && !rounds_given {
        // Its differences are a few per cent of a shape, so more rounds than the
        // ratios need; each round is short (the whole run takes about 20 s).
        args.cfg.rounds = if quick && !versus { 3 } else { 9 };
        if quick && !versus {
            args.cfg.budget = Duration::from_secs_f64(0.5);
        }
    }
    args.io = if smoke {
        args.cfg.rounds = 1;
        args.cfg.scale = 0.01;
        args.cfg.budget = Duration::from_millis(100);
        IoConfig::smoke()
    } else if quick {
        IoConfig::quick(args.cfg.rounds)
    } else {
        IoConfig::new(args.cfg.rounds)
    };
    if let Some(window) = window {
        args.io.window = window;
    }
    Ok(args)
}

/// Whether `--filter` / `--all` pick the shape `name`.
fn selected(name: &str, in_default_run: bool, args: &Args) -> bool {
    if args.all {
        return true;
    }
    if args.filter.is_empty() {
        return in_default_run;
    }
    args.filter
        .iter()
        .any(|f| name == f.as_str() || (in_default_run && name.contains(f.as_str())))
}

/// Seconds as a bare number (`0.5`), or a humantime duration (`500ms`, `2s`).
pub fn parse_duration(flag: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| format!("{flag} {v:?}: {e}")),
        Err(_) => humantime::parse_duration(v).map_err(|e| format!("{flag} {v:?}: {e}")),
    }
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

/// `target/versus/report.html` of the workspace (or of `CARGO_TARGET_DIR`).
fn default_report_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("versus").join("report.html")
}

/// Runs the program; `program` picks the defaults and the usage text.
pub fn main(program: Program) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--serve") {
        return match io::server::main(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("headtohead --serve: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse_args(program) {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{}: {msg}", program.name());
            }
            match program {
                Program::HeadToHead => eprintln!("{USAGE}"),
                Program::Versus => eprintln!("{VERSUS_USAGE}"),
            }
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    if args.lateness {
        return lateness(&args.cfg);
    }
    if args.overheads {
        return run_overheads(&args.cfg, args.json.as_deref());
    }
    let shapes: Vec<Shape> = sched::shapes()
        .into_iter()
        .chain(timers::shapes())
        .filter(|s| selected(s.name, s.in_default_run, &args))
        .collect();
    let io_shapes: Vec<&str> = io::SHAPES
        .iter()
        .filter(|(name, default)| selected(name, *default, &args))
        .map(|(name, _)| *name)
        .collect();
    let cpu_selected = selected("cpu", true, &args) && !args.aa;
    if shapes.is_empty() && io_shapes.is_empty() && !cpu_selected {
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
    let mut echo_tables = Vec::new();
    for &(mode, a, b) in pairs {
        eprintln!("== {mode}: {} vs {}", a.name(), b.name());
        if !shapes.is_empty() {
            match run_all(&shapes, a, b, &args.cfg) {
                Ok(results) => tables.push((mode, results)),
                Err(err) => {
                    eprintln!("headtohead: {mode}: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        match run_echo(&io_shapes, a, b, &args.io) {
            Ok(results) if !results.is_empty() => echo_tables.push((mode, results)),
            Ok(_) => {}
            Err(err) => {
                eprintln!("headtohead: {mode}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.aa {
        for skipped in io_shapes.iter().filter(|s| **s != "echo_pingpong") {
            // (echo_pingpong_pool, the floors, monoio, the proxies and idle_rss compare
            // different servers)
            eprintln!("{skipped:<24} skipped: not an A/A shape (no uringo-vs-tokio timing)");
        }
    }
    let idle = if io_shapes.contains(&"idle_rss") && !args.aa {
        match run_idle(&args.io) {
            Ok(idle) => idle,
            Err(err) => {
                eprintln!("headtohead: idle_rss: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Vec::new()
    };
    let cpu = if cpu_selected {
        eprintln!("== cpu: idle, ticker_10ms, timer_storm_cpu");
        match crate::cpu::run(
            args.cfg.workers,
            args.cfg.rounds as u32,
            args.io.window.max(Duration::from_secs(1)),
        ) {
            Ok(cpu) => cpu,
            Err(err) => {
                eprintln!("headtohead: cpu: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Vec::new()
    };
    for (mode, results) in &tables {
        println!("\n{mode}:\n{}", report::table(results));
    }
    if !cpu.is_empty() {
        println!(
            "\nprocess CPU (getrusage, every thread; median of {} rounds per peer, one runtime at a time):\n{}",
            args.cfg.rounds,
            crate::cpu::table(&cpu)
        );
    }
    for (mode, results) in &echo_tables {
        let http = match results.iter().any(|c| c.a.is_http_proxy()) {
            true => format!(
                "; http_proxy: {} connections, HTTP/1.1 keep-alive GET",
                args.io.http_connections
            ),
            false => String::new(),
        };
        println!(
            "\n{mode}, echo ping-pong ({} connections x {} B{http}, {:?} windows; req/s ratio above 1 and CPU ratio below 1 favour the left side):\n{}",
            args.io.connections,
            args.io.size,
            args.io.window,
            io::echo_table(results)
        );
    }
    if !idle.is_empty() {
        println!(
            "\nidle connections (server VmRSS growth, median of {} rounds):\n{}",
            args.io.idle_rounds,
            io::idle_table(&idle)
        );
    }
    if let Some(path) = &args.report {
        let html = crate::html::report(&machine, &args.cfg, &tables, &echo_tables, &idle);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, html));
        if let Err(err) = written {
            eprintln!("{}: writing {}: {err}", program.name(), path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let io_json = io::json(&echo_tables, &idle);
        if let Err(err) = report::write_json(path, &machine, &args.cfg, &tables, io_json) {
            eprintln!("headtohead: writing {path}: {err}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}

/// The echo shapes among `selected`, as `a` against `b`.
fn run_echo(
    selected: &[&str],
    a: Peer,
    b: Peer,
    cfg: &IoConfig,
) -> std::io::Result<Vec<EchoComparison>> {
    let server = |p: Peer| match p {
        Peer::Uringo => Server::Uringo,
        Peer::Tokio => Server::Tokio,
    };
    let mut runs = Vec::new();
    if selected.contains(&"echo_pingpong") {
        runs.push(("echo_pingpong", server(a), server(b)));
    }
    // The pool variant is an A/B figure only: its A/A is echo_pingpong's uringo side.
    if selected.contains(&"echo_pingpong_pool") && a != b {
        runs.push(("echo_pingpong_pool", Server::UringoPool, server(b)));
    }
    // uringo's pooled echo against the floor: the same technique with no runtime.
    if selected.contains(&"echo_floor") && a != b {
        runs.push(("echo_floor", Server::UringoPool, Server::Floor));
    }
    // uringo's per-connection-buffer echo against monoio's, the same technique.
    if selected.contains(&"echo_monoio") && a != b {
        runs.push(("echo_monoio", Server::Uringo, Server::Monoio));
    }
    // The proxy shape: load generator → proxy (measured) → uringo echo upstream.
    if selected.contains(&"proxy") && a != b {
        runs.push(("proxy", Server::ProxyUringo, Server::ProxyTokio));
    }
    // uringo's proxy against the proxy floor: the same load, no runtime.
    if selected.contains(&"proxy_floor") && a != b {
        runs.push(("proxy_floor", Server::ProxyUringo, Server::ProxyFloor));
    }
    // What registered files save the proxy floor: the same loop with IOSQE_FIXED_FILE.
    if selected.contains(&"proxy_floor_fixed") && a != b {
        runs.push((
            "proxy_floor_fixed",
            Server::ProxyFloor,
            Server::ProxyFloorFixed,
        ));
    }
    // The HTTP reverse proxies (binaries of uringo-examples) in front of an HTTP/1.1
    // upstream: http-proxy (uringo + hyper) against http-proxy-tokio (hyper on tokio).
    if selected.contains(&"http_proxy") && a != b {
        match io::http::missing_binaries().as_slice() {
            [] => runs.push(("http_proxy", Server::HttpProxy, Server::HttpProxyTokio)),
            missing => {
                let missing: Vec<_> = missing.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "{:<24}skipped: {} not found; build them with {}",
                    "http_proxy",
                    missing.join(" and "),
                    io::http::BUILD_HINT
                );
            }
        }
    }
    if !runs.is_empty() {
        raise_fd_limit();
    }
    let mut out = Vec::new();
    for (shape, a, b) in runs {
        eprint!("{shape:<24}");
        let mut n = 0;
        let cmp = io::echo::compare(shape, a, b, cfg, |server, r| {
            let tag = match (a == b, n % 2) {
                (false, _) => "",
                (true, 0) => "#1",
                (true, _) => "#2",
            };
            n += 1;
            eprint!(
                " {}{tag}={:.0}req/s,{:.2}µs(client {:.2}µs)",
                server.name(),
                r.rps,
                r.cpu_us_per_req,
                r.client_cpu_us_per_req
            );
        })?;
        let ((ra, rb), (ca, cb)) = (cmp.rps(), cmp.cpu_us());
        eprintln!("  ratio req/s {:.2}, CPU {:.2}", ra / rb, ca / cb);
        out.push(cmp);
    }
    Ok(out)
}

/// The idle-connections shape, every server variant.
fn run_idle(cfg: &IoConfig) -> std::io::Result<Vec<io::idle::IdleResult>> {
    raise_fd_limit();
    eprint!("{:<24}", "idle_rss");
    let results = io::idle::run(&Server::ALL, cfg.idle_rounds, cfg, |server, r| {
        eprint!(" {}=+{}KiB,{}alive", server.name(), r.growth_kib(), r.alive);
    })?;
    eprintln!();
    Ok(results)
}

/// Thousands of connections need thousands of fds, here and in the server child.
fn raise_fd_limit() {
    if let Err(err) = uringo_examples::loadgen::raise_fd_limit() {
        eprintln!("headtohead: cannot raise the fd limit ({err}); continuing");
    }
}

/// `--lateness`: fire time minus deadline, per runtime.
fn lateness(cfg: &Config) -> ExitCode {
    let machine = report::Machine::detect();
    println!("{}", report::header(&machine, cfg));
    match timers::lateness(cfg) {
        Ok(results) => {
            let sleeps =
                results.first().map_or(0, |r| r.sorted.len() + r.early) / cfg.rounds.max(1);
            println!(
                "\ntimer lateness (fire time - deadline), {sleeps} sleeps over 0-200 ms x {} rounds:",
                cfg.rounds
            );
            println!("| runtime | p50 | p99 | max | fired early |\n|---|---:|---:|---:|---:|");
            for r in &results {
                println!(
                    "| {} | {:?} | {:?} | {:?} | {} |",
                    r.name,
                    timers::quantile(&r.sorted, 0.5),
                    timers::quantile(&r.sorted, 0.99),
                    r.sorted.last().copied().unwrap_or_default(),
                    r.early
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

/// `--overheads`: the cost of the task registry and of poll timing, and the
/// scheduling latency under yield_many (see `overheads.rs`).
fn run_overheads(cfg: &Config, json: Option<&str>) -> ExitCode {
    let machine = report::Machine::detect();
    println!("{}", report::header(&machine, cfg));
    let mut last_shape = String::new();
    let result = overheads::run(cfg, |shape, variant, t, iters| {
        if shape != last_shape {
            if !last_shape.is_empty() {
                eprintln!();
            }
            eprint!("{shape:<24}");
            last_shape = shape.to_owned();
        }
        eprint!(" {}={:.0}µs×{iters}", variant.name(), t.as_secs_f64() * 1e6);
    });
    eprintln!();
    let results = match result {
        Ok(results) => results,
        Err(err) => {
            eprintln!("headtohead: overheads: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\nwhat three scheduler switches cost: the task registry, poll timing and the search spin ({} rounds per variant, alternating; cost per op = difference of medians / ops per iteration, in wall time: with {} workers busy, the CPU time per op is up to {}x that):\n{}",
        cfg.rounds,
        cfg.workers,
        cfg.workers,
        results.tables()
    );
    if let Some(path) = json {
        let written =
            report::write_json_fields(path, &machine, cfg, [("overheads", results.json())]);
        if let Err(err) = written {
            eprintln!("headtohead: writing {path}: {err}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}
