//! Ping-pong load generator for an echo server: N connections, each sends a message,
//! waits for its echo, and sends again. Prints requests per second.
//!
//! ```sh
//! cargo run --release -p uringo-examples --example echo -- 127.0.0.1:7000 &
//! cargo run --release -p uringo-examples --example loadgen -- --addr 127.0.0.1:7000
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use uringo_examples::cli;
use uringo_examples::loadgen::{self, Config, LoadGen};

const HELP: &str = "\
loadgen: ping-pong load against an echo server

Usage: loadgen [FLAGS]

Flags:
  --addr HOST:PORT      the echo server [default: 127.0.0.1:7000]
  --connections N       concurrent connections, one request in flight each [default: 100]
  --size BYTES          message size; each request is one message and its echo [default: 1024]
  --duration DURATION   how long to measure, after a 0.5 s warm-up [default: 5s]
  --cpu N               run the client on CPU N only [default: not pinned]
  --help                print this help
";

fn parse() -> Result<Option<(Config, Duration)>, cli::Error> {
    use lexopt::prelude::*;
    let mut cfg = Config::new(([127, 0, 0, 1], 7000).into());
    let mut duration = Duration::from_secs(5);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => cfg.addr = cli::addr(parser.value()?)?,
            Long("connections") => cfg.connections = cli::positive(parser.value()?)?,
            Long("size") => cfg.size = cli::positive(parser.value()?)?,
            Long("cpu") => cfg.cpu = Some(parser.value()?.parse()?),
            Long("duration") => {
                duration = cli::duration_on(parser.value()?)?;
                if duration.is_zero() {
                    return Err("--duration must be more than zero".into());
                }
            }
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some((cfg, duration)))
}

fn main() -> ExitCode {
    let (cfg, duration) = match parse() {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("loadgen: {err} (try --help)");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = loadgen::raise_fd_limit() {
        eprintln!("loadgen: cannot raise the fd limit ({err}); continuing");
    }
    match run(&cfg, duration) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: &Config, duration: Duration) -> std::io::Result<()> {
    let load = LoadGen::start(cfg)?;
    std::thread::sleep(Duration::from_millis(500));
    let (start, before) = (Instant::now(), load.completed());
    let mut last = (start, before);
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())));
        let (now, done) = (Instant::now(), load.completed());
        let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
        eprintln!("loadgen: {rate:.0} req/s");
        last = (now, done);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let done = load.completed() - before;
    load.stop()?;
    println!(
        "{done} requests in {elapsed:.2} s over {} connections of {} B: {:.0} req/s",
        cfg.connections,
        cfg.size,
        done as f64 / elapsed
    );
    Ok(())
}
