//! The parent's side of a server child: start it, learn its address, ask how many
//! connections it serves, read its CPU time and RSS from `/proc`, stop it.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::Server;

/// A server running in a child process (the current executable, `--serve KIND`).
pub struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl ServerChild {
    /// Starts `server`, pinned to `cpu` if given, and waits until it listens.
    pub fn start(server: Server, cpu: Option<usize>) -> io::Result<ServerChild> {
        Self::start_with(server, cpu, None)
    }

    /// Starts `server` (a proxy of `upstream`, if given), pinned to `cpu` if given, and
    /// waits until it listens.
    pub fn start_with(
        server: Server,
        cpu: Option<usize>,
        upstream: Option<SocketAddr>,
    ) -> io::Result<ServerChild> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--serve", server.name()]);
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        if let Some(upstream) = upstream {
            cmd.args(["--upstream", &upstream.to_string()]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let mut stdout = BufReader::new(stdout.expect("stdout was piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "server child {} did not start (said {line:?})",
                server.name()
            )));
        };
        Ok(ServerChild {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections whose task has started on the server.
    pub fn started_connections(&mut self) -> io::Result<usize> {
        let stdin = self.stdin.as_mut().expect("stdin is open until drop");
        stdin.write_all(b"count\n")?;
        stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .strip_prefix("count ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::other(format!("server child answered {line:?}")))
    }

    /// Waits until `n` connections have started on the server, for at most `limit`.
    pub fn wait_for_connections(&mut self, n: usize, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let started = self.started_connections()?;
            if started >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the server started {started} of {n} connections in {limit:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server process's CPU time so far, user plus system, all threads (exited
    /// ones included).
    pub fn cpu_time(&self) -> io::Result<Duration> {
        process_cpu_time(self.child.id())
    }

    /// The server process's resident set size, in KiB.
    pub fn rss_kib(&self) -> io::Result<u64> {
        vm_rss_kib(self.child.id())
    }
}

impl Drop for ServerChild {
    /// Closing stdin asks the child to exit; it is killed if it has not within 5 s.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of process `pid`, from `/proc/<pid>/stat`.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_time_from_stat(&stat, clock_ticks_per_sec())
}

/// utime + stime from the text of a `/proc/<pid>/stat` file.
pub fn cpu_time_from_stat(stat: &str, ticks_per_sec: u64) -> io::Result<Duration> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/<pid>/stat");
    // The command name (field 2) may contain spaces and parentheses; the fields after
    // its closing parenthesis start at field 3 (state). utime, stime are fields 14, 15.
    let rest = &stat[stat.rfind(')').ok_or_else(bad)? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let mut next =
        || -> io::Result<u64> { fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad) };
    let ticks = next()? + next()?;
    if ticks_per_sec == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_sec as f64))
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(100)
}

/// VmRSS of process `pid`, in KiB, from `/proc/<pid>/status`.
pub fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    vm_rss_from_status(&status)
}

/// The VmRSS figure (KiB) from the text of a `/proc/<pid>/status` file.
pub fn vm_rss_from_status(status: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/<pid>/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_skips_a_command_name_with_spaces_and_parens() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194304 10 0 0 0 250 50 0 0 20 0 3 0";
        let t = cpu_time_from_stat(stat, 100).unwrap();
        assert_eq!(t, Duration::from_secs(3));
        assert!(cpu_time_from_stat("42 (x) S 1", 100).is_err());
    }

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        assert!(vm_rss_kib(pid).unwrap() > 0);
        // Burn a little CPU so the figure cannot legitimately be zero.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(process_cpu_time(pid).unwrap() > Duration::ZERO);
    }

    #[test]
    fn status_parsing_finds_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t 100 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(vm_rss_from_status(status).unwrap(), 2048);
        assert!(vm_rss_from_status("Name:\tx\n").is_err());
    }
}
