//! A notifier that only logs: the embedded default's, where no broker runs.

use async_trait::async_trait;
use files_core::{FileEvent, Notifier, PortError};

/// Logs every event at info level: its type (`file.uploaded`, `file.deleted`) as the message,
/// with its routing key and body.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError> {
        let body = serde_json::to_string(event).map_err(PortError::failed)?;
        // The message is the event type, as it was when `file.uploaded` was the only one.
        tracing::info!(
            routing_key = %event.routing_key(),
            event_id = %event.event_id(),
            %body,
            "{}",
            event.event_type()
        );
        Ok(())
    }
}
