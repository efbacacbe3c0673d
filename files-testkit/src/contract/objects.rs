//! The contract of the [`UrlSigner`] and [`ObjectStore`] ports taken together: what every
//! object store, in memory or S3, must do with the URLs its signer makes.
//!
//! Uploads and downloads are not calls of the service but requests that devices send to the
//! signed URLs, so the suite takes the way to send them as a [`Transport`]: real HTTP
//! ([`HttpTransport`]) for a real store, [`FakeTransport`] for [`FakeObjectStore`].
//!
//! Each run uses fresh random tenants and deletes what it stored, so it can run any number of
//! times, in parallel, on a shared store. It panics, naming the broken rule, on the first
//! violation.

use std::time::Duration;

use async_trait::async_trait;
use files_core::ports::error_chain;
use files_core::{
    ContentType, DownloadSpec, FileId, NoSuchUpload, ObjectInfo, ObjectKey, ObjectStore, Owner, PartSpec, PortError,
    PresignedRequest, Sha256, StoredPart, UploadSpec, UrlSigner,
};
use sha2::Digest as _;

use crate::sha256_of;

use super::cache::{fresh_device, fresh_tenant};
use crate::fakes::FakeObjectStore;

/// How long the suite's URLs are valid.
const EXPIRES_IN: Duration = Duration::from_secs(15 * 60);

/// Sends pre-signed requests to a store, as a device does.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` with `body`; `Ok` when the store accepted (stored) it, else why not.
    ///
    /// # Errors
    /// A description of the refusal: the store's status and answer, or why nothing was sent.
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String>;

    /// Sends `request` (a download); the body when the store answered with success, else why
    /// not.
    ///
    /// # Errors
    /// A description of the refusal (for example no such object).
    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String>;
}

/// Real HTTP with reqwest: sends exactly the request's method, URL and headers. The one
/// exception is `content-length`, which an HTTP client cannot choose: it is always the body's
/// own length (sent even when 0), as for any device, so a body of another length than the
/// signed one arrives with another `content-length` than was signed.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport whose requests give up after `timeout`.
    ///
    /// # Panics
    /// When the HTTP client cannot be built: the test environment is broken.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        match reqwest::Client::builder().timeout(timeout).build() {
            Ok(client) => Self { client },
            Err(error) => panic!("cannot build the contract's HTTP client: {}", error_chain(&error)),
        }
    }

    async fn send(&self, request: &PresignedRequest, body: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            if !name.eq_ignore_ascii_case("content-length") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        if let Some(body) = body {
            // Said even for an empty body, which HTTP clients otherwise leave out.
            builder = builder
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.to_vec());
        }
        let response = builder
            .send()
            .await
            .map_err(|error| format!("not sent: {}", error_chain(&error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("{status}, body not read: {}", error_chain(&error)))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            Err(format!("{status}: {text}"))
        }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String> {
        self.send(request, Some(body)).await.map(drop)
    }

    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        self.send(request, None).await
    }
}

/// Hands requests to a [`FakeObjectStore`], which checks them as a real store does (see
/// [`FakeObjectStore::receive_put`], and [`FakeObjectStore::receive_part`] for URLs with an
/// `uploadId`).
#[derive(Debug, Clone, Copy)]
pub struct FakeTransport<'a>(pub &'a FakeObjectStore);

#[async_trait]
impl Transport for FakeTransport<'_> {
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String> {
        let sent = if request.url.contains("uploadId=") {
            self.0.receive_part(request, body)
        } else {
            self.0.receive_put(request, body)
        };
        sent.map_err(|refusal| refusal.to_string())
    }

    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        self.0.serve_get(request).map_err(|refusal| refusal.to_string())
    }
}

/// Runs every rule of the contract against a signer and the store it signs for, sending the
/// signed requests with `transport`.
///
/// # Panics
/// When the pair breaks a rule, or a call fails.
pub async fn run(signer: &dyn UrlSigner, store: &dyn ObjectStore, transport: &dyn Transport) {
    let pair = Pair {
        signer,
        store,
        transport,
    };
    bucket_is_stable(signer);
    uploads_are_signed_for_checksum_size_and_type(signer);
    downloads_are_signed_gets(signer);
    absent_objects_are_none(&pair).await;
    right_bytes_are_accepted_inspected_and_downloaded(&pair).await;
    other_bytes_are_refused_and_nothing_is_stored(&pair).await;
    another_length_than_signed_is_refused(&pair).await;
    a_refused_upload_keeps_the_object_it_would_replace(&pair).await;
    a_second_upload_replaces_the_first(&pair).await;
    delete_removes_only_its_object(&pair).await;
    deleting_an_absent_object_succeeds(&pair).await;
}

fn download(key: ObjectKey) -> DownloadSpec {
    DownloadSpec {
        key,
        expires_in: EXPIRES_IN,
        content_disposition: None,
    }
}

/// The three parts under test.
struct Pair<'a> {
    signer: &'a dyn UrlSigner,
    store: &'a dyn ObjectStore,
    transport: &'a dyn Transport,
}

impl Pair<'_> {
    fn sign_upload(&self, spec: &UploadSpec) -> PresignedRequest {
        self.signer
            .sign_upload(spec)
            .unwrap_or_else(|error| panic!("objects contract: sign_upload of {spec:?} failed: {error}"))
    }

    fn sign_download(&self, key: &ObjectKey) -> PresignedRequest {
        self.signer
            .sign_download(&download(*key))
            .unwrap_or_else(|error| panic!("objects contract: sign_download of {key} failed: {error}"))
    }

    /// Signs an upload of `body` (with its size) and sends it; panics when it is refused.
    async fn upload(&self, key: ObjectKey, body: &[u8]) {
        let request = self.sign_upload(&spec(key, body, Some(len(body)), None));
        if let Err(why) = self.transport.put(&request, body).await {
            panic!("objects contract: an upload of the signed bytes to {key} was refused: {why}");
        }
    }

    async fn inspect(&self, key: ObjectKey) -> Option<ObjectInfo> {
        ok(self.store.inspect(&key).await, "inspect")
    }

    async fn delete(&self, key: ObjectKey) {
        ok(self.store.delete(&key).await, "delete");
    }

    async fn download(&self, key: ObjectKey) -> Result<Vec<u8>, String> {
        self.transport.get(&self.sign_download(&key)).await
    }
}

/// A key under a tenant no other run uses, owned by a fresh device or by the tenant.
#[must_use]
pub fn fresh_key(device_owned: bool) -> ObjectKey {
    ObjectKey {
        tenant: fresh_tenant(),
        owner: if device_owned {
            Owner::Device(fresh_device())
        } else {
            Owner::Tenant
        },
        file: FileId::new(),
    }
}

fn len(body: &[u8]) -> u64 {
    body.len() as u64
}

fn spec(key: ObjectKey, body: &[u8], size: Option<u64>, content_type: Option<ContentType>) -> UploadSpec {
    UploadSpec {
        key,
        sha256: sha256_of(body),
        size,
        content_type,
        expires_in: EXPIRES_IN,
    }
}

fn content_type(text: &str) -> ContentType {
    ContentType::parse(text).unwrap_or_else(|e| panic!("content type {text}: {e}"))
}

fn ok<T>(result: Result<T, PortError>, call: &str) -> T {
    result.unwrap_or_else(|error| panic!("objects contract: {call} failed: {}", error_chain(&error)))
}

/// Bodies of every kind: empty, text, binary with every byte value, larger than a buffer.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("an empty body", Vec::new()),
        ("a text body", b"hello, object store\n".to_vec()),
        ("every byte value", (0..=255_u8).rev().chain(0..=255).collect()),
        (
            "a 300 KiB body",
            (0..300 * 1024_u32)
                .map(|i| u8::try_from(i.wrapping_mul(31) % 251).unwrap_or_default())
                .collect(),
        ),
    ]
}

fn bucket_is_stable(signer: &dyn UrlSigner) {
    let bucket = signer.bucket().to_owned();
    assert!(!bucket.is_empty(), "bucket() must name a bucket");
    for _ in 0..3 {
        assert_eq!(signer.bucket(), bucket, "bucket() must not change");
    }
}

fn uploads_are_signed_for_checksum_size_and_type(signer: &dyn UrlSigner) {
    let body = b"signed for exactly these bytes";
    let key = fresh_key(true);
    let sign = |spec: &UploadSpec| {
        signer
            .sign_upload(spec)
            .unwrap_or_else(|error| panic!("objects contract: sign_upload of {spec:?} failed: {error}"))
    };

    let full = sign(&spec(
        key,
        body,
        Some(len(body)),
        Some(content_type("text/plain; charset=utf-8")),
    ));
    assert_eq!(full.method, "PUT", "sign_upload must sign a PUT");
    assert!(!full.url.is_empty(), "sign_upload must give a URL");
    assert_eq!(
        full.headers.get("x-amz-checksum-sha256"),
        Some(&sha256_of(body).to_base64()),
        "sign_upload must list x-amz-checksum-sha256 as the standard base64 of the SHA-256: {full:?}"
    );
    assert_eq!(
        full.headers.get("content-length"),
        Some(&body.len().to_string()),
        "sign_upload must list content-length when a size is given: {full:?}"
    );
    assert_eq!(
        full.headers.get("content-type").map(String::as_str),
        Some("text/plain; charset=utf-8"),
        "sign_upload must list content-type when one is given: {full:?}"
    );
    assert!(
        full.headers.keys().all(|name| *name == name.to_ascii_lowercase()),
        "header names must be lower-case: {full:?}"
    );

    let bare = sign(&spec(key, body, None, None));
    assert_eq!(bare.method, "PUT", "sign_upload must sign a PUT");
    assert_eq!(
        bare.headers.get("x-amz-checksum-sha256"),
        Some(&sha256_of(body).to_base64()),
        "sign_upload must list x-amz-checksum-sha256 even without size: {bare:?}"
    );
    assert!(
        !bare.headers.contains_key("content-length"),
        "no content-length without a size: {bare:?}"
    );
    assert!(
        !bare.headers.contains_key("content-type"),
        "no content-type without one: {bare:?}"
    );

    let other_key = sign(&spec(fresh_key(true), body, None, None));
    assert_ne!(bare.url, other_key.url, "URLs of two keys must differ");
}

fn downloads_are_signed_gets(signer: &dyn UrlSigner) {
    let key = fresh_key(false);
    let request = signer
        .sign_download(&download(key))
        .unwrap_or_else(|error| panic!("objects contract: sign_download failed: {error}"));
    assert_eq!(request.method, "GET", "sign_download must sign a GET");
    assert!(!request.url.is_empty(), "sign_download must give a URL");
}

async fn absent_objects_are_none(pair: &Pair<'_>) {
    for device_owned in [true, false] {
        let key = fresh_key(device_owned);
        assert_eq!(
            pair.inspect(key).await,
            None,
            "inspect of an absent object must be None"
        );
        assert!(
            pair.download(key).await.is_err(),
            "a download of an absent object must not succeed"
        );
    }
}

async fn right_bytes_are_accepted_inspected_and_downloaded(pair: &Pair<'_>) {
    for (what, body) in bodies() {
        // Signed with and without size and content type: each is accepted with the right bytes.
        let variants = [
            (Some(len(&body)), None),
            (None, None),
            (Some(len(&body)), Some(content_type("application/octet-stream"))),
            (None, Some(content_type("application/json"))),
        ];
        for (size, kind) in variants {
            let key = fresh_key(size.is_some());
            let request = pair.sign_upload(&spec(key, &body, size, kind.clone()));
            if let Err(why) = pair.transport.put(&request, &body).await {
                panic!("{what} (size {size:?}, type {kind:?}): an upload of the signed bytes was refused: {why}");
            }
            assert_eq!(
                pair.inspect(key).await,
                Some(ObjectInfo {
                    size: len(&body),
                    sha256: Some(sha256_of(&body)),
                    sha256_of_parts: None,
                }),
                "{what} (size {size:?}, type {kind:?}): inspect after an accepted upload must give its size and SHA-256"
            );
            match pair.download(key).await {
                Ok(got) => assert!(got == body, "{what}: the download must return the uploaded bytes"),
                Err(why) => panic!("{what}: the download of an uploaded object failed: {why}"),
            }
            pair.delete(key).await;
        }
    }
}

async fn other_bytes_are_refused_and_nothing_is_stored(pair: &Pair<'_>) {
    let signed = b"the bytes the URL was signed for";
    let other = b"THE BYTES THE URL WAS SIGNED FOR";
    assert_eq!(signed.len(), other.len());
    for size in [Some(len(signed)), None] {
        let key = fresh_key(true);
        let request = pair.sign_upload(&spec(key, signed, size, None));
        let sent = pair.transport.put(&request, other).await;
        assert!(
            sent.is_err(),
            "an upload of other bytes than signed (same length, size {size:?}) must be refused"
        );
        assert_eq!(
            pair.inspect(key).await,
            None,
            "after a refused upload nothing must be stored (size {size:?})"
        );
        assert!(
            pair.download(key).await.is_err(),
            "a refused upload must not be downloadable"
        );
    }
}

async fn another_length_than_signed_is_refused(pair: &Pair<'_>) {
    let body = b"twenty-one bytes long";
    for signed_size in [len(body) + 1, len(body) - 1, 0] {
        let key = fresh_key(true);
        // The checksum is the body's own: only the length differs from what was signed.
        let request = pair.sign_upload(&spec(key, body, Some(signed_size), None));
        let sent = pair.transport.put(&request, body).await;
        assert!(
            sent.is_err(),
            "a body of {} bytes must be refused on a URL signed for {signed_size}",
            body.len()
        );
        assert_eq!(
            pair.inspect(key).await,
            None,
            "after a refused upload nothing must be stored"
        );
    }
}

async fn a_refused_upload_keeps_the_object_it_would_replace(pair: &Pair<'_>) {
    let key = fresh_key(true);
    let good = b"version one";
    pair.upload(key, good).await;
    let bad = b"version two";
    let request = pair.sign_upload(&spec(key, good, None, None));
    assert!(
        pair.transport.put(&request, bad).await.is_err(),
        "an upload of other bytes than signed must be refused"
    );
    assert_eq!(
        pair.inspect(key).await,
        Some(ObjectInfo {
            size: len(good),
            sha256: Some(sha256_of(good)),
            sha256_of_parts: None,
        }),
        "a refused upload must leave the stored object as it was"
    );
    assert_eq!(
        pair.download(key).await.as_deref(),
        Ok(&good[..]),
        "a refused upload must leave the stored bytes as they were"
    );
    pair.delete(key).await;
}

async fn a_second_upload_replaces_the_first(pair: &Pair<'_>) {
    let key = fresh_key(false);
    pair.upload(key, b"first").await;
    let second = b"the second, longer version";
    pair.upload(key, second).await;
    assert_eq!(
        pair.inspect(key).await,
        Some(ObjectInfo {
            size: len(second),
            sha256: Some(sha256_of(second)),
            sha256_of_parts: None,
        }),
        "a second accepted upload must replace the first"
    );
    assert_eq!(pair.download(key).await.as_deref(), Ok(&second[..]));
    pair.delete(key).await;
}

async fn delete_removes_only_its_object(pair: &Pair<'_>) {
    let key = fresh_key(true);
    // A neighbour under the same tenant and owner.
    let neighbour = ObjectKey {
        file: FileId::new(),
        ..key
    };
    pair.upload(key, b"to be deleted").await;
    pair.upload(neighbour, b"to be kept").await;
    pair.delete(key).await;
    assert_eq!(pair.inspect(key).await, None, "inspect after delete must be None");
    assert!(
        pair.download(key).await.is_err(),
        "a download after delete must not succeed"
    );
    assert_eq!(
        pair.inspect(neighbour).await.map(|info| info.size),
        Some(10),
        "delete must remove only its own object"
    );
    // Deleting it again is fine too.
    pair.delete(key).await;
    pair.delete(neighbour).await;
    assert_eq!(pair.inspect(neighbour).await, None);
}

async fn deleting_an_absent_object_succeeds(pair: &Pair<'_>) {
    for device_owned in [true, false] {
        let key = fresh_key(device_owned);
        ok(pair.store.delete(&key).await, "delete of an absent object");
        assert_eq!(pair.inspect(key).await, None);
    }
}

/// What a store reports of multipart uploads beyond what every store must do: the multipart
/// contract checks these only where the store has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartReports {
    /// `list_parts` gives each part's SHA-256 (and a non-empty ETag).
    pub part_checksums: bool,
    /// `complete_multipart` gives the composite checksum.
    pub composite_checksum: bool,
    /// `list_parts` of an unknown (completed, aborted) upload fails with [`NoSuchUpload`]
    /// rather than answering an empty list.
    pub unknown_uploads: bool,
}

impl MultipartReports {
    /// Everything: S3, garage, the fake.
    pub const ALL: Self = Self {
        part_checksums: true,
        composite_checksum: true,
        unknown_uploads: true,
    };
}

/// One MiB.
const MIB: usize = 1024 * 1024;

/// Runs the multipart rules against a signer and the store it signs for: create an upload with
/// SHA-256 parts, send parts to signed URLs (other bytes are refused part by part), list them,
/// complete with their ETags and checksums, and abort another. What `reports` says the store
/// does not report is not checked (but must be right when it is reported anyway).
///
/// # Panics
/// When the pair breaks a rule, or a call fails.
pub async fn run_multipart(
    signer: &dyn UrlSigner,
    store: &dyn ObjectStore,
    transport: &dyn Transport,
    reports: MultipartReports,
) {
    let pair = Pair {
        signer,
        store,
        transport,
    };
    parts_are_signed_for_size_and_checksum(signer);
    a_multipart_upload_is_verified_part_by_part_and_completed(&pair, reports).await;
    an_aborted_upload_leaves_nothing(&pair, reports).await;
}

fn part_spec(key: ObjectKey, upload_id: &str, part_number: u16, body: &[u8]) -> PartSpec {
    PartSpec {
        key,
        upload_id: upload_id.to_owned(),
        part_number,
        size: len(body),
        sha256: sha256_of(body),
        expires_in: EXPIRES_IN,
    }
}

/// `size` bytes that differ with `seed`.
fn part_body(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| u8::try_from((i.wrapping_mul(7) + usize::from(seed) * 13) % 253).unwrap_or_default() ^ seed)
        .collect()
}

/// The composite checksum S3 gives an object made of parts with these SHA-256s.
#[must_use]
pub fn composite_sha256(parts: &[Sha256]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    format!(
        "{}-{}",
        Sha256::from_bytes(hasher.finalize().into()).to_base64(),
        parts.len()
    )
}

fn parts_are_signed_for_size_and_checksum(signer: &dyn UrlSigner) {
    let key = fresh_key(true);
    let body = b"a part";
    let sign = |spec: &PartSpec| {
        signer
            .sign_part(spec)
            .unwrap_or_else(|error| panic!("objects contract: sign_part of {spec:?} failed: {error}"))
    };
    let one = sign(&part_spec(key, "upload-1", 1, body));
    assert_eq!(one.method, "PUT", "sign_part must sign a PUT");
    assert_eq!(
        one.headers.get("x-amz-checksum-sha256"),
        Some(&sha256_of(body).to_base64()),
        "sign_part must list x-amz-checksum-sha256 as the standard base64 of the part's SHA-256: {one:?}"
    );
    assert_eq!(
        one.headers.get("content-length"),
        Some(&body.len().to_string()),
        "sign_part must list the part's content-length: {one:?}"
    );
    assert!(
        one.url.contains("partNumber=1") && one.url.contains("uploadId=upload-1"),
        "sign_part must name the part number and upload id in the URL: {one:?}"
    );
    let two = sign(&part_spec(key, "upload-1", 2, body));
    assert_ne!(one.url, two.url, "URLs of two parts must differ");
    let other = sign(&part_spec(key, "upload-2", 1, body));
    assert_ne!(one.url, other.url, "URLs of two uploads must differ");
    assert!(
        signer.sign_part(&part_spec(key, "upload-1", 0, body)).is_err(),
        "sign_part of part number 0 must be refused"
    );
}

/// `list_parts` of an upload that is gone: [`NoSuchUpload`], or (where `reports` allows) empty.
async fn assert_no_upload(pair: &Pair<'_>, key: ObjectKey, upload_id: &str, reports: MultipartReports, what: &str) {
    match pair.store.list_parts(&key, upload_id).await {
        Err(PortError::Failed(cause)) if cause.is::<NoSuchUpload>() => {}
        Ok(parts) if !reports.unknown_uploads => {
            assert!(parts.is_empty(), "{what}: list_parts must list no part: {parts:?}");
        }
        other => panic!("{what}: list_parts must fail with NoSuchUpload, got {other:?}"),
    }
}

async fn put_part(pair: &Pair<'_>, key: ObjectKey, upload_id: &str, number: u16, body: &[u8]) {
    let request = pair
        .signer
        .sign_part(&part_spec(key, upload_id, number, body))
        .unwrap_or_else(|error| panic!("objects contract: sign_part failed: {error}"));
    if let Err(why) = pair.transport.put(&request, body).await {
        panic!("objects contract: part {number} of the signed bytes was refused: {why}");
    }
}

fn check_listed(listed: &[StoredPart], expected: &[(u16, &[u8])], reports: MultipartReports, what: &str) {
    let numbers: Vec<(u16, u64)> = listed.iter().map(|part| (part.part_number, part.size)).collect();
    let wanted: Vec<(u16, u64)> = expected.iter().map(|(number, body)| (*number, len(body))).collect();
    assert_eq!(
        numbers, wanted,
        "{what}: list_parts must list the parts sent, by number, with their sizes"
    );
    for (part, (_, body)) in listed.iter().zip(expected) {
        if reports.part_checksums {
            assert_eq!(
                part.sha256,
                Some(sha256_of(body)),
                "{what}: list_parts must give part {}'s SHA-256",
                part.part_number
            );
            assert!(
                !part.etag.is_empty(),
                "{what}: list_parts must give part {}'s ETag",
                part.part_number
            );
        } else if let Some(sha256) = part.sha256 {
            assert_eq!(sha256, sha256_of(body), "{what}: a listed SHA-256 must be the part's");
        }
    }
}

async fn a_multipart_upload_is_verified_part_by_part_and_completed(pair: &Pair<'_>, reports: MultipartReports) {
    let key = fresh_key(true);
    let upload_id = ok(pair.store.create_multipart(&key).await, "create_multipart");
    assert!(!upload_id.is_empty(), "create_multipart must give an upload id");
    let d1 = part_body(5 * MIB, 1);
    let d2 = part_body(5 * MIB, 2);
    let d3 = part_body(123_457, 3);

    put_part(pair, key, &upload_id, 1, &d1).await;
    put_part(pair, key, &upload_id, 2, &d2).await;
    let listed = ok(pair.store.list_parts(&key, &upload_id).await, "list_parts");
    check_listed(&listed, &[(1, &d1), (2, &d2)], reports, "after parts 1 and 2");

    // Other bytes of the signed length are refused, and not listed.
    let mut other = d3.clone();
    other[0] ^= 0xff;
    let request = pair
        .signer
        .sign_part(&part_spec(key, &upload_id, 3, &d3))
        .unwrap_or_else(|error| panic!("objects contract: sign_part failed: {error}"));
    assert!(
        pair.transport.put(&request, &other).await.is_err(),
        "a part of other bytes than signed (same length) must be refused"
    );
    let listed = ok(pair.store.list_parts(&key, &upload_id).await, "list_parts");
    check_listed(&listed, &[(1, &d1), (2, &d2)], reports, "after a refused part 3");
    assert_eq!(pair.inspect(key).await, None, "no object before completion");

    pair.transport
        .put(&request, &d3)
        .await
        .unwrap_or_else(|why| panic!("objects contract: part 3 of the signed bytes was refused: {why}"));
    let listed = ok(pair.store.list_parts(&key, &upload_id).await, "list_parts");
    check_listed(&listed, &[(1, &d1), (2, &d2), (3, &d3)], reports, "after part 3");

    let completed = ok(
        pair.store.complete_multipart(&key, &upload_id, &listed).await,
        "complete_multipart",
    );
    let total = len(&d1) + len(&d2) + len(&d3);
    let expected = composite_sha256(&[sha256_of(&d1), sha256_of(&d2), sha256_of(&d3)]);
    if let Some(size) = completed.size {
        assert_eq!(size, total, "complete_multipart must report the object's size");
    }
    match &completed.composite_sha256 {
        Some(composite) => assert_eq!(
            composite, &expected,
            "the composite checksum must be base64(sha256(d1‖d2‖d3))-3"
        ),
        None => assert!(
            !reports.composite_checksum,
            "complete_multipart must report the composite checksum: {completed:?}"
        ),
    }
    let info = pair.inspect(key).await;
    assert_eq!(
        info.as_ref().map(|info| info.size),
        Some(total),
        "inspect of a completed multipart upload must give its size"
    );
    if reports.composite_checksum {
        assert_eq!(
            info.as_ref().and_then(|info| info.sha256_of_parts.clone()),
            Some(expected.clone()),
            "inspect of a completed multipart upload must give its composite checksum"
        );
        assert_eq!(
            info.and_then(|info| info.sha256),
            None,
            "a composite checksum is no SHA-256 of the object"
        );
    }
    match pair.download(key).await {
        Ok(got) => assert!(
            got.len() == d1.len() + d2.len() + d3.len()
                && got[..d1.len()] == d1[..]
                && got[d1.len()..][..d2.len()] == d2[..]
                && got[d1.len() + d2.len()..] == d3[..],
            "the download of a completed multipart upload must be its parts in order"
        ),
        Err(why) => panic!("the download of a completed multipart upload failed: {why}"),
    }
    assert_no_upload(pair, key, &upload_id, reports, "after completion").await;
    let again = pair.store.complete_multipart(&key, &upload_id, &listed).await;
    assert!(
        matches!(&again, Err(PortError::Failed(_))),
        "completing a completed upload again must fail: {again:?}"
    );
    pair.delete(key).await;
}

async fn an_aborted_upload_leaves_nothing(pair: &Pair<'_>, reports: MultipartReports) {
    let key = fresh_key(false);
    let upload_id = ok(pair.store.create_multipart(&key).await, "create_multipart");
    let body = part_body(1000, 9);
    put_part(pair, key, &upload_id, 1, &body).await;
    let listed = ok(pair.store.list_parts(&key, &upload_id).await, "list_parts");
    check_listed(&listed, &[(1, &body)], reports, "before the abort");
    ok(pair.store.abort_multipart(&key, &upload_id).await, "abort_multipart");
    assert_no_upload(pair, key, &upload_id, reports, "after the abort").await;
    assert_eq!(pair.inspect(key).await, None, "an aborted upload must leave no object");
    let completed = pair.store.complete_multipart(&key, &upload_id, &listed).await;
    assert!(
        matches!(&completed, Err(PortError::Failed(_))),
        "completing an aborted upload must fail: {completed:?}"
    );
    assert_eq!(pair.inspect(key).await, None, "an aborted upload must leave no object");
    ok(
        pair.store.abort_multipart(&key, &upload_id).await,
        "abort_multipart of an aborted (unknown) upload",
    );
}
