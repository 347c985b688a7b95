//! The private listener for operators: liveness, readiness and (with the metrics recorder) the
//! Prometheus scrape. Never mounted on the public port.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use crate::http::conn::{Connections, Load};
use crate::http::envelope::{self, Body};
use crate::http::error::ApiError;

/// Whether the process should receive traffic: true once config is loaded, false from the moment
/// shutdown begins, and false while the public listener is saturated (every connection permit held
/// by a connection with a request in flight).
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    public: OnceLock<Arc<Connections>>,
}

impl Readiness {
    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Reports the load of the public listener's `connections` too.
    pub fn watch_public(&self, connections: Arc<Connections>) {
        let _ = self.public.set(connections);
    }

    /// The public listener's load, when it is watched.
    pub fn public_load(&self) -> Option<Load> {
        self.public.get().map(|connections| connections.load())
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && !self.public_load().is_some_and(|load| load.saturated())
    }
}

/// The private listener's `Service`.
#[derive(Clone)]
pub struct PrivateService {
    readiness: Arc<Readiness>,
    render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

impl PrivateService {
    /// A service reporting `readiness` and serving what `render_metrics` returns at `/metrics`.
    pub fn new(
        readiness: Arc<Readiness>,
        render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> PrivateService {
        PrivateService {
            readiness,
            render_metrics,
        }
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET {
            return match path {
                "/healthz" | "/readyz" | "/metrics" => {
                    ApiError::method_not_allowed(method, &[Method::GET]).into_response()
                }
                _ => ApiError::not_found().into_response(),
            };
        }
        match path {
            "/healthz" => envelope::healthy("alive"),
            "/readyz" => self.readyz(),
            "/metrics" => {
                let mut response = Response::new(Body::from((self.render_metrics)()));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => ApiError::not_found().into_response(),
        }
    }
}

impl PrivateService {
    fn readyz(&self) -> Response<Body> {
        if !self.readiness.ready.load(Ordering::SeqCst) {
            return ApiError::not_ready().into_response();
        }
        let load = self.readiness.public_load();
        if load.is_some_and(|load| load.saturated()) {
            return ApiError::upstream_unavailable(
                "not ready: the public listener is saturated; every connection has a request in flight",
            )
            .into_response();
        }
        let connections =
            load.map(|load| json!({"open": load.open, "busy": load.busy, "limit": load.limit}));
        envelope::ok(
            "ready",
            json!({"status": "ready", "connections": connections}),
        )
    }
}

impl hyper::service::Service<Request<Incoming>> for PrivateService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let response = self.respond(request.method(), request.uri().path());
        Box::pin(async move { Ok(response) })
    }
}
