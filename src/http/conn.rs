//! What the accept loop knows about each open connection: whether a request is in flight, since
//! when it has been idle, a deadline for every state, and the IO wrapper that turns the bare error
//! answers of the HTTP/1 parser into envelopes.
//!
//! A connection is *busy* while at least one request is being served on it, and *idle* otherwise:
//! before its first request (protocol detection, HTTP/1 headers, HTTP/2 preface) and between
//! requests (keep-alive, for both protocols). An idle connection has a deadline; a busy one is
//! bounded by the body-read deadline and the upstream deadline of its requests instead. When the
//! connection cap is reached, the connection idle for the longest is closed to make room.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::http::envelope::{self, Body};

/// The open connections of one listener.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
    next_id: AtomicU64,
    busy: AtomicUsize,
    limit: usize,
}

/// A snapshot of a listener's connections, as readiness reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Connections open.
    pub open: usize,
    /// Connections with a request in flight.
    pub busy: usize,
    /// The connection cap.
    pub limit: usize,
}

impl Load {
    /// Every connection permit is held by a connection with a request in flight: a new client
    /// waits until one finishes, since no idle connection can be reclaimed.
    pub fn saturated(&self) -> bool {
        self.busy >= self.limit
    }
}

impl Connections {
    /// No connections yet, at most `limit` at once.
    pub fn new(limit: usize) -> Connections {
        Connections {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    /// The connection cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Open and busy connections now.
    pub fn load(&self) -> Load {
        Load {
            open: self.lock().len(),
            busy: self.busy.load(Ordering::SeqCst),
            limit: self.limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Tracked>>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a connection accepted now.
    pub(crate) fn register(self: &Arc<Self>) -> Arc<Tracked> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracked = Arc::new(Tracked {
            id,
            owner: Arc::downgrade(self),
            phase: Mutex::new(Phase {
                in_flight: 0,
                served: false,
                idle_since: Instant::now(),
                head_started: None,
            }),
            http2: AtomicBool::new(false),
            wake: Notify::new(),
            evicted: AtomicBool::new(false),
        });
        self.lock().insert(id, Arc::clone(&tracked));
        tracked
    }

    /// Forgets a connection that has ended.
    pub(crate) fn remove(&self, tracked: &Tracked) {
        self.lock().remove(&tracked.id);
    }

    /// Closes the connection that has been idle the longest; false when every connection is busy.
    pub(crate) fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let victim = open
            .values()
            .filter(|tracked| !tracked.evicted.load(Ordering::SeqCst))
            .filter_map(|tracked| {
                let phase = tracked.phase();
                (phase.in_flight == 0).then_some((phase.idle_since, tracked))
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, tracked)| Arc::clone(tracked));
        drop(open);
        match victim {
            Some(tracked) => {
                tracked.evicted.store(true, Ordering::SeqCst);
                tracked.wake.notify_one();
                true
            }
            None => false,
        }
    }
}

/// How long a connection may stay in each idle state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From accept to the first complete request head (either protocol).
    pub first_request: Duration,
    /// From the first byte of a later HTTP/1 request head to its end.
    pub header: Duration,
    /// From the end of the last request to the start of the next one.
    pub idle: Duration,
}

/// Why a connection was closed by the gateway rather than by its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// No complete request within the first-request deadline.
    NoRequest,
    /// Idle for longer than the keep-alive deadline.
    Idle,
    /// Reclaimed to make room for a new connection at the cap.
    Reclaimed,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    in_flight: usize,
    served: bool,
    idle_since: Instant,
    /// When the first byte of the next HTTP/1 request head arrived on an idle connection.
    head_started: Option<Instant>,
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Tracked {
    id: u64,
    owner: std::sync::Weak<Connections>,
    phase: Mutex<Phase>,
    wake: Notify,
    evicted: AtomicBool,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    http2: AtomicBool,
}

impl Tracked {
    /// Bytes arrived: on an idle HTTP/1 connection that has served a request, they start the next
    /// request head, which must then be complete within the header deadline.
    fn bytes_read(&self) {
        if self.http2.load(Ordering::Relaxed) {
            return;
        }
        let mut phase = self
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if phase.in_flight == 0 && phase.served && phase.head_started.is_none() {
            // No wake-up: the watchdog looks again at least every header deadline, and then
            // times the head from here.
            phase.head_started = Some(Instant::now());
        }
    }

    fn phase(&self) -> Phase {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Phase)) {
        let mut phase = self
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_busy = phase.in_flight > 0;
        change(&mut phase);
        let is_busy = phase.in_flight > 0;
        drop(phase);
        if was_busy != is_busy
            && let Some(owner) = self.owner.upgrade()
        {
            if is_busy {
                owner.busy.fetch_add(1, Ordering::SeqCst);
            } else {
                owner.busy.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // No wake-up per request: the watchdog reads the phase when its timer fires (see
        // `watchdog`), so a request costs no extra poll of the connection and no timer churn.
    }

    fn request_started(self: &Arc<Self>, version: http::Version) -> InFlight {
        if version == http::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.update(|phase| {
            phase.in_flight += 1;
            phase.served = true;
            phase.head_started = None;
        });
        InFlight(Arc::clone(self))
    }

    /// Completes when the connection must be closed: it stayed idle past its deadline, or it was
    /// reclaimed. Never completes while a request is in flight.
    ///
    /// Requests starting and ending do not wake it (that would cost every request a wake-up and a
    /// new timer). Instead it sleeps until the deadline of the phase it saw, but never longer than
    /// the shortest deadline, and looks again: a deadline that moved meanwhile is then slept to anew,
    /// and a request head that started while it slept is timed from its first byte, so no
    /// deadline is missed or cut short. Only reclaiming wakes it at once.
    pub(crate) async fn watchdog(&self, deadlines: Deadlines) -> Closed {
        loop {
            if self.evicted.load(Ordering::SeqCst) {
                return Closed::Reclaimed;
            }
            let phase = self.phase();
            // Looking again at least this often catches every phase change before a deadline
            // that could follow from it is due.
            let recheck = Instant::now()
                + deadlines
                    .header
                    .min(deadlines.idle)
                    .min(deadlines.first_request);
            if phase.in_flight > 0 {
                tokio::select! {
                    _ = tokio::time::sleep_until(recheck) => {}
                    _ = self.wake.notified() => {}
                }
                continue;
            }
            let (deadline, reason) = if phase.served {
                let idle = phase.idle_since + deadlines.idle;
                match phase.head_started {
                    Some(started) => (idle.min(started + deadlines.header), Closed::NoRequest),
                    None => (idle, Closed::Idle),
                }
            } else {
                (
                    phase.idle_since + deadlines.first_request,
                    Closed::NoRequest,
                )
            };
            if deadline <= Instant::now() {
                return reason;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(recheck)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let phase = self.phase();
        if phase.in_flight > 0
            && let Some(owner) = self.owner.upgrade()
        {
            owner.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Marks one request in flight until dropped.
pub(crate) struct InFlight(Arc<Tracked>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| {
            phase.in_flight = phase.in_flight.saturating_sub(1);
            if phase.in_flight == 0 {
                phase.idle_since = Instant::now();
            }
        });
    }
}

/// A service that tells its connection's tracker when each request starts and ends.
///
/// On HTTP/1 it also polls each response future once as soon as the request arrives. Right after
/// handing a request to the service, hyper reads ahead on the connection to notice a client that
/// hangs up; while the request's head is still alive (inside a future not yet polled), its read
/// buffer cannot be reused and a fresh one is allocated for every request. Answering at once
/// drops the head first. A future not done by then is polled again by hyper with the connection's
/// waker, which every future must take in place of the first. HTTP/2 streams skip this, so that
/// their work stays on their own tasks.
#[derive(Clone)]
pub(crate) struct TrackedService<S> {
    pub inner: S,
    pub tracked: Arc<Tracked>,
}

impl<S, B> hyper::service::Service<Request<B>> for TrackedService<S>
where
    S: hyper::service::Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let version = request.version();
        let in_flight = self.tracked.request_started(version);
        let mut response = self.inner.call(request);
        if version != http::Version::HTTP_2
            && let Poll::Ready(answer) =
                Pin::new(&mut response).poll(&mut Context::from_waker(std::task::Waker::noop()))
        {
            return TrackedFuture::Answered(Some(answer));
        }
        TrackedFuture::Serving {
            response,
            in_flight: Some(in_flight),
        }
    }
}

/// The response of a [`TrackedService`]: answered already, or still being served.
pub(crate) enum TrackedFuture<F> {
    /// Answered when the request arrived; taken by the one poll.
    Answered(Option<Result<Response<Body>, Infallible>>),
    /// Being served; the request counts as in flight until the response is ready.
    Serving {
        response: F,
        in_flight: Option<InFlight>,
    },
}

impl<F> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>> + Unpin,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            TrackedFuture::Answered(answer) => match answer.take() {
                Some(answer) => Poll::Ready(answer),
                None => Poll::Pending,
            },
            TrackedFuture::Serving {
                response,
                in_flight,
            } => {
                let answer = std::task::ready!(Pin::new(response).poll(cx));
                drop(in_flight.take());
                Poll::Ready(answer)
            }
        }
    }
}

/// The largest HTTP/1 request head (request line and headers) accepted; larger is 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The socket as the HTTP stack sees it. Reads pass through. Writes pass through too, except the
/// bodiless 400, 414 and 431 answers the HTTP/1 parser sends on its own for a malformed or
/// oversized request head: those are replaced by the same status with an envelope body.
/// After such an answer, the rest of the request is read and discarded before the socket closes
/// (at most this much, for at most [`LINGER`]), so that the client receives the answer rather than
/// a reset caused by unread bytes.
pub(crate) struct EnvelopeIo<T> {
    inner: T,
    tracked: Arc<Tracked>,
    /// Bytes of a replaced answer not yet written, and how many of them were.
    pending: Option<(Vec<u8>, usize)>,
    /// Set once an answer was replaced: closing lingers.
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<tokio::time::Sleep>>,
    drained: usize,
    write_closed: bool,
}

/// How long closing after a parser error waits for the client to finish sending.
const LINGER: Duration = Duration::from_secs(2);
/// How many bytes closing after a parser error discards at most.
const LINGER_BYTES: usize = 256 * 1024;

impl<T> EnvelopeIo<T> {
    /// Wraps `inner`, the socket of `tracked`.
    pub fn new(inner: T, tracked: Arc<Tracked>) -> EnvelopeIo<T> {
        EnvelopeIo {
            inner,
            tracked,
            pending: None,
            linger: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> EnvelopeIo<T> {
    /// Writes what is left of a replaced answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = self.pending.as_mut() {
            if *written >= bytes.len() {
                self.pending = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(count)) => *written += count,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopeIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.tracked.bytes_read();
        }
        polled
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for EnvelopeIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        if let Some(replacement) = parser_error_envelope(buf) {
            this.pending = Some((replacement, 0));
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER)),
                drained: 0,
                write_closed: false,
            });
            // The parser's own bytes count as written: they are replaced, not sent.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_pending(cx)?.is_pending() {
            return Poll::Pending;
        }
        let Some(linger) = this.linger.as_mut() else {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        };
        if !linger.write_closed {
            if Pin::new(&mut this.inner).poll_shutdown(cx)?.is_pending() {
                return Poll::Pending;
            }
            linger.write_closed = true;
        }
        let mut scratch = [0u8; 4096];
        loop {
            if linger.drained >= LINGER_BYTES || linger.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => linger.drained += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// When `written` is one of the parser's bodiless error answers (400, 414 or 431 with
/// `content-length: 0` and no content type; every answer of the service has a JSON body), the
/// bytes of the same answer with an envelope body.
fn parser_error_envelope(written: &[u8]) -> Option<Vec<u8>> {
    const PREFIX: &[u8] = b"HTTP/1.1 ";
    let status_code = written.strip_prefix(PREFIX)?.get(..3)?;
    let (status, message) = match status_code {
        b"400" => (
            StatusCode::BAD_REQUEST,
            "the request is malformed: bad request line or header".to_owned(),
        ),
        b"414" => (
            StatusCode::URI_TOO_LONG,
            "the request target is too long".to_owned(),
        ),
        b"431" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request headers are larger than the limit of {MAX_HEADER_BYTES} bytes or 100 fields"
            ),
        ),
        _ => return None,
    };
    let head_end = written
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    if head_end + 4 != written.len() {
        return None;
    }
    let head = String::from_utf8_lossy(&written[..head_end]);
    let lines: Vec<&str> = head.split("\r\n").collect();
    let has = |name: &str| {
        lines.iter().any(|line| {
            line.get(..name.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(name))
        })
    };
    if has("content-type:")
        || !lines
            .iter()
            .any(|line| line.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let date = lines
        .iter()
        .find(|line| {
            line.get(..5)
                .is_some_and(|start| start.eq_ignore_ascii_case("date:"))
        })
        .map(|line| line[5..].trim().to_owned());
    let body = envelope::envelope_json(status, "INVALID_INPUT", &message, &serde_json::Value::Null);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(date) = date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_parser_errors_become_envelopes_and_service_answers_pass() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 10:00:00 GMT\r\n\r\n";
        let replaced =
            String::from_utf8(parser_error_envelope(bare).expect("replaced")).expect("utf-8");
        assert!(replaced.starts_with("HTTP/1.1 431 "), "{replaced}");
        assert!(replaced.contains("connection: close"));
        assert!(replaced.contains("date: Sun, 29 Nov 2026 10:00:00 GMT"));
        let body = replaced.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["code"], "INVALID_INPUT");
        assert_eq!(json["success"], false);

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: 2\r\n\r\n{}";
        assert!(parser_error_envelope(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(parser_error_envelope(ok).is_none());
    }
}
