//! Conflagent: one process, many sandboxed Confluence endpoints for Custom GPTs and other agents.
//!
//! Bird's-eye view, one way down: `http` accepts connections, routes each request once (through
//! `routes`, the one route table), authenticates it and turns it into a typed command of `pages`,
//! the page domain, which talks to Confluence only through `confluence`. `endpoint` is the runtime:
//! each endpoint's upstream client, budgets (`ratelimit`) and OpenAPI cache (`openapi`), built from a
//! validated `config::Tenant` and kept in the live table that `config` rebuilds as files change. The
//! leaves (`config`, `markdown`, `titles`, `routes`, `metrics`, `secret`, `logging`, `clock`) import
//! nothing above them.
//! `sim` is the Confluence simulator used by tests and `conflagent demo`; it uses leaves only.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod confluence;
pub mod demo;
pub mod endpoint;
pub mod http;
pub mod logging;
pub mod markdown;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod ratelimit;
pub mod routes;
pub mod secret;
pub mod sections;
pub mod sim;
pub mod titles;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::watch::{WatchSettings, watch_config};
use crate::endpoint::{EndpointStore, count_reload};
use crate::http::conn::Connections;
use crate::http::private::{PrivateService, Readiness};
use crate::http::server::{ServerSettings, serve, serve_tracked};
use crate::http::service::{AppState, GatewayService, ServiceSettings};

/// Everything `run` needs besides the listeners and the loaded config.
#[derive(Clone, Default)]
pub struct RunSettings {
    /// Public service settings.
    pub service: ServiceSettings,
    /// Connection settings of both listeners.
    pub server: ServerSettings,
    /// Config watching.
    pub watch: WatchSettings,
    /// Renders the Prometheus scrape for `/metrics` on the private listener.
    pub render_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

/// Serves the gateway on `public` and the operator endpoints on `private` until `shutdown`
/// completes. Then readiness fails at once while both listeners keep serving for the drain delay
/// (so that load balancers stop routing first); then the public listener stops accepting, and both
/// drain until one deadline, a grace period away, after which what is still open is closed. The
/// private listener keeps accepting (answering 503 at `/readyz`) until the public one is done, so
/// that probes see the drain. Config must already be loaded: `run` never fails on config.
pub async fn run(
    public: TcpListener,
    private: TcpListener,
    store: Arc<EndpointStore>,
    settings: RunSettings,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (public_stop_tx, public_stop_rx) = watch::channel(None);
    let (private_stop_tx, private_stop_rx) = watch::channel(None);
    let readiness = Arc::new(Readiness::default());
    readiness.set(true);
    let render_metrics: Arc<dyn Fn() -> String + Send + Sync> =
        match settings.render_metrics.clone() {
            Some(render) => {
                let store = Arc::clone(&store);
                Arc::new(move || {
                    let table = store.table();
                    metrics::scrape(render.as_ref(), table.len(), |name| {
                        table.get(name).is_some()
                    })
                })
            }
            None => Arc::new(String::new),
        };

    let watcher = tokio::spawn({
        let store = Arc::clone(&store);
        let stop = stop_rx.clone();
        watch_config(store, settings.watch, stop, count_reload)
    });
    let state = Arc::new(AppState {
        store,
        settings: settings.service.clone(),
    });
    let public_connections = Arc::new(Connections::new(settings.server.max_connections));
    readiness.watch_public(Arc::clone(&public_connections));
    let public_server = tokio::spawn(serve_tracked(
        public,
        GatewayService::new(state),
        settings.server,
        public_stop_rx,
        public_connections,
    ));
    let private_server = tokio::spawn(serve(
        private,
        PrivateService::new(Arc::clone(&readiness), render_metrics),
        settings.server,
        private_stop_rx,
    ));

    shutdown.await;
    readiness.set(false);
    tracing::info!(
        drain_delay = ?settings.server.drain_delay,
        grace_period = ?settings.server.grace_period,
        "shutting down: readiness off; still accepting for the drain delay, then draining"
    );
    tokio::time::sleep(settings.server.drain_delay).await;
    tracing::info!("public listener closed; draining connections");
    let deadline = tokio::time::Instant::now() + settings.server.grace_period;
    let _ = public_stop_tx.send(Some(deadline));
    let _ = stop_tx.send(true);
    let _ = public_server.await;
    let _ = private_stop_tx.send(Some(deadline));
    let _ = tokio::join!(private_server, watcher);
    tracing::info!("stopped");
}
