//! The ports: one small trait per capability the use cases need.
//!
//! Adapters in `files-adapters` implement them against real technologies; `files-testkit` has
//! in-memory fakes that pass the same contract suites. No driver type appears here.

mod cache;
mod clock;
mod error;
mod housekeeping;
mod metadata;
mod notifier;
mod objects;
mod outbox;
mod rate;
mod server;
mod signer;
mod tenancy;
mod tokens;

pub use cache::Cache;
pub use clock::{Clock, SystemClock};
pub use error::{BoxError, PortError, error_chain};
pub use housekeeping::{Housekeeping, JanitorStore};
pub use metadata::MetadataStore;
pub use notifier::Notifier;
pub use objects::{CompletedMultipart, MultipartUnsupported, NoSuchUpload, ObjectInfo, ObjectStore, StoredPart};
pub use outbox::{Outbox, OutboxEntry, OutboxStats, TransactionalStore};
pub use rate::{RateDecision, RateKey, RateLimit, RateLimiter};
pub use server::ServerStore;
pub use signer::{DownloadSpec, PartSpec, PresignedRequest, SignError, UploadSpec, UrlSigner};
pub use tenancy::{
    Admission, DailyUsage, DeviceUsage, DownloadCount, Limits, QuotaRefusal, SettingsStore, StoredSettings,
    TenantUsage, UsageStore,
};
pub use tokens::{InvalidToken, TokenError, TokenVerifier};
