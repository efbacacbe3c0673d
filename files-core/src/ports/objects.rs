//! The object store port: inspecting and deleting objects, and driving multipart uploads.

use async_trait::async_trait;

use super::error::PortError;
use crate::file::ObjectKey;
use crate::values::Sha256;

/// What the store says of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 the store verified on upload, when it reports one (a single PUT).
    pub sha256: Option<Sha256>,
    /// The composite checksum of a multipart object, `base64(sha256(d1‖…‖dN))-N`, when the
    /// store reports one.
    pub sha256_of_parts: Option<String>,
}

/// A part of a multipart upload, as the store holds it (or as it is to be completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Its number, from 1.
    pub part_number: u16,
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 the store verified for it, when it reports one.
    pub sha256: Option<Sha256>,
    /// Its entity tag as the store gave it (quotes included), to be sent back on completion.
    pub etag: String,
}

/// What the store says of a completed multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedMultipart {
    /// The composite checksum, `base64(sha256(d1‖d2‖…))-N` where `dᵢ` is the SHA-256 of part
    /// `i` and `N` the number of parts, when the store reports one.
    pub composite_sha256: Option<String>,
    /// The object's length in bytes, when the store reports it.
    pub size: Option<u64>,
}

/// The cause of a multipart call the store or adapter does not support (the default bodies of
/// [`ObjectStore`]'s multipart methods).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("multipart uploads are not supported by this object store")]
pub struct MultipartUnsupported;

/// The cause of a [`PortError::Failed`] from [`ObjectStore::list_parts`] or
/// [`ObjectStore::complete_multipart`] when the store knows no such upload (never created,
/// completed, or aborted). Find it with `error.source()` and `downcast_ref`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no multipart upload {upload_id}")]
pub struct NoSuchUpload {
    /// The upload id asked for.
    pub upload_id: String,
}

/// The object store's calls that the service makes itself: inspecting and deleting objects,
/// and driving multipart uploads (whose parts devices send to URLs from
/// [`UrlSigner::sign_part`](super::signer::UrlSigner::sign_part)).
///
/// The multipart methods have default bodies that fail with [`PortError::Failed`] caused by
/// [`MultipartUnsupported`], so a store without multipart uploads implements only
/// [`ObjectStore::inspect`] and [`ObjectStore::delete`].
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's size and stored SHA-256, or `None` when there is no such object.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the store cannot be reached; [`PortError::Failed`] when it
    /// answers with an error.
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError>;

    /// Deletes the object; deleting an absent object succeeds.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`].
    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError>;

    /// Starts a multipart upload of `key` whose parts carry SHA-256 checksums (S3
    /// `CreateMultipartUpload` with `x-amz-checksum-algorithm: SHA256`); returns its upload id.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`]; [`PortError::Failed`] caused by
    /// [`MultipartUnsupported`] by default.
    async fn create_multipart(&self, key: &ObjectKey) -> Result<String, PortError> {
        let _ = key;
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Every part the store holds for the upload (all pages), by part number.
    ///
    /// # Errors
    /// [`PortError::Failed`] caused by [`NoSuchUpload`] when the store knows no such upload
    /// (a store that cannot tell may answer an empty list instead); otherwise as for
    /// [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<Vec<StoredPart>, PortError> {
        let _ = (key, upload_id);
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Completes the upload from `parts` (in part-number order, each with the ETag and, when it
    /// has one, the SHA-256 the store reported), making the object; returns what the store
    /// says of it.
    ///
    /// # Errors
    /// [`PortError::Failed`] caused by [`NoSuchUpload`] when the store knows no such upload;
    /// [`PortError::Failed`] when the store refuses the parts (a missing part, a wrong ETag or
    /// checksum, a part other than the last under 5 MiB); otherwise as for
    /// [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<CompletedMultipart, PortError> {
        let _ = (key, upload_id, parts);
        Err(PortError::failed(MultipartUnsupported))
    }

    /// Aborts the upload and frees its parts; aborting an unknown (or already aborted or
    /// completed) upload succeeds.
    ///
    /// # Errors
    /// [`PortError`] as for [`ObjectStore::inspect`]; [`MultipartUnsupported`] by default.
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), PortError> {
        let _ = (key, upload_id);
        Err(PortError::failed(MultipartUnsupported))
    }
}
