//! The HTTP API end to end: one test binary, one module per subject.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod attacks;
mod bad_input;
mod binary;
mod deletion_events;
mod dependency_errors;
mod deploy;
mod docs;
mod downloads;
mod events;
mod fault_matrix;
mod flow;
mod hardening;
mod helpers;
mod instances;
mod janitor;
mod lifecycle;
mod multipart;
mod openapi;
mod outages;
mod permissions;
mod rate_limits;
mod real;
mod retention;
mod storage_events;
mod structure;
mod tenants;
mod tokens;
mod versions;
