//! The `http-proxy` program with HTTP/2 and TLS clients: h2c with prior knowledge
//! carries 100 concurrent streams on one connection to an HTTP/1.1 upstream; with
//! `--tls-cert`/`--tls-key` the proxy terminates TLS and speaks h2 or HTTP/1.1 as ALPN
//! chose.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Version};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uringo::compat::{Compat, HyperExecutor, HyperTimer};
use uringo::net::TcpStream;

use support::{http_upstream, path, Program};

const BIN: &str = env!("CARGO_BIN_EXE_http-proxy");
const HANG: Duration = Duration::from_secs(60);

/// An HTTP/1.1 upstream answering `path=<path>;host=<host>`.
fn upstream() -> SocketAddr {
    let (addr, _) = http_upstream(|first, headers, _| {
        let host = headers.get("host").cloned().unwrap_or_default();
        format!("path={};host={host}", path(first))
    });
    addr
}

async fn h2_requests<T>(io: T, count: usize)
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
        .timer(HyperTimer)
        .handshake::<_, Full<Bytes>>(io)
        .await
        .unwrap();
    uringo::spawn(conn);
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let mut sender = sender.clone();
            uringo::spawn(async move {
                let request = Request::get(format!("http://example.test/{i}"))
                    .body(Full::default())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                assert_eq!(response.version(), Version::HTTP_2);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, format!("path=/{i};host=example.test"));
            })
        })
        .collect();
    for request in futures_util::future::join_all(requests).await {
        request.unwrap();
    }
}

#[test]
fn h2c_with_prior_knowledge_carries_a_hundred_concurrent_streams() {
    let proxy = Program::start(BIN, &["--upstream", &upstream().to_string()]);
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        let stream = Compat::new(TcpStream::connect(proxy.addr).await.unwrap());
        uringo::time::timeout(HANG, h2_requests(stream, 100))
            .await
            .expect("hung");
    });
}

#[test]
fn tls_termination_speaks_h2_or_http1_as_alpn_chose() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("http-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let proxy = Program::start(
        BIN,
        &[
            "--upstream",
            &upstream().to_string(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client_config = |alpn: &[u8]| {
        let mut config =
            rustls::ClientConfig::builder_with_provider(uringo_examples::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        let test = async {
            let name = ServerName::try_from("localhost").unwrap();
            let stream = Compat::new(TcpStream::connect(proxy.addr).await.unwrap());
            let tls = client_config(b"h2")
                .connect(name.clone(), stream)
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            h2_requests(hyper_util::rt::TokioIo::new(tls), 10).await;

            let stream = Compat::new(TcpStream::connect(proxy.addr).await.unwrap());
            let mut tls = client_config(b"http/1.1")
                .connect(name, stream)
                .await
                .unwrap();
            tls.write_all(b"GET /one HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            tls.flush().await.unwrap();
            let mut response = Vec::new();
            // After `Connection: close` the proxy ends TLS with close_notify: EOF, no error.
            tls.read_to_end(&mut response).await.unwrap();
            let response = String::from_utf8(response).unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(
                response.ends_with("path=/one;host=example.test"),
                "{response}"
            );
        };
        uringo::time::timeout(HANG, test).await.expect("hung");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
