//! Shutdown: readiness fails first while the port keeps serving for the drain delay, then both
//! listeners drain together within one grace period, and what is left is closed.

use std::time::{Duration, Instant};

use conflagent::http::server::ServerSettings;

use crate::support::{Gateway, Options, closed_by_server, eventually, stalled_client};

async fn gateway(server: ServerSettings) -> Gateway {
    Gateway::start_with(
        &[],
        Options {
            server,
            ..Options::default()
        },
    )
    .await
}

async fn status(http: &reqwest::Client, url: String) -> Option<u16> {
    http.get(url)
        .send()
        .await
        .ok()
        .map(|response| response.status().as_u16())
}

#[tokio::test]
async fn stuck_clients_on_both_listeners_get_one_grace_and_are_closed() {
    let grace = Duration::from_secs(1);
    let mut gateway = gateway(ServerSettings {
        grace_period: grace,
        header_read_timeout: Duration::from_secs(60),
        ..ServerSettings::default()
    })
    .await;
    let half = b"GET /health HTTP/1.1\r\nHost: x\r\n";
    let mut public = stalled_client(gateway.addr, half).await;
    let mut private = stalled_client(gateway.private_addr, half).await;
    // Connections are accepted in order: once a later one is answered, the stuck ones are held.
    assert_eq!(
        status(&gateway.http, gateway.url("/health")).await,
        Some(200)
    );
    let healthz = format!("http://{}/healthz", gateway.private_addr);
    assert_eq!(status(&gateway.http, healthz).await, Some(200));

    let started = Instant::now();
    gateway.begin_stop().await.expect("run returns");
    let took = started.elapsed();
    assert!(
        took >= grace,
        "the stuck clients were not waited for: {took:?}"
    );
    assert!(
        took < grace + Duration::from_millis(700),
        "two listeners took {took:?} for one grace of {grace:?}"
    );
    // The log says the remaining connections are closed: they are.
    closed_by_server(&mut public).await;
    closed_by_server(&mut private).await;
}

#[tokio::test]
async fn the_port_keeps_serving_during_the_drain_delay_while_readiness_fails() {
    let drain_delay = Duration::from_secs(2);
    let mut gateway = gateway(ServerSettings {
        drain_delay,
        ..ServerSettings::default()
    })
    .await;
    let readyz = format!("http://{}/readyz", gateway.private_addr);
    assert_eq!(status(&gateway.http, readyz.clone()).await, Some(200));

    let started = Instant::now();
    let stopped = gateway.begin_stop();
    eventually(Duration::from_secs(5), || {
        let answer = status(&gateway.http, readyz.clone());
        async move { answer.await == Some(503) }
    })
    .await;
    // Readiness fails, and a load balancer that has not noticed yet is still served.
    assert_eq!(
        status(&gateway.http, gateway.url("/health")).await,
        Some(200)
    );
    assert!(
        started.elapsed() < drain_delay,
        "test too slow to observe the delay"
    );

    stopped.await.expect("run returns");
    assert!(started.elapsed() >= drain_delay);
    assert_eq!(status(&gateway.http, gateway.url("/health")).await, None);
}
