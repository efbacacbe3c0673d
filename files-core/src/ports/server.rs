//! What a server's database keeps, as one port.

use super::housekeeping::JanitorStore;
use super::tenancy::{SettingsStore, UsageStore};

/// Everything a server's database keeps: the records with their outbox, the janitor's
/// statements, the tenant settings and the usage counts.
pub trait ServerStore: JanitorStore + SettingsStore + UsageStore {}

impl<T: JanitorStore + SettingsStore + UsageStore> ServerStore for T {}
