//! The outbox relay task: publishes recorded `file.uploaded` events, in order, with back-off
//! while the broker (or the database) is down. Several server instances may run it on one
//! database; the outbox's leases keep them from publishing the same event at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use files_adapters::prometheus::Metrics;
use files_core::ports::error_chain;
use files_core::{Notifier, Outbox, relay_once};
use time::OffsetDateTime;

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events claimed per pass.
    pub batch: usize,
    /// How long a claim is held before another relay may take the events.
    pub lease: Duration,
    /// Pause between passes when the outbox is empty.
    pub idle: Duration,
    /// The longest back-off after failures.
    pub max_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            idle: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until the task is aborted.
pub async fn run(outbox: Arc<dyn Outbox>, notifier: Arc<dyn Notifier>, metrics: Arc<Metrics>, settings: RelaySettings) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_stats: Option<Instant> = None;
    loop {
        let pause = match relay_once(&*outbox, &*notifier, settings.batch, settings.lease).await {
            Ok(pass) => {
                metrics.outbox_published(pass.published as u64);
                if let Some(error) = &pass.publish_error {
                    metrics.outbox_publish_failed();
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "publishing file.uploaded failed; will retry");
                    Some(next(&mut backoff, settings.max_backoff))
                } else {
                    backoff = FIRST_BACKOFF;
                    // A full batch means more may be waiting: go on at once.
                    (pass.claimed < settings.batch).then_some(settings.idle)
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "outbox unavailable; will retry");
                Some(next(&mut backoff, settings.max_backoff))
            }
        };
        // Depth and lag at most once a second while idle: an idle relay costs one query a pass.
        if pause.is_none() || last_stats.is_none_or(|at| at.elapsed() >= STATS_INTERVAL) {
            last_stats = Some(Instant::now());
            if let Ok(stats) = outbox.stats().await {
                let lag = stats.oldest.map_or(0.0, |oldest| {
                    (OffsetDateTime::now_utc() - oldest).as_seconds_f64().max(0.0)
                });
                metrics.outbox_state(stats.depth, lag);
            }
        }
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
}

fn next(backoff: &mut Duration, max: Duration) -> Duration {
    let current = *backoff;
    *backoff = (*backoff * 2).min(max);
    current
}
