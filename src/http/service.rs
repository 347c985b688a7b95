//! The public `Service`: each request is routed once against the table loaded once, then
//! authenticated, budgeted, checked against the flavor, turned into a typed page command, run, and
//! answered in the envelope; a panic guard keeps every response an envelope. Whatever needs no
//! waiting (routing, the secret, a local budget, the flavor, health and the OpenAPI document) is
//! done as the request arrives; only page operations, MCP and budgets shared through Redis await.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::{Either, Ready, ready};
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
use crate::ratelimit::{LimitKind, RateLimited};
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
    type Future = Either<
        Ready<Result<Response<Body>, Infallible>>,
        Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
    >;

    /// Routes the request and takes every step that needs no waiting: most requests (health,
    /// refusals, route misses, the OpenAPI document) are answered here, without a task-local
    /// context, a boxed future or the request outliving this call. The rest awaits in
    /// [`observed`].
    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (arrival, routed) = Arrival::of(&self.state.store, &request);
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
            first_step(&self.state, routed, &arrival.method, request.headers())
        }))
        .unwrap_or_else(|panic| Step::Answer(panicked(panic)));
        match step {
            Step::Answer(response) => {
                drop(request);
                Either::Left(ready(Ok(arrival.finish(response, None))))
            }
            Step::Await(rest) => Either::Right(Box::pin(
                observed(Arc::clone(&self.state), arrival, rest, request).map(Ok),
            )),
        }
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

/// What is known of a request from its arrival on: enough to count it, log it and tag its
/// response, whichever way it is answered.
struct Arrival {
    started: tokio::time::Instant,
    method: Method,
    request_id: HeaderValue,
    endpoint: LabelValue,
    route: &'static str,
}

impl Arrival {
    /// The request's arrival, and where it goes.
    fn of(store: &EndpointStore, request: &Request<Incoming>) -> (Arrival, Routed) {
        let started = tokio::time::Instant::now();
        let method = request.method().clone();
        let request_id = request_id(request.headers());
        let routed = Routed::of(store, &method, request.uri().path());
        let arrival = Arrival {
            started,
            method,
            request_id,
            endpoint: routed.endpoint_label(),
            route: routed.route_label(),
        };
        (arrival, routed)
    }

    /// Counts the answered request, logs one line about it and tags the response with its
    /// request id. `context` is the request context of a request that awaited.
    fn finish(
        self,
        mut response: Response<Body>,
        context: Option<&RequestContext>,
    ) -> Response<Body> {
        let elapsed = self.started.elapsed();
        // An MCP failure answered inside a 200 counts under the status it stands for, so error
        // ratios see it as they see the same failure on REST.
        let status = context
            .and_then(RequestContext::outcome_status)
            .unwrap_or_else(|| response.status().as_u16());
        let labels = RequestLabels::new(self.endpoint, self.route, &self.method)
            .with_tool(context.and_then(RequestContext::tool));
        let upstream_calls = context.map_or(0, RequestContext::upstream_calls);
        metrics::request_answered(&labels, status, elapsed);
        macro_rules! log_request {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    request_id = %self.request_id.to_str().unwrap_or_default(),
                    endpoint = %labels.endpoint,
                    route = labels.route,
                    method = labels.method,
                    tool = labels.tool,
                    status,
                    // Whole microseconds: `0.162`, not `0.16199999999999998`.
                    duration_ms = elapsed.as_micros() as f64 / 1000.0,
                    upstream_calls,
                    // A plain string rather than a format string: written without `fmt`.
                    message = "request"
                )
            };
        }
        match status {
            500 => log_request!(tracing::Level::ERROR),
            501.. => log_request!(tracing::Level::WARN),
            _ => log_request!(tracing::Level::INFO),
        }
        response.headers_mut().insert(X_REQUEST_ID, self.request_id);
        response
    }
}

/// Serves the part of a request that awaits inside its request context (upstream calls and the
/// MCP outcome are counted there), then finishes it as every request is finished.
async fn observed(
    state: Arc<AppState>,
    arrival: Arrival,
    rest: Rest,
    request: Request<Incoming>,
) -> Response<Body> {
    let context = Arc::new(RequestContext::new(arrival.endpoint.clone()));
    let in_flight = InFlight::start(&arrival.endpoint);
    let response = metrics::scope(
        Arc::clone(&context),
        // Boxed once here, so that the wrappers around it move a pointer, not the handler's state.
        panic_guard(Box::pin(serve_rest(&state, rest, request))),
    )
    .await;
    drop(in_flight);
    arrival.finish(response, Some(&context))
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
        // Copied: a clone would share, and keep alive, the buffer the request's head was read
        // into, which the connection could then not reuse for the next request.
        return HeaderValue::from_bytes(id.as_bytes()).unwrap_or_else(|_| id.clone());
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
    AssertUnwindSafe(handler)
        .catch_unwind()
        .map(|caught| caught.unwrap_or_else(panicked))
}

/// The answer to a handler that panicked: a generic 500; the detail goes to the log only.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "request handler panicked");
    ApiError::internal().into_response()
}

/// How a request goes on after routing.
enum Step {
    /// Answered without waiting.
    Answer(Response<Body>),
    /// What is left awaits.
    Await(Rest),
}

/// The part of a request's handling that awaits.
enum Rest {
    /// The budget is shared through Redis: spend it, then go on as `then` says.
    Spend {
        endpoint: Arc<Endpoint>,
        kind: LimitKind,
        then: Then,
    },
    /// A page operation, admitted: its body, the command and its upstream calls.
    Page {
        endpoint: Arc<Endpoint>,
        page: PageRoute,
    },
    /// An MCP message, which checks its Origin before the secret and renders its own refusals.
    Mcp { endpoint: Arc<Endpoint> },
}

/// What a request to an endpoint comes to once its budget is spent.
enum Then {
    /// Refused: no such route, a wrong secret, outside the flavor.
    Refuse(ApiError),
    /// The endpoint's health.
    Health,
    /// The endpoint's OpenAPI document.
    OpenApi,
    /// A page operation.
    Page(PageRoute),
}

impl Then {
    /// The answer, or the page operation that is still to run.
    fn admitted(self, state: &AppState, endpoint: &Endpoint, headers: &HeaderMap) -> Admitted {
        Admitted::Answer(match self {
            Then::Refuse(refused) => refused.into_response(),
            Then::Health => envelope::healthy("Service healthy."),
            Then::OpenApi => {
                openapi::serve_endpoint(endpoint, state.settings.public_url.as_deref(), headers)
            }
            Then::Page(page) => return Admitted::Page(page),
        })
    }
}

/// A request to an endpoint once its budget is spent.
enum Admitted {
    /// Answered.
    Answer(Response<Body>),
    /// A page operation to run.
    Page(PageRoute),
}

/// Everything up to the first wait: the top-level routes answered, and for an endpoint, which
/// budget the request spends and what follows (see [`admission`]); a local budget is spent here.
fn first_step(state: &AppState, routed: Routed, method: &Method, headers: &HeaderMap) -> Step {
    let (endpoint, route) = match routed {
        Routed::Health => {
            let health = only_get(method).map(|()| envelope::healthy("Service healthy."));
            return Step::Answer(health.unwrap_or_else(ApiError::into_response));
        }
        Routed::OpenApiTemplate => {
            let template = only_get(method)
                .map(|()| openapi::serve_template(state.settings.public_url.as_deref(), headers));
            return Step::Answer(template.unwrap_or_else(ApiError::into_response));
        }
        Routed::NotFound => return Step::Answer(ApiError::not_found().into_response()),
        Routed::Endpoint { endpoint, route } => (endpoint, route),
    };
    let (kind, then) = match route {
        // A route miss costs like a public route, so misses cannot flood the log either.
        Err(miss) => (LimitKind::Public, Then::Refuse(miss)),
        Ok(EndpointRoute::Mcp) => return Step::Await(Rest::Mcp { endpoint }),
        Ok(EndpointRoute::Health) => admission(&endpoint, Operation::Health, Then::Health, headers),
        Ok(EndpointRoute::OpenApi) => {
            admission(&endpoint, Operation::OpenApi, Then::OpenApi, headers)
        }
        Ok(EndpointRoute::Page(page)) => {
            admission(&endpoint, page.operation(), Then::Page(page), headers)
        }
    };
    match endpoint
        .limits
        .spend_now(kind)
        .map(|spent| counted(&endpoint, spent))
    {
        Some(Ok(())) => match then.admitted(state, &endpoint, headers) {
            Admitted::Answer(response) => Step::Answer(response),
            Admitted::Page(page) => Step::Await(Rest::Page { endpoint, page }),
        },
        Some(Err(limited)) => Step::Answer(limited.into_response()),
        None => Step::Await(Rest::Spend {
            endpoint,
            kind,
            then,
        }),
    }
}

fn only_get(method: &Method) -> Result<(), ApiError> {
    if method == Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method, &[Method::GET]))
    }
}

/// Which budget a REST request spends and what follows once it is spent: [`charge`], then the
/// flavor, judged after the quota so that an operation outside it costs like any other.
fn admission(
    endpoint: &Endpoint,
    operation: Operation,
    then: Then,
    headers: &HeaderMap,
) -> (LimitKind, Then) {
    let (kind, admitted) = charge(endpoint, operation, headers);
    let admitted = admitted.and_then(|()| {
        if endpoint.tenant.allows(operation) {
            Ok(())
        } else {
            Err(ApiError::outside_flavor(endpoint.tenant.access_summary()))
        }
    });
    (kind, admitted.map_or_else(Then::Refuse, |()| then))
}

/// Which budget a request for `operation` spends, and whether its secret lets it through. The
/// secret is compared first, so a correct one is never refused for a stranger's failures;
/// failures spend their own strict budget, and once that is spent they are answered 429 instead
/// of 401.
fn charge(
    endpoint: &Endpoint,
    operation: Operation,
    headers: &HeaderMap,
) -> (LimitKind, Result<(), ApiError>) {
    if !operation.requires_auth() {
        return (LimitKind::Public, Ok(()));
    }
    match auth::check_bearer(headers, &endpoint.secret_digests) {
        Ok(()) => (LimitKind::Quota, Ok(())),
        Err(unauthorized) => (LimitKind::Auth, Err(unauthorized)),
    }
}

/// A spend of one of `endpoint`'s budgets; a refusal is counted in
/// `conflagent_rate_limited_total` and becomes the 429 to answer.
fn counted(endpoint: &Endpoint, spent: Result<(), RateLimited>) -> Result<(), ApiError> {
    spent.map_err(|limited| {
        metrics::rate_limited(&endpoint.label, limited.kind.as_str());
        ApiError::from(limited)
    })
}

/// The awaiting part of a request (see [`Rest`]).
async fn serve_rest(state: &AppState, rest: Rest, request: Request<Incoming>) -> Response<Body> {
    let served = match rest {
        Rest::Spend {
            endpoint,
            kind,
            then,
        } => match counted(&endpoint, endpoint.limits.spend(kind).await) {
            Err(refused) => Err(refused),
            Ok(()) => match then.admitted(state, &endpoint, request.headers()) {
                Admitted::Answer(response) => Ok(response),
                Admitted::Page(page) => {
                    Box::pin(page_request(state, &endpoint, page, request)).await
                }
            },
        },
        Rest::Page { endpoint, page } => {
            Box::pin(page_request(state, &endpoint, page, request)).await
        }
        // Boxed, as the page operations: their futures are large, and moving them with every
        // request of the cheap routes cost more than the allocation.
        Rest::Mcp { endpoint } => Ok(Box::pin(mcp_request(state, &endpoint, request))
            .await
            .unwrap_or_else(mcp::refusal)),
    };
    served.unwrap_or_else(ApiError::into_response)
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
        counted(endpoint, endpoint.limits.spend(LimitKind::Public).await)?;
        return Err(refused);
    }
    let (kind, admitted) = charge(endpoint, Operation::Mcp, request.headers());
    counted(endpoint, endpoint.limits.spend(kind).await)?;
    admitted?;
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
