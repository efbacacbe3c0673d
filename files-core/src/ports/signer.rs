//! The URL signing port: pre-signed object store requests for uploads, parts and downloads.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::file::ObjectKey;
use crate::values::{ContentType, Sha256};

/// What an upload URL must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    /// Where the bytes go.
    pub key: ObjectKey,
    /// Signed as `x-amz-checksum-sha256`: the store refuses other bytes.
    pub sha256: Sha256,
    /// Signed as `content-length` when given (the service always gives it).
    pub size: Option<u64>,
    /// Signed as `content-type` when given.
    pub content_type: Option<ContentType>,
    /// How long the URL is valid.
    pub expires_in: Duration,
}

/// What a download URL must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadSpec {
    /// What to read.
    pub key: ObjectKey,
    /// How long the URL is valid.
    pub expires_in: Duration,
    /// Signed as `response-content-disposition`, when given: the store answers with this
    /// `Content-Disposition` (browsers then save the file under its name).
    pub content_disposition: Option<String>,
}

/// What a part upload URL of a multipart upload must be signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// The object the multipart upload will make.
    pub key: ObjectKey,
    /// The upload id [`ObjectStore::create_multipart`](super::objects::ObjectStore::create_multipart) gave.
    pub upload_id: String,
    /// The part's number, from 1 (S3 allows up to 10 000).
    pub part_number: u16,
    /// Signed as `content-length`: the store refuses a part of another length.
    pub size: u64,
    /// Signed as `x-amz-checksum-sha256`: the store refuses other bytes for this part.
    pub sha256: Sha256,
    /// How long the URL is valid.
    pub expires_in: Duration,
}

/// A pre-signed request: the caller sends `method` to `url` with exactly `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// `PUT` or `GET`.
    pub method: &'static str,
    /// The full URL with its signature.
    pub url: String,
    /// Every header the caller must send, lower-case names.
    pub headers: BTreeMap<String, String>,
}

/// A URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign URL: {0}")]
pub struct SignError(pub String);

/// Signs URLs for the object store. Pure computation: no network call.
pub trait UrlSigner: Send + Sync {
    /// The bucket URLs are signed for.
    fn bucket(&self) -> &str;

    /// A PUT URL signed for the key, checksum, and the size and content type when given.
    ///
    /// # Errors
    /// [`SignError`] when the spec cannot be expressed (for example an expiry over 7 days).
    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError>;

    /// A GET URL for the key (with a `response-content-disposition` when the spec has one).
    ///
    /// # Errors
    /// [`SignError`] when the expiry cannot be expressed.
    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError>;

    /// A PUT URL for one part of a multipart upload (`partNumber` and `uploadId` in the query),
    /// signed for the part's `content-length` and `x-amz-checksum-sha256`.
    ///
    /// The default refuses: a signer for a store without multipart uploads need not implement
    /// it.
    ///
    /// # Errors
    /// [`SignError`] when the spec cannot be expressed (a part number of 0, an expiry over 7
    /// days), or when the signer does not support multipart uploads.
    fn sign_part(&self, spec: &PartSpec) -> Result<PresignedRequest, SignError> {
        Err(SignError(format!(
            "multipart uploads are not supported (part {} of {})",
            spec.part_number, spec.key
        )))
    }
}
