//! Echo ping-pong: the shared load generator against one server child per round,
//! rounds alternating between the two servers.

use std::io;
use std::thread::sleep;
use std::time::{Duration, Instant};

use uringo_examples::loadgen::{Config as LoadConfig, LoadGen};

use super::child::{process_cpu_time, ServerChild};
use super::server::Server;
use super::IoConfig;
use crate::runner::median;

/// One round: a fresh server child, warm-up, then a fixed window.
#[derive(Clone, Copy, Debug)]
pub struct EchoRound {
    /// Requests completed per second of the window.
    pub rps: f64,
    /// Server CPU time (user + system) per request completed in the window, in µs.
    pub cpu_us_per_req: f64,
    /// Load-generator CPU time per request, in µs: this process's CPU time over the
    /// window (its other threads sleep), so a reader can tell which side saturates.
    pub client_cpu_us_per_req: f64,
    /// Requests completed in the window.
    pub requests: u64,
}

/// Both servers' rounds, in round order.
#[derive(Clone, Debug)]
pub struct EchoComparison {
    /// The shape's name.
    pub shape: &'static str,
    /// Left side (numerator of the ratios).
    pub a: Server,
    /// Right side.
    pub b: Server,
    /// Rounds of `a`.
    pub a_rounds: Vec<EchoRound>,
    /// Rounds of `b`.
    pub b_rounds: Vec<EchoRound>,
}

impl EchoComparison {
    /// Median requests/s of `a` and of `b`.
    pub fn rps(&self) -> (f64, f64) {
        (
            med(&self.a_rounds, |r| r.rps),
            med(&self.b_rounds, |r| r.rps),
        )
    }

    /// Median load-generator CPU µs per request while driving `a` and `b`.
    pub fn client_cpu_us(&self) -> (f64, f64) {
        let f = |r: &EchoRound| r.client_cpu_us_per_req;
        (med(&self.a_rounds, f), med(&self.b_rounds, f))
    }

    /// Median server CPU µs per request of `a` and of `b`.
    pub fn cpu_us(&self) -> (f64, f64) {
        let f = |r: &EchoRound| r.cpu_us_per_req;
        (med(&self.a_rounds, f), med(&self.b_rounds, f))
    }
}

fn med(rounds: &[EchoRound], f: impl Fn(&EchoRound) -> f64) -> f64 {
    let xs: Vec<f64> = rounds.iter().map(f).collect();
    median(&xs).unwrap_or(f64::NAN)
}

/// Runs `rounds` rounds of `a` alternating with `b`; `progress` hears of each round.
pub fn compare(
    shape: &'static str,
    a: Server,
    b: Server,
    cfg: &IoConfig,
    mut progress: impl FnMut(Server, &EchoRound),
) -> io::Result<EchoComparison> {
    let mut cmp = EchoComparison {
        shape,
        a,
        b,
        a_rounds: Vec::new(),
        b_rounds: Vec::new(),
    };
    for _ in 0..cfg.rounds {
        let r = round(a, cfg)?;
        progress(a, &r);
        cmp.a_rounds.push(r);
        let r = round(b, cfg)?;
        progress(b, &r);
        cmp.b_rounds.push(r);
    }
    Ok(cmp)
}

fn round(server: Server, cfg: &IoConfig) -> io::Result<EchoRound> {
    if server.is_http_proxy() {
        return super::http::round(server, cfg);
    }
    // A proxy forwards to a uringo echo server sharing the load generator's CPU, so the
    // proxy has its CPU to itself and its figures are the proxy's alone.
    let upstream = match server.is_proxy() {
        true => Some(ServerChild::start(Server::Uringo, cfg.client_cpu)?),
        false => None,
    };
    let child =
        ServerChild::start_with(server, cfg.server_cpu, upstream.as_ref().map(|u| u.addr()))?;
    let load = LoadGen::start(&LoadConfig {
        addr: child.addr(),
        connections: cfg.connections,
        size: cfg.size,
        cpu: cfg.client_cpu,
    })?;
    let r = measure(server, cfg, || load.completed(), || child.cpu_time());
    // Stopping also checks every echo: a server that garbled one fails the round.
    load.stop()?;
    drop(child);
    drop(upstream);
    r
}

/// Warm-up, then the window: requests `completed` over it, the server's CPU time
/// (`server_cpu`) and this process's (the load generator's) per request.
pub(super) fn measure(
    server: Server,
    cfg: &IoConfig,
    completed: impl Fn() -> u64,
    server_cpu: impl Fn() -> io::Result<Duration>,
) -> io::Result<EchoRound> {
    sleep(cfg.warmup);
    let me = std::process::id();
    let (t0, done0, cpu0) = (Instant::now(), completed(), server_cpu()?);
    let client0 = process_cpu_time(me)?;
    sleep(cfg.window);
    let (t1, done1, cpu1) = (Instant::now(), completed(), server_cpu()?);
    let client1 = process_cpu_time(me)?;
    let requests = done1 - done0;
    if requests == 0 {
        return Err(io::Error::other(format!(
            "{}: no request completed in the window",
            server.name()
        )));
    }
    Ok(EchoRound {
        rps: requests as f64 / (t1 - t0).as_secs_f64(),
        cpu_us_per_req: (cpu1.saturating_sub(cpu0)).as_secs_f64() * 1e6 / requests as f64,
        client_cpu_us_per_req: (client1.saturating_sub(client0)).as_secs_f64() * 1e6
            / requests as f64,
        requests,
    })
}

/// The window used when none is given: long enough that the CPU-time clock ticks
/// (10 ms) are well under 1 % of the figure.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);
