//! What the service logs of what callers send: escaped, whatever formatter the embedding
//! program installs.

use files_core::{NotificationRecord, ObjectCreated};
use files_testkit::logs::CapturedLog;

use crate::world::World;

/// A notification's object key with a newline and terminal escapes (from a webhook or the AMQP
/// ingest queue) is logged escaped even by tracing-subscriber's default human format, which
/// writes a `%` value raw.
#[tokio::test]
async fn a_notified_object_key_is_logged_escaped() {
    let w = World::new();
    let captured = CapturedLog::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let key = "t/d/f\n2030-01-01T00:00:00.000000Z ERROR forged: \u{1b}[31mred\u{1b}[0m";
    let records = ["files", "elsewhere"]
        .map(|bucket| {
            NotificationRecord::Created(ObjectCreated {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: Some(1),
            })
        })
        .to_vec();
    let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    let ingested = w.service.ingest_records(records).await.unwrap();
    assert_eq!(ingested.skipped, 2);
    let text = captured.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per skipped record: {text:?}");
    for line in lines {
        assert!(line.contains("storage event skipped"), "{line:?}");
        assert!(line.contains(r"t/d/f\n2030"), "the key, escaped: {line:?}");
        assert!(!line.contains('\u{1b}'), "a raw escape: {line:?}");
    }
}
