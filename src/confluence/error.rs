//! What can go wrong upstream, and the one mapping from a Confluence status and body to it.

use std::time::Duration;

use super::types::ErrorBody;

/// A failed Confluence call, classified so the gateway can pick its answer without reading messages.
///
/// No variant ever carries a credential: messages come from Confluence's error bodies or are fixed text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// 404: the page does not exist, or the credential may not see it (Confluence does not distinguish).
    #[error("page not found")]
    NotFound,
    /// 400 "A page with this title already exists" on create, rename or move.
    #[error("a page with this title already exists in the space")]
    TitleTaken,
    /// 409 "Version must be incremented on update": someone else wrote first.
    #[error("version conflict{}", current_version_suffix(*current))]
    VersionConflict {
        /// The page's current version, when Confluence said it.
        current: Option<u64>,
    },
    /// Moving a page under itself or one of its descendants.
    #[error("a page cannot be moved under itself or its descendants")]
    IllegalMove,
    /// 400 "Error parsing xhtml": Confluence's message, with its row and column.
    #[error("confluence rejected the storage format: {0}")]
    InvalidStorage(String),
    /// Any other refusal of the request (mostly 400s), with Confluence's message.
    #[error("confluence rejected the request: {0}")]
    Rejected(String),
    /// 401, or a 403 meaning the credential cannot use Confluence at all.
    #[error("confluence rejected the configured credentials")]
    CredentialsRejected,
    /// Any other 403: the credential works but may not do this (space permissions, page
    /// restrictions). Confluence's message, for the log.
    #[error("confluence refused the request for lack of permission: {0}")]
    PermissionDenied(String),
    /// 410: the API called is gone for these credentials (Cloud's v1 content CRUD for scoped API
    /// tokens and OAuth). Confluence's message, for the log.
    #[error("confluence no longer serves this API to these credentials: {0}")]
    Gone(String),
    /// 429 that outlasted the retries or the deadline.
    #[error("confluence is rate limiting requests")]
    RateLimited {
        /// How long Confluence asked to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// 5xx or a connection failure that outlasted the retries.
    #[error("confluence is unavailable: {0}")]
    Unavailable(String),
    /// The operation's deadline passed.
    #[error("confluence did not answer in time")]
    Timeout,
    /// A write went out but no answer says whether Confluence applied it (no answer in time, the
    /// connection broke, or a gateway in front of Confluence gave up on it).
    #[error("confluence did not say whether the write was applied")]
    WriteOutcomeUnknown,
    /// An answer this client cannot make sense of.
    #[error("unexpected answer from confluence: {0}")]
    Protocol(String),
}

fn current_version_suffix(current: Option<u64>) -> String {
    match current {
        Some(number) => format!(" (current version is {number})"),
        None => String::new(),
    }
}

/// Longest Confluence message kept in an error; bodies can be whole HTML pages.
const MAX_MESSAGE_CHARS: usize = 300;

/// Classifies a non-success response. `retry_after` is the parsed `Retry-After` header.
pub(crate) fn from_response(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> UpstreamError {
    let message = error_message(body);
    let lower = message
        .as_deref()
        .map(str::to_lowercase)
        .unwrap_or_default();
    // Message-based cases first: Confluence is not consistent about their status codes.
    if lower.contains("already exists") && lower.contains("title") {
        return UpstreamError::TitleTaken;
    }
    if lower.contains("version must be incremented") {
        return UpstreamError::VersionConflict {
            current: current_version(&lower),
        };
    }
    if lower.contains("illegal move") || lower.contains("parent-child loop") {
        return UpstreamError::IllegalMove;
    }
    if lower.contains("error parsing xhtml") {
        let text = message.unwrap_or_default();
        return UpstreamError::InvalidStorage(text);
    }
    let described = || {
        message
            .clone()
            .unwrap_or_else(|| format!("http status {status}"))
    };
    match status {
        401 => UpstreamError::CredentialsRejected,
        403 if lower.contains("cannot access confluence")
            || lower.contains("not permitted to use confluence")
            || message.is_none() =>
        {
            UpstreamError::CredentialsRejected
        }
        403 => UpstreamError::PermissionDenied(described()),
        404 => UpstreamError::NotFound,
        409 => UpstreamError::VersionConflict { current: None },
        // The API itself is gone (Cloud v1 content CRUD for some auth modes).
        410 => UpstreamError::Gone(described()),
        413 => UpstreamError::Rejected("the page is too large for confluence".to_owned()),
        429 => UpstreamError::RateLimited { retry_after },
        500..=599 => UpstreamError::Unavailable(match message {
            Some(text) => format!("http status {status}: {text}"),
            None => format!("http status {status}"),
        }),
        300..=399 => UpstreamError::Protocol(format!(
            "http status {status} (a redirect: check the endpoint's base_url)"
        )),
        _ => UpstreamError::Rejected(described()),
    }
}

/// The human message of an error body, without Java exception-class prefixes, or `None` for bodies
/// that are not Confluence JSON (HTML from proxies, Tomcat pages, empty bodies).
fn error_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let raw = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .or_else(|| {
            let entry = parsed.errors.into_iter().next()?;
            match (entry.title, entry.detail) {
                (Some(title), Some(detail)) if !detail.is_empty() => {
                    Some(format!("{title}: {detail}"))
                }
                (Some(title), _) => Some(title),
                (None, detail) => detail,
            }
        })?;
    Some(shorten(strip_exception_class(raw.trim())))
}

/// `com.atlassian.confluence.api.service.exceptions.BadRequestException: text` → `text`.
fn strip_exception_class(message: &str) -> &str {
    let Some((head, rest)) = message.split_once(": ") else {
        return message;
    };
    let looks_like_class = head.contains('.')
        && head.ends_with("Exception")
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '$' || c == '_');
    if looks_like_class { rest } else { message }
}

fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// The number after "current version is:" (v1) or "current version: [" (v2), in a lowercased message.
fn current_version(lower: &str) -> Option<u64> {
    let start = lower.find("current version")? + "current version".len();
    let digits: String = lower[start..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `Retry-After` in either form, delta-seconds or HTTP-date (see `retry::parse_retry_after`).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    super::retry::parse_retry_after(value, std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, expected: UpstreamError) {
        assert_eq!(
            from_response(status, body.as_bytes(), None),
            expected,
            "status {status}, body {body}"
        );
    }

    #[test]
    fn statuses_and_messages_map_to_the_errors_callers_branch_on() {
        check(
            400,
            r#"{"statusCode":400,"data":{"authorized":true,"valid":true,"errors":[],"successful":false,
                "allowedInReadOnlyMode":true},"message":"A page with this title already exists: A page already exists with the title Foo in the space with key KEY","reason":"Bad Request"}"#,
            UpstreamError::TitleTaken,
        );
        check(
            400,
            r#"{"statusCode":400,"message":"com.atlassian.confluence.api.service.exceptions.BadRequestException: A page with this title already exists: A page already exists with the same TITLE in this space"}"#,
            UpstreamError::TitleTaken,
        );
        check(
            409,
            r#"{"statusCode":409,"message":"Version must be incremented on update. Current version is: 6"}"#,
            UpstreamError::VersionConflict { current: Some(6) },
        );
        check(
            409,
            r#"{"errors":[{"status":409,"code":"CONFLICT","title":"Version must be incremented when updating a page. Current Version: [6]. Provided version: [5]"}]}"#,
            UpstreamError::VersionConflict { current: Some(6) },
        );
        check(
            409,
            r#"{"message":"OptimisticLockException: Batch update returned unexpected row count"}"#,
            UpstreamError::VersionConflict { current: None },
        );
        check(
            400,
            r#"{"message":"Illegal move of parent [1] under it's child [2]."}"#,
            UpstreamError::IllegalMove,
        );
        check(
            400,
            "{\"message\":\"com.atlassian.confluence.api.service.exceptions.BadRequestException: Error parsing xhtml: Unexpected close tag </br>; expected </p>.\\n at [row,col {unknown-source}]: [11,7]\"}",
            UpstreamError::InvalidStorage(
                "Error parsing xhtml: Unexpected close tag </br>; expected </p>.\n at [row,col {unknown-source}]: [11,7]"
                    .to_owned(),
            ),
        );
        check(
            400,
            r#"{"message":"Must supply an incremented version when updating Content. No version supplied."}"#,
            UpstreamError::Rejected(
                "Must supply an incremented version when updating Content. No version supplied."
                    .to_owned(),
            ),
        );
        check(
            400,
            "<html><body>Bad</body></html>",
            UpstreamError::Rejected("http status 400".to_owned()),
        );
        check(
            401,
            "<!doctype html><html><head><title>HTTP Status 401 – Unauthorized</title></head></html>",
            UpstreamError::CredentialsRejected,
        );
        check(
            401,
            "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED",
            UpstreamError::CredentialsRejected,
        );
        check(
            403,
            r#"{"message":"Current user not permitted to use Confluence"}"#,
            UpstreamError::CredentialsRejected,
        );
        check(
            403,
            r#"{"statusCode":403,"message":"caller cannot access Confluence"}"#,
            UpstreamError::CredentialsRejected,
        );
        check(
            403,
            r#"{"message":"The server understood the request but refuses to authorize it"}"#,
            UpstreamError::PermissionDenied(
                "The server understood the request but refuses to authorize it".to_owned(),
            ),
        );
        check(
            404,
            r#"{"message":"No content found with id: ContentId{id=954415933}"}"#,
            UpstreamError::NotFound,
        );
        check(404, "", UpstreamError::NotFound);
        check(
            410,
            r#"{"statusCode":410,"message":"com.atlassian.confluence.api.service.exceptions.GoneException: This deprecated endpoint has been removed."}"#,
            UpstreamError::Gone("This deprecated endpoint has been removed.".to_owned()),
        );
        check(
            502,
            "<html>Bad Gateway</html>",
            UpstreamError::Unavailable("http status 502".to_owned()),
        );
        check(
            503,
            r#"{"message":"maintenance"}"#,
            UpstreamError::Unavailable("http status 503: maintenance".to_owned()),
        );
        check(
            302,
            "",
            UpstreamError::Protocol(
                "http status 302 (a redirect: check the endpoint's base_url)".to_owned(),
            ),
        );
    }

    #[test]
    fn rate_limit_keeps_the_retry_after_and_long_messages_are_cut() {
        let error = from_response(429, b"", Some(Duration::from_secs(3)));
        assert_eq!(
            error,
            UpstreamError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        let UpstreamError::Rejected(message) = from_response(400, long.as_bytes(), None) else {
            panic!("a 400 with an unknown message is a rejection");
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }
}
