//! RabbitMQ (AMQP 0-9-1, through lapin): the [`Notifier`] that publishes `file.uploaded`
//! events, and the consumer of the store's bucket notifications.
//!
//! [`AmqpPublisher`] publishes each event to a durable topic exchange (`files.events` by
//! default) with the routing key `file.uploaded.{tenant_id}.{device_id}` (or
//! `file.uploaded.{tenant_id}.tenant`), as a persistent JSON message, and waits for the
//! broker's publisher confirm. It connects on first use, and after any failure it drops its
//! connection, so the next publish connects again: a broker that went away and came back heals
//! without a restart. Delivery is at-least-once (the outbox republishes what was not confirmed):
//! consumers de-duplicate by `event_id`, which is also the message's `message_id`.
//!
//! [`AmqpIngest`] consumes the bucket notifications that MinIO's AMQP target publishes to a
//! queue, hands each body to an [`IngestHandler`] and acknowledges or requeues it as the
//! handler says. It only moves bytes: parsing the notification and recording the upload are
//! the handler's business.
//!
//! A broker that vanishes without closing the connection is noticed by AMQP heartbeats (the
//! broker's interval, 60 s by default; `?heartbeat=10` in the URL asks for less), and by the
//! publisher's timeout.
//!
//! Credentials are never logged: [`AmqpConfig`]'s `Debug` hides the password, and errors from
//! the driver name no URL.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use files_core::{Backoff, FileUploaded, Notifier, PortError};
use futures::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ExchangeKind};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::redact::redact_url;

/// The `app_id` of every message the publisher sends.
pub const APP_ID: &str = "files-service";

/// AMQP `delivery_mode` of a persistent message.
const PERSISTENT: u8 = 2;

/// How many unacknowledged notifications the broker hands the ingest at once.
const INGEST_PREFETCH: u16 = 32;

/// How the adapters reach RabbitMQ.
#[derive(Clone)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (`%2f` for the `/` vhost), or `amqps://`. Holds
    /// a password: a secret, never logged ([`fmt::Debug`] hides it).
    pub url: SecretString,
    /// The durable topic exchange events are published to.
    pub exchange: String,
    /// Bound on each publish (connecting included) and on each connection attempt.
    pub timeout: Duration,
    /// Publish with the `mandatory` flag, so an event that no queue is bound for comes back and
    /// the publish fails. Off by default: an event no one subscribed to is not an error in
    /// publish/subscribe (and the outbox would retry it forever); a broker-side alternate
    /// exchange is the way to keep unroutable events.
    pub mandatory: bool,
}

impl AmqpConfig {
    /// The default exchange.
    pub const DEFAULT_EXCHANGE: &str = "files.events";
    /// The default bound on each call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults for a broker at `url`.
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            exchange: Self::DEFAULT_EXCHANGE.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            mandatory: false,
        }
    }

    /// Checks that the URL is an AMQP URL, without connecting: for start-up, so a wrong value
    /// stops the service instead of failing every publish.
    ///
    /// # Errors
    /// [`InvalidAmqpUrl`] when the URL does not parse as `amqp://` or `amqps://`.
    pub fn validate(&self) -> Result<(), InvalidAmqpUrl> {
        self.uri().map(drop)
    }

    /// The URL with its password replaced by `***`, for logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }

    fn uri(&self) -> Result<AMQPUri, InvalidAmqpUrl> {
        // The parser's message may quote the URL, password included: it is not kept.
        self.url.expose_secret().parse().map_err(|_| InvalidAmqpUrl)
    }
}

impl Default for AmqpConfig {
    /// The defaults for a RabbitMQ on this machine (`amqp://127.0.0.1:5672/%2f`, as guest).
    fn default() -> Self {
        Self::new("amqp://127.0.0.1:5672/%2f")
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("timeout", &self.timeout)
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

/// The URL is not an AMQP URL. Does not quote it: it may hold a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an amqp:// or amqps:// URL")]
pub struct InvalidAmqpUrl;

/// Why talking to the broker failed. Never carries the URL.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Url(#[from] InvalidAmqpUrl),
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ cancelled the consumer")]
    Cancelled,
    #[error("RabbitMQ did not take the event: {0}")]
    Refused(String),
}

impl From<LinkError> for PortError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Url(_) | LinkError::Refused(_) => Self::failed(error),
            LinkError::Timeout(_) | LinkError::Amqp(_) | LinkError::Cancelled => Self::unavailable(error),
        }
    }
}

/// `future`, or [`LinkError::Timeout`] after `limit`.
async fn bounded<T>(limit: Duration, future: impl Future<Output = Result<T, LinkError>>) -> Result<T, LinkError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or(Err(LinkError::Timeout(limit)))
}

/// `future`, or [`LinkError::Timeout`] (of `limit`, the bound the deadline was set by) at
/// `deadline`: for several steps under one bound.
async fn bounded_until<T>(
    deadline: tokio::time::Instant,
    limit: Duration,
    future: impl Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout_at(deadline, future)
        .await
        .unwrap_or(Err(LinkError::Timeout(limit)))
}

/// A new connection, named after its `role` in the broker's management UI.
async fn connect(config: &AmqpConfig, role: &str) -> Result<Connection, LinkError> {
    let uri = config.uri()?;
    let properties = ConnectionProperties::default().with_connection_name(format!("{APP_ID} {role}").into());
    Ok(Connection::connect_uri(uri, properties).await?)
}

/// An open connection and the channel the publisher uses on it.
struct Live {
    /// Kept so the connection is closed when this is dropped (channel clones keep it open
    /// until the publishes using them end).
    connection: Connection,
    channel: Channel,
    /// Which connection this is, so a failed publish drops only the connection it failed on.
    generation: u64,
}

impl Live {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// The publisher's link to the broker: the live connection, if any.
#[derive(Default)]
struct Link {
    live: Option<Live>,
    generations: u64,
}

/// The [`Notifier`] on RabbitMQ: persistent messages on a durable topic exchange, published
/// with publisher confirms.
///
/// Connects lazily (so it is built while the broker is down) and reconnects by itself: after
/// any failed publish its connection is dropped and the next publish opens a new one.
/// Publishes from several tasks share one channel and wait for their confirms concurrently.
pub struct AmqpPublisher {
    config: AmqpConfig,
    link: Mutex<Link>,
}

impl fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpPublisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AmqpPublisher {
    /// A publisher for `config`. Does not connect: the first publish does.
    #[must_use]
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            link: Mutex::new(Link::default()),
        }
    }

    /// The configuration it publishes with.
    #[must_use]
    pub const fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Whether the broker answers: a round trip on the publisher channel (a passive declare of
    /// the exchange), connecting if needed, within the timeout. For readiness reports. The
    /// connection's status alone is not enough: a connection whose socket was closed under it
    /// reads open until its I/O loop notices. A failed round trip drops the connection, so the
    /// next publish or ping reconnects.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the broker cannot be reached in time.
    pub async fn ping(&self) -> Result<(), PortError> {
        let limit = self.config.timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let (channel, generation) = bounded_until(deadline, limit, self.channel()).await?;
        let round_trip = async move {
            channel
                .exchange_declare(
                    self.config.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        passive: true,
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(LinkError::from)
        };
        if let Err(error) = bounded_until(deadline, limit, round_trip).await {
            self.discard(Some(generation), &error).await;
            return Err(error.into());
        }
        Ok(())
    }

    /// The live channel, or a new connection's: in confirm mode, with the exchange declared.
    /// Returns the channel and its connection's generation.
    async fn channel(&self) -> Result<(Channel, u64), LinkError> {
        let mut link = self.link.lock().await;
        if let Some(live) = &link.live {
            if live.is_open() {
                return Ok((live.channel.clone(), live.generation));
            }
            tracing::warn!(exchange = %self.config.exchange, "AMQP publisher connection lost; reconnecting");
            link.live = None;
        }
        let connection = connect(&self.config, "publisher").await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        link.generations += 1;
        let generation = link.generations;
        tracing::info!(exchange = %self.config.exchange, "AMQP publisher connected");
        link.live = Some(Live {
            connection,
            channel: channel.clone(),
            generation,
        });
        Ok((channel, generation))
    }

    /// Drops the connection of `generation` (if it is still the live one: another publish may
    /// have replaced it already) after `error`, so the next publish reconnects. `None` when no
    /// connection was made: there is nothing to drop.
    async fn discard(&self, generation: Option<u64>, error: &LinkError) {
        tracing::warn!(
            exchange = %self.config.exchange,
            error = %error,
            "AMQP call failed; the next publish reconnects"
        );
        let mut link = self.link.lock().await;
        if generation.is_some() && link.live.as_ref().map(|live| live.generation) == generation {
            link.live = None;
        }
    }
}

/// The properties of an event's message.
fn properties(event: &FileUploaded) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
        .with_message_id(event.event_id.to_string().into())
        .with_type(event.event_type.as_str().into())
        .with_app_id(APP_ID.into());
    // AMQP timestamps are unsigned seconds: an instant before 1970 is left out.
    match u64::try_from(event.occurred_at.unix_timestamp()) {
        Ok(seconds) => properties.with_timestamp(seconds),
        Err(_) => properties,
    }
}

#[async_trait]
impl Notifier for AmqpPublisher {
    /// Publishes the event and waits for the broker's confirm, all within the configured
    /// timeout.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the broker cannot be reached, the connection or channel
    /// fails, or nothing is confirmed in time; [`PortError::Failed`] when the broker refuses
    /// the message (a nack, or a return of a `mandatory` message no queue is bound for), or the
    /// URL is not an AMQP URL. After any error the connection is dropped and the next call
    /// reconnects.
    async fn publish(&self, event: &FileUploaded) -> Result<(), PortError> {
        let body = serde_json::to_vec(event).map_err(PortError::failed)?;
        let routing_key = event.routing_key();
        let mut generation = None;
        let attempt = async {
            let (channel, live) = self.channel().await?;
            generation = Some(live);
            let confirm = channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: self.config.mandatory,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    properties(event),
                )
                .await?;
            match confirm.await? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(returned)) => Err(LinkError::Refused(format!(
                    "returned: {} {}",
                    returned.reply_code, returned.reply_text
                ))),
                Confirmation::Nack(_) => Err(LinkError::Refused("nack".to_owned())),
                Confirmation::NotRequested => Err(LinkError::Refused("no confirm (not in confirm mode)".to_owned())),
            }
        };
        let result = bounded(self.config.timeout, attempt).await;
        if let Err(error) = &result {
            self.discard(generation, error).await;
        }
        result.map_err(PortError::from)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = AmqpConfig::new("amqp://files:s3cret@rabbit:5672/%2f");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("amqp://files:***@rabbit:5672/%2f"), "{shown}");
        assert_eq!(redact_url("not a url"), "***");
        assert_eq!(redact_url("amqp://rabbit"), "amqp://rabbit");
    }

    #[test]
    fn validate_refuses_what_is_not_an_amqp_url() {
        assert_eq!(
            AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f").validate(),
            Ok(())
        );
        assert_eq!(AmqpConfig::new("http://example.com").validate(), Err(InvalidAmqpUrl));
        assert_eq!(AmqpConfig::new("nonsense").validate(), Err(InvalidAmqpUrl));
        assert_eq!(AmqpConfig::default().exchange, "files.events");
        assert_eq!(AmqpConfig::default().timeout, Duration::from_secs(5));
    }
}
