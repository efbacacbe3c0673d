//! The multipart rules: parts signed for their size and SHA-256, refused part by part when
//! other bytes are sent, listed, completed into one object with a composite checksum, or
//! aborted leaving nothing.

use files_core::{NoSuchUpload, ObjectKey, PartSpec, PortError, Sha256, StoredPart, UrlSigner};
use sha2::Digest as _;

use super::pair::{EXPIRES_IN, Pair, fresh_key, len, ok};
use crate::sha256_of;

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

/// The spec of part `part_number` of `upload_id`, signed for `body`.
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

/// `sign_part` signs a PUT for the part's length and SHA-256, naming the upload and part in
/// the URL, and refuses part number 0.
pub(super) fn parts_are_signed_for_size_and_checksum(signer: &dyn UrlSigner) {
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

/// Signs part `number` for `body` and sends it; panics when it is refused.
async fn put_part(pair: &Pair<'_>, key: ObjectKey, upload_id: &str, number: u16, body: &[u8]) {
    let request = pair
        .signer
        .sign_part(&part_spec(key, upload_id, number, body))
        .unwrap_or_else(|error| panic!("objects contract: sign_part failed: {error}"));
    if let Err(why) = pair.transport.put(&request, body).await {
        panic!("objects contract: part {number} of the signed bytes was refused: {why}");
    }
}

/// Checks that `listed` is the `expected` parts, by number and size, with their checksums where
/// `reports` says the store gives them.
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

/// Parts 1 to 3 sent (other bytes for part 3 refused first), listed after each step, completed
/// into one object of the parts in order, which cannot be completed again.
pub(super) async fn a_multipart_upload_is_verified_part_by_part_and_completed(
    pair: &Pair<'_>,
    reports: MultipartReports,
) {
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

/// An aborted upload is gone: no parts, no object, no completing it; aborting it again succeeds.
pub(super) async fn an_aborted_upload_leaves_nothing(pair: &Pair<'_>, reports: MultipartReports) {
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
