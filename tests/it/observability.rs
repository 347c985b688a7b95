//! Rate limits, Prometheus metrics, request logs and readiness as an operator sees them. Every test
//! uses endpoint names of its own: the metrics recorder is shared by the whole test process.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use conflagent::endpoint::{self, EndpointStore, Shared};
use conflagent::ratelimit::LimitKind;
use conflagent::routes::ROUTES;
use conflagent::sim::{SimSettings, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Gateway, SECRET, endpoint_file, eventually};

const DEADLINE: Duration = Duration::from_secs(10);

/// A simulated Confluence that accepts the test endpoints' token, so authenticated requests get a
/// quick answer (a 404 for the missing root page) instead of waiting out connection retries.
async fn upstream() -> Simulator {
    let sim = Simulator::start(SimSettings::default())
        .await
        .expect("simulator");
    sim.add_bearer_token("upstream-token");
    sim
}

/// An endpoint file on `base` with a quota of `per_minute` and `burst`.
fn limited_file(base: &str, per_minute: u32, burst: u32) -> String {
    format!(
        "{}rate_limit_per_minute={per_minute}\nrate_limit_burst={burst}\n",
        endpoint_file(SECRET, base)
    )
}

/// GET `path` with an optional secret; returns status, `Retry-After` and the envelope.
async fn get(
    gateway: &Gateway,
    path: &str,
    secret: Option<&str>,
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = gateway.http.get(gateway.url(path));
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, response.json().await.expect("json"))
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// On paused time: the budget refills only when the test says so, however slow the machine.
#[tokio::test(start_paused = true)]
async fn spent_quota_is_429_with_retry_after_and_other_endpoints_are_unaffected() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[
        (
            "conflagent.rl-quota.properties",
            &limited_file(&base, 60, 2),
        ),
        (
            "conflagent.rl-neighbour.properties",
            &limited_file(&base, 60, 2),
        ),
    ])
    .await;
    for _ in 0..2 {
        let (status, _, _) = get(&gateway, "/endpoint/rl-quota/pages", Some(SECRET)).await;
        assert_ne!(status, 429);
    }
    let (status, retry_after, body) = get(&gateway, "/endpoint/rl-quota/pages", Some(SECRET)).await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["data"], serde_json::Value::Null);
    let retry_after = retry_after.expect("Retry-After header");
    let seconds: u64 = retry_after.parse().expect("whole seconds");
    assert!(
        (1..=1).contains(&seconds),
        "one request per second: {seconds}"
    );
    let message = body["message"].as_str().expect("message");
    assert!(message.contains(&format!("{seconds} seconds")), "{message}");

    let (status, _, _) = get(&gateway, "/endpoint/rl-neighbour/pages", Some(SECRET)).await;
    assert_ne!(status, 429, "each endpoint has its own budget");

    // The budget refills with time, and only with time.
    tokio::time::advance(Duration::from_secs(seconds)).await;
    let (status, _, _) = get(&gateway, "/endpoint/rl-quota/pages", Some(SECRET)).await;
    assert_ne!(status, 429, "a token is back after Retry-After");
    let (status, _, _) = get(&gateway, "/endpoint/rl-quota/pages", Some(SECRET)).await;
    assert_eq!(status, 429, "and only one");

    let scrape = gateway.scrape().await;
    assert_eq!(
        sample(
            &scrape,
            "conflagent_rate_limited_total",
            &[("endpoint", "rl-quota"), ("kind", "quota")]
        ),
        Some(2.0),
        "{scrape}"
    );
    gateway.stop().await;
}

/// On paused time: the budget refills only when the test says so, however slow the machine.
#[tokio::test(start_paused = true)]
async fn failed_authentications_run_out_but_the_right_secret_still_works() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[(
        "conflagent.rl-auth.properties",
        &limited_file(&base, 600, 50),
    )])
    .await;
    let wrong = Some("a-guess-0123456789abcdef");
    for attempt in 0..5 {
        let (status, _, _) = get(&gateway, "/endpoint/rl-auth/pages", wrong).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    for secret in [wrong, None] {
        let (status, retry_after, body) = get(&gateway, "/endpoint/rl-auth/pages", secret).await;
        assert_eq!(status, 429, "{secret:?}");
        assert_eq!(body["code"], "RATE_LIMITED");
        assert!(retry_after.is_some());
    }
    let (status, _, _) = get(&gateway, "/endpoint/rl-auth/pages", Some(SECRET)).await;
    assert!(
        status != 401 && status != 429,
        "right secret refused: {status}"
    );

    let scrape = gateway.scrape().await;
    assert_eq!(
        sample(
            &scrape,
            "conflagent_rate_limited_total",
            &[("endpoint", "rl-auth"), ("kind", "auth")]
        ),
        Some(2.0),
        "{scrape}"
    );
    gateway.stop().await;
}

/// On paused time: the budget refills only when the test says so, however slow the machine.
#[tokio::test(start_paused = true)]
async fn public_routes_have_their_own_generous_budget() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[(
        "conflagent.rl-public.properties",
        &limited_file(&base, 60, 1),
    )])
    .await;
    let mut refused_at = None;
    for count in 1..=150 {
        let (status, _, _) = get(&gateway, "/endpoint/rl-public/health", None).await;
        if status == 429 {
            refused_at = Some(count);
            break;
        }
        assert_eq!(status, 200);
    }
    let refused_at = refused_at.expect("health is limited too");
    assert!(
        refused_at > 100,
        "public burst is 100, refused at {refused_at}"
    );
    let (status, _, _) = get(&gateway, "/endpoint/rl-public/pages", Some(SECRET)).await;
    assert_ne!(status, 429, "the quota is untouched by public routes");
    gateway.stop().await;
}

/// On paused time: the budget refills only when the test says so, however slow the machine.
#[tokio::test(start_paused = true)]
async fn reload_resets_a_budget_only_when_its_quota_changes() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, content: &str| {
        crate::support::write_atomically(dir.path(), name, content);
    };
    write(
        "conflagent.rl-reload.properties",
        &limited_file(&base, 60, 2),
    );
    write(
        "conflagent.rl-other.properties",
        &limited_file(&base, 60, 2),
    );
    let (store, _) = endpoint::load(dir.path(), Shared::default()).expect("load");
    async fn spent(store: &EndpointStore) -> bool {
        let endpoint = std::sync::Arc::clone(store.table().get("rl-reload").expect("loaded"));
        endpoint.limits.spend(LimitKind::Quota).await.is_err()
    }
    let table = store.table();
    let endpoint = table.get("rl-reload").expect("loaded");
    for _ in 0..2 {
        endpoint
            .limits
            .spend(LimitKind::Quota)
            .await
            .expect("burst");
    }
    assert!(spent(&store).await);

    write(
        "conflagent.rl-other.properties",
        &limited_file(&base, 6000, 200),
    );
    store.rescan().expect("rescan");
    assert!(spent(&store).await, "another file's edit keeps the budget");

    let unrelated = format!("{}description=Team docs\n", limited_file(&base, 60, 2));
    write("conflagent.rl-reload.properties", &unrelated);
    let report = store.rescan().expect("rescan");
    assert_eq!(report.changed, ["rl-reload"]);
    assert!(
        spent(&store).await,
        "an unrelated key's edit keeps the budget"
    );

    write(
        "conflagent.rl-reload.properties",
        &limited_file(&base, 60, 3),
    );
    store.rescan().expect("rescan");
    assert!(
        !spent(&store).await,
        "a new quota starts with a full budget"
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[(
        "conflagent.m-labels.properties",
        &limited_file(&base, 600, 100),
    )])
    .await;
    get(&gateway, "/endpoint/m-labels/health", None).await;
    get(
        &gateway,
        "/endpoint/m-labels/pages/Secret%20Plans/children",
        Some(SECRET),
    )
    .await;
    get(&gateway, "/endpoint/m-labels/no-such-route", None).await;
    get(&gateway, "/endpoint/m-never-loaded/health", None).await;
    let response = gateway
        .http
        .request(
            reqwest::Method::from_bytes(b"BREW").expect("method"),
            gateway.url("/endpoint/m-labels/health"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);

    let scrape = gateway.scrape().await;
    let count = |labels: &[(&str, &str)]| sample(&scrape, "conflagent_http_requests_total", labels);
    assert_eq!(
        count(&[
            ("endpoint", "m-labels"),
            ("route", "/health"),
            ("method", "GET"),
            ("status", "200")
        ]),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        count(&[
            ("endpoint", "m-labels"),
            ("route", "/pages/{title}/children"),
            ("method", "GET")
        ]),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        count(&[
            ("endpoint", "m-labels"),
            ("route", "unmatched"),
            ("status", "404")
        ]),
        Some(1.0),
        "{scrape}"
    );
    assert!(
        count(&[
            ("endpoint", "m-labels"),
            ("method", "OTHER"),
            ("status", "405")
        ])
        .is_some(),
        "{scrape}"
    );
    for leaked in ["Secret", "m-never-loaded", "BREW", "no-such-route"] {
        assert!(!scrape.contains(leaked), "{leaked} in the scrape");
    }
    assert!(
        sample(
            &scrape,
            "conflagent_http_request_duration_seconds_bucket",
            &[("endpoint", "m-labels"), ("route", "/health"), ("le", "45")]
        )
        .is_some(),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "conflagent_http_requests_in_flight",
            &[("endpoint", "m-labels")]
        ),
        Some(0.0),
        "{scrape}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&scrape, "conflagent_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert!(sample(&scrape, "conflagent_endpoints_loaded", &[]).is_some());
    gateway.stop().await;
}

#[tokio::test]
async fn series_of_a_removed_endpoint_leave_the_scrape() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[
        (
            "conflagent.m-gone.properties",
            &limited_file(&base, 600, 100),
        ),
        (
            "conflagent.m-stays.properties",
            &limited_file(&base, 600, 100),
        ),
    ])
    .await;
    get(&gateway, "/endpoint/m-gone/health", None).await;
    get(&gateway, "/endpoint/m-stays/health", None).await;
    assert!(gateway.scrape().await.contains("endpoint=\"m-gone\""));

    std::fs::remove_file(gateway.config_path("conflagent.m-gone.properties")).expect("remove");
    eventually(DEADLINE, || async {
        get(&gateway, "/endpoint/m-gone/health", None).await.0 == 404
    })
    .await;
    let scrape = gateway.scrape().await;
    assert!(!scrape.contains("endpoint=\"m-gone\""), "{scrape}");
    assert!(scrape.contains("endpoint=\"m-stays\""), "{scrape}");
    gateway.stop().await;
}

#[tokio::test]
async fn upstream_calls_are_counted_for_the_endpoint_of_the_request() {
    let upstream = upstream().await;
    upstream.add_space("DOC", "Documentation");
    let root = upstream.add_page("DOC", "Handbook", None, "<p>Root</p>");
    upstream.add_page("DOC", "Install", Some(&root), "<p>Steps</p>");
    let file = endpoint_file(SECRET, &upstream.base_url())
        .replace("root_page_id=1000", &format!("root_page_id={root}"));
    let gateway = Gateway::start(&[("conflagent.m-upstream.properties", &file)]).await;
    // The first lookup meets a 503 and is retried: two calls, one retry, one request.
    upstream.fail_next(1, 503, None);
    let (status, _, body) = get(&gateway, "/endpoint/m-upstream/pages/Install", Some(SECRET)).await;
    assert_eq!(status, 200, "{body}");

    let scrape = gateway.scrape().await;
    for outcome in ["unavailable", "ok"] {
        assert_eq!(
            sample(
                &scrape,
                "conflagent_upstream_requests_total",
                &[
                    ("endpoint", "m-upstream"),
                    ("operation", "page_by_title"),
                    ("outcome", outcome)
                ]
            ),
            Some(1.0),
            "{scrape}"
        );
    }
    assert_eq!(
        sample(
            &scrape,
            "conflagent_upstream_retries_total",
            &[("endpoint", "m-upstream"), ("operation", "page_by_title")]
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "conflagent_upstream_request_duration_seconds_count",
            &[("endpoint", "m-upstream"), ("operation", "page_by_title")]
        ),
        Some(2.0),
        "{scrape}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn the_scrape_passes_promtool() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let gateway = Gateway::start(&[(
        "conflagent.m-promtool.properties",
        &limited_file(&base, 60, 1),
    )])
    .await;
    get(&gateway, "/endpoint/m-promtool/health", None).await;
    get(&gateway, "/endpoint/m-promtool/pages", Some(SECRET)).await;
    get(&gateway, "/endpoint/m-promtool/pages", Some(SECRET)).await;
    let scrape = gateway.scrape().await;
    gateway.stop().await;

    let Some(promtool) = crate::support::find_checker("promtool", "apt-get install prometheus")
    else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write scrape");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{scrape}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn request_id_is_echoed_when_sane_and_generated_otherwise() {
    let gateway = Gateway::start(&[]).await;
    let long = "a".repeat(65);
    let cases: [(Option<&str>, Option<&str>); 5] = [
        (Some("req-42.retry_1"), Some("req-42.retry_1")),
        (Some(&"b".repeat(64)), Some(&"b".repeat(64))),
        (Some(&long), None),
        (Some("has space"), None),
        (None, None),
    ];
    for (sent, expected) in cases {
        let mut request = gateway.http.get(gateway.url("/health"));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let response = request.send().await.expect("request");
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .expect("X-Request-Id on every response")
            .to_owned();
        match expected {
            Some(expected) => assert_eq!(id, expected),
            None => {
                assert_ne!(Some(id.as_str()), sent);
                assert!(
                    !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
                    "{id}"
                );
            }
        }
    }
    gateway.stop().await;
}

/// Everything logged in this test process from the first call on, at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer_logs = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&writer_logs)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    }))
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_route_but_never_secrets_or_bodies() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let logs = captured_logs();
    let secret = "log-secret-5f1e2d3c4b5a69788796";
    let wrong = "log-wrong-0a1b2c3d4e5f60718293";
    let body_text = "Body text that must stay out of logs 7c1d";
    let file = endpoint_file(secret, &base);
    let gateway = Gateway::start(&[("conflagent.log-check.properties", &file)]).await;
    let body = serde_json::json!({
        "title": "Log check",
        "body": body_text,
        "new_title": "Renamed",
        "old_title": "Log check",
        "newParentTitle": "Elsewhere",
    })
    .to_string();
    for route in &ROUTES {
        let path = format!(
            "/endpoint/log-check{}",
            route.template.replace("{title}", "Log%20check")
        );
        for candidate in [secret, wrong] {
            let method =
                reqwest::Method::from_bytes(route.method.as_str().as_bytes()).expect("method");
            let response = gateway
                .http
                .request(method, gateway.url(&path))
                .bearer_auth(candidate)
                .header("content-type", "application/json")
                .header(
                    "x-request-id",
                    format!("log-check-{}", route.operation.operation_id()),
                )
                .body(body.clone())
                .send()
                .await
                .expect("request");
            assert!(response.status().as_u16() >= 200);
        }
    }
    gateway.stop().await;

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    let request_line = text
        .lines()
        .find(|line| line.contains("request_id=log-check-readPageByTitle"))
        .expect("one line per request");
    assert!(
        request_line.contains("endpoint=log-check"),
        "{request_line}"
    );
    assert!(
        request_line.contains("route=\"/pages/{title}\""),
        "{request_line}"
    );
    assert!(request_line.contains("status="), "{request_line}");
    // The exact title lookup missed, then the lookup ignoring case.
    assert!(request_line.contains("upstream_calls=2"), "{request_line}");
    assert!(
        !request_line.contains("ERROR"),
        "client mistakes are not errors: {request_line}"
    );
    for leaked in [secret, wrong, body_text, "Bearer", "Log%20check"] {
        assert!(!text.contains(leaked), "`{leaked}` appears in the logs");
    }
}

#[tokio::test]
async fn readiness_fails_while_requests_still_drain() {
    let upstream = upstream().await;
    let base = upstream.base_url();
    let mut gateway =
        Gateway::start(&[("conflagent.ready.properties", &limited_file(&base, 60, 10))]).await;
    let readyz = format!("http://{}/readyz", gateway.private_addr);
    let status = |http: reqwest::Client, url: String| async move {
        http.get(url)
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16()
    };
    assert_eq!(status(gateway.http.clone(), readyz.clone()).await, 200);

    // A request whose body is still on its way keeps the public listener draining.
    let (mut stream, rest) = crate::support::start_slow_create(gateway.addr, "ready").await;

    let stopped = gateway.begin_stop();
    eventually(DEADLINE, || {
        let answer = status(gateway.http.clone(), readyz.clone());
        async move { answer.await == 503 }
    })
    .await;
    assert!(
        !stopped.is_finished(),
        "still draining the request in flight"
    );

    stream.write_all(rest).await.expect("write rest");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 "));
    stopped.await.expect("run returns");
}
