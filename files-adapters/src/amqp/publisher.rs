//! [`AmqpPublisher`]: the [`Notifier`] on RabbitMQ.

use std::fmt;

use async_trait::async_trait;
use files_core::{FileEvent, Notifier, PortError};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use tokio::sync::Mutex;

use super::link::{APP_ID, AmqpConfig, LinkError, bounded, bounded_until, connect};

/// AMQP `delivery_mode` of a persistent message.
const PERSISTENT: u8 = 2;

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
fn properties(event: &FileEvent) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
        .with_message_id(event.event_id().to_string().into())
        .with_type(event.event_type().into())
        .with_app_id(APP_ID.into());
    // AMQP timestamps are unsigned seconds: an instant before 1970 is left out.
    match u64::try_from(event.occurred_at().unix_timestamp()) {
        Ok(seconds) => properties.with_timestamp(seconds),
        Err(_) => properties,
    }
}

#[async_trait]
impl Notifier for AmqpPublisher {
    /// Publishes the event with its routing key (`file.uploaded.…` or `file.deleted.…`) and
    /// waits for the broker's confirm, all within the configured timeout.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the broker cannot be reached, the connection or channel
    /// fails, or nothing is confirmed in time; [`PortError::Failed`] when the broker refuses
    /// the message (a nack, or a return of a `mandatory` message no queue is bound for), or the
    /// URL is not an AMQP URL. After any error the connection is dropped and the next call
    /// reconnects.
    async fn publish(&self, event: &FileEvent) -> Result<(), PortError> {
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
