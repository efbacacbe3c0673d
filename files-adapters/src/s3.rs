//! The object store on S3 (or any S3-compatible store): URLs pre-signed with rusty-s3, and the
//! few calls the service makes itself (HEAD with checksum, DELETE, the multipart calls) sent
//! with reqwest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use files_core::{
    CompletedMultipart, Dependency, DownloadSpec, MAX_EXPIRY, Metrics, NoSuchUpload, ObjectInfo, ObjectKey,
    ObjectStore, PartSpec, PortError, PresignedRequest, Sha256, SignError, StoredPart, UploadSpec, UrlSigner,
};
use reqwest::StatusCode;
use rusty_s3::{Bucket, BucketError, Credentials, S3Action, UrlStyle};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::call::Calls;
use crate::redact::redact_url_strict;
use crate::s3_xml;

/// How the service reaches the store, and how devices do.
#[derive(Clone)]
pub struct S3Config {
    /// The endpoint the service calls, e.g. `http://127.0.0.1:3900`.
    pub endpoint: Url,
    /// The endpoint URLs are signed for when devices reach the store at another address.
    pub public_endpoint: Option<Url>,
    /// The region signed for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (a secret: never logged).
    pub secret_key: SecretString,
    /// `https://endpoint/bucket/key` (true) or `https://bucket.endpoint/key` (false).
    pub path_style: bool,
    /// Bound on each call the service makes itself.
    pub timeout: Duration,
}

impl S3Config {
    /// The default region.
    pub const DEFAULT_REGION: &str = "us-east-1";
    /// The default bucket.
    pub const DEFAULT_BUCKET: &str = "files";
    /// The default bound on each call the service makes itself.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default URL style: path-style (`https://endpoint/bucket/key`), which every
    /// S3-compatible store serves.
    pub const DEFAULT_PATH_STYLE: bool = true;

    /// The defaults for a store at `endpoint` with these keys: region `us-east-1`, bucket
    /// `files`, path-style URLs, no public endpoint, calls bounded by 5 s.
    #[must_use]
    pub fn new(endpoint: Url, access_key: impl Into<String>, secret_key: SecretString) -> Self {
        Self {
            endpoint,
            public_endpoint: None,
            region: Self::DEFAULT_REGION.to_owned(),
            bucket: Self::DEFAULT_BUCKET.to_owned(),
            access_key: access_key.into(),
            secret_key,
            path_style: Self::DEFAULT_PATH_STYLE,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// An endpoint as it may be logged or quoted: its user info shown as `***@`, its query as
/// `?***` and its fragment as `#***` (an endpoint should hold no credential, but one that does
/// must not reach a log).
#[must_use]
pub fn redacted_endpoint(endpoint: &str) -> String {
    redact_url_strict(endpoint)
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &redacted_endpoint(self.endpoint.as_str()))
            .field(
                "public_endpoint",
                &self.public_endpoint.as_ref().map(|url| redacted_endpoint(url.as_str())),
            )
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// The S3 configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    /// The endpoint or bucket name cannot make a bucket URL.
    #[error("invalid S3 endpoint or bucket: {0}")]
    Bucket(#[from] BucketError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

fn bucket(endpoint: &Url, config: &S3Config) -> Result<Bucket, BucketError> {
    let style = if config.path_style {
        UrlStyle::Path
    } else {
        UrlStyle::VirtualHost
    };
    Bucket::new(endpoint.clone(), style, config.bucket.clone(), config.region.clone())
}

fn expiry(expires_in: Duration) -> Result<Duration, SignError> {
    if expires_in.is_zero() || expires_in > MAX_EXPIRY {
        return Err(SignError(format!(
            "expiry of {}s is outside 1s..=7 days",
            expires_in.as_secs()
        )));
    }
    Ok(expires_in)
}

/// Signs PUT and GET URLs for the public endpoint. No network call.
#[derive(Debug, Clone)]
pub struct S3Signer {
    bucket: Bucket,
    credentials: Credentials,
}

impl S3Signer {
    /// A signer for `config`'s public endpoint (or its endpoint when there is none).
    ///
    /// # Errors
    /// [`S3ConfigError::Bucket`] when the endpoint and bucket name make no bucket URL.
    pub fn new(config: &S3Config) -> Result<Self, S3ConfigError> {
        let endpoint = config.public_endpoint.as_ref().unwrap_or(&config.endpoint);
        Ok(Self {
            bucket: bucket(endpoint, config)?,
            credentials: Credentials::new(config.access_key.clone(), config.secret_key.expose_secret()),
        })
    }
}

impl UrlSigner for S3Signer {
    fn bucket(&self) -> &str {
        self.bucket.name()
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        let key = spec.key.to_string();
        let mut headers = BTreeMap::new();
        headers.insert("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64());
        if let Some(size) = spec.size {
            headers.insert("content-length".to_owned(), size.to_string());
        }
        if let Some(content_type) = &spec.content_type {
            headers.insert("content-type".to_owned(), content_type.as_str().to_owned());
        }
        let mut action = self.bucket.put_object(Some(&self.credentials), &key);
        for (name, value) in &headers {
            action.headers_mut().insert(name.clone(), value.clone());
        }
        let url = action.sign(expiry(spec.expires_in)?);
        Ok(PresignedRequest {
            method: "PUT",
            url: url.into(),
            headers,
        })
    }

    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError> {
        let key = spec.key.to_string();
        let mut action = self.bucket.get_object(Some(&self.credentials), &key);
        if let Some(disposition) = &spec.content_disposition {
            action
                .query_mut()
                .insert("response-content-disposition", disposition.clone());
        }
        let url = action.sign(expiry(spec.expires_in)?);
        Ok(PresignedRequest {
            method: "GET",
            url: url.into(),
            headers: BTreeMap::new(),
        })
    }

    fn sign_part(&self, spec: &PartSpec) -> Result<PresignedRequest, SignError> {
        if spec.part_number == 0 || spec.part_number > MAX_PARTS {
            return Err(SignError(format!(
                "part number {} is outside 1..={MAX_PARTS}",
                spec.part_number
            )));
        }
        let key = spec.key.to_string();
        let headers = BTreeMap::from([
            ("content-length".to_owned(), spec.size.to_string()),
            ("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64()),
        ]);
        let mut action = self
            .bucket
            .upload_part(Some(&self.credentials), &key, spec.part_number, &spec.upload_id);
        for (name, value) in &headers {
            action.headers_mut().insert(name.clone(), value.clone());
        }
        let url = action.sign(expiry(spec.expires_in)?);
        Ok(PresignedRequest {
            method: "PUT",
            url: url.into(),
            headers,
        })
    }
}

/// S3's largest part number.
const MAX_PARTS: u16 = 10_000;

/// How long the URLs of the service's own calls live: just long enough to be sent.
const CALL_URL_EXPIRY: Duration = Duration::from_secs(60);

/// Inspects and deletes objects, calling the store at its (internal) endpoint.
#[derive(Clone)]
pub struct S3Objects {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    calls: Calls,
}

impl std::fmt::Debug for S3Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Objects")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Objects {
    /// A client for `config`'s endpoint, each call bounded by `config.timeout`.
    ///
    /// # Errors
    /// [`S3ConfigError`] when the bucket URL or the HTTP client cannot be built.
    pub fn new(config: &S3Config) -> Result<Self, S3ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            bucket: bucket(&config.endpoint, config)?,
            credentials: Credentials::new(config.access_key.clone(), config.secret_key.expose_secret()),
            http,
            calls: Calls::new(Dependency::ObjectStore, config.timeout),
        })
    }

    /// Counts every call (operation, outcome, latency) in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.calls = self.calls.with_metrics(metrics);
        self
    }
}

/// A transport failure or a 5xx is "unavailable"; any other unexpected answer is "failed".
fn classify(status: StatusCode, call: &str) -> PortError {
    let message = format!("S3 {call} answered {status}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        PortError::unavailable(message)
    } else {
        PortError::failed(message)
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        self.calls.run("inspect", self.head(key)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        self.calls.run("delete", self.remove(key)).await
    }

    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        self.calls.run("create_multipart", self.create(key)).await
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        self.calls.run("list_parts", self.parts(key, upload_id)).await
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        self.calls
            .run("complete_multipart", self.complete(key, upload_id, parts))
            .await
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        self.calls.run("abort_multipart", self.abort(key, upload_id)).await
    }
}

/// What a HEAD answered of an object.
struct Head {
    size: u64,
    /// `x-amz-checksum-sha256` as sent: a SHA-256, or a composite `…-N` for a multipart object.
    checksum: Option<String>,
}

/// A call that got no answer: the store is unavailable. The error is kept without its URL, a
/// pre-signed one whose signature (and the endpoint's user info, if any) must not reach a log.
fn unsent(error: reqwest::Error) -> PortError {
    PortError::unavailable(error.without_url())
}

/// Reads an answer's body; a body that cannot be read is "unavailable" (the connection broke).
async fn body_of(response: reqwest::Response, call: &str) -> Result<(StatusCode, String), PortError> {
    let status = response.status();
    let body = response.text().await.map_err(|error| {
        let error = error.without_url();
        PortError::unavailable(format!("S3 {call}: body not read: {error}"))
    })?;
    Ok((status, body))
}

/// An unexpected answer: [`NoSuchUpload`] for S3's `NoSuchUpload` code, else as [`classify`],
/// naming S3's code and message when the body is an error document.
fn refusal(status: StatusCode, body: &str, call: &str, upload_id: &str) -> PortError {
    match s3_xml::error(body) {
        Some((code, _)) if code == "NoSuchUpload" => PortError::failed(NoSuchUpload {
            upload_id: upload_id.to_owned(),
        }),
        Some((code, message)) => {
            let message = format!("S3 {call} answered {status}: {code}: {message}");
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || code == "SlowDown" {
                PortError::unavailable(message)
            } else {
                PortError::failed(message)
            }
        }
        None => classify(status, call),
    }
}

/// `base64-N`: the checksum of a multipart object.
fn is_composite(checksum: &str) -> bool {
    checksum
        .rsplit_once('-')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl S3Objects {
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        Ok(self.head_checksum(key).await?.map(|head| {
            // A composite (multipart) checksum ends in `-N`; it is not the SHA-256 of the object.
            let (sha256, sha256_of_parts) = match head.checksum {
                Some(v) if is_composite(&v) => (None, Some(v)),
                Some(v) => (Sha256::parse(&v).ok(), None),
                None => (None, None),
            };
            ObjectInfo {
                size: head.size,
                sha256,
                sha256_of_parts,
            }
        }))
    }

    async fn head_checksum(&self, key: &ObjectKey) -> Result<Option<Head>, PortError> {
        let key = key.to_string();
        let mut action = self.bucket.head_object(Some(&self.credentials), &key);
        action.headers_mut().insert("x-amz-checksum-mode", "ENABLED");
        let url = action.sign(CALL_URL_EXPIRY);
        let response = self
            .http
            .head(url)
            .header("x-amz-checksum-mode", "ENABLED")
            .send()
            .await
            .map_err(unsent)?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            status if !status.is_success() => return Err(classify(status, "HEAD")),
            _ => {}
        }
        let headers = response.headers();
        let size = headers
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| PortError::failed("S3 HEAD answered without a Content-Length"))?;
        let checksum = headers
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Some(Head { size, checksum }))
    }

    async fn create(&self, key: &ObjectKey) -> Result<String, PortError> {
        let key = key.to_string();
        let mut action = self.bucket.create_multipart_upload(Some(&self.credentials), &key);
        action.headers_mut().insert("x-amz-checksum-algorithm", "SHA256");
        let url = action.sign(CALL_URL_EXPIRY);
        let response = self
            .http
            .post(url)
            .header("x-amz-checksum-algorithm", "SHA256")
            .send()
            .await
            .map_err(unsent)?;
        let (status, body) = body_of(response, "CreateMultipartUpload").await?;
        if !status.is_success() {
            return Err(refusal(status, &body, "CreateMultipartUpload", ""));
        }
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&body)
            .map_err(|error| PortError::failed(format!("S3 CreateMultipartUpload answered unreadably: {error}")))?;
        if created.upload_id().is_empty() {
            return Err(PortError::failed(
                "S3 CreateMultipartUpload answered an empty upload id",
            ));
        }
        Ok(created.upload_id().to_owned())
    }

    async fn parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        let key = key.to_string();
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = self.bucket.list_parts(Some(&self.credentials), &key, upload_id);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let url = action.sign(CALL_URL_EXPIRY);
            let response = self.http.get(url).send().await.map_err(unsent)?;
            let (status, body) = body_of(response, "ListParts").await?;
            if !status.is_success() {
                return Err(refusal(status, &body, "ListParts", upload_id));
            }
            let page = s3_xml::parts_page(&body)
                .map_err(|why| PortError::failed(format!("S3 ListParts answered unreadably: {why}")))?;
            parts.extend(page.parts);
            match page.next_marker {
                Some(next) if marker.is_none_or(|last| next > last) => marker = Some(next),
                Some(next) => {
                    return Err(PortError::failed(format!(
                        "S3 ListParts does not advance: marker {next} after {marker:?}"
                    )));
                }
                None => break,
            }
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(parts)
    }

    async fn complete(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        let object = key.to_string();
        // Signed with rusty-s3's action; the body is ours, which carries the part checksums.
        let url = self
            .bucket
            .complete_multipart_upload(Some(&self.credentials), &object, upload_id, std::iter::empty())
            .sign(CALL_URL_EXPIRY);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(s3_xml::complete_body(parts))
            .send()
            .await
            .map_err(unsent)?;
        let (status, body) = body_of(response, "CompleteMultipartUpload").await?;
        // S3 may answer 200 and still fail: the body is then an error document.
        if !status.is_success() || s3_xml::root(&body) == Some("Error") {
            return Err(refusal(status, &body, "CompleteMultipartUpload", upload_id));
        }
        if s3_xml::root(&body) != Some("CompleteMultipartUploadResult") {
            let start: String = body.chars().take(200).collect();
            return Err(PortError::failed(format!(
                "S3 CompleteMultipartUpload answered unreadably: {start}"
            )));
        }
        let answered = s3_xml::text(&body, "ChecksumSHA256").filter(|value| !value.is_empty());
        // The size (and the checksum when the answer had none) from a HEAD with checksum mode;
        // the upload is complete whatever it says, so its failure leaves them unknown.
        let head = match self.head_checksum(key).await {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(key = %key, error = %files_core::ports::error_chain(&error), "cannot inspect a completed multipart upload");
                None
            }
        };
        Ok(CompletedMultipart {
            size: head.as_ref().map(|head| head.size),
            composite_sha256: answered.or_else(|| head.and_then(|head| head.checksum)),
        })
    }

    async fn abort(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        let key = key.to_string();
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), &key, upload_id)
            .sign(CALL_URL_EXPIRY);
        let response = self.http.delete(url).send().await.map_err(unsent)?;
        let (status, body) = body_of(response, "AbortMultipartUpload").await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        match refusal(status, &body, "AbortMultipartUpload", upload_id) {
            PortError::Failed(cause) if cause.is::<NoSuchUpload>() => Ok(()),
            other => Err(other),
        }
    }

    async fn remove(&self, key: &ObjectKey) -> Result<(), PortError> {
        let key = key.to_string();
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(CALL_URL_EXPIRY);
        let response = self.http.delete(url).send().await.map_err(unsent)?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(classify(status, "DELETE"))
        }
    }
}
