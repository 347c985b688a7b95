//! The public `Service`: each request is routed once against the table loaded once, then
//! authenticated, budgeted, checked against the flavor, turned into a typed page command, run, and
//! answered in the envelope; a panic guard keeps every response an envelope.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::endpoint::{Endpoint, EndpointStore};
use crate::http::auth;
use crate::http::body::{self, BodySettings};
use crate::http::envelope::{self, Body};
use crate::http::error::ApiError;
use crate::http::mcp;
use crate::http::openapi;
use crate::http::reply;
use crate::http::request::{Query, RequestBody, check_json_content_type, page_command};
use crate::http::router::{self, EndpointRoute, PageRoute, Target};
use crate::metrics::{
    self, InFlight, LabelValue, NO_ENDPOINT, RequestContext, RequestLabels, UNMATCHED,
};
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
    /// The config directory and its current table of endpoints.
    pub store: Arc<EndpointStore>,
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
        Box::pin(observed(Arc::clone(&self.state), request).map(Ok))
    }
}

/// Where a request goes, decided once from its method and path and the table loaded once: the
/// response and the metric labels both come from this.
enum Routed {
    /// `/health` at the top level.
    Health,
    /// `/openapi.json` at the top level.
    OpenApiTemplate,
    /// No route and no loaded endpoint.
    NotFound,
    /// A loaded endpoint, and its route or why none matched.
    Endpoint {
        endpoint: Arc<Endpoint>,
        route: Result<EndpointRoute, ApiError>,
    },
}

impl Routed {
    fn of(store: &EndpointStore, method: &Method, path: &str) -> Routed {
        let path = router::merge_slashes(path);
        match router::target(&path) {
            Target::Health => Routed::Health,
            Target::OpenApiTemplate => Routed::OpenApiTemplate,
            Target::Unknown => Routed::NotFound,
            Target::Endpoint { name, rest } => match store.table().get(name) {
                Some(endpoint) => Routed::Endpoint {
                    endpoint: Arc::clone(endpoint),
                    route: router::match_route(method, rest),
                },
                None => Routed::NotFound,
            },
        }
    }

    /// The `endpoint` label: a loaded endpoint's name, else `""`, so invented names create no
    /// series.
    fn endpoint_label(&self) -> LabelValue {
        match self {
            Routed::Endpoint { endpoint, .. } => endpoint.label.clone(),
            _ => NO_ENDPOINT,
        }
    }

    /// The `route` label: the template of the route that serves the request.
    fn route_label(&self) -> &'static str {
        match self {
            Routed::Health => "/health",
            Routed::OpenApiTemplate => "/openapi.json",
            Routed::Endpoint {
                route: Ok(route), ..
            } => route.operation().route().template,
            Routed::NotFound | Routed::Endpoint { route: Err(_), .. } => UNMATCHED,
        }
    }
}

/// Serves one request inside its request context, then counts it, logs one line about it and tags
/// the response with its request id.
async fn observed(state: Arc<AppState>, request: Request<Incoming>) -> Response<Body> {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let request_id = request_id(request.headers());
    let routed = Routed::of(&state.store, &method, request.uri().path());
    let endpoint = routed.endpoint_label();
    let route = routed.route_label();
    let context = Arc::new(RequestContext::new(endpoint.clone()));
    let in_flight = InFlight::start(&endpoint);
    let mut response = metrics::scope(
        Arc::clone(&context),
        // Boxed once here, so that the wrappers around it move a pointer, not the handler's state.
        panic_guard(Box::pin(handle(&state, routed, request))),
    )
    .await;
    drop(in_flight);
    let elapsed = started.elapsed();
    // An MCP failure answered inside a 200 counts under the status it stands for, so error ratios
    // see it as they see the same failure on REST.
    let status = context
        .outcome_status()
        .unwrap_or_else(|| response.status().as_u16());
    let labels = RequestLabels::new(endpoint, route, &method).with_tool(context.tool());
    metrics::request_answered(&labels, status, elapsed);
    macro_rules! log_request {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id = %request_id.to_str().unwrap_or_default(),
                endpoint = %labels.endpoint,
                route = labels.route,
                method = labels.method,
                tool = labels.tool,
                status,
                // Whole microseconds: `0.162`, not `0.16199999999999998`.
                duration_ms = elapsed.as_micros() as f64 / 1000.0,
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
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` when it is sane (1 to 64 characters of `[A-Za-z0-9._-]`), else a
/// fresh random one of 16 hex digits.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let sane = headers.get(X_REQUEST_ID).filter(|id| {
        (1..=64).contains(&id.len())
            && id
                .as_bytes()
                .iter()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
    });
    if let Some(id) = sane {
        return id.clone();
    }
    // Indexed from a table rather than formatted: `write!` with padding cost ten times as much,
    // once per request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = fastrand::u64(..);
    let digits: [u8; 16] =
        std::array::from_fn(|index| HEX[((random >> (60 - 4 * index)) & 0xf) as usize]);
    HeaderValue::from_bytes(&digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Runs a request handler; a panic becomes a 500 envelope with a generic message, the detail goes
/// to the log only. Not an `async fn`, whose state would hold the handler twice.
fn panic_guard(
    handler: impl Future<Output = Response<Body>>,
) -> impl Future<Output = Response<Body>> {
    AssertUnwindSafe(handler).catch_unwind().map(|caught| {
        caught.unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %detail, "request handler panicked");
            ApiError::internal().into_response()
        })
    })
}

async fn handle(state: &AppState, routed: Routed, request: Request<Incoming>) -> Response<Body> {
    let served = match routed {
        Routed::Health => {
            only_get(request.method()).map(|()| envelope::healthy("Service healthy."))
        }
        Routed::OpenApiTemplate => only_get(request.method()).map(|()| {
            openapi::serve_template(state.settings.public_url.as_deref(), request.headers())
        }),
        Routed::NotFound => Err(ApiError::not_found()),
        Routed::Endpoint { endpoint, route } => {
            endpoint_request(state, &endpoint, route, request).await
        }
    };
    served.unwrap_or_else(ApiError::into_response)
}

fn only_get(method: &Method) -> Result<(), ApiError> {
    if method == Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method, &[Method::GET]))
    }
}

async fn endpoint_request(
    state: &AppState,
    endpoint: &Endpoint,
    route: Result<EndpointRoute, ApiError>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let route = match route {
        Ok(route) => route,
        Err(miss) => {
            // A route miss costs like a public route, so misses cannot flood the log either.
            endpoint.limits.spend(LimitKind::Public).await?;
            return Err(miss);
        }
    };
    let operation = route.operation();
    match route {
        // MCP checks its Origin before the secret and renders its own refusals. Boxed, as the
        // page operations: their futures are large, and moving them with every request of the
        // cheap routes cost more than the allocation.
        EndpointRoute::Mcp => Ok(Box::pin(mcp_request(state, endpoint, request))
            .await
            .unwrap_or_else(mcp::refusal)),
        EndpointRoute::Health => {
            admit(endpoint, operation, request.headers()).await?;
            Ok(envelope::healthy("Service healthy."))
        }
        EndpointRoute::OpenApi => {
            admit(endpoint, operation, request.headers()).await?;
            Ok(openapi::serve_endpoint(
                endpoint,
                state.settings.public_url.as_deref(),
                request.headers(),
            ))
        }
        EndpointRoute::Page(page) => {
            admit(endpoint, operation, request.headers()).await?;
            Box::pin(page_request(state, endpoint, page, request)).await
        }
    }
}

/// Lets a REST request through: its secret and budget (see [`spend_budget`]), then the endpoint's
/// flavor.
async fn admit(
    endpoint: &Endpoint,
    operation: Operation,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    spend_budget(endpoint, operation, headers).await?;
    if endpoint.tenant.allows(operation) {
        Ok(())
    } else {
        Err(ApiError::outside_flavor(endpoint.tenant.access_summary()))
    }
}

/// A page operation: the body read, the typed command built and run, the reply rendered.
async fn page_request(
    state: &AppState,
    endpoint: &Endpoint,
    page: PageRoute,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = Query::parse(request.uri().query());
    let (parts, bytes) = read_body(state, request).await?;
    let body = RequestBody {
        headers: &parts.headers,
        bytes: &bytes,
    };
    let command = page_command(page, &query, &body)?;
    let reply = pages::run(
        &endpoint.upstream,
        &endpoint.tenant,
        &endpoint.renders,
        command,
    )
    .await?;
    let (message, data) = reply::render(reply);
    Ok(envelope::ok(&message, data))
}

/// `POST /mcp`: the Origin is checked first (a refused Origin costs like a route miss), then the
/// secret and budget as on REST, the body, the protocol header and the content type; the message is
/// then answered by [`mcp::answer`]. Failures up to there are refusals with the status of the one
/// error mapping.
async fn mcp_request(
    state: &AppState,
    endpoint: &Endpoint,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let host = mcp::request_host(request.headers(), request.uri());
    let public_urls: Vec<&str> = endpoint
        .tenant
        .public_url()
        .map(|url| url.as_str())
        .into_iter()
        .chain(state.settings.public_url.as_deref())
        .collect();
    if let Err(refused) = mcp::check_origin(request.headers(), host, &public_urls) {
        endpoint.limits.spend(LimitKind::Public).await?;
        return Err(refused);
    }
    spend_budget(endpoint, Operation::Mcp, request.headers()).await?;
    // The body is read before the headers are judged: a client that probes with a revision this
    // server refuses sends its next message on the same connection, which must stay usable.
    let (parts, bytes) = read_body(state, request).await?;
    mcp::check_protocol_version(&parts.headers)?;
    check_json_content_type(&parts.headers)?;
    Ok(mcp::answer(endpoint, &bytes).await)
}

/// The request's head and its whole body, read within the service's size limit, deadline and
/// body budget.
async fn read_body(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<(http::request::Parts, bytes::Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = body::read(
        &parts.headers,
        body,
        state.settings.body_limit,
        &state.settings.body,
    )
    .await?;
    Ok((parts, bytes))
}

/// Checks the secret and spends the matching budget. The secret is compared first, so a correct
/// one is never refused for a stranger's failures; failures spend their own strict budget, and
/// once that is spent they are answered 429 instead of 401.
async fn spend_budget(
    endpoint: &Endpoint,
    operation: Operation,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !operation.requires_auth() {
        return Ok(endpoint.limits.spend(LimitKind::Public).await?);
    }
    if let Err(unauthorized) = auth::check_bearer(headers, &endpoint.secret_digests) {
        endpoint.limits.spend(LimitKind::Auth).await?;
        return Err(unauthorized);
    }
    Ok(endpoint.limits.spend(LimitKind::Quota).await?)
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
