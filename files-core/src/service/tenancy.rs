//! The tenancy use cases: a tenant's settings (read and set), the policy and quotas an upload
//! is held to, and the usage of tenants and devices.

use std::time::Duration;

use serde_json::Value;

use super::errors::{DependencyError, QuotaExceeded, UploadError, database};
use super::files_service::{FilesService, Tenancy};
use crate::ids::{DeviceId, TenantId};
use crate::metrics::LimitRefusal;
use crate::ports::{Admission, DeviceUsage, QuotaRefusal, StoredSettings, TenantUsage};
use crate::principal::Principal;
use crate::tenancy::{Ceilings, Defaults, InvalidSettings, Policy, UsageFlusher};

/// Why a tenancy call was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The principal may not read or set that.
    #[error("this principal may not {0} for this tenant")]
    Forbidden(&'static str),
    /// The settings document was refused.
    #[error(transparent)]
    Invalid(#[from] InvalidSettings),
    /// This service was built without the tenancy ports.
    #[error("this service keeps no tenant settings or usage")]
    NotKept,
    /// A dependency failed.
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// What `GET /v1/tenants/{tenant_id}/usage` answers: the counts and the quotas they are held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUsageReport {
    /// The counts.
    pub usage: TenantUsage,
    /// The tenant's quotas (each `None` unlimited).
    pub quota: crate::tenancy::QuotaSettings,
}

/// May `principal` read `tenant`'s settings and usage: the platform, or the tenant's service.
fn reads_tenant(principal: &Principal, tenant: TenantId) -> bool {
    match principal {
        Principal::Platform => true,
        Principal::TenantService { tenant: own } => *own == tenant,
        Principal::Device { .. } => false,
    }
}

impl FilesService {
    /// The current UTC day: the day of the usage counts.
    fn today(&self) -> time::Date {
        self.clock.now().to_offset(time::UtcOffset::UTC).date()
    }

    fn tenancy(&self) -> Result<&Tenancy, TenancyError> {
        self.tenancy.as_ref().ok_or(TenancyError::NotKept)
    }

    /// The server's own maxima, above which a setting is refused.
    #[must_use]
    pub const fn ceilings(&self) -> Ceilings {
        Ceilings {
            max_file_size: self.config.max_upload_size,
            upload_url_max_expiry_secs: self.config.max_upload_expiry.as_secs(),
            download_url_max_expiry_secs: self.config.max_download_expiry.as_secs(),
        }
    }

    const fn defaults(&self) -> Defaults {
        Defaults {
            max_file_size: self.config.max_upload_size,
            upload_expiry: self.config.upload_expiry,
            max_upload_expiry: self.config.max_upload_expiry,
            download_expiry: self.config.download_expiry,
            max_download_expiry: self.config.max_download_expiry,
        }
    }

    /// The policy in force for `tenant`: its settings (a copy at most the settings TTL old)
    /// over the server's defaults; the defaults alone without the tenancy ports.
    ///
    /// # Errors
    /// The settings store failed and this instance never read the tenant's settings.
    pub async fn policy(&self, tenant: TenantId) -> Result<Policy, DependencyError> {
        let Some(tenancy) = &self.tenancy else {
            return Ok(Policy::new(&self.defaults(), None));
        };
        let stored = tenancy.settings.get(tenant).await.map_err(database)?;
        Ok(Policy::new(&self.defaults(), stored.as_ref().map(|s| &s.settings)))
    }

    /// A tenant's settings as set, or `None` when never set.
    ///
    /// # Errors
    /// [`TenancyError`]: only the platform and the tenant's service may read them.
    pub async fn tenant_settings(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<Option<StoredSettings>, TenancyError> {
        if !reads_tenant(principal, tenant) {
            return Err(TenancyError::Forbidden("read the settings"));
        }
        let tenancy = self.tenancy()?;
        tenancy
            .settings
            .store()
            .get_settings(tenant)
            .await
            .map_err(|e| database(e).into())
    }

    /// Replaces a tenant's settings with `document`, validated against [`Self::ceilings`].
    /// This instance applies them at once, every other within the settings TTL.
    ///
    /// # Errors
    /// [`TenancyError`]: only the platform may set them; a document refused names its field.
    pub async fn set_tenant_settings(
        &self,
        principal: &Principal,
        tenant: TenantId,
        document: &Value,
    ) -> Result<StoredSettings, TenancyError> {
        if *principal != Principal::Platform {
            return Err(TenancyError::Forbidden("set the settings"));
        }
        let tenancy = self.tenancy()?;
        let settings = crate::tenancy::TenantSettings::from_json(document, &self.ceilings())?;
        let stored = tenancy
            .settings
            .store()
            .put_settings(tenant, &settings, self.clock.now())
            .await
            .map_err(database)?;
        tenancy.settings.forget(tenant);
        Ok(stored)
    }

    /// A tenant's files and pending uploads, with its quotas.
    ///
    /// # Errors
    /// [`TenancyError`]: only the platform and the tenant's service may read it.
    pub async fn tenant_usage(
        &self,
        principal: &Principal,
        tenant: TenantId,
    ) -> Result<TenantUsageReport, TenancyError> {
        if !reads_tenant(principal, tenant) {
            return Err(TenancyError::Forbidden("read the usage"));
        }
        let tenancy = self.tenancy()?;
        let usage = tenancy.usage.tenant_usage(tenant).await.map_err(database)?;
        let quota = self.policy(tenant).await?.quota;
        Ok(TenantUsageReport { usage, quota })
    }

    /// A device's files and pending uploads, and its counts of today (UTC).
    ///
    /// # Errors
    /// [`TenancyError`]: only the device itself, its tenant's service and the platform may
    /// read it.
    pub async fn device_usage(
        &self,
        principal: &Principal,
        tenant: TenantId,
        device: DeviceId,
    ) -> Result<DeviceUsage, TenancyError> {
        let own = principal.tenant() == Some(tenant) && principal.device() == Some(device);
        if !own && !reads_tenant(principal, tenant) {
            return Err(TenancyError::Forbidden("read this device's usage"));
        }
        let tenancy = self.tenancy()?;
        let today = self.today();
        let mut usage = tenancy
            .usage
            .device_usage(tenant, device, today)
            .await
            .map_err(database)?;
        // This instance's download URLs not yet added: the device reading its own usage
        // sees every download it was just given.
        usage.today.download_urls += tenancy.downloads.pending(tenant, device, today);
        Ok(usage)
    }

    /// The task that adds the download URLs counted here to the usage store every `interval`;
    /// `None` without the tenancy ports.
    #[must_use]
    pub fn usage_flusher(&self, interval: Duration) -> Option<UsageFlusher> {
        self.tenancy.as_ref().map(|tenancy| UsageFlusher {
            tally: tenancy.downloads.clone(),
            usage: tenancy.usage.clone(),
            clock: self.clock.clone(),
            interval,
        })
    }

    /// Counts a download URL signed for a device (from its own root or the tenant's).
    pub(super) fn count_download(&self, principal: &Principal) {
        if let (Some(tenancy), Principal::Device { tenant, device }) = (&self.tenancy, principal) {
            let today = self.today();
            tenancy.downloads.add(*tenant, *device, today);
        }
    }

    /// Records `record` under `policy`'s quotas; a refusal is counted and answered
    /// [`UploadError::Quota`].
    pub(super) async fn admit(&self, record: &crate::file::FileRecord, policy: &Policy) -> Result<(), UploadError> {
        let limits = policy.limits(record.owner);
        let refusal = match self.metadata.admit(record, &limits).await.map_err(database)? {
            Admission::Admitted => return Ok(()),
            Admission::Refused(refusal) => refusal,
        };
        self.metrics.limit_refusal(
            record.tenant,
            match refusal {
                QuotaRefusal::Bytes | QuotaRefusal::Files => LimitRefusal::QuotaExceeded,
                QuotaRefusal::DeviceBytesPerDay => LimitRefusal::DailyQuotaExceeded,
                QuotaRefusal::DevicePendingUploads => LimitRefusal::TooManyPendingUploads,
            },
        );
        Err(UploadError::Quota(QuotaExceeded::new(refusal, self.clock.now())))
    }
}
