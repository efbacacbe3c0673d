//! In-process S3-compatible object store: the blob store of the "embedded default"
//! (development profile).
//!
//! [`EmbeddedS3`] serves real S3 over HTTP/1.1 on a local TCP listener: requests are
//! authenticated with AWS Signature V4 (header auth and presigned URLs) against one
//! access key / secret key pair, and objects are kept in a directory by
//! [`s3s_fs::FileSystem`].
//!
//! `s3s-fs` 0.14 writes an upload to its final place *before* it checks the
//! checksums the client declared, so a PUT whose body does not match its signed
//! `x-amz-checksum-sha256` is answered `BadDigest` but its bytes stay on disk
//! (replacing a good object, or creating a new one), and parts of multipart uploads
//! are not checked at all. This module therefore puts a verifying layer in front of
//! it: the body of every `PutObject` and `UploadPart` is first spooled to an
//! anonymous temporary file while its length and the declared checksums
//! (`x-amz-checksum-*`, from headers or from aws-chunked trailers, and `Content-MD5`)
//! are computed; only a body that matches everything it declares is handed to the
//! file system, so a refused upload changes nothing.
//!
//! Every object stored successfully (PUT or completed multipart upload) is reported
//! as a [`StoredObject`] on the channel given to [`EmbeddedS3::start`].

mod config;
mod server;
mod store;
mod verify;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use config::EmbeddedS3Config;
pub use server::{EmbeddedS3, EmbeddedS3Error};
pub use store::StoredObject;
