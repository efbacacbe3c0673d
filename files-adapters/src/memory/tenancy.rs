//! The memory store's tenancy: admission under quotas, settings and usage, every count taken
//! from the records under the store's lock (so admissions are exact, as the database's are).

use async_trait::async_trait;
use files_core::ports::{
    Admission, DailyUsage, DeviceUsage, DownloadCount, Limits, QuotaRefusal, SettingsStore, StoredSettings,
    TenantUsage, UsageStore,
};
use files_core::tenancy::TenantSettings;
use files_core::{DeviceId, FileRecord, FileState, Owner, PortError, TenantId};
use time::{Date, OffsetDateTime};

use super::{MemoryMetadataStore, lock};

/// A record's UTC day of `at`.
fn day(at: OffsetDateTime) -> Date {
    at.to_offset(time::UtcOffset::UTC).date()
}

/// The counts of some records: available files and bytes, pending uploads and bytes.
fn tally<'a>(records: impl Iterator<Item = &'a FileRecord>) -> TenantUsage {
    records.fold(TenantUsage::default(), |mut usage, record| {
        let size = record.size.unwrap_or(0);
        match record.state {
            FileState::Available => {
                usage.files += 1;
                usage.bytes += size;
            }
            FileState::Pending => {
                usage.pending_uploads += 1;
                usage.pending_bytes += size;
            }
            FileState::Deleted | FileState::Expired => {}
        }
        usage
    })
}

/// A device's day from its records: uploads recorded that day and completions that day.
fn daily<'a>(records: impl Iterator<Item = &'a FileRecord>, date: Date) -> DailyUsage {
    records.fold(DailyUsage::empty(date), |mut usage, record| {
        if day(record.created_at) == date {
            usage.upload_urls += 1;
            usage.upload_bytes += record.size.unwrap_or(0);
        }
        if record.completed_at.is_some_and(|at| day(at) == date) {
            usage.uploads_completed += 1;
        }
        usage
    })
}

impl MemoryMetadataStore {
    /// Records `record` if it fits `limits`: the same checks in the same order as the
    /// database's `files_admit`. With quotas, each admission counts the tenant's records (the
    /// embedded default is for development; a store that keeps many files keeps counters).
    pub(super) fn admit_record(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        let mut files = lock(&self.files);
        if files.contains_key(&record.id) {
            return Err(PortError::failed(format!("file {} already exists", record.id)));
        }
        if *limits == Limits::NONE {
            // Nothing to count against: no scan of the tenant's records.
            files.insert(record.id, record.clone());
            return Ok(Admission::Admitted);
        }
        let size = record.size.unwrap_or(0);
        let tenant = tally(files.values().filter(|r| r.tenant == record.tenant));
        if limits
            .tenant_bytes
            .is_some_and(|quota| tenant.bytes + tenant.pending_bytes + size > quota)
        {
            return Ok(Admission::Refused(QuotaRefusal::Bytes));
        }
        if limits
            .tenant_files
            .is_some_and(|quota| tenant.files + tenant.pending_uploads + 1 > quota)
        {
            return Ok(Admission::Refused(QuotaRefusal::Files));
        }
        if let Owner::Device(device) = record.owner {
            let own = || {
                files
                    .values()
                    .filter(move |r| r.tenant == record.tenant && r.owner == Owner::Device(device))
            };
            if limits
                .device_pending_uploads
                .is_some_and(|quota| tally(own()).pending_uploads + 1 > quota)
            {
                return Ok(Admission::Refused(QuotaRefusal::DevicePendingUploads));
            }
            if limits
                .device_bytes_per_day
                .is_some_and(|quota| daily(own(), day(record.created_at)).upload_bytes + size > quota)
            {
                return Ok(Admission::Refused(QuotaRefusal::DeviceBytesPerDay));
            }
        }
        files.insert(record.id, record.clone());
        Ok(Admission::Admitted)
    }
}

#[async_trait]
impl SettingsStore for MemoryMetadataStore {
    async fn get_settings(&self, tenant: TenantId) -> Result<Option<StoredSettings>, PortError> {
        Ok(lock(&self.settings).get(&tenant).cloned())
    }

    async fn put_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
        at: OffsetDateTime,
    ) -> Result<StoredSettings, PortError> {
        let stored = StoredSettings {
            settings: settings.clone(),
            updated_at: at,
        };
        lock(&self.settings).insert(tenant, stored.clone());
        Ok(stored)
    }
}

#[async_trait]
impl UsageStore for MemoryMetadataStore {
    async fn tenant_usage(&self, tenant: TenantId) -> Result<TenantUsage, PortError> {
        Ok(tally(lock(&self.files).values().filter(|r| r.tenant == tenant)))
    }

    async fn device_usage(&self, tenant: TenantId, device: DeviceId, date: Date) -> Result<DeviceUsage, PortError> {
        let files = lock(&self.files);
        let own = || {
            files
                .values()
                .filter(move |r| r.tenant == tenant && r.owner == Owner::Device(device))
        };
        let usage = tally(own());
        let mut today = daily(own(), date);
        today.download_urls = lock(&self.downloads).get(&(tenant, device, date)).copied().unwrap_or(0);
        Ok(DeviceUsage {
            files: usage.files,
            bytes: usage.bytes,
            pending_uploads: usage.pending_uploads,
            today,
        })
    }

    async fn add_downloads(&self, counts: &[DownloadCount]) -> Result<(), PortError> {
        let mut downloads = lock(&self.downloads);
        for count in counts {
            *downloads.entry((count.tenant, count.device, count.date)).or_default() += count.count;
        }
        Ok(())
    }
}
