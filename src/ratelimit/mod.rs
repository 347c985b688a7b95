//! Per-endpoint request budgets: the operator's quota for authenticated requests, a strict budget for
//! failed authentications and a generous one for the public routes. Each is a GCRA bucket, kept in
//! the process (`local`) or, with `--redis-url`, shared by every replica through Redis (`redis`),
//! with the local bucket as the fallback while Redis does not answer.

pub mod local;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use self::local::Budget;
use self::redis::{RedisBudgets, SharedBucket};
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

/// A request refused because the `kind` budget is spent; the client may retry after
/// `retry_after_secs` whole seconds (rounded up, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry after {retry_after_secs} seconds")]
pub struct RateLimited {
    /// The budget that is spent.
    pub kind: LimitKind,
    /// Whole seconds until a request fits again.
    pub retry_after_secs: u64,
}

/// Where an endpoint's budgets are shared with the other replicas.
#[derive(Clone, Copy)]
pub struct Sharing<'a> {
    /// The connection to Redis.
    pub redis: &'a RedisBudgets,
    /// The endpoint's name, part of every key.
    pub endpoint: &'a str,
    /// [`secrets_fingerprint`] of the endpoint's accepted secrets, part of the failure budget's key.
    pub secrets: &'a str,
}

/// One budget: the local bucket, and the Redis bucket that takes precedence while Redis answers.
struct Bucket {
    local: Budget,
    shared: Option<(RedisBudgets, SharedBucket)>,
}

impl Bucket {
    /// The bucket for `limit`; shared under `key` when `sharing` is set and the limit is not off.
    fn new(limit: RateLimit, sharing: Option<Sharing<'_>>, kind: LimitKind) -> Bucket {
        let shared = sharing.filter(|_| limit.per_minute > 0).map(|sharing| {
            let mut key = format!(
                "conflagent:ratelimit:{}:{}:{}:{}",
                sharing.endpoint,
                kind.as_str(),
                limit.per_minute,
                limit.burst
            );
            if kind == LimitKind::Auth {
                key.push(':');
                key.push_str(sharing.secrets);
            }
            (
                sharing.redis.clone(),
                SharedBucket::new(key, limit.per_minute, limit.burst),
            )
        });
        Bucket {
            local: Budget::new(limit),
            shared,
        }
    }

    /// Spends one request at once when the bucket is local only; `None` when it is shared, which
    /// takes asking Redis.
    fn spend_now(&self) -> Option<Result<(), Duration>> {
        self.shared.is_none().then(|| self.local.spend())
    }

    /// Spends one request, in Redis when it answers in time, else locally.
    async fn spend(&self) -> Result<(), Duration> {
        if let Some((redis, bucket)) = &self.shared {
            // Boxed: the Redis call's state is large, and every request's future would carry it
            // (and move it at each await) even where no budget is shared.
            if let Some(answer) = Box::pin(redis.spend(bucket)).await {
                return answer;
            }
        }
        self.local.spend()
    }
}

/// The budgets of one endpoint. They outlive reloads: a rebuilt endpoint shares its predecessor's
/// budgets unless its own quota changed. With Redis, the keys carry the quota (and, for the failure
/// budget, a fingerprint of the accepted secrets), so every replica of a changed endpoint moves to a
/// fresh bucket too.
pub struct EndpointLimits {
    setting: RateLimit,
    quota: Arc<Bucket>,
    auth_failures: Arc<Bucket>,
    public: Arc<Bucket>,
}

impl EndpointLimits {
    /// The budgets for an endpoint whose quota is `setting`, taken over from `previous` where they
    /// still apply: the quota and public budgets while `setting` is unchanged, the budget for failed
    /// authentications while the accepted secrets are unchanged (`same_secrets`), since failures
    /// against other secrets, such as clients that switched to a rotated secret a moment before the
    /// file did, say nothing about guessing. A quota of 0 turns off both the quota and the public
    /// budget; the budget for failed authentications always applies. With `sharing`, new budgets
    /// live in Redis.
    pub fn new(
        setting: RateLimit,
        previous: Option<&EndpointLimits>,
        same_secrets: bool,
        sharing: Option<Sharing<'_>>,
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
                || Arc::new(Bucket::new(setting, sharing, LimitKind::Quota)),
                |previous| Arc::clone(&previous.quota),
            ),
            auth_failures: kept_failures.map_or_else(
                || Arc::new(Bucket::new(AUTH_FAILURES, sharing, LimitKind::Auth)),
                |previous| Arc::clone(&previous.auth_failures),
            ),
            public: kept.map_or_else(
                || Arc::new(Bucket::new(public_limit, sharing, LimitKind::Public)),
                |previous| Arc::clone(&previous.public),
            ),
        }
    }

    /// Spends one request of the `kind` budget; a spent budget says how many whole seconds to wait.
    pub async fn spend(&self, kind: LimitKind) -> Result<(), RateLimited> {
        let spent = self.bucket(kind).spend().await;
        refused_after(kind, spent)
    }

    /// [`spend`](Self::spend) without waiting, when the `kind` budget is local; `None` when it is
    /// shared through Redis, which only `spend` can ask.
    pub fn spend_now(&self, kind: LimitKind) -> Option<Result<(), RateLimited>> {
        let spent = self.bucket(kind).spend_now()?;
        Some(refused_after(kind, spent))
    }

    fn bucket(&self, kind: LimitKind) -> &Bucket {
        match kind {
            LimitKind::Quota => &self.quota,
            LimitKind::Auth => &self.auth_failures,
            LimitKind::Public => &self.public,
        }
    }

    /// Whether `other` shares this endpoint's quota budget (it was carried over on reload).
    pub fn shares_quota_with(&self, other: &EndpointLimits) -> bool {
        Arc::ptr_eq(&self.quota, &other.quota)
    }

    /// The Redis keys of the endpoint's shared budgets (none without Redis).
    pub fn redis_keys(&self) -> Vec<&str> {
        [&self.quota, &self.auth_failures, &self.public]
            .into_iter()
            .filter_map(|bucket| bucket.shared.as_ref().map(|(_, shared)| shared.key()))
            .collect()
    }
}

/// A short fingerprint of an endpoint's accepted secrets for the failure budget's Redis key: it
/// changes when they change and says nothing usable about them (32 bits of a salted SHA-256).
pub fn secrets_fingerprint<'a>(secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"conflagent rate-limit key\0");
    for secret in secrets {
        hasher.update((secret.len() as u64).to_be_bytes());
        hasher.update(secret.as_bytes());
    }
    hasher.finalize()[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A spend of the `kind` budget as the caller sees it: a spent budget says how many whole seconds
/// to wait.
fn refused_after(kind: LimitKind, spent: Result<(), Duration>) -> Result<(), RateLimited> {
    spent.map_err(|wait| RateLimited {
        kind,
        retry_after_secs: whole_seconds(wait),
    })
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

    fn local(
        setting: RateLimit,
        previous: Option<&EndpointLimits>,
        same_secrets: bool,
    ) -> EndpointLimits {
        EndpointLimits::new(setting, previous, same_secrets, None)
    }

    fn retry_after(limited: &RateLimited) -> u64 {
        limited.retry_after_secs
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
        let limits = local(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..3 {
            limits
                .spend(LimitKind::Quota)
                .await
                .expect("within the burst");
        }
        let error = limits
            .spend(LimitKind::Quota)
            .await
            .expect_err("burst spent");
        assert_eq!(error.kind, LimitKind::Quota);
        assert_eq!(retry_after(&error), 1);
        assert_eq!(
            error.to_string(),
            "rate limit exceeded; retry after 1 seconds"
        );

        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(
            limits.spend(LimitKind::Quota).await.is_err(),
            "not yet refilled"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        limits
            .spend(LimitKind::Quota)
            .await
            .expect("one request refilled after a second");
        assert!(limits.spend(LimitKind::Quota).await.is_err());

        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            limits
                .spend(LimitKind::Quota)
                .await
                .expect("the burst refills, no more");
        }
        assert!(limits.spend(LimitKind::Quota).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_counts_whole_seconds_of_a_slow_quota() {
        let limits = local(
            RateLimit {
                per_minute: 2,
                burst: 1,
            },
            None,
            false,
        );
        limits.spend(LimitKind::Quota).await.expect("first request");
        let error = limits.spend(LimitKind::Quota).await.expect_err("spent");
        assert_eq!(retry_after(&error), 30);
        tokio::time::advance(Duration::from_millis(10_500)).await;
        let error = limits
            .spend(LimitKind::Quota)
            .await
            .expect_err("still spent");
        assert_eq!(retry_after(&error), 20, "19.5 s round up to 20");
    }

    #[tokio::test(start_paused = true)]
    async fn the_three_budgets_are_separate() {
        let limits = local(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..AUTH_FAILURES.burst {
            limits.spend(LimitKind::Auth).await.expect("failure budget");
        }
        assert!(limits.spend(LimitKind::Auth).await.is_err());
        limits
            .spend(LimitKind::Quota)
            .await
            .expect("quota untouched by failures");
        for _ in 0..PUBLIC.burst {
            limits
                .spend(LimitKind::Public)
                .await
                .expect("public budget");
        }
        assert!(limits.spend(LimitKind::Public).await.is_err());
        limits
            .spend(LimitKind::Quota)
            .await
            .expect("quota untouched by public routes");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_per_minute_disables_quota_and_public_but_not_auth_failures() {
        let limits = local(
            RateLimit {
                per_minute: 0,
                burst: 20,
            },
            None,
            false,
        );
        for _ in 0..10_000 {
            limits.spend(LimitKind::Quota).await.expect("unlimited");
            limits.spend(LimitKind::Public).await.expect("unlimited");
        }
        for _ in 0..AUTH_FAILURES.burst {
            limits.spend(LimitKind::Auth).await.expect("failure budget");
        }
        assert!(limits.spend(LimitKind::Auth).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_budgets_unless_the_quota_changed() {
        let first = local(PER_MINUTE_60_BURST_3, None, false);
        for _ in 0..3 {
            first.spend(LimitKind::Quota).await.expect("burst");
        }
        for _ in 0..AUTH_FAILURES.burst {
            first.spend(LimitKind::Auth).await.expect("failure budget");
        }

        let same = local(PER_MINUTE_60_BURST_3, Some(&first), true);
        assert!(same.shares_quota_with(&first));
        assert!(
            same.spend(LimitKind::Quota).await.is_err(),
            "budget carried over"
        );

        let changed = local(
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
            .await
            .expect("a new quota starts full");
        assert!(
            changed.spend(LimitKind::Auth).await.is_err(),
            "changing the quota does not forgive failed authentications"
        );

        let rotated = local(
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
            .await
            .expect("failures against the old secrets are forgotten");
    }

    async fn unreachable_redis() -> RedisBudgets {
        let settings = redis::RedisSettings {
            connect_timeout: Duration::from_millis(200),
            ..redis::RedisSettings::default()
        };
        RedisBudgets::connect("redis://127.0.0.1:1", settings)
            .await
            .expect("a valid URL")
    }

    #[tokio::test]
    async fn redis_keys_name_the_endpoint_the_budget_its_rate_and_the_secrets() {
        let redis = unreachable_redis().await;
        let fingerprint = secrets_fingerprint(["current-secret-0123456789"]);
        let sharing = Sharing {
            redis: &redis,
            endpoint: "docs",
            secrets: &fingerprint,
        };
        let limits = EndpointLimits::new(PER_MINUTE_60_BURST_3, None, false, Some(sharing));
        let auth_key = format!("conflagent:ratelimit:docs:auth:10:5:{fingerprint}");
        assert_eq!(
            limits.redis_keys(),
            [
                "conflagent:ratelimit:docs:quota:60:3",
                auth_key.as_str(),
                "conflagent:ratelimit:docs:public:600:100"
            ]
        );
        let unlimited = EndpointLimits::new(
            RateLimit {
                per_minute: 0,
                burst: 20,
            },
            None,
            false,
            Some(sharing),
        );
        assert_eq!(
            unlimited.redis_keys(),
            [auth_key.as_str()],
            "no bucket for a budget that is off"
        );
        assert!(
            local(PER_MINUTE_60_BURST_3, None, false)
                .redis_keys()
                .is_empty()
        );
    }

    #[test]
    fn the_secrets_fingerprint_is_short_and_changes_with_the_secrets() {
        let one = secrets_fingerprint(["current-secret-0123456789"]);
        assert_eq!(one.len(), 8);
        assert!(one.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(one, secrets_fingerprint(["current-secret-0123456789"]));
        assert_ne!(
            one,
            secrets_fingerprint(["current-secret-0123456789", "previous-secret-0123456789"])
        );
        assert_ne!(
            secrets_fingerprint(["ab", "c"]),
            secrets_fingerprint(["a", "bc"])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_redis_does_not_answer_the_local_budget_decides() {
        let redis = unreachable_redis().await;
        assert!(!redis.is_up());
        let sharing = Sharing {
            redis: &redis,
            endpoint: "docs",
            secrets: "00000000",
        };
        let limits = EndpointLimits::new(PER_MINUTE_60_BURST_3, None, false, Some(sharing));
        for _ in 0..3 {
            limits.spend(LimitKind::Quota).await.expect("local burst");
        }
        let refused = limits.spend(LimitKind::Quota).await.expect_err("spent");
        assert_eq!(retry_after(&refused), 1);
    }
}
