//! Gateway core figures, printed: cold load and rescan of 10,000 endpoint files, resident memory
//! with them loaded, and the time from writing a file to its endpoint answering.
//!
//! Run with `cargo bench --bench gateway`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use conflagent::endpoint::{self, Shared};
use conflagent::{RunSettings, run};

const ENDPOINTS: usize = 10_000;

fn endpoint_file(index: usize) -> String {
    format!(
        "base_url=https://wiki.example.com\nspace_key=DOC\nroot_page_id={}\n\
         gpt_shared_secret=secret-of-endpoint-{index:06}-0123456789\napi_token=token-{index}\n\
         rate_limit_per_minute=120\n",
        1000 + index
    )
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let shared = Shared::default();
        let dir = tempfile::tempdir().expect("temp dir");
        for index in 0..ENDPOINTS {
            std::fs::write(
                dir.path().join(format!("conflagent.ep{index}.properties")),
                endpoint_file(index),
            )
            .expect("write");
        }
        let rss_before = resident_kib();
        let started = Instant::now();
        let (store, report) = endpoint::load(dir.path(), shared.clone()).expect("load");
        let cold = started.elapsed();
        let rss_after = resident_kib();
        assert_eq!(report.loaded, ENDPOINTS);
        println!("cold load of {ENDPOINTS} endpoint files: {cold:?}");
        println!(
            "resident memory: {:.1} MiB before, {:.1} MiB with {ENDPOINTS} endpoints loaded (+{:.1} MiB)",
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            (rss_after.saturating_sub(rss_before)) as f64 / 1024.0
        );

        let rescans: Vec<Duration> = (0..10)
            .map(|_| {
                let started = Instant::now();
                store.rescan().expect("rescan");
                started.elapsed()
            })
            .collect();
        println!(
            "full rescan of {ENDPOINTS} unchanged files: median {:?}, max {:?}",
            median(rescans.clone()),
            rescans.iter().max().copied().unwrap_or_default()
        );
        std::fs::write(
            dir.path().join("conflagent.ep0.properties"),
            endpoint_file(0).replace("rate_limit_per_minute=120", "rate_limit_per_minute=60"),
        )
        .expect("edit");
        let started = Instant::now();
        store.rescan().expect("rescan");
        println!(
            "full rescan of {ENDPOINTS} files with one changed: {:?}",
            started.elapsed()
        );
        drop(store);

        // File written → endpoint answering, through the real watcher and listener.
        let live_dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = endpoint::load(live_dir.path(), shared).expect("load");
        let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let private = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = public.local_addr().expect("addr");
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
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut latencies = Vec::new();
        for round in 0..10 {
            let name = format!("live{round}");
            let url = format!("http://{addr}/endpoint/{name}/health");
            let started = Instant::now();
            let temp = live_dir.path().join(format!(".{name}.tmp"));
            std::fs::write(&temp, endpoint_file(round)).expect("write");
            std::fs::rename(&temp, live_dir.path().join(format!("conflagent.{name}.properties")))
                .expect("rename");
            loop {
                let status = http.get(&url).send().await.map(|r| r.status().as_u16());
                if matches!(status, Ok(200)) {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "endpoint never appeared");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            latencies.push(started.elapsed());
        }
        println!(
            "file written → endpoint answering (debounce 200 ms included): median {:?}, max {:?}",
            median(latencies.clone()),
            latencies.iter().max().copied().unwrap_or_default()
        );
        let _ = stop_tx.send(());
        let _ = gateway.await;
    });
}
