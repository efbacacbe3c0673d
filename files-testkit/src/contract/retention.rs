//! The retention rule of the [`Housekeeping`](files_core::Housekeeping) contract:
//! `claim_retained` hands out exactly the available device-root files past their tenant's
//! `retention_secs`, each once while it is leased.

use std::time::Duration as StdDuration;

use files_core::{FileId, FileRecord, FileState, JanitorStore, Scope, SettingsStore, TenantId, TenantSettings};
use time::{Duration, OffsetDateTime};

use super::metadata::{device_root, fresh_tenant, now_micros, ok, record, tenant_root, uploaded_event};

const RULE: &str = "retention";

/// An available file in `scope`, completed `secs_ago` seconds before `now`.
async fn available(store: &dyn JanitorStore, scope: Scope, now: OffsetDateTime, secs_ago: i64) -> FileRecord {
    let pending = FileRecord {
        size: Some(5),
        ..record(scope, "kept.bin", FileState::Pending)
    };
    ok(RULE, store.insert(&pending).await);
    let at = now - Duration::seconds(secs_ago);
    let event = uploaded_event(&pending, 5, at);
    let marked = ok(
        RULE,
        store.mark_available(scope.tenant, pending.id, 5, at, &event).await,
    );
    marked.unwrap_or_else(|| panic!("{RULE}: a pending record is made available"))
}

/// The ids `claimed` holds of `tenants` (a shared database may hold other tests' files),
/// sorted.
fn ids_of(claimed: &[FileRecord], tenants: &[TenantId]) -> Vec<FileId> {
    let mut ids: Vec<FileId> = claimed
        .iter()
        .filter(|r| tenants.contains(&r.tenant))
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

/// Runs the rule against `store`.
///
/// # Panics
/// When the store breaks the rule, or fails a call.
pub async fn run<S: JanitorStore + SettingsStore>(store: &S) {
    let now = now_micros();
    let lease = StdDuration::from_secs(60);
    let retained_tenant = fresh_tenant();
    let other_tenant = fresh_tenant();
    let unset_tenant = fresh_tenant();
    let tenants = [retained_tenant, other_tenant, unset_tenant];
    let retention = TenantSettings {
        retention_secs: Some(3600),
        ..TenantSettings::default()
    };
    ok(RULE, store.put_settings(retained_tenant, &retention, now).await);
    // Settings without retention: nothing of this tenant is ever claimed.
    let no_retention = TenantSettings {
        max_file_size: Some(1000),
        ..TenantSettings::default()
    };
    ok(RULE, store.put_settings(other_tenant, &no_retention, now).await);

    let device = device_root(retained_tenant);
    let old = available(store, device, now, 7200).await;
    let older = available(store, device, now, 9000).await;
    let young = available(store, device, now, 60).await;
    let tenant_file = available(store, tenant_root(retained_tenant), now, 9000).await;
    let pending = record(device, "pending.bin", FileState::Pending);
    ok(RULE, store.insert(&pending).await);
    let deleted = available(store, device, now, 9000).await;
    ok(
        RULE,
        store
            .mark_deleted(retained_tenant, deleted.id, &super::metadata::deletion(now))
            .await,
    );
    let other = available(store, device_root(other_tenant), now, 9000).await;
    let unset = available(store, device_root(unset_tenant), now, 9000).await;

    // The longest retention a setting allows (2^63 - 1 s, past what any calendar reaches):
    // kept, and no claim fails for it.
    let forever_tenant = fresh_tenant();
    let forever = TenantSettings {
        retention_secs: Some(9_223_372_036_854_775_807),
        ..TenantSettings::default()
    };
    ok(RULE, store.put_settings(forever_tenant, &forever, now).await);
    let kept_forever = available(store, device_root(forever_tenant), now, 9000).await;

    // One at a time, the oldest completion first.
    let first = ok(RULE, store.claim_retained(now, 1, lease).await);
    assert_eq!(
        ids_of(&first, &tenants),
        [older.id],
        "{RULE}: the oldest completion first, one at a time"
    );
    let rest = ok(RULE, store.claim_retained(now, 100, lease).await);
    assert_eq!(
        ids_of(&rest, &tenants),
        [old.id],
        "{RULE}: only available device-root files past their tenant's retention, and not a leased \
         one (not a younger file, a tenant-root file, a pending or deleted file, nor a file of a \
         tenant without retention)"
    );
    for kept in [&young, &tenant_file, &pending, &deleted, &other, &unset, &kept_forever] {
        assert!(
            !first.iter().chain(&rest).any(|r| r.id == kept.id),
            "{RULE}: {kept:?} is not claimed"
        );
    }
    assert!(
        ids_of(&ok(RULE, store.claim_retained(now, 100, lease).await), &tenants).is_empty(),
        "{RULE}: a claimed file is not handed out again while leased"
    );

    // Later, the young file is past retention too; the leased ones still are not handed out.
    let later = now + Duration::seconds(3600);
    let got = ok(RULE, store.claim_retained(later, 100, lease).await);
    assert_eq!(
        ids_of(&got, &tenants),
        [young.id],
        "{RULE}: retention counts from the completion"
    );

    // A lease that ran out hands the file out again.
    let again_tenant = fresh_tenant();
    ok(RULE, store.put_settings(again_tenant, &retention, now).await);
    let again = available(store, device_root(again_tenant), now, 7200).await;
    let got = ok(RULE, store.claim_retained(now, 100, StdDuration::from_millis(1)).await);
    assert_eq!(ids_of(&got, &[again_tenant]), [again.id], "{RULE}");
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    let got = ok(RULE, store.claim_retained(now, 100, lease).await);
    assert_eq!(
        ids_of(&got, &[again_tenant]),
        [again.id],
        "{RULE}: a file whose lease ran out is handed out again"
    );
    assert!(
        ok(RULE, store.claim_retained(now, 0, lease).await).is_empty(),
        "{RULE}: a limit of 0 claims nothing"
    );
}
