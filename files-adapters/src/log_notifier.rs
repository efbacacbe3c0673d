//! A notifier that only logs: the embedded default's, where no broker runs.

use async_trait::async_trait;
use files_core::{FileUploaded, Notifier, PortError};

/// Logs every `file.uploaded` event at info level, with its routing key and body.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError> {
        let body = serde_json::to_string(event).map_err(PortError::failed)?;
        tracing::info!(routing_key = %event.routing_key(), event_id = %event.event_id, %body, "file.uploaded");
        Ok(())
    }
}
