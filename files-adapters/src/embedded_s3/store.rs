//! The `S3` implementation served, [`VerifyingStore`]: it forwards the supported
//! operations to [`s3s_fs::FileSystem`], verifies upload bodies first (see
//! [`verify`](super::verify)), drops checksums that `s3s-fs` reports stale for
//! multipart objects, and reports every stored object as a [`StoredObject`].
//!
//! Multipart uploads are made S3-like where `s3s-fs` 0.14 is not: a call naming an upload it
//! does not hold (never created, completed or aborted) is answered `NoSuchUpload` (not
//! `AccessDenied`, nor an empty list of parts), and the checksums verified for each part are
//! remembered (in memory, for the life of the server), so `ListParts` reports them with the
//! parts' ETags, the `ChecksumSHA256` a completion names per part is checked against them, and
//! the completion answers the composite checksum `base64(sha256(d1‖d2‖…))-N` when every part's
//! SHA-256 is known.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, ETag, GetBucketLocationInput, GetBucketLocationOutput,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput,
    PutObjectOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::sync::mpsc;

use super::verify::verify_body;

/// An object that was stored successfully (PUT or completed multipart upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Bucket the object was stored in.
    pub bucket: String,
    /// Key of the object.
    pub key: String,
    /// Size of the stored object in bytes.
    pub size: u64,
}

/// The `S3` implementation served: [`s3s_fs::FileSystem`] behind body verification.
///
/// Operations not forwarded here (copies, bucket deletion, ACLs, ...) keep the
/// trait's default `NotImplemented` answer.
#[derive(Debug)]
pub(super) struct VerifyingStore {
    pub(super) inner: s3s_fs::FileSystem,
    /// The directory `inner` keeps its files in.
    pub(super) root: PathBuf,
    pub(super) spool_dir: PathBuf,
    pub(super) on_stored: mpsc::UnboundedSender<StoredObject>,
    /// What was verified of each part, by upload id and part number.
    pub(super) parts: Mutex<HashMap<(String, i32), VerifiedPart>>,
    /// The composite checksum of each object made of parts, by bucket and key (in memory like
    /// the parts': after a restart it is reported as absent, never invented).
    pub(super) composites: Mutex<HashMap<(String, String), String>>,
}

/// What [`VerifyingStore`] remembers of an accepted part.
#[derive(Debug, Clone, Default)]
pub(super) struct VerifiedPart {
    e_tag: Option<ETag>,
    /// Standard base64 of the part's SHA-256, when one was declared.
    sha256: Option<String>,
}

impl VerifyingStore {
    /// Whether `inner` holds the upload: `s3s-fs` keeps one `.upload-{uuid}.json` per upload
    /// in its root (a layout the embedded store's multipart tests pin).
    async fn holds_upload(&self, upload_id: &str) -> bool {
        let Ok(id) = uuid::Uuid::parse_str(upload_id) else {
            return false;
        };
        tokio::fs::try_exists(self.root.join(format!(".upload-{id}.json")))
            .await
            .unwrap_or(false)
    }

    async fn check_upload(&self, upload_id: &str) -> S3Result<()> {
        if self.holds_upload(upload_id).await {
            Ok(())
        } else {
            Err(s3_error!(NoSuchUpload, "no multipart upload {upload_id}"))
        }
    }

    fn composites(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.composites.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn verified_parts(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), VerifiedPart>> {
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget_upload(&self, upload_id: &str) {
        self.verified_parts().retain(|(id, _), _| id != upload_id);
    }

    fn notify(&self, object: StoredObject) {
        tracing::debug!(bucket = %object.bucket, key = ?object.key, size = object.size, "object stored");
        if self.on_stored.send(object).is_err() {
            tracing::debug!("nobody listens for stored objects any more");
        }
    }
}

impl VerifyingStore {
    /// Checks each part's `ChecksumSHA256` against the one verified for it (S3's `InvalidPart`
    /// when they differ) and gives the composite checksum when every part's is known.
    fn composite_checksum(&self, input: &CompleteMultipartUploadInput) -> S3Result<Option<String>> {
        let parts = input
            .multipart_upload
            .as_ref()
            .and_then(|upload| upload.parts.as_deref())
            .unwrap_or_default();
        let verified = self.verified_parts();
        let mut hasher = sha2::Sha256::new();
        let mut complete = !parts.is_empty();
        for part in parts {
            let known = part
                .part_number
                .and_then(|number| verified.get(&(input.upload_id.clone(), number)))
                .and_then(|known| known.sha256.as_deref());
            match (known, part.checksum_sha256.as_deref()) {
                (Some(known), Some(given)) if known != given => {
                    return Err(s3_error!(
                        InvalidPart,
                        "part {:?}: ChecksumSHA256 is not the part's",
                        part.part_number
                    ));
                }
                (Some(known), _) => match BASE64.decode(known) {
                    Ok(digest) => hasher.update(digest),
                    Err(_) => complete = false,
                },
                (None, _) => complete = false,
            }
        }
        Ok(complete.then(|| format!("{}-{}", BASE64.encode(hasher.finalize()), parts.len())))
    }
}

/// `s3s-fs` never computes checksums for multipart uploads, but keeps the internal
/// info (checksums included) of an object a multipart upload replaced, or of a
/// deleted one. Checksums reported alongside a multipart ETag (`<md5>-<parts>`)
/// are therefore stale, and are dropped.
fn is_multipart_etag(e_tag: Option<&ETag>) -> bool {
    e_tag.is_some_and(|e_tag| e_tag.value().contains('-'))
}

macro_rules! clear_checksums {
    ($output:expr) => {{
        let output = $output;
        output.checksum_crc32 = None;
        output.checksum_crc32c = None;
        output.checksum_sha1 = None;
        output.checksum_sha256 = None;
        output.checksum_crc64nvme = None;
    }};
}

#[async_trait::async_trait]
impl S3 for VerifyingStore {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.inner.list_objects_v2(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let object = (req.input.bucket.clone(), req.input.key.clone());
        let mut resp = self.inner.head_object(req).await?;
        if is_multipart_etag(resp.output.e_tag.as_ref()) {
            // Like S3: an object made of parts has the composite checksum, no SHA-256 of its own.
            clear_checksums!(&mut resp.output);
            resp.output.checksum_sha256 = self.composites().get(&object).cloned();
        }
        Ok(resp)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let mut resp = self.inner.get_object(req).await?;
        if is_multipart_etag(resp.output.e_tag.as_ref()) {
            clear_checksums!(&mut resp.output);
        }
        Ok(resp)
    }

    async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let verified = verify_body(&self.spool_dir, &mut req).await?;
        let resp = self.inner.put_object(req).await?;
        self.composites().remove(&(bucket.clone(), key.clone()));
        // A key ending in '/' makes s3s-fs create a directory, not an object.
        if !key.ends_with('/') {
            self.notify(StoredObject {
                bucket,
                key,
                size: verified.size,
            });
        }
        Ok(resp)
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let object = (req.input.bucket.clone(), req.input.key.clone());
        let resp = self.inner.delete_object(req).await?;
        self.composites().remove(&object);
        Ok(resp)
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.inner.delete_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(&self, mut req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.check_upload(&req.input.upload_id).await?;
        let upload_id = req.input.upload_id.clone();
        let part_number = req.input.part_number;
        let verified = verify_body(&self.spool_dir, &mut req).await?;
        let mut resp = self.inner.upload_part(req).await?;
        self.verified_parts().insert(
            (upload_id, part_number),
            VerifiedPart {
                e_tag: resp.output.e_tag.clone(),
                sha256: verified.checksums.checksum_sha256.clone(),
            },
        );
        // s3s-fs does not echo the part's checksums; AWS does.
        let output = &mut resp.output;
        output.checksum_crc32 = verified.checksums.checksum_crc32;
        output.checksum_crc32c = verified.checksums.checksum_crc32c;
        output.checksum_sha1 = verified.checksums.checksum_sha1;
        output.checksum_sha256 = verified.checksums.checksum_sha256;
        output.checksum_crc64nvme = verified.checksums.checksum_crc64nvme;
        Ok(resp)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let head = S3Request {
            input: HeadObjectInput {
                bucket: bucket.clone(),
                key: key.clone(),
                ..HeadObjectInput::default()
            },
            method: hyper::Method::HEAD,
            uri: req.uri.clone(),
            headers: hyper::HeaderMap::new(),
            extensions: hyper::http::Extensions::new(),
            credentials: req.credentials.clone(),
            region: req.region.clone(),
            service: req.service.clone(),
            trailing_headers: None,
        };
        let upload_id = req.input.upload_id.clone();
        self.check_upload(&upload_id).await?;
        let composite = self.composite_checksum(&req.input)?;
        let mut resp = self.inner.complete_multipart_upload(req).await?;
        self.forget_upload(&upload_id);
        if let Some(composite) = composite {
            self.composites()
                .insert((bucket.clone(), key.clone()), composite.clone());
            resp.output.checksum_sha256 = Some(composite.clone());
            if let Some(future) = resp.output.future.take() {
                resp.output.future = Some(Box::pin(async move {
                    let mut output = future.await?;
                    output.checksum_sha256 = Some(composite);
                    Ok(output)
                }));
            }
        }
        // The object is in place once the inner call returns (its output future only
        // produces the response document).
        match self.inner.head_object(head).await {
            Ok(head) => match head.output.content_length.map(u64::try_from) {
                Some(Ok(size)) => self.notify(StoredObject { bucket, key, size }),
                _ => tracing::error!(%bucket, ?key, "completed multipart upload has no valid size; not reported"),
            },
            Err(err) => {
                tracing::error!(%bucket, ?key, %err, "cannot read back a completed multipart upload; not reported");
            }
        }
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        self.check_upload(&upload_id).await?;
        let resp = self.inner.abort_multipart_upload(req).await?;
        self.forget_upload(&upload_id);
        Ok(resp)
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let upload_id = req.input.upload_id.clone();
        self.check_upload(&upload_id).await?;
        let mut resp = self.inner.list_parts(req).await?;
        let verified = self.verified_parts();
        let parts = resp.output.parts.get_or_insert_with(Vec::new);
        for part in parts.iter_mut() {
            let Some(number) = part.part_number else { continue };
            if let Some(known) = verified.get(&(upload_id.clone(), number)) {
                part.e_tag.clone_from(&known.e_tag);
                part.checksum_sha256.clone_from(&known.sha256);
            }
        }
        // s3s-fs lists them in directory order.
        parts.sort_by_key(|part| part.part_number);
        drop(verified);
        Ok(resp)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.inner.list_multipart_uploads(req).await
    }
}
