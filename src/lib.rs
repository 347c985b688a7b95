//! Conflagent: one process, many sandboxed Confluence endpoints for Custom GPTs and other agents.
//!
//! Bird's-eye view: `config` turns a directory of `conflagent.<name>.properties` files into an
//! immutable tenant table and keeps it current; `http` accepts connections and routes each request
//! (through `routes`, the one route table) to an endpoint's operation after `auth`; page operations
//! talk to Confluence only through `confluence`; `markdown` converts bodies without IO; `sim` is the
//! Confluence simulator used by tests and `conflagent demo`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod confluence;
pub mod demo;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod markdown;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod ratelimit;
pub mod routes;
pub mod secret;
pub mod sim;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ConfigStore;
use crate::config::watch::{WatchSettings, watch_config};
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
/// (so that load balancers stop routing first); then both stop accepting and drain together within
/// one grace period, after which what is still open is closed; then the watcher stops. Config must
/// already be loaded: `run` never fails on config.
pub async fn run(
    public: TcpListener,
    private: TcpListener,
    store: Arc<ConfigStore>,
    settings: RunSettings,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let readiness = Arc::new(Readiness::default());
    readiness.set(true);
    let render_metrics: Arc<dyn Fn() -> String + Send + Sync> =
        match settings.render_metrics.clone() {
            Some(render) => metrics::scrape(Arc::clone(&store), render),
            None => Arc::new(String::new),
        };

    let watcher = tokio::spawn({
        let store = Arc::clone(&store);
        let stop = stop_rx.clone();
        watch_config(store, settings.watch, stop)
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
        stop_rx.clone(),
        public_connections,
    ));
    let private_server = tokio::spawn(serve(
        private,
        PrivateService::new(Arc::clone(&readiness), render_metrics),
        settings.server,
        stop_rx,
    ));

    shutdown.await;
    readiness.set(false);
    tracing::info!(
        drain_delay = ?settings.server.drain_delay,
        grace_period = ?settings.server.grace_period,
        "shutting down: readiness off; still accepting for the drain delay, then draining"
    );
    tokio::time::sleep(settings.server.drain_delay).await;
    tracing::info!("listeners closed; draining connections");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(public_server, private_server, watcher);
    tracing::info!("stopped");
}
