//! The private listener for operators: liveness, readiness and (with the metrics recorder) the
//! Prometheus scrape. Never mounted on the public port.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use crate::http::envelope::{self, Body};
use crate::http::error::ApiError;

/// Whether the process should receive traffic: true once config is loaded, false from the moment
/// shutdown begins.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Marks the process ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
            "/healthz" => envelope::ok("alive", json!({"status": "ok"})),
            "/readyz" if self.readiness.is_ready() => {
                envelope::ok("ready", json!({"status": "ready"}))
            }
            "/readyz" => ApiError::not_ready().into_response(),
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

impl hyper::service::Service<Request<Incoming>> for PrivateService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let response = self.respond(request.method(), request.uri().path());
        Box::pin(async move { Ok(response) })
    }
}
