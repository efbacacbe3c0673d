//! The tenancy contract, for every store that keeps settings, quotas and usage
//! ([`ServerStore`]): settings round-trip; `admit` refuses each quota and records nothing then;
//! state changes release what they should; the usage counts follow the records; concurrent
//! admissions never pass a quota.

use std::sync::Arc;

use files_core::{
    Admission, FileRecord, FileState, Limits, Owner, QuotaRefusal, QuotaSettings, ServerStore, TenantSettings,
};
use time::Duration;

use super::metadata::{deletion, device_root, fresh_tenant, now_micros, ok, record, tenant_root, uploaded_event};

/// A pending record of `size` bytes in `scope`.
fn sized(scope: files_core::Scope, size: u64) -> FileRecord {
    FileRecord {
        size: Some(size),
        ..record(scope, "quota.bin", FileState::Pending)
    }
}

/// Runs every rule.
///
/// # Panics
/// When the store breaks a rule.
pub async fn run(store: Arc<dyn ServerStore>) {
    settings_round_trip(&*store).await;
    each_quota_refuses_and_records_nothing(&*store).await;
    releases_and_usage_follow_the_records(&*store).await;
    concurrent_admissions_never_pass_the_quota(store).await;
}

/// Put then get, replaced by the next put; never set is `None`.
pub async fn settings_round_trip(store: &dyn ServerStore) {
    const RULE: &str = "settings round trip";
    let tenant = fresh_tenant();
    assert_eq!(ok(RULE, store.get_settings(tenant).await), None, "{RULE}: never set");
    let settings = TenantSettings {
        max_file_size: Some(1000),
        allowed_content_types: Some(vec!["text/*".to_owned(), "application/gzip".to_owned()]),
        quota: Some(QuotaSettings {
            bytes: Some(10),
            ..QuotaSettings::default()
        }),
        ..TenantSettings::default()
    };
    let at = now_micros();
    let stored = ok(RULE, store.put_settings(tenant, &settings, at).await);
    assert_eq!(
        (stored.settings.clone(), stored.updated_at),
        (settings.clone(), at),
        "{RULE}"
    );
    assert_eq!(
        ok(RULE, store.get_settings(tenant).await),
        Some(stored),
        "{RULE}: read back"
    );
    let later = at + Duration::seconds(1);
    ok(
        RULE,
        store.put_settings(tenant, &TenantSettings::default(), later).await,
    );
    let replaced = ok(RULE, store.get_settings(tenant).await);
    assert_eq!(
        replaced.map(|s| (s.settings, s.updated_at)),
        Some((TenantSettings::default(), later)),
        "{RULE}: a put replaces the whole document"
    );
    assert_eq!(
        ok(RULE, store.get_settings(fresh_tenant()).await),
        None,
        "{RULE}: per tenant"
    );
}

/// Every quota refuses the record that does not fit, naming itself, and the refused record is
/// not there; the tenant's quotas count tenant-root files, the device quotas only the device's.
pub async fn each_quota_refuses_and_records_nothing(store: &dyn ServerStore) {
    const RULE: &str = "quotas";
    let tenant = fresh_tenant();
    let device = device_root(tenant);
    let bytes = Limits {
        tenant_bytes: Some(1000),
        ..Limits::NONE
    };
    let admit = async |record: &FileRecord, limits: &Limits| ok(RULE, store.admit(record, limits).await);
    assert_eq!(admit(&sized(device, 600), &bytes).await, Admission::Admitted);
    let refused = sized(tenant_root(tenant), 600);
    assert_eq!(
        admit(&refused, &bytes).await,
        Admission::Refused(QuotaRefusal::Bytes),
        "{RULE}: tenant-root files count with the device's"
    );
    assert_eq!(
        ok(RULE, store.get(tenant, refused.id).await),
        None,
        "{RULE}: a refused record is not recorded"
    );
    assert_eq!(
        admit(&sized(device, 400), &bytes).await,
        Admission::Admitted,
        "{RULE}: exactly full"
    );

    let files = Limits {
        tenant_files: Some(2),
        ..Limits::NONE
    };
    let tenant = fresh_tenant();
    assert_eq!(admit(&sized(tenant_root(tenant), 1), &files).await, Admission::Admitted);
    assert_eq!(admit(&sized(device_root(tenant), 1), &files).await, Admission::Admitted);
    assert_eq!(
        admit(&sized(device_root(tenant), 1), &files).await,
        Admission::Refused(QuotaRefusal::Files)
    );

    let pending = Limits {
        device_pending_uploads: Some(1),
        ..Limits::NONE
    };
    let tenant = fresh_tenant();
    let (one, other) = (device_root(tenant), device_root(tenant));
    assert_eq!(admit(&sized(one, 1), &pending).await, Admission::Admitted);
    assert_eq!(
        admit(&sized(one, 1), &pending).await,
        Admission::Refused(QuotaRefusal::DevicePendingUploads)
    );
    assert_eq!(
        admit(&sized(other, 1), &pending).await,
        Admission::Admitted,
        "{RULE}: per device"
    );

    let daily = Limits {
        device_bytes_per_day: Some(100),
        ..Limits::NONE
    };
    let tenant = fresh_tenant();
    let device = device_root(tenant);
    assert_eq!(admit(&sized(device, 60), &daily).await, Admission::Admitted);
    let second = sized(device, 60);
    assert_eq!(
        admit(&second, &daily).await,
        Admission::Refused(QuotaRefusal::DeviceBytesPerDay)
    );
    let yesterday = FileRecord {
        created_at: second.created_at - Duration::days(1),
        ..sized(device, 60)
    };
    assert_eq!(
        admit(&yesterday, &daily).await,
        Admission::Admitted,
        "{RULE}: the day is the record's UTC day"
    );
    assert_eq!(
        admit(&sized(tenant_root(tenant), 1000), &daily).await,
        Admission::Admitted,
        "{RULE}: the tenant root has no device quota"
    );
}

/// Completion moves a pending upload's bytes to the available ones; delete and expiry release;
/// the device's day counts uploads recorded and completed, and the downloads added.
pub async fn releases_and_usage_follow_the_records(store: &dyn ServerStore) {
    const RULE: &str = "usage";
    let tenant = fresh_tenant();
    let device = device_root(tenant);
    let Owner::Device(device_id) = device.owner else {
        unreachable!("a device root")
    };
    let quota = Limits {
        tenant_bytes: Some(100),
        ..Limits::NONE
    };
    let (done, gone, lapsed, waiting) = (
        sized(device, 30),
        sized(device, 30),
        sized(device, 30),
        sized(tenant_root(tenant), 10),
    );
    for record in [&done, &gone, &lapsed, &waiting] {
        assert_eq!(ok(RULE, store.admit(record, &quota).await), Admission::Admitted);
    }
    assert_eq!(
        ok(RULE, store.admit(&sized(device, 1), &quota).await),
        Admission::Refused(QuotaRefusal::Bytes),
        "{RULE}: 100 of 100 bytes reserved"
    );
    let now = now_micros();
    ok(
        RULE,
        store
            .mark_available(tenant, done.id, 30, now, &uploaded_event(&done, 30, now))
            .await,
    );
    ok(RULE, store.mark_deleted(tenant, gone.id, &deletion(now)).await);
    ok(RULE, store.mark_expired(tenant, lapsed.id).await);

    let usage = ok(RULE, store.tenant_usage(tenant).await);
    assert_eq!(
        (usage.files, usage.bytes, usage.pending_uploads, usage.pending_bytes),
        (1, 30, 1, 10),
        "{RULE}: the completed file at its stored size, the pending one at its declared size"
    );
    ok(RULE, store.settle().await);
    assert_eq!(
        ok(RULE, store.tenant_usage(tenant).await),
        usage,
        "{RULE}: the same once the store has folded what it counted"
    );
    assert_eq!(
        ok(RULE, store.admit(&sized(device, 60), &quota).await),
        Admission::Admitted,
        "{RULE}: delete and expiry released what they reserved"
    );
    let today = done.created_at.date();
    let counts = [files_core::DownloadCount {
        tenant,
        device: device_id,
        date: today,
        count: 3,
    }];
    ok(RULE, store.add_downloads(&counts).await);
    ok(RULE, store.add_downloads(&counts).await);
    let usage = ok(RULE, store.device_usage(tenant, device_id, today).await);
    assert_eq!(
        (usage.files, usage.bytes, usage.pending_uploads),
        (1, 30, 1),
        "{RULE}: device"
    );
    assert_eq!(
        (
            usage.today.upload_urls,
            usage.today.upload_bytes,
            usage.today.uploads_completed,
            usage.today.download_urls
        ),
        (4, 30 * 3 + 60, 1, 6),
        "{RULE}: the device's day"
    );
    let tomorrow = ok(
        RULE,
        store
            .device_usage(tenant, device_id, today.next_day().unwrap_or(today))
            .await,
    );
    assert_eq!(tomorrow.today.upload_urls, 0, "{RULE}: another day");
}

/// Forty concurrent admissions of 10 bytes against 200 bytes, with the store folding its
/// counts meanwhile: exactly 20 admitted. Ten concurrent admissions of one device against
/// `device_pending_uploads` 3: exactly 3.
pub async fn concurrent_admissions_never_pass_the_quota(store: Arc<dyn ServerStore>) {
    const RULE: &str = "concurrent admissions";
    let tenant = fresh_tenant();
    let quota = Limits {
        tenant_bytes: Some(200),
        tenant_files: Some(1000),
        ..Limits::NONE
    };
    let folds: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.settle().await })
        })
        .collect();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(&sized(device_root(tenant), 10), &quota).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(Admission::Admitted)) => admitted += 1,
            Ok(Ok(Admission::Refused(QuotaRefusal::Bytes))) => {}
            other => panic!("{RULE}: {other:?}"),
        }
    }
    for fold in folds {
        assert!(matches!(fold.await, Ok(Ok(_))), "{RULE}: a fold failed");
    }
    assert_eq!(admitted, 20, "{RULE}");
    let usage = ok(RULE, store.tenant_usage(tenant).await);
    assert_eq!(
        (usage.pending_uploads, usage.pending_bytes),
        (20, 200),
        "{RULE}: counted"
    );

    let device = device_root(tenant);
    let Owner::Device(device_id) = device.owner else {
        unreachable!("a device root")
    };
    let pending = Limits {
        device_pending_uploads: Some(3),
        ..Limits::NONE
    };
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(&sized(device, 1), &pending).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(Admission::Admitted)) => admitted += 1,
            Ok(Ok(Admission::Refused(QuotaRefusal::DevicePendingUploads))) => {}
            other => panic!("{RULE}: {other:?}"),
        }
    }
    assert_eq!(admitted, 3, "{RULE}: one device's pending uploads");
    let today = now_micros().date();
    let usage = ok(RULE, store.device_usage(tenant, device_id, today).await);
    assert_eq!(usage.pending_uploads, 3, "{RULE}: the device's pending uploads counted");
}
