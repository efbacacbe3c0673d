//! The fault matrix under load: workers keep asking for upload and download URLs (and one keeps
//! completing uploads, for events) while Redis, Postgres, RabbitMQ and the JWKS endpoint are
//! each cut for a few seconds and restored. What must hold (docs/operations.md has the figures
//! of a run):
//! - Redis: no request fails.
//! - Postgres: only 503s, none slower than 6 s, and back without a restart.
//! - RabbitMQ: no request fails, no event is lost.
//! - the JWKS endpoint: no request fails, tokens never seen before included (the workers' one
//!   token is answered from the verified-token cache, which would hide the outage).
//!
//! Each phase also shows that its cut was felt: a counter of the failure it causes moved
//! during the phase (cache errors, failed database calls, failed publishes, failed key-set
//! refreshes), so a cut that silently did nothing cannot pass for a service that rode it out.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::app::AppOptions;
use files_core::FileUploaded;
use files_testkit::amqp::{self, TestQueue};
use files_testkit::eventually;
use files_testkit::proxy::TcpProxy;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

use crate::helpers::{Api, Harness, device_scope};
use crate::real::{RedisRoute, stack_with};

const WORKERS: usize = 6;
const CUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Redis,
    Postgres,
    RabbitMq,
    Jwks,
}

impl Fault {
    /// The counter that moves when the service meets this dependency cut: the proof that the
    /// cut was felt.
    const fn felt(self) -> &'static str {
        match self {
            Self::Redis => r#"files_cache_operations_total{outcome="error"}"#,
            Self::Postgres => r#"files_dependency_call_duration_seconds_count{dependency="database",outcome="error"}"#,
            Self::RabbitMq => r#"files_outbox_publishes_total{outcome="failed"}"#,
            Self::Jwks => r#"files_key_set_refreshes_total{outcome="failed"}"#,
        }
    }
}

/// One request: its status (`None`: no answer at all) and how long it took.
type Outcome = (Option<StatusCode>, Duration);

#[derive(Debug, Default)]
struct Phase {
    requests: Vec<Outcome>,
    completed: Vec<String>,
}

impl Phase {
    fn failures(&self) -> usize {
        self.requests
            .iter()
            .filter(|(s, _)| !s.is_some_and(|s| s.is_success()))
            .count()
    }

    fn slowest(&self) -> Duration {
        self.requests.iter().map(|(_, d)| *d).max().unwrap_or_default()
    }
}

async fn timed(request: impl Future<Output = Option<StatusCode>>) -> Outcome {
    let started = Instant::now();
    let status = request.await;
    (status, started.elapsed())
}

/// Upload-URL and download-URL requests until `stop`.
async fn url_worker(api: Api, scope: String, token: String, stop: Arc<AtomicBool>, phase: Arc<Mutex<Phase>>) {
    let mut n = 0_u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let upload = timed(async {
            let (status, _) = api.upload_url(&scope, &token, &format!("load-{n}.bin"), b"load").await;
            Some(status)
        })
        .await;
        let download = timed(async {
            let (status, _) = api
                .download_url(&scope, &token, &json!({"file_name": "seed.txt"}))
                .await;
            Some(status)
        })
        .await;
        let mut phase = phase.lock().await;
        phase.requests.push(upload);
        phase.requests.push(download);
    }
}

/// Whole uploads (URL, PUT, complete) until `stop`; completed ones must each yield an event.
async fn upload_worker(
    api: Api,
    scope: String,
    tenant: files_core::TenantId,
    token: String,
    stop: Arc<AtomicBool>,
    phase: Arc<Mutex<Phase>>,
) {
    let mut n = 0_u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let content = format!("event {n} {}", uuid::Uuid::new_v4());
        let started = Instant::now();
        let (status, ticket) = api
            .upload_url(&scope, &token, &format!("ev-{n}.txt"), content.as_bytes())
            .await;
        if status != StatusCode::CREATED {
            phase.lock().await.requests.push((Some(status), started.elapsed()));
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let put = api.put(&ticket, content.as_bytes()).await;
        assert!(
            put.status().is_success(),
            "the store itself is never cut: {}",
            put.status()
        );
        let file_id = ticket["file_id"].as_str().unwrap().to_owned();
        let (status, _) = api.complete(tenant, &file_id, &token).await;
        let mut phase = phase.lock().await;
        phase.requests.push((Some(status), started.elapsed()));
        if status == StatusCode::OK {
            phase.completed.push(file_id);
        }
    }
}

/// With the JWKS endpoint failing: waits until a key-set refresh has failed, then asks for
/// upload URLs with tokens never seen before (each checked against the last good keys, not
/// answered from the verified-token cache) until `until`, at least once. Their outcomes go to
/// `phase`; the count of them.
async fn fresh_tokens_during_the_jwks_outage(h: &Harness, scope: &str, until: Instant, phase: &Mutex<Phase>) -> usize {
    let failed = Fault::Jwks.felt();
    let before = h.counter_or_zero(failed).await;
    assert!(
        eventually(Duration::from_secs(15), async || h.counter_or_zero(failed).await
            > before)
        .await,
        "Jwks: no failed key-set refresh counted with the endpoint failing"
    );
    let misses = "files_token_cache_lookups_total{outcome=\"miss\"}";
    let misses_before = h.counter_or_zero(misses).await;
    let mut sent = 0;
    while sent == 0 || Instant::now() < until {
        sent += 1;
        let token = h.fresh_device_token();
        let outcome = timed(async {
            let (status, _) = h
                .api
                .upload_url(scope, &token, &format!("fresh-{sent}.bin"), b"fresh")
                .await;
            Some(status)
        })
        .await;
        phase.lock().await.requests.push(outcome);
    }
    assert!(
        h.counter_or_zero(misses).await >= misses_before + sent as f64,
        "Jwks: tokens never seen before were answered from the verified-token cache"
    );
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix_under_load() {
    let test = "fault_matrix_under_load";
    let Some(amqp_url) = amqp::available(test).await else {
        return;
    };
    let (broker, proxied_amqp) = TcpProxy::for_url(&amqp_url).await.unwrap();
    let options = AppOptions::default()
        .var("FILES_AMQP_URL", proxied_amqp)
        .var("FILES_AMQP_TIMEOUT_MS", "1000")
        .var("FILES_JWKS_REFRESH_SECS", "1")
        .var("FILES_JWKS_MIN_REFETCH_SECS", "1");
    let Some(s) = stack_with(test, true, RedisRoute::Proxy, options).await else {
        return;
    };
    let h = &s.h;
    let mut queue = TestQueue::bind(&amqp_url, "files.events", &format!("file.uploaded.{}.*", h.tenant))
        .await
        .unwrap();
    let token = h.device_token();
    let scope = device_scope(h.tenant, h.device);
    h.api.upload(&scope, h.tenant, &token, "seed.txt", b"seed").await;
    assert!(queue.next(Duration::from_secs(10)).await.is_some(), "the seed's event");

    let mut report = Vec::new();
    let mut expected_events = HashSet::new();
    for fault in [Fault::Redis, Fault::Postgres, Fault::RabbitMq, Fault::Jwks] {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(Mutex::new(Phase::default()));
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let api = Api::new(h.app.address.clone());
            workers.push(tokio::spawn(url_worker(
                api,
                scope.clone(),
                token.clone(),
                stop.clone(),
                phase.clone(),
            )));
        }
        let api = Api::new(h.app.address.clone());
        workers.push(tokio::spawn(upload_worker(
            api,
            scope.clone(),
            h.tenant,
            token.clone(),
            stop.clone(),
            phase.clone(),
        )));

        tokio::time::sleep(Duration::from_secs(1)).await; // load before the cut
        let felt_before = h.counter_or_zero(fault.felt()).await;
        match fault {
            Fault::Redis => s.redis_proxy.as_ref().unwrap().cut(),
            Fault::Postgres => s.pg_proxy.as_ref().unwrap().cut(),
            Fault::RabbitMq => broker.cut(),
            Fault::Jwks => h.dsts.fail(),
        }
        let restore_at = Instant::now() + CUT; // the outage lasts this long
        if fault == Fault::Jwks {
            let fresh = fresh_tokens_during_the_jwks_outage(h, &scope, restore_at, &phase).await;
            eprintln!("fault matrix: Jwks: {fresh} tokens never seen before sent during the outage");
        }
        tokio::time::sleep(restore_at.saturating_duration_since(Instant::now())).await;
        match fault {
            Fault::Redis => s.redis_proxy.as_ref().unwrap().restore(),
            Fault::Postgres => s.pg_proxy.as_ref().unwrap().restore(),
            Fault::RabbitMq => broker.restore(),
            Fault::Jwks => h.dsts.recover(),
        }
        // Back without a restart: a fresh request succeeds again.
        let recovered = eventually(Duration::from_secs(20), async || {
            h.api.upload_url(&scope, &token, "probe.bin", b"p").await.0 == StatusCode::CREATED
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await; // load after the restore
        stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.unwrap();
        }
        let phase = Arc::try_unwrap(phase).unwrap().into_inner();
        let felt = h.counter_or_zero(fault.felt()).await - felt_before;
        expected_events.extend(phase.completed.iter().cloned());
        eprintln!(
            "fault matrix: {fault:?} cut {}s: {} requests, {} failed, slowest {} ms, {} uploads completed, felt: {} +{felt}",
            CUT.as_secs(),
            phase.requests.len(),
            phase.failures(),
            phase.slowest().as_millis(),
            phase.completed.len(),
            fault.felt()
        );
        assert!(recovered, "{fault:?}: the service did not recover by itself");
        assert!(!phase.requests.is_empty(), "{fault:?}: no load");
        assert!(
            felt > 0.0,
            "{fault:?}: the cut was not felt ({} did not move)",
            fault.felt()
        );
        match fault {
            Fault::Redis | Fault::RabbitMq | Fault::Jwks => {
                let failed: Vec<_> = phase
                    .requests
                    .iter()
                    .filter(|(s, _)| !s.is_some_and(|s| s.is_success()))
                    .collect();
                assert!(
                    failed.is_empty(),
                    "{fault:?}: {} requests failed: {failed:?}",
                    failed.len()
                );
            }
            Fault::Postgres => {
                let other: Vec<_> = phase
                    .requests
                    .iter()
                    .filter(|(s, _)| !s.is_some_and(|s| s.is_success() || s == StatusCode::SERVICE_UNAVAILABLE))
                    .collect();
                assert!(other.is_empty(), "Postgres: answers other than 503: {other:?}");
                assert!(phase.failures() > 0, "Postgres: the cut was not felt");
                assert!(
                    phase.slowest() < Duration::from_secs(6),
                    "Postgres: slowest {:?}",
                    phase.slowest()
                );
            }
        }
        report.push((fault, phase.requests.len(), phase.failures(), phase.completed.len()));
    }

    // No event lost: every completed upload's event arrives (at least once).
    let mut seen = HashSet::new();
    let until = Instant::now() + Duration::from_secs(60);
    while !expected_events.is_subset(&seen) && Instant::now() < until {
        let Some(message) = queue.next(Duration::from_secs(5)).await else {
            continue;
        };
        let event: FileUploaded = message.json().unwrap();
        seen.insert(event.file.file_id.to_string());
    }
    let missing: Vec<_> = expected_events.difference(&seen).collect();
    eprintln!(
        "fault matrix: {} uploads completed across the faults, {} events received, {} missing",
        expected_events.len(),
        expected_events.intersection(&seen).count(),
        missing.len()
    );
    assert!(missing.is_empty(), "events lost: {missing:?}");
    assert!(!expected_events.is_empty());
}
