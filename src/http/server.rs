//! The accept loop: HTTP/1.1 and h2c on one port, a header-read timeout that really applies, a cap
//! on concurrent connections, and graceful shutdown with a deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::http::envelope::Body;

/// Connection-level settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// A client must send its complete request head within this time, or be disconnected.
    pub header_read_timeout: Duration,
    /// At most this many connections are served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub grace_period: Duration,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            grace_period: Duration::from_secs(20),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` turns true, then stops accepting and lets open
/// connections finish for up to the grace period.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer the header-read timeout is silently inert.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually EMFILE or a connection reset before accept: back off briefly, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(settings.grace_period) => {
            tracing::warn!(grace_period = ?settings.grace_period, "grace period over; closing remaining connections");
        }
    }
}
