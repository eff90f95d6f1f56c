//! `stop_accepting`: a listener that stops hands out every connection the kernel had
//! already accepted for it, then says it stopped; the connections after that wait in
//! the socket's queue for another holder of the same socket, as in a restart.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use uringo::net::TcpListener;

mod common;

const CLIENTS: usize = 200;

#[test]
fn a_stopped_listener_loses_no_connection_to_its_successor() {
    common::with_watchdog("accept_stop", || {
        let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
        rt.block_on(async {
            let old = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = old.local_addr().unwrap();
            // The same socket, as a successor would receive it over SCM_RIGHTS.
            let shared = std::net::TcpListener::from(old.as_fd().try_clone_to_owned().unwrap());

            // Clients arrive while the old listener accepts; each sends its index and
            // waits for it back from whichever listener took it.
            let clients = std::thread::spawn(move || {
                (0..CLIENTS)
                    .map(|i| {
                        let mut conn = std::net::TcpStream::connect(addr).unwrap();
                        conn.set_read_timeout(Some(common::HANG)).unwrap();
                        conn.write_all(&(i as u32).to_le_bytes()).unwrap();
                        conn
                    })
                    .collect::<Vec<_>>()
            });
            let echo = |mut conn: std::net::TcpStream| {
                let mut id = [0u8; 4];
                conn.read_exact(&mut id).unwrap();
                conn.write_all(&id).unwrap();
            };

            // The old listener takes some, then stops mid-stream.
            let mut by_old = 0;
            while by_old < CLIENTS / 4 {
                let (conn, _) = old.accept().await.unwrap();
                echo(conn.into_std().unwrap());
                by_old += 1;
            }
            old.stop_accepting();
            loop {
                match old.accept().await {
                    Ok((conn, _)) => {
                        echo(conn.into_std().unwrap());
                        by_old += 1;
                    }
                    Err(err) => {
                        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
                        break;
                    }
                }
            }
            assert!(old.accept_backlog_len() == 0);
            drop(old);

            // The successor gets every other one.
            let successor = std::thread::spawn(move || {
                (by_old..CLIENTS)
                    .map(|_| shared.accept().unwrap().0)
                    .for_each(echo)
            });
            let mut clients = clients.join().unwrap();
            successor.join().unwrap();
            for (i, conn) in clients.iter_mut().enumerate() {
                let mut id = [0u8; 4];
                conn.read_exact(&mut id)
                    .unwrap_or_else(|e| panic!("client {i} lost: {e}"));
                assert_eq!(u32::from_le_bytes(id), i as u32);
            }
        });
    });
}
