//! The contract of the [`UrlSigner`] and [`ObjectStore`] ports taken together: what every
//! object store, in memory or S3, must do with the URLs its signer makes.
//!
//! Uploads and downloads are not calls of the service but requests that devices send to the
//! signed URLs, so the suite takes the way to send them as a [`Transport`]: real HTTP
//! ([`HttpTransport`]) for a real store, [`FakeTransport`] for [`FakeObjectStore`].
//!
//! Each run uses fresh random tenants and deletes what it stored, so it can run any number of
//! times, in parallel, on a shared store. It panics, naming the broken rule, on the first
//! violation.
//!
//! The rules are grouped by what they are about: `signing` (what the signer puts in a URL),
//! `storing` (what the store keeps of the requests sent to them) and `multipart` (uploads in
//! parts, entered by [`run_multipart`]). `pair` is the signer, store and transport under test.
//!
//! [`FakeObjectStore`]: crate::fakes::FakeObjectStore

mod multipart;
mod pair;
mod signing;
mod storing;
mod transport;

use files_core::{ObjectStore, UrlSigner};

pub use multipart::{MultipartReports, composite_sha256};
pub use pair::fresh_key;
pub use transport::{FakeTransport, HttpTransport, Transport};

use pair::Pair;

/// Runs every rule of the contract against a signer and the store it signs for, sending the
/// signed requests with `transport`.
///
/// # Panics
/// When the pair breaks a rule, or a call fails.
pub async fn run(signer: &dyn UrlSigner, store: &dyn ObjectStore, transport: &dyn Transport) {
    let pair = Pair {
        signer,
        store,
        transport,
    };
    signing::bucket_is_stable(signer);
    signing::uploads_are_signed_for_checksum_size_and_type(signer);
    signing::downloads_are_signed_gets(signer);
    storing::absent_objects_are_none(&pair).await;
    storing::right_bytes_are_accepted_inspected_and_downloaded(&pair).await;
    storing::other_bytes_are_refused_and_nothing_is_stored(&pair).await;
    storing::another_length_than_signed_is_refused(&pair).await;
    storing::a_refused_upload_keeps_the_object_it_would_replace(&pair).await;
    storing::a_second_upload_replaces_the_first(&pair).await;
    storing::delete_removes_only_its_object(&pair).await;
    storing::deleting_an_absent_object_succeeds(&pair).await;
}

/// Runs the multipart rules against a signer and the store it signs for: create an upload with
/// SHA-256 parts, send parts to signed URLs (other bytes are refused part by part), list them,
/// complete with their ETags and checksums, and abort another. What `reports` says the store
/// does not report is not checked (but must be right when it is reported anyway).
///
/// # Panics
/// When the pair breaks a rule, or a call fails.
pub async fn run_multipart(
    signer: &dyn UrlSigner,
    store: &dyn ObjectStore,
    transport: &dyn Transport,
    reports: MultipartReports,
) {
    let pair = Pair {
        signer,
        store,
        transport,
    };
    multipart::parts_are_signed_for_size_and_checksum(signer);
    multipart::a_multipart_upload_is_verified_part_by_part_and_completed(&pair, reports).await;
    multipart::an_aborted_upload_leaves_nothing(&pair, reports).await;
}
