//! `ApiError`, the one way a failure becomes an HTTP response: named constructors fix the status,
//! the envelope code and a client-safe message, and every domain error (a page operation's, a spent
//! budget, a bad title) is mapped to one here and nowhere else.

use http::header::{ALLOW, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Response, StatusCode};

use crate::confluence::UpstreamError;
use crate::http::envelope::{self, Body};
use crate::markdown::BodyError;
use crate::pages::PageError;
use crate::ratelimit::RateLimited;
use crate::titles::TitleError;

/// The envelope `code` values of PRODUCT §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed request, bad parameter, body too large or of the wrong type.
    InvalidInput,
    /// Missing or wrong secret, or an operation outside the endpoint's flavor.
    Unauthorized,
    /// Unknown endpoint, route or page, or a page outside the sandbox.
    NotFound,
    /// `expectedVersion` is stale.
    VersionConflict,
    /// Title taken, circular move, touching the root page.
    InvalidOperation,
    /// The endpoint's rate limit.
    RateLimited,
    /// Confluence failed or refused the endpoint's credentials.
    UpstreamError,
    /// A bug.
    InternalError,
}

impl ErrorCode {
    /// The code as it appears in the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::VersionConflict => "VERSION_CONFLICT",
            ErrorCode::InvalidOperation => "INVALID_OPERATION",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::UpstreamError => "UPSTREAM_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// A failed request, ready to be rendered as an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The envelope code.
    pub code: ErrorCode,
    /// A message safe to show a client: no secrets, no internal detail.
    pub message: String,
    /// Extra response headers (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The one message for every kind of "not there": unknown endpoint, unknown route, missing page and
/// page outside the sandbox must be indistinguishable.
pub const NOT_FOUND_MESSAGE: &str = "not found";

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
        self
    }

    /// 400: the request is malformed; `message` says how.
    pub fn invalid_input(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message)
    }

    /// 413: the body is larger than the limit.
    pub fn payload_too_large(limit_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidInput,
            format!("request body is larger than the limit of {limit_bytes} bytes"),
        )
    }

    /// 415: the body is not JSON.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidInput,
            "request body must be JSON (Content-Type: application/json)",
        )
    }

    /// 401 with `WWW-Authenticate: Bearer`: the secret is missing or wrong.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).with_header(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"conflagent\""),
        )
    }

    /// 403: the endpoint's flavor (and `operations` list) does not include the operation;
    /// `allowed` says what the endpoint serves, e.g. `flavor `read``.
    pub fn outside_flavor(allowed: &str) -> ApiError {
        // Pieced together rather than `format!`ted: every refused request of a flooding client
        // words it.
        const BEFORE: &str = "this operation is not available on this endpoint (";
        let mut message = String::with_capacity(BEFORE.len() + allowed.len() + 1);
        message.push_str(BEFORE);
        message.push_str(allowed);
        message.push(')');
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Unauthorized, message)
    }

    /// 403: the request's `Origin` is not one the MCP route accepts (DNS-rebinding protection).
    pub fn forbidden_origin() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Unauthorized,
            "requests from this Origin are not accepted; call from the gateway's own origin, \
             a loopback origin or the endpoint's public_url",
        )
    }

    /// 400: the `MCP-Protocol-Version` header names a revision this server does not speak.
    pub fn unsupported_protocol_version(supported: &[&str]) -> ApiError {
        ApiError::invalid_input(format!(
            "unsupported MCP-Protocol-Version; supported: {}",
            supported.join(", ")
        ))
    }

    /// 404, identical for every kind of "not there".
    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            NOT_FOUND_MESSAGE,
        )
    }

    /// 404 for a section a page does not have; the page itself exists in the sandbox, so the
    /// message may name its sections.
    pub fn section_not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> ApiError {
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let header = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("GET"));
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidInput,
            format!("method {method} is not allowed here; allowed: {allow}"),
        )
        .with_header(ALLOW, header)
    }

    /// 409 `VERSION_CONFLICT`: the caller's `expectedVersion` is stale.
    pub fn version_conflict(current: u64) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::VersionConflict,
            format!(
                "the page has changed: current version is {current}; read it again, merge, and retry"
            ),
        )
    }

    /// 409 `VERSION_CONFLICT` when Confluence did not say which version is current.
    pub fn version_conflict_unknown() -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::VersionConflict,
            "the page has changed meanwhile; read it again, merge, and retry",
        )
    }

    /// 409 `INVALID_OPERATION`: the title is already used in the space.
    pub fn title_taken(title: &str) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidOperation,
            format!("a page titled `{title}` already exists in this space; choose another title"),
        )
    }

    /// 422 `INVALID_OPERATION`: the operation makes no sense on this page (circular move, root page).
    pub fn invalid_operation(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidOperation,
            message,
        )
    }

    /// 429 with `Retry-After` in whole seconds.
    pub fn rate_limited(retry_after_seconds: u64) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("rate limit exceeded; retry after {retry_after_seconds} seconds"),
        )
        .with_header(RETRY_AFTER, HeaderValue::from(retry_after_seconds))
    }

    /// 502: Confluence answered, but not usefully (refused credentials, unexpected response).
    pub fn bad_gateway(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError, message)
    }

    /// 503: Confluence is unavailable or rate-limiting the endpoint.
    pub fn upstream_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamError,
            message,
        )
    }

    /// 503 with `Retry-After` when known: Confluence keeps rate-limiting this endpoint.
    pub fn upstream_rate_limited(retry_after_seconds: Option<u64>) -> ApiError {
        let error = ApiError::upstream_unavailable(
            "Confluence is rate-limiting this endpoint; retry later",
        );
        match retry_after_seconds {
            Some(seconds) => error.with_header(RETRY_AFTER, HeaderValue::from(seconds)),
            None => error,
        }
    }

    /// 504: Confluence did not answer within the endpoint's deadline.
    pub fn gateway_timeout() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::UpstreamError,
            "Confluence did not answer in time; try again later",
        )
    }

    /// 503 on the private listener's `/readyz`: the process is shutting down (or not yet serving).
    pub fn not_ready() -> ApiError {
        ApiError::upstream_unavailable("not ready")
    }

    /// 504: a write went out, but Confluence did not say whether it applied it, and a lookup
    /// could not tell either. Retrying blindly could apply it twice.
    pub fn write_outcome_unknown() -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::UpstreamError,
            "Confluence did not confirm the write in time, and it may still have been applied; \
             read the page before retrying",
        )
    }

    /// 500 with a generic message; the detail belongs in the log, never here.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "internal error",
        )
    }

    /// Renders the error as an envelope response.
    pub fn into_response(self) -> Response<Body> {
        let mut response = envelope::error(self.status, self.code.as_str(), &self.message);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<TitleError> for ApiError {
    fn from(error: TitleError) -> ApiError {
        ApiError::invalid_input(error.to_string())
    }
}

impl From<RateLimited> for ApiError {
    fn from(limited: RateLimited) -> ApiError {
        ApiError::rate_limited(limited.retry_after_secs)
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> ApiError {
        match error {
            BodyError::Malformed(xhtml) => ApiError::invalid_input(format!(
                "body is not well-formed storage XHTML at line {}, column {}: {}",
                xhtml.line, xhtml.column, xhtml.message
            )),
            BodyError::Unsafe { .. } | BodyError::Character(_) => {
                ApiError::invalid_input(error.to_string())
            }
        }
    }
}

impl From<PageError> for ApiError {
    fn from(error: PageError) -> ApiError {
        match error {
            PageError::NotFound => ApiError::not_found(),
            PageError::TitleTaken { title } => ApiError::title_taken(&title),
            PageError::VersionConflict {
                current: Some(current),
            } => ApiError::version_conflict(current),
            PageError::VersionConflict { current: None } => ApiError::version_conflict_unknown(),
            PageError::CircularMove => ApiError::invalid_operation(
                "a page cannot be moved under itself or one of its descendants",
            ),
            PageError::RootProtected { verb } => ApiError::invalid_operation(format!(
                "the root page of this endpoint cannot be {verb}"
            )),
            PageError::RootHasNoParent => {
                ApiError::invalid_operation("the root page has no parent inside this endpoint")
            }
            PageError::InvalidBody(error) => ApiError::from(error),
            PageError::StoredBodyNotConvertible => ApiError::bad_gateway(
                "the stored body could not be converted to Markdown; read it with format=storage",
            ),
            PageError::Upstream(error) => ApiError::from(error),
            PageError::NothingToSearch => ApiError::invalid_input(
                "q has no word to search for (punctuation and search operators are ignored)",
            ),
            PageError::StoredBodyNotSectionable => ApiError::bad_gateway(
                "the stored body is not well-formed storage, so it cannot be cut into sections; \
                 read the whole page instead",
            ),
            PageError::SectionNotFound { wanted, available } => {
                let message = if available.is_empty() {
                    format!("this page has no section headed `{wanted}`: it has no headings")
                } else {
                    format!(
                        "this page has no section headed `{wanted}`; its sections: {}",
                        quoted_list(&available)
                    )
                };
                ApiError::section_not_found(message)
            }
            PageError::SectionAmbiguous { wanted, choices } => ApiError::invalid_input(format!(
                "`{wanted}` names {} sections; pass one of: {}",
                choices.len(),
                quoted_list(&choices)
            )),
        }
    }
}

/// Names as `` `a`, `b` ``, cut short (with a count of the rest) to keep messages readable.
fn quoted_list(names: &[String]) -> String {
    const MAX_NAMES: usize = 40;
    let mut text = names
        .iter()
        .take(MAX_NAMES)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_NAMES {
        text.push_str(&format!(" and {} more", names.len() - MAX_NAMES));
    }
    text
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> ApiError {
        match error {
            UpstreamError::NotFound => ApiError::not_found(),
            // Writes name the title they sent (`PageError::TitleTaken`); a clash reported to a
            // call that sent no title is an answer this gateway cannot make sense of.
            UpstreamError::TitleTaken => {
                tracing::warn!("Confluence reported a title clash on a call that sets no title");
                ApiError::bad_gateway("unexpected response from Confluence; try again later")
            }
            UpstreamError::VersionConflict {
                current: Some(current),
            } => ApiError::version_conflict(current),
            UpstreamError::VersionConflict { current: None } => {
                ApiError::version_conflict_unknown()
            }
            UpstreamError::IllegalMove => ApiError::invalid_operation(
                "a page cannot be moved under itself or one of its descendants",
            ),
            UpstreamError::InvalidStorage(message) => {
                ApiError::invalid_input(format!("Confluence rejected the body: {message}"))
            }
            UpstreamError::Rejected(message) => {
                ApiError::invalid_input(format!("Confluence rejected the request: {message}"))
            }
            UpstreamError::CredentialsRejected => ApiError::bad_gateway(
                "Confluence refused this endpoint's credentials; the operator must check the \
                 endpoint's Confluence token (email/api_token)",
            ),
            UpstreamError::PermissionDenied(detail) => {
                tracing::warn!(%detail, "Confluence refused a permission");
                ApiError::bad_gateway(
                    "Confluence refused this endpoint's account the permission for this \
                     operation; the operator must check the endpoint's Confluence permissions \
                     (space permissions and page restrictions of the account behind api_token)",
                )
            }
            UpstreamError::Gone(detail) => {
                tracing::warn!(%detail, "Confluence answered 410 Gone");
                ApiError::bad_gateway(
                    "Confluence answered 410 Gone: the REST API this endpoint calls is removed \
                     for its credentials (Confluence Cloud no longer serves its v1 page API to \
                     scoped API tokens and OAuth apps); the operator must check the endpoint's \
                     deployment, base_url and token type",
                )
            }
            UpstreamError::RateLimited { retry_after } => {
                ApiError::upstream_rate_limited(retry_after.map(|wait| wait.as_secs().max(1)))
            }
            UpstreamError::Unavailable(detail) => {
                tracing::warn!(%detail, "Confluence unavailable");
                ApiError::bad_gateway("Confluence is unreachable or failing; try again later")
            }
            UpstreamError::Timeout => ApiError::gateway_timeout(),
            UpstreamError::WriteOutcomeUnknown => ApiError::write_outcome_unknown(),
            UpstreamError::Protocol(detail) => {
                tracing::warn!(%detail, "unexpected response from Confluence");
                ApiError::bad_gateway("unexpected response from Confluence; try again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::LimitKind;

    #[test]
    fn a_spent_budget_is_a_429_with_retry_after_in_whole_seconds() {
        let error = ApiError::from(RateLimited {
            kind: LimitKind::Quota,
            retry_after_secs: 3,
        });
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.code, ErrorCode::RateLimited);
        assert_eq!(error.message, "rate limit exceeded; retry after 3 seconds");
        assert!(
            error
                .headers
                .iter()
                .any(|(name, value)| name == RETRY_AFTER && value == "3")
        );
    }

    #[test]
    fn a_title_clash_names_the_title() {
        let error = ApiError::from(PageError::TitleTaken {
            title: "Install".to_owned(),
        });
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert!(error.message.contains("`Install`"), "{}", error.message);
    }

    #[test]
    fn no_path_renders_a_title_clash_without_the_title() {
        for error in [
            ApiError::from(UpstreamError::TitleTaken),
            ApiError::from(PageError::from(UpstreamError::TitleTaken)),
        ] {
            assert!(
                !error.message.contains("with this title"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn confluence_refusals_are_the_operators_problem_and_say_what_to_check() {
        let denied = ApiError::from(PageError::from(UpstreamError::PermissionDenied(
            "The server understood the request but refuses to authorize it".to_owned(),
        )));
        assert_eq!(
            (denied.status, denied.code),
            (StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError)
        );
        assert!(denied.message.contains("permissions"), "{}", denied.message);
        assert!(!denied.message.contains("refuses to authorize"));
        let gone = ApiError::from(PageError::from(UpstreamError::Gone(
            "This deprecated endpoint has been removed.".to_owned(),
        )));
        assert_eq!(
            (gone.status, gone.code),
            (StatusCode::BAD_GATEWAY, ErrorCode::UpstreamError)
        );
        assert!(gone.message.contains("410 Gone"), "{}", gone.message);
        assert!(gone.message.contains("v1 page API"), "{}", gone.message);
        assert!(!gone.message.contains("try again later"));
    }
}
