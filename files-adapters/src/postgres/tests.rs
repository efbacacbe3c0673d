//! Unit tests of the store's pure parts: configuration, rows, events, leases and the error
//! translation (the behaviour against a database is in the contract suites of files-testkit).

use std::time::Duration;

use diesel::pg::data_types::PgInterval;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use files_core::{
    Deletion, DeletionReason, DeviceId, FileEvent, FileRecord, FileState, FileUploaded, OutboxEntry, Owner, PortError,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::errors::{Failure, translate};
use super::outbox::{ClaimedRow, lease_interval};
use super::rows::{FileRow, to_record};
use super::{PostgresConfig, PostgresError, PostgresStore};
use crate::redact::redact_url;

#[test]
fn debug_output_hides_the_password() {
    for url in [
        "postgres://files:s3cret@db.internal:5432/files",
        "postgresql://files:s3cret@db.internal/files?sslmode=disable",
        "postgres://db.internal/files?user=files&password=s3cret",
        "host=db.internal user=files password=s3cret dbname=files",
    ] {
        let config = PostgresConfig::new(url);
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert_eq!(
        redact_url("postgres://files@db/files"),
        "postgres://files@db/files",
        "no password, nothing hidden"
    );
    assert_eq!(redact_url("postgres://u:p@w@db/x"), "postgres://u:***@db/x");
}

#[test]
fn unusable_configurations_are_refused() {
    let good = PostgresConfig::new("postgres://localhost/files");
    assert!(good.validate().is_ok());
    for bad in [
        PostgresConfig {
            pool_size: 0,
            ..good.clone()
        },
        PostgresConfig {
            connect_timeout: Duration::ZERO,
            ..good.clone()
        },
        PostgresConfig {
            query_timeout: Duration::ZERO,
            ..good.clone()
        },
        PostgresConfig::new(" "),
    ] {
        assert!(matches!(bad.validate(), Err(PostgresError::Config(_))), "{bad:?}");
    }
}

#[test]
fn new_outside_a_runtime_is_an_error_not_a_panic() {
    let result = PostgresStore::new(PostgresConfig::new("postgres://localhost/files"));
    assert!(matches!(result, Err(PostgresError::Config(_))));
}

fn row() -> FileRow {
    FileRow {
        id: Uuid::now_v7(),
        tenant_id: Uuid::new_v4(),
        device_id: None,
        name: "report.txt".to_owned(),
        sha256: vec![7; 32],
        size: Some(12),
        content_type: Some("text/plain".to_owned()),
        state: "available".to_owned(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        completed_at: Some(OffsetDateTime::UNIX_EPOCH),
        upload_id: None,
        part_size: None,
        part_sha256: None,
        multipart_expires_at: None,
        upload_expires_at: None,
    }
}

#[test]
fn rows_and_records_convert_both_ways() {
    let row = row();
    let record = FileRecord::try_from(row.clone()).map_err(|e| e.to_string());
    let back = record
        .as_ref()
        .map(|r| FileRow::from_record(r).map_err(|e| e.to_string()));
    assert_eq!(back, Ok(Ok(row)));
    let device = FileRow {
        device_id: Some(Uuid::new_v4()),
        ..self::row()
    };
    let record = FileRecord::try_from(device.clone()).map_err(|e| e.to_string());
    assert_eq!(
        record.map(|r| r.owner),
        Ok(Owner::Device(DeviceId::from_uuid(device.device_id.unwrap_or_default())))
    );
}

#[test]
fn the_insert_is_one_statement_prepared_once_per_connection() {
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment as _;

    // diesel-async prepares a statement that is not safe to cache on every call: a `Parse`
    // round trip and a plan per upload-url. Each pattern of `None`s must give the same SQL.
    let all_none = FileRow {
        device_id: None,
        size: None,
        content_type: None,
        completed_at: None,
        ..row()
    };
    let all_some = FileRow {
        device_id: Some(Uuid::new_v4()),
        upload_id: Some("upload".to_owned()),
        part_size: Some(5 << 20),
        part_sha256: Some(vec![1; 32]),
        multipart_expires_at: Some(OffsetDateTime::UNIX_EPOCH),
        upload_expires_at: Some(OffsetDateTime::UNIX_EPOCH),
        ..row()
    };
    let mut shapes = Vec::new();
    for row in [all_none, all_some] {
        let insert = diesel::insert_into(super::rows::files::table).values(row);
        assert_eq!(insert.is_safe_to_cache_prepared(&Pg).ok(), Some(true));
        shapes.push(
            diesel::debug_query::<Pg, _>(&insert)
                .to_string()
                .split(" -- ")
                .next()
                .map(str::to_owned),
        );
    }
    assert_eq!(shapes[0], shapes[1], "one statement for every pattern of NULLs");
    assert!(
        shapes[0].as_deref().is_some_and(|sql| !sql.contains("DEFAULT")),
        "{shapes:?}"
    );
}

/// `$first, ..., $last`.
fn placeholders(first: usize, last: usize) -> String {
    (first..=last).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

#[test]
fn batches_are_one_statement_prepared_once_per_connection_whatever_their_size() {
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment as _;

    for n in [2, 3, 128] {
        let insert = super::batch::InsertMany::new((0..n).map(|_| row()).collect());
        assert_eq!(insert.is_safe_to_cache_prepared(&Pg).ok(), Some(true), "cached");
        let sql = diesel::debug_query::<Pg, _>(&insert).to_string();
        let sql = sql.split(" -- ").next().unwrap_or_default();
        assert!(
            sql.ends_with(&format!("FROM unnest({}) AS u", placeholders(1, 15))),
            "{sql}"
        );

        let admits = (0..n).map(|_| super::rows::Admit {
            row: row(),
            quotas: [Some(1), None, Some(3), None],
        });
        let admit = super::tenancy::AdmitMany::new(admits.collect());
        assert_eq!(admit.is_safe_to_cache_prepared(&Pg).ok(), Some(true), "cached");
        let sql = diesel::debug_query::<Pg, _>(&admit).to_string();
        let sql = sql.split(" -- ").next().unwrap_or_default();
        assert!(
            sql.starts_with(&format!(
                "WITH admitted AS MATERIALIZED (SELECT files_admit_batch({}) AS ok) INSERT INTO files",
                placeholders(1, 9)
            )),
            "{sql}"
        );
        assert!(
            sql.ends_with(&format!(
                "FROM unnest({}) AS u, admitted WHERE admitted.ok",
                placeholders(10, 24)
            )),
            "{sql}"
        );
    }
}

#[test]
fn the_admission_is_one_statement_prepared_once_per_connection() {
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment as _;

    let admit = super::rows::Admit {
        row: row(),
        quotas: [Some(1), None, Some(3), None],
    };
    assert_eq!(
        admit.is_safe_to_cache_prepared(&Pg).ok(),
        Some(true),
        "cached, not parsed per call"
    );
    let sql = diesel::debug_query::<Pg, _>(&admit).to_string();
    let sql = sql.split(" -- ").next().unwrap_or_default();
    let values: Vec<String> = (1..=15).map(|n| format!("${n}")).collect();
    assert!(sql.contains(&format!("SELECT {} WHERE", values.join(", "))), "{sql}");
    assert!(
        sql.ends_with("($9 AT TIME ZONE 'UTC')::date, $16, $17, $18, $19)"),
        "the quotas after the record's columns: {sql}"
    );
}

#[test]
fn rows_stored_before_the_naming_rules_still_read_as_stored() {
    // A decomposed (NFD) name, and names with a format character or a line separator: all
    // accepted before names were normalized and those characters refused.
    for name in ["cafe\u{301}.txt", "invoice\u{202E}fdp.exe", "a\u{200B}b", "a\u{2028}b"] {
        let old = FileRow {
            name: name.to_owned(),
            ..row()
        };
        let record = to_record("get", old).map_err(|e| e.to_string());
        assert_eq!(record.as_ref().map(|r| r.name.as_str()), Ok(name));
        // Its event, recorded in the outbox before the upgrade, still reads too.
        let Ok(record) = record else { continue };
        let event = FileUploaded::new(Uuid::new_v4(), &record, 12, "files", OffsetDateTime::UNIX_EPOCH);
        let row = ClaimedRow {
            event_id: event.event_id,
            seq: 1,
            payload: serde_json::to_string(&event).unwrap_or_default(),
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        };
        let entry = OutboxEntry::try_from(row).map_err(|e| e.to_string());
        assert_eq!(entry.map(|e| e.event), Ok(FileEvent::Uploaded(event)), "{name:?}");
    }
}

#[test]
fn bad_rows_are_errors_not_panics() {
    let bad_rows = [
        FileRow {
            sha256: vec![1; 31],
            ..row()
        },
        FileRow {
            size: Some(-1),
            ..row()
        },
        FileRow {
            state: "gone".to_owned(),
            ..row()
        },
        FileRow {
            name: String::new(),
            ..row()
        },
        FileRow {
            name: "a\u{0}b".to_owned(),
            ..row()
        },
        FileRow {
            content_type: Some("not a media type".to_owned()),
            ..row()
        },
    ];
    for bad in bad_rows {
        let shown = format!("{bad:?}");
        let error = to_record("get", bad).err();
        assert!(matches!(error, Some(PortError::Failed(_))), "{shown}");
    }
}

#[test]
fn outbox_rows_read_back_as_their_event_and_bad_ones_are_failures() {
    let record = match FileRecord::try_from(row()) {
        Ok(record) => record,
        Err(e) => panic!("{e}"),
    };
    let event = FileUploaded::new(Uuid::new_v4(), &record, 12, "files", OffsetDateTime::UNIX_EPOCH);
    let payload = serde_json::to_string(&event).unwrap_or_default();
    let claimed = |event_id: Uuid, payload: &str| ClaimedRow {
        event_id,
        seq: 1,
        payload: payload.to_owned(),
        recorded_at: OffsetDateTime::UNIX_EPOCH,
    };
    let entry = OutboxEntry::try_from(claimed(event.event_id, &payload)).map_err(|e| e.to_string());
    assert_eq!(entry.map(|e| e.event), Ok(FileEvent::Uploaded(event.clone())));
    let deleted = Deletion::new(DeletionReason::Deleted, OffsetDateTime::UNIX_EPOCH, "files")
        .event_for(&FileRecord {
            state: FileState::Available,
            ..record.clone()
        })
        .map(FileEvent::Deleted);
    let Some(deleted) = deleted else {
        panic!("an available file's deletion has an event");
    };
    let deleted_payload = serde_json::to_string(&deleted).unwrap_or_default();
    let entry = OutboxEntry::try_from(claimed(deleted.event_id(), &deleted_payload)).map_err(|e| e.to_string());
    assert_eq!(entry.map(|e| e.event), Ok(deleted));
    for bad in [
        claimed(event.event_id, "{}"),
        claimed(event.event_id, "null"),
        claimed(Uuid::new_v4(), &payload), // a good event under another id
    ] {
        let shown = format!("{bad:?}");
        let error = OutboxEntry::try_from(bad)
            .map_err(|e| translate("claim", e.into()))
            .err();
        assert!(matches!(error, Some(PortError::Failed(_))), "{shown}");
    }
}

#[test]
fn leases_become_intervals_without_overflow() {
    assert_eq!(
        lease_interval(Duration::from_millis(300)),
        PgInterval::from_microseconds(300_000)
    );
    assert_eq!(lease_interval(Duration::MAX), PgInterval::from_microseconds(i64::MAX));
}

#[test]
fn sizes_beyond_i64_are_refused_not_wrapped() {
    let mut record = match FileRecord::try_from(row()) {
        Ok(record) => record,
        Err(e) => panic!("{e}"),
    };
    record.size = Some(u64::MAX);
    assert!(FileRow::from_record(&record).is_err());
}

#[test]
fn checkout_timeouts_and_lost_connections_are_unavailable_refusals_failed() {
    let checkout = Failure::Checkout {
        error: bb8::RunError::TimedOut,
        waited: Duration::from_secs(2),
        last_connect_error: Some("connection refused".to_owned()),
    };
    let error = translate("get", checkout);
    assert!(matches!(error, PortError::Unavailable(_)));
    assert!(
        files_core::ports::error_chain(&error).contains("connection refused"),
        "{}",
        files_core::ports::error_chain(&error)
    );
    assert!(matches!(
        translate("get", Failure::Timeout(Duration::from_secs(3))),
        PortError::Unavailable(_)
    ));
    // (kind, connection lost, unavailable?)
    for (kind, connection_lost, unavailable) in [
        (DatabaseErrorKind::ClosedConnection, false, true),
        (DatabaseErrorKind::Unknown, true, true),
        (DatabaseErrorKind::UniqueViolation, false, false),
    ] {
        let error = DieselError::DatabaseError(kind, Box::new(format!("{kind:?}")));
        let translated = translate("query", Failure::Query { error, connection_lost });
        assert_eq!(matches!(translated, PortError::Unavailable(_)), unavailable, "{kind:?}");
    }
}
