//! Wall time and upstream calls per page operation through the gateway, against the simulator with
//! 20 ms of injected latency per upstream request, on a 155-page tree (3 levels × 5 children).
//! Data Center speaks REST v1; Cloud speaks REST v2 through the API gateway form, on an endpoint
//! that has listed its pages once (so its space id and breadcrumb titles are known, as in a GPT
//! session).
//!
//! Run with `cargo bench --bench operations`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use conflagent::endpoint::{self, Shared};
use conflagent::sim::{Deployment, SimSettings, Simulator};
use conflagent::{RunSettings, run};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-0123456789abcdef";
const ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        for deployment in [Deployment::DataCenter, Deployment::Cloud] {
            measure(deployment).await;
        }
    });
}

async fn measure(deployment: Deployment) {
    let sim = Simulator::start(SimSettings::for_deployment(deployment))
        .await
        .expect("simulator");
    sim.add_space("DOC", "Docs");
    let root = sim.add_page("DOC", "Root", None, "<p>root</p>");
    for a in 1..=5 {
        let first = sim.add_page("DOC", &format!("P{a}"), Some(&root), "<p>1</p>");
        for b in 1..=5 {
            let second = sim.add_page("DOC", &format!("P{a}.{b}"), Some(&first), "<p>2</p>");
            for c in 1..=5 {
                sim.add_page("DOC", &format!("P{a}.{b}.{c}"), Some(&second), "<p>3</p>");
            }
        }
    }
    let (credentials, base_url) = match deployment {
        Deployment::DataCenter => {
            sim.add_bearer_token("pat");
            (
                "auth=bearer\napi_token=pat\ndeployment=datacenter\n",
                sim.base_url(),
            )
        }
        Deployment::Cloud => {
            sim.add_basic_user("bot@example.com", "token");
            (
                "auth=basic\nemail=bot@example.com\napi_token=token\ndeployment=cloud\n",
                sim.gateway_base_url(),
            )
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("conflagent.bench.properties"),
        format!(
            "base_url={base_url}\nspace_key=DOC\nroot_page_id={root}\ngpt_shared_secret={SECRET}\n\
             rate_limit_per_minute=0\n{credentials}"
        ),
    )
    .expect("write");
    let (store, _) = endpoint::load(dir.path(), Shared::default()).expect("load");
    let public = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let private = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://{}/endpoint/bench",
        public.local_addr().expect("addr")
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(run(
        public,
        private,
        Arc::new(store),
        RunSettings::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let http = reqwest::Client::new();
    // What a GPT does first; on Cloud it also looks up the space id (once per endpoint).
    call(&http, &base, Method::GET, "/pages", None).await;
    sim.set_latency(Duration::from_millis(20));

    println!("\n{deployment:?}, 20 ms per upstream request, median of {ROUNDS}:");
    println!("| operation | upstream calls | wall time |");
    println!("|---|---|---|");
    let time = |name: &str, calls: usize, samples: Vec<Duration>| {
        let mut samples = samples;
        samples.sort();
        println!(
            "| {name} | {calls} | {:.1} ms |",
            samples[samples.len() / 2].as_secs_f64() * 1000.0
        );
    };
    let reads: [(&str, &str); 6] = [
        ("read by title", "/pages/P1.2.3"),
        ("read by title path", "/pages/P1/P1.2/P1.2.3"),
        ("parent", "/pages/P1.2.3/parent"),
        ("children", "/pages/P1.2/children"),
        ("list (155 pages)", "/pages"),
        ("tree depth 3", "/pages/tree?depth=3"),
    ];
    for (name, path) in reads {
        let (calls, samples) =
            repeat(&sim, ROUNDS, || call(&http, &base, Method::GET, path, None)).await;
        time(name, calls, samples);
    }
    let mut round = 0;
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        round += 1;
        call(
            &http,
            &base,
            Method::POST,
            "/pages",
            Some(json!({"title": format!("New {round}"), "body": "# Hi"})),
        )
    })
    .await;
    time("create under the root", calls, samples);
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        round += 1;
        call(
            &http,
            &base,
            Method::POST,
            "/pages",
            Some(json!({"title": format!("New {round}"), "body": "x", "parentTitle": "P2"})),
        )
    })
    .await;
    time("create under parentTitle", calls, samples);
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        call(
            &http,
            &base,
            Method::PUT,
            "/pages/P3",
            Some(json!({"body": "<p>updated</p>"})),
        )
    })
    .await;
    time("update", calls, samples);
    let mut names = (0..).map(|n| (format!("Renamed {n}"), format!("Renamed {}", n + 1)));
    call(
        &http,
        &base,
        Method::POST,
        "/pages/rename",
        Some(json!({"old_title": "P4", "new_title": "Renamed 0"})),
    )
    .await;
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        let (old, new) = names.next().unwrap_or_default();
        call(
            &http,
            &base,
            Method::POST,
            "/pages/rename",
            Some(json!({"old_title": old, "new_title": new})),
        )
    })
    .await;
    time("rename", calls, samples);
    let mut parents = ["P1", "P2"].into_iter().cycle();
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        let parent = parents.next().unwrap_or("P1");
        call(
            &http,
            &base,
            Method::POST,
            "/pages/P5.1/move",
            Some(json!({"newParentTitle": parent})),
        )
    })
    .await;
    time("move", calls, samples);
    let mut deleted = 0;
    let (calls, samples) = repeat(&sim, ROUNDS, || {
        deleted += 1;
        let path = format!("/pages/New%20{deleted}");
        let (http, base) = (&http, &base);
        async move { call(http, base, Method::DELETE, &path, None).await }
    })
    .await;
    time("delete", calls, samples);

    let _ = stop_tx.send(());
    let _ = gateway.await;
    sim.shutdown().await;
}

/// Runs `operation` `rounds` times; returns the upstream calls of the last run and every wall time.
async fn repeat<F, Fut>(sim: &Simulator, rounds: usize, mut operation: F) -> (usize, Vec<Duration>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let mut samples = Vec::with_capacity(rounds);
    let mut calls = 0;
    for _ in 0..rounds {
        sim.reset_counts();
        let started = Instant::now();
        let response = operation().await;
        samples.push(started.elapsed());
        calls = sim.total_requests();
        assert_eq!(response["success"], true, "{response}");
    }
    (calls, samples)
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(SECRET);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}
