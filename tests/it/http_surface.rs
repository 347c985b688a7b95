//! The public HTTP surface without Confluence: envelopes, 404/405/413, auth, health, connection
//! limits and shutdown.

use std::time::{Duration, Instant};

use conflagent::http::server::ServerSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Gateway, Options, SECRET, endpoint_file};

const BASE: &str = "http://127.0.0.1:9";

async fn docs_gateway() -> Gateway {
    let mut file = endpoint_file(SECRET, BASE);
    file.push_str("gpt_shared_secret_previous=previous-secret-0123456789\n");
    Gateway::start(&[("conflagent.docs.properties", &file)]).await
}

fn assert_envelope(body: &serde_json::Value, success: bool, code: &str) {
    assert_eq!(body["success"], success, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body.get("data").is_some(), "{body}");
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert_eq!(timestamp.len(), "2025-11-04T09:20:31Z".len(), "{timestamp}");
    assert!(timestamp.ends_with('Z'));
}

#[tokio::test]
async fn health_at_top_level_and_per_endpoint() {
    let gateway = docs_gateway().await;
    for path in ["/health", "/endpoint/docs/health"] {
        let (status, body) = gateway.get(path, None).await;
        assert_eq!(status, 200);
        assert_envelope(&body, true, "OK");
        assert_eq!(body["data"]["status"], "ok");
        assert_eq!(
            body["message"], "Service healthy.",
            "the original's message"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_endpoint_404_is_identical_to_unknown_path_404() {
    let gateway = docs_gateway().await;
    let mut bodies = Vec::new();
    for (path, secret) in [
        ("/endpoint/nope/pages", Some(SECRET)),
        ("/endpoint/nope/health", None),
        ("/no/such/path", None),
        ("/endpoint/docs/no-such-route", Some(SECRET)),
        ("/metrics", None),
    ] {
        let response = gateway
            .http
            .get(gateway.url(path))
            .bearer_auth(secret.unwrap_or(""))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.headers().get("www-authenticate").is_none());
        let mut body: serde_json::Value = response.json().await.expect("json");
        assert_envelope(&body, false, "NOT_FOUND");
        body["timestamp"] = serde_json::Value::Null;
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn auth_matrix() {
    let gateway = docs_gateway().await;
    let url = gateway.url("/endpoint/docs/pages");
    let cases: [(Option<&str>, bool); 6] = [
        (None, false),
        (Some("Basic dXNlcjpwYXNz"), false),
        (Some("Bearer wrong-secret-0123456789"), false),
        (Some("Bearer"), false),
        (Some(&format!("Bearer {SECRET}")), true),
        (Some("Bearer previous-secret-0123456789"), true),
    ];
    for (header, accepted) in cases {
        let mut request = gateway.http.get(&url);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        if accepted {
            assert_ne!(status, 401, "{header:?}");
        } else {
            assert_eq!(status, 401, "{header:?}");
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|value| value.to_str().ok()),
                Some("Bearer realm=\"conflagent\"")
            );
            let body: serde_json::Value = response.json().await.expect("json");
            assert_envelope(&body, false, "UNAUTHORIZED");
            assert!(!body.to_string().contains(SECRET));
        }
    }
    gateway.stop().await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let gateway = docs_gateway().await;
    let response = gateway
        .http
        .patch(gateway.url("/endpoint/docs/pages"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|value| value.to_str().ok()),
        Some("GET, POST")
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_envelope(&body, false, "INVALID_INPUT");
    gateway.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_in_the_envelope() {
    let mut file = endpoint_file(SECRET, BASE);
    file.push('\n');
    let gateway = Gateway::start_with(
        &[("conflagent.docs.properties", &file)],
        Options {
            body_limit: Some(1024),
            ..Options::default()
        },
    )
    .await;
    let body = format!(r#"{{"title":"Big","body":"{}"}}"#, "x".repeat(4096));
    let response = gateway
        .http
        .post(gateway.url("/endpoint/docs/pages"))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_envelope(&body, false, "INVALID_INPUT");
    assert!(body["message"].as_str().unwrap_or("").contains("1024"));
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_percent_encoding_is_400() {
    let gateway = docs_gateway().await;
    let (status, body) = gateway
        .get("/endpoint/docs/pages/bad%zzescape", Some(SECRET))
        .await;
    assert_eq!(status, 400);
    assert_envelope(&body, false, "INVALID_INPUT");
    gateway.stop().await;
}

#[tokio::test]
async fn metrics_live_only_on_the_private_listener() {
    let gateway = docs_gateway().await;
    let private = format!("http://{}", gateway.private_addr);
    for path in ["/healthz", "/readyz"] {
        let response = gateway
            .http
            .get(format!("{private}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{path}");
    }
    let metrics = gateway
        .http
        .get(format!("{private}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(metrics.status(), 200);
    let (status, _) = gateway.get("/metrics", None).await;
    assert_eq!(status, 404);
    gateway.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_headers_slowly_is_disconnected() {
    let gateway = Gateway::start_with(
        &[],
        Options {
            server: ServerSettings {
                header_read_timeout: Duration::from_millis(300),
                ..ServerSettings::default()
            },
            ..Options::default()
        },
    )
    .await;
    let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buffer = Vec::new();
    // The server must close the connection on its own; the client never finishes its headers.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&buffer);
    assert!(!text.contains("200 OK"), "{text}");
    gateway.stop().await;
}

#[tokio::test]
async fn an_in_flight_request_finishes_during_graceful_shutdown() {
    // A Confluence that answers slowly: the create is still waiting upstream while shutdown runs.
    let mut world =
        crate::support::World::start_with(conflagent::config::Deployment::DataCenter, "").await;
    world.sim.set_latency(Duration::from_millis(300));
    let (mut stream, rest) = crate::support::start_slow_create(world.gateway.addr, "docs").await;

    let stopped = world.gateway.begin_stop();
    // Shutdown has begun once readiness fails.
    let readyz = format!("http://{}/readyz", world.gateway.private_addr);
    crate::support::eventually(Duration::from_secs(5), || async {
        world
            .gateway
            .http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|response| response.status() == 503)
    })
    .await;

    stream.write_all(rest).await.expect("write rest");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let json = text.split("\r\n\r\n").nth(1).expect("body");
    let envelope: serde_json::Value = serde_json::from_str(json).expect("envelope");
    assert_eq!(envelope["code"], "OK", "{envelope}");
    assert_eq!(envelope["data"]["title"], "Written while in flight");
    assert!(
        world
            .sim
            .page_by_title(crate::support::SPACE, "Written while in flight")
            .is_some(),
        "the page was created upstream"
    );
    stopped.await.expect("run returns");
    world.sim.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_while_every_connection_is_busy() {
    let mut file = endpoint_file(SECRET, BASE);
    file.push('\n');
    let gateway = Gateway::start_with(
        &[("conflagent.docs.properties", &file)],
        Options {
            server: ServerSettings {
                max_connections: 1,
                ..ServerSettings::default()
            },
            ..Options::default()
        },
    )
    .await;
    // The only permit is held by a request in flight, so it cannot be reclaimed.
    let (mut first, rest) = crate::support::start_slow_create(gateway.addr, "docs").await;
    let readyz = format!("http://{}/readyz", gateway.private_addr);
    crate::support::eventually(Duration::from_secs(5), || {
        let probe = gateway.http.get(&readyz).send();
        async move { probe.await.is_ok_and(|response| response.status() == 503) }
    })
    .await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buffer = [0u8; 512];
    let mut second = TcpStream::connect(gateway.addr).await.expect("connect");
    second.write_all(request).await.expect("write");
    let waiting = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buffer)).await;
    assert!(waiting.is_err(), "second connection served beyond the cap");

    first.write_all(rest).await.expect("write rest");
    drop(first);
    let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buffer))
        .await
        .expect("second connection served once the first closed")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    drop(second);
    gateway.stop().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let gateway = docs_gateway().await;
    let stream = TcpStream::connect(gateway.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/endpoint/docs/health", gateway.addr))
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let envelope: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_envelope(&envelope, true, "OK");
    drop(sender);
    gateway.stop().await;
}
