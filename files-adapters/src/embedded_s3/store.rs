//! The `S3` implementation served, [`VerifyingStore`]: it forwards the supported
//! operations to [`s3s_fs::FileSystem`], verifies upload bodies first (see
//! [`verify`](super::verify)), drops checksums that `s3s-fs` reports stale for
//! multipart objects, and reports every stored object as a [`StoredObject`].

use std::path::PathBuf;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput, CompleteMultipartUploadOutput,
    CreateBucketInput, CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, ETag, GetBucketLocationInput, GetBucketLocationOutput,
    GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput,
    PutObjectOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};
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
    pub(super) spool_dir: PathBuf,
    pub(super) on_stored: mpsc::UnboundedSender<StoredObject>,
}

impl VerifyingStore {
    fn notify(&self, object: StoredObject) {
        tracing::debug!(bucket = %object.bucket, key = %object.key, size = object.size, "object stored");
        if self.on_stored.send(object).is_err() {
            tracing::debug!("nobody listens for stored objects any more");
        }
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
        let mut resp = self.inner.head_object(req).await?;
        if is_multipart_etag(resp.output.e_tag.as_ref()) {
            clear_checksums!(&mut resp.output);
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
        self.inner.delete_object(req).await
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
        let verified = verify_body(&self.spool_dir, &mut req).await?;
        let mut resp = self.inner.upload_part(req).await?;
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
        let resp = self.inner.complete_multipart_upload(req).await?;
        // The object is in place once the inner call returns (its output future only
        // produces the response document).
        match self.inner.head_object(head).await {
            Ok(head) => match head.output.content_length.map(u64::try_from) {
                Some(Ok(size)) => self.notify(StoredObject { bucket, key, size }),
                _ => tracing::error!(%bucket, %key, "completed multipart upload has no valid size; not reported"),
            },
            Err(err) => {
                tracing::error!(%bucket, %key, %err, "cannot read back a completed multipart upload; not reported");
            }
        }
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.inner.list_parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.inner.list_multipart_uploads(req).await
    }
}
