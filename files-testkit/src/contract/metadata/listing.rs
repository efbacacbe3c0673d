//! The rules about finding versions by scope: `latest` of a name and `list` of a state.

use files_core::{FileId, FileName, FileState, MetadataStore, Scope};

use super::fixtures::{device_root, fresh_tenant, ids, insert, insert_all, name, ok, record, tenant_root};

/// `latest` is the highest id of a name in one scope and one state: a device root, another
/// device's root, the tenant root and another tenant never see each other's versions; names
/// are exact (case-sensitive); a newer version in another state does not hide an older one.
///
/// # Panics
/// When the store breaks the rule.
pub async fn latest_is_per_scope_name_and_state(store: &dyn MetadataStore) {
    const RULE: &str = "latest is per scope, name and state";
    let tenant = fresh_tenant();
    let device = device_root(tenant);
    let other_device = device_root(tenant);
    let root = tenant_root(tenant);
    let other_tenant = Scope {
        tenant: fresh_tenant(),
        owner: device.owner,
    };
    let file = name("config.json");

    // Oldest first: each is newer than every one before it.
    let device_v1 = record(device, "config.json", FileState::Available);
    let root_v1 = record(root, "config.json", FileState::Available);
    let device_v2 = record(device, "config.json", FileState::Available);
    let other_device_v1 = record(other_device, "config.json", FileState::Available);
    let other_tenant_v1 = record(other_tenant, "config.json", FileState::Available);
    let device_pending = record(device, "config.json", FileState::Pending);
    let device_other_name = record(device, "Config.json", FileState::Available);
    let root_v2 = record(root, "config.json", FileState::Available);
    let root_deleted = record(root, "config.json", FileState::Deleted);
    insert_all(
        store,
        RULE,
        &[
            device_v1,
            root_v1,
            device_v2.clone(),
            other_device_v1.clone(),
            other_tenant_v1.clone(),
            device_pending.clone(),
            device_other_name.clone(),
            root_v2.clone(),
            root_deleted.clone(),
        ],
    )
    .await;

    let latest = async |scope: Scope, file: &FileName, state: FileState| {
        ok(RULE, store.latest(scope, file, state).await).map(|r| r.id)
    };
    assert_eq!(
        latest(device, &file, FileState::Available).await,
        Some(device_v2.id),
        "{RULE}: device root"
    );
    assert_eq!(
        latest(root, &file, FileState::Available).await,
        Some(root_v2.id),
        "{RULE}: tenant root"
    );
    assert_eq!(
        latest(other_device, &file, FileState::Available).await,
        Some(other_device_v1.id),
        "{RULE}: another device"
    );
    assert_eq!(
        latest(other_tenant, &file, FileState::Available).await,
        Some(other_tenant_v1.id),
        "{RULE}: another tenant"
    );
    assert_eq!(
        latest(device, &file, FileState::Pending).await,
        Some(device_pending.id),
        "{RULE}: pending"
    );
    assert_eq!(
        latest(root, &file, FileState::Deleted).await,
        Some(root_deleted.id),
        "{RULE}: deleted"
    );
    assert_eq!(
        latest(root, &file, FileState::Pending).await,
        None,
        "{RULE}: no pending in the tenant root"
    );
    assert_eq!(
        latest(device, &name("Config.json"), FileState::Available).await,
        Some(device_other_name.id),
        "{RULE}: names are case-sensitive"
    );
    assert_eq!(
        latest(root, &name("Config.json"), FileState::Available).await,
        None,
        "{RULE}: a device's name is not the tenant root's"
    );
    assert_eq!(
        latest(tenant_root(other_tenant.tenant), &file, FileState::Available).await,
        None,
        "{RULE}: a device's file is not in its tenant's root"
    );
    assert_eq!(
        latest(device_root(tenant), &file, FileState::Available).await,
        None,
        "{RULE}: a device with no files"
    );
    assert_eq!(
        latest(device, &name("config.json.bak"), FileState::Available).await,
        None,
        "{RULE}: absent name"
    );
}

/// `list` gives the versions of one scope in one state, newest first, at most `limit`, below
/// `before` when given: paging with the last id of each page visits each exactly once.
///
/// # Panics
/// When the store breaks the rule.
pub async fn list_pages_newest_first_by_state(store: &dyn MetadataStore) {
    const RULE: &str = "list pages newest first by state";
    for in_device_root in [true, false] {
        // A tenant for each pass, so the other root's files of one pass are not this one's.
        let tenant = fresh_tenant();
        let (scope, other) = if in_device_root {
            (device_root(tenant), tenant_root(tenant))
        } else {
            (tenant_root(tenant), device_root(tenant))
        };
        let mut available = Vec::new();
        let mut pending = Vec::new();
        // Interleaved: other states and other scopes between the listed ones.
        for i in 0..5 {
            let file = record(scope, &format!("file-{i}"), FileState::Available);
            insert(store, RULE, &file).await;
            available.push(file);
            let noise = [
                record(scope, &format!("file-{i}"), FileState::Pending),
                record(scope, "gone", FileState::Deleted),
                record(other, &format!("file-{i}"), FileState::Available),
                record(
                    Scope {
                        tenant: fresh_tenant(),
                        owner: scope.owner,
                    },
                    "x",
                    FileState::Available,
                ),
            ];
            insert_all(store, RULE, &noise).await;
            pending.push(noise[0].clone());
        }
        available.reverse();
        pending.reverse();

        let list = async |state: FileState, before: Option<FileId>, limit: usize| {
            ok(RULE, store.list(scope, state, before, limit).await)
        };
        assert_eq!(
            list(FileState::Available, None, 100).await,
            available,
            "{RULE}: all, newest first"
        );
        assert_eq!(
            ids(&list(FileState::Pending, None, 100).await),
            ids(&pending),
            "{RULE}: pending"
        );
        assert_eq!(list(FileState::Deleted, None, 100).await.len(), 5, "{RULE}: deleted");
        assert!(list(FileState::Available, None, 0).await.is_empty(), "{RULE}: limit 0");

        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = list(FileState::Available, before, 2).await;
            assert!(page.len() <= 2, "{RULE}: limit");
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            pages.push(ids(&page));
            assert!(pages.len() <= 3, "{RULE}: paging does not end");
        }
        let expected = ids(&available);
        assert_eq!(
            pages,
            [&expected[0..2], &expected[2..4], &expected[4..5]],
            "{RULE}: pages"
        );
        // `before` need not be an id in the list, nor in the store.
        assert_eq!(
            ids(&list(FileState::Available, Some(FileId::new()), 100).await),
            expected,
            "{RULE}: before a newer id"
        );
        assert_eq!(
            ids(&list(FileState::Available, Some(pending[2].id), 100).await),
            expected[2..],
            "{RULE}: before another state's id"
        );
        assert!(
            list(FileState::Available, Some(expected[4]), 100).await.is_empty(),
            "{RULE}: before the oldest"
        );
    }
    assert!(
        ok(
            RULE,
            store
                .list(device_root(fresh_tenant()), FileState::Available, None, 10)
                .await
        )
        .is_empty(),
        "{RULE}: a device with no files"
    );
}
