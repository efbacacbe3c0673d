//! The integration tests of the testkit: one binary, one module per subject.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod jwks;
mod service;
