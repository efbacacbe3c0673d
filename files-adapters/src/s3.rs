//! The object store on S3 (or any S3-compatible store): URLs pre-signed with rusty-s3, and the
//! few calls the service makes itself (HEAD with checksum, DELETE) sent with reqwest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use files_core::{
    DownloadSpec, MAX_EXPIRY, Metrics, ObjectInfo, ObjectKey, ObjectStore, PortError, PresignedRequest, Sha256,
    SignError, UploadSpec, UrlSigner,
};
use reqwest::StatusCode;
use rusty_s3::{Bucket, BucketError, Credentials, S3Action, UrlStyle};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::call::Calls;

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
            path_style: true,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("public_endpoint", &self.public_endpoint.as_ref().map(Url::as_str))
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
}

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
            calls: Calls::new("object_store", config.timeout),
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
}

impl S3Objects {
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
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
            .map_err(PortError::unavailable)?;
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
        // A composite (multipart) checksum ends in `-N`; it is not the SHA-256 of the object.
        let sha256 = headers
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Sha256::parse(v).ok());
        Ok(Some(ObjectInfo { size, sha256 }))
    }

    async fn remove(&self, key: &ObjectKey) -> Result<(), PortError> {
        let key = key.to_string();
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(CALL_URL_EXPIRY);
        let response = self.http.delete(url).send().await.map_err(PortError::unavailable)?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(classify(status, "DELETE"))
        }
    }
}
