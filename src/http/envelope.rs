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
    /// The envelopes with fixed data (health answers and errors) this thread wrote last.
    static FIXED_BODIES: RefCell<FixedBodies> = const { RefCell::new(FixedBodies::new()) };
}

/// How many envelopes with fixed data each thread keeps.
const FIXED_BODIES_KEPT: usize = 4;
/// Longer messages are not kept: they are rarely repeated, and comparing them costs more.
const FIXED_MESSAGE_MAX: usize = 256;

/// Envelopes whose `data` is fixed (`null`, or the health data): one of these changes only with
/// its status, code and message and the second of its timestamp, so a client that repeats a request
/// that is refused, or a health probe, is answered with the bytes written the first time that
/// second. Refusals are what floods are made of, and they then cost little.
struct FixedBodies {
    /// The second every kept body is stamped with.
    second: u64,
    kept: [Option<FixedBody>; FIXED_BODIES_KEPT],
    /// Where the next body is kept (the oldest is replaced).
    next: usize,
}

struct FixedBody {
    status: StatusCode,
    code: &'static str,
    message: String,
    data: &'static serde_json::Value,
    bytes: Bytes,
}

impl FixedBodies {
    const fn new() -> FixedBodies {
        FixedBodies {
            second: 0,
            kept: [const { None }; FIXED_BODIES_KEPT],
            next: 0,
        }
    }
}

/// The `data` of error envelopes.
static NO_DATA: serde_json::Value = serde_json::Value::Null;

/// The envelope's JSON for an answer with `status`, stamped `now`. Its keys and its `success`
/// literal are fixed bytes, and the timestamp has nothing to escape; the other values are written
/// by `serde_json`.
fn envelope_bytes(
    now: SystemTime,
    status: StatusCode,
    code: &str,
    message: &str,
    data: &serde_json::Value,
) -> Vec<u8> {
    let success = status.is_success() || status == StatusCode::NOT_MODIFIED;
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
    envelope_bytes(SystemTime::now(), status, code, message, data)
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
    json_response(
        StatusCode::OK,
        fixed_body(StatusCode::OK, "OK", message, &HEALTHY),
    )
}

/// An error answer: the envelope with `code`, `message` and no data.
pub fn error(status: StatusCode, code: &'static str, message: &str) -> Response<Body> {
    json_response(status, fixed_body(status, code, message, &NO_DATA))
}

/// The body of an envelope with fixed `data`, from this thread's [`FixedBodies`] when it wrote
/// the same one this second.
fn fixed_body(
    status: StatusCode,
    code: &'static str,
    message: &str,
    data: &'static serde_json::Value,
) -> Bytes {
    let now = SystemTime::now();
    let second = clock::unix_second(now);
    let write = || Bytes::from(envelope_bytes(now, status, code, message, data));
    if message.len() > FIXED_MESSAGE_MAX {
        return write();
    }
    FIXED_BODIES.with(|bodies| {
        let mut bodies = bodies.borrow_mut();
        if bodies.second != second {
            *bodies = FixedBodies::new();
            bodies.second = second;
        }
        let kept = bodies.kept.iter().flatten().find(|body| {
            body.status == status
                && body.code == code
                && std::ptr::eq(body.data, data)
                && body.message == message
        });
        if let Some(body) = kept {
            return body.bytes.clone();
        }
        let bytes = write();
        let next = bodies.next;
        bodies.kept[next] = Some(FixedBody {
            status,
            code,
            message: message.to_owned(),
            data,
            bytes: bytes.clone(),
        });
        bodies.next = (next + 1) % FIXED_BODIES_KEPT;
        bytes
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
        let status = if success {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let written = envelope_bytes(now, status, code, message, &data);
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
    fn kept_bodies_keep_their_own_code_message_and_data() {
        let long = "x".repeat(FIXED_MESSAGE_MAX + 1);
        let answers = [
            (StatusCode::OK, "OK", "alive", &*HEALTHY),
            (StatusCode::NOT_FOUND, "NOT_FOUND", "alive", &NO_DATA),
            (StatusCode::OK, "OK", "Service healthy.", &*HEALTHY),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "alive", &NO_DATA),
            (StatusCode::NOT_FOUND, "NOT_FOUND", "not found", &NO_DATA),
            (
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                long.as_str(),
                &NO_DATA,
            ),
        ];
        // Twice round, more answers than are kept: hits, misses and replacements.
        for (status, code, message, data) in answers.iter().chain(&answers).chain(&answers) {
            let parsed: serde_json::Value =
                serde_json::from_slice(&fixed_body(*status, code, message, data)).expect("json");
            assert_eq!(parsed["success"], status.is_success());
            assert_eq!(parsed["code"], *code);
            assert_eq!(parsed["message"], *message);
            assert_eq!(&parsed["data"], *data);
        }
    }
}
