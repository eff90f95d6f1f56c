//! The proxy floor (`headtohead --serve proxy-floor`) under bulk transfers, in a test
//! binary of its own: cargo runs test binaries one at a time, so its load does not
//! starve the smoke runs in `io_smoke.rs`, whose servers must get CPU time to count.

use std::process::Command;

fn headtohead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_headtohead"))
}

/// The proxy floor in bulk: several connections each push 384 KiB at an upstream that
/// starts reading late, so the floor's sends wait and its buffers pile up; then each
/// half-closes. Every byte must come back in order, and each end of stream must pass
/// through both ways.
///
/// The bytes in flight stay under the floor's 4 MiB of shared buffers on purpose. The
/// floor sends from its shared buffers with sends that wait for the peer: once such
/// sends towards a late reader hold every buffer, the recvs that would drain that
/// reader's replies have none, and the loop deadlocks. (uringo's `copy_bidirectional`
/// never lets a shared buffer wait: see `executor/src/io/copy.rs`.) A version of this
/// test that pushed 4 x 12 MiB hung that way, now and then.
#[test]
fn the_proxy_floor_forwards_bulk_in_order_and_passes_half_closes_on() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::process::Stdio;

    const CONNS: usize = 4;
    const BYTES: usize = 384 << 10;
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let echoes: Vec<_> = (0..CONNS)
            .map(|_| {
                let (mut s, _) = upstream.accept().unwrap();
                std::thread::spawn(move || {
                    // Late: the proxy fills its buffers meanwhile.
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    let mut back = s.try_clone().unwrap();
                    std::io::copy(&mut s, &mut back).unwrap();
                    back.shutdown(Shutdown::Write).unwrap();
                })
            })
            .collect();
        echoes.into_iter().for_each(|t| t.join().unwrap());
    });
    let mut child = headtohead()
        .args(["--serve", "proxy-floor", "--upstream", &up_addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening ").unwrap().to_owned();
    let pattern = |i: usize| (i % 251) as u8;
    // Every client reads as it writes: a client that left its echoes unread would
    // hold the proxy's shared buffers in blocked sends and starve the others.
    let clients: Vec<_> = (0..CONNS)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            let mut w = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let writer = std::thread::spawn(move || {
                    let data: Vec<u8> = (0..BYTES).map(pattern).collect();
                    w.write_all(&data).unwrap();
                    w.shutdown(Shutdown::Write).unwrap();
                });
                let mut back = Vec::with_capacity(BYTES);
                // Ends only if the upstream's end of stream came through the proxy.
                s.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                back
            })
        })
        .collect();
    for client in clients {
        let back = client.join().unwrap();
        assert_eq!(back.len(), BYTES);
        let first_bad = back.iter().enumerate().position(|(i, b)| *b != pattern(i));
        assert_eq!(first_bad, None, "a byte out of place");
    }
    echo.join().unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
