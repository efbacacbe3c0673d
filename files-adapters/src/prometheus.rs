//! Prometheus metrics of the service, in one registry: the core's [`files_core::Metrics`] port,
//! plus the HTTP series the server records and the text format it serves.
//!
//! Per-device series are capped: the first `max_devices` devices seen get their own label
//! value, every later one is counted under `device="_other"`, so a fleet of millions cannot
//! explode the metrics store.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use files_core::{
    CacheOperation, CacheOutcome, Dependency, DeviceId, FileOperation, JanitorAction, KeySetRefresh, LimitRefusal,
    Owner, StorageEventOutcome, TenantId, TokenOutcome,
};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
    exponential_buckets,
};

/// The label value for devices over the cap.
pub const OTHER_DEVICES: &str = "_other";
/// The label value for tenant-root files in per-device series.
pub const TENANT_ROOT: &str = "_tenant";

/// All metrics of one server.
#[derive(Debug)]
pub struct Prometheus {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    token_verifications: IntCounterVec,
    /// `files_token_cache_lookups_total` by outcome, resolved once: counted on every request.
    token_cache_hits: IntCounter,
    token_cache_misses: IntCounter,
    file_operations_tenant: IntCounterVec,
    limit_refusals: IntCounterVec,
    file_operations_device: IntCounterVec,
    cache_operations: IntCounterVec,
    cache_duration: HistogramVec,
    storage_events: IntCounterVec,
    key_set_refreshes: IntCounterVec,
    outbox_depth: IntGauge,
    outbox_lag: Gauge,
    outbox_publishes: IntCounterVec,
    janitor_actions: IntCounterVec,
    pending_uploads: IntGauge,
    dependency_calls: HistogramVec,
    /// The near cache's state and lookups (`files_near_cache_*`).
    near_cache_tracking: IntGauge,
    near_cache_tracking_losses: IntCounter,
    near_cache_hits: IntCounter,
    near_cache_misses: IntCounter,
    devices: Mutex<HashSet<DeviceId>>,
    max_devices: usize,
}

/// A metric could not be registered (a programming error: a duplicate name).
#[derive(Debug, thiserror::Error)]
#[error("cannot register metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn latency_buckets() -> Vec<f64> {
    // 0.5 ms .. ~16 s
    exponential_buckets(0.0005, 2.0, 16).unwrap_or_else(|_| prometheus::DEFAULT_BUCKETS.to_vec())
}

impl Prometheus {
    /// A fresh registry with every metric registered.
    ///
    /// # Errors
    /// [`MetricsError`] if a metric cannot be registered.
    pub fn new(max_devices: usize) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| -> Result<HistogramVec, MetricsError> {
            let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let int_counter = |name: &str, help: &str| -> Result<IntCounter, MetricsError> {
            let metric = IntCounter::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let token_cache = counter(
            "files_token_cache_lookups_total",
            "Lookups in the verified-token cache by outcome (hit: the signature check was skipped; miss)",
            &["outcome"],
        )?;
        Ok(Self {
            token_cache_hits: token_cache.with_label_values(&[CacheOutcome::Hit.label()]),
            token_cache_misses: token_cache.with_label_values(&[CacheOutcome::Miss.label()]),
            http_requests: counter(
                "files_http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                "files_http_request_duration_seconds",
                "HTTP request latency by route, method and status",
                &["route", "method", "status"],
            )?,
            token_verifications: counter(
                "files_token_verifications_total",
                "Bearer token verifications by outcome",
                &["outcome"],
            )?,
            limit_refusals: counter(
                "files_limit_refusals_total",
                "Requests refused by a tenant's limits, by tenant and reason (the error code)",
                &["tenant_id", "reason"],
            )?,
            file_operations_tenant: counter(
                "files_tenant_operations_total",
                "File operations by tenant and operation",
                &["tenant", "operation"],
            )?,
            file_operations_device: counter(
                "files_device_operations_total",
                "File operations by device (capped; the rest under _other) and operation",
                &["device", "operation"],
            )?,
            cache_operations: counter(
                "files_cache_operations_total",
                "Cache calls by operation and outcome (hit, miss, written, error)",
                &["operation", "outcome"],
            )?,
            cache_duration: histogram("files_cache_duration_seconds", "Cache call latency", &["operation"])?,
            storage_events: counter(
                "files_storage_events_total",
                "Store notifications by outcome",
                &["outcome"],
            )?,
            key_set_refreshes: counter(
                "files_key_set_refreshes_total",
                "Fetches of the token key set by outcome (updated, failed)",
                &["outcome"],
            )?,
            outbox_depth: {
                let gauge = IntGauge::new("files_outbox_depth", "Events recorded and not yet published")?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            outbox_lag: {
                let gauge = Gauge::new("files_outbox_lag_seconds", "Age of the oldest unpublished event")?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            outbox_publishes: counter(
                "files_outbox_publishes_total",
                "Outbox publications by outcome (published events, failed attempts)",
                &["outcome"],
            )?,
            janitor_actions: {
                let actions = counter(
                    "files_janitor_actions_total",
                    "What the janitor did: completed, expired, swept, orphan_deleted, outbox_pruned (rows), failed",
                    &["action"],
                )?;
                // Every action's series from the start (at 0), so alerts on them have a series.
                for action in JanitorAction::COUNTED {
                    actions.with_label_values(&[action.label()]);
                }
                actions
            },
            pending_uploads: {
                let gauge = IntGauge::new("files_pending_uploads", "Uploads pending (as the janitor last counted)")?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            dependency_calls: histogram(
                "files_dependency_call_duration_seconds",
                "Calls to the database and the object store by operation and outcome (ok, error)",
                &["dependency", "operation", "outcome"],
            )?,
            near_cache_tracking: int_gauge(
                "files_near_cache_tracking",
                "1 while the Redis near cache tracks its keys and serves reads, else 0",
            )?,
            near_cache_tracking_losses: int_counter(
                "files_near_cache_tracking_losses_total",
                "Times the Redis near cache lost its key tracking (reads go to Redis until it is back)",
            )?,
            near_cache_hits: int_counter(
                "files_near_cache_hits_total",
                "Cache reads served by the near cache in process",
            )?,
            near_cache_misses: int_counter(
                "files_near_cache_misses_total",
                "Cache reads the near cache did not serve (read from Redis)",
            )?,
            registry,
            devices: Mutex::new(HashSet::new()),
            max_devices,
        })
    }

    /// One HTTP request. `route` must be a route pattern (or a fixed word such as
    /// `unmatched`), never the path as sent; the method is labelled by [`method_label`], so
    /// that no caller can add series by inventing methods.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, method_label(method), status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    fn device_label(&self, device: DeviceId) -> String {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        if devices.contains(&device) || devices.len() < self.max_devices && devices.insert(device) {
            device.to_string()
        } else {
            OTHER_DEVICES.to_owned()
        }
    }

    /// Everything, in the Prometheus text format.
    ///
    /// # Errors
    /// [`MetricsError`] if encoding fails.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

impl files_core::Metrics for Prometheus {
    fn file_operation(&self, tenant: TenantId, owner: Owner, operation: FileOperation) {
        let operation = operation.label();
        self.file_operations_tenant
            .with_label_values(&[tenant.to_string().as_str(), operation])
            .inc();
        let device = match owner {
            Owner::Tenant => TENANT_ROOT.to_owned(),
            Owner::Device(device) => self.device_label(device),
        };
        self.file_operations_device
            .with_label_values(&[device.as_str(), operation])
            .inc();
    }

    fn limit_refusal(&self, tenant: TenantId, refusal: LimitRefusal) {
        self.limit_refusals
            .with_label_values(&[tenant.to_string().as_str(), refusal.label()])
            .inc();
    }

    fn token_verification(&self, outcome: TokenOutcome) {
        self.token_verifications.with_label_values(&[outcome.label()]).inc();
    }

    fn token_cache(&self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => self.token_cache_hits.inc(),
            _ => self.token_cache_misses.inc(),
        }
    }

    fn key_set_refresh(&self, outcome: KeySetRefresh) {
        self.key_set_refreshes.with_label_values(&[outcome.label()]).inc();
    }

    fn cache_call(&self, operation: CacheOperation, outcome: CacheOutcome, elapsed: Duration) {
        self.cache_operations
            .with_label_values(&[operation.label(), outcome.label()])
            .inc();
        self.cache_duration
            .with_label_values(&[operation.label()])
            .observe(elapsed.as_secs_f64());
    }

    fn dependency_call(&self, dependency: Dependency, operation: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.dependency_calls
            .with_label_values(&[dependency.label(), operation, outcome])
            .observe(elapsed.as_secs_f64());
    }

    fn storage_event(&self, outcome: StorageEventOutcome) {
        self.storage_events.with_label_values(&[outcome.label()]).inc();
    }

    fn outbox_published(&self, events: u64) {
        self.outbox_publishes.with_label_values(&["published"]).inc_by(events);
    }

    fn outbox_publish_failed(&self) {
        self.outbox_publishes.with_label_values(&["failed"]).inc();
    }

    fn outbox_state(&self, depth: u64, lag_seconds: f64) {
        self.outbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.outbox_lag.set(lag_seconds);
    }

    fn janitor_action(&self, action: JanitorAction, count: u64) {
        self.janitor_actions.with_label_values(&[action.label()]).inc_by(count);
    }

    fn pending_uploads(&self, count: u64) {
        self.pending_uploads.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn near_cache_tracking(&self, on: bool) {
        self.near_cache_tracking.set(i64::from(on));
    }

    fn near_cache_tracking_lost(&self) {
        self.near_cache_tracking_losses.inc();
    }

    fn near_cache_lookup(&self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => self.near_cache_hits.inc(),
            _ => self.near_cache_misses.inc(),
        }
    }
}

/// The standard HTTP methods (RFC 9110 and PATCH), the only values of the `method` label.
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// The `method` label of a request: its method when standard, else `other`. A method is any
/// token a client makes up (`M123…`), and each label value is a series kept for the life of the
/// process.
#[must_use]
pub fn method_label(method: &str) -> &'static str {
    HTTP_METHODS.into_iter().find(|m| *m == method).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;
    use files_core::Metrics as _;
    use uuid::Uuid;

    #[test]
    fn made_up_methods_share_one_series() -> Result<(), MetricsError> {
        let metrics = Prometheus::new(2)?;
        for n in 0..100 {
            metrics.observe_http("/healthz", &format!("M{n}XXXX"), 405, Duration::from_millis(1));
        }
        for method in HTTP_METHODS {
            metrics.observe_http("/healthz", method, 200, Duration::from_millis(1));
        }
        // Methods are case-sensitive: `get` is not GET.
        metrics.observe_http("/healthz", "get", 405, Duration::from_millis(1));
        let text = metrics.render()?;
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("files_http_requests_total{"))
            .collect();
        assert_eq!(series.len(), HTTP_METHODS.len() + 1, "{series:?}");
        assert!(
            series.contains(&"files_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"} 101"),
            "{series:?}"
        );
        assert!(!text.contains("XXXX"));
        Ok(())
    }

    #[test]
    fn device_series_are_capped() -> Result<(), MetricsError> {
        let metrics = Prometheus::new(2)?;
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        for n in 0..5 {
            let device = DeviceId::from_uuid(Uuid::from_u128(100 + n));
            metrics.file_operation(tenant, Owner::Device(device), FileOperation::UploadUrl);
        }
        // A device seen before the cap keeps its own series.
        metrics.file_operation(
            tenant,
            Owner::Device(DeviceId::from_uuid(Uuid::from_u128(100))),
            FileOperation::UploadUrl,
        );
        let text = metrics.render()?;
        let device_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("files_device_operations_total{"))
            .collect();
        assert_eq!(device_lines.len(), 3, "{device_lines:?}");
        assert!(
            text.contains(&format!("device=\"{OTHER_DEVICES}\",operation=\"upload_url\"}} 3")),
            "{text}"
        );
        assert!(
            text.contains("device=\"00000000-0000-0000-0000-000000000064\",operation=\"upload_url\"} 2"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn token_cache_lookups_are_counted_by_outcome() -> Result<(), MetricsError> {
        let metrics = Prometheus::new(2)?;
        metrics.token_cache(CacheOutcome::Hit);
        metrics.token_cache(CacheOutcome::Hit);
        metrics.token_cache(CacheOutcome::Miss);
        let text = metrics.render()?;
        assert!(
            text.contains("files_token_cache_lookups_total{outcome=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("files_token_cache_lookups_total{outcome=\"miss\"} 1"),
            "{text}"
        );
        Ok(())
    }

    /// The typed labels of key set refreshes, cache calls and dependency calls render as the
    /// label values dashboards select on.
    #[test]
    fn key_set_cache_and_dependency_labels_render_as_dashboards_expect() -> Result<(), MetricsError> {
        let metrics = Prometheus::new(2)?;
        metrics.key_set_refresh(KeySetRefresh::Updated);
        metrics.key_set_refresh(KeySetRefresh::Failed);
        metrics.cache_call(CacheOperation::GetFile, CacheOutcome::Hit, Duration::from_millis(1));
        metrics.cache_call(
            CacheOperation::RemoveLatest,
            CacheOutcome::Error,
            Duration::from_millis(1),
        );
        metrics.dependency_call(Dependency::Database, "insert", true, Duration::from_millis(1));
        metrics.dependency_call(Dependency::ObjectStore, "inspect", false, Duration::from_millis(1));
        let text = metrics.render()?;
        for series in [
            "files_key_set_refreshes_total{outcome=\"updated\"} 1",
            "files_key_set_refreshes_total{outcome=\"failed\"} 1",
            "files_cache_operations_total{operation=\"get_file\",outcome=\"hit\"} 1",
            "files_cache_operations_total{operation=\"remove_latest\",outcome=\"error\"} 1",
            "files_dependency_call_duration_seconds_count{dependency=\"database\",operation=\"insert\",outcome=\"ok\"} 1",
            "files_dependency_call_duration_seconds_count{dependency=\"object_store\",operation=\"inspect\",outcome=\"error\"} 1",
        ] {
            assert!(text.contains(series), "{series} not in {text}");
        }
        Ok(())
    }
}
