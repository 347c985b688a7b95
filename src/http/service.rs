//! The public `Service`: top-level routing, endpoint lookup, authentication, flavor enforcement,
//! body limits, and the panic guard that keeps every response an envelope.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth;
use crate::config::ConfigStore;
use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::http::body::{self, BodySettings};
use crate::http::envelope::{self, Body};
use crate::http::router::{self, Target, TitlePath};
use crate::metrics::{self, InFlight, RequestContext, RequestLabels};
use crate::openapi;
use crate::pages;
use crate::ratelimit::LimitKind;
use crate::routes::Operation;

/// Settings of the public service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// The global `--public-url`, used when an endpoint has no `public_url` of its own.
    pub public_url: Option<String>,
    /// Body read deadline and the process-wide body budget.
    pub body: BodySettings,
}

impl Default for ServiceSettings {
    fn default() -> ServiceSettings {
        ServiceSettings {
            body_limit: 1024 * 1024,
            public_url: None,
            body: BodySettings::default(),
        }
    }
}

/// What every request of the public listener shares.
pub struct AppState {
    /// The config directory and its current tenant table.
    pub store: Arc<ConfigStore>,
    /// Service settings.
    pub settings: ServiceSettings,
}

/// The public listener's `Service`.
#[derive(Clone)]
pub struct GatewayService {
    state: Arc<AppState>,
}

impl GatewayService {
    /// A service over `state`.
    pub fn new(state: Arc<AppState>) -> GatewayService {
        GatewayService { state }
    }
}

impl hyper::service::Service<Request<Incoming>> for GatewayService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move { Ok(observed(state, request).await) })
    }
}

/// Serves one request inside its request context, then counts it, logs one line about it and tags
/// the response with its request id.
async fn observed(state: Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let started = tokio::time::Instant::now();
    let endpoint = metrics::request_endpoint(&state.store.table(), request.uri().path());
    let method = request.method().clone();
    let request_id = request_id(request.headers());
    let context = Arc::new(RequestContext::new(&endpoint));
    let in_flight = InFlight::start(&endpoint);
    let mut response =
        metrics::scope(Arc::clone(&context), panic_guard(handle(state, request))).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let labels = RequestLabels::new(endpoint, context.route(), &method);
    metrics::request_answered(&labels, status, elapsed);
    macro_rules! log_request {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id = %request_id,
                endpoint = %labels.endpoint,
                route = labels.route,
                method = labels.method,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                upstream_calls = context.upstream_calls(),
                "request"
            )
        };
    }
    match status {
        500 => log_request!(tracing::Level::ERROR),
        501.. => log_request!(tracing::Level::WARN),
        _ => log_request!(tracing::Level::INFO),
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

const X_REQUEST_ID: &str = "x-request-id";

/// The client's `X-Request-Id` when it is sane (1 to 64 characters of `[A-Za-z0-9._-]`), else a
/// fresh random one.
fn request_id(headers: &HeaderMap) -> String {
    let sane = headers
        .get(X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
        });
    match sane {
        Some(id) => id.to_owned(),
        None => format!("{:016x}", fastrand::u64(..)),
    }
}

/// Runs a request handler; a panic becomes a 500 envelope with a generic message, the detail goes
/// to the log only.
async fn panic_guard(handler: impl Future<Output = Response<Body>>) -> Response<Body> {
    AssertUnwindSafe(handler)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %detail, "request handler panicked");
            ApiError::internal().into_response()
        })
}

/// A request for one endpoint operation, after routing, authentication and body reading.
pub struct OperationRequest {
    /// The endpoint, from the table the request started with.
    pub endpoint: Arc<Endpoint>,
    /// The operation.
    pub operation: Operation,
    /// The title path of `{title}` routes.
    pub title: Option<TitlePath>,
    /// Query parameters, decoded.
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body (empty for reads).
    pub body: Bytes,
}

impl OperationRequest {
    /// The first value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Parses the body as JSON into `T`, with 415 for a non-JSON content type and 400 naming the
    /// problem for bad JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if let Some(content_type) = self.headers.get(CONTENT_TYPE) {
            let is_json = content_type.to_str().is_ok_and(|value| {
                let mime = value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
            if !is_json {
                return Err(ApiError::unsupported_media_type());
            }
        }
        if self.body.is_empty() {
            return Err(ApiError::invalid_input(
                "request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|error| ApiError::invalid_input(format!("invalid JSON body: {error}")))
    }
}

async fn handle(state: Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match router::target(&path) {
        Target::Health => {
            metrics::record_route("/health");
            if request.method() == Method::GET {
                envelope::ok("healthy", json!({"status": "ok"}))
            } else {
                ApiError::method_not_allowed(request.method(), &[Method::GET]).into_response()
            }
        }
        Target::OpenApiTemplate => {
            metrics::record_route("/openapi.json");
            if request.method() == Method::GET {
                openapi::serve_template(state.settings.public_url.as_deref(), request.headers())
            } else {
                ApiError::method_not_allowed(request.method(), &[Method::GET]).into_response()
            }
        }
        Target::Unknown => ApiError::not_found().into_response(),
        Target::Endpoint { name, rest } => {
            // The table is loaded once: the whole request runs on the config it started with.
            let table = state.store.table();
            let Some(endpoint) = table.get(name) else {
                return ApiError::not_found().into_response();
            };
            let endpoint = Arc::clone(endpoint);
            drop(table);
            match endpoint_request(&state, endpoint, rest, request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        }
    }
}

async fn endpoint_request(
    state: &AppState,
    endpoint: Arc<Endpoint>,
    rest: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let matched = match router::match_route(request.method(), rest) {
        Ok(matched) => matched,
        Err(miss) => {
            // A route miss costs like a public route, so misses cannot flood the log either.
            endpoint.limits.spend(LimitKind::Public)?;
            return Err(miss);
        }
    };
    let operation = matched.operation;
    metrics::record_route(operation.route().template);
    spend_budget(&endpoint, operation, request.headers())?;
    if !endpoint.tenant.allows(operation) {
        return Err(ApiError::outside_flavor(endpoint.tenant.flavor.name()));
    }
    let query = request
        .uri()
        .query()
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body = body::read(
        &parts.headers,
        body,
        state.settings.body_limit,
        &state.settings.body,
    )
    .await?;
    let request = OperationRequest {
        endpoint,
        operation,
        title: matched.title,
        query,
        headers: parts.headers,
        body,
    };
    dispatch(state, request).await
}

/// Checks the secret and spends the matching budget. The secret is compared first, so a correct
/// one is never refused for a stranger's failures; failures spend their own strict budget, and
/// once that is spent they are answered 429 instead of 401.
fn spend_budget(
    endpoint: &Endpoint,
    operation: Operation,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !operation.requires_auth() {
        return endpoint.limits.spend(LimitKind::Public);
    }
    if let Err(unauthorized) = auth::check_bearer(headers, &endpoint.secret_digests) {
        endpoint.limits.spend(LimitKind::Auth)?;
        return Err(unauthorized);
    }
    endpoint.limits.spend(LimitKind::Quota)
}

async fn dispatch(state: &AppState, request: OperationRequest) -> Result<Response<Body>, ApiError> {
    match request.operation {
        Operation::Health => Ok(envelope::ok("healthy", json!({"status": "ok"}))),
        Operation::OpenApi => Ok(openapi::serve_endpoint(
            &request.endpoint,
            state.settings.public_url.as_deref(),
            &request.headers,
        )),
        _ => {
            let outcome = pages::run(&request.endpoint.upstream, &request).await?;
            Ok(envelope::ok(&outcome.message, outcome.data))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_generic_500_envelope() {
        let response = panic_guard(async {
            panic!("secret detail that must not reach the client");
        })
        .await;
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let envelope: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(envelope["code"], "INTERNAL_ERROR");
        assert_eq!(envelope["message"], "internal error");
        assert!(!String::from_utf8_lossy(&body).contains("secret detail"));
    }
}
