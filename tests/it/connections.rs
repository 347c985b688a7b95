//! Connections that send nothing, stall or go quiet: every state has a deadline, the connection
//! cap reclaims idle connections for new clients, and readiness reports a saturated listener.

use std::time::Duration;

use conflagent::http::server::ServerSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Gateway, Options, SECRET, closed_by_server, endpoint_file, stalled_client};

async fn gateway(server: ServerSettings) -> Gateway {
    let file = endpoint_file(SECRET, "http://127.0.0.1:9");
    Gateway::start_with(
        &[("conflagent.docs.properties", &file)],
        Options {
            server,
            ..Options::default()
        },
    )
    .await
}

fn short_deadlines() -> ServerSettings {
    ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..ServerSettings::default()
    }
}

#[tokio::test]
async fn a_connection_that_never_completes_a_first_request_is_closed() {
    let gateway = gateway(short_deadlines()).await;
    // Nothing at all, one byte of the HTTP/2 preface, most of it, and half an HTTP/1 head.
    for sent in [
        &b""[..],
        b"P",
        b"PRI * HTTP/2.0\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n",
    ] {
        let mut stream = stalled_client(gateway.addr, sent).await;
        let received = closed_by_server(&mut stream).await;
        assert!(
            !String::from_utf8_lossy(&received).contains("200"),
            "{sent:?} was answered"
        );
    }
    gateway.stop().await;
}

/// A connection that has had one request answered and is kept alive.
async fn answered_keep_alive(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    stream
}

#[tokio::test]
async fn an_http1_keep_alive_connection_that_goes_quiet_is_closed() {
    let gateway = gateway(ServerSettings {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_millis(300),
        ..ServerSettings::default()
    })
    .await;
    let mut stream = answered_keep_alive(gateway.addr).await;
    closed_by_server(&mut stream).await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_later_http1_request_head_sent_slowly_is_cut_at_the_header_deadline() {
    let gateway = gateway(ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..ServerSettings::default()
    })
    .await;
    let mut stream = answered_keep_alive(gateway.addr).await;
    // Idle keep-alive is allowed for a minute, but a head once started must end in time.
    stream.write_all(b"GET /he").await.expect("write");
    closed_by_server(&mut stream).await;
    gateway.stop().await;
}

#[tokio::test]
async fn an_http2_connection_that_goes_quiet_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let gateway = gateway(short_deadlines()).await;
    let stream = TcpStream::connect(gateway.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/health", gateway.addr))
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    drop(response);
    // The client keeps its sender, so only the server can end the connection.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is still open");
    drop(sender);
    gateway.stop().await;
}

#[tokio::test]
async fn at_the_cap_idle_connections_make_room_for_a_new_client() {
    let gateway = gateway(ServerSettings {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..ServerSettings::default()
    })
    .await;
    let mut hostile = Vec::new();
    for sent in [&b""[..], b"P", b"PRI * HTTP/2.0\r\n", b"GET / HTTP/1.1\r\n"] {
        for _ in 0..5 {
            hostile.push(stalled_client(gateway.addr, sent).await);
        }
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        gateway.http.get(gateway.url("/health")).send(),
    )
    .await
    .expect("a normal client is served while 20 idle connections are open")
    .expect("response");
    assert_eq!(answered.status(), 200);
    // The oldest idle connections were the ones closed.
    closed_by_server(&mut hostile[0]).await;
    drop(hostile);
    gateway.stop().await;
}

#[tokio::test]
async fn readiness_fails_while_every_connection_is_busy() {
    let gateway = gateway(ServerSettings {
        max_connections: 1,
        ..ServerSettings::default()
    })
    .await;
    let readyz = format!("http://{}/readyz", gateway.private_addr);
    let ready = |http: reqwest::Client, url: String| async move {
        let response = http.get(url).send().await.expect("readyz");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, body)
    };
    let (status, body) = ready(gateway.http.clone(), readyz.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["connections"]["limit"], 1);

    // One request in flight holds the only permit.
    let (mut stream, rest) = crate::support::start_slow_create(gateway.addr, "docs").await;
    crate::support::eventually(Duration::from_secs(5), || {
        let probe = ready(gateway.http.clone(), readyz.clone());
        async move {
            let (status, body) = probe.await;
            status == 503
                && body["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("saturated"))
        }
    })
    .await;

    stream.write_all(rest).await.expect("write rest");
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).await.expect("answer");
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 "));
    drop(stream);
    crate::support::eventually(Duration::from_secs(5), || {
        let probe = ready(gateway.http.clone(), readyz.clone());
        async move { probe.await.0 == 200 }
    })
    .await;
    gateway.stop().await;
}
