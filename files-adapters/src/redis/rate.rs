//! [`RateLimiter`] on Redis: every instance counts a key's requests in one place. Each limit
//! is a GCRA cell (its theoretical arrival time, in µs on Redis's clock) at
//! `{prefix}:v1:rate:{tenant}:{device or _tenant}`, checked and moved for all the request's
//! limits in one script: one round trip, atomic, one clock for all instances.
//!
//! A request does not always need the round trip: an instance takes a **lease** of up to
//! [`lease_size`] requests of a limit at once (1 for small limits, up to 1,000 for large ones)
//! and spends it in process within [`LEASE_LIFETIME`]. Redis counts a leased request as made,
//! so leases never let more through than the limit; what an instance leased and did not spend
//! is lost, so a limit can admit a little less than it allows (at most 1 % of its burst per
//! instance and second). A small limit (a device's 120 a minute) leases one request at a time:
//! exact.
//!
//! A call that fails is an error the service's [`crate::rate::FallbackRateLimiter`] answers
//! from its own count. A retried call (a pooled connection found dead) may count a request
//! twice if the first attempt ran: only when Redis restarted under it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use files_core::file::TENANT_ROOT_SEGMENT;
use files_core::{PortError, RateDecision, RateKey, RateLimit, RateLimiter};

use super::{RedisCache, driver, push_uuid};

/// GCRA over every key of the request: `KEYS[i]` a cell, `ARGV[3i-2]` its emission interval
/// and `ARGV[3i-1]` its burst tolerance, in µs, and `ARGV[3i]` how many requests to take from
/// it (0: none, the instance holds a lease). Takes from each cell as many as it has, up to what
/// was asked, and at least one from every cell asked: otherwise nothing. Answers `{0, taken_1,
/// taken_2, ...}`, or `{µs to wait}`. A key expires once its cell is full again.
const ACQUIRE_SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local taken = {}
local next_tat = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local want = tonumber(ARGV[3 * i])
  taken[i] = 0
  if want > 0 then
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local fit = math.floor((now + tolerance - tat) / interval) + 1
    if fit < 1 then
      wait = math.max(wait, tat - tolerance - now)
    else
      taken[i] = math.min(want, fit)
      next_tat[i] = tat + taken[i] * interval
    end
  end
end
if wait > 0 then return {wait} end
local answer = {0}
for i, key in ipairs(KEYS) do
  if taken[i] > 0 then
    local ttl = math.floor((next_tat[i] - now) / 1000) + 1
    redis.call('SET', key, string.format('%.0f', next_tat[i]), 'PX', ttl)
  end
  answer[i + 1] = taken[i]
end
return answer
";

/// How long a lease may be spent: a request admitted from it was counted by Redis at most
/// this long before it was made.
pub const LEASE_LIFETIME: Duration = Duration::from_secs(1);

/// How many keys' leases an instance keeps at most.
const LEASED_KEYS: u64 = 100_000;

/// How many requests of `limit` an instance takes from Redis at once: 1 % of its burst, at
/// least 1 and at most 1,000. A device's 120 a minute: 1 (every request asks Redis); a
/// tenant's 500 a second: 5; a limit of 100,000 a second or more: 1,000.
#[must_use]
pub fn lease_size(limit: &RateLimit) -> u64 {
    (limit.requests / 100).clamp(1, 1000)
}

/// `limit`'s emission interval and burst tolerance in µs: one request every
/// `period / requests`, `requests` at once.
fn cell(limit: &RateLimit) -> (u64, u64) {
    let requests = limit.requests.max(1);
    let period = u64::try_from(limit.period.as_micros()).unwrap_or(u64::MAX);
    let interval = (period / requests).max(1);
    (interval, interval.saturating_mul(requests - 1))
}

/// Requests of one limit this instance took from Redis and has not spent yet.
#[derive(Debug, Default)]
struct Lease {
    left: u64,
    until: Option<Instant>,
}

impl Lease {
    /// Spends one request of the lease, if it holds one still valid.
    fn spend(&mut self, now: Instant) -> bool {
        let holds = self.holds(now);
        if holds {
            self.left -= 1;
        }
        holds
    }

    /// Whether it holds a request still valid.
    fn holds(&self, now: Instant) -> bool {
        self.left > 0 && self.until.is_some_and(|until| now < until)
    }
}

/// The [`RateLimiter`] on a [`RedisCache`]'s connections, with this instance's leases.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: RedisCache,
    leases: moka::sync::Cache<(RateKey, u64, Duration), Arc<Mutex<Lease>>>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("redis", &self.redis)
            .field("leases", &self.leases.entry_count())
            .finish()
    }
}

impl RedisRateLimiter {
    /// A limiter on `redis`'s pool, keys under its prefix.
    #[must_use]
    pub fn new(redis: RedisCache) -> Self {
        Self {
            redis,
            leases: moka::sync::Cache::builder()
                .max_capacity(LEASED_KEYS)
                .time_to_idle(LEASE_LIFETIME * 2)
                .build(),
        }
    }

    fn lease(&self, limit: &RateLimit) -> Arc<Mutex<Lease>> {
        self.leases
            .get_with((limit.key, limit.requests, limit.period), Default::default)
    }

    /// `{prefix}:v1:rate:{tenant}:{device or _tenant}`.
    fn key(&self, key: RateKey) -> String {
        let prefix = &self.redis.prefix;
        let mut out = String::with_capacity(prefix.len() + 10 + 2 * 37);
        out.push_str(prefix);
        out.push_str(":v1:rate:");
        match key {
            RateKey::Device(tenant, device) => {
                push_uuid(&mut out, tenant.as_uuid());
                out.push(':');
                push_uuid(&mut out, device.as_uuid());
            }
            RateKey::Tenant(tenant) => {
                push_uuid(&mut out, tenant.as_uuid());
                out.push(':');
                out.push_str(TENANT_ROOT_SEGMENT);
            }
        }
        out
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, limits: &[RateLimit]) -> Result<RateDecision, PortError> {
        let leases: Vec<_> = limits.iter().map(|limit| self.lease(limit)).collect();
        // Spend from every lease this instance holds; when they cover every limit, no round
        // trip. Otherwise Redis is asked for the others, and what was spent here is given back
        // if it refuses (a refused request counts toward no limit).
        let now = Instant::now();
        let spent: Vec<bool> = leases
            .iter()
            .map(|lease| lease.lock().unwrap_or_else(PoisonError::into_inner).spend(now))
            .collect();
        if !spent.contains(&false) {
            return Ok(RateDecision::Admitted);
        }
        let mut command = driver::cmd("EVAL");
        command.arg(ACQUIRE_SCRIPT).arg(limits.len());
        for limit in limits {
            command.arg(self.key(limit.key));
        }
        for (limit, spent) in limits.iter().zip(&spent) {
            let (interval, tolerance) = cell(limit);
            let want = if *spent { 0 } else { lease_size(limit) };
            command.arg(interval).arg(tolerance).arg(want);
        }
        let answer = self.redis.run::<Vec<i64>>("rate_limit", &command).await;
        let wait = answer.as_ref().map_or(0, |answer| answer.first().copied().unwrap_or(0));
        if answer.is_err() || wait > 0 {
            for (lease, spent) in leases.iter().zip(&spent) {
                if *spent {
                    lease.lock().unwrap_or_else(PoisonError::into_inner).left += 1;
                }
            }
        }
        let answer = answer?;
        if wait > 0 {
            return Ok(RateDecision::Refused {
                retry_after: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            });
        }
        let now = Instant::now();
        for ((lease, taken), spent) in leases.iter().zip(answer.iter().skip(1)).zip(&spent) {
            if *spent {
                continue;
            }
            let mut lease = lease.lock().unwrap_or_else(PoisonError::into_inner);
            if !lease.holds(now) {
                lease.left = 0;
            }
            // What was taken, less this request's own.
            lease.left += u64::try_from(*taken).unwrap_or(0).saturating_sub(1);
            lease.until = Some(now + LEASE_LIFETIME);
        }
        Ok(RateDecision::Admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u64, period: Duration) -> RateLimit {
        RateLimit {
            key: RateKey::Tenant(files_core::TenantId::from_uuid(uuid::Uuid::nil())),
            requests,
            period,
        }
    }

    #[test]
    fn six_a_minute_is_one_every_ten_seconds_six_at_once() {
        let six = limit(6, Duration::from_secs(60));
        assert_eq!(cell(&six), (10_000_000, 50_000_000));
        assert_eq!(cell(&limit(1, Duration::from_secs(60))), (60_000_000, 0));
    }

    #[test]
    fn small_limits_lease_one_request_large_ones_up_to_a_thousand() {
        assert_eq!(lease_size(&limit(120, Duration::from_secs(60))), 1);
        assert_eq!(lease_size(&limit(500, Duration::from_secs(1))), 5);
        assert_eq!(lease_size(&limit(1_000_000_000_000, Duration::from_secs(1))), 1000);
    }

    #[test]
    fn a_lease_is_spent_once_per_request_and_not_after_its_lifetime() {
        let now = Instant::now();
        let mut lease = Lease {
            left: 2,
            until: Some(now + LEASE_LIFETIME),
        };
        assert!(lease.spend(now) && lease.spend(now));
        assert!(!lease.spend(now), "spent");
        lease.left = 5;
        assert!(!lease.spend(now + LEASE_LIFETIME), "past its lifetime");
    }
}
