//! `trickle`: what the search spin costs when work arrives sporadically.
//!
//! A thread outside the runtime spawns one trivial task, sleeps, and does it again, for
//! a few seconds; the figure is the process's CPU time over that window, per spawned
//! task. Each arrival wakes a parked worker, which runs the task, searches, finds
//! nothing and (with the spin) watches for 5 µs before it parks again: the worst case
//! for spinning, because the spin never catches anything. uringo with its default
//! search spin, uringo with `search_spin(Duration::ZERO)` and tokio run in alternating
//! rounds, one runtime alive at a time.
//!
//! ```text
//! cargo run --release -p uringo-benches --bin trickle [-- ROUNDS [SECONDS]]
//! ```

use std::time::{Duration, Instant};

use lexopt::ValueExt as _;

/// CPU time this process has used, user plus system, all threads, at µs resolution
/// (`/proc/<pid>/stat` counts 10 ms ticks).
fn process_cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct, and
    // `getrusage` only writes into the one we pass, which outlives the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Sleeps between arrivals (the achieved gap is longer: timer slack and wake-up).
const GAPS: [Duration; 3] = [
    Duration::from_micros(200),
    Duration::from_micros(50),
    Duration::from_micros(1),
];

#[derive(Clone, Copy)]
enum Peer {
    Uringo,
    UringoNoSpin,
    Tokio,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Uringo => "uringo",
            Peer::UringoNoSpin => "uringo-no-spin",
            Peer::Tokio => "tokio",
        }
    }
}

/// One round: spawns from this thread every `gap` for `window`. Returns the tasks
/// spawned, the CPU time the process used meanwhile, and the wall time.
fn round(peer: Peer, gap: Duration, window: Duration) -> (u64, Duration, Duration) {
    let spawner: Box<dyn Fn()> = match peer {
        Peer::Uringo | Peer::UringoNoSpin => {
            let mut builder = uringo::Builder::new();
            builder.worker_threads(2);
            if let Peer::UringoNoSpin = peer {
                builder.search_spin(Duration::ZERO);
            }
            let rt = builder.build().expect("uringo runtime");
            Box::new(move || drop(rt.spawn(async { std::hint::black_box(1) })))
        }
        Peer::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .expect("tokio runtime");
            Box::new(move || drop(rt.spawn(async { std::hint::black_box(1) })))
        }
    };
    // Let the workers start and park.
    std::thread::sleep(Duration::from_millis(50));
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    let mut spawned = 0;
    while start.elapsed() < window {
        spawner();
        spawned += 1;
        std::thread::sleep(gap);
    }
    let wall = start.elapsed();
    let cpu = process_cpu_time() - cpu_before;
    drop(spawner);
    (spawned, cpu, wall)
}

/// `[ROUNDS] [WINDOW]`, both positional.
fn parse() -> Result<(usize, Duration), String> {
    let (mut rounds, mut window) = (3, Duration::from_secs(2));
    let mut parser = lexopt::Parser::from_env();
    let mut position = 0;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let lexopt::Arg::Value(value) = arg else {
            return Err(arg.unexpected().to_string());
        };
        let value = value.string().map_err(|e| e.to_string())?;
        match position {
            0 => {
                rounds = value
                    .parse()
                    .map_err(|e| format!("ROUNDS {value:?}: {e}"))?
            }
            1 => window = uringo_benches::app::parse_duration("WINDOW", &value)?,
            _ => return Err(format!("unexpected argument {value:?}")),
        }
        position += 1;
    }
    Ok((rounds, window))
}

fn main() {
    let (rounds, window) = match parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("trickle: {err}\nusage: trickle [ROUNDS (default 3)] [WINDOW (seconds or e.g. 2s; default 2)]");
            std::process::exit(2);
        }
    };
    let peers = [Peer::Uringo, Peer::UringoNoSpin, Peer::Tokio];
    println!(
        "| sleep between spawns | achieved gap | {} | spin cost |",
        peers
            .map(|p| format!("{} CPU µs/task (% of a core)", p.name()))
            .join(" | ")
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for gap in GAPS {
        // Per peer, per round: CPU µs per task, CPU % of one core, achieved gap in µs.
        let mut figures = vec![Vec::new(); peers.len()];
        for _ in 0..rounds {
            for (i, &peer) in peers.iter().enumerate() {
                let (n, cpu, wall) = round(peer, gap, window);
                let n = n.max(1) as f64;
                figures[i].push((
                    cpu.as_secs_f64() * 1e6 / n,
                    100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
                    wall.as_secs_f64() * 1e6 / n,
                ));
                eprintln!(
                    "{:?} {}: {:.1} µs/task",
                    gap,
                    peer.name(),
                    figures[i].last().unwrap().0
                );
            }
        }
        let med = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
            let mut xs: Vec<f64> = v.iter().map(f).collect();
            xs.sort_by(f64::total_cmp);
            xs[xs.len() / 2]
        };
        let cells: Vec<String> = figures
            .iter()
            .map(|v| format!("{:.2} ({:.0} %)", med(v, |x| x.0), med(v, |x| x.1)))
            .collect();
        println!(
            "| {:?} | {:.0} µs | {} | {:.2}× |",
            gap,
            med(&figures[0], |x| x.2),
            cells.join(" | "),
            med(&figures[0], |x| x.0) / med(&figures[1], |x| x.0),
        );
    }
}
