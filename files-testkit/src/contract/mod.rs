//! Contract test suites, one per port: run against the in-memory fake and against the real adapter.
//! Every suite module is entered the same way, by its `run`; a suite with several parts adds
//! `run_*` entries for the parts that need their own setup (`cache::run_clear`, `objects::run_multipart`). `retention` is the [`Housekeeping`](files_core::Housekeeping)
//! rule for files past their tenant's retention, for stores that also keep settings.

pub mod cache;
pub mod housekeeping;
pub mod metadata;
pub mod objects;
pub mod outbox;
pub mod retention;
pub mod tenancy;
pub mod tokens;
