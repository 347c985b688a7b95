//! The JSON envelope every response carries: `{success, code, message, data, timestamp}`.

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
    timestamp: String,
}

/// The current UTC time as `2025-11-04T09:20:31Z`.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Builds a response with the envelope as its JSON body.
pub fn envelope(
    status: StatusCode,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Response<Body> {
    let envelope = Envelope {
        success: status.is_success() || status == StatusCode::NOT_MODIFIED,
        code,
        message,
        data,
        timestamp: timestamp_now(),
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_else(|_| {
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
