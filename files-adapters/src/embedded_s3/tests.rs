//! Tests of the embedded S3 store: a real server on loopback driven with presigned
//! URLs over HTTP (storage, refusal of mismatching bodies and bad signatures,
//! multipart uploads, shutdown), plus unit tests of the checksum helpers.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use s3s::S3ErrorCode;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use tokio::sync::mpsc;

use super::verify::{checksum_hasher, merge_trailer_checksums, verify_checksums};
use super::*;

use rusty_s3::actions::{CreateMultipartUpload, S3Action as _};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use sha2::Digest as _;
use tokio::sync::mpsc::error::TryRecvError;

const BUCKET: &str = "files";
const ACCESS_KEY: &str = "embedded-access";
const SECRET_KEY: &str = "embedded-secret";
const TTL: Duration = Duration::from_secs(300);

struct Harness {
    root: tempfile::TempDir,
    server: EmbeddedS3,
    stored: mpsc::UnboundedReceiver<StoredObject>,
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

fn sha256_b64(data: &[u8]) -> String {
    BASE64.encode(sha2::Sha256::digest(data))
}

async fn harness() -> Harness {
    let root = tempfile::tempdir().unwrap();
    let (tx, stored) = mpsc::unbounded_channel();
    let config = EmbeddedS3Config {
        root: root.path().join("store"),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.into(),
        bucket: BUCKET.to_owned(),
    };
    let server = EmbeddedS3::start(config, tx).await.unwrap();
    let bucket = Bucket::new(server.endpoint().parse().unwrap(), UrlStyle::Path, BUCKET, "us-east-1").unwrap();
    Harness {
        root,
        server,
        stored,
        bucket,
        credentials: Credentials::new(ACCESS_KEY, SECRET_KEY),
        http: reqwest::Client::builder().build().unwrap(),
    }
}

impl Harness {
    fn store_dir(&self) -> PathBuf {
        self.root.path().join("store")
    }

    fn put_url(&self, key: &str, checksum: &str) -> String {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action
            .headers_mut()
            .insert("x-amz-checksum-sha256", checksum.to_owned());
        action.sign(TTL).to_string()
    }

    async fn put(&self, url: &str, checksum: &str, body: &[u8]) -> reqwest::Response {
        self.http
            .put(url)
            .header("x-amz-checksum-sha256", checksum)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, key: &str) -> reqwest::Response {
        let url = self.bucket.get_object(Some(&self.credentials), key).sign(TTL);
        self.http.get(url.as_str()).send().await.unwrap()
    }

    async fn head_with_checksum(&self, key: &str) -> reqwest::Response {
        let mut action = self.bucket.head_object(Some(&self.credentials), key);
        action.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
        let url = action.sign(TTL);
        self.http
            .head(url.as_str())
            .header("x-amz-checksum-mode", "ENABLED")
            .send()
            .await
            .unwrap()
    }

    async fn create_multipart_upload(&self, key: &str) -> String {
        let url = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(TTL);
        let resp = self.http.post(url.as_str()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        CreateMultipartUpload::parse_response(&text)
            .unwrap()
            .upload_id()
            .to_owned()
    }

    async fn upload_part(&self, key: &str, upload_id: &str, checksum: &str, body: &[u8]) -> reqwest::Response {
        let mut action = self.bucket.upload_part(Some(&self.credentials), key, 1, upload_id);
        action
            .headers_mut()
            .insert("x-amz-checksum-sha256", checksum.to_owned());
        let url = action.sign(TTL);
        self.put(url.as_str(), checksum, body).await
    }

    async fn complete_multipart_upload(&self, key: &str, upload_id: &str, etags: &[String]) -> reqwest::Response {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(TTL);
        self.http.post(url.as_str()).body(action.body()).send().await.unwrap()
    }

    fn upload_part_files(&self) -> Vec<String> {
        std::fs::read_dir(self.store_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".upload_id-"))
            .collect()
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn put_with_matching_checksum_is_stored_readable_and_reported() {
    let mut h = harness().await;
    let body = b"hello embedded s3";
    let checksum = sha256_b64(body);

    let resp = h.put(&h.put_url("docs/a.txt", &checksum), &checksum, body).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    // Reported before the response was written.
    let stored = h.stored.try_recv().unwrap();
    assert_eq!(
        stored,
        StoredObject {
            bucket: BUCKET.to_owned(),
            key: "docs/a.txt".to_owned(),
            size: body.len() as u64,
        }
    );

    let resp = h.get("docs/a.txt").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), body);

    let resp = h.head_with_checksum("docs/a.txt").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
    assert_eq!(header(&resp, "content-length"), Some(body.len().to_string().as_str()));

    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));
    h.server.shutdown().await;
}

#[tokio::test]
async fn put_with_mismatching_checksum_creates_nothing() {
    let mut h = harness().await;
    let good = b"the bytes that were signed";
    let bad = b"THE BYTES THAT WERE SIGNED";
    let checksum = sha256_b64(good);

    let resp = h.put(&h.put_url("new.bin", &checksum), &checksum, bad).await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("<Code>BadDigest</Code>"), "{text}");

    assert_eq!(h.get("new.bin").await.status(), 404);
    assert_eq!(h.head_with_checksum("new.bin").await.status(), 404);
    assert!(!h.store_dir().join(BUCKET).join("new.bin").exists());
    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

    // Other lengths are refused as well.
    let resp = h.put(&h.put_url("new.bin", &checksum), &checksum, b"short").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(h.get("new.bin").await.status(), 404);
    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));
    h.server.shutdown().await;
}

#[tokio::test]
async fn put_with_mismatching_checksum_keeps_the_existing_object() {
    let mut h = harness().await;
    let good = b"good content";
    let bad = b"evil content";
    let checksum = sha256_b64(good);
    let url = h.put_url("kept.txt", &checksum);

    assert_eq!(h.put(&url, &checksum, good).await.status(), 200);
    assert_eq!(h.stored.try_recv().unwrap().size, good.len() as u64);

    // Same URL, same signed header, other bytes.
    let resp = h.put(&url, &checksum, bad).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("<Code>BadDigest</Code>"));
    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

    let resp = h.get("kept.txt").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), good);
    let resp = h.head_with_checksum("kept.txt").await;
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
    h.server.shutdown().await;
}

#[tokio::test]
async fn tampered_or_foreign_signatures_are_refused() {
    let mut h = harness().await;
    let body = b"payload";
    let checksum = sha256_b64(body);
    let url: reqwest::Url = h.put_url("t.txt", &checksum).parse().unwrap();

    let with_param = |name: &str, change: &dyn Fn(&str) -> String| {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == name { change(&v) } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        let mut tampered = url.clone();
        tampered.query_pairs_mut().clear().extend_pairs(pairs);
        tampered.to_string()
    };
    let flip_last = |v: &str| {
        let mut v = v.to_owned();
        let last = if v.ends_with('0') { '1' } else { '0' };
        v.pop();
        v.push(last);
        v
    };

    // Signature altered.
    let resp = h.put(&with_param("X-Amz-Signature", &flip_last), &checksum, body).await;
    assert_eq!(resp.status(), 403);
    // A signed parameter altered (longer validity).
    let resp = h
        .put(&with_param("X-Amz-Expires", &|_| "604800".to_owned()), &checksum, body)
        .await;
    assert_eq!(resp.status(), 403);
    // The key altered.
    let other_key = url.as_str().replace("/t.txt?", "/u.txt?");
    assert_eq!(h.put(&other_key, &checksum, body).await.status(), 403);
    // The signed checksum header sent with another value (the body matches it).
    let other = b"other payload";
    assert_eq!(h.put(url.as_str(), &sha256_b64(other), other).await.status(), 403);
    // The signed header left out.
    let resp = h.http.put(url.as_str()).body(body.to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // Signed with another secret key.
    let foreign = Credentials::new(ACCESS_KEY, "not-the-secret");
    let mut action = h.bucket.put_object(Some(&foreign), "t.txt");
    action.headers_mut().insert("x-amz-checksum-sha256", checksum.clone());
    assert_eq!(h.put(action.sign(TTL).as_str(), &checksum, body).await.status(), 403);
    // Not signed at all.
    let anonymous = h.bucket.object_url("t.txt");
    assert_eq!(h.put(anonymous.as_str(), &checksum, body).await.status(), 403);

    assert_eq!(h.get("t.txt").await.status(), 404);
    assert_eq!(h.get("u.txt").await.status(), 404);
    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

    // The untampered URL works.
    assert_eq!(h.put(url.as_str(), &checksum, body).await.status(), 200);
    assert_eq!(h.stored.try_recv().unwrap().key, "t.txt");
    h.server.shutdown().await;
}

#[tokio::test]
async fn multipart_part_with_mismatching_checksum_is_refused() {
    let mut h = harness().await;
    let good = b"part one, and the only part";
    let bad = b"PART ONE, AND THE ONLY PART";
    let checksum = sha256_b64(good);
    let upload_id = h.create_multipart_upload("big.bin").await;

    let resp = h.upload_part("big.bin", &upload_id, &checksum, bad).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("<Code>BadDigest</Code>"));
    assert!(h.upload_part_files().is_empty(), "{:?}", h.upload_part_files());

    let resp = h.upload_part("big.bin", &upload_id, &checksum, good).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(checksum.as_str()));
    let etag = header(&resp, "etag").unwrap().to_owned();
    assert_eq!(h.upload_part_files().len(), 1);

    // A bad re-upload of the same part leaves the good one in place.
    let resp = h.upload_part("big.bin", &upload_id, &checksum, bad).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(h.stored.try_recv(), Err(TryRecvError::Empty));

    let resp = h.complete_multipart_upload("big.bin", &upload_id, &[etag]).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let _ = resp.bytes().await.unwrap();
    assert_eq!(
        h.stored.try_recv().unwrap(),
        StoredObject {
            bucket: BUCKET.to_owned(),
            key: "big.bin".to_owned(),
            size: good.len() as u64,
        }
    );
    let resp = h.get("big.bin").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), good);
    h.server.shutdown().await;
}

#[tokio::test]
async fn multipart_overwrite_does_not_report_a_stale_checksum() {
    let mut h = harness().await;
    let first = b"first version, put with a checksum";
    let first_checksum = sha256_b64(first);
    let url = h.put_url("o.bin", &first_checksum);
    assert_eq!(h.put(&url, &first_checksum, first).await.status(), 200);
    assert!(h.stored.try_recv().is_ok());

    let second = b"second version, multipart";
    let upload_id = h.create_multipart_upload("o.bin").await;
    let resp = h.upload_part("o.bin", &upload_id, &sha256_b64(second), second).await;
    assert_eq!(resp.status(), 200);
    let etag = header(&resp, "etag").unwrap().to_owned();
    let resp = h.complete_multipart_upload("o.bin", &upload_id, &[etag]).await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    assert_eq!(h.stored.try_recv().unwrap().size, second.len() as u64);

    // HEAD answers the composite of the parts (base64(sha256(d1))-1), not the first
    // version's SHA-256.
    let resp = h.head_with_checksum("o.bin").await;
    assert_eq!(resp.status(), 200);
    let composite = format!(
        "{}-1",
        BASE64.encode(sha2::Sha256::digest(sha2::Sha256::digest(second)))
    );
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), Some(composite.as_str()));
    let resp = h.get("o.bin").await;
    assert_eq!(header(&resp, "x-amz-checksum-sha256"), None);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), second);
    h.server.shutdown().await;
}

#[tokio::test]
async fn shutdown_and_drop_stop_listening() {
    let h = harness().await;
    let addr = h.server.local_addr();
    assert!(h.server.endpoint().starts_with("http://127.0.0.1:"));
    h.server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let h = harness().await;
    let addr = h.server.local_addr();
    drop(h.server);
    let refused = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused).await.unwrap();
}

#[test]
fn trailer_checksums_are_computed_and_verified() {
    let body = b"chunked body";
    let mut headers = hyper::HeaderMap::new();
    headers.insert("x-amz-trailer", "x-amz-checksum-sha256".parse().unwrap());
    let mut declared = Checksum::default();
    let mut hasher = checksum_hasher(&declared, None, &headers).unwrap();
    hasher.update(body);
    let computed = hasher.finalize();
    assert_eq!(computed.checksum_sha256.as_deref(), Some(sha256_b64(body).as_str()));
    assert!(computed.checksum_crc32.is_none());

    // Announced but not sent: the computed value is kept (and stored).
    assert_eq!(verify_checksums(&declared, computed.clone()).unwrap(), computed);

    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("x-amz-checksum-sha256", sha256_b64(b"other").parse().unwrap());
    merge_trailer_checksums(&mut declared, &trailers).unwrap();
    let err = verify_checksums(&declared, computed.clone()).unwrap_err();
    assert_eq!(*err.code(), S3ErrorCode::BadDigest);

    // A checksum that was not announced cannot have been computed.
    let unannounced = Checksum {
        checksum_crc32: Some("AAAAAA==".to_owned()),
        ..Checksum::default()
    };
    let err = verify_checksums(&unannounced, computed.clone()).unwrap_err();
    assert_eq!(*err.code(), S3ErrorCode::InvalidRequest);

    let invalid = Checksum {
        checksum_sha256: Some("not base64!".to_owned()),
        ..Checksum::default()
    };
    let err = verify_checksums(&invalid, computed).unwrap_err();
    assert_eq!(*err.code(), S3ErrorCode::InvalidRequest);

    let err = checksum_hasher(
        &Checksum::default(),
        Some(&ChecksumAlgorithm::from_static("MD6")),
        &headers,
    );
    assert!(err.is_err());
}

#[tokio::test]
async fn invalid_configuration_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let config = |bucket: &str, secret: &str| EmbeddedS3Config {
        root: root.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        access_key: ACCESS_KEY.to_owned(),
        secret_key: secret.into(),
        bucket: bucket.to_owned(),
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = EmbeddedS3::start(config("Not_A_Bucket", SECRET_KEY), tx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, EmbeddedS3Error::InvalidBucketName(_)), "{err}");
    let err = EmbeddedS3::start(config(BUCKET, ""), tx).await.unwrap_err();
    assert!(matches!(err, EmbeddedS3Error::MissingCredentials), "{err}");
    assert!(!format!("{:?}", config(BUCKET, SECRET_KEY)).contains(SECRET_KEY));
}
