//! [`RateLimiter`] on Redis: every instance counts a key's requests in one place. Each limit
//! is a GCRA cell (its theoretical arrival time, in µs on Redis's clock) at
//! `{prefix}:v1:rate:{tenant}:{device or _tenant}`, checked and moved for all the request's
//! limits in one script: one round trip, atomic, one clock for all instances.
//!
//! A call that fails is an error the service's [`crate::rate::FallbackRateLimiter`] answers
//! from its own count. A retried call (a pooled connection found dead) may count a request
//! twice if the first attempt ran: only when Redis restarted under it.

use std::time::Duration;

use async_trait::async_trait;
use files_core::file::TENANT_ROOT_SEGMENT;
use files_core::{PortError, RateDecision, RateKey, RateLimit, RateLimiter};

use super::{RedisCache, driver, push_uuid};

/// GCRA over every key of the request: `KEYS[i]` a cell, `ARGV[2i-1]` its emission interval
/// and `ARGV[2i]` its burst tolerance, in µs. Admits when every cell admits, and then moves
/// every cell (each key expires once its cell is full again); answers 0, or the µs to wait.
const ACQUIRE_SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_tat = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  if tat - tolerance > now then
    wait = math.max(wait, tat - tolerance - now)
  end
  next_tat[i] = tat + interval
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local ttl = math.floor((next_tat[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', next_tat[i]), 'PX', ttl)
end
return 0
";

/// `limit`'s emission interval and burst tolerance in µs: one request every
/// `period / requests`, `requests` at once.
fn cell(limit: &RateLimit) -> (u64, u64) {
    let requests = limit.requests.max(1);
    let period = u64::try_from(limit.period.as_micros()).unwrap_or(u64::MAX);
    let interval = (period / requests).max(1);
    (interval, interval.saturating_mul(requests - 1))
}

impl RedisCache {
    /// `{prefix}:v1:rate:{tenant}:{device or _tenant}`.
    fn rate_key(&self, key: RateKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 10 + 2 * 37);
        out.push_str(&self.prefix);
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
impl RateLimiter for RedisCache {
    async fn acquire(&self, limits: &[RateLimit]) -> Result<RateDecision, PortError> {
        if limits.is_empty() {
            return Ok(RateDecision::Admitted);
        }
        let mut command = driver::cmd("EVAL");
        command.arg(ACQUIRE_SCRIPT).arg(limits.len());
        for limit in limits {
            command.arg(self.rate_key(limit.key));
        }
        for limit in limits {
            let (interval, tolerance) = cell(limit);
            command.arg(interval).arg(tolerance);
        }
        let wait: i64 = self.run("rate_limit", &command).await?;
        Ok(match u64::try_from(wait) {
            Ok(0) | Err(_) => RateDecision::Admitted,
            Ok(micros) => RateDecision::Refused {
                retry_after: Duration::from_micros(micros),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_a_minute_is_one_every_ten_seconds_six_at_once() {
        let limit = RateLimit {
            key: RateKey::Tenant(files_core::TenantId::from_uuid(uuid::Uuid::nil())),
            requests: 6,
            period: Duration::from_secs(60),
        };
        assert_eq!(cell(&limit), (10_000_000, 50_000_000));
        let one = RateLimit { requests: 1, ..limit };
        assert_eq!(cell(&one), (60_000_000, 0));
    }
}
