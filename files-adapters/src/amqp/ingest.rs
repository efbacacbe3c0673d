//! [`AmqpIngest`]: the consumer of the store's bucket notifications.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use files_core::Backoff;
use futures::{FutureExt as _, StreamExt as _};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::link::{APP_ID, AmqpConfig, LinkError, bounded, connect};

/// How many unacknowledged notifications the broker hands the ingest at once.
const INGEST_PREFETCH: u16 = 32;

/// What to do with a notification once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with (recorded, or nothing to do, or never usable): acknowledge it.
    Ack,
    /// Not handled because a dependency is down: give it back to the queue for later.
    Requeue,
}

/// Handles the bodies of bucket notifications that [`AmqpIngest`] receives.
#[async_trait]
pub trait IngestHandler: Send + Sync {
    /// Handles one message body. Infallible by design: a body that can never be handled is
    /// acknowledged (and logged) rather than requeued forever.
    async fn handle(&self, body: &[u8]) -> Disposition;
}

/// Consumes bucket notifications from a durable queue in a background task, for as long as it
/// lives.
///
/// The task connects, declares the queue durable (MinIO's AMQP target publishes to it, through
/// the default exchange with the queue's name as routing key, or through an exchange bound to
/// it), and consumes with manual acknowledgement: each body goes to the [`IngestHandler`] and is
/// acknowledged on [`Disposition::Ack`], or given back on [`Disposition::Requeue`] (after a
/// pause that grows from 100 ms to 10 s while requeues follow each other, so a dependency that
/// is down is not hammered). When the connection is lost it reconnects, after 100 ms doubling
/// to 10 s between attempts. Handling is one message at a time, so the queue keeps the order of
/// a single producer, except for requeued messages.
///
/// Stops when dropped, or by [`AmqpIngest::shutdown`], which also waits for the message being
/// handled and closes the connection (unacknowledged messages go back to the queue).
#[derive(Debug)]
pub struct AmqpIngest {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl AmqpIngest {
    /// Starts consuming `queue` in a task on the current Tokio runtime. Does not wait for the
    /// broker: the task connects, and keeps trying while the broker is unreachable.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    #[must_use]
    pub fn start(config: AmqpConfig, queue: String, handler: Arc<dyn IngestHandler>) -> Self {
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(ingest(config, queue, handler, stopping));
        Self { stop, task: Some(task) }
    }

    /// The same consuming as [`AmqpIngest::start`], as a future for an owner that runs its
    /// tasks itself: it consumes until `stop` completes, then lets the message being handled
    /// finish, closes the connection and returns.
    pub async fn run_until(
        config: AmqpConfig,
        queue: String,
        handler: Arc<dyn IngestHandler>,
        stop: impl Future<Output = ()> + Send,
    ) {
        let (stopping, stopped) = watch::channel(false);
        let consuming = ingest(config, queue, handler, stopped);
        tokio::pin!(consuming);
        tokio::select! {
            () = &mut consuming => {}
            () = stop => {
                stopping.send_replace(true);
                consuming.await;
            }
        }
    }

    /// Stops consuming: lets the message being handled finish, closes the connection, and
    /// waits for the task to end.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(error = %error, "the AMQP ingest task ended abnormally");
        }
    }
}

impl Drop for AmqpIngest {
    fn drop(&mut self) {
        // The task sees it at its next wait and ends there, closing its connection.
        self.stop.send_replace(true);
    }
}

/// Resolves once stopping was asked for (or the [`AmqpIngest`] is gone).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    // An error means the sender is gone: stop as well.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The ingest task: sessions, with a growing pause after each lost one.
async fn ingest(config: AmqpConfig, queue: String, handler: Arc<dyn IngestHandler>, stopping: watch::Receiver<bool>) {
    let mut backoff = Backoff::DEFAULT;
    loop {
        match session(&config, &queue, handler.as_ref(), &stopping, &mut backoff).await {
            Ok(()) => return,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    %queue,
                    error = %error,
                    retry_in = ?delay,
                    "AMQP ingest connection lost or refused; reconnecting"
                );
                tokio::select! {
                    () = stopped(stopping.clone()) => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// A connection and the consumer on it.
async fn open_consumer(config: &AmqpConfig, queue: &str) -> Result<(Connection, Consumer), LinkError> {
    let connection = connect(config, "ingest").await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(INGEST_PREFETCH, BasicQosOptions::default()).await?;
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            format!("{APP_ID}-ingest").into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}

/// One connection's worth of consuming: `Ok` when stopped, `Err` when the link failed.
async fn session(
    config: &AmqpConfig,
    queue: &str,
    handler: &dyn IngestHandler,
    stopping: &watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<(), LinkError> {
    let (connection, mut consumer) = tokio::select! {
        () = stopped(stopping.clone()) => return Ok(()),
        opened = bounded(config.timeout, open_consumer(config, queue)) => opened?,
    };
    backoff.reset();
    tracing::info!(%queue, "AMQP ingest consuming");
    let mut requeues = Backoff::DEFAULT;
    let result = loop {
        let next = tokio::select! {
            biased;
            () = stopped(stopping.clone()) => break Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => break Err(LinkError::from(error)),
            None => break Err(LinkError::Cancelled),
        };
        // A panicking handler is a bug; it must not end the ingest. The message is kept.
        let disposition = AssertUnwindSafe(handler.handle(&delivery.data))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(%queue, "the ingest handler panicked; the notification is requeued");
                Disposition::Requeue
            });
        let settled = match disposition {
            Disposition::Ack => {
                requeues.reset();
                delivery.ack(BasicAckOptions::default()).await
            }
            Disposition::Requeue => {
                tokio::select! {
                    // Unacknowledged, it goes back to the queue when the connection closes.
                    () = stopped(stopping.clone()) => break Ok(()),
                    () = tokio::time::sleep(requeues.next_delay()) => {}
                }
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        };
        if let Err(error) = settled {
            break Err(LinkError::from(error));
        }
    };
    if result.is_ok() {
        // Closed politely, the broker requeues what is unacknowledged at once.
        let closing = async { Ok::<(), LinkError>(connection.close(200, "shutting down".into()).await?) };
        if let Err(error) = bounded(config.timeout, closing).await {
            tracing::debug!(error = %error, "AMQP ingest connection not closed cleanly");
        }
    }
    result
}
