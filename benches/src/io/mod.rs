//! I/O shapes: echo ping-pong (throughput and server CPU per request) and idle
//! connections (server RSS), each server in a child process of its own.
//!
//! The scheduler shapes build their runtimes in this process; these cannot: the server
//! is measured through its process's CPU time and RSS, so it gets a process to itself
//! (the current executable re-run with the hidden `--serve KIND`, see [`server`]), and
//! a round starts a fresh one. The load generator (`uringo_examples::loadgen`) is the
//! same for every server and runs here, pinned to another CPU.

pub mod child;
pub mod echo;
pub mod floor;
pub mod floor_proxy;
pub mod http;
pub mod idle;
pub mod rawring;
pub mod server;

use std::fmt::Write as _;
use std::time::Duration;

use echo::EchoComparison;
use idle::IdleResult;
use server::Server;

/// The I/O shapes: name, and whether a run without `--filter` includes it.
pub const SHAPES: [(&str, bool); 9] = [
    ("echo_pingpong", true),
    ("echo_pingpong_pool", false),
    ("echo_floor", true),
    ("echo_monoio", false),
    ("proxy", true),
    ("proxy_floor", true),
    ("proxy_floor_fixed", false),
    ("http_proxy", true),
    ("idle_rss", true),
];

/// Settings of the I/O shapes.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// Echo rounds per server.
    pub rounds: usize,
    /// Rounds per server of the idle shape (RSS varies little between rounds).
    pub idle_rounds: usize,
    /// Echo: load before the window, untimed.
    pub warmup: Duration,
    /// Echo: the measured window of each round.
    pub window: Duration,
    /// Echo: connections, one request in flight each.
    pub connections: usize,
    /// Echo: message size in bytes.
    pub size: usize,
    /// http_proxy: client connections, one request in flight each.
    pub http_connections: usize,
    /// Idle: connections per round.
    pub idle_connections: usize,
    /// CPU the server child is pinned to.
    pub server_cpu: Option<usize>,
    /// CPU the load generator is pinned to.
    pub client_cpu: Option<usize>,
}

impl IoConfig {
    /// The figures: 100 × 1 KiB echo over 2 s windows, 10 000 idle
    /// connections; server on CPU 0 and client on CPU 1 when there are two CPUs.
    pub fn new(rounds: usize) -> IoConfig {
        let two_cpus = std::thread::available_parallelism().map_or(1, usize::from) >= 2;
        IoConfig {
            rounds,
            idle_rounds: rounds.min(3),
            warmup: Duration::from_millis(500),
            window: echo::DEFAULT_WINDOW,
            connections: 100,
            size: 1024,
            http_connections: 64,
            idle_connections: 10_000,
            server_cpu: two_cpus.then_some(0),
            client_cpu: two_cpus.then_some(1),
        }
    }

    /// Tiny sizes, for tests: proves the machinery works, measures nothing.
    pub fn smoke() -> IoConfig {
        IoConfig {
            rounds: 1,
            idle_rounds: 1,
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(200),
            connections: 4,
            http_connections: 4,
            idle_connections: 50,
            ..IoConfig::new(1)
        }
    }

    /// Shorter windows and fewer rounds: a first look in a few seconds per shape.
    pub fn quick(rounds: usize) -> IoConfig {
        IoConfig {
            warmup: Duration::from_millis(200),
            window: Duration::from_millis(500),
            idle_rounds: 1,
            ..IoConfig::new(rounds)
        }
    }
}

/// Each row's server CPU per request as a multiple of its floor's (`a`, then `b`): the
/// echo floor (from the echo_floor row) for echo servers, the proxy floor (from
/// proxy_floor) for TCP proxies. `None` where that floor did not run among `results`
/// or the server has no floor.
pub fn floor_multiples(results: &[EchoComparison]) -> Vec<(Option<f64>, Option<f64>)> {
    let floor_cpu = |floor: Server| {
        results.iter().find_map(|c| {
            let (ca, cb) = c.cpu_us();
            match (c.a == floor, c.b == floor) {
                (true, _) => Some(ca),
                (_, true) => Some(cb),
                _ => None,
            }
        })
    };
    let multiple = |server: Server, cpu: f64| {
        let floor = floor_cpu(server.floor()?)?;
        (floor > 0.0 && floor.is_finite() && cpu.is_finite()).then(|| cpu / floor)
    };
    results
        .iter()
        .map(|c| {
            let (ca, cb) = c.cpu_us();
            (multiple(c.a, ca), multiple(c.b, cb))
        })
        .collect()
}

/// A multiple of the floor as the tables show it: `1.42`, or `—` without a floor.
pub fn floor_text(m: Option<f64>) -> String {
    m.map_or_else(|| "—".to_owned(), |m| format!("{m:.2}"))
}

/// The echo table: requests/s and server CPU µs per request, both sides, and ratios.
pub fn echo_table(results: &[EchoComparison]) -> String {
    let Some(first) = results.first() else {
        return String::from("(no echo shape ran)\n");
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
        "| shape | {a} req/s | {b} req/s | ratio req/s | {a} server CPU µs/req | {b} server CPU µs/req | ratio CPU | CPU spread (min..max) | server CPU × floor ({a}, {b}) | client CPU µs/req ({a}, {b}) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|---|---|");
    for (c, (fa, fb)) in results.iter().zip(floor_multiples(results)) {
        let (ra, rb) = c.rps();
        let (ca, cb) = c.cpu_us();
        let (lo, hi) = c
            .a_rounds
            .iter()
            .zip(&c.b_rounds)
            .map(|(x, y)| x.cpu_us_per_req / y.cpu_us_per_req)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            });
        let (la, lb) = c.client_cpu_us();
        // A row whose servers are not the header's says which they are.
        let shape = match (c.a, c.b) == (first.a, first.b) {
            true => c.shape.to_owned(),
            false => format!("{} ({} vs {})", c.shape, c.a.name(), c.b.name()),
        };
        let _ = writeln!(
            out,
            "| {shape} | {ra:.0} | {rb:.0} | {:.2} | {ca:.2} | {cb:.2} | {:.2} | {lo:.2}..{hi:.2} | {} | {la:.2}, {lb:.2} |",
            ra / rb,
            ca / cb,
            match (fa, fb) {
                (None, None) => "—".to_owned(),
                _ => format!("{}, {}", floor_text(fa), floor_text(fb)),
            },
        );
    }
    out
}

/// The idle table: RSS growth per server, and per connection.
pub fn idle_table(results: &[IdleResult]) -> String {
    let tokio = results
        .iter()
        .find(|r| r.server == Server::Tokio)
        .map(IdleResult::bytes_per_conn);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| server | connections | RSS before (KiB) | RSS growth (KiB) | bytes/connection | vs tokio | all echoed |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    for r in results {
        let before: Vec<f64> = r.rounds.iter().map(|x| x.rss_before_kib as f64).collect();
        let vs = tokio.map_or_else(
            || "-".to_owned(),
            |t| format!("{:.2}", r.bytes_per_conn() / t),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {vs} | {} |",
            r.server.name(),
            r.connections,
            crate::runner::median(&before).unwrap_or(f64::NAN),
            r.growth_kib(),
            r.bytes_per_conn(),
            if r.all_alive() { "yes" } else { "NO" },
        );
    }
    out
}

/// Every I/O figure as JSON (for `--json`).
pub fn json(echo: &[(&str, Vec<EchoComparison>)], idle: &[IdleResult]) -> serde_json::Value {
    let echo: Vec<_> = echo
        .iter()
        .flat_map(|(mode, cmps)| {
            cmps.iter()
                .zip(floor_multiples(cmps))
                .map(move |(c, f)| (mode, c, f))
        })
        .map(|(mode, c, (fa, fb))| {
            let (ra, rb) = c.rps();
            let (ca, cb) = c.cpu_us();
            let (la, lb) = c.client_cpu_us();
            let rounds = |rs: &[echo::EchoRound]| {
                rs.iter()
                    .map(|r| serde_json::json!({"rps": r.rps, "cpu_us_per_req": r.cpu_us_per_req, "client_cpu_us_per_req": r.client_cpu_us_per_req, "requests": r.requests}))
                    .collect::<Vec<_>>()
            };
            serde_json::json!({
                "mode": mode,
                "shape": c.shape,
                "a": c.a.name(),
                "b": c.b.name(),
                "a_rps": ra,
                "b_rps": rb,
                "a_cpu_us_per_req": ca,
                "b_cpu_us_per_req": cb,
                "a_client_cpu_us_per_req": la,
                "b_client_cpu_us_per_req": lb,
                // Server CPU per request over its floor's (null: no floor in this run).
                "a_cpu_x_floor": fa,
                "b_cpu_x_floor": fb,
                "a_rounds": rounds(&c.a_rounds),
                "b_rounds": rounds(&c.b_rounds),
            })
        })
        .collect();
    let idle: Vec<_> = idle
        .iter()
        .map(|r| {
            serde_json::json!({
                "server": r.server.name(),
                "connections": r.connections,
                "rss_growth_kib": r.growth_kib(),
                "bytes_per_connection": r.bytes_per_conn(),
                "all_alive": r.all_alive(),
                "rounds": r.rounds.iter().map(|x| serde_json::json!({
                    "rss_before_kib": x.rss_before_kib,
                    "rss_idle_kib": x.rss_idle_kib,
                    "alive": x.alive,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "echo": echo, "idle": idle })
}

#[cfg(test)]
mod tests {
    use super::echo::EchoRound;
    use super::*;

    fn cmp(shape: &'static str, a: Server, ca: f64, b: Server, cb: f64) -> EchoComparison {
        let round = |cpu| EchoRound {
            rps: 1000.0,
            cpu_us_per_req: cpu,
            client_cpu_us_per_req: 1.0,
            requests: 100,
        };
        EchoComparison {
            shape,
            a,
            b,
            a_rounds: vec![round(ca)],
            b_rounds: vec![round(cb)],
        }
    }

    #[test]
    fn floor_multiples_divide_by_the_matching_floor_of_the_run() {
        let results = [
            cmp("echo_pingpong", Server::Uringo, 15.0, Server::Tokio, 20.0),
            cmp("echo_floor", Server::UringoPool, 12.0, Server::Floor, 10.0),
            cmp("proxy", Server::ProxyUringo, 30.0, Server::ProxyTokio, 45.0),
            cmp(
                "proxy_floor",
                Server::ProxyUringo,
                30.0,
                Server::ProxyFloor,
                15.0,
            ),
        ];
        let m = floor_multiples(&results);
        assert_eq!(m[0], (Some(1.5), Some(2.0)));
        assert_eq!(m[1], (Some(1.2), Some(1.0)));
        assert_eq!(m[2], (Some(2.0), Some(3.0)));
        assert_eq!(m[3], (Some(2.0), Some(1.0)));
        let table = echo_table(&results);
        assert!(
            table.contains("server CPU × floor (uringo, tokio)"),
            "{table}"
        );
        assert!(table.contains("| 1.50, 2.00 |"), "{table}");
        assert!(table.contains("| 2.00, 3.00 |"), "{table}");
    }

    #[test]
    fn without_its_floor_a_row_shows_a_dash() {
        let results = [
            cmp("echo_pingpong", Server::Uringo, 15.0, Server::Tokio, 20.0),
            cmp(
                "proxy_floor",
                Server::ProxyUringo,
                30.0,
                Server::ProxyFloor,
                15.0,
            ),
        ];
        let m = floor_multiples(&results);
        assert_eq!(m[0], (None, None));
        assert_eq!(m[1], (Some(2.0), Some(1.0)));
        let table = echo_table(&results);
        assert!(table.contains("| — |"), "{table}");
        let doc = json(&[("ab", results.to_vec())], &[]);
        assert!(doc["echo"][0]["a_cpu_x_floor"].is_null());
        assert_eq!(doc["echo"][1]["a_cpu_x_floor"], 2.0);
    }
}
