//! RabbitMQ (AMQP 0-9-1, through lapin): the [`Notifier`](files_core::Notifier) that publishes
//! `file.uploaded` and `file.deleted` events, and the consumer of the store's bucket
//! notifications.
//!
//! [`AmqpPublisher`] publishes each event to a durable topic exchange (`files.events` by
//! default) with the routing key `{event_type}.{tenant_id}.{device_id}` (or
//! `{event_type}.{tenant_id}.tenant`), as a persistent JSON message, and waits for the
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

mod ingest;
mod link;
mod publisher;

pub use ingest::{AmqpIngest, Disposition, IngestHandler};
pub use link::{APP_ID, AmqpConfig, InvalidAmqpUrl};
pub use publisher::AmqpPublisher;
