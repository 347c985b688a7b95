//! Bounded request heads and bodies: a header block over 32 KiB is 431, the HTTP/1 parser's own
//! errors are envelopes, a body that stalls is 408, and bodies beyond the process's budget are 503.

use std::sync::Arc;
use std::time::Duration;

use conflagent::http::body::{BodyBudget, BodySettings};

use crate::support::{Gateway, Options, SECRET, endpoint_file, raw_exchange};

async fn gateway(body: BodySettings) -> Gateway {
    let file = endpoint_file(SECRET, "http://127.0.0.1:9");
    Gateway::start_with(
        &[("conflagent.docs.properties", &file)],
        Options {
            body: Some(body),
            ..Options::default()
        },
    )
    .await
}

fn create_request(body_len: usize, sent: usize) -> Vec<u8> {
    let mut request = format!(
        "POST /endpoint/docs/pages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', sent));
    request
}

#[tokio::test]
async fn a_header_block_over_32_kib_is_431_in_the_envelope() {
    let gateway = gateway(BodySettings::default()).await;
    let fits = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(30 * 1024)
    );
    let (status, _) = raw_exchange(gateway.addr, fits.as_bytes()).await;
    assert_eq!(status, 200);

    let too_large = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (status, envelope) = raw_exchange(gateway.addr, too_large.as_bytes()).await;
    assert_eq!(status, 431, "{envelope}");
    assert_eq!(envelope["code"], "INVALID_INPUT");
    assert_eq!(envelope["success"], false);
    assert!(
        envelope["message"]
            .as_str()
            .expect("message")
            .contains("32768")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_malformed_request_head_is_400_in_the_envelope() {
    let gateway = gateway(BodySettings::default()).await;
    for head in [
        &b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"[..],
        b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let (status, envelope) = raw_exchange(gateway.addr, head).await;
        assert_eq!(status, 400, "{envelope}");
        assert_eq!(envelope["code"], "INVALID_INPUT");
        assert!(envelope["timestamp"].is_string());
    }
    gateway.stop().await;
}

#[tokio::test]
async fn an_upload_that_stalls_is_answered_408() {
    let gateway = gateway(BodySettings {
        read_timeout: Duration::from_millis(300),
        ..BodySettings::default()
    })
    .await;
    // 900 KB of a 1,000,000-byte body, then nothing.
    let (status, envelope) = raw_exchange(gateway.addr, &create_request(1_000_000, 900_000)).await;
    assert_eq!(status, 408, "{envelope}");
    assert_eq!(envelope["code"], "INVALID_INPUT");
    gateway.stop().await;
}

#[tokio::test]
async fn bodies_beyond_the_process_budget_are_503_and_the_budget_comes_back() {
    let budget = Arc::new(BodyBudget::new(64 * 1024));
    let gateway = gateway(BodySettings {
        budget: Arc::clone(&budget),
        ..BodySettings::default()
    })
    .await;
    let (status, envelope) = raw_exchange(gateway.addr, &create_request(200_000, 200_000)).await;
    assert_eq!(status, 503, "{envelope}");
    assert_eq!(envelope["code"], "RATE_LIMITED");
    assert_eq!(budget.in_use(), 0);

    // A body that fits is read (and then fails upstream, which is unreachable here).
    let body = br#"{"title":"Fits","body":"text"}"#;
    let mut request = create_request(body.len(), 0);
    request.extend_from_slice(body);
    let (status, envelope) = raw_exchange(gateway.addr, &request).await;
    assert_eq!(envelope["code"], "UPSTREAM_ERROR", "{status} {envelope}");
    assert_eq!(budget.in_use(), 0);
    gateway.stop().await;
}
