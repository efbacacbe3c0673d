//! The domain of the Files service: identifiers, validated values, principals and the
//! permission rule, file records, the `file.uploaded` and `file.deleted` events, the ports, and the use cases in
//! [`FilesService`]. No I/O crate is a dependency of this crate.

mod background;
pub mod backoff;
pub mod cached;
pub mod disposition;
pub mod event;
pub mod file;
pub mod ids;
pub mod metrics;
pub mod multipart;
pub mod ports;
pub mod principal;
pub mod relay;
pub mod service;
pub mod tenancy;
pub mod values;

pub use backoff::Backoff;
pub use cached::WriteThrough;
pub use event::{
    Deletion, DeletionReason, FILE_DELETED, FILE_UPLOADED, FileDeleted, FileEvent, FileUploaded, PartsSummary,
    UploadedFile,
};
pub use file::{FileRecord, FileState, ObjectKey};
pub use ids::{DeviceId, FileId, InvalidId, TenantId};
pub use metrics::{
    CacheOperation, CacheOutcome, FileOperation, JanitorAction, KeySetRefresh, LimitRefusal, Metrics, NoMetrics,
    StorageEventOutcome, TokenOutcome,
};
pub use multipart::{Integrity, InvalidPlan, MultipartUpload, PartPlan};
pub use ports::{
    Admission, DailyUsage, DeviceUsage, DownloadCount, Limits, QuotaRefusal, RateDecision, RateKey, RateLimit,
    RateLimiter, ServerStore, SettingsStore, StoredSettings, TenantUsage, UsageStore,
};
pub use ports::{
    BoxError, Cache, Clock, CompletedMultipart, DownloadSpec, Housekeeping, InvalidToken, JanitorStore, MetadataStore,
    MultipartUnsupported, NoSuchUpload, Notifier, ObjectInfo, ObjectStore, Outbox, OutboxEntry, OutboxStats, PartSpec,
    PortError, PresignedRequest, SignError, StoredPart, SystemClock, TokenError, TokenVerifier, TransactionalStore,
    UploadSpec, UrlSigner,
};
pub use principal::{Access, Forbidden, Owner, Principal, Scope, authorize};
pub use relay::{Relay, RelayPass, RelaySettings, relay_once};
pub use service::{
    CompleteError, Dependency, DependencyError, DownloadError, DownloadRequest, DownloadTarget, ExpiryOutOfRange,
    FilesService, IngestOutcome, Ingested, Janitor, JanitorPass, JanitorSettings, LookupError, MAX_EXPIRY, Mismatch,
    MultipartTicket, NotificationRecord, ObjectCreated, Page, PartStatus, PartTicket, PartsError, PartsRequest,
    PartsStatus, Ports, ServiceBuilder, ServiceConfig, SkipReason, Ticket, UploadError, UploadRequest,
};
pub use service::{PENDING_RETRY_AFTER, QuotaExceeded, RateLimited, TenancyError, TenantUsageReport};
pub use tenancy::{
    Ceilings, InvalidSettings, Policy, QuotaSettings, RateLimitSettings, SettingsCache, TenantSettings, UsageFlusher,
};
pub use values::{ContentType, FileName, InvalidValue, Sha256};
