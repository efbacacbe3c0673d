//! A consumer of `file.uploaded` events, as a subscribing service would write one.
//!
//! ```text
//! cargo run --example consume_uploads -- --tenant UUID [--device UUID | --tenant-root] [--amqp-url URL]
//! ```
//!
//! Declares an exclusive queue (it goes away with the program) bound to the events exchange with
//! `file.uploaded.{tenant}.{device}`, `file.uploaded.{tenant}.tenant` or `file.uploaded.{tenant}.*`,
//! prints each event as pretty JSON with its routing key and `message_id`, and acknowledges it.
//! A real consumer would bind a durable queue of its own instead, so no event is missed while it
//! is down.

#![allow(clippy::print_stdout)] // printing is what this example is for

use std::collections::HashSet;

use clap::Parser;
use files_core::FileUploaded;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use uuid::Uuid;

/// Prints the `file.uploaded` events of one tenant, one device, or one tenant's root.
#[derive(Debug, Parser)]
struct Args {
    /// The tenant whose uploads to follow.
    #[arg(long)]
    tenant: Uuid,
    /// Only this device's uploads.
    #[arg(long, conflicts_with = "tenant_root")]
    device: Option<Uuid>,
    /// Only the files of the tenant root (uploaded by tenant services).
    #[arg(long)]
    tenant_root: bool,
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

impl Args {
    /// The binding pattern: `*` matches one word of the routing key, a device id or `tenant`.
    fn pattern(&self) -> String {
        match (self.device, self.tenant_root) {
            (Some(device), _) => format!("file.uploaded.{}.{device}", self.tenant),
            (None, true) => format!("file.uploaded.{}.tenant", self.tenant),
            (None, false) => format!("file.uploaded.{}.*", self.tenant),
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
        match serde_json::from_slice::<FileUploaded>(&delivery.data) {
            Ok(event) if !seen.insert(event.event_id) => {
                println!("duplicate of event {}, skipped", event.event_id);
            }
            Ok(event) => {
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), ToString::to_string);
                println!("routing key: {}", delivery.routing_key);
                println!("message id:  {message_id}");
                // `integrity` says what the store verified: the whole object's SHA-256 (one PUT),
                // or each part's and their composite (a multipart upload, `parts`).
                match &event.file.parts {
                    Some(parts) => println!(
                        "integrity:   parts ({} of {} bytes, composite {})",
                        parts.count, parts.size, parts.sha256_of_parts
                    ),
                    None => println!("integrity:   object (sha256 {})", event.file.sha256),
                }
                println!("{}", serde_json::to_string_pretty(&event)?);
            }
            // Not ours to fix: print it and move on rather than redeliver it forever.
            Err(error) => println!(
                "not a file.uploaded event ({error}): {}",
                String::from_utf8_lossy(&delivery.data)
            ),
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    connection.close(200, "bye".into()).await?;
    Ok(())
}
