//! Per-endpoint request budgets: the operator's quota for authenticated requests, a strict budget for
//! failed authentications and a generous one for the public routes. GCRA limiters from `governor`,
//! on tokio's clock so tests can pause and advance time.

use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::RateLimit;

/// Failed authentications one endpoint answers with 401 per minute, once its burst is spent; past
/// that a wrong or missing secret gets 429.
pub const AUTH_FAILURES: RateLimit = RateLimit {
    per_minute: 10,
    burst: 5,
};

/// Requests per minute to the public routes (`health`, `openapi.json`, and requests that match no
/// route) of one endpoint.
pub const PUBLIC: RateLimit = RateLimit {
    per_minute: 600,
    burst: 100,
};

/// A point in time on tokio's clock, which `tokio::time::pause` and `advance` control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, duration: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(duration))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: TokioInstant) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> TokioInstant {
        self.0
            .checked_sub(duration.into())
            .map_or(*self, TokioInstant)
    }
}

/// `governor`'s view of tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One request budget: a limiter, or no limit at all.
pub struct Budget {
    limiter: Option<Limiter>,
}

impl Budget {
    /// A budget of `limit.per_minute` requests per minute with bursts of `limit.burst` (at least
    /// one); a rate of 0 means unlimited.
    pub fn new(limit: RateLimit) -> Budget {
        let limiter = NonZeroU32::new(limit.per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(
                Quota::per_minute(per_minute).allow_burst(burst),
                TokioClock,
            )
        });
        Budget { limiter }
    }

    /// Spends one request; when the budget is spent, returns how long until the next one fits.
    pub fn spend(&self) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(TokioClock.now()))
    }
}

/// Which budget a request was refused by; the `kind` label of `conflagent_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The endpoint's quota for authenticated requests.
    Quota,
    /// The budget for failed authentications.
    Auth,
    /// The budget for public routes.
    Public,
}

impl LimitKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Quota => "quota",
            LimitKind::Auth => "auth",
            LimitKind::Public => "public",
        }
    }
}

/// A request refused because a budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The budget that is spent.
    pub kind: LimitKind,
    /// When to retry, in whole seconds (at least 1).
    pub retry_after_secs: u64,
}

/// The budgets of one endpoint. They outlive reloads: a rebuilt endpoint shares its predecessor's
/// budgets unless its own quota changed.
pub struct EndpointLimits {
    setting: RateLimit,
    quota: Arc<Budget>,
    auth_failures: Arc<Budget>,
    public: Arc<Budget>,
}

impl EndpointLimits {
    /// The budgets for an endpoint whose quota is `setting`, taken over from `previous` where they
    /// still apply: the quota and public budgets while `setting` is unchanged, the budget for failed
    /// authentications while the accepted secrets are unchanged (`same_secrets`), since failures
    /// against other secrets, such as clients that switched to a rotated secret a moment before the
    /// file did, say nothing about guessing. A quota of 0 turns off both the quota and the public
    /// budget; the budget for failed authentications always applies.
    pub fn new(
        setting: RateLimit,
        previous: Option<&EndpointLimits>,
        same_secrets: bool,
    ) -> EndpointLimits {
        let public_limit = if setting.per_minute == 0 {
            setting
        } else {
            PUBLIC
        };
        let kept = previous.filter(|previous| previous.setting == setting);
        let kept_failures = previous.filter(|_| same_secrets);
        EndpointLimits {
            setting,
            quota: kept.map_or_else(
                || Arc::new(Budget::new(setting)),
                |previous| Arc::clone(&previous.quota),
            ),
            auth_failures: kept_failures.map_or_else(
                || Arc::new(Budget::new(AUTH_FAILURES)),
                |previous| Arc::clone(&previous.auth_failures),
            ),
            public: kept.map_or_else(
                || Arc::new(Budget::new(public_limit)),
                |previous| Arc::clone(&previous.public),
            ),
        }
    }

    /// Spends one request of the `kind` budget; a spent budget is refused with the wait rounded up
    /// to whole seconds (the 429's `Retry-After`).
    pub fn spend(&self, kind: LimitKind) -> Result<(), RateLimited> {
        let budget = match kind {
            LimitKind::Quota => &self.quota,
            LimitKind::Auth => &self.auth_failures,
            LimitKind::Public => &self.public,
        };
        budget.spend().map_err(|wait| {
            crate::metrics::rate_limited(kind.as_str());
            RateLimited {
                kind,
                retry_after_secs: whole_seconds(wait),
            }
        })
    }

    /// Whether `other` shares this endpoint's quota budget (it was carried over on reload).
    pub fn shares_quota_with(&self, other: &EndpointLimits) -> bool {
        Arc::ptr_eq(&self.quota, &other.quota)
    }
}

/// `wait` in whole seconds, rounded up, and at least 1: a client told to retry after 0 seconds
/// would retry at once and be refused again.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_MINUTE_60_BURST_3: RateLimit = RateLimit {
        per_minute: 60,
        burst: 3,
    };

    fn retry_after(error: &RateLimited) -> String {
        error.retry_after_secs.to_string()
    }

    #[test]
    fn whole_seconds_round_up() {
        fn check(wait: Duration, expected: u64) {
            assert_eq!(whole_seconds(wait), expected, "{wait:?}");
        }
        check(Duration::ZERO, 1);
        check(Duration::from_millis(1), 1);
        check(Duration::from_secs(1), 1);
        check(Duration::from_millis(1001), 2);
        check(Duration::from_secs(59), 59);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_429_with_retry_after_then_refill_as_time_passes() {
        let limits = EndpointLimits::new(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..3 {
            limits.spend(LimitKind::Quota).expect("within the burst");
        }
        let error = limits.spend(LimitKind::Quota).expect_err("burst spent");
        assert_eq!(error.kind, LimitKind::Quota);
        assert_eq!(retry_after(&error), "1");

        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(limits.spend(LimitKind::Quota).is_err(), "not yet refilled");
        tokio::time::advance(Duration::from_millis(1)).await;
        limits
            .spend(LimitKind::Quota)
            .expect("one request refilled after a second");
        assert!(limits.spend(LimitKind::Quota).is_err());

        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            limits
                .spend(LimitKind::Quota)
                .expect("the burst refills, no more");
        }
        assert!(limits.spend(LimitKind::Quota).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_counts_whole_seconds_of_a_slow_quota() {
        let limits = EndpointLimits::new(
            RateLimit {
                per_minute: 2,
                burst: 1,
            },
            None,
            false,
        );
        limits.spend(LimitKind::Quota).expect("first request");
        let error = limits.spend(LimitKind::Quota).expect_err("spent");
        assert_eq!(retry_after(&error), "30");
        tokio::time::advance(Duration::from_millis(10_500)).await;
        let error = limits.spend(LimitKind::Quota).expect_err("still spent");
        assert_eq!(retry_after(&error), "20", "19.5 s round up to 20");
    }

    #[tokio::test(start_paused = true)]
    async fn the_three_budgets_are_separate() {
        let limits = EndpointLimits::new(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..AUTH_FAILURES.burst {
            limits.spend(LimitKind::Auth).expect("failure budget");
        }
        assert!(limits.spend(LimitKind::Auth).is_err());
        limits
            .spend(LimitKind::Quota)
            .expect("quota untouched by failures");
        for _ in 0..PUBLIC.burst {
            limits.spend(LimitKind::Public).expect("public budget");
        }
        assert!(limits.spend(LimitKind::Public).is_err());
        limits
            .spend(LimitKind::Quota)
            .expect("quota untouched by public routes");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_per_minute_disables_quota_and_public_but_not_auth_failures() {
        let limits = EndpointLimits::new(
            RateLimit {
                per_minute: 0,
                burst: 20,
            },
            None,
            false,
        );
        for _ in 0..10_000 {
            limits.spend(LimitKind::Quota).expect("unlimited");
            limits.spend(LimitKind::Public).expect("unlimited");
        }
        for _ in 0..AUTH_FAILURES.burst {
            limits.spend(LimitKind::Auth).expect("failure budget");
        }
        assert!(limits.spend(LimitKind::Auth).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_budgets_unless_the_quota_changed() {
        let first = EndpointLimits::new(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..3 {
            first.spend(LimitKind::Quota).expect("burst");
        }
        for _ in 0..AUTH_FAILURES.burst {
            first.spend(LimitKind::Auth).expect("failure budget");
        }

        let same = EndpointLimits::new(PER_MINUTE_60_BURST_3, Some(&first), true);
        assert!(same.shares_quota_with(&first));
        assert!(same.spend(LimitKind::Quota).is_err(), "budget carried over");

        let changed = EndpointLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 4,
            },
            Some(&same),
            true,
        );
        assert!(!changed.shares_quota_with(&same));
        changed
            .spend(LimitKind::Quota)
            .expect("a new quota starts full");
        assert!(
            changed.spend(LimitKind::Auth).is_err(),
            "changing the quota does not forgive failed authentications"
        );

        let rotated = EndpointLimits::new(
            RateLimit {
                per_minute: 60,
                burst: 4,
            },
            Some(&changed),
            false,
        );
        assert!(
            rotated.shares_quota_with(&changed),
            "rotating a secret keeps the quota"
        );
        rotated
            .spend(LimitKind::Auth)
            .expect("failures against the old secrets are forgotten");
    }
}
