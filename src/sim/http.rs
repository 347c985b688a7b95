//! The simulator's HTTP face: accept loop, routing, auth, faults, and the JSON shapes Confluence uses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod v2;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::cql::{self, Candidate};
use super::store::{MovePosition, NewPage, Page, PageUpdate, StatusFilter, StoreError};
use super::{Caller, Deployment, InjectedFault, Shared, SimRequest, State};

/// Confluence Cloud refuses request bodies above 5 MiB (CONFLUENCE.md §3.4).
const MAX_BODY_BYTES: usize = 5_242_880;
/// Default `limit` of v1 collections and the size of a `children.page` expansion.
const DEFAULT_LIMIT: usize = 25;
/// Cloud answers 400 to more sub-expansions than this in one request.
const CLOUD_MAX_EXPANSIONS: usize = 8;
/// How long open connections may finish after shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

type HttpResponse = Response<Full<Bytes>>;

/// Serves connections until `stopped` flips, then drains them.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Accept errors (e.g. too many open files) are transient; back off briefly.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = Arc::clone(&shared);
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(handle(&shared, request).await) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client hanging up mid-request is not the simulator's problem.
                    let _ = connection.await;
                });
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    // Connections still busy after the grace period are simply dropped.
    let _ = tokio::time::timeout(DRAIN_GRACE, graceful.shutdown()).await;
}

/// The routes the simulator knows, with their path parameters (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    ContentCollection,
    Search,
    SiteSearch,
    Content(String),
    Children(String),
    Descendants(String),
    Move {
        id: String,
        position: String,
        target: String,
    },
    Space(String),
    /// A Cloud REST v2 route (`/api/v2/…`).
    V2(v2::V2Route),
    Unrouted,
}

impl Route {
    /// Parses `path` below `context`. REST v2 routes are recognised only when `v2` is set (Cloud).
    fn parse(method: &Method, path: &str, context: &str, v2: bool) -> Route {
        let Some(rest) = path
            .strip_prefix(context)
            .filter(|rest| rest.starts_with('/'))
        else {
            return Route::Unrouted;
        };
        let segments: Vec<String> = rest
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let route = match segments.as_slice() {
            ["rest", "api", "content"] => Route::ContentCollection,
            ["rest", "api", "content", "search"] => Route::Search,
            ["rest", "api", "search"] => Route::SiteSearch,
            ["rest", "api", "content", id] => Route::Content((*id).to_owned()),
            ["rest", "api", "content", id, "child", "page"] => Route::Children((*id).to_owned()),
            ["rest", "api", "content", id, "descendant", "page"] => {
                Route::Descendants((*id).to_owned())
            }
            ["rest", "api", "content", id, "move", position, target] => Route::Move {
                id: (*id).to_owned(),
                position: (*position).to_owned(),
                target: (*target).to_owned(),
            },
            ["rest", "api", "space", key] => Route::Space((*key).to_owned()),
            ["api", "v2", rest @ ..] if v2 => match v2::V2Route::parse(method, rest) {
                Some(route) => Route::V2(route),
                None => Route::Unrouted,
            },
            _ => Route::Unrouted,
        };
        let allowed = match &route {
            Route::ContentCollection => [Method::GET, Method::POST].contains(method),
            Route::Content(_) => [Method::GET, Method::PUT, Method::DELETE].contains(method),
            Route::Move { .. } => method == Method::PUT,
            Route::Search
            | Route::SiteSearch
            | Route::Children(_)
            | Route::Descendants(_)
            | Route::Space(_) => method == Method::GET,
            Route::V2(_) | Route::Unrouted => true,
        };
        if allowed { route } else { Route::Unrouted }
    }

    fn template(&self) -> &'static str {
        match self {
            Route::ContentCollection => "/rest/api/content",
            Route::Search => "/rest/api/content/search",
            Route::SiteSearch => "/rest/api/search",
            Route::Content(_) => "/rest/api/content/{id}",
            Route::Children(_) => "/rest/api/content/{id}/child/page",
            Route::Descendants(_) => "/rest/api/content/{id}/descendant/page",
            Route::Move { .. } => "/rest/api/content/{id}/move/{position}/{targetId}",
            Route::Space(_) => "/rest/api/space/{key}",
            Route::V2(route) => route.template(),
            Route::Unrouted => "(unrouted)",
        }
    }

    /// The v1 content CRUD routes Cloud has deprecated (CHANGE-864) and removed for the gateway
    /// and OAuth (CHANGE-2520).
    fn is_deprecated_content_crud(&self) -> bool {
        matches!(
            self,
            Route::ContentCollection | Route::Content(_) | Route::Children(_)
        )
    }

    /// Which error body shape an answer on this route takes.
    fn api(&self) -> Api {
        match self {
            Route::V2(_) => Api::V2,
            _ => Api::V1,
        }
    }
}

/// The two error body shapes of CONFLUENCE.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// A Confluence error answer: status plus the message Confluence would put in its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn no_content(id: &str) -> Failure {
        Failure::not_found(format!("No content found with id: ContentId{{id={id}}}"))
    }
}

/// Everything a handler needs about the request, already decoded.
struct Call<'a> {
    shared: &'a Shared,
    method: Method,
    /// Path below the context, e.g. `/rest/api/content`.
    path: String,
    /// Response headers a handler adds (the v2 `Link` header).
    link_next: std::cell::RefCell<Option<String>>,
    /// Raw path and query as received, context included.
    received: String,
    /// Raw query string, for `_links.self`.
    raw_query: String,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Call<'_> {
    fn deployment(&self) -> Deployment {
        self.shared.settings.deployment
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a parameter that may repeat or hold a comma-separated list.
    fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }

    fn self_link(&self) -> String {
        if self.raw_query.is_empty() {
            format!("{}{}", self.shared.base, self.path)
        } else {
            format!("{}{}?{}", self.shared.base, self.path, self.raw_query)
        }
    }

    /// A context-relative link to the same route with some parameters replaced.
    fn link_with(&self, replaced: &[(&str, String)]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(key, _)| !replaced.iter().any(|(name, _)| name == key))
            .cloned()
            .collect();
        pairs.extend(
            replaced
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone())),
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        format!("{}?{query}", self.path)
    }

    /// The deployment's defaults plus what `expand` asks for. Cloud refuses more than
    /// [`CLOUD_MAX_EXPANSIONS`] requested expansions (CONFLUENCE.md §2.1).
    fn expansions(&self, defaults: &[&str]) -> Result<Expansions, Failure> {
        let requested: Vec<String> = self
            .param("expand")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect();
        if self.deployment() == Deployment::Cloud && requested.len() > CLOUD_MAX_EXPANSIONS {
            return Err(Failure::bad_request(format!(
                "Too many expansions: {} requested, at most {CLOUD_MAX_EXPANSIONS} are allowed",
                requested.len()
            )));
        }
        let mut paths: Vec<String> = defaults.iter().map(|path| (*path).to_owned()).collect();
        paths.extend(requested);
        Ok(Expansions(paths))
    }

    fn status_filter(&self) -> Result<Option<StatusFilter>, Failure> {
        match self.param("status") {
            None | Some("current") => Ok(Some(StatusFilter::Current)),
            Some("trashed") => Ok(Some(StatusFilter::Trashed)),
            Some("any") => Ok(Some(StatusFilter::Any)),
            // Statuses the simulator never holds: a valid filter that matches nothing.
            Some("draft" | "deleted" | "historical" | "archived") => Ok(None),
            Some(other) => Err(Failure::bad_request(format!("Invalid status: {other}"))),
        }
    }

    fn paging(&self, cap: usize) -> Result<(usize, usize), Failure> {
        let number = |name: &str, default: usize| -> Result<usize, Failure> {
            match self.param(name) {
                None | Some("") => Ok(default),
                Some(raw) => raw.parse::<usize>().map_err(|_| {
                    Failure::bad_request(format!("{name} must be a non-negative integer: {raw}"))
                }),
            }
        };
        let start = number("start", 0)?;
        let limit = number("limit", DEFAULT_LIMIT)?.clamp(1, cap.max(1));
        Ok((start, limit))
    }

    fn json_body(&self) -> Result<Value, Failure> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Failure::bad_request(format!("Unable to parse the request body as JSON: {error}"))
        })
    }
}

/// Requested expansion paths (`body.storage`, `children.page`, …).
#[derive(Debug, Clone, Default)]
struct Expansions(Vec<String>);

impl Expansions {
    /// Whether `path` itself or anything below it was requested.
    fn has(&self, path: &str) -> bool {
        self.0.iter().any(|requested| {
            requested == path
                || requested
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    fn has_body(&self) -> bool {
        self.has("body")
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> HttpResponse {
    let latency = shared.lock().faults.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let received = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), ToString::to_string);
    let (context, is_gateway) = request_context(shared, &path);
    let route = Route::parse(
        &method,
        &path,
        context,
        shared.settings.deployment == Deployment::Cloud,
    );
    // The gateway form exists for Cloud's REST APIs only (and only under this site's cloudId).
    let route = if is_gateway && shared.settings.deployment != Deployment::Cloud {
        Route::Unrouted
    } else {
        route
    };
    let caller = {
        let mut state = shared.lock();
        state.log.push(SimRequest {
            method: method.to_string(),
            route: format!("{method} {}", route.template()),
            path_and_query: received.clone(),
        });
        if let Some(fault) = state.faults.take() {
            return fault_response(shared, fault, route.api());
        }
        request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| state.credentials.check(value))
    };
    let Some(caller) = caller else {
        return auth_failure(shared, route.api());
    };
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let failure = Failure {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("Request body exceeds the limit of {MAX_BODY_BYTES} bytes"),
            };
            return error_response(shared, &failure, route.api());
        }
    };
    let call = Call {
        shared,
        method,
        received,
        path: path.strip_prefix(context).unwrap_or(&path).to_owned(),
        link_next: std::cell::RefCell::new(None),
        query: form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        raw_query,
        body,
    };
    let deprecated =
        shared.settings.deployment == Deployment::Cloud && route.is_deprecated_content_crud();
    let gone = deprecated && shared.settings.cloud_v1_content_gone;
    let write_fault = if call.method == Method::GET {
        None
    } else {
        shared.lock().faults.take_write_fault()
    };
    if let Some((fault, false)) = write_fault {
        return fault_response(shared, fault, route.api());
    }
    let outcome = if gone {
        Err(Failure {
            status: StatusCode::GONE,
            message: "This deprecated endpoint has been removed.".to_owned(),
        })
    } else {
        dispatch(&call, &route)
    };
    if let Some((fault, true)) = write_fault
        && outcome.is_ok()
    {
        return fault_response(shared, fault, route.api());
    }
    let mut response = match outcome {
        Ok(response) => response,
        Err(failure) => error_response(shared, &failure, route.api()),
    };
    if let Some(next) = call.link_next.borrow().as_deref()
        && let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(http::header::LINK, value);
    }
    if shared.settings.deployment == Deployment::DataCenter {
        stamp_username(&mut response, &caller);
    }
    if deprecated {
        // Cloud marks the deprecated v1 content CRUD on every answer (CONFLUENCE.md §0, §6).
        let headers = response.headers_mut();
        headers.insert(
            "deprecation",
            HeaderValue::from_static("Wed, 1 Mar 2023 00:00:00 GMT"),
        );
        headers.insert(
            "warning",
            HeaderValue::from_static("299 - \"Deprecated API\""),
        );
    }
    response
}

fn dispatch(call: &Call<'_>, route: &Route) -> Result<HttpResponse, Failure> {
    match (route, &call.method) {
        (Route::ContentCollection, &Method::GET) => title_lookup(call),
        (Route::ContentCollection, _) => create_page(call),
        (Route::Search, _) => search(call),
        (Route::SiteSearch, _) => site_search(call),
        (Route::Content(id), &Method::GET) => read_page(call, id),
        (Route::Content(id), &Method::PUT) => update_page(call, id),
        (Route::Content(id), _) => delete_page(call, id),
        (Route::Children(id), _) => list_children(call, id),
        (Route::Descendants(id), _) => list_descendants(call, id),
        (
            Route::Move {
                id,
                position,
                target,
            },
            _,
        ) => move_page(call, id, position, target),
        (Route::Space(key), _) => read_space(call, key),
        (Route::V2(route), _) => v2::dispatch(call, route),
        (Route::Unrouted, _) => {
            let host = call
                .shared
                .base
                .strip_suffix(call.shared.context)
                .unwrap_or(&call.shared.base);
            Err(Failure::not_found(format!(
                "null for uri: {host}{}",
                call.received
            )))
        }
    }
}

/// Default expansions of reads and Cloud writes (CONFLUENCE.md §2.1).
const READ_DEFAULTS: &[&str] = &["space", "history", "version"];
/// Data Center builds create/update responses with these (CONFLUENCE.md §2.1, §3.5).
const DC_WRITE_DEFAULTS: &[&str] = &["body.storage", "history", "space", "version", "ancestors"];

fn write_defaults(deployment: Deployment) -> &'static [&'static str] {
    match deployment {
        Deployment::Cloud => READ_DEFAULTS,
        Deployment::DataCenter => DC_WRITE_DEFAULTS,
    }
}

fn parse_id(id: &str) -> Result<u64, Failure> {
    id.parse::<u64>().map_err(|_| Failure::no_content(id))
}

fn title_lookup(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    if call.shared.settings.content_collection_blocked
        && call.deployment() == Deployment::DataCenter
    {
        return Err(Failure {
            status: StatusCode::FORBIDDEN,
            message: "The server understood the request but refuses to authorize it".to_owned(),
        });
    }
    let (start, limit) = call.paging(call.shared.settings.max_page_limit as usize)?;
    let expansions = call.expansions(READ_DEFAULTS)?;
    let filter = call.status_filter()?;
    let state = call.shared.lock();
    let pages_only = call.param("type").is_none_or(|kind| kind == "page");
    let ids = match filter {
        Some(filter) if pages_only => {
            state
                .store
                .lookup(call.param("spaceKey"), call.param("title"), filter)
        }
        _ => Vec::new(),
    };
    Ok(json_ok(content_array(
        call,
        &state,
        &ids,
        (start, limit),
        &expansions,
        NextLink::Offset,
    )))
}

fn read_page(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let numeric = parse_id(id)?;
    let filter = call
        .status_filter()?
        .ok_or_else(|| Failure::no_content(id))?;
    let expansions = call.expansions(READ_DEFAULTS)?;
    let state = call.shared.lock();
    let page = state
        .store
        .visible_page(numeric, filter)
        .map_err(|_| Failure::no_content(id))?;
    Ok(json_ok(content_json(
        call.shared,
        &state,
        page,
        &expansions,
        true,
    )))
}

fn list_children(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let numeric = parse_id(id)?;
    let (start, limit) = call.paging(call.shared.settings.max_page_limit as usize)?;
    let expansions = call.expansions(&[])?;
    let state = call.shared.lock();
    state
        .store
        .visible_page(numeric, StatusFilter::Current)
        .map_err(|_| Failure::no_content(id))?;
    let ids = state.store.children(numeric);
    Ok(json_ok(content_array(
        call,
        &state,
        &ids,
        (start, limit),
        &expansions,
        NextLink::Offset,
    )))
}

fn list_descendants(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    if call.deployment() == Deployment::DataCenter {
        // Server docs: "the only supported descendants are comment descendants of non-comment Content".
        return Err(Failure::bad_request(
            "The only supported descendants are comment descendants of non-comment content",
        ));
    }
    let numeric = parse_id(id)?;
    let (start, limit) = call.paging(call.shared.settings.max_page_limit as usize)?;
    let max_depth = match call.param("depth") {
        None | Some("all") => usize::MAX,
        Some("root") => 1,
        Some(raw) => match raw.parse::<usize>() {
            Ok(depth @ 1..=100) => depth,
            _ => return Err(Failure::bad_request(format!("Invalid depth: {raw}"))),
        },
    };
    let expansions = call.expansions(&[])?;
    let state = call.shared.lock();
    state
        .store
        .visible_page(numeric, StatusFilter::Current)
        .map_err(|_| Failure::no_content(id))?;
    let base_depth = state.store.ancestors(numeric).len();
    let ids: Vec<u64> = state
        .store
        .descendants(numeric)
        .into_iter()
        .filter(|&descendant| state.store.ancestors(descendant).len() - base_depth <= max_depth)
        .collect();
    Ok(json_ok(content_array(
        call,
        &state,
        &ids,
        (start, limit),
        &expansions,
        NextLink::Offset,
    )))
}

fn search(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let raw_cql = call.param("cql").unwrap_or("");
    if raw_cql.trim().is_empty() {
        return Err(Failure::bad_request("CQL query parameter is required"));
    }
    let query = cql::parse(raw_cql).map_err(|error| Failure::bad_request(error.0))?;
    let expansions = call.expansions(&[])?;
    // DC KB caps: 50 with a body expansion, 200 with other expansions, 1000 without.
    let cap = match (
        call.deployment(),
        expansions.has_body(),
        expansions.is_empty(),
    ) {
        (_, true, _) => 50,
        (Deployment::DataCenter, false, false) => 200,
        (Deployment::DataCenter, false, true) => 1000,
        (Deployment::Cloud, false, _) => call.shared.settings.max_page_limit as usize,
    };
    let (dc_start, limit) = call.paging(cap)?;
    let start = search_start(call, dc_start)?;
    let state = call.shared.lock();
    let ids = cql_matches(call, &state, &query);
    let next_link = match call.deployment() {
        Deployment::DataCenter => NextLink::Offset,
        Deployment::Cloud => NextLink::Cursor,
    };
    let mut envelope = content_array(call, &state, &ids, (start, limit), &expansions, next_link);
    envelope["totalSize"] = json!(ids.len());
    envelope["cqlQuery"] = json!(raw_cql);
    envelope["searchDuration"] = json!(0);
    Ok(json_ok(envelope))
}

/// The current pages `query` selects, in creation order, leaving out pages written within the
/// index lag.
fn cql_matches(call: &Call<'_>, state: &State, query: &cql::Cql) -> Vec<u64> {
    let indexed_before = SystemTime::now()
        .checked_sub(call.shared.settings.cql_index_lag)
        .unwrap_or(UNIX_EPOCH);
    let ignores_ancestor = call.shared.settings.cql_ignores_ancestor;
    state
        .store
        .current_pages()
        .filter(|page| page.last_write <= indexed_before)
        .filter(|page| {
            let mut ancestors = state.store.ancestors(page.id);
            if ignores_ancestor {
                // Every page then claims every page as an ancestor.
                ancestors = state.store.current_pages().map(|other| other.id).collect();
            }
            query.matches(&Candidate {
                id: page.id,
                space_key: &page.space_key,
                title: &page.title,
                ancestors: &ancestors,
                body: &page.body,
            })
        })
        .map(|page| page.id)
        .collect()
}

/// `GET /rest/api/search`: CQL search answered with search rows (`content`, `title`, `excerpt`,
/// `lastModified`, …), expansions asked for as `content.…`, paged like `content/search`.
fn site_search(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let raw_cql = call.param("cql").unwrap_or("");
    if raw_cql.trim().is_empty() {
        return Err(Failure::bad_request("CQL query parameter is required"));
    }
    let query = cql::parse(raw_cql).map_err(|error| Failure::bad_request(error.0))?;
    let requested: Vec<String> = call
        .param("expand")
        .unwrap_or("")
        .split(',')
        .filter_map(|path| path.trim().strip_prefix("content."))
        .map(str::to_owned)
        .collect();
    let expansions = Expansions(requested);
    let cap = match (call.deployment(), expansions.has_body()) {
        (_, true) => 50,
        (Deployment::DataCenter, false) => 200,
        (Deployment::Cloud, false) => call.shared.settings.max_page_limit as usize,
    };
    let (dc_start, limit) = call.paging(cap)?;
    let start = search_start(call, dc_start)?;
    let state = call.shared.lock();
    let ids = cql_matches(call, &state, &query);
    let words = search_words(&query);
    let end = ids.len().min(start.saturating_add(limit));
    let results: Vec<Value> = ids
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .filter_map(|&id| state.store.page(id))
        .map(|page| {
            let content = content_json(call.shared, &state, page, &expansions, false);
            json!({
                "content": content,
                "title": highlight(&html_escape(&page.title), &words),
                "excerpt": excerpt(&page.body, &words),
                "url": content["_links"]["webui"],
                "resultGlobalContainer": {
                    "title": page.space_key,
                    "displayUrl": format!("/spaces/{}", page.space_key),
                },
                "breadcrumbs": [],
                "entityType": "content",
                "iconCssClass": "aui-icon content-type-page",
                "lastModified": iso8601(page.updated),
                "friendlyLastModified": "just now",
                "score": 0.0,
            })
        })
        .collect();
    let mut links = Map::new();
    links.insert("base".into(), json!(call.shared.base));
    links.insert("context".into(), json!(call.shared.context));
    links.insert("self".into(), json!(call.self_link()));
    if end < ids.len() {
        let position = match call.deployment() {
            Deployment::DataCenter => ("start", end.to_string()),
            Deployment::Cloud => ("cursor", encode_cursor(end)),
        };
        links.insert(
            "next".into(),
            json!(call.link_with(&[position, ("limit", limit.to_string())])),
        );
    }
    Ok(json_ok(json!({
        "results": results,
        "start": start,
        "limit": limit,
        "size": results.len(),
        "totalSize": ids.len(),
        "cqlQuery": raw_cql,
        "searchDuration": 0,
        "_links": links,
    })))
}

/// The words of every `text ~` clause of `query`, lowercased.
fn search_words(query: &cql::Cql) -> Vec<String> {
    match query {
        cql::Cql::Contains { words } => words.split_whitespace().map(str::to_lowercase).collect(),
        cql::Cql::And(left, right) | cql::Cql::Or(left, right) => {
            let mut words = search_words(left);
            words.extend(search_words(right));
            words
        }
        cql::Cql::Clause { .. } => Vec::new(),
    }
}

/// About 160 characters of body text around the first matched word, HTML-escaped and highlighted.
fn excerpt(body: &str, words: &[String]) -> String {
    let text = cql::body_text(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = text.to_lowercase().chars().collect();
    let first = words
        .iter()
        .filter(|word| !word.is_empty())
        .filter_map(|word| {
            let word: Vec<char> = word.chars().collect();
            lower
                .windows(word.len())
                .position(|window| window == word.as_slice())
        })
        .min()
        .unwrap_or(0);
    let from = first.saturating_sub(60);
    let to = chars.len().min(from + 160);
    let window: String = chars.get(from..to).unwrap_or(&[]).iter().collect();
    highlight(&html_escape(&window), words)
}

/// Wraps each occurrence of each word (ignoring case) in `@@@hl@@@…@@@endhl@@@`.
fn highlight(text: &str, words: &[String]) -> String {
    let mut marked = String::with_capacity(text.len());
    let lower = text.to_lowercase();
    // Byte positions line up only when lowercasing keeps lengths; otherwise leave the text as is.
    if lower.len() != text.len() {
        return text.to_owned();
    }
    let mut at = 0;
    while at < text.len() {
        let hit = words
            .iter()
            .filter(|word| !word.is_empty() && lower[at..].starts_with(word.as_str()))
            .map(String::len)
            .max();
        match hit {
            Some(length) if text.is_char_boundary(at + length) => {
                marked.push_str("@@@hl@@@");
                marked.push_str(&text[at..at + length]);
                marked.push_str("@@@endhl@@@");
                at += length;
            }
            _ => {
                let next = text[at..].chars().next().map_or(1, char::len_utf8);
                marked.push_str(&text[at..at + next]);
                at += next;
            }
        }
    }
    marked
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Cloud cursors are opaque; this one carries the offset of the next result.
fn encode_cursor(offset: usize) -> String {
    format!("sim{offset:x}")
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    usize::from_str_radix(cursor.strip_prefix("sim")?, 16).ok()
}

/// Where a search starts: Data Center pages by `start`, Cloud by cursor only (`start` is ignored).
fn search_start(call: &Call<'_>, dc_start: usize) -> Result<usize, Failure> {
    match call.deployment() {
        Deployment::DataCenter => Ok(dc_start),
        Deployment::Cloud => match call.param("cursor") {
            None | Some("") => Ok(0),
            Some(cursor) => {
                decode_cursor(cursor).ok_or_else(|| Failure::bad_request("Invalid cursor"))
            }
        },
    }
}

/// The storage body of a create/update request: `None` when absent.
fn storage_body(request: &Value) -> Result<Option<String>, Failure> {
    let Some(body) = request.get("body").filter(|body| !body.is_null()) else {
        return Ok(None);
    };
    let Some(representations) = body.as_object() else {
        return Err(Failure::bad_request("body must be an object"));
    };
    if representations.len() > 1 {
        return Err(Failure::bad_request(format!(
            "Maximum number of permitted body entries is 1 but found {}",
            representations.len()
        )));
    }
    let Some((name, content)) = representations.iter().next() else {
        return Ok(None);
    };
    if name != "storage" {
        return Err(Failure::bad_request(format!(
            "Unsupported body representation: {name}"
        )));
    }
    let value = content.get("value").and_then(Value::as_str).unwrap_or("");
    check_xhtml(value)?;
    Ok(Some(value.to_owned()))
}

/// Confluence's 400 for a body that is not well-formed (CONFLUENCE.md §3.4), from the product's own
/// storage checker.
fn check_xhtml(value: &str) -> Result<(), Failure> {
    crate::markdown::check_storage(value).map_err(|error| {
        let mut message = error.message;
        if let Some(first) = message.get(..1) {
            let upper = first.to_uppercase();
            message.replace_range(..1, &upper);
        }
        Failure::bad_request(format!(
            "Error parsing xhtml: {message}\n at [row,col {{unknown-source}}]: [{},{}]",
            error.line, error.column
        ))
    })
}

/// The parent named by `ancestors`: the last entry, since ancestors are root-first.
fn requested_parent(request: &Value) -> Result<Option<u64>, Failure> {
    let Some(ancestors) = request.get("ancestors").and_then(Value::as_array) else {
        return Ok(None);
    };
    let Some(last) = ancestors.last() else {
        return Ok(None);
    };
    let id = match last.get("id") {
        Some(Value::String(id)) => id.parse::<u64>().ok(),
        Some(Value::Number(id)) => id.as_u64(),
        _ => None,
    };
    id.map(Some)
        .ok_or_else(|| Failure::not_found(PARENT_MISSING))
}

const PARENT_MISSING: &str =
    "The parent ID specified does not exist, or user does not have permissions";

fn create_page(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let request = call.json_body()?;
    let kind = request.get("type").and_then(Value::as_str);
    match kind {
        None => return Err(Failure::bad_request("type is required to create content")),
        Some("page") => {}
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "Could not create content with type {other}"
            )));
        }
    }
    if let Some(status) = request
        .get("status")
        .and_then(Value::as_str)
        .filter(|status| *status != "current")
    {
        return Err(Failure::bad_request(format!(
            "Unsupported status for create: {status}"
        )));
    }
    let space_key = request
        .pointer("/space/key")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("Space key is required to create content"))?;
    let title = request.get("title").and_then(Value::as_str).unwrap_or("");
    let parent_id = requested_parent(&request)?;
    let body = storage_body(&request)?.unwrap_or_default();
    let expansions = call.expansions(write_defaults(call.deployment()))?;
    let mut state = call.shared.lock();
    let new_page = NewPage {
        space_key,
        title,
        parent_id,
        body: &body,
    };
    let id = state
        .store
        .create(&new_page, SystemTime::now())
        .map_err(|error| store_failure(call, &error))?;
    let page = state.store.page(id).expect("the page was just created");
    Ok(json_ok(content_json(
        call.shared,
        &state,
        page,
        &expansions,
        true,
    )))
}

fn update_page(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let numeric = id.parse::<u64>().map_err(|_| {
        Failure::not_found(format!("Could not find Content for update with id {id}"))
    })?;
    let request = call.json_body()?;
    {
        let state = call.shared.lock();
        if state.store.page(numeric).is_none() {
            return Err(Failure::not_found(format!(
                "Could not find Content for update with id {id}"
            )));
        }
    }
    match request.get("type").and_then(Value::as_str) {
        Some("page") => {}
        other => {
            return Err(Failure::bad_request(format!(
                "Type is required and must match existing entity type of page, but received {}",
                other.unwrap_or("null")
            )));
        }
    }
    let version = match request.pointer("/version/number") {
        None | Some(Value::Null) => None,
        Some(number) => Some(
            number
                .as_u64()
                .and_then(|number| u32::try_from(number).ok())
                .ok_or_else(|| Failure::bad_request("version.number must be a positive integer"))?,
        ),
    };
    let title = request.get("title").and_then(Value::as_str).unwrap_or("");
    let message = request
        .pointer("/version/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_parent = requested_parent(&request)?;
    let body = storage_body(&request)?;
    let expansions = call.expansions(write_defaults(call.deployment()))?;
    let mut state = call.shared.lock();
    let update = PageUpdate {
        version,
        title,
        new_parent,
        body: body.as_deref(),
        message,
    };
    state
        .store
        .update(numeric, &update, SystemTime::now())
        .map_err(|error| store_failure(call, &error))?;
    let page = state
        .store
        .page(numeric)
        .expect("an updated page stays stored");
    Ok(json_ok(content_json(
        call.shared,
        &state,
        page,
        &expansions,
        true,
    )))
}

fn delete_page(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let not_found = || match call.deployment() {
        Deployment::DataCenter => {
            Failure::not_found(format!("Cannot delete content with id '{id}': not found."))
        }
        Deployment::Cloud => Failure::no_content(id),
    };
    let numeric = id.parse::<u64>().map_err(|_| not_found())?;
    let purge = call.param("status") == Some("trashed");
    call.shared
        .lock()
        .store
        .delete(numeric, purge)
        .map_err(|_| not_found())?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn move_page(
    call: &Call<'_>,
    id: &str,
    position: &str,
    target: &str,
) -> Result<HttpResponse, Failure> {
    if call.deployment() == Deployment::DataCenter {
        // Data Center has no REST move endpoint (CONFSERVER-39042).
        return dispatch(call, &Route::Unrouted);
    }
    let position = match position {
        "before" => MovePosition::Before,
        "after" => MovePosition::After,
        "append" => MovePosition::Append,
        other => return Err(Failure::bad_request(format!("Invalid position: {other}"))),
    };
    let numeric = parse_id(id)?;
    let target_id = target
        .parse::<u64>()
        .map_err(|_| Failure::no_content(target))?;
    let mut state = call.shared.lock();
    state
        .store
        .move_page(numeric, position, target_id, SystemTime::now())
        .map_err(|error| match error {
            StoreError::NoPage(_) => Failure::no_content(id),
            StoreError::NoParent(_) => Failure::no_content(target),
            other => store_failure(call, &other),
        })?;
    Ok(json_ok(json!({ "pageId": id })))
}

fn read_space(call: &Call<'_>, key: &str) -> Result<HttpResponse, Failure> {
    let state = call.shared.lock();
    let space = state
        .store
        .space(key)
        .ok_or_else(|| Failure::not_found(format!("No space with key : {key}")))?;
    let mut value = space_json(call.shared, space);
    value["_links"]["base"] = json!(call.shared.base);
    value["_links"]["context"] = json!(call.shared.context);
    Ok(json_ok(value))
}

/// The one mapping from store refusals to Confluence answers (CONFLUENCE.md §3.4–§3.7, §8).
fn store_failure(call: &Call<'_>, error: &StoreError) -> Failure {
    let deployment = call.deployment();
    match error {
        StoreError::NoSpace(key) => Failure {
            status: match deployment {
                Deployment::DataCenter => StatusCode::NOT_FOUND,
                Deployment::Cloud => StatusCode::FORBIDDEN,
            },
            message: format!("No space with key : {key}"),
        },
        StoreError::NoPage(id) | StoreError::NotCurrent(id) => Failure::no_content(&id.to_string()),
        StoreError::NoParent(_) => Failure::not_found(PARENT_MISSING),
        StoreError::DuplicateTitle { title, space_key } => Failure::bad_request(match deployment {
            Deployment::DataCenter => format!(
                "A page with this title already exists: A page already exists with the title {title} in the space with key {space_key}"
            ),
            Deployment::Cloud => {
                "A page with this title already exists: A page already exists with the same TITLE in this space"
                    .to_owned()
            }
        }),
        StoreError::EmptyTitle => Failure::bad_request("A page title is required and cannot be blank"),
        StoreError::TitleTooLong(_) => Failure::bad_request(format!(
            "Title cannot be longer than {} characters",
            super::store::MAX_TITLE_CHARS
        )),
        StoreError::VersionMissing => {
            Failure::bad_request("Must supply an incremented version when updating Content. No version supplied.")
        }
        StoreError::VersionMismatch { current, .. } => Failure {
            status: StatusCode::CONFLICT,
            message: format!("Version must be incremented on update. Current version is: {current}"),
        },
        StoreError::IllegalMove { page, target } => {
            Failure::bad_request(format!("Illegal move of parent [{page}] under it's child [{target}]."))
        }
        StoreError::ParentInOtherSpace(parent) => {
            Failure::bad_request(format!("The parent page {parent} is in another space"))
        }
    }
}

/// How a collection's `next` link continues: by offset (`start`) or by Cloud search cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NextLink {
    Offset,
    Cursor,
}

/// The `ContentArray` envelope over the window `start..start+limit` of `ids` (CONFLUENCE.md §2.2):
/// `next` is context-relative and present only when more results remain.
fn content_array(
    call: &Call<'_>,
    state: &State,
    ids: &[u64],
    (start, limit): (usize, usize),
    expansions: &Expansions,
    next_link: NextLink,
) -> Value {
    let end = ids.len().min(start.saturating_add(limit));
    let results: Vec<Value> = ids
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .filter_map(|&id| state.store.page(id))
        .map(|page| content_json(call.shared, state, page, expansions, false))
        .collect();
    let mut links = Map::new();
    links.insert("base".into(), json!(call.shared.base));
    links.insert("context".into(), json!(call.shared.context));
    links.insert("self".into(), json!(call.self_link()));
    if end < ids.len() {
        let position = match next_link {
            NextLink::Offset => ("start", end.to_string()),
            NextLink::Cursor => ("cursor", encode_cursor(end)),
        };
        links.insert(
            "next".into(),
            json!(call.link_with(&[position, ("limit", limit.to_string())])),
        );
    }
    json!({
        "results": results,
        "start": start,
        "limit": limit,
        "size": results.len(),
        "_links": links,
    })
}

/// A `Content` object with the requested expansions; `top_level` adds `base`/`context` links.
fn content_json(
    shared: &Shared,
    state: &State,
    page: &Page,
    expansions: &Expansions,
    top_level: bool,
) -> Value {
    let base = &shared.base;
    let id = page.id;
    let mut content = Map::new();
    content.insert("id".into(), json!(id.to_string()));
    content.insert("type".into(), json!("page"));
    content.insert("status".into(), json!(page.status.as_str()));
    content.insert("title".into(), json!(page.title));
    let mut expandable = Map::new();
    let mut expandable_default = |name: &str, value: Value| {
        expandable.insert(name.to_owned(), value);
    };
    expandable_default(
        "container",
        json!(format!("/rest/api/space/{}", page.space_key)),
    );
    expandable_default("metadata", json!(""));
    expandable_default("operations", json!(""));
    expandable_default(
        "restrictions",
        json!(format!("/rest/api/content/{id}/restriction/byOperation")),
    );
    expandable_default(
        "descendants",
        json!(format!("/rest/api/content/{id}/descendant")),
    );

    if expansions.has("space") {
        if let Some(space) = state.store.space(&page.space_key) {
            content.insert("space".into(), space_json(shared, space));
        }
    } else {
        expandable.insert(
            "space".into(),
            json!(format!("/rest/api/space/{}", page.space_key)),
        );
    }
    if expansions.has("history") {
        content.insert(
            "history".into(),
            json!({
                "latest": page.status == super::PageStatus::Current,
                "createdBy": user_json(shared.settings.deployment),
                "createdDate": iso8601(page.created),
                "_links": {"self": format!("{base}/rest/api/content/{id}/history")},
                "_expandable": {"lastUpdated": "", "previousVersion": "", "contributors": "", "nextVersion": ""},
            }),
        );
    } else {
        expandable.insert(
            "history".into(),
            json!(format!("/rest/api/content/{id}/history")),
        );
    }
    if expansions.has("version") {
        content.insert(
            "version".into(),
            json!({
                "by": user_json(shared.settings.deployment),
                "when": iso8601(page.updated),
                "message": page.version_message,
                "number": page.version,
                "minorEdit": false,
                "_links": {"self": format!("{base}/rest/api/content/{id}/version/{}", page.version)},
                "_expandable": {"content": format!("/rest/api/content/{id}")},
            }),
        );
    } else {
        expandable.insert("version".into(), json!(""));
    }
    if expansions.has("ancestors") {
        let ancestors: Vec<Value> = state
            .store
            .ancestors(id)
            .into_iter()
            .filter_map(|ancestor| state.store.page(ancestor))
            .map(|ancestor| content_json(shared, state, ancestor, &Expansions::default(), false))
            .collect();
        content.insert("ancestors".into(), json!(ancestors));
    } else {
        expandable.insert("ancestors".into(), json!(""));
    }
    if expansions.has("body") {
        let mut body = Map::new();
        let mut body_expandable = Map::new();
        for name in [
            "editor",
            "view",
            "export_view",
            "styled_view",
            "anonymous_export_view",
        ] {
            body_expandable.insert(name.into(), json!(""));
        }
        if expansions.has("body.storage") {
            body.insert(
                "storage".into(),
                json!({
                    "value": page.body,
                    "representation": "storage",
                    "embeddedContent": [],
                    "_expandable": {"content": format!("/rest/api/content/{id}")},
                }),
            );
        } else {
            body_expandable.insert("storage".into(), json!(""));
        }
        body.insert("_expandable".into(), Value::Object(body_expandable));
        content.insert("body".into(), Value::Object(body));
    } else {
        expandable.insert("body".into(), json!(""));
    }
    if expansions.has("children") {
        let mut children = Map::new();
        let mut children_expandable = Map::new();
        children_expandable.insert(
            "attachment".into(),
            json!(format!("/rest/api/content/{id}/child/attachment")),
        );
        children_expandable.insert(
            "comment".into(),
            json!(format!("/rest/api/content/{id}/child/comment")),
        );
        if expansions.has("children.page") {
            let child_ids = state.store.children(id);
            let first: Vec<Value> = child_ids
                .iter()
                .take(DEFAULT_LIMIT)
                .filter_map(|&child| state.store.page(child))
                .map(|child| content_json(shared, state, child, &Expansions::default(), false))
                .collect();
            let mut links = Map::new();
            links.insert(
                "self".into(),
                json!(format!("{base}/rest/api/content/{id}/child/page")),
            );
            if child_ids.len() > DEFAULT_LIMIT {
                links.insert(
                    "next".into(),
                    json!(format!("/rest/api/content/{id}/child/page?limit={DEFAULT_LIMIT}&start={DEFAULT_LIMIT}")),
                );
            }
            children.insert(
                "page".into(),
                json!({"results": first, "start": 0, "limit": DEFAULT_LIMIT, "size": first.len(), "_links": links}),
            );
        } else {
            children_expandable.insert(
                "page".into(),
                json!(format!("/rest/api/content/{id}/child/page")),
            );
        }
        children.insert(
            "_links".into(),
            json!({"self": format!("{base}/rest/api/content/{id}/child")}),
        );
        children.insert("_expandable".into(), Value::Object(children_expandable));
        content.insert("children".into(), Value::Object(children));
    } else {
        expandable.insert(
            "children".into(),
            json!(format!("/rest/api/content/{id}/child")),
        );
    }
    content.insert("extensions".into(), json!({"position": page.position}));
    content.insert("_expandable".into(), Value::Object(expandable));
    let webui = match shared.settings.deployment {
        Deployment::Cloud => format!(
            "/spaces/{}/pages/{id}/{}",
            page.space_key,
            form_urlencoded::byte_serialize(page.title.as_bytes()).collect::<String>()
        ),
        Deployment::DataCenter => format!("/pages/viewpage.action?pageId={id}"),
    };
    let mut links = Map::new();
    links.insert("webui".into(), json!(webui));
    links.insert(
        "self".into(),
        json!(format!("{base}/rest/api/content/{id}")),
    );
    if top_level {
        links.insert("base".into(), json!(base));
        links.insert("context".into(), json!(shared.context));
        links.insert("collection".into(), json!("/rest/api/content"));
    }
    content.insert("_links".into(), Value::Object(links));
    Value::Object(content)
}

fn space_json(shared: &Shared, space: &super::store::Space) -> Value {
    let webui = match shared.settings.deployment {
        Deployment::Cloud => format!("/spaces/{}", space.key),
        Deployment::DataCenter => format!("/display/{}", space.key),
    };
    json!({
        "id": space.id,
        "key": space.key,
        "name": space.name,
        "type": "global",
        "status": "current",
        "_links": {"webui": webui, "self": format!("{}/rest/api/space/{}", shared.base, space.key)},
        "_expandable": {
            "homepage": "",
            "description": "",
            "metadata": "",
            "settings": format!("/rest/api/space/{}/settings", space.key),
        },
    })
}

fn user_json(deployment: Deployment) -> Value {
    match deployment {
        Deployment::Cloud => {
            json!({"type": "known", "accountId": "557058:simulator", "displayName": "Simulator"})
        }
        Deployment::DataCenter => {
            json!({"type": "known", "username": "simulator", "userKey": "simulator", "displayName": "Simulator"})
        }
    }
}

/// The error body each deployment and API sends (CONFLUENCE.md §4).
fn error_response(shared: &Shared, failure: &Failure, api: Api) -> HttpResponse {
    let status = failure.status;
    if api == Api::V2 {
        return json_response(status, &v2::error_body(failure));
    }
    let body = match shared.settings.deployment {
        Deployment::DataCenter => json!({
            "statusCode": status.as_u16(),
            "data": {
                "authorized": !matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "valid": true,
                "allowedInReadOnlyMode": true,
                "errors": [],
                "successful": false,
            },
            "message": failure.message,
            "reason": status.canonical_reason().unwrap_or(""),
        }),
        Deployment::Cloud => {
            let class = match status {
                StatusCode::BAD_REQUEST => Some("BadRequestException"),
                StatusCode::CONFLICT => Some("ConflictException"),
                StatusCode::GONE => Some("GoneException"),
                StatusCode::FORBIDDEN => Some("PermissionException"),
                _ => None,
            };
            let message = match class {
                Some(class) => format!(
                    "com.atlassian.confluence.api.service.exceptions.{class}: {}",
                    failure.message
                ),
                None => failure.message.clone(),
            };
            json!({
                "statusCode": status.as_u16(),
                "data": {
                    "authorized": !matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                    "valid": true,
                    "errors": [],
                    "successful": false,
                },
                "message": message,
            })
        }
    };
    json_response(status, &body)
}

/// Data Center names the authenticated user in `X-AUSERNAME` (`anonymous` when credentials were ignored).
fn stamp_username(response: &mut HttpResponse, caller: &Caller) {
    if let Ok(value) = HeaderValue::from_str(&caller.username) {
        response.headers_mut().insert("x-ausername", value);
    }
}

/// DC answers bad credentials with a plain-text 401, Cloud v1 with a 403, and v2 with a 404 that
/// looks like any missing resource (CONFLUENCE.md §4).
fn auth_failure(shared: &Shared, api: Api) -> HttpResponse {
    if api == Api::V2 {
        return error_response(shared, &Failure::not_found("Not Found"), api);
    }
    match shared.settings.deployment {
        Deployment::DataCenter => {
            let mut response = text_response(
                StatusCode::UNAUTHORIZED,
                "text/plain;charset=UTF-8",
                "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED",
            );
            response
                .headers_mut()
                .insert("x-ausername", HeaderValue::from_static("anonymous"));
            response
        }
        Deployment::Cloud => error_response(
            shared,
            &Failure {
                status: StatusCode::FORBIDDEN,
                message: "Current user not permitted to use Confluence".into(),
            },
            api,
        ),
    }
}

/// An injected fault: HTML for proxy-style 502/503/504, Confluence JSON otherwise, plus rate-limit headers.
fn fault_response(shared: &Shared, fault: InjectedFault, api: Api) -> HttpResponse {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = if matches!(status.as_u16(), 502..=504) {
        let page = format!(
            "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>",
            code = status.as_u16()
        );
        text_response(status, "text/html;charset=UTF-8", &page)
    } else {
        error_response(
            shared,
            &Failure {
                status,
                message: injected_message(status),
            },
            api,
        )
    };
    let headers = response.headers_mut();
    if let Some(seconds) = fault.retry_after_seconds {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("100"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        match shared.settings.deployment {
            Deployment::Cloud => {
                let reset =
                    SystemTime::now() + Duration::from_secs(fault.retry_after_seconds.unwrap_or(0));
                if let Ok(value) = HeaderValue::from_str(&iso8601(reset)) {
                    headers.insert("x-ratelimit-reset", value);
                }
                headers.insert(
                    "ratelimit-reason",
                    HeaderValue::from_static("confluence-burst-based"),
                );
            }
            Deployment::DataCenter => {
                headers.insert(
                    "x-ratelimit-interval-seconds",
                    HeaderValue::from_static("1"),
                );
                headers.insert("x-ratelimit-fillrate", HeaderValue::from_static("10"));
            }
        }
    }
    response
}

/// The message of an injected JSON fault; a 409 imitates Cloud's transient optimistic-lock failure.
fn injected_message(status: StatusCode) -> String {
    match status {
        StatusCode::CONFLICT => {
            "javax.persistence.OptimisticLockException: Batch update returned unexpected \
             row count from update [0]; actual row count: 0; expected: 1"
                .to_owned()
        }
        StatusCode::TOO_MANY_REQUESTS => "Rate limit exceeded".to_owned(),
        other => format!(
            "Injected fault: {}",
            other.canonical_reason().unwrap_or("error")
        ),
    }
}

fn json_ok(body: Value) -> HttpResponse {
    json_response(StatusCode::OK, &body)
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    text_response(status, "application/json;charset=UTF-8", &body.to_string())
}

fn text_response(status: StatusCode, content_type: &'static str, body: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Which context a request path uses: the site's (`/wiki` on Cloud, empty on DC), or, on Cloud, the
/// API gateway's `/ex/confluence/<cloudId>/wiki`. Returns the context and whether it is the gateway.
fn request_context<'s>(shared: &'s Shared, path: &str) -> (&'s str, bool) {
    let gateway = shared.gateway_context.as_str();
    if shared.settings.deployment == Deployment::Cloud
        && path
            .strip_prefix(gateway)
            .is_some_and(|rest| rest.starts_with('/'))
    {
        return (gateway, true);
    }
    (shared.context, path.starts_with("/ex/"))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form Confluence uses for `when`, `createdDate` and `createdAt`.
fn iso8601(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time.max(UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_like_confluence() {
        let check = |seconds: u64, expected: &str| {
            assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(seconds)), expected);
        };
        check(0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, "2000-02-29T00:00:00.000Z");
        check(1_798_502_400 + 3_661, "2026-12-29T01:01:01.000Z");
    }

    #[test]
    fn routes_parse_under_the_context() {
        let check = |method: Method, path: &str, context: &str, expected: Route| {
            assert_eq!(
                Route::parse(&method, path, context, context == "/wiki"),
                expected,
                "{method} {path}"
            );
        };
        check(
            Method::GET,
            "/wiki/rest/api/content",
            "/wiki",
            Route::ContentCollection,
        );
        check(Method::GET, "/rest/api/content", "/wiki", Route::Unrouted);
        check(
            Method::GET,
            "/wikiX/rest/api/content",
            "/wiki",
            Route::Unrouted,
        );
        check(Method::GET, "/rest/api/content/search", "", Route::Search);
        check(
            Method::DELETE,
            "/rest/api/content/12",
            "",
            Route::Content("12".into()),
        );
        check(Method::POST, "/rest/api/content/12", "", Route::Unrouted);
        check(
            Method::PUT,
            "/wiki/api/v2/pages/12/title",
            "/wiki",
            Route::V2(v2::V2Route::PageTitle("12".into())),
        );
        check(
            Method::GET,
            "/ex/confluence/c/wiki/api/v2/folders/7/direct-children",
            "/ex/confluence/c/wiki",
            Route::Unrouted,
        );
        check(Method::GET, "/api/v2/pages", "", Route::Unrouted);
        check(
            Method::PATCH,
            "/wiki/api/v2/pages",
            "/wiki",
            Route::Unrouted,
        );
        check(
            Method::PUT,
            "/wiki/rest/api/content/1/move/append/2",
            "/wiki",
            Route::Move {
                id: "1".into(),
                position: "append".into(),
                target: "2".into(),
            },
        );
        check(
            Method::GET,
            "/rest/api/space/DOCS/",
            "",
            Route::Space("DOCS".into()),
        );
    }
}
