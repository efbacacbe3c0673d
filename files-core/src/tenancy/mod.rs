//! Tenancy: each tenant's settings and the policy they make, the settings as an instance sees
//! them, and the download URLs counted for usage.

mod cache;
mod policy;
mod settings;
mod tally;

pub use cache::SettingsCache;
pub use policy::{Defaults, Policy};
pub use settings::{
    Ceilings, InvalidSettings, MAX_SETTING, QuotaSettings, RateLimitSettings, TenantSettings, is_pattern,
};
pub use tally::{DownloadTally, UsageFlusher};
