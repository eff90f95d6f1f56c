//! Starting an example program as a child process and watching its log.
//!
//! Every wait here is bounded but generous (a loaded 2-core machine may be slow), and
//! no test asserts how long anything took.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on any single wait: far beyond what a healthy run needs.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running example program; killed on drop if still running.
pub struct Program {
    child: Child,
    lines: Receiver<String>,
    /// Every log line seen so far.
    pub log: Vec<String>,
    /// The address it listens on (from its "listening on" line).
    pub addr: SocketAddr,
}

impl Program {
    /// Starts `bin` with `args` plus `--listen 127.0.0.1:0`, and waits until it
    /// says where it listens.
    pub fn start(bin: &str, args: &[&str]) -> Program {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {bin}: {err}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut program = Program {
            child,
            lines,
            log: Vec::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = program.wait_for_log("listening on ");
        let after = line.split("listening on ").nth(1).unwrap();
        let addr = after.split_whitespace().next().unwrap();
        program.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"));
        program
    }

    /// Waits for a log line containing `needle` (possibly one already seen) and
    /// returns it; panics with the log so far if none comes.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no log line with {needle:?}; log so far:\n{}",
                        self.log.join("\n")
                    )
                }
            }
        }
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log lines that arrived since the last look (kept in `log` too).
    pub fn new_log_lines(&mut self) -> Vec<String> {
        let mut new = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line.clone());
            new.push(line);
        }
        new
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; `pid` is our own child, not
        // yet reaped (we hold its `Child`), so the number cannot name another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the program to exit, and fails the test (with the log) unless it
    /// exited with success.
    pub fn wait_clean_exit(&mut self) {
        let status = self.wait_exit();
        assert!(
            status.success(),
            "exit status {status}; log:\n{}",
            self.log.join("\n")
        );
    }

    /// Waits for the program to exit; panics if it is still running after
    /// [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect the last lines for assertions on the log.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.log.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running; log:\n{}",
                self.log.join("\n")
            );
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `done` holds, failing the test after [`PATIENCE`] with `state()` in
/// the message.
pub fn wait_until(what: &str, done: impl Fn() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            state()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many file descriptors process `pid` has open (`/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|err| panic!("/proc/{pid}/fd: {err}"))
        .count()
}

/// What process `pid`'s open fds are, by kind (`socket`, `pipe`, `anon_inode:[eventfd]`,
/// a path...), with a count each.
pub fn fd_kinds(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return kinds;
    };
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let kind = target.split(":[").next().unwrap_or(&target).to_string();
        let kind = if kind == "anon_inode" { target } else { kind };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// The resident set size of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("/proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// An address nothing listens on: bound, then closed, so connecting is refused.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// Whether the peer ended the connection: EOF or a reset, as opposed to our read
/// timing out (which would mean the connection is still open and silent).
pub fn closed_by_peer(stream: &mut impl Read) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Reads one request or response head: the first line and the headers (names
/// lowercased).
pub fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, HashMap<String, String>)> {
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            return Some((first.trim_end().to_string(), headers));
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// Reads a `Content-Length` body (none: empty).
pub fn read_body(reader: &mut BufReader<TcpStream>, headers: &HashMap<String, String>) -> Vec<u8> {
    let len: usize = headers
        .get("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    body
}

/// What an [`http_upstream`] answers: from the request line, headers and body, the
/// response body.
pub type Answer = fn(&str, &HashMap<String, String>, &[u8]) -> String;

/// A thread-per-connection HTTP/1.1 keep-alive upstream that answers every request
/// `200 OK` with `X-Upstream: yes` and the body `answer` makes; returns its address and
/// a count of the connections it accepted.
pub fn http_upstream(answer: Answer) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                while let Some((first, headers)) = read_head(&mut reader) {
                    let body = read_body(&mut reader, &headers);
                    let answer = answer(&first, &headers, &body);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Upstream: yes\r\n\r\n{answer}",
                        answer.len()
                    );
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// The path of a request line.
pub fn path(first_line: &str) -> &str {
    first_line.split(' ').nth(1).unwrap_or("")
}
