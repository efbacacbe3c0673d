//! Contract test suites, one per port: run against the in-memory fake and against the real adapter.

pub mod cache;
pub mod housekeeping;
pub mod metadata;
pub mod objects;
pub mod outbox;
pub mod tokens;
