//! Budgets shared by every replica through Redis (or Valkey): each budget is a GCRA bucket that one
//! Lua script reads and updates atomically, on Redis's own clock, in one round trip per request.
//!
//! Redis is never a reason to fail a request. Each call has a short deadline; a call that fails or
//! misses it is answered from the local budget and counted in
//! `conflagent_ratelimit_backend_fallbacks_total`. A failed call, or several late ones in a row,
//! mark Redis down (one warning per outage): requests then use their local budgets without asking,
//! while a background task reconnects and probes until Redis answers within the deadline again, and
//! requests go back to the shared buckets. A restarted or flushed Redis has no buckets: they start
//! full.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind};

/// The GCRA script. `KEYS[1]` is the bucket, which holds its theoretical arrival time in
/// microseconds of Redis's clock; `ARGV[1]` is the interval between requests in microseconds and
/// `ARGV[2]` the burst. A request fits when the bucket, moved one interval on, is no more than a
/// burst of intervals ahead of now. Returns `{1, 0}` for a request that fits, else `{0, wait}` with
/// the microseconds until one would. The key expires when the bucket would be full again, so an idle
/// bucket leaves nothing behind and a missing key is a full bucket.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - burst * interval
if allowed_at > now then
    return {0, allowed_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000))
return {1, 0}
";

/// Calls in a row that must miss the deadline before Redis counts as down. Each of them still
/// falls back at once; a single late answer (a busy moment) does not start an outage.
const LATE_IN_A_ROW: u32 = 3;

/// After a warning about an outage, further outages within this time are logged at debug level
/// only.
const QUIET_AFTER_WARNING: Duration = Duration::from_secs(60);

/// The key the reconnection probe spends.
const PROBE_KEY: &str = "conflagent:ratelimit-probe";

/// How the replica talks to Redis.
#[derive(Debug, Clone, Copy)]
pub struct RedisSettings {
    /// The longest one budget call may take before the request uses its local budget instead.
    pub deadline: Duration,
    /// How often the background task tries to reach Redis again while it is down.
    pub probe_interval: Duration,
    /// The longest a (re)connection may take, handshake included.
    pub connect_timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> RedisSettings {
        RedisSettings {
            deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
            probe_interval: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// The default deadline of one budget call, in milliseconds.
pub const DEFAULT_DEADLINE_MS: u64 = 5;

/// An unusable `--redis-url`. Its message never repeats the URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Redis URL is not valid; expected redis://[[user]:password@]host[:port][/db] or rediss://... (the URL is not repeated here, as it may hold a password)"
)]
pub struct InvalidRedisUrl;

/// The connection to Redis shared by every endpoint of the process. Cheap to clone.
#[derive(Clone)]
pub struct RedisBudgets {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// `host:port` for logs: never the URL, which may hold a password.
    target: String,
    settings: RedisSettings,
    connection: ArcSwapOption<MultiplexedConnection>,
    up: AtomicBool,
    /// Requests answered from local budgets since Redis last answered again.
    fallbacks: AtomicU64,
    /// Calls in a row that missed the deadline.
    late_in_a_row: AtomicU32,
    /// When an outage was last logged as a warning.
    last_warning: Mutex<Option<tokio::time::Instant>>,
    /// Whether the current outage was logged as a warning (so its end is logged too).
    outage_warned: AtomicBool,
    script_hash: String,
}

/// One bucket in Redis: its key and its rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBucket {
    key: String,
    interval_micros: u64,
    burst: u32,
}

impl SharedBucket {
    /// The bucket `key` granting `per_minute` requests a minute (not 0) in bursts of `burst`.
    pub fn new(key: String, per_minute: u32, burst: u32) -> SharedBucket {
        SharedBucket {
            key,
            interval_micros: 60_000_000 / u64::from(per_minute.max(1)),
            burst: burst.max(1),
        }
    }

    /// The Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Why a request was answered from its local budget.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    /// Redis was already known to be down; it was not asked.
    Down,
    /// The call failed.
    Error,
    /// The call missed its deadline.
    Timeout,
}

impl Fallback {
    fn as_str(self) -> &'static str {
        match self {
            Fallback::Down => "down",
            Fallback::Error => "error",
            Fallback::Timeout => "timeout",
        }
    }
}

impl RedisBudgets {
    /// Connects to the Redis at `url` (`redis://`, `rediss://` for TLS) and starts the task that
    /// reconnects after outages. An unreachable Redis is not an error: the replica starts on its
    /// local budgets (with a warning) and moves to Redis once it answers. Must run inside a tokio
    /// runtime.
    pub async fn connect(
        url: &str,
        settings: RedisSettings,
    ) -> Result<RedisBudgets, InvalidRedisUrl> {
        let client = redis::Client::open(url).map_err(|_| InvalidRedisUrl)?;
        let target = client.get_connection_info().addr().to_string();
        let inner = Arc::new(Inner {
            client,
            target,
            settings,
            connection: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            late_in_a_row: AtomicU32::new(0),
            last_warning: Mutex::new(None),
            outage_warned: AtomicBool::new(false),
            script_hash: redis::Script::new(GCRA).get_hash().to_owned(),
        });
        match inner.probe().await {
            Ok(()) => {
                inner.up.store(true, Ordering::Release);
                tracing::info!(redis = %inner.target, "rate-limit budgets are shared through Redis");
            }
            Err(reason) => {
                inner.outage_warned.store(true, Ordering::Relaxed);
                tracing::warn!(
                    redis = %inner.target,
                    %reason,
                    "Redis does not answer; each replica uses its own rate-limit budgets until it does"
                );
            }
        }
        tokio::spawn(supervise(Arc::downgrade(&inner)));
        Ok(RedisBudgets { inner })
    }

    /// Whether requests currently use the shared buckets.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Spends one request of `bucket`: `Some` with Redis's answer (on refusal, how long until a
    /// request fits), or `None` when Redis is down, failed or was too slow, and the caller must use
    /// its local budget. Takes at most the deadline.
    pub async fn spend(&self, bucket: &SharedBucket) -> Option<Result<(), Duration>> {
        let inner = &self.inner;
        let connection = if inner.up.load(Ordering::Acquire) {
            inner.connection.load_full()
        } else {
            None
        };
        let Some(connection) = connection else {
            inner.fell_back(Fallback::Down);
            return None;
        };
        let mut connection = MultiplexedConnection::clone(&connection);
        let call = inner.run_script(&mut connection, bucket);
        match tokio::time::timeout(inner.settings.deadline, call).await {
            Ok(Ok((allowed, wait_micros))) => {
                if inner.late_in_a_row.load(Ordering::Relaxed) != 0 {
                    inner.late_in_a_row.store(0, Ordering::Relaxed);
                }
                Some(if allowed == 1 {
                    Ok(())
                } else {
                    Err(Duration::from_micros(wait_micros.max(0).unsigned_abs()))
                })
            }
            Ok(Err(error)) => {
                inner.fell_back(Fallback::Error);
                inner.went_down("error", &error.to_string());
                None
            }
            Err(_) => {
                // One late answer on a busy machine is not an outage; several in a row are.
                inner.fell_back(Fallback::Timeout);
                if inner.late_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= LATE_IN_A_ROW {
                    inner.went_down("timeout", "no answer within the deadline");
                }
                None
            }
        }
    }
}

impl Inner {
    /// Runs the script by its hash, and by its text when Redis does not know it (after a restart or
    /// `SCRIPT FLUSH`); `EVAL` also caches it again.
    async fn run_script(
        &self,
        connection: &mut MultiplexedConnection,
        bucket: &SharedBucket,
    ) -> Result<(i64, i64), RedisError> {
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&self.script_hash)
            .arg(1)
            .arg(&bucket.key)
            .arg(bucket.interval_micros)
            .arg(bucket.burst);
        match command.query_async(connection).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                redis::cmd("EVAL")
                    .arg(GCRA)
                    .arg(1)
                    .arg(&bucket.key)
                    .arg(bucket.interval_micros)
                    .arg(bucket.burst)
                    .query_async(connection)
                    .await
            }
            other => other,
        }
    }

    fn fell_back(&self, reason: Fallback) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        crate::metrics::ratelimit_backend_fallback(reason.as_str());
    }

    /// Marks Redis down; only the call that notices first logs it, and only as a warning when no
    /// outage was warned about within [`QUIET_AFTER_WARNING`], so a flapping Redis does not flood
    /// the log (the fallback counter still counts every request).
    fn went_down(&self, reason: &'static str, detail: &str) {
        if !self.up.swap(false, Ordering::AcqRel) {
            return;
        }
        self.late_in_a_row.store(0, Ordering::Relaxed);
        let mut last_warning = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let quiet = last_warning.is_some_and(|at| at.elapsed() < QUIET_AFTER_WARNING);
        if quiet {
            self.outage_warned.store(false, Ordering::Relaxed);
            tracing::debug!(redis = %self.target, reason, detail, "Redis stopped answering again");
        } else {
            *last_warning = Some(tokio::time::Instant::now());
            self.outage_warned.store(true, Ordering::Relaxed);
            tracing::warn!(
                redis = %self.target,
                reason,
                detail,
                "Redis stopped answering; each replica uses its own rate-limit budgets until it answers again"
            );
        }
    }

    /// Connects when there is no connection, then checks that Redis answers within the deadline.
    /// A failed check drops the connection, so the next one starts afresh.
    async fn probe(&self) -> Result<(), String> {
        let connection = match self.connection.load_full() {
            Some(connection) => connection,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.settings.connect_timeout))
                    .set_response_timeout(None);
                let connected = tokio::time::timeout(
                    self.settings.connect_timeout,
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await;
                let mut connection = match connected {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => return Err(error.to_string()),
                    Err(_) => return Err("connection timed out".to_owned()),
                };
                // Load the script while there is time (the first call on a fresh connection, TLS
                // included, may be slower than the deadline); budget checks then run it by hash.
                let load = redis::cmd("SCRIPT").arg("LOAD").arg(GCRA).to_owned();
                match tokio::time::timeout(
                    self.settings.connect_timeout,
                    load.query_async::<String>(&mut connection),
                )
                .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Err(error.to_string()),
                    Err(_) => return Err("loading the script timed out".to_owned()),
                }
                let connection = Arc::new(connection);
                self.connection.store(Some(Arc::clone(&connection)));
                connection
            }
        };
        // The probe runs the script itself on a key of its own (gone a millisecond later): Redis
        // is back when budget checks work again, and its script cache is filled again.
        let mut connection = MultiplexedConnection::clone(&connection);
        let probe = SharedBucket {
            key: PROBE_KEY.to_owned(),
            interval_micros: 1,
            burst: 1,
        };
        let answer = tokio::time::timeout(
            self.settings.deadline,
            self.run_script(&mut connection, &probe),
        )
        .await;
        let failure = match answer {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within the deadline".to_owned(),
        };
        self.connection.store(None);
        Err(failure)
    }
}

/// While Redis is down, probes it every `probe_interval` and marks it up once it answers. Ends when
/// the last handle is dropped.
async fn supervise(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|inner| inner.settings.probe_interval) else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.up.load(Ordering::Acquire) {
            continue;
        }
        if inner.probe().await.is_ok() {
            inner.up.store(true, Ordering::Release);
            let fallbacks = inner.fallbacks.swap(0, Ordering::Relaxed);
            if inner.outage_warned.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    redis = %inner.target,
                    fallbacks,
                    "Redis answers again; rate-limit budgets are shared again"
                );
            } else {
                tracing::debug!(redis = %inner.target, fallbacks, "Redis answers again");
            }
        }
    }
}
