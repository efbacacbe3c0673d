//! The tenancy ports: where tenant settings are kept, the quotas an upload is admitted under,
//! and the usage counts of tenants and devices.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::error::PortError;
use crate::ids::{DeviceId, TenantId};
use crate::tenancy::TenantSettings;

/// A tenant's settings as stored, with when they were last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSettings {
    /// The document.
    pub settings: TenantSettings,
    /// When it was set.
    pub updated_at: OffsetDateTime,
}

/// Where tenant settings are kept: the source of truth every instance reads.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// A tenant's settings, or `None` when they were never set.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn get_settings(&self, tenant: TenantId) -> Result<Option<StoredSettings>, PortError>;

    /// Replaces a tenant's settings, stamped `at`; returns them as stored.
    ///
    /// # Errors
    /// [`PortError`] when the store fails; then nothing changed.
    async fn put_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> Result<StoredSettings, PortError>;
}

/// The quotas one upload is admitted under; each `None` is unlimited.
///
/// The tenant's counts take its available and pending files (a pending one at its declared
/// size); the device's daily bytes are what it declared in upload requests since 00:00 UTC of
/// the record's `created_at`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The tenant's bytes.
    pub tenant_bytes: Option<u64>,
    /// The tenant's files.
    pub tenant_files: Option<u64>,
    /// The device's pending uploads.
    pub device_pending_uploads: Option<u64>,
    /// The bytes the device declared today.
    pub device_bytes_per_day: Option<u64>,
}

impl Limits {
    /// No quota at all.
    pub const NONE: Self = Self {
        tenant_bytes: None,
        tenant_files: None,
        device_pending_uploads: None,
        device_bytes_per_day: None,
    };
}

/// Which quota an upload did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaRefusal {
    /// The tenant's `bytes`.
    Bytes,
    /// The tenant's `files`.
    Files,
    /// The device's `device_pending_uploads`.
    DevicePendingUploads,
    /// The device's `device_bytes_per_day`.
    DeviceBytesPerDay,
}

impl QuotaRefusal {
    /// The quota's name in the settings document.
    #[must_use]
    pub const fn quota(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Files => "files",
            Self::DevicePendingUploads => "device_pending_uploads",
            Self::DeviceBytesPerDay => "device_bytes_per_day",
        }
    }
}

/// Whether a new version was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded, and counted against every quota.
    Admitted,
    /// Not recorded: it did not fit this quota.
    Refused(QuotaRefusal),
}

/// A tenant's files, counted from its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Available files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Pending uploads.
    pub pending_uploads: u64,
    /// Their declared bytes.
    pub pending_bytes: u64,
}

/// A device's file operations of one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyUsage {
    /// The day.
    pub date: Date,
    /// Upload URLs issued (single or multipart uploads recorded).
    pub upload_urls: u64,
    /// The bytes those uploads declared.
    pub upload_bytes: u64,
    /// Uploads that became available.
    pub uploads_completed: u64,
    /// Download URLs issued.
    pub download_urls: u64,
}

impl DailyUsage {
    /// Nothing yet on `date`.
    #[must_use]
    pub const fn empty(date: Date) -> Self {
        Self {
            date,
            upload_urls: 0,
            upload_bytes: 0,
            uploads_completed: 0,
            download_urls: 0,
        }
    }
}

/// A device's files and its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceUsage {
    /// Available files in the device's root.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Pending uploads in the device's root.
    pub pending_uploads: u64,
    /// The day asked for.
    pub today: DailyUsage,
}

/// Download URLs issued to one device on one day, counted in memory and added in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DownloadCount {
    /// The tenant.
    pub tenant: TenantId,
    /// The device.
    pub device: DeviceId,
    /// The UTC day.
    pub date: Date,
    /// How many.
    pub count: u64,
}

/// The usage counts: kept exact by the store that keeps the records (every admission and every
/// state change counted in the same transaction), plus the download URLs the service reports.
/// A store may count a change as a delta first and fold the deltas into its totals later
/// ([`UsageStore::settle`]); its reads include the deltas either way.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// A tenant's files and pending uploads.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage, PortError>;

    /// A device's files and pending uploads, and its counts of `date`.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn device_usage(&self, tenant: TenantId, device: DeviceId, date: Date) -> Result<DeviceUsage, PortError>;

    /// Adds download URLs issued.
    ///
    /// # Errors
    /// [`PortError`] when the store fails; then none of them was added.
    async fn add_downloads(&self, counts: &[DownloadCount]) -> Result<(), PortError>;

    /// Folds the changes counted as deltas into the totals; returns how many it folded. Reads
    /// are exact before and after: this keeps them cheap. Called every second by the service's
    /// [`crate::UsageFlusher`]; a store that counts in place has nothing to fold.
    ///
    /// # Errors
    /// [`PortError`] when the store fails; then nothing was folded.
    async fn settle(&self) -> Result<u64, PortError> {
        Ok(0)
    }
}
