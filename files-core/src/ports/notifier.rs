//! The notification port: telling interested services that an upload landed.

use async_trait::async_trait;

use super::error::PortError;
use crate::event::FileUploaded;

/// Tells interested services that an upload landed.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes one event.
    ///
    /// # Errors
    /// [`PortError`] when the event could not be handed over.
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError>;
}
