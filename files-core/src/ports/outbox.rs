//! The outbox port: events recorded with the metadata, waiting to be published.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::PortError;
use super::metadata::MetadataStore;
use crate::event::FileEvent;

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The event to publish.
    pub event: FileEvent,
    /// When it was recorded.
    pub recorded_at: OffsetDateTime,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Events not yet published.
    pub depth: u64,
    /// When the oldest of them was recorded.
    pub oldest: Option<OffsetDateTime>,
}

/// The transactional outbox: events recorded by [`MetadataStore::mark_available`] and
/// [`MetadataStore::mark_deleted`], waiting to be published. Safe with several relays on one store: a claimed event is not handed to
/// another claimer until its lease runs out or it is released or marked sent.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` unsent events whose lease is free, oldest first, for `lease`.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxEntry>, PortError>;

    /// Marks events published; they are never handed out again.
    ///
    /// # Errors
    /// [`PortError`] when the database fails (the events will be published again: at least once).
    async fn mark_sent(&self, event_ids: &[Uuid]) -> Result<(), PortError>;

    /// Gives claimed events back before their lease runs out (after a failed publish).
    ///
    /// # Errors
    /// [`PortError`] when the database fails (the lease then runs out by itself).
    async fn release(&self, event_ids: &[Uuid]) -> Result<(), PortError>;

    /// How many events wait, and since when.
    ///
    /// # Errors
    /// [`PortError`] when the database fails.
    async fn stats(&self) -> Result<OutboxStats, PortError>;
}

/// A metadata store whose outbox lives in the same database (so that marking a file available,
/// or deleting an available one, and recording its event are one transaction).
pub trait TransactionalStore: MetadataStore + Outbox {}

impl<T: MetadataStore + Outbox> TransactionalStore for T {}
