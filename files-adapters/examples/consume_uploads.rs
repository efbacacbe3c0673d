//! A consumer of `file.uploaded` and `file.deleted` events, as a subscribing service would
//! write one.
//!
//! ```text
//! cargo run --example consume_uploads -- --tenant UUID [--device UUID | --tenant-root]
//!     [--events all|uploaded|deleted] [--amqp-url URL]
//! ```
//!
//! Declares an exclusive queue (it goes away with the program) bound to the events exchange with
//! `file.{kind}.{tenant}.{device}`, `file.{kind}.{tenant}.tenant` or `file.{kind}.{tenant}.*`,
//! where `{kind}` is `*` (both events), `uploaded` or `deleted`; prints each event as pretty
//! JSON with its routing key and `message_id`, and acknowledges it.
//! A real consumer would bind a durable queue of its own instead, so no event is missed while it
//! is down.

#![allow(clippy::print_stdout)] // printing is what this example is for

use std::collections::HashSet;

use clap::{Parser, ValueEnum};
use files_core::FileEvent;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use uuid::Uuid;

/// Prints the `file.uploaded` and `file.deleted` events of one tenant, one device, or one
/// tenant's root.
#[derive(Debug, Parser)]
struct Args {
    /// The tenant whose files to follow.
    #[arg(long)]
    tenant: Uuid,
    /// Only this device's files.
    #[arg(long, conflicts_with = "tenant_root")]
    device: Option<Uuid>,
    /// Only the files of the tenant root (uploaded by tenant services).
    #[arg(long)]
    tenant_root: bool,
    /// Which events: both, or only uploads or deletions.
    #[arg(long, value_enum, default_value_t = Kinds::All)]
    events: Kinds,
    /// The broker.
    #[arg(
        long,
        env = "FILES_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    amqp_url: String,
    /// The events exchange.
    #[arg(long, default_value = "files.events")]
    exchange: String,
}

/// The events to follow.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kinds {
    /// `file.uploaded` and `file.deleted`.
    All,
    /// `file.uploaded` only.
    Uploaded,
    /// `file.deleted` only.
    Deleted,
}

impl Args {
    /// The binding pattern: `*` matches one word of the routing key (the event's kind, a
    /// device id or `tenant`).
    fn pattern(&self) -> String {
        let kind = match self.events {
            Kinds::All => "*",
            Kinds::Uploaded => "uploaded",
            Kinds::Deleted => "deleted",
        };
        match (self.device, self.tenant_root) {
            (Some(device), _) => format!("file.{kind}.{}.{device}", self.tenant),
            (None, true) => format!("file.{kind}.{}.tenant", self.tenant),
            (None, false) => format!("file.{kind}.{}.*", self.tenant),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let pattern = args.pattern();

    let connection = Connection::connect(
        &args.amqp_url,
        ConnectionProperties::default().with_connection_name("consume_uploads example".into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    // Declaring is idempotent: the same durable topic exchange the service declares.
    channel
        .exchange_declare(
            args.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive().auto_delete(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            args.exchange.as_str().into(),
            pattern.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "consume_uploads".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!("listening on {} for {pattern} (Ctrl-C to stop)", args.exchange);

    // Delivery is at-least-once: an event may come twice (after a crash of the service, or a
    // lost publisher confirm). Consumers de-duplicate by `event_id`. This one remembers the ids
    // it has seen in memory; a real consumer would keep them with the effect it records (for
    // example a unique key in its own database), for longer than a redelivery can take.
    let mut seen: HashSet<Uuid> = HashSet::new();
    loop {
        let delivery = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => break,
            },
        };
        match serde_json::from_slice::<FileEvent>(&delivery.data) {
            Ok(event) if !seen.insert(event.event_id()) => {
                println!("duplicate of event {}, skipped", event.event_id());
            }
            Ok(event) => {
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), ToString::to_string);
                println!("{}", event.event_type());
                println!("routing key: {}", delivery.routing_key);
                println!("message id:  {message_id}");
                match &event {
                    // `integrity` says what the store verified: the whole object's SHA-256 (one
                    // PUT), or each part's and their composite (a multipart upload, `parts`).
                    FileEvent::Uploaded(uploaded) => match &uploaded.file.parts {
                        Some(parts) => println!(
                            "integrity:   parts ({} of {} bytes, composite {})",
                            parts.count, parts.size, parts.sha256_of_parts
                        ),
                        None => println!("integrity:   object (sha256 {})", uploaded.file.sha256),
                    },
                    // A consumer that indexed the file drops it here.
                    FileEvent::Deleted(deleted) => println!("reason:      {}", deleted.reason.as_str()),
                }
                println!("{}", serde_json::to_string_pretty(&event)?);
            }
            // Not ours to fix: print it and move on rather than redeliver it forever.
            Err(error) => println!(
                "not a file event ({error}): {}",
                String::from_utf8_lossy(&delivery.data)
            ),
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    connection.close(200, "bye".into()).await?;
    Ok(())
}
