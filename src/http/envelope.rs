//! The JSON envelope every response carries: `{success, code, message, data, timestamp}`.

use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The envelope as sent on the wire.
#[derive(Serialize)]
struct Envelope<'a> {
    success: bool,
    code: &'a str,
    message: &'a str,
    data: &'a serde_json::Value,
    timestamp: &'a str,
}

thread_local! {
    /// The last formatted timestamp of this thread and the second it names: responses within the
    /// same second reuse it instead of formatting the time again.
    static TIMESTAMP: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `use_it` with the current UTC time as `2025-11-04T09:20:31Z`.
fn with_timestamp<T>(use_it: impl FnOnce(&str) -> T) -> T {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    TIMESTAMP.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, humantime::format_rfc3339_seconds(now).to_string());
        }
        use_it(&cached.1)
    })
}

/// Builds a response with the envelope as its JSON body.
pub fn envelope(
    status: StatusCode,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Response<Body> {
    let body = with_timestamp(|timestamp| {
        // Sized for the envelope around a small `data`, so that most answers never grow the buffer.
        let mut body = Vec::with_capacity(128 + message.len());
        serde_json::to_writer(
            &mut body,
            &Envelope {
                success: status.is_success() || status == StatusCode::NOT_MODIFIED,
                code,
                message,
                data,
                timestamp,
            },
        )
        .map(|()| body)
    })
    .unwrap_or_else(|_| {
        // Serialising a Value with string keys cannot fail; keep a valid envelope regardless.
        br#"{"success":false,"code":"INTERNAL_ERROR","message":"internal error","data":null,"timestamp":""}"#.to_vec()
    });
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A 200 `OK` envelope around `data`.
pub fn ok(message: &str, data: serde_json::Value) -> Response<Body> {
    envelope(StatusCode::OK, "OK", message, &data)
}

/// The `data` of a health answer, `{"status": "ok"}`, built once.
static HEALTHY: LazyLock<serde_json::Value> = LazyLock::new(|| serde_json::json!({"status": "ok"}));

/// A 200 `OK` health answer with `message`.
pub fn healthy(message: &str) -> Response<Body> {
    envelope(StatusCode::OK, "OK", message, &HEALTHY)
}
