//! Finding the machine's real services for integration tests.
//!
//! Addresses come from variables with this machine's defaults. When a service cannot be
//! reached, a test either skips, saying so loudly on stderr, or — with `CI=true` — fails: in
//! CI a missing service is a failure, not a skip.

use std::time::Duration;

/// `FILES_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`: a database
/// the tests may create other databases from.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("FILES_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `FILES_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("FILES_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Whether a missing service fails the test (`CI=true`) instead of skipping it.
#[must_use]
pub fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Called when `service` is not there: panics under CI, else prints a loud skip notice.
/// Returns `None` so callers can `let Some(x) = ... else { return };`.
///
/// # Panics
/// Under `CI=true`, always.
pub fn unavailable<T>(test: &str, service: &str, why: &dyn std::fmt::Display) -> Option<T> {
    assert!(!services_required(), "{test}: {service} is required under CI=true but unavailable: {why}");
    eprintln!("\n*** SKIPPED {test}: {service} unavailable ({why}); set CI=true to make this a failure ***\n");
    None
}

/// Whether something accepts TCP connections at `host:port` within a short time.
pub async fn reachable(address: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}
