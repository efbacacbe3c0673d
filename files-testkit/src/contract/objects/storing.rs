//! The rules about what a store keeps of the requests sent to its signed URLs: the signed bytes,
//! and nothing else.

use files_core::{FileId, ObjectInfo, ObjectKey};

use super::pair::{Pair, content_type, fresh_key, len, ok, spec};
use crate::sha256_of;

/// Bodies of every kind: empty, text, binary with every byte value, larger than a buffer.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("an empty body", Vec::new()),
        ("a text body", b"hello, object store\n".to_vec()),
        ("every byte value", (0..=255_u8).rev().chain(0..=255).collect()),
        (
            "a 300 KiB body",
            (0..300 * 1024_u32)
                .map(|i| u8::try_from(i.wrapping_mul(31) % 251).unwrap_or_default())
                .collect(),
        ),
    ]
}

/// An absent object inspects as `None` and cannot be downloaded.
pub(super) async fn absent_objects_are_none(pair: &Pair<'_>) {
    for device_owned in [true, false] {
        let key = fresh_key(device_owned);
        assert_eq!(
            pair.inspect(key).await,
            None,
            "inspect of an absent object must be None"
        );
        assert!(
            pair.download(key).await.is_err(),
            "a download of an absent object must not succeed"
        );
    }
}

/// The signed bytes, of every kind and signed with or without size and content type, are
/// accepted, inspected with their size and SHA-256, and downloaded as sent.
pub(super) async fn right_bytes_are_accepted_inspected_and_downloaded(pair: &Pair<'_>) {
    for (what, body) in bodies() {
        // Signed with and without size and content type: each is accepted with the right bytes.
        let variants = [
            (Some(len(&body)), None),
            (None, None),
            (Some(len(&body)), Some(content_type("application/octet-stream"))),
            (None, Some(content_type("application/json"))),
        ];
        for (size, kind) in variants {
            let key = fresh_key(size.is_some());
            let request = pair.sign_upload(&spec(key, &body, size, kind.clone()));
            if let Err(why) = pair.transport.put(&request, &body).await {
                panic!("{what} (size {size:?}, type {kind:?}): an upload of the signed bytes was refused: {why}");
            }
            assert_eq!(
                pair.inspect(key).await,
                Some(ObjectInfo {
                    size: len(&body),
                    sha256: Some(sha256_of(&body)),
                    sha256_of_parts: None,
                }),
                "{what} (size {size:?}, type {kind:?}): inspect after an accepted upload must give its size and SHA-256"
            );
            match pair.download(key).await {
                Ok(got) => assert!(got == body, "{what}: the download must return the uploaded bytes"),
                Err(why) => panic!("{what}: the download of an uploaded object failed: {why}"),
            }
            pair.delete(key).await;
        }
    }
}

/// Other bytes of the signed length are refused, and nothing is stored.
pub(super) async fn other_bytes_are_refused_and_nothing_is_stored(pair: &Pair<'_>) {
    let signed = b"the bytes the URL was signed for";
    let other = b"THE BYTES THE URL WAS SIGNED FOR";
    assert_eq!(signed.len(), other.len());
    for size in [Some(len(signed)), None] {
        let key = fresh_key(true);
        let request = pair.sign_upload(&spec(key, signed, size, None));
        let sent = pair.transport.put(&request, other).await;
        assert!(
            sent.is_err(),
            "an upload of other bytes than signed (same length, size {size:?}) must be refused"
        );
        assert_eq!(
            pair.inspect(key).await,
            None,
            "after a refused upload nothing must be stored (size {size:?})"
        );
        assert!(
            pair.download(key).await.is_err(),
            "a refused upload must not be downloadable"
        );
    }
}

/// A body of another length than signed is refused, and nothing is stored.
pub(super) async fn another_length_than_signed_is_refused(pair: &Pair<'_>) {
    let body = b"twenty-one bytes long";
    for signed_size in [len(body) + 1, len(body) - 1, 0] {
        let key = fresh_key(true);
        // The checksum is the body's own: only the length differs from what was signed.
        let request = pair.sign_upload(&spec(key, body, Some(signed_size), None));
        let sent = pair.transport.put(&request, body).await;
        assert!(
            sent.is_err(),
            "a body of {} bytes must be refused on a URL signed for {signed_size}",
            body.len()
        );
        assert_eq!(
            pair.inspect(key).await,
            None,
            "after a refused upload nothing must be stored"
        );
    }
}

/// A refused upload leaves the object it would have replaced as it was.
pub(super) async fn a_refused_upload_keeps_the_object_it_would_replace(pair: &Pair<'_>) {
    let key = fresh_key(true);
    let good = b"version one";
    pair.upload(key, good).await;
    let bad = b"version two";
    let request = pair.sign_upload(&spec(key, good, None, None));
    assert!(
        pair.transport.put(&request, bad).await.is_err(),
        "an upload of other bytes than signed must be refused"
    );
    assert_eq!(
        pair.inspect(key).await,
        Some(ObjectInfo {
            size: len(good),
            sha256: Some(sha256_of(good)),
            sha256_of_parts: None,
        }),
        "a refused upload must leave the stored object as it was"
    );
    assert_eq!(
        pair.download(key).await.as_deref(),
        Ok(&good[..]),
        "a refused upload must leave the stored bytes as they were"
    );
    pair.delete(key).await;
}

/// A second accepted upload to a key replaces the first.
pub(super) async fn a_second_upload_replaces_the_first(pair: &Pair<'_>) {
    let key = fresh_key(false);
    pair.upload(key, b"first").await;
    let second = b"the second, longer version";
    pair.upload(key, second).await;
    assert_eq!(
        pair.inspect(key).await,
        Some(ObjectInfo {
            size: len(second),
            sha256: Some(sha256_of(second)),
            sha256_of_parts: None,
        }),
        "a second accepted upload must replace the first"
    );
    assert_eq!(pair.download(key).await.as_deref(), Ok(&second[..]));
    pair.delete(key).await;
}

/// `delete` removes its object and not its neighbour; deleting again succeeds.
pub(super) async fn delete_removes_only_its_object(pair: &Pair<'_>) {
    let key = fresh_key(true);
    // A neighbour under the same tenant and owner.
    let neighbour = ObjectKey {
        file: FileId::new(),
        ..key
    };
    pair.upload(key, b"to be deleted").await;
    pair.upload(neighbour, b"to be kept").await;
    pair.delete(key).await;
    assert_eq!(pair.inspect(key).await, None, "inspect after delete must be None");
    assert!(
        pair.download(key).await.is_err(),
        "a download after delete must not succeed"
    );
    assert_eq!(
        pair.inspect(neighbour).await.map(|info| info.size),
        Some(10),
        "delete must remove only its own object"
    );
    // Deleting it again is fine too.
    pair.delete(key).await;
    pair.delete(neighbour).await;
    assert_eq!(pair.inspect(neighbour).await, None);
}

/// Deleting an absent object succeeds.
pub(super) async fn deleting_an_absent_object_succeeds(pair: &Pair<'_>) {
    for device_owned in [true, false] {
        let key = fresh_key(device_owned);
        ok(pair.store.delete(&key).await, "delete of an absent object");
        assert_eq!(pair.inspect(key).await, None);
    }
}
