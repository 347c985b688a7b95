//! Prometheus metrics: the recorder, the metric names deploy alerts rely on, the per-request context
//! (endpoint label, upstream-call count) that upstream calls report into, and the scrape that hides
//! endpoints no longer loaded. A leaf: callers pass plain values, so it imports nothing of the
//! product.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use http::Method;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

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
/// Set once the process-wide recorder is installed: only its series are worth keeping handles to.
static GLOBAL_RECORDER: AtomicBool = AtomicBool::new(false);
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
    GLOBAL_RECORDER.store(true, Ordering::Release);
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

/// The `/metrics` scrape: process-wide gauges are refreshed first (so the idle timeout never drops
/// them), then `render` renders the recorder, and series of endpoints for which `is_loaded` is false
/// are left out.
pub fn scrape(
    render: &dyn Fn() -> String,
    endpoints_loaded: usize,
    is_loaded: impl Fn(&str) -> bool,
) -> String {
    refresh_process_gauges(endpoints_loaded);
    only_loaded_endpoints(&render(), is_loaded)
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

/// Drops the samples whose `endpoint` label names an endpoint that is not loaded, and the headers of
/// families left without samples.
fn only_loaded_endpoints(text: &str, is_loaded: impl Fn(&str) -> bool) -> String {
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
        let live = endpoint_label(line).is_none_or(|name| name.is_empty() || is_loaded(name));
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

/// Counts what a config load or rescan did: one success when it changed what is served, one
/// failure per newly rejected file content (`newly_rejected`; the same bad content is not counted
/// again on the next rescan), and the endpoints now `loaded`.
pub fn config_reloaded(newly_rejected: usize, changed_anything: bool, loaded: usize) {
    if newly_rejected > 0 {
        counter!(CONFIG_RELOADS, "result" => "failure").increment(newly_rejected as u64);
    }
    if changed_anything {
        counter!(CONFIG_RELOADS, "result" => "success").increment(1);
        mark_reload_success();
    }
    gauge!(ENDPOINTS_LOADED).set(loaded as f64);
}

/// Records that config was loaded successfully now (the initial load, or a change applied).
pub fn mark_reload_success() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    LAST_RELOAD_SUCCESS.store(now, Ordering::Relaxed);
    gauge!(CONFIG_LAST_SUCCESS).set(now as f64);
}

/// A label value that clones without allocating (an endpoint name, shared by every series of the
/// endpoint).
pub type LabelValue = ::metrics::SharedString;

/// The `endpoint` label value of `name`; build it once per endpoint and clone it per request.
pub fn endpoint_label_value(name: &str) -> LabelValue {
    LabelValue::from_shared(Arc::from(name))
}

/// The `endpoint` label of requests that belong to no loaded endpoint.
pub const NO_ENDPOINT: LabelValue = LabelValue::const_str("");

/// The labels of one request, from the route table: never a raw path, a title or an endpoint name
/// that is not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabels {
    /// The endpoint name, or `""` for top-level routes and unknown endpoints.
    pub endpoint: LabelValue,
    /// The route template (`/pages/{title}`), or [`UNMATCHED`].
    pub route: &'static str,
    /// The method, or `OTHER` for methods no route uses.
    pub method: &'static str,
    /// The MCP tool a request called (a known operationId), on the `/mcp` route only.
    pub tool: Option<&'static str>,
}

impl RequestLabels {
    /// The labels of a request with `method` to `endpoint` (a loaded endpoint's name or `""`),
    /// served by `route` (the template recorded while serving it, or [`UNMATCHED`]).
    pub fn new(endpoint: LabelValue, route: &'static str, method: &Method) -> RequestLabels {
        RequestLabels {
            endpoint,
            route,
            method: method_label(method),
            tool: None,
        }
    }

    /// The same labels with the MCP tool the request called, when it called one.
    pub fn with_tool(self, tool: Option<&'static str>) -> RequestLabels {
        RequestLabels { tool, ..self }
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

/// What one request shares with the code that serves it: its endpoint label, how many calls to
/// Confluence it made and, for an MCP request, the tool it called and the status its outcome stands
/// for.
#[derive(Debug, Default)]
pub struct RequestContext {
    endpoint: LabelValue,
    upstream_calls: AtomicU32,
    tool: OnceLock<&'static str>,
    outcome_status: AtomicU16,
}

impl RequestContext {
    /// The context of a request to `endpoint` (`""` when none).
    pub fn new(endpoint: LabelValue) -> RequestContext {
        RequestContext {
            endpoint,
            upstream_calls: AtomicU32::new(0),
            tool: OnceLock::new(),
            outcome_status: AtomicU16::new(0),
        }
    }

    /// Calls to Confluence made so far.
    pub fn upstream_calls(&self) -> u32 {
        self.upstream_calls.load(Ordering::Relaxed)
    }

    /// The MCP tool the request called, if any.
    pub fn tool(&self) -> Option<&'static str> {
        self.tool.get().copied()
    }

    /// The status the request's outcome stands for when it differs from the response's (an MCP
    /// tool error answered inside a 200), else `None`.
    pub fn outcome_status(&self) -> Option<u16> {
        match self.outcome_status.load(Ordering::Relaxed) {
            0 => None,
            status => Some(status),
        }
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs `future` (the handling of one request) with `context` as its request context. Work spawned
/// onto other tasks does not inherit it.
pub fn scope<F: Future>(
    context: Arc<RequestContext>,
    future: F,
) -> impl Future<Output = F::Output> {
    // Not an `async fn`: its state would hold `future` twice, once as the argument and once inside
    // the scope, and requests move that state at every await.
    REQUEST.scope(context, future)
}

fn current_endpoint() -> LabelValue {
    REQUEST
        .try_with(|context| context.endpoint.clone())
        .unwrap_or_default()
}

/// Records one call to Confluence for the current request's endpoint: `outcome` is one of the
/// outcome labels (`ok`, `not_found`, `rejected`, …, `timeout`).
pub fn upstream_request(operation: &'static str, outcome: &'static str, elapsed: Duration) {
    let endpoint = current_endpoint();
    counter!(UPSTREAM_REQUESTS, "endpoint" => endpoint.clone(), "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!(UPSTREAM_DURATION, "endpoint" => endpoint, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// Records the MCP tool the current request calls. Only operationIds of the route table are
/// passed, so the label's values are bounded.
pub fn called_tool(tool: &'static str) {
    let _ = REQUEST.try_with(|context| context.tool.set(tool));
}

/// Records the status the current request's outcome stands for, when its response says 200 for a
/// failure (an MCP tool error or JSON-RPC error): metrics and the log line count it as that status.
pub fn outcome_status(status: u16) {
    let _ = REQUEST.try_with(|context| context.outcome_status.store(status, Ordering::Relaxed));
}

/// One call to Confluence in flight for the current request. It counts in the request's
/// `upstream_calls` as soon as it is sent; its outcome is recorded when it finishes, or as
/// `timeout` when it is abandoned (the request's deadline passed while it was in flight).
pub struct UpstreamCall {
    operation: &'static str,
    started: tokio::time::Instant,
    finished: bool,
}

impl UpstreamCall {
    /// A call of `operation` being sent now.
    pub fn start(operation: &'static str) -> UpstreamCall {
        let _ = REQUEST.try_with(|context| {
            context.upstream_calls.fetch_add(1, Ordering::Relaxed);
        });
        UpstreamCall {
            operation,
            started: tokio::time::Instant::now(),
            finished: false,
        }
    }

    /// Records the call's `outcome`; returns how long it took.
    pub fn finish(mut self, outcome: &'static str) -> Duration {
        self.finished = true;
        let elapsed = self.started.elapsed();
        upstream_request(self.operation, outcome, elapsed);
        elapsed
    }
}

impl Drop for UpstreamCall {
    fn drop(&mut self) {
        if !self.finished {
            upstream_request(self.operation, "timeout", self.started.elapsed());
        }
    }
}

/// Records that a call to Confluence is being retried, for the current request's endpoint.
pub fn upstream_retry(operation: &'static str) {
    counter!(UPSTREAM_RETRIES, "endpoint" => current_endpoint(), "operation" => operation)
        .increment(1);
}

/// Counts a request refused by the `kind` budget (`quota`, `auth`, `public`) of `endpoint`.
pub fn rate_limited(endpoint: &LabelValue, kind: &'static str) {
    counter!(RATE_LIMITED, "endpoint" => endpoint.clone(), "kind" => kind).increment(1);
}

/// Counts a budget check answered from the local budget instead of Redis, for `reason`.
pub fn ratelimit_backend_fallback(reason: &'static str) {
    counter!(RATELIMIT_BACKEND_FALLBACKS, "reason" => reason).increment(1);
}

/// A request being served: counted in flight from creation until dropped, whatever happens to it.
pub struct InFlight {
    gauge: Gauge,
}

impl InFlight {
    /// Counts a request to `endpoint` in flight.
    pub fn start(endpoint: &LabelValue) -> InFlight {
        let gauge = cached(
            &IN_FLIGHT_GAUGES,
            endpoint.clone(),
            || gauge!(HTTP_IN_FLIGHT, "endpoint" => endpoint.clone()),
        );
        gauge.increment(1.0);
        InFlight { gauge }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// The label values that name the request counter and duration histogram a request updates.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestSeriesKey {
    endpoint: LabelValue,
    route: &'static str,
    method: &'static str,
    status: u16,
    tool: Option<&'static str>,
}

/// Handles to the request counter and duration histogram of one [`RequestSeriesKey`].
#[derive(Clone)]
struct RequestSeries {
    requests: Counter,
    duration: Histogram,
}

/// How long a thread keeps using a handle before it asks the registry again: well within
/// [`IDLE_TIMEOUT`], so that a handle is only used while its series is certainly registered (the
/// recorder forgets series idle that long; a handle to a forgotten series would count into the
/// void). A handle is updated as soon as it is fetched, so its series is never idle at that time.
const SERIES_REFRESH: Duration = Duration::from_secs(60);
/// The most handles one thread keeps of one kind; past that it starts afresh.
const MAX_CACHED_SERIES: usize = 4096;

/// One thread's handles of one kind, each with the time it was fetched from the registry.
type HandleCache<K, V> = RefCell<HashMap<K, (V, Instant), foldhash::fast::RandomState>>;

thread_local! {
    /// Each thread's handles to the series it updated recently, so that a request updates its
    /// series without building label sets and looking them up in the registry.
    static REQUEST_SERIES: HandleCache<RequestSeriesKey, RequestSeries> =
        RefCell::new(HashMap::default());
    static IN_FLIGHT_GAUGES: HandleCache<LabelValue, Gauge> = RefCell::new(HashMap::default());
}

/// The handle for `key`, from this thread's `cache` while fresh, else fetched by `register`.
fn cached<K, V>(
    cache: &'static std::thread::LocalKey<HandleCache<K, V>>,
    key: K,
    register: impl FnOnce() -> V,
) -> V
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    if !GLOBAL_RECORDER.load(Ordering::Acquire) {
        // Before the process-wide recorder exists (or in tests that record into a local one), no
        // handle may outlive the recorder it came from.
        return register();
    }
    let now = Instant::now();
    cache.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((handle, fetched)) = cache.get(&key)
            && now.duration_since(*fetched) < SERIES_REFRESH
        {
            return handle.clone();
        }
        if cache.len() >= MAX_CACHED_SERIES {
            cache.clear();
        }
        let handle = register();
        cache.insert(key, (handle.clone(), now));
        handle
    })
}

/// The `status` label: a static string for the statuses the gateway answers, so counting a request
/// allocates nothing for it.
fn status_label(status: u16) -> LabelValue {
    let known = match status {
        200 => "200",
        202 => "202",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        431 => "431",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return LabelValue::from_owned(other.to_string()),
    };
    LabelValue::const_str(known)
}

/// Counts an answered request and its duration.
pub fn request_answered(labels: &RequestLabels, status: u16, elapsed: Duration) {
    let key = RequestSeriesKey {
        endpoint: labels.endpoint.clone(),
        route: labels.route,
        method: labels.method,
        status,
        tool: labels.tool,
    };
    let series = cached(&REQUEST_SERIES, key, || {
        register_request_series(labels, status)
    });
    series.requests.increment(1);
    series.duration.record(elapsed.as_secs_f64());
}

/// Looks up (or registers) the request counter and duration histogram of `labels` and `status`.
fn register_request_series(labels: &RequestLabels, status: u16) -> RequestSeries {
    let (requests, duration) = match labels.tool {
        Some(tool) => (
            counter!(
                HTTP_REQUESTS,
                "endpoint" => labels.endpoint.clone(),
                "route" => labels.route,
                "method" => labels.method,
                "status" => status_label(status),
                "tool" => tool
            ),
            histogram!(
                HTTP_DURATION,
                "endpoint" => labels.endpoint.clone(),
                "route" => labels.route,
                "method" => labels.method,
                "tool" => tool
            ),
        ),
        None => (
            counter!(
                HTTP_REQUESTS,
                "endpoint" => labels.endpoint.clone(),
                "route" => labels.route,
                "method" => labels.method,
                "status" => status_label(status)
            ),
            histogram!(
                HTTP_DURATION,
                "endpoint" => labels.endpoint.clone(),
                "route" => labels.route,
                "method" => labels.method
            ),
        ),
    };
    RequestSeries { requests, duration }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_count_changes_and_newly_rejected_files_only() {
        let recorder = builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            config_reloaded(0, true, 1);
            config_reloaded(1, false, 1);
            // A periodic rescan of the same bad content reports nothing new.
            config_reloaded(0, false, 1);
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
