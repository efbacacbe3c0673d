//! The rate limiter port: requests counted against a tenant's `rate_limit` settings, shared by
//! every instance where the adapter can share them.

use std::time::Duration;

use async_trait::async_trait;

use super::error::PortError;
use crate::ids::{DeviceId, TenantId};

/// Whose requests a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// One device principal's requests (`device_requests_per_minute`).
    Device(TenantId, DeviceId),
    /// All of a tenant's principals' requests (`tenant_requests_per_second`).
    Tenant(TenantId),
}

/// At most `requests` per `period`, in bursts of up to `requests` (a generic cell rate: one
/// request every `period / requests`, with a whole period's worth allowed at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Whose requests.
    pub key: RateKey,
    /// How many per period (at least 1).
    pub requests: u64,
    /// The period.
    pub period: Duration,
}

/// What a limiter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Counted against every limit.
    Admitted,
    /// Over a limit: counted against none; the next request could pass after this long.
    Refused {
        /// How long until a request would pass.
        retry_after: Duration,
    },
}

/// Counts requests against limits.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one request from every limit of `limits`, or from none when any of them is spent.
    ///
    /// # Errors
    /// [`PortError`] when the limiter cannot tell; the service then admits the request (a
    /// limit never fails a request for its own sake).
    async fn acquire(&self, limits: &[RateLimit]) -> Result<RateDecision, PortError>;
}
