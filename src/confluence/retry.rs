//! When to try an upstream call again: capped, jittered backoff inside the operation's deadline.
//! A read keeps being retried until its deadline, not a fixed number of times: a Confluence that
//! restarts within the deadline is found again.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::UpstreamError;

/// Why an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Confluence answered with this status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The parsed `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// No connection could be made: the request never left.
    Connect,
    /// The connection broke after the request may have been sent.
    Lost,
}

/// A failed attempt: the error to report if no retry follows, and its cause.
#[derive(Debug)]
pub(crate) struct FailedAttempt {
    pub error: UpstreamError,
    pub cause: Failure,
}

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// GET: repeating it changes nothing.
    Idempotent,
    /// POST, PUT, DELETE: repeated only when Confluence said it did not process the request.
    Write,
}

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// The backoff after the first failure; it doubles per failure.
    pub first_backoff: Duration,
    /// The longest backoff between two attempts (a longer `Retry-After` still wins).
    pub max_backoff: Duration,
    /// Attempts in all, the first included; `u32::MAX` leaves the deadline as the only bound.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// Backoff from 250 ms doubling up to 2 s, attempts bounded only by the deadline: a Confluence
    /// back after a restart is tried again within 2 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_attempts: u32::MAX,
        }
    }
}

/// A `Retry-After` value in either of its forms: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, the obsolete RFC 850 and asctime forms too), read against
/// `now`. A date in the past means "now". Anything else is treated as absent.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The pause before the next attempt, or `None` to give up. `attempts` is how many were made so
    /// far (1 after the first); `jitter` is uniform in `[0, 1)` and spreads the backoff over its
    /// upper half so that many clients do not retry in lockstep.
    pub fn pause(
        &self,
        idempotency: Idempotency,
        cause: Failure,
        attempts: u32,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts >= self.max_attempts || !retryable(idempotency, cause) {
            return None;
        }
        let doubling = 2u32.saturating_pow(attempts.saturating_sub(1));
        let backoff = self
            .first_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        let jittered = backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        let asked = match cause {
            Failure::Status { retry_after, .. } => retry_after.unwrap_or_default(),
            Failure::Connect | Failure::Lost => Duration::ZERO,
        };
        Some(jittered.max(asked))
    }
}

fn retryable(idempotency: Idempotency, cause: Failure) -> bool {
    match (idempotency, cause) {
        (Idempotency::Idempotent, Failure::Status { status, .. }) => {
            matches!(status, 429 | 502 | 503 | 504)
        }
        (Idempotency::Idempotent, Failure::Connect | Failure::Lost) => true,
        // A write is repeated only when Confluence said it did not process it.
        (Idempotency::Write, Failure::Status { status: 429, .. }) => true,
        (
            Idempotency::Write,
            Failure::Status {
                status: 503,
                retry_after,
            },
        ) => retry_after.is_some(),
        (Idempotency::Write, _) => false,
    }
}

/// Runs `attempt` until it succeeds, the policy gives up, or `deadline` passes (→ `Timeout`). A
/// retry whose pause would end past the deadline is not made: the last error is returned instead,
/// so a caller sees `RateLimited` or `Unavailable` rather than a wait that cannot help.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    idempotency: Idempotency,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, UpstreamError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FailedAttempt>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failed = match tokio::time::timeout_at(deadline, attempt()).await {
            Err(_elapsed) => return Err(UpstreamError::Timeout),
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failed)) => failed,
        };
        let Some(pause) = policy.pause(idempotency, failed.cause, attempts, fastrand::f64()) else {
            return Err(failed.error);
        };
        if Instant::now() + pause >= deadline {
            return Err(failed.error);
        }
        tracing::debug!(
            attempts,
            pause_ms = pause.as_millis() as u64,
            "retrying upstream call"
        );
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        first_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(4),
        max_attempts: 5,
    };

    fn status(status: u16, retry_after_secs: Option<u64>) -> Failure {
        Failure::Status {
            status,
            retry_after: retry_after_secs.map(Duration::from_secs),
        }
    }

    fn check(idempotency: Idempotency, cause: Failure, attempts: u32, expected: Option<Duration>) {
        let got = POLICY.pause(idempotency, cause, attempts, 1.0);
        assert_eq!(
            got, expected,
            "{idempotency:?} {cause:?} after {attempts} attempts"
        );
    }

    #[test]
    fn reads_retry_transient_failures_and_writes_only_unprocessed_ones() {
        use Idempotency::{Idempotent, Write};
        let ms = Duration::from_millis;
        check(Idempotent, status(429, None), 1, Some(ms(250)));
        check(Idempotent, status(502, None), 2, Some(ms(500)));
        check(Idempotent, status(503, None), 3, Some(ms(1000)));
        check(Idempotent, status(504, None), 4, Some(ms(2000)));
        check(Idempotent, status(503, None), 5, None);
        check(Idempotent, Failure::Connect, 1, Some(ms(250)));
        check(Idempotent, Failure::Lost, 1, Some(ms(250)));
        check(Idempotent, status(500, None), 1, None);
        check(Idempotent, status(404, None), 1, None);
        check(Idempotent, status(429, Some(3)), 1, Some(ms(3000)));
        check(Write, status(429, None), 1, Some(ms(250)));
        check(Write, status(429, Some(2)), 1, Some(ms(2000)));
        check(Write, status(503, Some(1)), 1, Some(ms(1000)));
        check(Write, status(503, None), 1, None);
        check(Write, status(502, None), 1, None);
        check(Write, Failure::Connect, 1, None);
        check(Write, Failure::Lost, 1, None);
        check(Write, status(409, None), 1, None);
    }

    #[test]
    fn retry_after_is_read_in_both_forms() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 10:00:00 GMT").expect("date");
        let secs = |seconds| Some(Duration::from_secs(seconds));
        assert_eq!(parse_retry_after(" 7 ", now), secs(7));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 10:00:30 GMT", now),
            secs(30)
        );
        assert_eq!(
            parse_retry_after("Sunday, 29-Nov-26 10:01:00 GMT", now),
            secs(60)
        );
        assert_eq!(parse_retry_after("Sun Nov 29 10:00:05 2026", now), secs(5));
        assert_eq!(
            parse_retry_after("Sun, 29 Nov 2026 09:00:00 GMT", now),
            secs(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_retried_until_the_deadline_not_a_fixed_number_of_times() {
        let start = Instant::now();
        let calls = Cell::new(0);
        // Confluence is down for 7 s of a 10 s deadline, then answers.
        let result = run(
            &RetryPolicy::default(),
            Idempotency::Idempotent,
            start + Duration::from_secs(10),
            || {
                calls.set(calls.get() + 1);
                let up = Instant::now() - start >= Duration::from_secs(7);
                async move { if up { Ok(()) } else { Err(unavailable()) } }
            },
        )
        .await;
        assert_eq!(result, Ok(()), "after {} attempts", calls.get());
        assert!(calls.get() > 5, "{} attempts", calls.get());
        assert!(Instant::now() - start <= Duration::from_secs(9));
    }

    #[test]
    fn backoff_is_capped_and_jitter_stays_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 100,
            ..POLICY
        };
        let cause = status(503, None);
        assert_eq!(
            policy.pause(Idempotency::Idempotent, cause, 40, 1.0),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            policy.pause(Idempotency::Idempotent, cause, 1, 0.0),
            Some(Duration::from_millis(125))
        );
        for _ in 0..100 {
            let pause = policy
                .pause(Idempotency::Idempotent, cause, 3, fastrand::f64())
                .expect("retryable");
            assert!(
                pause >= Duration::from_millis(500) && pause <= Duration::from_millis(1000),
                "{pause:?}"
            );
        }
    }

    fn unavailable() -> FailedAttempt {
        FailedAttempt {
            error: UpstreamError::Unavailable("http status 503".to_owned()),
            cause: status(503, None),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_before_the_next_attempt() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let result = run(
            &POLICY,
            Idempotency::Write,
            start + Duration::from_secs(30),
            || {
                calls.set(calls.get() + 1);
                let first = calls.get() == 1;
                async move {
                    if first {
                        Err(FailedAttempt {
                            error: UpstreamError::RateLimited {
                                retry_after: Some(Duration::from_secs(2)),
                            },
                            cause: status(429, Some(2)),
                        })
                    } else {
                        Ok(Instant::now())
                    }
                }
            },
        )
        .await;
        let second_attempt_at = result.expect("the second attempt succeeds");
        assert_eq!(calls.get(), 2);
        assert!(second_attempt_at - start >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_failure_gives_the_last_error_before_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(2);
        let calls = Cell::new(0);
        let result: Result<(), _> = run(&POLICY, Idempotency::Idempotent, deadline, || {
            calls.set(calls.get() + 1);
            async { Err(unavailable()) }
        })
        .await;
        assert_eq!(
            result,
            Err(UpstreamError::Unavailable("http status 503".to_owned()))
        );
        assert!(
            Instant::now() < deadline,
            "gave up at {:?}",
            Instant::now() - start
        );
        assert!((3..=5).contains(&calls.get()), "{} attempts", calls.get());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_deadline_is_reported_at_once() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let result: Result<(), _> = run(
            &POLICY,
            Idempotency::Idempotent,
            start + Duration::from_secs(5),
            || {
                calls.set(calls.get() + 1);
                async {
                    Err(FailedAttempt {
                        error: UpstreamError::RateLimited {
                            retry_after: Some(Duration::from_secs(60)),
                        },
                        cause: status(429, Some(60)),
                    })
                }
            },
        )
        .await;
        assert_eq!(
            result,
            Err(UpstreamError::RateLimited {
                retry_after: Some(Duration::from_secs(60))
            })
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_outlives_the_deadline_is_a_timeout() {
        let start = Instant::now();
        let result: Result<(), _> = run(
            &POLICY,
            Idempotency::Idempotent,
            start + Duration::from_secs(1),
            || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            },
        )
        .await;
        assert_eq!(result, Err(UpstreamError::Timeout));
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_not_repeated() {
        let calls = Cell::new(0);
        let result: Result<(), _> = run(
            &POLICY,
            Idempotency::Write,
            Instant::now() + Duration::from_secs(30),
            || {
                calls.set(calls.get() + 1);
                async {
                    Err(FailedAttempt {
                        error: UpstreamError::Timeout,
                        cause: Failure::Lost,
                    })
                }
            },
        )
        .await;
        assert_eq!(result, Err(UpstreamError::Timeout));
        assert_eq!(calls.get(), 1);
    }
}
