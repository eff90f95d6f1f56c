//! Idle connections: how much memory a server spends on connections that wait to read.
//!
//! Per round, a fresh server child; its VmRSS once it listens, then this process opens
//! N connections (plain blocking sockets: no runtime on this side), waits until the
//! server has started a task for each and they settle, and reads VmRSS again. Then one
//! message goes out on every connection before any echo is read (so a pool server sees
//! them all at once) and every echo must come back intact.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use super::child::ServerChild;
use super::server::Server;
use super::IoConfig;

/// One round's figures.
#[derive(Clone, Copy, Debug)]
pub struct IdleRound {
    /// Server VmRSS once listening, before any connection (KiB).
    pub rss_before_kib: u64,
    /// Server VmRSS with every connection established and idle (KiB).
    pub rss_idle_kib: u64,
    /// Connections that echoed their message afterwards.
    pub alive: usize,
}

impl IdleRound {
    /// RSS growth, in KiB (can be 0; never negative).
    pub fn growth_kib(&self) -> u64 {
        self.rss_idle_kib.saturating_sub(self.rss_before_kib)
    }
}

/// Every round of one server.
#[derive(Clone, Debug)]
pub struct IdleResult {
    /// The server.
    pub server: Server,
    /// Connections per round.
    pub connections: usize,
    /// Its rounds.
    pub rounds: Vec<IdleRound>,
}

impl IdleResult {
    /// Median RSS growth over the rounds, KiB.
    pub fn growth_kib(&self) -> f64 {
        let xs: Vec<f64> = self.rounds.iter().map(|r| r.growth_kib() as f64).collect();
        crate::runner::median(&xs).unwrap_or(f64::NAN)
    }

    /// Median growth per connection, bytes.
    pub fn bytes_per_conn(&self) -> f64 {
        self.growth_kib() * 1024.0 / self.connections as f64
    }

    /// Whether every connection of every round echoed its message.
    pub fn all_alive(&self) -> bool {
        self.rounds.iter().all(|r| r.alive == self.connections)
    }
}

/// Runs `rounds` rounds of every server, the servers alternating within a round.
pub fn run(
    servers: &[Server],
    rounds: usize,
    cfg: &IoConfig,
    mut progress: impl FnMut(Server, &IdleRound),
) -> io::Result<Vec<IdleResult>> {
    let mut results: Vec<IdleResult> = servers
        .iter()
        .map(|&server| IdleResult {
            server,
            connections: cfg.idle_connections,
            rounds: Vec::new(),
        })
        .collect();
    for _ in 0..rounds {
        for result in &mut results {
            let r = round(result.server, cfg)?;
            progress(result.server, &r);
            result.rounds.push(r);
        }
    }
    Ok(results)
}

const MESSAGE: &[u8] = b"are you still there?";

fn round(server: Server, cfg: &IoConfig) -> io::Result<IdleRound> {
    let mut child = ServerChild::start(server, cfg.server_cpu)?;
    // Let the runtime finish starting (threads, rings) before the baseline.
    sleep(Duration::from_millis(100));
    let rss_before_kib = child.rss_kib()?;
    let mut conns = Vec::with_capacity(cfg.idle_connections);
    for _ in 0..cfg.idle_connections {
        conns.push(TcpStream::connect(child.addr())?);
    }
    child.wait_for_connections(cfg.idle_connections, Duration::from_secs(60))?;
    // Each task has started; give the last ones time to reach (and submit) their read.
    sleep(Duration::from_millis(200));
    let rss_idle_kib = child.rss_kib()?;
    for conn in &mut conns {
        conn.write_all(MESSAGE)?;
    }
    let mut alive = 0;
    let mut echo = [0u8; MESSAGE.len()];
    for conn in &mut conns {
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        if conn.read_exact(&mut echo).is_ok() && echo == MESSAGE {
            alive += 1;
        }
    }
    drop(conns);
    drop(child);
    Ok(IdleRound {
        rss_before_kib,
        rss_idle_kib,
        alive,
    })
}
