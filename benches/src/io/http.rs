//! The http_proxy shape: an HTTP reverse proxy between an HTTP/1.1 load generator and
//! an upstream, the proxy's CPU per request measured.
//!
//! The proxies are the `http-proxy` and `http-proxy-tokio` binaries of uringo-examples
//! (the same request handling on uringo and on tokio), run as they are
//! (`--listen 127.0.0.1:0 --upstream ADDR --workers 1`), pinned to the server CPU: the
//! bench spawns them from a thread pinned there, and a child inherits its parent
//! thread's CPU mask, so every thread of the proxy runs on that CPU. They are looked
//! for beside the running executable (`target/release/` for a release run); a missing
//! one skips the shape with a message saying how to build it.
//!
//! The upstream is [`upstream`], a uringo server in a `--serve http-upstream` child on
//! the client CPU, answering every request with [`RESPONSE`]. The load is [`requests`] on each connection of a `LoadGen`:
//! N keep-alive connections on a uringo runtime pinned to the client CPU, each sending
//! `GET /` and waiting for the whole response before the next, and checking it is a 200
//! with [`BODY`] (anything else fails the round, so the run).

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uringo::buf::IoBuf;
use uringo::net::TcpStream;

use uringo_examples::loadgen::{pin_current_thread, LoadGen};

use super::child::{process_cpu_time, ServerChild};
use super::echo::{measure, EchoRound};
use super::server::Server;
use super::IoConfig;

/// The body every response carries.
pub const BODY: &[u8] = b"hello from the upstream\n";
/// The upstream's whole response (keep-alive is HTTP/1.1's default).
pub const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nhello from the upstream\n";
/// What each client connection sends, again and again.
pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
/// A response head longer than this is an error (the proxies send a few hundred bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// The command that builds the proxies, for the message when one is missing.
pub const BUILD_HINT: &str =
    "cargo build --release -p uringo-examples --bin http-proxy --bin http-proxy-tokio";

/// Where the proxy binary of `server` should be: beside the running executable.
pub fn binary(server: Server) -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("the running executable has no directory"))?;
    Ok(dir.join(server.name()))
}

/// The proxy binaries that are missing, as paths (empty when both are there).
pub fn missing_binaries() -> Vec<PathBuf> {
    [Server::HttpProxy, Server::HttpProxyTokio]
        .into_iter()
        .filter_map(|s| binary(s).ok())
        .filter(|p| !p.is_file())
        .collect()
}

/// One round of the shape with `server` (`HttpProxy` or `HttpProxyTokio`).
pub fn round(server: Server, cfg: &IoConfig) -> io::Result<EchoRound> {
    // Upstream and load share the client CPU, so the proxy has its CPU to itself.
    let upstream = ServerChild::start(Server::HttpUpstream, cfg.client_cpu)?;
    let proxy = ProxyChild::start(server, cfg.server_cpu, upstream.addr())?;
    // The HTTP/1.1 load: keep-alive connections, one request in flight each.
    let load = LoadGen::start_with(
        proxy.addr,
        cfg.http_connections,
        cfg.client_cpu,
        |_, stream, counters| requests(stream, counters.completed, counters.stop),
    )?;
    let r = measure(server, cfg, || load.completed(), || proxy.cpu_time());
    // Stopping also checks every response: one that was not the upstream's fails.
    load.stop()?;
    drop(proxy);
    drop(upstream);
    r
}

/// A proxy binary running as a child, pinned; killed on drop.
struct ProxyChild {
    child: Child,
    addr: SocketAddr,
}

impl ProxyChild {
    /// Starts `server`'s binary in front of `upstream` with one worker, pinned to `cpu`
    /// if given, and waits for its `listening on ADDR` log line.
    fn start(server: Server, cpu: Option<usize>, upstream: SocketAddr) -> io::Result<ProxyChild> {
        let bin = binary(server)?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--listen", "127.0.0.1:0", "--workers", "1", "--upstream"])
            .arg(upstream.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The child inherits the CPU mask of the thread that spawns it, so a thread
        // pinned to `cpu` spawns it: the proxy's threads never run anywhere else.
        let spawned = std::thread::spawn(move || {
            if let Some(cpu) = cpu {
                pin_current_thread(cpu)?;
            }
            cmd.spawn()
        })
        .join()
        .map_err(|_| io::Error::other("spawning the proxy panicked"))?;
        let mut child =
            spawned.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr was piped"));
        let mut log = String::new();
        let addr = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line)? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "{} exited before listening; its log:\n{log}",
                    server.name()
                )));
            }
            log.push_str(&line);
            if let Some(addr) = listening_addr(&line) {
                break addr;
            }
        };
        // Keep draining its log so a chatty proxy never blocks on a full pipe.
        std::thread::spawn(move || io::copy(&mut stderr, &mut io::sink()));
        Ok(ProxyChild { child, addr })
    }

    fn cpu_time(&self) -> io::Result<Duration> {
        process_cpu_time(self.child.id())
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a proxy's `... listening on 127.0.0.1:PORT ...` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let after = line.split("listening on ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

/// The upstream's connection task: every complete request head read gets [`RESPONSE`].
/// Request bodies are not expected (the load sends `GET`s), so none is skipped.
pub async fn upstream(stream: uringo::net::TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(super::server::BUF_SIZE);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_RESPONSE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a request head too long",
                ));
            }
            buf.reserve(super::server::BUF_SIZE);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = stream.read(buf.slice(len..cap)).await;
        buf = slice.into_inner();
        if res? == 0 {
            return Ok(());
        }
        let mut requests = 0;
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            buf.drain(..end + 4);
            requests += 1;
        }
        for _ in 0..requests {
            let (res, _) = stream.write_all(RESPONSE).await;
            res?;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether `buf` holds a whole response, and if so how long it is; an error if what is
/// there is not a `200` with [`BODY`] (the status, a missing `Content-Length`, the body).
fn parse_response(buf: &[u8]) -> io::Result<Option<usize>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() > MAX_RESPONSE {
            return Err(bad("a response head over 64 KiB".into()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| bad("a response head that is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(bad(format!("the proxy answered {status:?}, not 200")));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| bad(format!("a response without Content-Length: {head:?}")))?;
    let end = head_end + length;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[head_end..end] != BODY {
        return Err(bad(format!(
            "a response body {:?}, not the upstream's",
            String::from_utf8_lossy(&buf[head_end..end])
        )));
    }
    if buf.len() > end {
        return Err(bad(
            "bytes after the response, with no request for them".into()
        ));
    }
    Ok(Some(end))
}

/// One connection: `GET /`, the whole response read and checked, again until `stop`.
async fn requests(
    stream: TcpStream,
    completed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (res, _) = stream.write_all(REQUEST).await;
        res?;
        buf.clear();
        while parse_response(&buf)?.is_none() {
            if buf.len() == buf.capacity() {
                buf.reserve(4096);
            }
            let (len, cap) = (buf.len(), buf.capacity());
            let (res, slice) = stream.read(buf.slice(len..cap)).await;
            buf = slice.into_inner();
            if res? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed a connection mid-request",
                ));
            }
        }
        completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_constant_carries_the_body() {
        assert!(RESPONSE.ends_with(BODY));
        assert!(std::str::from_utf8(RESPONSE)
            .unwrap()
            .contains(&format!("Content-Length: {}\r\n", BODY.len())));
        assert_eq!(parse_response(RESPONSE).unwrap(), Some(RESPONSE.len()));
    }

    #[test]
    fn responses_are_parsed_whole_and_checked() {
        let proxied = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 24\r\ndate: x\r\n\r\nhello from the upstream\n";
        assert_eq!(parse_response(proxied).unwrap(), Some(proxied.len()));
        // Partial: the head, or the body, not there yet.
        for cut in [0, 10, 40, proxied.len() - 1] {
            assert_eq!(parse_response(&proxied[..cut]).unwrap(), None, "cut {cut}");
        }
        let err = |r: &[u8]| parse_response(r).unwrap_err().to_string();
        assert!(err(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").contains("502"));
        assert!(
            err(b"HTTP/1.1 200 OK\r\ncontent-length: 24\r\n\r\nhello from the UPSTREAM\n")
                .contains("body")
        );
        assert!(
            err(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .contains("Content-Length")
        );
        let mut two = proxied.to_vec();
        two.extend_from_slice(proxied);
        assert!(err(&two).contains("after the response"));
    }

    #[test]
    fn the_listening_line_of_both_proxies_gives_the_address() {
        let line = "2026-01-01T00:00:00.000000Z  INFO http_proxy: listening on 127.0.0.1:41234 upstreams=\"[127.0.0.1:1]\" workers=1\n";
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(listening_addr("INFO something else"), None);
    }
}
