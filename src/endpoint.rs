//! A loaded endpoint: its validated config plus the runtime state built from it (upstream client,
//! rate limiters). Built once per config change, shared by every request through the tenant table.

use crate::auth::SecretDigest;
use crate::config::Tenant;
use crate::ratelimit::EndpointLimits;
use crate::secret::Secret;

/// Process-wide resources that endpoints are built from.
#[derive(Clone, Default)]
pub struct Shared {
    /// The one HTTP client (and connection pool) for all upstream calls.
    pub http: reqwest::Client,
}

/// One endpoint, ready to serve.
pub struct Endpoint {
    /// The validated configuration.
    pub tenant: Tenant,
    /// SHA-256 of the file it was loaded from; an unchanged file keeps its endpoint.
    pub source_hash: [u8; 32],
    /// Digests of the accepted secrets, for constant-time checks.
    pub secret_digests: Vec<SecretDigest>,
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
    ) -> Endpoint {
        let _ = shared;
        let secret_digests = tenant.accepted_secrets().map(SecretDigest::of).collect();
        let same_secrets = previous.is_some_and(|previous| {
            let old = previous.tenant.accepted_secrets().map(Secret::expose);
            old.eq(tenant.accepted_secrets().map(Secret::expose))
        });
        let limits = EndpointLimits::new(
            tenant.rate_limit,
            previous.map(|previous| &previous.limits),
            same_secrets,
        );
        Endpoint {
            tenant,
            source_hash,
            secret_digests,
            limits,
        }
    }
}
