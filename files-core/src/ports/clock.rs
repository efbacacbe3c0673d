//! The clock port: the time, and waiting.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// The time, so tests can move it; background loops wait through it too.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;

    /// Waits `duration` (by default on the tokio timer; a test clock may return at once).
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
