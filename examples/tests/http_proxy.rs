//! The `http-proxy` program, run as a user runs it: a request reaches the upstream
//! with `X-Forwarded-For` and its answer comes back over a keep-alive connection; and
//! the proxy answers its own failures: 400 for a bad request, 413 for a body over the
//! limit, 502 when the upstream refuses, 504 when it does not answer in time. SIGTERM
//! ends it with exit code 0.

mod support;

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::{
    closed_by_peer, http_upstream, path, read_body, read_head, refused_addr, Program, PATIENCE,
};

const BIN: &str = env!("CARGO_BIN_EXE_http-proxy");

/// A response as the client saw it.
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An upstream that answers every request with what it saw: the `X-Forwarded-For`
/// header, the path, the body length and any `X-Secret` header.
fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    http_upstream(|first, headers, body| {
        let xff = headers.get("x-forwarded-for").cloned().unwrap_or_default();
        let secret = headers.get("x-secret").cloned().unwrap_or_default();
        format!(
            "xff={xff};path={};body={};secret={secret}",
            path(first),
            body.len()
        )
    })
}

/// An upstream that accepts connections and never answers.
fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

/// A client connection to the proxy.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Sends raw bytes and reads one response.
    fn send(&mut self, raw: &[u8]) -> Response {
        self.writer.write_all(raw).unwrap();
        let (status_line, headers) = read_head(&mut self.reader).expect("no response");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let body = read_body(&mut self.reader, &headers);
        Response {
            status,
            headers,
            body,
        }
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n").into_bytes()
}

#[test]
fn requests_reach_the_upstream_with_x_forwarded_for_over_keep_alive() {
    let (upstream, _) = echo_upstream();
    let mut proxy = Program::start(BIN, &["--upstream", &upstream.to_string()]);
    let mut client = Client::connect(proxy.addr);

    let first = client.send(&get("/first?q=1"));
    assert_eq!(first.status, 200);
    assert_eq!(
        first.headers.get("x-upstream").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        String::from_utf8(first.body).unwrap(),
        "xff=127.0.0.1;path=/first?q=1;body=0;secret="
    );

    // Same client connection: keep-alive. An X-Forwarded-For from a proxy in front is
    // kept and our peer appended; the body arrives whole; a header that `Connection`
    // marks as hop-by-hop is not forwarded.
    let post = b"POST /second HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nContent-Length: 5\r\n\r\nhello";
    let second = client.send(post);
    assert_eq!(second.status, 200);
    assert_eq!(
        String::from_utf8(second.body).unwrap(),
        "xff=203.0.113.7, 127.0.0.1;path=/second;body=5;secret="
    );

    drop(client);
    proxy.terminate();
    proxy.wait_clean_exit();
}

#[test]
fn a_request_that_does_not_parse_gets_400() {
    let (upstream, accepted) = echo_upstream();
    let proxy = Program::start(BIN, &["--upstream", &upstream.to_string()]);
    let garbage = Client::connect(proxy.addr).send(b"this is not http\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let no_host = Client::connect(proxy.addr).send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(no_host.status, 400);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a bad request was forwarded"
    );
}

#[test]
fn a_body_over_the_limit_gets_413() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.to_string(),
            "--max-body-bytes",
            "1000",
        ],
    );
    let mut client = Client::connect(proxy.addr);
    let mut request =
        b"POST / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2000\r\n\r\n".to_vec();
    request.extend_from_slice(&[b'x'; 2000]);
    assert_eq!(client.send(&request).status, 413);
}

#[test]
fn a_chunked_body_that_grows_past_the_limit_while_streaming_gets_413() {
    // The upstream never answers, so the only way this request ends is the limit
    // tripping while the body streams through (the upstream timeout is far away).
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &silent_upstream().to_string(),
            "--max-body-bytes",
            "1000",
        ],
    );
    let mut client = Client::connect(proxy.addr);
    let mut request =
        b"POST / HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b'x'; 0x200]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(client.send(&request).status, 413);
}

#[test]
fn a_refusing_upstream_gets_502() {
    let proxy = Program::start(BIN, &["--upstream", &refused_addr().to_string()]);
    let response = Client::connect(proxy.addr).send(&get("/"));
    assert_eq!(response.status, 502);
}

#[test]
fn a_silent_upstream_gets_504() {
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &silent_upstream().to_string(),
            "--upstream-timeout",
            "500ms",
        ],
    );
    let mut client = Client::connect(proxy.addr);
    assert_eq!(client.send(&get("/slow")).status, 504);
    // The proxy's own answer leaves the client connection usable.
    assert_eq!(client.send(&get("/slow-again")).status, 504);
}

#[test]
fn a_dead_upstream_is_skipped_for_the_next_one() {
    let (live, accepted) = echo_upstream();
    let upstreams = format!("{},{live}", refused_addr());
    let proxy = Program::start(BIN, &["--upstream", &upstreams]);
    for i in 0..10 {
        // A new client connection each time, so the round robin reaches both names.
        let response = Client::connect(proxy.addr).send(&get(&format!("/{i}")));
        assert_eq!(response.status, 200, "request {i}");
    }
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

#[test]
fn connections_over_the_limit_are_closed() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.to_string(),
            "--max-connections",
            "1",
        ],
    );
    let mut first = Client::connect(proxy.addr);
    assert_eq!(first.send(&get("/one")).status, 200);
    // The proxy accepts the second connection and resets it at once, so the reset can
    // surface on any call, setting the read timeout included (a pending socket error).
    let mut second = TcpStream::connect(proxy.addr).unwrap();
    let closed = second.set_read_timeout(Some(PATIENCE)).is_err() || {
        let _ = second.write_all(&get("/two"));
        closed_by_peer(&mut second)
    };
    assert!(closed, "a connection over the limit was served");
    // The first is still served.
    assert_eq!(first.send(&get("/one-again")).status, 200);
}

/// A client that connects and sends nothing, one that stops halfway through a request
/// head, and one idle on keep-alive after a response are each closed once the header
/// timeout passes.
#[test]
fn clients_that_send_no_request_head_in_time_are_closed() {
    let (upstream, _) = echo_upstream();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream.to_string(),
            "--header-timeout",
            "300ms",
        ],
    );
    let connect = || {
        let stream = TcpStream::connect(proxy.addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    };
    let mut silent = connect();
    let mut halfway = connect();
    halfway.write_all(b"GET / HTTP/1.1\r\nHost: exam").unwrap();
    let mut kept_alive = Client::connect(proxy.addr);
    assert_eq!(kept_alive.send(&get("/once")).status, 200);
    assert!(closed_by_peer(&mut silent), "a silent client was kept");
    assert!(
        closed_by_peer(&mut halfway),
        "a half-sent head was waited for"
    );
    assert!(
        closed_by_peer(&mut kept_alive.reader),
        "an idle keep-alive connection was kept"
    );
}

/// An upstream that switches protocols on `Upgrade: websocket` and then echoes bytes
/// upper-cased, as a stand-in for a WebSocket server.
fn upgrading_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                let Some((_, headers)) = read_head(&mut reader) else {
                    return;
                };
                let upgrade = headers.get("upgrade").cloned().unwrap_or_default();
                let connection = headers.get("connection").cloned().unwrap_or_default();
                if upgrade != "websocket" || !connection.eq_ignore_ascii_case("upgrade") {
                    let _ =
                        writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                writer
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .unwrap();
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    if writer.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn an_upgrade_passes_through_and_bytes_flow_both_ways_after_101() {
    let proxy = Program::start(BIN, &["--upstream", &upgrading_upstream().to_string()]);
    let mut client = Client::connect(proxy.addr);
    client
        .writer
        .write_all(b"GET /chat HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let (status_line, headers) = read_head(&mut client.reader).expect("no response");
    assert!(status_line.starts_with("HTTP/1.1 101"), "{status_line}");
    assert_eq!(
        headers.get("upgrade").map(String::as_str),
        Some("websocket")
    );
    for message in ["hello", "over the tunnel"] {
        client.writer.write_all(message.as_bytes()).unwrap();
        let mut back = vec![0u8; message.len()];
        client.reader.read_exact(&mut back).unwrap();
        assert_eq!(back, message.to_ascii_uppercase().as_bytes());
    }
}
