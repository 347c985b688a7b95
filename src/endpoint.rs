//! The endpoint runtime: an [`Endpoint`] is built from a validated [`Tenant`] (its upstream client,
//! request budgets and OpenAPI document cache), and the live table of endpoints is a
//! [`ConfigStore`] of them, rebuilt and swapped as the config directory changes.

use std::path::Path;
use std::sync::Arc;

use crate::config::watch::log_report;
use crate::config::{ConfigStore, ReloadReport, Table, Tenant};
use crate::confluence::{ConfluenceClient, UpstreamSettings, http_client};
use crate::markdown::RenderCache;
use crate::metrics::{LabelValue, endpoint_label_value};
use crate::openapi::DocumentCache;
use crate::ratelimit::redis::RedisBudgets;
use crate::ratelimit::{EndpointLimits, Sharing, secrets_fingerprint};
use crate::secret::SecretDigest;

/// The live table of endpoints.
pub type EndpointStore = ConfigStore<Endpoint>;

/// One snapshot of the live table.
pub type EndpointTable = Table<Endpoint>;

/// Process-wide resources that endpoints are built from.
#[derive(Clone)]
pub struct Shared {
    /// The one HTTP client (and connection pool) for all upstream calls.
    pub http: reqwest::Client,
    /// The Redis that every replica's rate-limit budgets live in (`--redis-url`), if any.
    pub redis: Option<RedisBudgets>,
    /// Stored bodies recently rendered to Markdown, for all endpoints (each in its own scope).
    pub renders: Arc<RenderCache>,
}

/// The MiB of stored and rendered text the process keeps for Markdown reads and writes, unless
/// `--markdown-cache-mib` says otherwise.
pub const DEFAULT_RENDER_CACHE_MIB: u64 = 64;

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            http: http_client(),
            redis: None,
            renders: Arc::new(RenderCache::new(
                DEFAULT_RENDER_CACHE_MIB as usize * 1024 * 1024,
            )),
        }
    }
}

/// One endpoint, ready to serve.
pub struct Endpoint {
    /// The validated configuration.
    pub tenant: Tenant,
    /// The endpoint's name as a metric label value, shared by all its series.
    pub label: LabelValue,
    /// Digests of the accepted secrets, for constant-time checks.
    pub secret_digests: Vec<SecretDigest>,
    /// The client for this endpoint's Confluence space.
    pub upstream: ConfluenceClient,
    /// This endpoint's rendered OpenAPI documents; new with every config change.
    pub openapi: DocumentCache,
    /// Request budgets, carried over from the endpoint this one replaced while its quota is unchanged.
    pub limits: EndpointLimits,
    /// Stored bodies recently rendered to Markdown (shared by all endpoints).
    pub renders: Arc<RenderCache>,
}

impl Endpoint {
    /// Builds the endpoint for `tenant`. `previous` is the endpoint this one replaces, whose state
    /// (such as a rate-limit budget) may carry over when the relevant settings did not change.
    pub fn new(tenant: Tenant, previous: Option<&Endpoint>, shared: &Shared) -> Endpoint {
        let upstream = ConfluenceClient::new(shared.http.clone(), UpstreamSettings::of(&tenant));
        let secret_digests = tenant.accepted_secrets().map(SecretDigest::of).collect();
        let same_secrets = previous.is_some_and(|previous| {
            previous
                .tenant
                .accepted_secrets()
                .eq(tenant.accepted_secrets())
        });
        let fingerprint = shared
            .redis
            .as_ref()
            .map(|_| secrets_fingerprint(tenant.accepted_secrets().map(|secret| secret.expose())));
        let sharing = shared
            .redis
            .as_ref()
            .zip(fingerprint.as_deref())
            .map(|(redis, secrets)| Sharing {
                redis,
                endpoint: tenant.name(),
                secrets,
            });
        let limits = EndpointLimits::new(
            tenant.rate_limit(),
            previous.map(|previous| &previous.limits),
            same_secrets,
            sharing,
        );
        Endpoint {
            label: endpoint_label_value(tenant.name()),
            tenant,
            secret_digests,
            upstream,
            openapi: DocumentCache::default(),
            limits,
            renders: Arc::clone(&shared.renders),
        }
    }
}

/// Loads `dir` into a new store of endpoints built with `shared`, without logging or counting:
/// the caller decides what to do with the report. Fails only when the directory cannot be read.
pub fn load(dir: &Path, shared: Shared) -> std::io::Result<(EndpointStore, ReloadReport)> {
    ConfigStore::load(dir, move |tenant, previous| {
        Endpoint::new(tenant, previous, &shared)
    })
}

/// The first load of `dir`: every file validated, problems logged and counted. Fails only when the
/// directory cannot be read.
pub fn initial_load(dir: &Path, shared: Shared) -> std::io::Result<EndpointStore> {
    let (store, report) = load(dir, shared)?;
    log_report(dir, &report);
    count_reload(&report);
    crate::metrics::mark_reload_success();
    if report.loaded == 0 {
        tracing::warn!(dir = %dir.display(), "no endpoint loaded yet; add conflagent.<name>.properties files");
    }
    Ok(store)
}

/// Counts a rescan's outcome in the config metrics.
pub fn count_reload(report: &ReloadReport) {
    crate::metrics::config_reloaded(
        report.failed.len(),
        report.changed_anything(),
        report.loaded,
    );
}
