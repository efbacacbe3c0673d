//! Multipart uploads in the use cases, over the fakes (`cargo nextest run multipart`): the
//! record and the event carry the parts, a notification makes good a completion the service
//! did not record, a store that is down or reports another composite changes nothing.

use std::time::Duration;

use files_core::{
    CompleteError, Dependency, FileName, FileState, IngestOutcome, Integrity, NoSuchUpload, ObjectCreated, ObjectInfo,
    ObjectStore as _, PartsError, PartsRequest, PartsStatus, PortError, Sha256, UploadRequest,
};
use files_testkit::contract::objects::composite_sha256;
use files_testkit::fakes::FakeObjectStore;

use crate::world::World;
use files_testkit::sha256_of;

const MIB: usize = 1024 * 1024;

/// 11 MiB in parts of 5 MiB: the request, and the parts.
fn eleven_mib() -> (UploadRequest, PartsRequest, Vec<Vec<u8>>) {
    let data: Vec<u8> = (0..11 * MIB).map(|i| u8::try_from(i % 253).unwrap_or(0)).collect();
    let parts: Vec<Vec<u8>> = data.chunks(5 * MIB).map(<[u8]>::to_vec).collect();
    let request = UploadRequest {
        name: FileName::parse("crash.dump").unwrap(),
        sha256: sha256_of(&data),
        size: data.len() as u64,
        content_type: None,
        expires_in: None,
    };
    let plan = PartsRequest {
        part_size: 5 * MIB as u64,
        sha256: parts.iter().map(|p| sha256_of(p)).collect(),
    };
    (request, plan, parts)
}

#[tokio::test]
async fn multipart_parts_complete_into_a_record_and_one_event_carrying_them() {
    let w = World::new();
    let (request, plan, parts) = eleven_mib();
    let ticket = w.multipart(request, plan).await;
    assert_eq!(ticket.parts.len(), 3);
    assert_eq!(ticket.expires_in, Duration::from_secs(3600));
    let record = ticket.record;
    assert_eq!(record.integrity(), Integrity::Parts);
    for (ticket, bytes) in ticket.parts.iter().zip(&parts) {
        w.objects.receive_part(&ticket.request, bytes).unwrap();
    }
    let status = w
        .service
        .stored_parts(&w.principal, record.tenant, record.id, 0, PartsStatus::MAX_PAGE)
        .await
        .unwrap();
    assert!(status.parts.iter().all(|p| p.stored), "{status:?}");
    let done = w
        .service
        .complete(&w.principal, record.tenant, record.id)
        .await
        .unwrap();
    assert_eq!(done.state, FileState::Available);
    assert_eq!(done.size, Some(11 * MIB as u64));
    let events = w.events().await;
    assert_eq!(events.len(), 1);
    let file = &events[0].file;
    assert_eq!(file.integrity, Integrity::Parts);
    let summary = file.parts.clone().unwrap();
    assert_eq!((summary.size, summary.count), (5 * MIB as u64, 3));
    let digests: Vec<Sha256> = parts.iter().map(|p| sha256_of(p)).collect();
    assert_eq!(summary.sha256_of_parts, composite_sha256(&digests));
    // The upload is completed on the store: nothing left to list.
    let left = w
        .objects
        .list_parts(&record.object_key(), &record.multipart.unwrap().upload_id)
        .await;
    assert!(left.is_err(), "{left:?}");
}

#[tokio::test]
async fn multipart_a_notification_makes_good_a_completion_the_service_did_not_record() {
    let w = World::new();
    let (request, plan, parts) = eleven_mib();
    let ticket = w.multipart(request, plan).await;
    for (ticket, bytes) in ticket.parts.iter().zip(&parts) {
        w.objects.receive_part(&ticket.request, bytes).unwrap();
    }
    // The store completed the upload (as `complete` does) and the service stopped before it
    // recorded it: the record is pending, the store knows no upload, the object is there.
    let record = ticket.record;
    let key = record.object_key();
    let upload_id = record.multipart.clone().unwrap().upload_id;
    let listed = w.objects.list_parts(&key, &upload_id).await.unwrap();
    w.objects.complete_multipart(&key, &upload_id, &listed).await.unwrap();
    let outcome = w
        .service
        .ingest(&ObjectCreated {
            bucket: FakeObjectStore::BUCKET.to_owned(),
            key: key.to_string(),
            size: Some(11 * MIB as u64),
        })
        .await
        .unwrap();
    assert_eq!(outcome, IngestOutcome::Completed(record.id));
    let events = w.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].file.integrity, Integrity::Parts);
    // And `complete` after it is a no-op.
    let again = w
        .service
        .complete(&w.principal, record.tenant, record.id)
        .await
        .unwrap();
    assert_eq!(again.state, FileState::Available);
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn multipart_an_object_with_another_composite_is_refused_and_deleted() {
    let w = World::new();
    let (request, plan, _) = eleven_mib();
    let ticket = w.multipart(request, plan).await;
    let record = ticket.record;
    let key = record.object_key();
    // The upload is gone and an object of the right size but other parts is there.
    w.objects
        .abort_multipart(&key, &record.multipart.clone().unwrap().upload_id)
        .await
        .unwrap();
    w.objects.put(
        &key,
        ObjectInfo {
            size: 11 * MIB as u64,
            sha256: None,
            sha256_of_parts: Some(composite_sha256(&[Sha256::from_bytes([1; 32]); 3])),
        },
    );
    let refused = w.service.complete(&w.principal, record.tenant, record.id).await;
    assert!(
        matches!(refused, Err(CompleteError::Mismatch(files_core::Mismatch::Parts))),
        "{refused:?}"
    );
    assert!(!w.objects.contains(&key), "the object of other parts was kept");
    // With neither an upload nor an object: the upload has expired.
    let refused = w.service.complete(&w.principal, record.tenant, record.id).await;
    assert!(matches!(refused, Err(CompleteError::UploadExpired)), "{refused:?}");
    assert!(w.events().await.is_empty());
}

#[tokio::test]
async fn multipart_a_store_that_is_down_is_503_and_changes_nothing() {
    let w = World::new();
    let (request, plan, parts) = eleven_mib();
    w.objects.switch.fail();
    let refused = w
        .service
        .request_multipart_upload(&w.principal, w.scope, request.clone(), plan.clone())
        .await;
    assert!(
        matches!(&refused, Err(files_core::UploadError::Dependency(e)) if e.dependency == Dependency::ObjectStore && e.is_unavailable()),
        "{refused:?}"
    );
    w.objects.switch.recover();
    let ticket = w.multipart(request, plan).await;
    for (ticket, bytes) in ticket.parts.iter().zip(&parts) {
        w.objects.receive_part(&ticket.request, bytes).unwrap();
    }
    let record = ticket.record;
    w.objects.switch.fail();
    let refused = w.service.complete(&w.principal, record.tenant, record.id).await;
    assert!(
        matches!(&refused, Err(CompleteError::Dependency(e)) if e.dependency == Dependency::ObjectStore),
        "{refused:?}"
    );
    let refused = w
        .service
        .stored_parts(&w.principal, record.tenant, record.id, 0, PartsStatus::MAX_PAGE)
        .await;
    assert!(matches!(refused, Err(PartsError::Dependency(_))), "{refused:?}");
    // Signing needs no call: part tickets are still given.
    let tickets = w
        .service
        .part_tickets(&w.principal, record.tenant, record.id, &[2], None)
        .await
        .unwrap();
    assert_eq!(tickets.len(), 1);
    w.objects.switch.recover();
    let done = w
        .service
        .complete(&w.principal, record.tenant, record.id)
        .await
        .unwrap();
    assert_eq!(done.state, FileState::Available);
    assert_eq!(w.events().await.len(), 1);
}

#[tokio::test]
async fn multipart_delete_aborts_the_upload_and_tickets_end_with_the_upload() {
    let w = World::new();
    let (request, plan, parts) = eleven_mib();
    let ticket = w
        .service
        .request_multipart_upload(&w.principal, w.scope, request.clone(), plan.clone())
        .await
        .unwrap();
    w.objects.receive_part(&ticket.parts[0].request, &parts[0]).unwrap();
    let record = ticket.record;
    let upload_id = record.multipart.clone().unwrap().upload_id;
    w.service.delete(&w.principal, record.tenant, record.id).await.unwrap();
    let listed = w.objects.list_parts(&record.object_key(), &upload_id).await;
    let Err(PortError::Failed(cause)) = listed else {
        panic!("the upload is still there: {listed:?}")
    };
    assert!(cause.is::<NoSuchUpload>(), "{cause}");
    assert!(w.objects.receive_part(&ticket.parts[1].request, &parts[1]).is_err());
    assert!(!w.objects.contains(&record.object_key()));

    // Past the multipart expiry, no more tickets.
    let ticket = w.multipart(request, plan).await;
    w.clock.advance(Duration::from_secs(3601));
    let refused = w
        .service
        .part_tickets(&w.principal, ticket.record.tenant, ticket.record.id, &[1], None)
        .await;
    assert!(matches!(refused, Err(PartsError::Expired)), "{refused:?}");
    // A single PUT's file has no parts.
    let single = w
        .service
        .request_upload(
            &w.principal,
            w.scope,
            UploadRequest {
                name: FileName::parse("one.bin").unwrap(),
                sha256: sha256_of(b"one"),
                size: 3,
                content_type: None,
                expires_in: None,
            },
        )
        .await
        .unwrap();
    let refused = w
        .service
        .stored_parts(
            &w.principal,
            single.record.tenant,
            single.record.id,
            0,
            PartsStatus::MAX_PAGE,
        )
        .await;
    assert!(matches!(refused, Err(PartsError::NotMultipart)), "{refused:?}");
}

/// An upload in parts that does not fit the tenant's quota is refused after the store's
/// multipart upload was created: it is aborted, and nothing is recorded.
#[tokio::test]
async fn multipart_over_the_quota_is_refused_and_its_upload_aborted() {
    use files_core::{Principal, QuotaRefusal, UploadError, UsageStore as _};
    let w = World::new();
    let set_bytes = async |bytes: usize| {
        let document = serde_json::json!({"quota": {"bytes": bytes}});
        w.service
            .set_tenant_settings(&Principal::Platform, w.tenant, &document)
            .await
            .unwrap();
    };
    set_bytes(10 * MIB).await;
    let (request, plan, _) = eleven_mib();
    let refused = w
        .service
        .request_multipart_upload(&w.principal, w.scope, request, plan)
        .await;
    match refused {
        Err(UploadError::Quota(exceeded)) => assert_eq!(exceeded.refusal, QuotaRefusal::Bytes),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.objects.multipart_uploads_in_progress(),
        0,
        "the store's upload was aborted"
    );
    let usage = w.store.tenant_usage(w.tenant).await.unwrap();
    assert_eq!(usage.pending_uploads, 0, "nothing recorded");

    // Within the quota, the same upload is admitted and stays in progress.
    set_bytes(11 * MIB).await;
    let (request, plan, _) = eleven_mib();
    w.multipart(request, plan).await;
    assert_eq!(w.objects.multipart_uploads_in_progress(), 1);
    let usage = w.store.tenant_usage(w.tenant).await.unwrap();
    assert_eq!((usage.pending_uploads, usage.pending_bytes), (1, 11 * MIB as u64));
}
