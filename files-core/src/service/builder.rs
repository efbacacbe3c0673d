//! Putting a service together: the ports it needs, its limits, and the builder that hands out
//! the service and its outbox relay together (so no event recorded by the store is left
//! unpublished for want of a relay).

use std::sync::Arc;

use crate::cached::WriteThrough;
use crate::metrics::{Metrics, NoMetrics};
use crate::ports::{
    Cache, Clock, MetadataStore, Notifier, ObjectStore, RateLimiter, SettingsStore, SystemClock, TokenVerifier,
    TransactionalStore, UrlSigner, UsageStore,
};
use crate::relay::{Relay, RelaySettings};

use super::config::ServiceConfig;
use super::files_service::{FilesService, Tenancy};
use crate::tenancy::{DownloadTally, SettingsCache};

/// The ports a service cannot do without.
#[derive(Clone)]
pub struct Ports {
    /// Checks bearer tokens.
    pub tokens: Arc<dyn TokenVerifier>,
    /// File metadata and, in the same database, the outbox of events: marking a file available
    /// and recording its event are one transaction.
    pub store: Arc<dyn TransactionalStore>,
    /// Signs URLs.
    pub signer: Arc<dyn UrlSigner>,
    /// Inspects and deletes objects.
    pub objects: Arc<dyn ObjectStore>,
    /// Publishes the events the relay takes from the outbox.
    pub notifier: Arc<dyn Notifier>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// Builds a [`FilesService`] and its [`Relay`]: `FilesService::builder(ports)`, then the optional
/// parts, then [`ServiceBuilder::build`].
#[must_use]
pub struct ServiceBuilder {
    ports: Ports,
    cache: Option<Arc<dyn Cache>>,
    metrics: Arc<dyn Metrics>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    relay: RelaySettings,
    tenancy: Option<(Arc<dyn SettingsStore>, Arc<dyn UsageStore>)>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("config", &self.config)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    pub(crate) fn new(ports: Ports) -> Self {
        Self {
            ports,
            cache: None,
            metrics: Arc::new(NoMetrics),
            clock: Arc::new(SystemClock),
            config: ServiceConfig::default(),
            relay: RelaySettings::default(),
            tenancy: None,
            rate_limiter: None,
        }
    }

    /// A cache in front of the store, kept in step by write-through (none by default).
    pub fn cache(mut self, cache: Arc<dyn Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Where file operations, tokens, cache calls, notifications and the relay are counted
    /// (nowhere by default).
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The clock (the system clock by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Limits and lifetimes ([`ServiceConfig::default`] by default).
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// The relay's pace ([`RelaySettings::default`] by default).
    pub fn relay_settings(mut self, settings: RelaySettings) -> Self {
        self.relay = settings;
        self
    }

    /// Per-tenant settings (policy and quotas) and usage counts (none by default: every tenant
    /// gets the configured defaults, and no quota applies). `settings` is read through a copy
    /// per tenant that lives [`ServiceConfig::settings_ttl`].
    pub fn tenancy(mut self, settings: Arc<dyn SettingsStore>, usage: Arc<dyn UsageStore>) -> Self {
        self.tenancy = Some((settings, usage));
        self
    }

    /// Where requests are counted against the tenants' `rate_limit` settings (nowhere by
    /// default: no request is limited). Limits come from the tenant settings, so this takes
    /// effect with [`Self::tenancy`].
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// The service, and the relay that publishes its events: spawn [`Relay::run`] on a task.
    pub fn build(self) -> (FilesService, Relay) {
        let Ports {
            tokens,
            store,
            signer,
            objects,
            notifier,
        } = self.ports;
        let metadata: Arc<dyn MetadataStore> = match self.cache {
            Some(cache) => Arc::new(WriteThrough::new(store.clone(), cache, self.metrics.clone())),
            None => store.clone(),
        };
        let relay = Relay {
            outbox: store.clone(),
            notifier,
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            settings: self.relay,
        };
        let tenancy = self.tenancy.map(|(settings, usage)| Tenancy {
            settings: Arc::new(SettingsCache::new(
                settings,
                self.clock.clone(),
                self.config.settings_ttl,
            )),
            usage,
            downloads: Arc::new(DownloadTally::default()),
        });
        let service = FilesService {
            tokens,
            records: store.clone(),
            metadata,
            signer,
            objects,
            clock: self.clock,
            metrics: self.metrics,
            config: self.config,
            tenancy,
            rate_limiter: self.rate_limiter,
        };
        (service, relay)
    }
}
