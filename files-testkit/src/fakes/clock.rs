//! The clock fake, which stands still until moved.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use files_core::Clock;
use time::OffsetDateTime;

use super::lock;

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    /// A clock at `now`.
    #[must_use]
    pub fn at(now: OffsetDateTime) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.0);
        *now += by;
    }
}

#[async_trait]
impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }

    /// Moves the clock instead of waiting, then lets other tasks run: loops driven by this
    /// clock run without real sleeps.
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}
