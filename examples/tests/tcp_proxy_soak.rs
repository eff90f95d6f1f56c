//! The `tcp-proxy` soak: rounds of scripted connections through the real program,
//! with stalls, half-closes and resets on both the client and the upstream side
//! (`soak/`). After every round the proxy's open fds are back to where they started;
//! its RSS levels off (the highest over the last rounds within 15% of the highest over
//! the first ones); every byte arrives unchanged; and the only errors anyone sees, the
//! proxy's log included, are those the scripted resets explain.
//!
//! The short form (1 000 connections) runs with the other tests. The long form
//! (10 000) runs with `URINGO_SOAK=long`, or as the ignored test:
//!
//! ```sh
//! cargo test -p uringo-examples --test tcp_proxy_soak -- --ignored --nocapture
//! ```
//!
//! `URINGO_SOAK_SEED` replays a run's scripts (the run prints its seed).

mod soak;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use soak::client::{self, ClientOutcome};
use soak::round::{unexplained, Round};
use soak::script::Script;
use soak::upstream::Upstream;
use soak::watch::{Fds, Sampler};
use support::{fd_count, fd_kinds, rss_kib, wait_until, Program};

const BIN: &str = env!("CARGO_BIN_EXE_tcp-proxy");

/// Client threads, each running one connection at a time.
const CLIENTS: usize = 24;

struct Form {
    rounds: usize,
    per_round: usize,
    /// Rounds at each end whose RSS is compared.
    compared: usize,
}

const SHORT: Form = Form {
    rounds: 5,
    per_round: 200,
    compared: 2,
};

const LONG: Form = Form {
    rounds: 10,
    per_round: 1000,
    compared: 3,
};

fn form() -> Form {
    match std::env::var("URINGO_SOAK") {
        Ok(form) if form == "long" => LONG,
        _ => SHORT,
    }
}

#[test]
fn connections_with_resets_and_stalls_leave_no_fd_no_growth_and_no_damage() {
    soak(form());
}

#[test]
#[ignore = "the long soak (10 000 connections); also URINGO_SOAK=long"]
fn ten_thousand_connections_with_resets_and_stalls_leave_no_fd_no_growth_and_no_damage() {
    soak(LONG);
}

/// Soaks a proxy, one soak at a time: two at once on a small machine would only
/// measure each other.
fn soak(form: Form) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::env::var("URINGO_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0015);
    let upstream = Upstream::start(seed);
    let mut proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.addr.to_string(),
            "--workers",
            "2",
            // Never reached by a stall (at most 25 ms), but arms and drops a timer per
            // connection: timers leave no trace either.
            "--idle-timeout",
            "30s",
        ],
    );
    let pid = proxy.pid();
    let baseline = Fds::of(pid);
    println!(
        "soak: seed {seed}, {} rounds of {}, proxy fds at start {} ({} pipes)",
        form.rounds, form.per_round, baseline.total, baseline.pipes
    );
    let mut rounds = Vec::new();
    for index in 0..form.rounds {
        let ids = (index * form.per_round) as u64..((index + 1) * form.per_round) as u64;
        let round = run_round(&mut proxy, &upstream, seed, ids, baseline);
        println!("round {index}: {round}");
        rounds.push(round);
    }

    // RSS once a round's connections are gone: what the proxy kept. (Peaks during a
    // round follow how many connections happened to overlap.)
    let highest = |rounds: &[Round]| rounds.iter().map(|r| r.rss_after).max().unwrap();
    let first = highest(&rounds[..form.compared]);
    let last = highest(&rounds[rounds.len() - form.compared..]);
    println!("soak: RSS after a round at most {first} KiB over the first rounds, {last} KiB over the last");
    assert!(
        last * 100 <= first * 115,
        "the proxy's RSS kept growing: {first} KiB at most over the first {n} rounds, {last} KiB over the last {n}",
        n = form.compared
    );

    proxy.terminate();
    proxy.wait_clean_exit();
    let unexplained: Vec<_> = proxy.log.iter().filter(|l| unexplained(l)).collect();
    assert!(unexplained.is_empty(), "the proxy logged: {unexplained:#?}");
}

/// Runs the connections `ids` through the proxy, waits for its fds to come back to
/// `baseline`, and checks everything both ends saw.
fn run_round(
    proxy: &mut Program,
    upstream: &Upstream,
    seed: u64,
    ids: std::ops::Range<u64>,
    baseline: Fds,
) -> Round {
    let pid = proxy.pid();
    let mut round = Round {
        connections: ids.clone().count(),
        fds_before: fd_count(pid),
        rss_before: rss_kib(pid),
        ..Round::default()
    };
    let sampler = Sampler::start(pid);
    let outcomes = run_clients(proxy.addr, seed, ids);
    wait_until(
        "the upstream to finish its connections",
        || upstream.live() == 0,
        || format!("{} still open", upstream.live()),
    );
    wait_until(
        &format!(
            "the proxy's fds to return to their baseline of {}",
            baseline.total
        ),
        || Fds::of(pid).total == baseline.total,
        || format!("open: {:?}", fd_kinds(pid)),
    );
    let after = Fds::of(pid);
    (round.fds_after, round.pipes_after) = (after.total, after.pipes);
    round.rss_after = rss_kib(pid);
    (round.fds_peak, round.rss_peak) = sampler.stop();
    round.rss_peak = round.rss_peak.max(round.rss_after);

    let log = proxy.new_log_lines();
    let failures = round.tally(&outcomes, upstream.take(), &log);
    assert!(
        failures.is_empty(),
        "{} failures over {} connections (seed {seed}); the first ones:\n{}",
        failures.len(),
        round.connections,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    round
}

/// Runs `ids`' client sides over [`CLIENTS`] threads.
fn run_clients(
    proxy: SocketAddr,
    seed: u64,
    ids: std::ops::Range<u64>,
) -> Vec<(Script, ClientOutcome)> {
    let next = AtomicU64::new(ids.start);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= ids.end {
                    return;
                }
                let script = Script::new(seed, id);
                let outcome = client::run(proxy, &script);
                outcomes.lock().unwrap().push((script, outcome));
            });
        }
    });
    outcomes.into_inner().unwrap()
}
