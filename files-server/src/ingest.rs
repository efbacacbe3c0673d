//! Store notifications from an AMQP queue (MinIO's AMQP target): the same path as the webhook,
//! `FilesService::ingest_records`.

use files_adapters::amqp::{Disposition, IngestHandler};
use files_core::{FilesService, NotificationRecord};

use crate::notifications;

/// The AMQP ingest's handler: a dependency that is down requeues the message; anything else is
/// acked (a message that can never be handled is counted and dropped, not requeued forever).
#[derive(Debug)]
pub struct QueueIngest {
    /// The service that ingests.
    pub service: FilesService,
}

#[async_trait::async_trait]
impl IngestHandler for QueueIngest {
    async fn handle(&self, body: &[u8]) -> Disposition {
        let records = match notifications::parse(body) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "malformed bucket notification on the ingest queue");
                vec![NotificationRecord::Malformed("not a bucket notification")]
            }
        };
        match self.service.ingest_records(records).await {
            Ok(_) => Disposition::Ack,
            Err(error) => {
                tracing::warn!(%error, "bucket notification requeued");
                Disposition::Requeue
            }
        }
    }
}
