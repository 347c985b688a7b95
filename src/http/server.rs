//! The accept loop: HTTP/1.1 and h2c on one port, a deadline for every connection state, a cap on
//! concurrent connections that reclaims idle ones first, and graceful shutdown with a deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http::conn::{Connections, Deadlines, EnvelopeIo, MAX_HEADER_BYTES, TrackedService};
use crate::http::envelope::Body;

/// Connection-level settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// A client must send a complete request head within this time: from accept for its first
    /// request (whatever the protocol, before protocol detection included), and from its first
    /// byte for later HTTP/1 requests. Otherwise it is disconnected.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long (keep-alive, both
    /// protocols).
    pub idle_timeout: Duration,
    /// HTTP/2 connections are pinged after this much silence, and closed when a ping is not
    /// answered within the same time.
    pub http2_keep_alive_interval: Duration,
    /// At most this many connections are served at once. At the cap, the connection idle for the
    /// longest is closed to make room; when every connection is busy, new ones wait in the accept
    /// backlog.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown starts, for all listeners
    /// together.
    pub grace_period: Duration,
    /// After shutdown starts, how long the listeners keep accepting while readiness already fails,
    /// so that load balancers stop routing before the port closes.
    pub drain_delay: Duration,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            http2_keep_alive_interval: Duration::from_secs(20),
            max_connections: 4096,
            grace_period: Duration::from_secs(20),
            drain_delay: Duration::ZERO,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` holds a deadline, then stops accepting and lets
/// open connections finish until that deadline; what is still open then is closed.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    shutdown: watch::Receiver<Option<Instant>>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let connections = Arc::new(Connections::new(settings.max_connections));
    serve_tracked(listener, service, settings, shutdown, connections).await;
}

/// [`serve`], counting connections in `connections` (whose cap replaces `max_connections`) so that
/// readiness can report the listener's load.
pub async fn serve_tracked<S>(
    listener: TcpListener,
    service: S,
    settings: ServerSettings,
    mut shutdown: watch::Receiver<Option<Instant>>,
    connections: Arc<Connections>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer the header-read timeout is silently inert.
    builder
        .http1()
        .timer(TokioTimer::new())
        // The connection watchdog applies the header deadline: the parser's own timer would also
        // run on idle keep-alive connections and cut them at the header deadline.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.http2_keep_alive_interval)
        .keep_alive_timeout(settings.http2_keep_alive_interval)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let deadlines = Deadlines {
        first_request: settings.header_read_timeout,
        header: settings.header_read_timeout,
        idle: settings.idle_timeout,
    };
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(connections.limit()));
    let mut tasks = JoinSet::new();

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(Option::is_some) => break,
        };
        while tasks.try_join_next().is_some() {}
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually EMFILE or a connection reset before accept: back off briefly, keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: make room by closing the idlest connection; when all are busy, wait.
                if !connections.evict_idlest() {
                    tracing::warn!(
                        limit = connections.limit(),
                        "connection cap reached with every connection busy; new connections wait"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = shutdown.wait_for(Option::is_some) => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let tracked = connections.register();
        let service = TrackedService {
            inner: service.clone(),
            tracked: Arc::clone(&tracked),
        };
        // No upgrades: nothing here speaks WebSocket or switches protocols on an HTTP/1 request.
        let connection = builder
            .serve_connection(
                TokioIo::new(EnvelopeIo::new(stream, Arc::clone(&tracked))),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        let connections = Arc::clone(&connections);
        tasks.spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                reason = tracked.watchdog(deadlines) => {
                    tracing::debug!(?reason, "connection closed by the gateway");
                }
            }
            connections.remove(&tracked);
            drop(permit);
        });
    }

    drop(listener);
    let deadline = shutdown
        .borrow()
        .unwrap_or_else(|| Instant::now() + settings.grace_period);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep_until(deadline) => {
            while tasks.try_join_next().is_some() {}
            tracing::warn!(
                grace_period = ?settings.grace_period,
                remaining = tasks.len(),
                "grace period over; closing remaining connections"
            );
        }
    }
    // Dropping a connection's task closes its socket.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
