//! `tcp-proxy --handoff`: a second process takes the listening sockets over a unix
//! socket while clients keep connecting, the first one drains and exits 0, and no
//! client connection is refused, reset or left unanswered.
//!
//! One worker: with several, a connection that another worker's ring accepts in the
//! instant the old process drops its listener can be reset (uringo cannot yet stop a
//! multishot accept and wait for its last completion; see examples/README.md).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{Program, PATIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_tcp-proxy");

fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// One client connection: a message out, its echo and EOF back. Any failure is a
/// lost connection.
fn round_trip(addr: SocketAddr, id: usize) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let sent = format!("connection {id}");
    stream
        .write_all(sent.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut back = String::new();
    stream
        .read_to_string(&mut back)
        .map_err(|e| format!("read: {e}"))?;
    if back != sent {
        return Err(format!("echo {back:?} for {sent:?}"));
    }
    Ok(())
}

#[test]
fn a_restart_under_load_loses_no_connection() {
    restart_under_load("1");
}

/// Two workers: two SO_REUSEPORT listeners, each with its own multishot accept on its
/// own ring, whose completions may still be on their way when the old process stops.
#[test]
fn a_restart_under_load_with_two_workers_loses_no_connection() {
    restart_under_load("2");
}

fn restart_under_load(workers: &str) {
    let upstream = echo_upstream().to_string();
    let dir = std::env::temp_dir().join(format!(
        "tcp-proxy-handoff-{}-{workers}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("handoff.sock");
    let path = path.to_str().unwrap();
    let args = [
        "--upstream",
        &upstream,
        "--workers",
        workers,
        "--handoff",
        path,
    ];
    let mut old = Program::start(BIN, &args);
    let addr = old.addr;

    // Four clients connect back to back until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (stop, done, lost) = (stop.clone(), done.clone(), lost.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    match round_trip(addr, t * 1_000_000 + i) {
                        Ok(()) => done.fetch_add(1, Ordering::SeqCst),
                        Err(err) => {
                            errors.push(err);
                            lost.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                    i += 1;
                }
                errors
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + PATIENCE;
        while done.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "clients stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(200);

    let mut new = Program::start(BIN, &args);
    assert_eq!(new.addr, addr, "the successor listens on the same sockets");
    new.wait_for_log("the previous process stopped accepting");
    let status = old.wait_exit();
    assert!(
        status.success(),
        "old process: {status}; log:\n{}",
        old.log.join("\n")
    );
    assert!(
        old.log
            .iter()
            .any(|l| l.contains("all connections drained")),
        "log:\n{}",
        old.log.join("\n")
    );
    // The successor alone now: it serves, and can hand over again.
    let after_old = done.load(Ordering::SeqCst);
    wait_for(after_old + 200);
    stop.store(true, Ordering::SeqCst);
    let errors: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "lost connections during the restart: {errors:?}"
    );
    new.terminate();
    assert!(new.wait_exit().success());
    let _ = std::fs::remove_dir_all(&dir);
}
