//! The rules about what a signer puts in its URLs, checked without sending them.

use files_core::{UploadSpec, UrlSigner};

use super::pair::{content_type, download, fresh_key, len, spec};
use crate::sha256_of;

/// `bucket` names a bucket, always the same one.
pub(super) fn bucket_is_stable(signer: &dyn UrlSigner) {
    let bucket = signer.bucket().to_owned();
    assert!(!bucket.is_empty(), "bucket() must name a bucket");
    for _ in 0..3 {
        assert_eq!(signer.bucket(), bucket, "bucket() must not change");
    }
}

/// `sign_upload` signs a PUT listing the SHA-256, and the size and content type when given, with
/// lower-case header names; URLs of two keys differ.
pub(super) fn uploads_are_signed_for_checksum_size_and_type(signer: &dyn UrlSigner) {
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

/// `sign_download` signs a GET.
pub(super) fn downloads_are_signed_gets(signer: &dyn UrlSigner) {
    let key = fresh_key(false);
    let request = signer
        .sign_download(&download(key))
        .unwrap_or_else(|error| panic!("objects contract: sign_download failed: {error}"));
    assert_eq!(request.method, "GET", "sign_download must sign a GET");
    assert!(!request.url.is_empty(), "sign_download must give a URL");
}
