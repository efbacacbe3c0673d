//! A Rust service that embeds `files-core` with adapters of its own, and runs one upload from
//! URL to event, then deletes the file (a second event):
//!
//! ```sh
//! cargo run -p files-core --example embed
//! ```
//!
//! The adapters here are deliberately small: records in a map (with the outbox beside them,
//! under the same lock, so marking a file available, or deleting it, and recording its event
//! are one step), a
//! signer that writes `memory://` URLs, an object store that a "device" writes into directly,
//! one accepted token, and a notifier that prints the event. A real embedding swaps them for
//! its own database, its S3 client and its broker (or takes them from `files-adapters`).

#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use files_core::{
    Admission, CacheOperation, CacheOutcome, Deletion, DeviceId, DownloadSpec, FileEvent, FileId, FileName,
    FileOperation, FileRecord, FileState, FileUploaded, FilesService, InvalidToken, Limits, MetadataStore, Metrics,
    Notifier, ObjectInfo, ObjectKey, ObjectStore, Outbox, OutboxEntry, OutboxStats, Owner, PortError, Ports,
    PresignedRequest, Principal, Scope, Sha256, SignError, TenantId, TokenError, TokenVerifier, UploadRequest,
    UploadSpec, UrlSigner,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// File records and the outbox (each event with whether it was sent), under one lock.
#[derive(Default)]
struct MapStore(Mutex<Tables>);

type Tables = (BTreeMap<FileId, FileRecord>, Vec<(FileEvent, bool)>);

#[async_trait]
impl MetadataStore for MapStore {
    async fn insert(&self, record: &FileRecord) -> Result<(), PortError> {
        lock(&self.0).0.insert(record.id, record.clone());
        Ok(())
    }

    /// This store keeps no quotas: a service built without `.tenancy(..)` asks it for none.
    async fn admit(&self, record: &FileRecord, limits: &Limits) -> Result<Admission, PortError> {
        if *limits != Limits::NONE {
            return Err(PortError::failed("this store keeps no quotas"));
        }
        self.insert(record).await.map(|()| Admission::Admitted)
    }

    async fn get(&self, tenant: TenantId, id: FileId) -> Result<Option<FileRecord>, PortError> {
        Ok(lock(&self.0).0.get(&id).filter(|r| r.tenant == tenant).cloned())
    }

    async fn latest(&self, scope: Scope, name: &FileName, state: FileState) -> Result<Option<FileRecord>, PortError> {
        let store = lock(&self.0);
        let mut matching = store.0.values().rev();
        Ok(matching
            .find(|r| r.scope() == scope && &r.name == name && r.state == state)
            .cloned())
    }

    async fn list(
        &self,
        scope: Scope,
        state: FileState,
        before: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, PortError> {
        let store = lock(&self.0);
        let newest_first = store.0.values().rev();
        Ok(newest_first
            .filter(|r| r.scope() == scope && r.state == state && before.is_none_or(|b| r.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_available(
        &self,
        tenant: TenantId,
        id: FileId,
        size: u64,
        at: OffsetDateTime,
        event: &FileUploaded,
    ) -> Result<Option<FileRecord>, PortError> {
        let mut store = lock(&self.0);
        let Some(record) = store
            .0
            .get_mut(&id)
            .filter(|r| r.tenant == tenant && r.state == FileState::Pending)
        else {
            return Ok(None);
        };
        record.state = FileState::Available;
        record.size = Some(size);
        record.completed_at = Some(at);
        let record = record.clone();
        store.1.push((FileEvent::Uploaded(event.clone()), false));
        Ok(Some(record))
    }

    /// Deleting an available file records its `file.deleted` event, under the same lock.
    async fn mark_deleted(
        &self,
        tenant: TenantId,
        id: FileId,
        deletion: &Deletion,
    ) -> Result<Option<FileRecord>, PortError> {
        let mut store = lock(&self.0);
        let Some(record) = store.0.get_mut(&id).filter(|r| r.tenant == tenant) else {
            return Ok(None);
        };
        let event = deletion.event_for(record);
        record.state = FileState::Deleted;
        let record = record.clone();
        if let Some(event) = event {
            store.1.push((FileEvent::Deleted(event), false));
        }
        Ok(Some(record))
    }
}

/// One relay only, so no leases are needed: `claim` hands out every unsent event.
#[async_trait]
impl Outbox for MapStore {
    async fn claim(&self, limit: usize, _lease: Duration) -> Result<Vec<OutboxEntry>, PortError> {
        let store = lock(&self.0);
        let unsent = store.1.iter().filter(|(_, sent)| !sent);
        Ok(unsent
            .take(limit)
            .map(|(event, _)| OutboxEntry {
                event: event.clone(),
                recorded_at: event.occurred_at(),
            })
            .collect())
    }

    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError> {
        for (event, sent) in &mut lock(&self.0).1 {
            *sent |= event_ids.contains(&event.event_id());
        }
        Ok(())
    }

    async fn release(&self, _event_ids: &[Uuid]) -> Result<(), PortError> {
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        let store = lock(&self.0);
        let unsent: Vec<_> = store.1.iter().filter(|(_, sent)| !sent).collect();
        Ok(OutboxStats {
            depth: unsent.len() as u64,
            oldest: unsent.first().map(|(event, _)| event.occurred_at()),
        })
    }
}

/// Objects by key; `memory://bucket/key` URLs.
#[derive(Default)]
struct MapObjects(Mutex<HashMap<String, ObjectInfo>>);

impl UrlSigner for MapObjects {
    fn bucket(&self) -> &str {
        "embedded"
    }

    fn sign_upload(&self, spec: &UploadSpec) -> Result<PresignedRequest, SignError> {
        let headers = BTreeMap::from([("x-amz-checksum-sha256".to_owned(), spec.sha256.to_base64())]);
        Ok(PresignedRequest {
            method: "PUT",
            url: format!("memory://embedded/{}", spec.key),
            headers,
        })
    }

    fn sign_download(&self, spec: &DownloadSpec) -> Result<PresignedRequest, SignError> {
        Ok(PresignedRequest {
            method: "GET",
            url: format!("memory://embedded/{}", spec.key),
            headers: BTreeMap::new(),
        })
    }
}

#[async_trait]
impl ObjectStore for MapObjects {
    async fn inspect(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, PortError> {
        Ok(lock(&self.0).get(&key.to_string()).cloned())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), PortError> {
        lock(&self.0).remove(&key.to_string());
        Ok(())
    }
}

/// Accepts one token, for one device.
struct OneToken(String, Principal);

#[async_trait]
impl TokenVerifier for OneToken {
    async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        if token == self.0 {
            Ok(self.1.clone())
        } else {
            Err(InvalidToken::Signature.into())
        }
    }
}

/// Hands each event to the service's own consumer.
struct ChannelNotifier(mpsc::UnboundedSender<FileEvent>);

#[async_trait]
impl Notifier for ChannelNotifier {
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError> {
        self.0.send(event.clone()).map_err(PortError::unavailable)
    }
}

/// The service's own metrics: here, a line per count.
struct PrintedMetrics;

impl Metrics for PrintedMetrics {
    fn file_operation(&self, tenant: TenantId, owner: Owner, operation: FileOperation) {
        let device = owner
            .device()
            .map_or_else(|| "tenant root".to_owned(), |d| d.to_string());
        println!("  metric: {} by {device} of tenant {tenant}", operation.label());
    }

    fn cache_call(&self, _operation: CacheOperation, _outcome: CacheOutcome, _elapsed: Duration) {}
}

fn sha256_of(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    Sha256::from_bytes(sha2::Sha256::digest(bytes).into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let device = DeviceId::from_uuid(Uuid::new_v4());
    let objects = Arc::new(MapObjects::default());
    let (events, mut received) = mpsc::unbounded_channel();
    let (service, relay) = FilesService::builder(Ports {
        tokens: Arc::new(OneToken(
            "device-token".to_owned(),
            Principal::Device { tenant, device },
        )),
        store: Arc::new(MapStore::default()),
        signer: objects.clone(),
        objects: objects.clone(),
        notifier: Arc::new(ChannelNotifier(events)),
    })
    .metrics(Arc::new(PrintedMetrics))
    .build();
    let relay = tokio::spawn(relay.run());

    println!("1. the device presents its token");
    let principal = service.authenticate("device-token").await?;
    let scope = Scope {
        tenant,
        owner: Owner::Device(device),
    };

    let content = b"2026-11-30 12:00:00 boot ok\n";
    println!("2. it asks for an upload URL for crash.log ({} bytes)", content.len());
    let ticket = service
        .request_upload(
            &principal,
            scope,
            UploadRequest {
                name: FileName::parse("crash.log")?,
                sha256: sha256_of(content),
                size: content.len() as u64,
                content_type: None,
                expires_in: None,
            },
        )
        .await?;
    println!("   {} {}", ticket.request.method, ticket.request.url);

    println!("3. it PUTs the bytes to the store (here: straight into the map)");
    lock(&objects.0).insert(
        ticket.record.object_key().to_string(),
        ObjectInfo {
            size: content.len() as u64,
            sha256: Some(sha256_of(content)),
            sha256_of_parts: None,
        },
    );

    println!("4. it says the upload is complete; the service checks the object");
    let record = service.complete(&principal, tenant, ticket.record.id).await?;
    println!("   file {} is {}", record.id, record.state.as_str());

    println!("5. the relay publishes the file.uploaded event");
    let event = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await?
        .ok_or("the relay stopped")?;
    println!("{}", serde_json::to_string_pretty(&event)?);

    println!("6. the device deletes it; the relay publishes the file.deleted event");
    service.delete(&principal, tenant, record.id).await?;
    let event = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await?
        .ok_or("the relay stopped")?;
    println!("{}", serde_json::to_string_pretty(&event)?);
    relay.abort();
    Ok(())
}
