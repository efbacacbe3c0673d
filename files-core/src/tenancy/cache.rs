//! Tenant settings as one instance sees them: a short-lived copy of the [`SettingsStore`]'s.
//!
//! Each tenant's copy is read again once it is older than the time to live, so a change made
//! through any instance applies on every instance within that time (plus one read). While a
//! copy is read again, other requests keep using the old one; when the store cannot be read,
//! the last known copy keeps applying and the read is retried a second later. Only a tenant
//! this instance never loaded waits for the store, and fails with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use crate::ids::TenantId;
use crate::ports::{Clock, PortError, SettingsStore, StoredSettings, error_chain};

/// How many tenants' copies one instance keeps; past it, the copies are dropped and read again.
const MAX_TENANTS: usize = 100_000;

/// When a failed read is retried while the last known copy applies.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How long one request's read again holds the others to the old copy: past it (the request
/// was dropped mid-read, say), the next request reads again.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// One tenant's copy.
#[derive(Debug, Clone)]
struct Entry {
    /// `None`: the tenant has no settings.
    settings: Option<Arc<StoredSettings>>,
    /// When the copy should be read again.
    refresh_at: OffsetDateTime,
    /// Since when a request is reading it again.
    refreshing_since: Option<OffsetDateTime>,
}

/// Tenant settings with a short-lived in-process copy; see the module documentation.
pub struct SettingsCache {
    store: Arc<dyn SettingsStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl std::fmt::Debug for SettingsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What a lookup found in the copies.
enum Found {
    Fresh(Option<Arc<StoredSettings>>),
    /// Stale: this caller reads the store again, the others keep the copy meanwhile.
    Refresh(Option<Arc<StoredSettings>>),
    Missing,
}

impl SettingsCache {
    /// Copies of `store`'s settings, each read again after `ttl`.
    pub fn new(store: Arc<dyn SettingsStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The store the copies are of.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SettingsStore> {
        &self.store
    }

    /// A tenant's settings (`None` when never set), from the copy when it is fresh.
    ///
    /// # Errors
    /// [`PortError`] only when the tenant was never loaded and the store cannot be read.
    pub async fn get(&self, tenant: TenantId) -> Result<Option<Arc<StoredSettings>>, PortError> {
        let now = self.clock.now();
        let found = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get_mut(&tenant) {
                Some(entry)
                    if entry.refresh_at > now
                        || entry
                            .refreshing_since
                            .is_some_and(|since| now < since + REFRESH_TIMEOUT) =>
                {
                    Found::Fresh(entry.settings.clone())
                }
                Some(entry) => {
                    entry.refreshing_since = Some(now);
                    Found::Refresh(entry.settings.clone())
                }
                None => Found::Missing,
            }
        };
        match found {
            Found::Fresh(settings) => Ok(settings),
            Found::Refresh(known) => match self.store.get_settings(tenant).await {
                Ok(settings) => Ok(self.keep(tenant, settings.map(Arc::new))),
                Err(error) => {
                    tracing::warn!(%tenant, error = %error_chain(&error), "tenant settings could not be read; the last known apply");
                    self.set(tenant, known.clone(), self.clock.now() + RETRY_AFTER_FAILURE);
                    Ok(known)
                }
            },
            Found::Missing => {
                let settings = self.store.get_settings(tenant).await?;
                Ok(self.keep(tenant, settings.map(Arc::new)))
            }
        }
    }

    /// Forgets a tenant's copy, so this instance reads the store next time (after a change it made).
    pub fn forget(&self, tenant: TenantId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&tenant);
    }

    fn keep(&self, tenant: TenantId, settings: Option<Arc<StoredSettings>>) -> Option<Arc<StoredSettings>> {
        self.set(tenant, settings.clone(), self.clock.now() + self.ttl);
        settings
    }

    fn set(&self, tenant: TenantId, settings: Option<Arc<StoredSettings>>, refresh_at: OffsetDateTime) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_TENANTS && !entries.contains_key(&tenant) {
            entries.clear();
        }
        entries.insert(
            tenant,
            Entry {
                settings,
                refresh_at,
                refreshing_since: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::PoisonError;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use uuid::Uuid;

    use super::*;
    use crate::tenancy::TenantSettings;

    struct Store {
        settings: Mutex<Option<StoredSettings>>,
        reads: AtomicUsize,
        down: AtomicBool,
        /// Reads never answer while on.
        hold: AtomicBool,
    }

    #[async_trait]
    impl SettingsStore for Store {
        async fn get_settings(&self, _: TenantId) -> Result<Option<StoredSettings>, PortError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.hold.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(PortError::unavailable("down"));
            }
            Ok(self.settings.lock().unwrap_or_else(PoisonError::into_inner).clone())
        }

        async fn put_settings(
            &self,
            _: TenantId,
            settings: &TenantSettings,
            at: OffsetDateTime,
        ) -> Result<StoredSettings, PortError> {
            let stored = StoredSettings {
                settings: settings.clone(),
                updated_at: at,
            };
            *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = Some(stored.clone());
            Ok(stored)
        }
    }

    struct FixedClock(Mutex<OffsetDateTime>);

    #[async_trait]
    impl Clock for FixedClock {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
        async fn sleep(&self, _: Duration) {}
    }

    /// An empty store, a clock at the epoch, and a cache with a 2 s time to live over them.
    fn fixture() -> (Arc<Store>, Arc<FixedClock>, SettingsCache) {
        let store = Arc::new(Store {
            settings: Mutex::new(None),
            reads: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            hold: AtomicBool::new(false),
        });
        let clock = Arc::new(FixedClock(Mutex::new(OffsetDateTime::UNIX_EPOCH)));
        let cache = SettingsCache::new(store.clone(), clock.clone(), Duration::from_secs(2));
        (store, clock, cache)
    }

    /// The `max_file_size` of a copy.
    fn max(settings: Option<Arc<StoredSettings>>) -> Option<u64> {
        settings.and_then(|s| s.settings.max_file_size)
    }

    fn sized(max: u64) -> TenantSettings {
        TenantSettings {
            max_file_size: Some(max),
            ..TenantSettings::default()
        }
    }

    #[tokio::test]
    async fn a_copy_is_read_again_after_its_time_and_kept_while_the_store_is_down() -> Result<(), PortError> {
        let (store, clock, cache) = fixture();
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));

        assert_eq!(max(cache.get(tenant).await?), None);
        store.put_settings(tenant, &sized(10), clock.now()).await?;
        assert_eq!(max(cache.get(tenant).await?), None, "the copy is fresh");
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);

        *clock.0.lock().unwrap_or_else(PoisonError::into_inner) += Duration::from_secs(2);
        assert_eq!(max(cache.get(tenant).await?), Some(10), "read again after its time");

        store.down.store(true, Ordering::SeqCst);
        *clock.0.lock().unwrap_or_else(PoisonError::into_inner) += Duration::from_secs(3);
        assert_eq!(max(cache.get(tenant).await?), Some(10), "the last known apply");
        let other = TenantId::from_uuid(Uuid::from_u128(2));
        assert!(
            cache.get(other).await.is_err(),
            "a tenant never loaded fails with the store"
        );

        store.down.store(false, Ordering::SeqCst);
        store.put_settings(tenant, &sized(20), clock.now()).await?;
        *clock.0.lock().unwrap_or_else(PoisonError::into_inner) += RETRY_AFTER_FAILURE;
        assert_eq!(max(cache.get(tenant).await?), Some(20));
        cache.forget(tenant);
        store.put_settings(tenant, &sized(30), clock.now()).await?;
        assert_eq!(max(cache.get(tenant).await?), Some(30), "forgotten: read at once");
        Ok(())
    }

    /// A read again that never finishes (its request dropped) holds the others to the old copy
    /// for [`REFRESH_TIMEOUT`] at most.
    #[tokio::test]
    async fn a_dropped_read_again_is_taken_over() -> Result<(), PortError> {
        let (store, clock, cache) = fixture();
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        store.put_settings(tenant, &sized(10), clock.now()).await?;
        assert_eq!(max(cache.get(tenant).await?), Some(10));
        store.put_settings(tenant, &sized(20), clock.now()).await?;
        *clock.0.lock().unwrap_or_else(PoisonError::into_inner) += Duration::from_secs(2);
        store.hold.store(true, Ordering::SeqCst);
        {
            // The read again starts, and its request goes away before the store answers.
            let dropped = std::pin::pin!(cache.get(tenant));
            let waker = std::task::Waker::noop();
            let _ = dropped.poll(&mut std::task::Context::from_waker(waker));
        }
        assert_eq!(max(cache.get(tenant).await?), Some(10), "another read is under way");
        store.hold.store(false, Ordering::SeqCst);
        *clock.0.lock().unwrap_or_else(PoisonError::into_inner) += REFRESH_TIMEOUT;
        assert_eq!(max(cache.get(tenant).await?), Some(20), "taken over");
        Ok(())
    }
}
