//! Test support for the Files service: in-memory fakes of every port with failure switches,
//! a fake DSTS, contract suites for the ports, and clients of the real services.

pub mod amqp;
pub mod contract;
pub mod dsts;
pub mod fakes;
pub mod gate;
pub mod logs;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod services;

/// The SHA-256 of `bytes`: the one digest helper of the tests.
#[must_use]
pub fn sha256_of(bytes: &[u8]) -> files_core::Sha256 {
    use sha2::Digest as _;
    files_core::Sha256::from_bytes(sha2::Sha256::digest(bytes).into())
}

/// The SHA-256 of `bytes` in lowercase hex, as the API writes it.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256_of(bytes).to_hex()
}

/// Logs of tests go to the test harness's captured output; `FILES_TEST_LOG` filters them.
pub fn init_logging() {
    let filter = std::env::var("FILES_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_default())
        .with_test_writer()
        .try_init();
}

/// Polls `condition` every 20 ms until it holds or `within` has passed; says whether it held.
/// The one way tests wait for something that happens in the background: no sleeps.
pub async fn eventually(within: std::time::Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
