//! The contract of the [`MetadataStore`] port: what every metadata store, in memory or in
//! PostgreSQL, must do, including recording one outbox event per file made available and per
//! available file deleted (seen
//! through [`files_core::Outbox::claim`]; the outbox itself has its own suite,
//! [`super::outbox`]).
//!
//! Each rule uses fresh random tenants and devices, so the suite can run any number of times,
//! in parallel, on a shared store (the outbox checks look only for their own files' events,
//! and give back what they claim). It panics, naming the broken rule, on the first violation.
//! Times are whole microseconds, the precision PostgreSQL keeps.
//!
//! The rules are grouped by what they are about: `records` (what is stored and found by id),
//! `listing` (`latest` and `list`), `states` (`mark_available` and `mark_deleted`, with the
//! `file.uploaded` events), `deletions` (the `file.deleted` events of `mark_deleted`).
//! `fixtures` makes the records they use, for the other suites too.
//!
//! [`MetadataStore`]: files_core::MetadataStore

mod deletions;
mod fixtures;
mod listing;
mod recorded;
mod records;
mod states;

use files_core::TransactionalStore;

pub use deletions::{concurrent_mark_deleted_records_one_event, mark_deleted_records_an_event_only_for_available};
pub use fixtures::{deletion, fresh_tenant, now_micros, record, uploaded_event};
pub(crate) use fixtures::{device_root, insert, ok, tenant_root};
pub use listing::{latest_is_per_scope_name_and_state, list_pages_newest_first_by_state};
pub use records::{duplicate_ids_are_refused, get_is_tenant_scoped, records_round_trip_every_field};
pub use states::{
    concurrent_mark_available_has_one_winner, mark_available_moves_only_pending, mark_deleted_leaves_a_tombstone,
};

/// Runs every rule of the contract against `store`.
///
/// # Panics
/// When the store breaks a rule, or fails a call.
pub async fn run(store: &dyn TransactionalStore) {
    records_round_trip_every_field(store).await;
    get_is_tenant_scoped(store).await;
    duplicate_ids_are_refused(store).await;
    latest_is_per_scope_name_and_state(store).await;
    list_pages_newest_first_by_state(store).await;
    mark_available_moves_only_pending(store).await;
    concurrent_mark_available_has_one_winner(store).await;
    mark_deleted_leaves_a_tombstone(store).await;
    mark_deleted_records_an_event_only_for_available(store).await;
    concurrent_mark_deleted_records_one_event(store).await;
}
