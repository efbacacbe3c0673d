//! The events the metadata rules find recorded in the outbox for their own files, looked at
//! without taking them from anyone: what is claimed to look is given back at once.

use std::collections::HashSet;

use files_core::{FileEvent, FileId, TransactionalStore};
use uuid::Uuid;

use super::fixtures::ok;

/// How long the outbox checks keep looking for an event another claimer may hold for a moment.
const OUTBOX_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
/// The lease the outbox checks take (they give it back at once).
const LOOK_LEASE: std::time::Duration = std::time::Duration::from_secs(30);
/// How many events the outbox checks claim at a time.
const LOOK_BATCH: usize = 500;

/// Every event waiting in the outbox for one of `files`, in recording order: claims all that
/// can be claimed, keeps those, and releases everything it claimed. Looks again for a while
/// until it finds at least `expected` (another claimer may hold some for a moment).
pub(super) async fn recorded_events(
    store: &dyn TransactionalStore,
    rule: &str,
    files: &[FileId],
    expected: usize,
) -> Vec<FileEvent> {
    let files: HashSet<FileId> = files.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + OUTBOX_PATIENCE;
    loop {
        let mut claimed = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let batch = ok(rule, store.claim(LOOK_BATCH, LOOK_LEASE).await);
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                let id = entry.event.event_id();
                // Also what stops the loop when leases do not hold.
                assert!(seen.insert(id), "{rule}: event {id} was claimed again while leased");
                claimed.push(entry);
            }
        }
        let ids: Vec<Uuid> = claimed.iter().map(|e| e.event.event_id()).collect();
        ok(rule, store.release(&ids).await);
        let found: Vec<FileEvent> = claimed
            .into_iter()
            .map(|e| e.event)
            .filter(|e| files.contains(&e.file().file_id))
            .collect();
        if found.len() >= expected || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
