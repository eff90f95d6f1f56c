//! TLS over uringo: `tokio-rustls` on `uringo::compat::Compat` as client and as
//! server, with a certificate made here by `rcgen`. Real round trips on real sockets,
//! on a uringo runtime with no tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use uringo::compat::Compat;
use uringo::net::{TcpListener, TcpStream};

const HANG: Duration = Duration::from_secs(60);

fn runtime() -> uringo::Runtime {
    uringo::Builder::new().worker_threads(2).build().unwrap()
}

/// A self-signed certificate for `localhost` and its key.
fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    (certified.cert.der().clone(), key.into())
}

fn client_config(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(uringo_examples::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS echo server on uringo: each connection echoes what it reads until EOF.
fn echo_server(acceptor: TlsAcceptor) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    uringo::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            uringo::spawn(async move {
                let Ok(mut tls) = acceptor.accept(Compat::new(stream)).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            if tls.flush().await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[test]
fn two_hundred_round_trips_over_tls_both_ends_on_uringo() {
    let rt = runtime();
    let (cert, key) = certificate();
    let server = uringo_examples::tls::server_config_from(vec![cert.clone()], key).unwrap();
    rt.block_on(async {
        let addr = echo_server(TlsAcceptor::from(server));
        let connector = TlsConnector::from(client_config(&cert));
        let test = async {
            let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, stream).await.unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            for i in 0..200u32 {
                // Sizes from a few bytes to more than one TLS record (16 KiB each).
                let sent: Vec<u8> = (0..(i as usize * 331) % 20_000 + 1)
                    .map(|j| (j as u32 ^ i) as u8)
                    .collect();
                // tokio-rustls holds records back until flushed, as every TLS stream
                // may: a writer that waits for an answer flushes first.
                tls.write_all(&sent).await.unwrap();
                tls.flush().await.unwrap();
                let mut back = vec![0u8; sent.len()];
                tls.read_exact(&mut back).await.unwrap();
                assert!(back == sent, "round trip {i}: bytes changed");
            }
            tls.shutdown().await.unwrap();
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        };
        uringo::time::timeout(HANG, test).await.expect("hung");
    });
}

#[test]
fn a_client_that_does_not_trust_the_certificate_fails_the_handshake() {
    let rt = runtime();
    let (cert, key) = certificate();
    let (other, _) = certificate();
    let server = uringo_examples::tls::server_config_from(vec![cert], key).unwrap();
    rt.block_on(async {
        let addr = echo_server(TlsAcceptor::from(server));
        let connector = TlsConnector::from(client_config(&other));
        let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
        let name = ServerName::try_from("localhost").unwrap();
        let handshake = uringo::time::timeout(HANG, connector.connect(name, stream))
            .await
            .expect("hung");
        let err = handshake.expect_err("an untrusted certificate was accepted");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    });
}
