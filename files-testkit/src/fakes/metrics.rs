//! The metrics fake, which remembers what it was told.

use std::sync::Mutex;
use std::time::Duration;

use files_core::{
    CacheOperation, CacheOutcome, FileOperation, JanitorAction, Owner, StorageEventOutcome, TenantId, TokenOutcome,
};

use super::lock;

/// One thing a [`RecordingMetrics`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// [`files_core::Metrics::file_operation`].
    FileOperation(TenantId, Owner, FileOperation),
    /// [`files_core::Metrics::token_verification`].
    Token(TokenOutcome),
    /// [`files_core::Metrics::storage_event`].
    StorageEvent(StorageEventOutcome),
    /// [`files_core::Metrics::janitor_action`]: the action and its count.
    Janitor(JanitorAction, u64),
    /// [`files_core::Metrics::cache_call`] (latency left out).
    Cache(CacheOperation, CacheOutcome),
    /// [`files_core::Metrics::outbox_published`].
    Published(u64),
    /// [`files_core::Metrics::outbox_publish_failed`].
    PublishFailed,
    /// [`files_core::Metrics::outbox_state`] (the lag left out).
    OutboxDepth(u64),
}

/// Metrics that remember what they were told, in order.
#[derive(Debug, Default)]
pub struct RecordingMetrics(Mutex<Vec<Recorded>>);

impl RecordingMetrics {
    /// Everything recorded so far.
    #[must_use]
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.0).clone()
    }

    fn push(&self, recorded: Recorded) {
        lock(&self.0).push(recorded);
    }
}

impl files_core::Metrics for RecordingMetrics {
    fn file_operation(&self, tenant: TenantId, owner: Owner, operation: FileOperation) {
        self.push(Recorded::FileOperation(tenant, owner, operation));
    }

    fn token_verification(&self, outcome: TokenOutcome) {
        self.push(Recorded::Token(outcome));
    }

    fn cache_call(&self, operation: CacheOperation, outcome: CacheOutcome, _: Duration) {
        self.push(Recorded::Cache(operation, outcome));
    }

    fn storage_event(&self, outcome: StorageEventOutcome) {
        self.push(Recorded::StorageEvent(outcome));
    }

    fn janitor_action(&self, action: JanitorAction, count: u64) {
        self.push(Recorded::Janitor(action, count));
    }

    fn outbox_published(&self, events: u64) {
        if events > 0 {
            self.push(Recorded::Published(events));
        }
    }

    fn outbox_publish_failed(&self) {
        self.push(Recorded::PublishFailed);
    }

    fn outbox_state(&self, depth: u64, _: f64) {
        self.push(Recorded::OutboxDepth(depth));
    }
}
