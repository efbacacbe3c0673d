//! The notification port: telling interested services that a file was uploaded or deleted.

use async_trait::async_trait;

use super::error::PortError;
use crate::event::FileEvent;

/// Tells interested services that a file was uploaded or deleted.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes one event, with its routing key ([`FileEvent::routing_key`]) where the
    /// transport has one.
    ///
    /// # Errors
    /// [`PortError`] when the event could not be handed over.
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError>;
}
