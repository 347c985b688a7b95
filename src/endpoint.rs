//! A loaded endpoint: its validated config plus the runtime state built from it (upstream client,
//! rate limiters). Built once per config change, shared by every request through the tenant table.

use crate::auth::SecretDigest;
use crate::config::Tenant;
use crate::confluence::{ClientConfigError, ConfluenceClient, UpstreamSettings, http_client};
use crate::openapi::DocumentCache;
use crate::ratelimit::redis::RedisBudgets;
use crate::ratelimit::{EndpointLimits, Sharing, secrets_fingerprint};

/// Process-wide resources that endpoints are built from.
#[derive(Clone)]
pub struct Shared {
    /// The one HTTP client (and connection pool) for all upstream calls.
    pub http: reqwest::Client,
    /// The Redis that every replica's rate-limit budgets live in (`--redis-url`), if any.
    pub redis: Option<RedisBudgets>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            http: http_client(),
            redis: None,
        }
    }
}

/// One endpoint, ready to serve.
pub struct Endpoint {
    /// The validated configuration.
    pub tenant: Tenant,
    /// SHA-256 of the file it was loaded from; an unchanged file keeps its endpoint.
    pub source_hash: [u8; 32],
    /// Digests of the accepted secrets, for constant-time checks.
    pub secret_digests: Vec<SecretDigest>,
    /// The client for this endpoint's Confluence space.
    pub upstream: ConfluenceClient,
    /// This endpoint's rendered OpenAPI documents; new with every config change.
    pub openapi: DocumentCache,
    /// Request budgets, carried over from the endpoint this one replaced while its quota is unchanged.
    pub limits: EndpointLimits,
}

impl Endpoint {
    /// Builds the endpoint for `tenant`. `previous` is the endpoint this one replaces, whose state
    /// (such as a rate-limit budget) may carry over when the relevant settings did not change.
    pub fn new(
        tenant: Tenant,
        source_hash: [u8; 32],
        previous: Option<&Endpoint>,
        shared: &Shared,
    ) -> Result<Endpoint, ClientConfigError> {
        let upstream = ConfluenceClient::new(
            shared.http.clone(),
            UpstreamSettings {
                base_url: tenant.base_url.clone(),
                deployment: tenant.deployment,
                auth: tenant.credentials.clone(),
                space_key: tenant.space_key.clone(),
                deadline: tenant.upstream_timeout,
                max_concurrent: tenant.upstream_max_concurrent,
            },
        )?;
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
                endpoint: &tenant.name,
                secrets,
            });
        let limits = EndpointLimits::new(
            tenant.rate_limit,
            previous.map(|previous| &previous.limits),
            same_secrets,
            sharing,
        );
        Ok(Endpoint {
            tenant,
            source_hash,
            secret_digests,
            upstream,
            openapi: DocumentCache::default(),
            limits,
        })
    }
}
