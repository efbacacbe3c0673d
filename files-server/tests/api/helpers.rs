//! A server in process with its embedded store, tokens from a fake DSTS over HTTP.

use std::time::Duration;

use crate::app::{AppOptions, TestApp, spawn_app};
use files_core::{DeviceId, TenantId};
use files_testkit::dsts::{Alg, FakeDsts, TokenClaims};
use files_testkit::{eventually, sha256_hex};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

pub fn new_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v4())
}

pub fn new_device() -> DeviceId {
    DeviceId::from_uuid(Uuid::new_v4())
}

pub fn device_scope(tenant: TenantId, device: DeviceId) -> String {
    format!("/v1/tenants/{tenant}/devices/{device}")
}

pub fn tenant_scope(tenant: TenantId) -> String {
    format!("/v1/tenants/{tenant}")
}

/// The API under test plus what a caller needs to talk to it.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    /// The server's `/metrics` text (each server has its own registry).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // Below the server's keep-alive (5 s): a test that computes for a while (hashing
                // MiBs in a debug build) must not send on a connection the server has closed.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    /// Sends an API request with a bearer token and, when given, a JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::POST, path, token, None).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    /// `POST {scope}/files/upload-url`; status and body.
    pub async fn upload_url(&self, scope: &str, token: &str, name: &str, content: &[u8]) -> (StatusCode, Value) {
        let body = json!({"file_name": name, "sha256": sha256_hex(content), "size": content.len()});
        json_of(self.post(&format!("{scope}/files/upload-url"), token, &body).await).await
    }

    /// PUTs `content` to a ticket's URL with the ticket's headers, as a device does.
    pub async fn put(&self, ticket: &Value, content: &[u8]) -> Response {
        self.put_with(ticket, content, true).await
    }

    /// PUTs `content` with the ticket's headers; `content-length` is the body's own unless
    /// `declared_length` (a client cannot send a body of another length than it declares).
    pub async fn put_with(&self, ticket: &Value, content: &[u8], declared_length: bool) -> Response {
        assert_eq!(ticket["method"], "PUT");
        let mut request = self.client.put(ticket["url"].as_str().unwrap()).body(content.to_vec());
        for (name, value) in ticket["headers"].as_object().unwrap() {
            if name == "content-length" && !declared_length {
                continue;
            }
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
        request.send().await.unwrap()
    }

    /// PUTs `content` with the ticket's headers to a URL the store should refuse (an aborted
    /// multipart upload); whether it did: an error answer, or the connection closed without the
    /// body being read (garage answers before it reads).
    pub async fn put_is_refused(&self, ticket: &Value, content: &[u8]) -> bool {
        let mut request = self.client.put(ticket["url"].as_str().unwrap()).body(content.to_vec());
        for (name, value) in ticket["headers"].as_object().unwrap() {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
        match request.send().await {
            Ok(response) => response.status().is_client_error(),
            Err(error) => error.is_request(),
        }
    }

    pub async fn complete(&self, tenant: TenantId, file_id: &str, token: &str) -> (StatusCode, Value) {
        json_of(
            self.post_empty(&format!("/v1/tenants/{tenant}/files/{file_id}/complete"), token)
                .await,
        )
        .await
    }

    pub async fn download_url(&self, scope: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        json_of(self.post(&format!("{scope}/files/download-url"), token, body).await).await
    }

    /// Upload URL, PUT, complete: the file is available; its id.
    pub async fn upload(&self, scope: &str, tenant: TenantId, token: &str, name: &str, content: &[u8]) -> String {
        let (status, ticket) = self.upload_url(scope, token, name, content).await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        let put = self.put(&ticket, content).await;
        assert!(put.status().is_success(), "PUT answered {}", put.status());
        let file_id = ticket["file_id"].as_str().unwrap().to_owned();
        let (status, body) = self.complete(tenant, &file_id, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "available");
        file_id
    }

    /// GETs a download ticket's URL.
    pub async fn fetch(&self, ticket: &Value) -> (StatusCode, Vec<u8>) {
        assert_eq!(ticket["method"], "GET");
        let response = self.client.get(ticket["url"].as_str().unwrap()).send().await.unwrap();
        (response.status(), response.bytes().await.unwrap().to_vec())
    }

    /// Polls a file's state until it is `state` or the deadline passes.
    pub async fn wait_for_state(&self, tenant: TenantId, file_id: &str, token: &str, state: &str) -> bool {
        eventually(Duration::from_secs(10), async || {
            let (_, body) = json_of(self.get(&format!("/v1/tenants/{tenant}/files/{file_id}"), token).await).await;
            body["state"] == state
        })
        .await
    }
}

/// A Prometheus series as tests name it: `name` or `name{label="value",...}`, any subset of
/// its labels, in any order.
fn parse_series(series: &str) -> (&str, Vec<(&str, &str)>) {
    let Some((name, labels)) = series.split_once('{') else {
        return (series.trim(), Vec::new());
    };
    let labels = labels
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim_matches('"')))
        .collect();
    (name, labels)
}

/// The printed series of the family `name`: each one's labels and value.
fn series_of<'t>(text: &'t str, name: &str) -> Vec<(Vec<(&'t str, &'t str)>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(key, value)| {
            let (family, labels) = parse_series(key);
            (family == name).then(|| value.parse().ok().map(|value| (labels, value)))?
        })
        .collect()
}

/// The sum of the series of `text` (Prometheus text) that `series` names: its family, with at
/// least the labels it gives. `None` when no printed series matches.
pub fn metric_in(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = parse_series(series);
    let matching: Vec<f64> = series_of(text, name)
        .into_iter()
        .filter(|(labels, _)| wanted.iter().all(|pair| labels.contains(pair)))
        .map(|(_, value)| value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// [`metric_in`], and a missing series is a failure: a renamed metric or label must not read
/// as 0.
///
/// # Panics
/// When no printed series matches `series`.
pub fn metric(text: &str, series: &str) -> f64 {
    metric_in(text, series).unwrap_or_else(|| panic!("no series {series} in the metrics:\n{text}"))
}

/// A counter that may not have been counted yet: 0 when its labelled series is not printed, but
/// its family must be (with at least one series) and carry every label `series` names, so a
/// renamed metric or label fails instead of reading 0. (A labelled counter prints a series only
/// once counted; a wrong label value cannot be told from a value not yet counted.)
///
/// # Panics
/// When the family is not printed or lacks one of the labels.
pub fn counter_or_zero(text: &str, series: &str) -> f64 {
    let (name, wanted) = parse_series(series);
    let family = series_of(text, name);
    assert!(!family.is_empty(), "no metric {name} in the metrics:\n{text}");
    for (label, _) in &wanted {
        assert!(
            family
                .iter()
                .any(|(labels, _)| labels.iter().any(|(key, _)| key == label)),
            "the metric {name} has no label {label} in the metrics:\n{text}"
        );
    }
    metric_in(text, series).unwrap_or(0.0)
}

/// A good token for `claims` with a `jti` of its own, so no two are the same: the verifier's
/// verified-token cache has never seen it, and only the keys it holds can accept it (a test of
/// a key-server outage that reused a token would be answered from that cache).
pub fn fresh_token(dsts: &FakeDsts, claims: &TokenClaims) -> String {
    let claims = dsts.claims(claims).with_jwt_id(Uuid::new_v4().to_string());
    dsts.sign(Alg::Es256, claims)
}

pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// The server in process (embedded store, in-memory metadata) with a fake DSTS serving its
/// JWKS over HTTP.
pub struct Harness {
    pub app: TestApp,
    pub api: Api,
    pub dsts: FakeDsts,
    pub tenant: TenantId,
    pub device: DeviceId,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(AppOptions::default()).await
    }

    pub async fn start_with(options: AppOptions) -> Self {
        let dsts = FakeDsts::start().await;
        let jwks_url = dsts.jwks_url();
        Self::start_with_dsts(dsts, &jwks_url, options).await
    }

    /// With `dsts`'s tokens, its key set fetched from `jwks_url` (a proxy in front of it, say).
    pub async fn start_with_dsts(dsts: FakeDsts, jwks_url: &str, options: AppOptions) -> Self {
        let options = options
            .var("FILES_JWKS_URL", jwks_url)
            .var("FILES_JWKS_ALLOW_HTTP", "true")
            .var("FILES_TOKEN_ISSUER", dsts.issuer())
            .var("FILES_TOKEN_AUDIENCE", dsts.audience());
        let app = spawn_app(options).await.unwrap();
        let api = Api::new(app.address.clone());
        Self {
            app,
            api,
            dsts,
            tenant: new_tenant(),
            device: new_device(),
        }
    }

    /// A server whose metadata store is a fake the test can switch to failing.
    pub async fn with_fake_store() -> (Self, std::sync::Arc<files_testkit::fakes::FakeMetadataStore>) {
        let store = std::sync::Arc::new(files_testkit::fakes::FakeMetadataStore::default());
        let options = AppOptions {
            overrides: files_server::Overrides {
                metadata: Some(store.clone()),
                ..files_server::Overrides::default()
            },
            ..AppOptions::default()
        };
        (Self::start_with(options).await, store)
    }

    pub fn device_token(&self) -> String {
        self.dsts.device_token(Alg::Es256, self.tenant, self.device)
    }

    pub fn service_token(&self) -> String {
        self.dsts.service_token(Alg::Es256, self.tenant)
    }

    /// A device token never minted before: [`fresh_token`].
    pub fn fresh_device_token(&self) -> String {
        fresh_token(&self.dsts, &TokenClaims::device(self.tenant, self.device))
    }

    /// A tenant service token never minted before: [`fresh_token`].
    pub fn fresh_service_token(&self) -> String {
        fresh_token(&self.dsts, &TokenClaims::service(self.tenant))
    }

    /// The server's /metrics text.
    pub async fn metrics_text(&self) -> String {
        self.api.metrics_text().await
    }

    /// [`metric`] of the server's `/metrics`: a missing series fails.
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics_text().await, series)
    }

    /// [`counter_or_zero`] of the server's `/metrics`.
    pub async fn counter_or_zero(&self, series: &str) -> f64 {
        counter_or_zero(&self.metrics_text().await, series)
    }

    pub fn scope(&self) -> String {
        device_scope(self.tenant, self.device)
    }
}

#[test]
fn a_missing_metric_fails_instead_of_reading_zero() {
    let text = "# TYPE files_cache_operations_total counter\n\
        files_cache_operations_total{operation=\"get_file\",outcome=\"hit\"} 3\n\
        files_cache_operations_total{operation=\"put_file\",outcome=\"hit\"} 2\n\
        files_outbox_depth 0\n";
    assert_eq!(metric(text, "files_cache_operations_total{outcome=\"hit\"}"), 5.0);
    assert_eq!(
        metric(
            text,
            "files_cache_operations_total{outcome=\"hit\",operation=\"get_file\"}"
        ),
        3.0
    );
    assert_eq!(metric(text, "files_outbox_depth"), 0.0);
    assert_eq!(
        metric_in(text, "files_outbox_depth_seconds"),
        None,
        "a prefix is not a match"
    );
    assert_eq!(
        counter_or_zero(
            text,
            "files_cache_operations_total{operation=\"get_file\",outcome=\"error\"}"
        ),
        0.0
    );
    for (missing, read) in [
        ("a renamed metric", "files_outbox_size"),
        ("an unprinted series", "files_cache_operations_total{outcome=\"error\"}"),
    ] {
        let result = std::panic::catch_unwind(|| metric(text, read));
        assert!(result.is_err(), "{missing} read as a value");
    }
    for (missing, read) in [
        ("a renamed counter", "files_cache_calls_total{outcome=\"error\"}"),
        ("a renamed label", "files_cache_operations_total{result=\"error\"}"),
    ] {
        let result = std::panic::catch_unwind(|| counter_or_zero(text, read));
        assert!(result.is_err(), "{missing} read as 0");
    }
}
