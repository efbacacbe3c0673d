//! The integration tests of the testkit: one binary, one module per subject.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amqp;
mod cache_races;
mod contract_cache;
mod contract_metadata;
mod contract_objects;
mod contract_tokens;
mod deletion_events;
mod insert_batches;
mod janitor;
mod janitor_race;
mod janitor_retention;
mod jwks;
mod logs;
mod metrics_port;
mod multipart;
mod near_cache;
mod proxy;
mod relay_stop;
mod service;
mod world;
