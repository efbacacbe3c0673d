//! Download URLs issued, counted in memory per device and day and added to the [`UsageStore`]
//! in batches by the [`UsageFlusher`], so a download URL costs no database write.
//!
//! The counts reach the store within one flush interval (1 s by default). A batch the store
//! refuses is kept and added with the next one; a stop flushes what is left. An instance that
//! dies loses at most its last interval's download counts (the other usage counts are the
//! store's own, kept in the records' transactions).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::Date;

use crate::background::{self, Next, Work};
use crate::backoff::Backoff;
use crate::ids::{DeviceId, TenantId};
use crate::ports::{Clock, DownloadCount, UsageStore, error_chain};

/// Download URLs issued and not yet added to the store.
#[derive(Debug, Default)]
pub struct DownloadTally {
    counts: Mutex<HashMap<(TenantId, DeviceId, Date), u64>>,
}

impl DownloadTally {
    /// Counts one download URL for a device on `date`.
    pub fn add(&self, tenant: TenantId, device: DeviceId, date: Date) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((tenant, device, date))
            .or_default() += 1;
    }

    /// Takes every count, leaving none.
    #[must_use]
    pub fn take(&self) -> Vec<DownloadCount> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        counts
            .into_iter()
            .map(|((tenant, device, date), count)| DownloadCount {
                tenant,
                device,
                date,
                count,
            })
            .collect()
    }

    /// Puts back counts the store did not take.
    pub fn restore(&self, counts: &[DownloadCount]) {
        let mut kept = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for count in counts {
            *kept.entry((count.tenant, count.device, count.date)).or_default() += count.count;
        }
    }

    /// Counts a device's download URLs of `date` not yet in the store.
    #[must_use]
    pub fn pending(&self, tenant: TenantId, device: DeviceId, date: Date) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant, device, date))
            .copied()
            .unwrap_or(0)
    }
}

/// Adds the tally to the store every interval. Built with its service by
/// [`crate::FilesService::builder`]; run it with [`UsageFlusher::run_until`].
pub struct UsageFlusher {
    pub(crate) tally: Arc<DownloadTally>,
    pub(crate) usage: Arc<dyn UsageStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) interval: Duration,
}

impl std::fmt::Debug for UsageFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageFlusher")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl UsageFlusher {
    /// Adds what the tally holds to the store (on failure the counts stay in the tally), then
    /// has the store fold its deltas ([`UsageStore::settle`]).
    ///
    /// # Errors
    /// The store's error.
    pub async fn flush(&self) -> Result<usize, crate::ports::PortError> {
        let counts = self.tally.take();
        if !counts.is_empty()
            && let Err(error) = self.usage.add_downloads(&counts).await
        {
            self.tally.restore(&counts);
            return Err(error);
        }
        self.usage.settle().await?;
        Ok(counts.len())
    }

    /// Flushes every interval until `stop` completes, then once more.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let clock = self.clock.clone();
        let flusher = Arc::new(self);
        background::run_until(
            &*clock,
            stop,
            Running {
                flusher: flusher.clone(),
                backoff: Backoff::DEFAULT,
            },
        )
        .await;
        if let Err(error) = flusher.flush().await {
            tracing::warn!(error = %error_chain(&error), "usage could not be flushed at stop: download counts not yet added are lost (usage deltas are folded by the next pass of any instance)");
        }
    }
}

struct Running {
    flusher: Arc<UsageFlusher>,
    backoff: Backoff,
}

impl Work for Running {
    async fn pass(&mut self) -> Next {
        match self.flusher.flush().await {
            Ok(_) => {
                self.backoff.reset();
                Next::After(self.flusher.interval)
            }
            Err(error) => {
                let delay = self.backoff.next_delay().max(self.flusher.interval);
                tracing::warn!(error = %error_chain(&error), retry_in_ms = delay.as_millis(), "usage could not be flushed (download counts kept for the next pass); will retry");
                Next::After(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn counts_are_taken_once_and_restored_on_failure() {
        let tally = DownloadTally::default();
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let device = DeviceId::from_uuid(Uuid::from_u128(2));
        let day = date!(2026 - 12 - 07);
        tally.add(tenant, device, day);
        tally.add(tenant, device, day);
        tally.add(tenant, device, date!(2026 - 12 - 08));
        let mut taken = tally.take();
        taken.sort_by_key(|c| c.date);
        assert_eq!(taken.iter().map(|c| c.count).collect::<Vec<_>>(), [2, 1]);
        assert!(tally.take().is_empty());
        tally.restore(&taken);
        tally.add(tenant, device, day);
        assert_eq!(tally.pending(tenant, device, day), 3);
    }
}
