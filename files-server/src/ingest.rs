//! Store notifications in: the records of one notification (from the webhook or the AMQP
//! queue) go through `FilesService::ingest`, one by one, counted by outcome.

use files_adapters::prometheus::Metrics;
use files_adapters::s3_events::EventRecord;
use files_core::{FilesService, IngestOutcome, Unavailable};

/// How many records of a notification completed a file, and how many were skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Files that became available.
    pub completed: u32,
    /// Records that changed nothing (duplicates, foreign or malformed records, other events).
    pub skipped: u32,
}

/// Ingests every record; a malformed or foreign record is skipped and counted, never an error.
///
/// # Errors
/// [`Unavailable`] when a dependency is down: the store (or the queue) should deliver again.
pub async fn ingest_records(
    service: &FilesService,
    metrics: &Metrics,
    records: Vec<EventRecord>,
) -> Result<Ingested, Unavailable> {
    let mut ingested = Ingested::default();
    for record in records {
        let outcome = match record {
            EventRecord::Created(created) => {
                let outcome = service.ingest(&created).await?;
                if let IngestOutcome::Skipped(reason) = outcome {
                    tracing::info!(reason = reason.label(), key = %created.key, "storage event skipped");
                }
                outcome.label()
            }
            EventRecord::Ignored => "ignored",
            EventRecord::Malformed(why) => {
                tracing::warn!(why, "malformed storage event record");
                "malformed"
            }
        };
        metrics.storage_event(outcome);
        if outcome == "completed" {
            ingested.completed += 1;
        } else {
            ingested.skipped += 1;
        }
    }
    Ok(ingested)
}

/// The store's bucket notifications from an AMQP queue (MinIO's AMQP target): the same path
/// as the webhook. A dependency that is down requeues the message; anything else is acked.
pub struct QueueIngest {
    /// The service that ingests.
    pub service: FilesService,
    /// Where outcomes are counted.
    pub metrics: std::sync::Arc<Metrics>,
}

impl std::fmt::Debug for QueueIngest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueIngest").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl files_adapters::amqp::IngestHandler for QueueIngest {
    async fn handle(&self, body: &[u8]) -> files_adapters::amqp::Disposition {
        use files_adapters::amqp::Disposition;
        let records = match files_adapters::s3_events::parse(body) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "malformed bucket notification on the ingest queue");
                self.metrics.storage_event("malformed");
                return Disposition::Ack;
            }
        };
        match ingest_records(&self.service, &self.metrics, records).await {
            Ok(_) => Disposition::Ack,
            Err(error) => {
                tracing::warn!(%error, "bucket notification requeued");
                Disposition::Requeue
            }
        }
    }
}
