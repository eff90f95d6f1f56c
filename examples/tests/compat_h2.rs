//! HTTP/2 over uringo: hyper's http2 server and client through `uringo::compat`, with
//! many concurrent streams on one connection.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, Version};
use uringo::compat::{Compat, HyperExecutor, HyperTimer};
use uringo::net::{TcpListener, TcpStream};

const HANG: Duration = Duration::from_secs(60);

/// Answers `path:body-length` after a short sleep, so streams overlap.
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    assert_eq!(req.version(), Version::HTTP_2);
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await?.to_bytes();
    uringo::time::sleep(Duration::from_millis(1)).await;
    Ok(Response::new(Full::new(Bytes::from(format!(
        "{path}:{}",
        body.len()
    )))))
}

#[test]
fn a_hundred_concurrent_streams_on_one_http2_connection() {
    let rt = uringo::Builder::new().worker_threads(2).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        uringo::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                uringo::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(HyperExecutor::new())
                        .timer(HyperTimer)
                        .serve_connection(Compat::new(stream), hyper::service::service_fn(answer))
                        .await;
                });
            }
        });

        let test = async {
            let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
            let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
                .timer(HyperTimer)
                .handshake::<_, Full<Bytes>>(stream)
                .await
                .unwrap();
            uringo::spawn(conn);
            let requests: Vec<_> = (0..100usize)
                .map(|i| {
                    let mut sender = sender.clone();
                    uringo::spawn(async move {
                        let request = Request::post(format!("http://test/{i}"))
                            .body(Full::new(Bytes::from(vec![b'x'; i * 100])))
                            .unwrap();
                        let response = sender.send_request(request).await.unwrap();
                        assert_eq!(response.version(), Version::HTTP_2);
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        assert_eq!(body, format!("/{i}:{}", i * 100));
                    })
                })
                .collect();
            for request in futures_util::future::join_all(requests).await {
                request.unwrap();
            }
        };
        uringo::time::timeout(HANG, test).await.expect("hung");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "all streams shared one connection"
        );
    });
}

#[test]
fn an_http2_server_on_uringo_answers_a_service_that_never_fails() {
    // Infallible services work too (the type the proxy uses).
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        uringo::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            let _ = hyper::server::conn::http2::Builder::new(HyperExecutor::new())
                .serve_connection(Compat::new(stream), service)
                .await;
        });
        let stream = Compat::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
            HyperExecutor::new(),
            stream,
        )
        .await
        .unwrap();
        uringo::spawn(conn);
        let response = sender
            .send_request(Request::get("http://test/").body(Full::default()).unwrap())
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
    });
}
