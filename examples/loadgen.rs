//! Ping-pong load generator for an echo server: N connections, each sends a message,
//! waits for its echo, and sends again. Prints requests per second.
//!
//! ```sh
//! cargo run --release -p uringo-examples --example echo -- 127.0.0.1:7000 &
//! cargo run --release -p uringo-examples --example loadgen -- --addr 127.0.0.1:7000
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use uringo_examples::loadgen::{self, Config, LoadGen};

const USAGE: &str = "\
usage: loadgen [--addr HOST:PORT] [--connections N] [--size BYTES] [--duration SECS] [--cpu N]

  --addr HOST:PORT  the echo server (default 127.0.0.1:7000)
  --connections N   concurrent connections, one request in flight each (default 100)
  --size BYTES      message size; each request is one message and its echo (default 1024)
  --duration SECS   how long to measure, after a 0.5 s warm-up (default 5)
  --cpu N           run the client on CPU N only (default: not pinned)";

fn parse_args() -> Result<(Config, Duration), String> {
    let mut cfg = Config::new(([127, 0, 0, 1], 7000).into());
    let mut duration = Duration::from_secs(5);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let positive = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} wants a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                cfg.addr = v
                    .parse()
                    .map_err(|_| format!("--addr wants HOST:PORT, got {v:?}"))?;
            }
            "--connections" => cfg.connections = positive(value()?)?,
            "--size" => cfg.size = positive(value()?)?,
            "--cpu" => {
                let v = value()?;
                cfg.cpu = Some(
                    v.parse()
                        .map_err(|_| format!("--cpu wants a CPU number, got {v:?}"))?,
                );
            }
            "--duration" => {
                let v = value()?;
                duration = v
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("--duration wants seconds, got {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((cfg, duration))
}

fn main() -> ExitCode {
    let (cfg, duration) = match parse_args() {
        Ok(parsed) => parsed,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("loadgen: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
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
