//! The outbox relay: claims recorded events, publishes them, marks them sent.
//!
//! One pass is [`relay_once`]; the server runs it in a loop with back-off. Several relays may
//! share one outbox: claims are leased, so each event is handed to one relay at a time, and an
//! event whose relay died is handed out again when its lease runs out (at-least-once).

use std::time::Duration;

use uuid::Uuid;

use crate::ports::{Notifier, Outbox, PortError, error_chain};

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Events claimed.
    pub claimed: usize,
    /// Events published and marked sent.
    pub published: usize,
    /// The publish error that stopped the pass early, if any (the rest were released).
    pub publish_error: Option<String>,
}

/// Claims up to `limit` events for `lease`, publishes them in order, marks the published ones
/// sent and releases the rest after the first failed publish (the broker is likely down: the
/// next pass retries them, in order).
///
/// # Errors
/// [`PortError`] when the outbox itself fails (claiming or marking).
pub async fn relay_once(
    outbox: &dyn Outbox,
    notifier: &dyn Notifier,
    limit: usize,
    lease: Duration,
) -> Result<RelayPass, PortError> {
    let entries = outbox.claim(limit, lease).await?;
    let mut pass = RelayPass {
        claimed: entries.len(),
        ..RelayPass::default()
    };
    let mut sent: Vec<Uuid> = Vec::with_capacity(entries.len());
    let mut unsent: Vec<Uuid> = Vec::new();
    for entry in &entries {
        if pass.publish_error.is_some() {
            unsent.push(entry.event.event_id);
            continue;
        }
        match notifier.publish(&entry.event).await {
            Ok(()) => sent.push(entry.event.event_id),
            Err(error) => {
                pass.publish_error = Some(error_chain(&error));
                unsent.push(entry.event.event_id);
            }
        }
    }
    if !sent.is_empty() {
        outbox.mark_sent(&sent).await?;
    }
    pass.published = sent.len();
    if !unsent.is_empty()
        && let Err(error) = outbox.release(&unsent).await
    {
        // Not fatal: the leases run out by themselves.
        tracing::warn!(error = %error_chain(&error), "could not release unpublished events");
    }
    Ok(pass)
}
