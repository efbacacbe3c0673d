//! Request rate limits: every request of a tenant's principals counted against its
//! `rate_limit` settings, before the request does anything.

use std::time::Duration;

use super::files_service::FilesService;
use crate::metrics::LimitRefusal;
use crate::ports::error_chain;
use crate::ports::{RateDecision, RateKey, RateLimit};
use crate::principal::Principal;

/// A request over its tenant's or its device's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {retry_after_secs} s")]
pub struct RateLimited {
    /// Whole seconds until a request would pass; at least 1.
    pub retry_after_secs: u64,
}

impl RateLimited {
    fn after(wait: Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after_secs: secs.max(1),
        }
    }
}

/// The limits `principal`'s requests are held to under `limits` (none for the platform).
fn limits_of(principal: &Principal, limits: &crate::tenancy::RateLimitSettings) -> Vec<RateLimit> {
    let mut out = Vec::with_capacity(2);
    if let (Principal::Device { tenant, device }, Some(requests)) = (principal, limits.device_requests_per_minute) {
        out.push(RateLimit {
            key: RateKey::Device(*tenant, *device),
            requests,
            period: Duration::from_secs(60),
        });
    }
    if let (Some(tenant), Some(requests)) = (principal.tenant(), limits.tenant_requests_per_second) {
        out.push(RateLimit {
            key: RateKey::Tenant(tenant),
            requests,
            period: Duration::from_secs(1),
        });
    }
    out
}

impl FilesService {
    /// Counts one request of `principal` against its tenant's rate limits: a device's
    /// `device_requests_per_minute` and the tenant's `tenant_requests_per_second`. Costs the
    /// limiter nothing when the tenant set no limit (and always without a limiter). A limiter
    /// or settings store that fails admits the request: a limit never fails one.
    ///
    /// # Errors
    /// [`RateLimited`] when over a limit (counted in `files_limit_refusals_total`).
    pub async fn admit_request(&self, principal: &Principal) -> Result<(), RateLimited> {
        let (Some(limiter), Some(tenant), Some(tenancy)) = (&self.rate_limiter, principal.tenant(), &self.tenancy)
        else {
            return Ok(());
        };
        // The settings alone, not the whole policy: this runs on every request.
        let stored = match tenancy.settings.get(tenant).await {
            Ok(stored) => stored,
            Err(error) => {
                // The use case that follows meets the same failure and answers for it; once per request
                // is too often to warn.
                tracing::debug!(error = %error_chain(&error), "tenant settings unreadable; request not rate limited");
                return Ok(());
            }
        };
        let Some(settings) = stored.as_ref().and_then(|s| s.settings.rate_limit.as_ref()) else {
            return Ok(());
        };
        let limits = limits_of(principal, settings);
        if limits.is_empty() {
            return Ok(());
        }
        match limiter.acquire(&limits).await {
            Ok(RateDecision::Admitted) => Ok(()),
            Ok(RateDecision::Refused { retry_after }) => {
                self.metrics.limit_refusal(tenant, LimitRefusal::RateLimited);
                Err(RateLimited::after(retry_after))
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "rate limiter failed; request admitted");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ids::{DeviceId, TenantId};
    use crate::tenancy::RateLimitSettings;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(RateLimited::after(Duration::ZERO).retry_after_secs, 1);
        assert_eq!(RateLimited::after(Duration::from_millis(10)).retry_after_secs, 1);
        assert_eq!(RateLimited::after(Duration::from_millis(1001)).retry_after_secs, 2);
        assert_eq!(RateLimited::after(Duration::from_secs(10)).retry_after_secs, 10);
    }

    #[test]
    fn devices_count_per_device_and_per_tenant_the_platform_not_at_all() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let device = DeviceId::from_uuid(Uuid::from_u128(2));
        let both = RateLimitSettings {
            device_requests_per_minute: Some(6),
            tenant_requests_per_second: Some(5),
        };
        let keys = |principal: &Principal, limits: &RateLimitSettings| -> Vec<RateKey> {
            limits_of(principal, limits).iter().map(|l| l.key).collect()
        };
        assert_eq!(
            keys(&Principal::Device { tenant, device }, &both),
            [RateKey::Device(tenant, device), RateKey::Tenant(tenant)]
        );
        assert_eq!(
            keys(&Principal::TenantService { tenant }, &both),
            [RateKey::Tenant(tenant)]
        );
        assert!(keys(&Principal::Platform, &both).is_empty());
        assert!(keys(&Principal::Device { tenant, device }, &RateLimitSettings::default()).is_empty());
        let device_limit = limits_of(&Principal::Device { tenant, device }, &both)[0];
        assert_eq!(
            (device_limit.requests, device_limit.period),
            (6, Duration::from_secs(60))
        );
    }
}
