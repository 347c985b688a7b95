//! Reads retried until their deadline while Confluence restarts, and `Retry-After` in both forms.

use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{Gateway, SECRET, World, endpoint_file};

#[tokio::test]
async fn a_read_outlasts_more_than_five_failed_attempts() {
    let world = World::start_with(conflagent::sim::Deployment::DataCenter, "").await;
    // Confluence answers 503 five times in a row (a restart), then serves again: a sixth attempt.
    world.sim.fail_next(5, 503, None);
    let (status, body) = world
        .call(reqwest::Method::GET, "/pages/Install", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "Install");
    world.stop().await;
}

/// A Confluence that answers every request 429 with `Retry-After` as an HTTP date.
async fn rate_limiting_upstream(retry_at: SystemTime) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let date = httpdate::fmt_http_date(retry_at);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let date = date.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let answer = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {date}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_retry_after_date_beyond_the_deadline_is_passed_on_at_once() {
    let upstream = rate_limiting_upstream(SystemTime::now() + Duration::from_secs(120)).await;
    let gateway = Gateway::start(&[(
        "conflagent.docs.properties",
        &endpoint_file(SECRET, &upstream),
    )])
    .await;
    let started = std::time::Instant::now();
    let response = gateway
        .http
        .get(gateway.url("/endpoint/docs/pages/Install"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After passed on")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((110..=120).contains(&retry_after), "{retry_after}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited instead of answering"
    );
    gateway.stop().await;
}
