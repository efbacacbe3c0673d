//! The contract of the [`Cache`] port: what every cache, in memory or on Redis, must do.
//!
//! Each run of [`run`] uses fresh random tenants, so it can run any number of times,
//! in parallel, on a shared cache. [`run_clear`] empties its cache, so it needs one
//! of its own. Both panic, naming the broken rule, on the first violation.

use files_core::{
    Cache, ContentType, DeviceId, FileId, FileName, FileRecord, FileState, Owner, PortError, Scope, Sha256, TenantId,
};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Runs every rule of the contract against `cache`.
///
/// # Panics
/// When the cache breaks a rule, or fails a call.
pub async fn run(cache: &dyn Cache) {
    absent_file_is_none(cache).await;
    records_round_trip_exactly(cache).await;
    put_file_replaces(cache).await;
    put_file_never_moves_backwards(cache).await;
    files_are_separated_by_tenant(cache).await;
    latest_round_trip_replace_and_remove(cache).await;
    latest_is_separated_by_scope(cache).await;
    latest_is_separated_by_name(cache).await;
    remove_file_forgets_only_that_record(cache).await;
}

/// The rules of [`Cache::clear`]: it forgets every record and every latest version of
/// `cache`, and nothing of `neighbour`, another cache on the same store where there is one (for
/// Redis: another key prefix on the same server). Clears `cache`, so it must be used by nothing
/// else meanwhile.
///
/// # Panics
/// When the cache breaks a rule, or fails a call.
pub async fn run_clear(cache: &dyn Cache, neighbour: &dyn Cache) {
    ok(cache.clear().await, "clear of a cache that may be empty");
    ok(cache.clear().await, "clear of an empty cache");

    let tenant = fresh_tenant();
    let records: Vec<FileRecord> = (0..3)
        .map(|n| sample_record(tenant, Owner::Device(fresh_device()), &format!("clear-{n}.bin")))
        .collect();
    let kept = sample_record(fresh_tenant(), Owner::Tenant, "neighbour.bin");
    for record in &records {
        ok(cache.put_file(record).await, "put_file");
        ok(
            cache.put_latest(record.scope(), &record.name, record.id).await,
            "put_latest",
        );
    }
    ok(neighbour.put_file(&kept).await, "put_file in the neighbour");
    ok(
        neighbour.put_latest(kept.scope(), &kept.name, kept.id).await,
        "put_latest in the neighbour",
    );

    ok(cache.clear().await, "clear");
    for record in &records {
        let file = ok(cache.get_file(record.tenant, record.id).await, "get_file after clear");
        assert_eq!(file, None, "clear must forget every record");
        let latest = ok(
            cache.get_latest(record.scope(), &record.name).await,
            "get_latest after clear",
        );
        assert_eq!(latest, None, "clear must forget every latest version");
    }
    assert_eq!(
        ok(
            neighbour.get_file(kept.tenant, kept.id).await,
            "get_file in the neighbour"
        ),
        Some(kept.clone()),
        "clear must not touch another cache's records"
    );
    assert_eq!(
        ok(
            neighbour.get_latest(kept.scope(), &kept.name).await,
            "get_latest in the neighbour"
        ),
        Some(kept.id),
        "clear must not touch another cache's latest versions"
    );

    // The cache works after a clear.
    let after = sample_record(tenant, Owner::Tenant, "after-clear.bin");
    ok(cache.put_file(&after).await, "put_file after clear");
    assert_eq!(
        ok(cache.get_file(after.tenant, after.id).await, "get_file after clear"),
        Some(after)
    );
    ok(cache.clear().await, "clear again");
}

/// A tenant no other run uses.
#[must_use]
pub fn fresh_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v4())
}

/// A device no other run uses.
#[must_use]
pub fn fresh_device() -> DeviceId {
    DeviceId::from_uuid(Uuid::new_v4())
}

/// A valid file name, or a panic naming it.
///
/// # Panics
/// When `name` is not a valid file name.
#[must_use]
pub fn name(name: &str) -> FileName {
    FileName::parse(name).unwrap_or_else(|e| panic!("test file name {name:?}: {e}"))
}

/// A pending record with every optional field empty.
#[must_use]
pub fn sample_record(tenant: TenantId, owner: Owner, file_name: &str) -> FileRecord {
    FileRecord {
        id: FileId::new(),
        tenant,
        owner,
        name: name(file_name),
        sha256: Sha256::from_bytes([0xab; 32]),
        size: None,
        content_type: None,
        state: FileState::Pending,
        created_at: OffsetDateTime::now_utc(),
        completed_at: None,
        multipart: None,
        upload_expires_at: None,
    }
}

/// Records covering every field's variations: each state, each owner, sizes absent, zero and
/// huge, content type absent and with parameters, timestamps in UTC and at other offsets with
/// nanoseconds, the longest name.
fn varied_records(tenant: TenantId) -> Vec<FileRecord> {
    let device = fresh_device();
    let content_type = |text: &str| ContentType::parse(text).unwrap_or_else(|e| panic!("content type {text}: {e}"));
    vec![
        sample_record(tenant, Owner::Device(device), "crash.dmp"),
        FileRecord {
            size: Some(0),
            content_type: Some(content_type("application/json; charset=utf-8")),
            state: FileState::Available,
            created_at: datetime!(2024-02-29 23:59:59.123_456_789 UTC),
            completed_at: Some(datetime!(2024-03-01 00:00:00.000_000_001 UTC)),
            ..sample_record(tenant, Owner::Tenant, "config bundle (v2).tar.gz")
        },
        FileRecord {
            sha256: Sha256::from_bytes([0; 32]),
            size: Some(u64::MAX),
            content_type: Some(content_type("application/octet-stream")),
            state: FileState::Deleted,
            created_at: datetime!(1999-12-31 18:30:00.5 +05:30),
            completed_at: Some(datetime!(2000-01-01 00:00:00 -08:00)),
            ..sample_record(tenant, Owner::Device(device), &"日".repeat(85))
        },
        FileRecord {
            size: Some(1 << 40),
            state: FileState::Available,
            completed_at: Some(OffsetDateTime::now_utc()),
            ..sample_record(tenant, Owner::Device(fresh_device()), "a:b*c?[d] {e} \"f\" \\g%h")
        },
    ]
}

fn ok<T>(result: Result<T, PortError>, call: &str) -> T {
    result.unwrap_or_else(|error| {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        panic!("cache contract: {call} failed: {text}")
    })
}

async fn absent_file_is_none(cache: &dyn Cache) {
    let got = ok(
        cache.get_file(fresh_tenant(), FileId::new()).await,
        "get_file of an absent file",
    );
    assert_eq!(got, None, "get_file of an absent file must be None");
}

async fn records_round_trip_exactly(cache: &dyn Cache) {
    for record in varied_records(fresh_tenant()) {
        ok(cache.put_file(&record).await, "put_file");
        let got = ok(cache.get_file(record.tenant, record.id).await, "get_file");
        assert_eq!(
            got.as_ref(),
            Some(&record),
            "get_file must return what put_file stored, every field"
        );
        // Exactly, offsets included, not only the same instants.
        if let Some(got) = got {
            assert_eq!(got.created_at.offset(), record.created_at.offset(), "created_at offset");
            assert_eq!(
                got.completed_at.map(OffsetDateTime::offset),
                record.completed_at.map(OffsetDateTime::offset),
                "completed_at offset"
            );
        }
    }
}

async fn put_file_replaces(cache: &dyn Cache) {
    let tenant = fresh_tenant();
    let pending = sample_record(tenant, Owner::Tenant, "firmware.bin");
    ok(cache.put_file(&pending).await, "put_file");
    let available = FileRecord {
        size: Some(42),
        state: FileState::Available,
        completed_at: Some(OffsetDateTime::now_utc()),
        ..pending.clone()
    };
    ok(cache.put_file(&available).await, "put_file again");
    let got = ok(cache.get_file(tenant, pending.id).await, "get_file");
    assert_eq!(got, Some(available.clone()), "a second put_file must replace the first");
    // And back: the cache holds what was put last, whatever it is.
    let deleted = FileRecord {
        state: FileState::Deleted,
        size: None,
        completed_at: None,
        ..available
    };
    ok(cache.put_file(&deleted).await, "put_file a third time");
    let got = ok(cache.get_file(tenant, pending.id).await, "get_file");
    assert_eq!(got, Some(deleted), "put_file must replace, fields set to None included");
}

/// A copy read before a change (a fill after a miss that raced with a change on another
/// instance) must not overwrite the changed entry: entries never move to an earlier stage.
async fn put_file_never_moves_backwards(cache: &dyn Cache) {
    let tenant = fresh_tenant();
    let pending = sample_record(tenant, Owner::Tenant, "raced.bin");
    let available = FileRecord {
        size: Some(42),
        state: FileState::Available,
        completed_at: Some(OffsetDateTime::now_utc()),
        ..pending.clone()
    };
    ok(cache.put_file(&available).await, "put_file of the available record");
    ok(cache.put_file(&pending).await, "put_file of the older, pending copy");
    let got = ok(cache.get_file(tenant, pending.id).await, "get_file");
    assert_eq!(
        got,
        Some(available.clone()),
        "a pending copy must not overwrite an available entry"
    );
    let expired = FileRecord {
        state: FileState::Expired,
        ..pending.clone()
    };
    ok(cache.put_file(&expired).await, "put_file of an expired copy");
    let deleted = FileRecord {
        state: FileState::Deleted,
        ..available.clone()
    };
    ok(cache.put_file(&deleted).await, "put_file of the deleted record");
    for older in [&pending, &available, &expired] {
        ok(cache.put_file(older).await, "put_file of an older copy");
        let got = ok(cache.get_file(tenant, pending.id).await, "get_file");
        assert_eq!(
            got.as_ref().map(|r| r.state),
            Some(FileState::Deleted),
            "a {} copy must not overwrite a deleted entry",
            older.state.as_str()
        );
    }
}

async fn files_are_separated_by_tenant(cache: &dyn Cache) {
    let record = sample_record(fresh_tenant(), Owner::Tenant, "report.txt");
    ok(cache.put_file(&record).await, "put_file");
    let other = ok(
        cache.get_file(fresh_tenant(), record.id).await,
        "get_file from another tenant",
    );
    assert_eq!(other, None, "a file must not be found under another tenant");
    let other_id = ok(
        cache.get_file(record.tenant, FileId::new()).await,
        "get_file of another id",
    );
    assert_eq!(other_id, None, "a file must not be found under another id");
}

async fn latest_round_trip_replace_and_remove(cache: &dyn Cache) {
    let scope = Scope {
        tenant: fresh_tenant(),
        owner: Owner::Device(fresh_device()),
    };
    let file = name("app.log");
    let got = ok(cache.get_latest(scope, &file).await, "get_latest of an absent name");
    assert_eq!(got, None, "get_latest of an absent name must be None");
    ok(
        cache.remove_latest(scope, &file).await,
        "remove_latest of an absent name",
    );

    let (first, second) = (FileId::new(), FileId::new());
    ok(cache.put_latest(scope, &file, first).await, "put_latest");
    assert_eq!(ok(cache.get_latest(scope, &file).await, "get_latest"), Some(first));
    ok(cache.put_latest(scope, &file, second).await, "put_latest again");
    assert_eq!(
        ok(cache.get_latest(scope, &file).await, "get_latest"),
        Some(second),
        "a second put_latest must replace the first"
    );
    ok(cache.remove_latest(scope, &file).await, "remove_latest");
    assert_eq!(
        ok(cache.get_latest(scope, &file).await, "get_latest after remove_latest"),
        None,
        "remove_latest must forget the name"
    );
    ok(cache.remove_latest(scope, &file).await, "remove_latest twice");
}

async fn latest_is_separated_by_scope(cache: &dyn Cache) {
    let (tenant, other_tenant) = (fresh_tenant(), fresh_tenant());
    let (device, other_device) = (fresh_device(), fresh_device());
    let scopes = [
        Scope {
            tenant,
            owner: Owner::Tenant,
        },
        Scope {
            tenant,
            owner: Owner::Device(device),
        },
        Scope {
            tenant,
            owner: Owner::Device(other_device),
        },
        Scope {
            tenant: other_tenant,
            owner: Owner::Device(device),
        },
        Scope {
            tenant: other_tenant,
            owner: Owner::Tenant,
        },
    ];
    let file = name("update.bin");
    let ids: Vec<FileId> = scopes.iter().map(|_| FileId::new()).collect();
    for (scope, id) in scopes.iter().zip(&ids) {
        ok(cache.put_latest(*scope, &file, *id).await, "put_latest");
    }
    for (scope, id) in scopes.iter().zip(&ids) {
        let got = ok(cache.get_latest(*scope, &file).await, "get_latest");
        assert_eq!(got, Some(*id), "the latest of a name must be kept per scope ({scope})");
    }
    // Removing in one scope leaves the others.
    ok(cache.remove_latest(scopes[1], &file).await, "remove_latest");
    for (index, (scope, id)) in scopes.iter().zip(&ids).enumerate() {
        let got = ok(cache.get_latest(*scope, &file).await, "get_latest");
        let expected = (index != 1).then_some(*id);
        assert_eq!(got, expected, "remove_latest must touch only its own scope ({scope})");
    }
}

async fn latest_is_separated_by_name(cache: &dyn Cache) {
    let scope = Scope {
        tenant: fresh_tenant(),
        owner: Owner::Tenant,
    };
    let longest = "é".repeat(127) + "x";
    assert_eq!(longest.len(), FileName::MAX_BYTES);
    let mut names: Vec<FileName> = [
        "Report.log",
        "report.log",
        "REPORT.LOG",
        "\u{e9}t\u{e9}.txt", // "été.txt", composed (NFC)
        "report.log ",
        "*",
        "report.*",
        longest.as_str(),
        &"a".repeat(FileName::MAX_BYTES),
    ]
    .iter()
    .map(|text| name(text))
    .collect();
    // The same text decomposed (NFD): callers' names are normalized to NFC now, but rows
    // stored before that may hold it, and it is another key.
    let decomposed = "e\u{301}te\u{301}.txt";
    names.push(FileName::from_stored(decomposed).unwrap_or_else(|e| panic!("stored name {decomposed:?}: {e}")));
    let ids: Vec<FileId> = names.iter().map(|_| FileId::new()).collect();
    for (file, id) in names.iter().zip(&ids) {
        ok(cache.put_latest(scope, file, *id).await, "put_latest");
    }
    for (file, id) in names.iter().zip(&ids) {
        let got = ok(cache.get_latest(scope, file).await, "get_latest");
        assert_eq!(got, Some(*id), "names that differ in any byte are distinct ({file:?})");
    }
    ok(cache.remove_latest(scope, &names[0]).await, "remove_latest");
    assert_eq!(ok(cache.get_latest(scope, &names[0]).await, "get_latest"), None);
    assert_eq!(
        ok(cache.get_latest(scope, &names[1]).await, "get_latest"),
        Some(ids[1]),
        "remove_latest must not touch a name that differs only in case"
    );
}

async fn remove_file_forgets_only_that_record(cache: &dyn Cache) {
    ok(
        cache.remove_file(fresh_tenant(), FileId::new()).await,
        "remove_file of an absent record",
    );
    let tenant = fresh_tenant();
    let record = sample_record(tenant, Owner::Device(fresh_device()), "gone.bin");
    let sibling = sample_record(tenant, record.owner, "gone.bin");
    let same_id_elsewhere = FileRecord {
        tenant: fresh_tenant(),
        ..record.clone()
    };
    for r in [&record, &sibling, &same_id_elsewhere] {
        ok(cache.put_file(r).await, "put_file");
    }
    ok(
        cache.put_latest(record.scope(), &record.name, record.id).await,
        "put_latest",
    );

    ok(cache.remove_file(tenant, record.id).await, "remove_file");
    assert_eq!(
        ok(cache.get_file(tenant, record.id).await, "get_file after remove_file"),
        None,
        "remove_file must forget the record"
    );
    assert_eq!(
        ok(cache.get_file(tenant, sibling.id).await, "get_file of another version"),
        Some(sibling),
        "remove_file must not touch another version"
    );
    assert_eq!(
        ok(
            cache.get_file(same_id_elsewhere.tenant, record.id).await,
            "get_file of the same id in another tenant"
        ),
        Some(same_id_elsewhere),
        "remove_file must not touch another tenant"
    );
    assert_eq!(
        ok(
            cache.get_latest(record.scope(), &record.name).await,
            "get_latest after remove_file"
        ),
        Some(record.id),
        "remove_file must not touch the latest version of the name"
    );
    ok(cache.remove_file(tenant, record.id).await, "remove_file twice");
}
