//! Bucket notifications in S3's event JSON, as AWS and MinIO send them, read into the core's
//! `NotificationRecord`s: the one reader of the webhook (`routes::storage_events`) and the
//! queue ingest (`crate::ingest`).
//!
//! AWS: `{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name"}, "object":
//! {"key", "size"}}}]}` with the key URL-encoded (`+` for spaces). MinIO: the same records with
//! `eventName` prefixed `s3:`, `/` in keys encoded as `%2F`, and extra top-level `EventName` and
//! `Key`. Records are read one by one: a malformed record is reported, not fatal to the others.

use files_core::{NotificationRecord, ObjectCreated};
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// The notification is not a JSON object with a `Records` array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an S3 event notification: {0}")]
pub struct NotANotification(pub &'static str);

/// Reads the records of a notification body.
///
/// # Errors
/// [`NotANotification`] when the body is not JSON or has no `Records` array.
pub fn parse(body: &[u8]) -> Result<Vec<NotificationRecord>, NotANotification> {
    let value: Value = serde_json::from_slice(body).map_err(|_| NotANotification("the body is not JSON"))?;
    let records = value
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(NotANotification("there is no Records array"))?;
    Ok(records.iter().map(record).collect())
}

fn record(record: &Value) -> NotificationRecord {
    let Some(name) = record.get("eventName").and_then(Value::as_str) else {
        return NotificationRecord::Malformed("record without eventName");
    };
    let name = name.strip_prefix("s3:").unwrap_or(name);
    if !name.starts_with("ObjectCreated:") {
        return NotificationRecord::Ignored;
    }
    let s3 = record.get("s3");
    let Some(bucket) = s3.and_then(|s| s.pointer("/bucket/name")).and_then(Value::as_str) else {
        return NotificationRecord::Malformed("record without s3.bucket.name");
    };
    let Some(key) = s3.and_then(|s| s.pointer("/object/key")).and_then(Value::as_str) else {
        return NotificationRecord::Malformed("record without s3.object.key");
    };
    let Some(key) = decode_key(key) else {
        return NotificationRecord::Malformed("s3.object.key is not valid URL-encoded UTF-8");
    };
    let size = match s3.and_then(|s| s.pointer("/object/size")) {
        None | Some(Value::Null) => None,
        Some(size) => match size.as_u64() {
            Some(size) => Some(size),
            None => return NotificationRecord::Malformed("s3.object.size is not a whole number"),
        },
    };
    NotificationRecord::Created(ObjectCreated {
        bucket: bucket.to_owned(),
        key,
        size,
    })
}

/// Decodes a key as S3 event JSON encodes it: form encoding, `+` for spaces.
fn decode_key(key: &str) -> Option<String> {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().ok().map(|k| k.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap_or_default()
    }

    #[test]
    fn reads_aws_and_minio_shapes() {
        let aws = json!({"Records": [{"eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "files"}, "object": {"key": "t/my+file%21", "size": 5}}}]});
        let minio = json!({"EventName": "s3:ObjectCreated:Put", "Key": "files/t/d/f",
            "Records": [{"eventName": "s3:ObjectCreated:CompleteMultipartUpload",
            "s3": {"bucket": {"name": "files"}, "object": {"key": "t%2Fd%2Ff", "size": 7}}}]});
        assert_eq!(
            parse(&body(&aws)),
            Ok(vec![NotificationRecord::Created(ObjectCreated {
                bucket: "files".into(),
                key: "t/my file!".into(),
                size: Some(5)
            })])
        );
        assert_eq!(
            parse(&body(&minio)),
            Ok(vec![NotificationRecord::Created(ObjectCreated {
                bucket: "files".into(),
                key: "t/d/f".into(),
                size: Some(7)
            })])
        );
    }

    #[test]
    fn other_events_and_malformed_records_do_not_spoil_the_rest() {
        let mixed = json!({"Records": [
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "files"}, "object": {"key": "k"}}},
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}}},
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "k", "size": -1}}},
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "%FF"}}},
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "files"}, "object": {"key": "k"}}},
        ]});
        let records = parse(&body(&mixed)).unwrap_or_default();
        assert_eq!(records[0], NotificationRecord::Ignored);
        assert!(matches!(records[1], NotificationRecord::Malformed(_)));
        assert!(matches!(records[2], NotificationRecord::Malformed(_)));
        assert!(matches!(records[3], NotificationRecord::Malformed(_)));
        assert!(matches!(
            records[4],
            NotificationRecord::Created(ObjectCreated { size: None, .. })
        ));
        assert!(parse(b"[]").is_err());
        assert!(parse(b"not json").is_err());
    }
}
