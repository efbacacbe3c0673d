//! The outbox relay: claims recorded events, publishes them, marks them sent.
//!
//! One pass is [`relay_once`]; [`Relay::run`] runs passes in a loop with back-off. Several
//! relays may share one outbox: claims are leased, so each event is handed to one relay at a time, and an
//! event whose relay died is handed out again when its lease runs out (at-least-once).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::background::{self, Next, Work};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::ports::{Clock, Notifier, Outbox, PortError, error_chain};

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
            unsent.push(entry.event.event_id());
            continue;
        }
        match notifier.publish(&entry.event).await {
            Ok(()) => sent.push(entry.event.event_id()),
            Err(error) => {
                pass.publish_error = Some(error_chain(&error));
                unsent.push(entry.event.event_id());
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

/// How the relay paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Events claimed per pass.
    pub batch: usize,
    /// How long a claim is held before another relay may take the events.
    pub lease: Duration,
    /// Pause between passes when the outbox is empty.
    pub idle: Duration,
    /// Retry pacing while the broker or the outbox is down.
    pub backoff: Backoff,
    /// How often the outbox depth and lag are measured while idle.
    pub stats_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            idle: Duration::from_millis(200),
            backoff: Backoff::DEFAULT,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// The outbox relay: publishes recorded events (`file.uploaded` and `file.deleted`), in order, with back-off while
/// the broker (or the outbox) is down. Built with its service by
/// [`crate::FilesService::builder`]; run it on a task with [`Relay::run`]. Several instances may
/// relay one outbox: its leases keep them from publishing the same event at once.
pub struct Relay {
    pub(crate) outbox: Arc<dyn Outbox>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<dyn Metrics>,
    pub(crate) settings: RelaySettings,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// One pass: see [`relay_once`]; counts what was published.
    ///
    /// # Errors
    /// [`PortError`] when the outbox itself fails.
    pub async fn pass(&self) -> Result<RelayPass, PortError> {
        let pass = relay_once(&*self.outbox, &*self.notifier, self.settings.batch, self.settings.lease).await?;
        self.metrics.outbox_published(pass.published as u64);
        if pass.publish_error.is_some() {
            self.metrics.outbox_publish_failed();
        }
        Ok(pass)
    }

    /// Relays until the future is dropped: see [`Relay::run_until`], with no stop signal.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await;
    }

    /// Relays until `stop` completes (or the future is dropped): passes back to back while
    /// events wait, a pause of `idle` when the outbox is empty, back-off after failures. Depth
    /// and lag are measured after every busy pass and at most once per `stats_interval` while
    /// idle, so an idle relay costs about one query a pass.
    ///
    /// A pass under way when `stop` completes is finished first, so every event it claimed is
    /// marked sent or released: a relay stopped this way leaves no claim behind. (Dropping the
    /// future mid-pass leaves the claim to run out with its lease.)
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let clock = self.clock.clone();
        let running = Running {
            backoff: self.settings.backoff,
            last_stats: None,
            relay: self,
        };
        background::run_until(&*clock, stop, running).await;
    }

    async fn report_stats(&self, now: OffsetDateTime) {
        if let Ok(stats) = self.outbox.stats().await {
            let lag = stats
                .oldest
                .map_or(0.0, |oldest| (now - oldest).as_seconds_f64().max(0.0));
            self.metrics.outbox_state(stats.depth, lag);
        }
    }
}

/// A running relay: its pass and the pace it keeps between passes.
struct Running {
    relay: Relay,
    backoff: Backoff,
    /// When the outbox depth and lag were last measured.
    last_stats: Option<OffsetDateTime>,
}

impl Work for Running {
    async fn pass(&mut self) -> Next {
        let relay = &self.relay;
        let next = match relay.pass().await {
            Ok(pass) => {
                if let Some(error) = &pass.publish_error {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "publishing an event failed; will retry");
                    Next::After(delay)
                } else {
                    self.backoff.reset();
                    // A full batch means more may be waiting: go on at once.
                    Next::unless_busy(pass.claimed >= relay.settings.batch, relay.settings.idle)
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "outbox unavailable; will retry");
                Next::After(self.backoff.next_delay())
            }
        };
        let now = relay.clock.now();
        if next == Next::Now
            || self
                .last_stats
                .is_none_or(|at| now - at >= relay.settings.stats_interval)
        {
            self.last_stats = Some(now);
            relay.report_stats(now).await;
        }
        next
    }
}
