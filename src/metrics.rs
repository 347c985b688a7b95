//! Prometheus metrics: the recorder, the metric names deploy alerts rely on, the per-request context
//! (endpoint label, upstream-call count) that upstream calls report into, and the scrape that hides
//! endpoints no longer loaded.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use http::Method;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::config::{ConfigStore, ReloadReport, TenantTable};
use crate::http::router::{self, Target};
use crate::ratelimit::LimitKind;

/// Requests answered: `endpoint`, `route`, `method`, `status`.
pub const HTTP_REQUESTS: &str = "conflagent_http_requests_total";
/// Request latency histogram: `endpoint`, `route`, `method`.
pub const HTTP_DURATION: &str = "conflagent_http_request_duration_seconds";
/// Requests being served: `endpoint`.
pub const HTTP_IN_FLIGHT: &str = "conflagent_http_requests_in_flight";
/// Calls to Confluence: `endpoint`, `operation`, `outcome` (`ok`, `error`, `timeout`).
pub const UPSTREAM_REQUESTS: &str = "conflagent_upstream_requests_total";
/// Latency of calls to Confluence: `endpoint`, `operation`.
pub const UPSTREAM_DURATION: &str = "conflagent_upstream_request_duration_seconds";
/// Retried calls to Confluence: `endpoint`, `operation`.
pub const UPSTREAM_RETRIES: &str = "conflagent_upstream_retries_total";
/// Requests refused with 429: `endpoint`, `kind` (`quota`, `auth`, `public`).
pub const RATE_LIMITED: &str = "conflagent_rate_limited_total";
/// Budget checks answered from the local budget because Redis was down, failed or too slow:
/// `reason` (`down`, `error`, `timeout`).
pub const RATELIMIT_BACKEND_FALLBACKS: &str = "conflagent_ratelimit_backend_fallbacks_total";
/// Config changes applied (`result="success"`) or file contents rejected (`result="failure"`).
pub const CONFIG_RELOADS: &str = "conflagent_config_reloads_total";
/// Unix time of the last successful config load.
pub const CONFIG_LAST_SUCCESS: &str = "conflagent_config_last_reload_success_timestamp_seconds";
/// Endpoints being served.
pub const ENDPOINTS_LOADED: &str = "conflagent_endpoints_loaded";
/// Always 1, labelled with the `version`.
pub const BUILD_INFO: &str = "conflagent_build_info";

/// Histogram buckets in seconds, up to the longest upstream deadline a request can wait for.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0,
];

/// How long a series may go unchanged before the recorder forgets it, so series of removed
/// endpoints (and stale label combinations) do not pile up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The route label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
static LAST_RELOAD_SUCCESS: AtomicU64 = AtomicU64::new(0);

/// Installs the process-wide Prometheus recorder, once; later calls return the same handle (tests
/// share one recorder per process).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = builder()?.install_recorder()?;
    describe();
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The exporter configuration: histograms (not summaries) with [`DURATION_BUCKETS`], and idle
/// series dropped after [`IDLE_TIMEOUT`].
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_owned()), &DURATION_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(UPSTREAM_DURATION.to_owned()),
            &DURATION_BUCKETS,
        )
        .map(|builder| builder.idle_timeout(MetricKindMask::ALL, Some(IDLE_TIMEOUT)))
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by endpoint, route template and status"
    );
    describe_histogram!(HTTP_DURATION, "Time to answer a request, in seconds");
    describe_gauge!(HTTP_IN_FLIGHT, "Requests being served right now");
    describe_counter!(UPSTREAM_REQUESTS, "Calls to Confluence, by outcome");
    describe_histogram!(
        UPSTREAM_DURATION,
        "Time of one call to Confluence, in seconds"
    );
    describe_counter!(UPSTREAM_RETRIES, "Calls to Confluence that were retried");
    describe_counter!(RATE_LIMITED, "Requests refused with 429, by budget");
    describe_counter!(
        RATELIMIT_BACKEND_FALLBACKS,
        "Budget checks answered locally because Redis was down, failed or too slow"
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Config changes applied (success) and endpoint file contents rejected (failure)"
    );
    describe_gauge!(
        CONFIG_LAST_SUCCESS,
        "Unix time of the last successful config load"
    );
    describe_gauge!(ENDPOINTS_LOADED, "Endpoints being served");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label says which build runs"
    );
}

/// Wraps `render` into the `/metrics` scrape: process-wide gauges are refreshed first (so the idle
/// timeout never drops them), and series of endpoints that are no longer loaded are left out.
pub fn scrape(
    store: Arc<ConfigStore>,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let table = store.table();
        refresh_process_gauges(table.len());
        only_loaded_endpoints(&render(), &table)
    })
}

fn refresh_process_gauges(endpoints_loaded: usize) {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(ENDPOINTS_LOADED).set(endpoints_loaded as f64);
    let last_success = LAST_RELOAD_SUCCESS.load(Ordering::Relaxed);
    if last_success > 0 {
        gauge!(CONFIG_LAST_SUCCESS).set(last_success as f64);
    }
    // Touching the counters keeps both series present from the start, so the first failure is
    // an increase Prometheus can see.
    counter!(CONFIG_RELOADS, "result" => "success").increment(0);
    counter!(CONFIG_RELOADS, "result" => "failure").increment(0);
}

/// Drops the samples whose `endpoint` label names an endpoint not in `table`, and the headers of
/// families left without samples.
fn only_loaded_endpoints(text: &str, table: &TenantTable) -> String {
    let mut out = String::with_capacity(text.len());
    let mut headers: Vec<&str> = Vec::new();
    let mut in_samples = false;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if in_samples {
                headers.clear();
                in_samples = false;
            }
            headers.push(line);
            continue;
        }
        in_samples = true;
        let live =
            endpoint_label(line).is_none_or(|name| name.is_empty() || table.get(name).is_some());
        if !live {
            continue;
        }
        for header in headers.drain(..) {
            out.push_str(header);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The value of the `endpoint` label of a sample line. Endpoint names need no escaping.
fn endpoint_label(line: &str) -> Option<&str> {
    let labels = &line[line.find('{')?..];
    let start = labels
        .find("{endpoint=\"")
        .map(|at| at + "{endpoint=\"".len())
        .or_else(|| {
            labels
                .find(",endpoint=\"")
                .map(|at| at + ",endpoint=\"".len())
        })?;
    let value = &labels[start..];
    value.find('"').map(|end| &value[..end])
}

/// Counts what a config load or rescan did: one success per change applied, one failure per newly
/// rejected file content (the same bad content is not counted again on the next rescan).
pub fn config_reloaded(report: &ReloadReport) {
    if !report.failed.is_empty() {
        counter!(CONFIG_RELOADS, "result" => "failure").increment(report.failed.len() as u64);
    }
    if report.changed_anything() {
        counter!(CONFIG_RELOADS, "result" => "success").increment(1);
        mark_reload_success();
    }
    gauge!(ENDPOINTS_LOADED).set(report.loaded as f64);
}

/// Records that config was loaded successfully now (the initial load, or a change applied).
pub fn mark_reload_success() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    LAST_RELOAD_SUCCESS.store(now, Ordering::Relaxed);
    gauge!(CONFIG_LAST_SUCCESS).set(now as f64);
}

/// The labels of one request, from the route table: never a raw path, a title or an endpoint name
/// that is not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabels {
    /// The endpoint name, or `""` for top-level routes and unknown endpoints.
    pub endpoint: String,
    /// The route template (`/pages/{title}`), or [`UNMATCHED`].
    pub route: &'static str,
    /// The method, or `OTHER` for methods no route uses.
    pub method: &'static str,
}

impl RequestLabels {
    /// The labels of a request with `method` to `endpoint` (a loaded endpoint's name or `""`),
    /// served by `route` (the template recorded while serving it, or [`UNMATCHED`]).
    pub fn new(endpoint: String, route: &'static str, method: &Method) -> RequestLabels {
        RequestLabels {
            endpoint,
            route,
            method: method_label(method),
        }
    }
}

/// The `endpoint` label of a request to `path`: the endpoint's name when it is loaded, else `""`
/// (top-level routes, and names a client invented, which must not create series).
pub fn request_endpoint(table: &TenantTable, path: &str) -> String {
    match router::target(path) {
        Target::Endpoint { name, .. } if table.get(name).is_some() => name.to_owned(),
        _ => String::new(),
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// What one request shares with the code that serves it: its endpoint label, the route that served
/// it, and how many calls to Confluence it made.
#[derive(Debug, Default)]
pub struct RequestContext {
    endpoint: String,
    route: OnceLock<&'static str>,
    upstream_calls: AtomicU32,
}

impl RequestContext {
    /// The context of a request to `endpoint` (`""` when none).
    pub fn new(endpoint: &str) -> RequestContext {
        RequestContext {
            endpoint: endpoint.to_owned(),
            route: OnceLock::new(),
            upstream_calls: AtomicU32::new(0),
        }
    }

    /// The route template that served the request, or [`UNMATCHED`] when none matched.
    pub fn route(&self) -> &'static str {
        self.route.get().copied().unwrap_or(UNMATCHED)
    }

    /// Calls to Confluence made so far.
    pub fn upstream_calls(&self) -> u32 {
        self.upstream_calls.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs `future` (the handling of one request) with `context` as its request context. Work spawned
/// onto other tasks does not inherit it.
pub async fn scope<F: Future>(context: Arc<RequestContext>, future: F) -> F::Output {
    REQUEST.scope(context, future).await
}

/// Records the route template serving the current request: routing happens once, and the labels
/// reuse its result.
pub fn record_route(route: &'static str) {
    let _ = REQUEST.try_with(|context| context.route.set(route));
}

fn current_endpoint() -> String {
    REQUEST
        .try_with(|context| context.endpoint.clone())
        .unwrap_or_default()
}

/// Records one call to Confluence for the current request's endpoint: `outcome` is `ok`, `error` or
/// `timeout`. The Confluence client calls this for every attempt.
pub fn upstream_request(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    let endpoint = REQUEST
        .try_with(|context| {
            context.upstream_calls.fetch_add(1, Ordering::Relaxed);
            context.endpoint.clone()
        })
        .unwrap_or_default();
    counter!(UPSTREAM_REQUESTS, "endpoint" => endpoint.clone(), "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!(UPSTREAM_DURATION, "endpoint" => endpoint, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// Records that a call to Confluence is being retried, for the current request's endpoint.
pub fn upstream_retry(operation: &'static str) {
    counter!(UPSTREAM_RETRIES, "endpoint" => current_endpoint(), "operation" => operation)
        .increment(1);
}

/// Counts a request refused by the `kind` budget of the current request's endpoint.
pub fn rate_limited(kind: LimitKind) {
    counter!(RATE_LIMITED, "endpoint" => current_endpoint(), "kind" => kind.as_str()).increment(1);
}

/// Counts a budget check answered from the local budget instead of Redis, for `reason`.
pub fn ratelimit_backend_fallback(reason: &'static str) {
    counter!(RATELIMIT_BACKEND_FALLBACKS, "reason" => reason).increment(1);
}

/// A request being served: counted in flight from creation until dropped, whatever happens to it.
pub struct InFlight {
    endpoint: String,
}

impl InFlight {
    /// Counts a request to `endpoint` in flight.
    pub fn start(endpoint: &str) -> InFlight {
        gauge!(HTTP_IN_FLIGHT, "endpoint" => endpoint.to_owned()).increment(1.0);
        InFlight {
            endpoint: endpoint.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(HTTP_IN_FLIGHT, "endpoint" => self.endpoint.clone()).decrement(1.0);
    }
}

/// Counts an answered request and its duration.
pub fn request_answered(labels: &RequestLabels, status: u16, elapsed: Duration) {
    counter!(
        HTTP_REQUESTS,
        "endpoint" => labels.endpoint.clone(),
        "route" => labels.route,
        "method" => labels.method,
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(
        HTTP_DURATION,
        "endpoint" => labels.endpoint.clone(),
        "route" => labels.route,
        "method" => labels.method
    )
    .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::FileProblems;

    fn bad_file() -> FileProblems {
        FileProblems {
            path: "conflagent.bad.properties".into(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn reloads_count_changes_and_newly_rejected_files_only() {
        let recorder = builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            config_reloaded(&ReloadReport {
                added: vec!["docs".to_owned()],
                loaded: 1,
                ..ReloadReport::default()
            });
            config_reloaded(&ReloadReport {
                failed: vec![bad_file()],
                loaded: 1,
                ..ReloadReport::default()
            });
            // A periodic rescan of the same bad content reports nothing new.
            config_reloaded(&ReloadReport {
                loaded: 1,
                ..ReloadReport::default()
            });
        });
        let text = handle.render();
        assert!(
            text.contains("conflagent_config_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("conflagent_config_reloads_total{result=\"failure\"} 1"),
            "{text}"
        );
        assert!(text.contains("conflagent_endpoints_loaded 1"), "{text}");
        assert!(
            text.contains("conflagent_config_last_reload_success_timestamp_seconds "),
            "{text}"
        );
    }

    #[test]
    fn endpoint_label_is_read_from_any_position() {
        fn check(line: &str, expected: Option<&str>) {
            assert_eq!(endpoint_label(line), expected, "{line}");
        }
        check(
            "x_total{endpoint=\"docs\",route=\"/health\"} 1",
            Some("docs"),
        );
        check("x_total{kind=\"auth\",endpoint=\"docs\"} 1", Some("docs"));
        check("x_total{endpoint=\"\"} 1", Some(""));
        check("x_total{old_endpoint=\"docs\"} 1", None);
        check("x_total 1", None);
        check("conflagent_endpoints_loaded 3", None);
    }
}
