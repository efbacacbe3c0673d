//! Rate limiting in process: [`LocalRateLimiter`] (governor's GCRA, one cell per key), alone
//! for a single instance, and behind a shared limiter as its fallback
//! ([`FallbackRateLimiter`]): while the shared one fails, each instance limits on its own.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use files_core::ports::error_chain;
use files_core::{PortError, RateDecision, RateKey, RateLimit, RateLimiter};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

/// How many keys the local limiter keeps at most (devices and tenants with a limit that sent a
/// request lately). Past it the least used are dropped, which forgets what they spent.
pub const LOCAL_KEYS: u64 = 100_000;

/// A key's cell is dropped when unused for this long: longer than the longest period (a
/// minute), so a dropped cell had filled up again and nothing is forgotten.
const IDLE: Duration = Duration::from_secs(120);

/// Counts requests in this process: each limit's key its own GCRA cell, for that limit's rate.
#[derive(Clone)]
pub struct LocalRateLimiter {
    cells: moka::sync::Cache<(RateKey, u64, Duration), Arc<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("keys", &self.cells.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new(LOCAL_KEYS)
    }
}

/// `limit` as governor's quota: one request every `period / requests`, bursts of `requests`.
fn quota(limit: &RateLimit) -> Quota {
    let burst = u32::try_from(limit.requests).unwrap_or(u32::MAX);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let interval = (limit.period / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(interval).map_or_else(|| Quota::per_second(burst), |q| q.allow_burst(burst))
}

impl LocalRateLimiter {
    /// A limiter keeping at most `keys` keys.
    #[must_use]
    pub fn new(keys: u64) -> Self {
        Self {
            cells: moka::sync::Cache::builder()
                .max_capacity(keys)
                .time_to_idle(IDLE)
                .build(),
            clock: DefaultClock::default(),
        }
    }

    /// [`RateLimiter::acquire`] in process. Limits are taken one after the other: a request
    /// refused by a later limit has spent its place in the earlier ones (the device's, which
    /// the service lists first), which only makes a refused device wait a little longer.
    #[must_use]
    pub fn acquire_now(&self, limits: &[RateLimit]) -> RateDecision {
        for limit in limits {
            let cell = self.cells.get_with((limit.key, limit.requests, limit.period), || {
                Arc::new(governor::RateLimiter::direct(quota(limit)))
            });
            if let Err(not_until) = cell.check() {
                return RateDecision::Refused {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                };
            }
        }
        RateDecision::Admitted
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn acquire(&self, limits: &[RateLimit]) -> Result<RateDecision, PortError> {
        Ok(self.acquire_now(limits))
    }
}

/// How long a failed shared limiter is left alone before it is asked again: meanwhile
/// requests are counted here without waiting for its timeout.
pub const SHARED_RETRY: Duration = Duration::from_secs(1);

/// A shared limiter (Redis) with a [`LocalRateLimiter`] behind it: while the shared one fails,
/// requests are limited by this instance alone, and none fails for it. After a failure the
/// shared one is asked again after [`SHARED_RETRY`] (so an outage costs one request its
/// timeout per second, not every request); as soon as it answers, its answers count.
pub struct FallbackRateLimiter {
    shared: Arc<dyn RateLimiter>,
    local: LocalRateLimiter,
    started: Instant,
    /// Until when (ms since `started`) the shared limiter is not asked.
    skip_until_ms: AtomicU64,
}

impl std::fmt::Debug for FallbackRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl FallbackRateLimiter {
    /// `shared`, falling back on `local`.
    #[must_use]
    pub fn new(shared: Arc<dyn RateLimiter>, local: LocalRateLimiter) -> Self {
        Self {
            shared,
            local,
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn acquire(&self, limits: &[RateLimit]) -> Result<RateDecision, PortError> {
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return Ok(self.local.acquire_now(limits));
        }
        match self.shared.acquire(limits).await {
            Ok(decision) => Ok(decision),
            Err(error) => {
                let retry_ms = u64::try_from(SHARED_RETRY.as_millis()).unwrap_or(u64::MAX);
                self.skip_until_ms
                    .store(self.now_ms().saturating_add(retry_ms), Ordering::Relaxed);
                tracing::debug!(error = %error_chain(&error), "shared rate limiter failed; limiting in process");
                Ok(self.local.acquire_now(limits))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use files_core::{DeviceId, TenantId};
    use uuid::Uuid;

    use super::*;

    fn device_limit(device: u128, requests: u64) -> RateLimit {
        RateLimit {
            key: RateKey::Device(
                TenantId::from_uuid(Uuid::from_u128(1)),
                DeviceId::from_uuid(Uuid::from_u128(device)),
            ),
            requests,
            period: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_burst_of_the_per_period_figure_passes_then_one_every_interval() {
        let limiter = LocalRateLimiter::default();
        let limit = [device_limit(2, 6)];
        let decisions: Vec<_> = (0..12).map(|_| limiter.acquire_now(&limit)).collect();
        let admitted = decisions.iter().filter(|d| **d == RateDecision::Admitted).count();
        assert_eq!(admitted, 6, "{decisions:?}");
        let Some(RateDecision::Refused { retry_after }) = decisions.last() else {
            panic!("the last of 12 is refused: {decisions:?}");
        };
        assert!(
            *retry_after > Duration::from_secs(8) && *retry_after <= Duration::from_secs(10),
            "one request every 10 s: {retry_after:?}"
        );
        assert_eq!(
            limiter.acquire_now(&[device_limit(3, 6)]),
            RateDecision::Admitted,
            "another device has its own"
        );
    }

    #[test]
    fn a_changed_limit_is_a_new_cell() {
        let limiter = LocalRateLimiter::default();
        assert_eq!(limiter.acquire_now(&[device_limit(2, 1)]), RateDecision::Admitted);
        assert!(matches!(
            limiter.acquire_now(&[device_limit(2, 1)]),
            RateDecision::Refused { .. }
        ));
        assert_eq!(limiter.acquire_now(&[device_limit(2, 2)]), RateDecision::Admitted);
    }

    #[derive(Default)]
    struct Down {
        asked: AtomicU64,
    }

    #[async_trait]
    impl RateLimiter for Down {
        async fn acquire(&self, _: &[RateLimit]) -> Result<RateDecision, PortError> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            Err(PortError::unavailable(std::io::Error::other("down")))
        }
    }

    #[tokio::test]
    async fn a_failing_shared_limiter_falls_back_on_the_local_one_and_is_left_alone_a_while() {
        let down = Arc::new(Down::default());
        let limiter = FallbackRateLimiter::new(down.clone(), LocalRateLimiter::default());
        let limit = [device_limit(2, 2)];
        let mut admitted = 0;
        for _ in 0..5 {
            if limiter.acquire(&limit).await.ok() == Some(RateDecision::Admitted) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 2, "limited in process, none failed");
        assert_eq!(down.asked.load(Ordering::Relaxed), 1, "asked once, then left alone");
    }
}
