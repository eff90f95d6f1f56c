//! A ping-pong load generator: N connections, each sends a message, waits for the whole
//! echo, checks it, and sends again.
//!
//! This is the client the `headtohead` I/O benchmarks drive every server with, so the
//! only thing that differs between two measured servers is the server. It runs on a
//! uringo runtime with one worker, optionally pinned to one CPU: a completion-based
//! client on one core costs less per request than the servers it measures, so the
//! server, not the client, is what saturates.
//!
//! ```no_run
//! use std::time::Duration;
//! use uringo_examples::loadgen::{Config, LoadGen};
//!
//! let cfg = Config::new("127.0.0.1:7000".parse().unwrap());
//! let load = LoadGen::start(&cfg)?;
//! std::thread::sleep(Duration::from_secs(1));
//! let done = load.stop()?;
//! println!("{done} requests in about a second");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use uringo::buf::IoBuf;
use uringo::net::TcpStream;
use uringo::{JoinHandle, Runtime};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// The echo server.
    pub addr: SocketAddr,
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// Bytes per message (each request is one message out and its echo back).
    pub size: usize,
    /// The CPU the client's worker runs on; `None` leaves it to the scheduler.
    pub cpu: Option<usize>,
}

impl Config {
    /// 100 connections, 1 KiB messages, unpinned: the issue's echo ping-pong shape.
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            connections: 100,
            size: 1024,
            cpu: None,
        }
    }
}

/// What a connection's job of [`LoadGen::start_with`] shares with the load.
#[derive(Clone, Debug)]
pub struct Counters {
    /// Exchanges completed and checked, over all connections.
    pub completed: Arc<AtomicU64>,
    /// Set when the load stops: finish the exchange in flight and return.
    pub stop: Arc<AtomicBool>,
}

/// A running load: every connection is established and pinging.
pub struct LoadGen {
    rt: Runtime,
    completed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

impl LoadGen {
    /// Connects every connection (`TCP_NODELAY` on), then starts them all pinging.
    /// Fails if a connection cannot be made or the config is empty.
    pub fn start(cfg: &Config) -> io::Result<LoadGen> {
        if cfg.size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "loadgen needs a message of at least one byte",
            ));
        }
        let size = cfg.size;
        LoadGen::start_with(
            cfg.addr,
            cfg.connections,
            cfg.cpu,
            move |i, stream, done| ping(stream, message(size, i), done.completed, done.stop),
        )
    }

    /// The same machinery for another protocol: connects `connections` connections to
    /// `addr` (`TCP_NODELAY` on) from a one-worker runtime pinned to `cpu` if given, and
    /// runs `job(i, stream, counters)` on each; a job counts each exchange it checked
    /// in `counters.completed` and ends once `counters.stop` is set.
    pub fn start_with<F, Fut>(
        addr: SocketAddr,
        connections: usize,
        cpu: Option<usize>,
        job: F,
    ) -> io::Result<LoadGen>
    where
        F: Fn(usize, TcpStream, Counters) -> Fut,
        Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
    {
        if connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a load needs at least one connection",
            ));
        }
        let rt = client_runtime(cpu)?;
        let streams = rt.block_on(async move {
            let mut streams = Vec::with_capacity(connections);
            for _ in 0..connections {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                streams.push(stream);
            }
            io::Result::Ok(streams)
        })?;
        let completed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| {
                let counters = Counters {
                    completed: completed.clone(),
                    stop: stop.clone(),
                };
                rt.spawn(job(i, stream, counters))
            })
            .collect();
        Ok(LoadGen {
            rt,
            completed,
            stop,
            tasks,
        })
    }

    /// Requests completed so far (echo received and checked), over all connections.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Lets each connection finish its request in flight, closes them all and returns
    /// the total completed; the first connection error (a short or wrong echo, a reset)
    /// if there was one.
    pub fn stop(self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let tasks = self.tasks;
        let outcome = self.rt.block_on(async move {
            let mut first_err = None;
            for task in tasks {
                let res = task.await.unwrap_or_else(|e| Err(io::Error::other(e)));
                if let Err(err) = res {
                    first_err.get_or_insert(err);
                }
            }
            first_err
        });
        match outcome {
            Some(err) => Err(err),
            None => Ok(self.completed.load(Ordering::Relaxed)),
        }
    }
}

/// A one-worker runtime whose worker runs on `cpu`. Workers inherit the affinity of the
/// thread that builds the runtime, so a helper thread pinned to `cpu` builds it.
fn client_runtime(cpu: Option<usize>) -> io::Result<Runtime> {
    std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_current_thread(cpu)?;
        }
        uringo::Builder::new()
            .worker_threads(1)
            .pin_workers(cpu.is_some())
            .build()
    })
    .join()
    .map_err(|_| io::Error::other("building the load generator's runtime panicked"))?
}

/// Connection `i`'s message: distinct per connection, so an echo crossed between two
/// connections is caught.
fn message(size: usize, i: usize) -> Vec<u8> {
    (0..size).map(|j| (i.wrapping_mul(31) + j) as u8).collect()
}

async fn ping(
    stream: TcpStream,
    msg: Vec<u8>,
    completed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut out = msg.clone();
    // read_exact fills a buffer from its start to its capacity; a Vec's capacity may
    // exceed what was asked for, so the echo goes through a slice of exactly the
    // message size.
    let mut echo = Vec::with_capacity(msg.len());
    while !stop.load(Ordering::Relaxed) {
        let (res, o) = stream.write_all(out).await;
        res?;
        out = o;
        echo.clear();
        let (res, e) = stream.read_exact(echo.slice(0..msg.len())).await;
        res?;
        echo = e.into_inner();
        if *echo != *msg {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the echo differs from the message sent",
            ));
        }
        completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Restricts the calling thread (and the threads it spawns from now on) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is out of range"),
        ));
    }
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked against CPU_SETSIZE, the set's capacity, above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set lives across the call and its size
    // is passed with it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises this process's soft limit on open files to the hard limit (thousands of
/// connections need thousands of fds) and returns the new limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}
