//! Budgets kept in this process: GCRA limiters from `governor`, on tokio's clock so tests can pause
//! and advance time. They are the only budgets without Redis, and the fallback while Redis does not
//! answer.

use std::num::NonZeroU32;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::RateLimit;

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

/// One request budget in this process: a limiter, or no limit at all.
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
