//! The ceiling for the gateway's request rate: a minimal hyper 1 server built with the same crates,
//! runtime and profile, answering every request with a small JSON body.
//!
//! It serves only when `HELLO_LISTEN` is set (so `cargo bench` does not block on it); `benches/http.sh`
//! starts it.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn main() {
    let Ok(listen) = std::env::var("HELLO_LISTEN") else {
        println!("hello_hyper: set HELLO_LISTEN=127.0.0.1:PORT to serve (see benches/http.sh)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        br#"{"success":true,"code":"OK","message":"healthy","data":{"status":"ok"},"timestamp":"2026-01-01T00:00:00Z"}"#,
                    ))))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
