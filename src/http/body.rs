//! Reading request bodies: a size limit per request, a deadline for the whole body (independent of
//! the upstream deadline), and a byte budget shared by every body the process holds, so that
//! stalled or slow uploads cannot pin unbounded memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::{ApiError, ErrorCode};

/// Bytes a body buffer starts with when its length is not declared.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// The memory all request bodies held at once may use, shared by every request of a process.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> BodyBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes currently held by bodies.
    pub fn in_use(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    /// Takes `bytes` more for `held`, or `None` when the budget has not that much left.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Option<()> {
        if bytes == 0 {
            return Some(());
        }
        let permits = u32::try_from(bytes).ok()?;
        let more = Arc::clone(&self.bytes)
            .try_acquire_many_owned(permits)
            .ok()?;
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
        Some(())
    }
}

/// How bodies are read.
#[derive(Debug, Clone)]
pub struct BodySettings {
    /// The whole body must arrive within this time after the request head, or the request is
    /// answered 408.
    pub read_timeout: Duration,
    /// The process-wide budget; a body that does not fit is answered 503 with `Retry-After`.
    pub budget: Arc<BodyBudget>,
}

impl Default for BodySettings {
    fn default() -> BodySettings {
        BodySettings {
            read_timeout: Duration::from_secs(30),
            budget: Arc::new(BodyBudget::new(32 * 1024 * 1024)),
        }
    }
}

/// A body buffer and the share of the budget it holds; dropping the `Bytes` made from it returns
/// both.
struct Budgeted {
    bytes: BytesMut,
    _permit: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (before reading, when the
/// declared length already says so), a body that does not arrive within the read timeout with
/// 408, and a body that does not fit in the process's budget with 503. The returned bytes hold
/// their share of the budget until they are dropped.
pub async fn read<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    settings: &BodySettings,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let deadline = tokio::time::Instant::now() + settings.read_timeout;
    match tokio::time::timeout_at(deadline, collect(body, declared, limit, &settings.budget)).await
    {
        Ok(result) => result,
        Err(_elapsed) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            code: ErrorCode::InvalidInput,
            message: format!(
                "the request body did not arrive within {} seconds",
                settings.read_timeout.as_secs_f64()
            ),
            headers: Vec::new(),
        }),
    }
}

async fn collect<B>(
    mut body: B,
    declared: Option<u64>,
    limit: usize,
    budget: &BodyBudget,
) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut held = None;
    // The buffer grows as bytes arrive (never beyond the declared length), so a client that
    // declares a large body and sends little holds little.
    let target = declared.map_or(limit, |length| length as usize);
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::invalid_input("request body could not be read"));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buffer.len() + data.len();
        if needed > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        if needed > buffer.capacity() {
            let grown = needed
                .max(buffer.capacity() * 2)
                .max(INITIAL_CAPACITY)
                .min(target.max(needed));
            let extra = grown - buffer.capacity();
            if budget.take(&mut held, extra).is_none() {
                return Err(busy());
            }
            buffer.reserve(grown - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    if buffer.is_empty() {
        return Ok(Bytes::new());
    }
    Ok(Bytes::from_owner(Budgeted {
        bytes: buffer,
        _permit: held,
    }))
}

/// 503: the bodies in flight already use the process's whole budget.
fn busy() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: ErrorCode::RateLimited,
        message: "too many request bodies are in flight on this server; retry after 1 seconds"
            .to_owned(),
        headers: vec![(RETRY_AFTER, HeaderValue::from_static("1"))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn settings(budget: usize) -> BodySettings {
        BodySettings {
            read_timeout: Duration::from_secs(5),
            budget: Arc::new(BodyBudget::new(budget)),
        }
    }

    #[tokio::test]
    async fn a_body_holds_its_budget_until_dropped() {
        let settings = settings(100_000);
        let body = Full::new(Bytes::from(vec![b'x'; 20_000]));
        let bytes = read(&HeaderMap::new(), body, 1 << 20, &settings)
            .await
            .expect("read");
        assert_eq!(bytes.len(), 20_000);
        assert!(settings.budget.in_use() >= 20_000);
        drop(bytes);
        assert_eq!(settings.budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_body_beyond_the_budget_is_503_and_returns_what_it_took() {
        let settings = settings(10_000);
        let body = Full::new(Bytes::from(vec![b'x'; 20_000]));
        let error = read(&HeaderMap::new(), body, 1 << 20, &settings)
            .await
            .expect_err("over budget");
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(settings.budget.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_408_at_the_deadline() {
        let settings = settings(1 << 20);
        let chunks = futures_util::stream::iter(vec![Ok::<_, std::convert::Infallible>(
            hyper::body::Frame::data(Bytes::from_static(b"{\"title\":")),
        )])
        .chain(futures_util::stream::pending());
        let started = tokio::time::Instant::now();
        let error = read(
            &HeaderMap::new(),
            StreamBody::new(chunks),
            1 << 20,
            &settings,
        )
        .await
        .expect_err("stalled");
        assert_eq!(error.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(settings.budget.in_use(), 0);
    }

    use futures_util::StreamExt;
}
