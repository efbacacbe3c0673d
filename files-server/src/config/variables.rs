//! The variables the server reads, as the lists the config file, the start-up warning and the
//! deployment files are checked against.

use std::sync::LazyLock;

use super::table::Var;
use super::tables::TABLES;

/// Every variable the server reads, from the tables (`tables.rs`): the one list that the config
/// file's keys, the warning about unknown variables, and the deployment files' tests (compose,
/// Kubernetes) are checked against.
pub static VARIABLES: LazyLock<Vec<&'static str>> = LazyLock::new(|| variables().map(|var| var.name).collect());

/// Every variable the server reads with its default, bounds, secrecy and description, concern
/// by concern.
pub fn variables() -> impl Iterator<Item = &'static Var> {
    TABLES.iter().flat_map(|table| table.iter())
}

/// The settings every production deployment sets (compose and the Kubernetes manifests are
/// tested against it): each dependency off its embedded default, the addresses a container
/// needs, and `/metrics` on its own address. Tokens are not in it: the compose stack signs
/// them with the development key, a real deployment sets `FILES_JWKS_URL` (see
/// docs/operations.md).
pub const PRODUCTION_VARIABLES: &[&str] = &[
    "FILES_LISTEN",
    "FILES_METRICS_LISTEN",
    "FILES_DATABASE_URL",
    "FILES_REDIS_URL",
    "FILES_AMQP_URL",
    "FILES_S3_ENDPOINT",
    "FILES_S3_ACCESS_KEY",
    "FILES_S3_SECRET_KEY",
    "FILES_EVENTS_SECRET",
];
