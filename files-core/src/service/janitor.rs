//! The janitor: what nobody finished is made good or cleared away.
//!
//! Every instance runs one ([`Janitor::run_until`]); several at once are safe because the
//! records are claimed with leases ([`Housekeeping::claim_stale`]) and a file becomes available
//! through the one conditional transition of [`crate::MetadataStore::mark_available`]. A pass
//! ([`Janitor::pass`]) does a bounded amount of work (`batch` records, `batch` outbox rows), so a
//! backlog drains over several passes without a long transaction or a burst of store calls:
//!
//! 1. Pending uploads whose URL (or multipart upload) expired more than `grace` ago are
//!    checked against the store, as `complete` does: an object that verifies makes the file
//!    available and records its event (a lost bucket notification, or a device that never
//!    called `complete`); otherwise the record becomes `expired` first (a conditional change:
//!    a device's `complete` racing it either wins or is told the upload expired), and only
//!    then is the multipart upload aborted and any object deleted.
//! 2. Deleted and expired records whose upload URL was still usable at the change get their
//!    object deleted (again) once that URL expired (and `grace` passed): a late PUT, or a
//!    clean-up that failed, leaves nothing behind.
//! 3. Available device-root files past their tenant's `retention_secs` (counted from their
//!    completion; [`Housekeeping::claim_retained`]) are deleted: the object first, then the
//!    record, which records its `file.deleted` event (reason `retention`) in the same
//!    transaction. A failure in between leaves the record available, claimed again once its
//!    lease runs out; an object already gone is no error. Tenant-root files are kept.
//! 4. Sent outbox rows older than `outbox_retention` are removed.
//!
//! Each record's outcome is a [`JanitorAction`], logged and counted
//! ([`Metrics::janitor_action`]). Completing, expiring and clearing go through the completion
//! module, whose rule (state first, store second) it follows. It runs in the core's one
//! background loop, which waits through the [`Clock`] port, so tests drive it with a fake clock
//! and never sleep.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::completion::Finished;
use super::errors::CompleteError;
use super::files_service::FilesService;
use crate::background::{self, Next, Work};
use crate::event::{Deletion, DeletionReason};
use crate::file::{FileRecord, FileState};
use crate::metrics::{JanitorAction, Metrics};
use crate::ports::{Clock, Housekeeping, PortError, error_chain};

/// How often and how much the janitor works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JanitorSettings {
    /// Between passes (`FILES_JANITOR_INTERVAL_SECS`, default 60 s). A full batch is followed
    /// by the next pass at once.
    pub interval: Duration,
    /// How long after an upload URL expired the janitor leaves it alone
    /// (`FILES_UPLOAD_GRACE_SECS`, default 600 s): a PUT that started just before expiry, or a
    /// bucket notification on its way, gets there first.
    pub grace: Duration,
    /// How long sent outbox rows are kept (`FILES_OUTBOX_RETENTION_SECS`, default 7 days).
    pub outbox_retention: Duration,
    /// Records per claim (stale uploads, then files past retention) and outbox rows per pass
    /// (`FILES_JANITOR_BATCH`, default 100).
    pub batch: usize,
    /// How long a claimed record is left to this janitor before another may take it.
    pub lease: Duration,
}

impl Default for JanitorSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            grace: Duration::from_secs(600),
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
            batch: 100,
            lease: Duration::from_secs(300),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JanitorPass {
    /// Records claimed (stale uploads and files past retention).
    pub claimed: usize,
    /// Pending uploads found complete in the store and made available (one event each).
    pub completed: usize,
    /// Pending uploads expired (then their multipart upload aborted and object deleted).
    pub expired: usize,
    /// Deleted or expired records whose upload's leftovers (a late object, parts) were cleared.
    pub swept: usize,
    /// Files past their tenant's retention deleted (object and record, one event each).
    pub retained: usize,
    /// Records another call settled between the claim and this pass's look at them (a device's
    /// `complete`, a bucket notification): nothing to do, not counted as an action.
    pub skipped: usize,
    /// Records left for a later pass because a dependency failed.
    pub failed: usize,
    /// Sent outbox rows removed.
    pub pruned: u64,
}

/// The janitor of one instance: built by [`FilesService::janitor`].
pub struct Janitor {
    service: FilesService,
    store: Arc<dyn Housekeeping>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    settings: JanitorSettings,
}

impl std::fmt::Debug for Janitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Janitor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn log(record: &FileRecord, action: JanitorAction) {
    tracing::info!(
        tenant_id = %record.tenant, device_id = ?record.owner.device(), file_id = %record.id,
        action = action.label(), "janitor"
    );
}

impl FilesService {
    /// The janitor of this service, over `store` (the same database as the service's metadata).
    #[must_use]
    pub fn janitor(&self, store: Arc<dyn Housekeeping>, settings: JanitorSettings) -> Janitor {
        Janitor {
            service: self.clone(),
            store,
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            settings,
        }
    }
}

impl Janitor {
    /// The settings in force.
    #[must_use]
    pub const fn settings(&self) -> &JanitorSettings {
        &self.settings
    }

    /// One pass: claims up to `batch` records whose time is up and deals with each, then up to
    /// `batch` files past their tenant's retention and deletes each, prunes up to `batch` sent
    /// outbox rows, and reports how many uploads are pending.
    ///
    /// # Errors
    /// [`PortError`] when the database fails before anything could be claimed; a failure on
    /// one record only leaves it for a later pass.
    pub async fn pass(&self) -> Result<JanitorPass, PortError> {
        let now = self.clock.now();
        let cutoff = now - self.settings.grace;
        let records = self
            .store
            .claim_stale(cutoff, self.settings.batch, self.settings.lease)
            .await?;
        let mut pass = JanitorPass {
            claimed: records.len(),
            ..JanitorPass::default()
        };
        for record in records {
            let actions: &[JanitorAction] = match record.state {
                FileState::Pending => self.settle(record).await,
                // Deleted, or expired: whatever the upload left in the store goes.
                FileState::Deleted | FileState::Expired => self.sweep(record).await,
                // Completed meanwhile: nothing to do.
                FileState::Available => continue,
            };
            for &action in actions {
                match action {
                    JanitorAction::Completed => pass.completed += 1,
                    JanitorAction::Expired => pass.expired += 1,
                    JanitorAction::Swept => pass.swept += 1,
                    JanitorAction::Failed => pass.failed += 1,
                    // Not what a record's settling or sweeping answers.
                    JanitorAction::OutboxPruned | JanitorAction::OrphanDeleted | JanitorAction::Retained => {}
                    // Settled by another call since the claim: nothing done, nothing counted.
                    JanitorAction::Skipped => {
                        pass.skipped += 1;
                        continue;
                    }
                }
                self.metrics.janitor_action(action, 1);
            }
        }
        self.retain(now, &mut pass).await;
        let before = now - self.settings.outbox_retention;
        match self.store.prune_sent(before, self.settings.batch).await {
            Ok(pruned) => {
                pass.pruned = pruned;
                if pruned > 0 {
                    tracing::info!(pruned, "janitor: sent outbox rows removed");
                    self.metrics.janitor_action(JanitorAction::OutboxPruned, pruned);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "janitor: pruning the outbox failed");
                self.metrics.janitor_action(JanitorAction::Failed, 1);
            }
        }
        match self.store.count_pending().await {
            Ok(pending) => self.metrics.pending_uploads(pending),
            Err(error) => tracing::warn!(error = %error_chain(&error), "janitor: counting pending uploads failed"),
        }
        Ok(pass)
    }

    /// Claims up to `batch` files past their tenant's retention and deletes each. A failed
    /// claim is logged and counted; the rest of the pass goes on.
    async fn retain(&self, now: time::OffsetDateTime, pass: &mut JanitorPass) {
        let records = match self
            .store
            .claim_retained(now, self.settings.batch, self.settings.lease)
            .await
        {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "janitor: claiming files past retention failed");
                self.metrics.janitor_action(JanitorAction::Failed, 1);
                pass.failed += 1;
                return;
            }
        };
        pass.claimed += records.len();
        for record in records {
            let action = self.delete_retained(&record).await;
            match action {
                JanitorAction::Retained => pass.retained += 1,
                JanitorAction::Skipped => {
                    pass.skipped += 1;
                    continue;
                }
                _ => pass.failed += 1,
            }
            self.metrics.janitor_action(action, 1);
        }
    }

    /// A file past its tenant's retention: its object is deleted first, then its record (an
    /// object already gone is no error). Should the record's change fail, the file stays
    /// available without its object until a later pass claims it again (once the lease ran
    /// out) and finishes; the other order could leave an object no record points to.
    ///
    /// The record changes through the service's metadata store (the write-through cache), so
    /// no instance keeps serving a cached copy of the deleted file.
    async fn delete_retained(&self, record: &FileRecord) -> JanitorAction {
        if let Err(error) = self.service.objects.delete(&record.object_key()).await {
            tracing::warn!(
                tenant_id = %record.tenant, file_id = %record.id, error = %error_chain(&error),
                "janitor: cannot delete the object of a file past retention; will retry"
            );
            return JanitorAction::Failed;
        }
        let deletion = Deletion::new(DeletionReason::Retention, self.clock.now(), self.service.bucket());
        match self
            .service
            .metadata
            .mark_deleted(record.tenant, record.id, &deletion)
            .await
        {
            Ok(Some(_)) => {
                log(record, JanitorAction::Retained);
                JanitorAction::Retained
            }
            // Gone since the claim: nothing left to do.
            Ok(None) => JanitorAction::Skipped,
            Err(error) => {
                tracing::warn!(
                    tenant_id = %record.tenant, file_id = %record.id, error = %error_chain(&error),
                    "janitor: cannot delete the record of a file past retention; will retry"
                );
                JanitorAction::Failed
            }
        }
    }

    /// A pending upload past its time: completed if the store holds what was declared, else
    /// expired with nothing left in the store.
    ///
    /// State first, store second: the record leaves `pending` (a conditional change that only
    /// one actor can win) before anything in the store is touched. A device that completes in
    /// between either won, and the janitor leaves the file alone, or finds the upload expired;
    /// then an object its late completion made is deleted by the clean-up that follows (an
    /// upload the store no longer knows is no error there), so nothing is left either way.
    async fn settle(&self, record: FileRecord) -> &'static [JanitorAction] {
        match self.service.finish(record.clone()).await {
            Ok(Finished::Completed(_)) => {
                log(&record, JanitorAction::Completed);
                return &[JanitorAction::Completed];
            }
            // Completed, expired or deleted by another call since the claim: not this pass's work.
            Ok(Finished::AlreadyAvailable(_)) | Err(CompleteError::NotFound) => return &[JanitorAction::Skipped],
            Err(CompleteError::Dependency(error)) => {
                tracing::warn!(
                    tenant_id = %record.tenant, file_id = %record.id, error = %error_chain(&error),
                    "janitor: cannot check the upload; will retry"
                );
                return &[JanitorAction::Failed];
            }
            Err(_) => {}
        }
        let expired = match self.service.metadata.mark_expired(record.tenant, record.id).await {
            Ok(Some(expired)) => expired,
            // No longer pending: a device's `complete` or a notification won the race.
            Ok(None) => return &[JanitorAction::Skipped],
            Err(error) => {
                tracing::warn!(
                    tenant_id = %record.tenant, file_id = %record.id, error = %error_chain(&error),
                    "janitor: cannot mark the upload expired; will retry"
                );
                return &[JanitorAction::Failed];
            }
        };
        log(&expired, JanitorAction::Expired);
        if self.clear(&expired).await {
            &[JanitorAction::Expired]
        } else {
            // Expired, its upload not yet cleared: a later pass sweeps it.
            &[JanitorAction::Expired, JanitorAction::Failed]
        }
    }

    /// A deleted or expired record whose upload URL has expired: whatever its upload left in
    /// the store (a late PUT, parts, an object completed by a call that lost the race) is
    /// deleted.
    async fn sweep(&self, record: FileRecord) -> &'static [JanitorAction] {
        if self.clear(&record).await {
            log(&record, JanitorAction::Swept);
            &[JanitorAction::Swept]
        } else {
            &[JanitorAction::Failed]
        }
    }

    /// Clears the store of a record that no longer needs it and marks it swept; whether it
    /// could. A failure is logged and leaves the record to a later pass.
    async fn clear(&self, record: &FileRecord) -> bool {
        let cleared = match self.service.clear_store(record).await {
            Ok(()) => self.store.mark_swept(record.tenant, record.id).await,
            Err(error) => Err(error),
        };
        if let Err(error) = cleared {
            tracing::warn!(
                tenant_id = %record.tenant, file_id = %record.id, error = %error_chain(&error),
                "janitor: cannot clear what the upload left in the store; will retry"
            );
            return false;
        }
        true
    }

    /// Works until `stop` completes (or the future is dropped): a pass every `interval`, the
    /// next at once after a full batch. A pass under way when `stop` completes is finished.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let clock = self.clock.clone();
        background::run_until(&*clock, stop, self).await;
    }
}

impl Work for Janitor {
    async fn pass(&mut self) -> Next {
        let busy = match Self::pass(self).await {
            Ok(pass) => pass.claimed >= self.settings.batch,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "janitor: the database is unavailable; will retry");
                self.metrics.janitor_action(JanitorAction::Failed, 1);
                false
            }
        };
        Next::unless_busy(busy, self.settings.interval)
    }
}
