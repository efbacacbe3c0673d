//! The signer, store and transport under test, and what the rules build their requests from:
//! fresh keys, upload specs, and calls that panic when the store fails.

use std::time::Duration;

use files_core::ports::error_chain;
use files_core::{
    ContentType, DownloadSpec, FileId, ObjectInfo, ObjectKey, ObjectStore, Owner, PortError, PresignedRequest,
    UploadSpec, UrlSigner,
};

use super::transport::Transport;
use crate::contract::cache::{fresh_device, fresh_tenant};
use crate::sha256_of;

/// How long the suite's URLs are valid.
pub(super) const EXPIRES_IN: Duration = Duration::from_secs(15 * 60);

/// A download of `key`, with no content disposition.
pub(super) fn download(key: ObjectKey) -> DownloadSpec {
    DownloadSpec {
        key,
        expires_in: EXPIRES_IN,
        content_disposition: None,
    }
}

/// The three parts under test.
pub(super) struct Pair<'a> {
    pub(super) signer: &'a dyn UrlSigner,
    pub(super) store: &'a dyn ObjectStore,
    pub(super) transport: &'a dyn Transport,
}

impl Pair<'_> {
    /// Signs `spec`; panics when the signer refuses.
    pub(super) fn sign_upload(&self, spec: &UploadSpec) -> PresignedRequest {
        self.signer
            .sign_upload(spec)
            .unwrap_or_else(|error| panic!("objects contract: sign_upload of {spec:?} failed: {error}"))
    }

    /// Signs a download of `key`; panics when the signer refuses.
    pub(super) fn sign_download(&self, key: &ObjectKey) -> PresignedRequest {
        self.signer
            .sign_download(&download(*key))
            .unwrap_or_else(|error| panic!("objects contract: sign_download of {key} failed: {error}"))
    }

    /// Signs an upload of `body` (with its size) and sends it; panics when it is refused.
    pub(super) async fn upload(&self, key: ObjectKey, body: &[u8]) {
        let request = self.sign_upload(&spec(key, body, Some(len(body)), None));
        if let Err(why) = self.transport.put(&request, body).await {
            panic!("objects contract: an upload of the signed bytes to {key} was refused: {why}");
        }
    }

    /// What the store says of `key`; panics when it fails.
    pub(super) async fn inspect(&self, key: ObjectKey) -> Option<ObjectInfo> {
        ok(self.store.inspect(&key).await, "inspect")
    }

    /// Deletes `key`; panics when the store fails.
    pub(super) async fn delete(&self, key: ObjectKey) {
        ok(self.store.delete(&key).await, "delete");
    }

    /// Signs a download of `key` and sends it: the body, or why it was refused.
    pub(super) async fn download(&self, key: ObjectKey) -> Result<Vec<u8>, String> {
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

/// The length of `body`, as the ports count it.
pub(super) fn len(body: &[u8]) -> u64 {
    body.len() as u64
}

/// An upload of `body` to `key`, signed for its SHA-256 and the given size and content type.
pub(super) fn spec(key: ObjectKey, body: &[u8], size: Option<u64>, content_type: Option<ContentType>) -> UploadSpec {
    UploadSpec {
        key,
        sha256: sha256_of(body),
        size,
        content_type,
        expires_in: EXPIRES_IN,
    }
}

/// `text` as a content type; panics when it is not one.
pub(super) fn content_type(text: &str) -> ContentType {
    ContentType::parse(text).unwrap_or_else(|e| panic!("content type {text}: {e}"))
}

/// What the store answered; panics, naming `call`, when it failed.
pub(super) fn ok<T>(result: Result<T, PortError>, call: &str) -> T {
    result.unwrap_or_else(|error| panic!("objects contract: {call} failed: {}", error_chain(&error)))
}
