//! The service value itself: the ports every use case works over and the configuration in
//! force. The use cases are its methods, in the modules of [`crate::service`].

use std::sync::Arc;

use super::config::ServiceConfig;
use crate::metrics::Metrics;
use crate::ports::{Clock, MetadataStore, ObjectStore, RateLimiter, TokenVerifier, UrlSigner, UsageStore};
use crate::tenancy::{DownloadTally, SettingsCache};

/// The Files service: every use case, over its ports. Cheap to clone (the ports are shared).
#[derive(Clone)]
pub struct FilesService {
    pub(super) tokens: Arc<dyn TokenVerifier>,
    /// The store, behind the write-through cache when there is one.
    pub(crate) metadata: Arc<dyn MetadataStore>,
    /// The store itself, never through the cache: read where the answer must be the record's
    /// latest state, such as after a conditional change that changed nothing (the cache may
    /// still hold the copy the change was decided on, or a copy another instance filled).
    pub(super) records: Arc<dyn MetadataStore>,
    pub(super) signer: Arc<dyn UrlSigner>,
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<dyn Metrics>,
    pub(super) config: ServiceConfig,
    /// The tenant settings and usage, when the service was built with them.
    pub(super) tenancy: Option<Tenancy>,
    pub(super) rate_limiter: Option<Arc<dyn RateLimiter>>,
}

impl std::fmt::Debug for FilesService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The tenancy ports of a service, with the in-process state over them.
#[derive(Clone)]
pub(crate) struct Tenancy {
    pub(crate) settings: Arc<SettingsCache>,
    pub(crate) usage: Arc<dyn UsageStore>,
    pub(crate) downloads: Arc<DownloadTally>,
}
