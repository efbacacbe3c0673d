//! RabbitMQ helpers for integration tests: a queue of one's own bound to the events exchange
//! (to read what the publisher sent), raw publishing (to feed the ingest), and a durable ingest
//! queue of one's own that is deleted when the test ends.
//!
//! Every helper uses its own connection and its own queue, so tests run in parallel on one
//! broker. The events exchange is shared: tests bind with fresh tenant ids.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde::de::DeserializeOwned;

use crate::services;

/// Bound on connecting and on each setup call: a test fails or skips instead of hanging.
const SETUP: Duration = Duration::from_secs(5);

/// `FILES_TEST_AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`.
#[must_use]
pub fn amqp_url() -> String {
    std::env::var("FILES_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// [`amqp_url`] when RabbitMQ accepts an AMQP connection there, else `None` through
/// [`services::unavailable`] (a skip, or a panic under `CI=true`).
pub async fn available(test: &str) -> Option<String> {
    let url = amqp_url();
    match connect(&url).await {
        Ok(connection) => {
            let _ = connection.close(200, "checked".into()).await;
            Some(url)
        }
        Err(error) => services::unavailable(test, "RabbitMQ", &format!("{error:#}")),
    }
}

/// A connection, bounded by [`SETUP`].
async fn connect(url: &str) -> anyhow::Result<Connection> {
    tokio::time::timeout(
        SETUP,
        Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("files-testkit".into()),
        ),
    )
    .await
    .context("no AMQP connection within 5 s")?
    .context("cannot connect to RabbitMQ")
}

/// Declares `exchange` as the durable topic exchange the publisher declares (idempotent).
async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// One message as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The routing key it was published with.
    pub routing_key: String,
    /// The body.
    pub body: Vec<u8>,
    /// `content_type`.
    pub content_type: Option<String>,
    /// `message_id`.
    pub message_id: Option<String>,
    /// `type`.
    pub kind: Option<String>,
    /// `delivery_mode` (2: persistent).
    pub delivery_mode: Option<u8>,
    /// `timestamp`, in Unix seconds.
    pub timestamp: Option<u64>,
    /// `app_id`.
    pub app_id: Option<String>,
}

impl Received {
    /// The body as JSON of type `T`.
    ///
    /// # Errors
    /// When the body is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// An exclusive, auto-delete, server-named queue bound to an exchange with one pattern, and a
/// consumer on it (auto-ack). Goes away with its connection when dropped.
#[derive(Debug)]
pub struct TestQueue {
    name: String,
    consumer: Consumer,
    // Kept open for as long as the queue is read; the queue is exclusive to it.
    _channel: Channel,
    _connection: Connection,
}

impl TestQueue {
    /// Declares `exchange` (durable topic, as the publisher does; idempotent) and a queue bound
    /// to it with `pattern` (such as `file.uploaded.{tenant}.*`), and starts consuming.
    /// `None` through [`services::unavailable`] when RabbitMQ cannot be reached.
    pub async fn bind(url: &str, exchange: &str, pattern: &str) -> Option<Self> {
        match Self::try_bind(url, exchange, pattern).await {
            Ok(queue) => Some(queue),
            Err(error) => services::unavailable("TestQueue::bind", "RabbitMQ", &format!("{error:#}")),
        }
    }

    async fn try_bind(url: &str, exchange: &str, pattern: &str) -> anyhow::Result<Self> {
        let connection = connect(url).await?;
        let setup = async {
            let channel = connection.create_channel().await?;
            declare_exchange(&channel, exchange).await?;
            let queue = channel
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions::exclusive().auto_delete(),
                    FieldTable::default(),
                )
                .await?;
            let name = queue.name().to_string();
            channel
                .queue_bind(
                    name.as_str().into(),
                    exchange.into(),
                    pattern.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let consumer = channel
                .basic_consume(
                    name.as_str().into(),
                    "files-testkit".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((name, channel, consumer))
        };
        let (name, channel, consumer) = tokio::time::timeout(SETUP, setup)
            .await
            .context("queue setup timed out")??;
        Ok(Self {
            name,
            consumer,
            _channel: channel,
            _connection: connection,
        })
    }

    /// The queue's (server-chosen) name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message, or `None` when none comes within `deadline` (or the consumer fails).
    pub async fn next(&mut self, deadline: Duration) -> Option<Received> {
        let delivery = tokio::time::timeout(deadline, self.consumer.next()).await.ok()??.ok()?;
        let properties = &delivery.properties;
        let text = |value: &Option<lapin::types::ShortString>| value.as_ref().map(ToString::to_string);
        Some(Received {
            routing_key: delivery.routing_key.to_string(),
            body: delivery.data.clone(),
            content_type: text(properties.content_type()),
            message_id: text(properties.message_id()),
            kind: text(properties.kind()),
            delivery_mode: *properties.delivery_mode(),
            timestamp: *properties.timestamp(),
            app_id: text(properties.app_id()),
        })
    }

    /// Up to `n` messages, as many as arrive within `deadline` in all.
    pub async fn collect(&mut self, n: usize, deadline: Duration) -> Vec<Received> {
        let until = tokio::time::Instant::now() + deadline;
        let mut received = Vec::with_capacity(n);
        while received.len() < n {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(message) => received.push(message),
                None => break,
            }
        }
        received
    }
}

/// Publishes `body` to `exchange` with `routing_key` and waits for the broker's confirm. To
/// put it straight into a queue, give the default exchange `""` and the queue's name.
///
/// # Errors
/// When RabbitMQ cannot be reached in time or does not confirm the message.
pub async fn publish_raw(url: &str, exchange: &str, routing_key: &str, body: &[u8]) -> anyhow::Result<()> {
    let connection = connect(url).await?;
    let publish = async {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await?
            .await
    };
    let confirmation = tokio::time::timeout(SETUP, publish)
        .await
        .context("publish timed out")??;
    let _ = connection.close(200, "published".into()).await;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        other => anyhow::bail!("the broker did not take the message: {other:?}"),
    }
}

/// A durable queue of the ingest tests' own, `files-ingest-test-<uuid>`, declared as
/// `AmqpIngest` declares it, and deleted when dropped.
#[derive(Debug)]
pub struct TestIngestQueue {
    url: String,
    name: String,
}

impl TestIngestQueue {
    /// Declares a fresh queue. `None` through [`services::unavailable`] when RabbitMQ cannot be
    /// reached.
    pub async fn create(url: &str) -> Option<Self> {
        let name = format!("files-ingest-test-{}", uuid::Uuid::new_v4());
        let queue = Self {
            url: url.to_owned(),
            name,
        };
        match queue.declare(false).await {
            Ok(_) => Some(queue),
            Err(error) => services::unavailable("TestIngestQueue::create", "RabbitMQ", &format!("{error:#}")),
        }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Puts `body` into the queue (through the default exchange), confirmed.
    ///
    /// # Errors
    /// As [`publish_raw`].
    pub async fn publish(&self, body: &[u8]) -> anyhow::Result<()> {
        publish_raw(&self.url, "", &self.name, body).await
    }

    /// How many messages are ready in the queue (not counting those delivered and not yet
    /// acknowledged).
    ///
    /// # Errors
    /// When RabbitMQ cannot be reached or the queue does not exist.
    pub async fn ready(&self) -> anyhow::Result<u32> {
        self.declare(true).await
    }

    /// Whether the queue exists.
    ///
    /// # Errors
    /// When RabbitMQ cannot be reached.
    pub async fn exists(url: &str, name: &str) -> anyhow::Result<bool> {
        let connection = connect(url).await?;
        let channel = connection.create_channel().await?;
        let found = channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await;
        match found {
            Ok(_) => {
                let _ = connection.close(200, "checked".into()).await;
                Ok(true)
            }
            // 404 NOT_FOUND closes the channel: the queue is not there.
            Err(error) if error.is_amqp_soft_error() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Declares the queue durable (or checks it, `passive`) and returns its ready count.
    async fn declare(&self, passive: bool) -> anyhow::Result<u32> {
        let connection = connect(&self.url).await?;
        let options = if passive {
            QueueDeclareOptions::durable().passive()
        } else {
            QueueDeclareOptions::durable()
        };
        let declare = async {
            let channel = connection.create_channel().await?;
            channel
                .queue_declare(self.name.as_str().into(), options, FieldTable::default())
                .await
        };
        let queue = tokio::time::timeout(SETUP, declare)
            .await
            .context("queue declare timed out")??;
        let _ = connection.close(200, "declared".into()).await;
        Ok(queue.message_count())
    }
}

impl Drop for TestIngestQueue {
    /// Deletes the queue, on a thread of its own (a drop cannot await). Failures are printed,
    /// not raised: a test's cleanup must not hide its result.
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let connection = connect(&url).await?;
                let channel = connection.create_channel().await?;
                channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await?;
                let _ = connection.close(200, "deleted".into()).await;
                anyhow::Ok(())
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not delete the test queue {}: {error:#}", self.name),
            Err(_) => eprintln!("deleting the test queue {} panicked", self.name),
        }
    }
}
