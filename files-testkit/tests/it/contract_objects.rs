//! The signer + object store contract against the fake, against the embedded S3 store started
//! in the test, and against the garage store that `scripts/test` starts; and what only a real
//! store can get wrong: being away.

use std::time::Duration;

use files_adapters::embedded_s3::{EmbeddedS3, EmbeddedS3Config};
use files_adapters::s3::{S3Config, S3Objects, S3Signer};
use files_core::{DownloadSpec, ObjectStore, PortError, PresignedRequest, SignError, UploadSpec, UrlSigner};
use files_testkit::contract::objects::{self, FakeTransport, HttpTransport, MultipartReports, Transport, fresh_key};
use files_testkit::fakes::FakeObjectStore;
use files_testkit::services::TestS3;
use files_testkit::sha256_of;
use tokio::time::Instant;
use uuid::Uuid;

/// Generous enough that a loaded test machine does not fail calls to a healthy store.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound on a hang, not a benchmark: a call to a store that is not there must return by then.
const FAST: Duration = Duration::from_secs(2);

fn config(endpoint: &str, region: &str, bucket: &str, access_key: &str, secret_key: &str) -> S3Config {
    S3Config {
        endpoint: endpoint.parse().unwrap(),
        public_endpoint: None,
        region: region.to_owned(),
        bucket: bucket.to_owned(),
        access_key: access_key.to_owned(),
        secret_key: secret_key.into(),
        path_style: true,
        timeout: HEALTHY_TIMEOUT,
    }
}

async fn s3_pair_keeps_the_contract(config: &S3Config, multipart: MultipartReports) {
    let signer = S3Signer::new(config).unwrap();
    let objects = S3Objects::new(config).unwrap();
    let transport = HttpTransport::new(HEALTHY_TIMEOUT);
    objects::run(&signer, &objects, &transport).await;
    // Twice on the same store: the contract's fresh keys keep runs apart.
    objects::run(&signer, &objects, &transport).await;
    objects::run_multipart(&signer, &objects, &transport, multipart).await;
}

#[tokio::test]
async fn the_fake_object_store_keeps_the_contract() {
    let store = FakeObjectStore::default();
    objects::run(&store, &store, &FakeTransport(&store)).await;
    objects::run_multipart(&store, &store, &FakeTransport(&store), MultipartReports::ALL).await;
}

/// A store that does not check what it is sent: it takes the body's own checksum and length.
struct CarelessTransport<'a>(&'a FakeObjectStore);

#[async_trait::async_trait]
impl Transport for CarelessTransport<'_> {
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String> {
        let mut request = request.clone();
        request.headers.remove("content-length");
        request
            .headers
            .insert("x-amz-checksum-sha256".to_owned(), sha256_of(body).to_base64());
        FakeTransport(self.0).put(&request, body).await
    }

    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        FakeTransport(self.0).get(request).await
    }
}

#[tokio::test]
#[should_panic(expected = "must be refused")]
async fn the_contract_catches_a_store_that_takes_other_bytes() {
    let store = FakeObjectStore::default();
    objects::run(&store, &store, &CarelessTransport(&store)).await;
}

#[tokio::test]
#[should_panic(expected = "a part of other bytes than signed (same length) must be refused")]
async fn the_contract_catches_a_store_that_takes_other_part_bytes() {
    let store = FakeObjectStore::default();
    objects::run_multipart(&store, &store, &CarelessTransport(&store), MultipartReports::ALL).await;
}

/// A signer that forgets to sign the size.
struct SizelessSigner(FakeObjectStore);

impl UrlSigner for SizelessSigner {
    fn bucket(&self) -> &str {
        self.0.bucket()
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        self.0.sign_upload(&UploadSpec {
            size: None,
            ..spec.clone()
        })
    }

    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError> {
        self.0.sign_download(spec)
    }
}

#[tokio::test]
#[should_panic(expected = "content-length when a size is given")]
async fn the_contract_catches_a_signer_that_leaves_out_the_size() {
    let signer = SizelessSigner(FakeObjectStore::default());
    objects::run(&signer, &signer.0, &FakeTransport(&signer.0)).await;
}

#[tokio::test]
async fn the_s3_adapters_keep_the_contract_on_the_embedded_store() {
    let root = tempfile::tempdir().unwrap();
    let access_key = format!("AK{}", Uuid::new_v4().simple());
    let secret_key = Uuid::new_v4().simple().to_string();
    let bucket = "files-contract";
    let (stored, _events) = tokio::sync::mpsc::unbounded_channel();
    let server = EmbeddedS3::start(
        EmbeddedS3Config {
            root: root.path().join("s3"),
            listen: "127.0.0.1:0".parse().unwrap(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone().into(),
            bucket: bucket.to_owned(),
        },
        stored,
    )
    .await
    .unwrap();
    let config = config(&server.endpoint(), "us-east-1", bucket, &access_key, &secret_key);
    s3_pair_keeps_the_contract(&config, MultipartReports::ALL).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_s3_adapters_keep_the_contract_on_garage() {
    let Some(s3) = TestS3::from_env("the_s3_adapters_keep_the_contract_on_garage").await else {
        return;
    };
    let config = config(&s3.endpoint, &s3.region, &s3.bucket, &s3.access_key, &s3.secret_key);
    s3_pair_keeps_the_contract(&config, MultipartReports::ALL).await;
}

#[tokio::test]
async fn a_store_that_is_not_listening_is_unavailable_at_once() {
    // Port 1: nothing listens, connections are refused.
    let config = S3Config {
        timeout: Duration::from_millis(500),
        ..config("http://127.0.0.1:1", "us-east-1", "files-test", "access", "secret")
    };
    let objects = S3Objects::new(&config).unwrap();
    let key = fresh_key(true);
    let started = Instant::now();
    let inspected = tokio::time::timeout(FAST, objects.inspect(&key))
        .await
        .expect("inspect hung");
    assert!(matches!(inspected, Err(PortError::Unavailable(_))), "{inspected:?}");
    let deleted = tokio::time::timeout(FAST, objects.delete(&key))
        .await
        .expect("delete hung");
    assert!(matches!(deleted, Err(PortError::Unavailable(_))), "{deleted:?}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}
