//! The JSON envelope every response carries: `{success, code, message, data, timestamp}`.

use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::clock;

/// The body type of every response.
pub type Body = Full<Bytes>;

thread_local! {
    /// The last health body of this thread: its second, its message, and the bytes.
    static HEALTH_BODY: RefCell<Option<(u64, &'static str, Bytes)>> = const { RefCell::new(None) };
}

/// The envelope's JSON, stamped `now`. Its keys and its `success` literal are fixed bytes, and the
/// timestamp has nothing to escape; the other values are written by `serde_json`.
fn envelope_bytes(
    now: SystemTime,
    success: bool,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Vec<u8> {
    clock::with_utc_second(clock::unix_second(now), |timestamp| {
        // Sized for the envelope around a small `data`, so that most answers never grow the buffer.
        let mut body = Vec::with_capacity(128 + message.len());
        body.extend_from_slice(if success {
            br#"{"success":true,"code":"#
        } else {
            br#"{"success":false,"code":"#
        });
        serde_json::to_writer(&mut body, code)?;
        body.extend_from_slice(br#","message":"#);
        serde_json::to_writer(&mut body, message)?;
        body.extend_from_slice(br#","data":"#);
        serde_json::to_writer(&mut body, data)?;
        body.extend_from_slice(br#","timestamp":""#);
        body.extend_from_slice(timestamp.as_bytes());
        body.extend_from_slice(br#""}"#);
        Ok::<_, serde_json::Error>(body)
    })
    .unwrap_or_else(|_| {
        // Serialising strings and a Value with string keys cannot fail; keep a valid envelope
        // regardless.
        br#"{"success":false,"code":"INTERNAL_ERROR","message":"internal error","data":null,"timestamp":""}"#.to_vec()
    })
}

/// A response with `body`, an envelope, as its JSON body.
fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The envelope's JSON for an answer with `status`, stamped now.
pub(crate) fn envelope_json(
    status: StatusCode,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Vec<u8> {
    let success = status.is_success() || status == StatusCode::NOT_MODIFIED;
    envelope_bytes(SystemTime::now(), success, code, message, data)
}

/// Builds a response with the envelope as its JSON body.
pub fn envelope(
    status: StatusCode,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Response<Body> {
    let body = envelope_json(status, code, message, data);
    json_response(status, Bytes::from(body))
}

/// A 200 `OK` envelope around `data`.
pub fn ok(message: &str, data: serde_json::Value) -> Response<Body> {
    envelope(StatusCode::OK, "OK", message, &data)
}

/// The `data` of a health answer, `{"status": "ok"}`, built once.
static HEALTHY: LazyLock<serde_json::Value> = LazyLock::new(|| serde_json::json!({"status": "ok"}));

/// A 200 `OK` health answer with `message`.
pub fn healthy(message: &'static str) -> Response<Body> {
    json_response(StatusCode::OK, health_body(message))
}

/// The body of a health answer. It changes only with the second of its timestamp, so each thread
/// builds it once per second (per message) and shares the bytes.
fn health_body(message: &'static str) -> Bytes {
    let now = SystemTime::now();
    let second = clock::unix_second(now);
    HEALTH_BODY.with(|cached| {
        let mut cached = cached.borrow_mut();
        match &*cached {
            Some((built, built_message, body)) if *built == second && *built_message == message => {
                body.clone()
            }
            _ => {
                let body = Bytes::from(envelope_bytes(now, true, "OK", message, &HEALTHY));
                *cached = Some((second, message, body.clone()));
                body
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::json;

    /// The envelope as `serde` writes it, field by field in the contract's order.
    #[derive(Serialize)]
    struct Expected<'a> {
        success: bool,
        code: &'a str,
        message: &'a str,
        data: &'a serde_json::Value,
        timestamp: &'a str,
    }

    fn check(success: bool, code: &str, message: &str, data: serde_json::Value) {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_410_400);
        let written = envelope_bytes(now, success, code, message, &data);
        let expected = serde_json::to_vec(&Expected {
            success,
            code,
            message,
            data: &data,
            timestamp: "2025-11-29T10:00:00Z",
        })
        .expect("serialisable");
        assert_eq!(
            String::from_utf8(written).expect("utf-8"),
            String::from_utf8(expected).expect("utf-8")
        );
    }

    #[test]
    fn the_envelope_is_written_as_serde_writes_it() {
        check(true, "OK", "Service healthy.", json!({"status": "ok"}));
        check(
            false,
            "NOT_FOUND",
            "no page \"A/B\" \\ here",
            serde_json::Value::Null,
        );
        check(
            false,
            "INVALID_INPUT",
            "control \u{1} and \u{7f}, unicode h\u{e9} \u{2603} \u{1f600}",
            json!({"list": [1, 2.5, null, true], "nested": {"a": "\n"}}),
        );
        check(true, "OK", "", json!([]));
    }

    #[test]
    fn health_bodies_keep_their_own_message_through_the_cache() {
        for message in ["alive", "Service healthy.", "alive", "alive"] {
            let parsed: serde_json::Value =
                serde_json::from_slice(&health_body(message)).expect("json");
            assert_eq!(parsed["message"], message);
            assert_eq!(parsed["success"], true);
            assert_eq!(parsed["data"], json!({"status": "ok"}));
        }
    }
}
