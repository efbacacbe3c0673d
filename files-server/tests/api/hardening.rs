//! What an attacker and a flaky network found (the hardening issue), kept fixed.

use std::time::Duration;

use crate::app::AppOptions;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::Harness;

const SECRET: &str = "webhook-secret";

/// Sends `head` and the start of a body on a raw connection, never the rest, and returns the
/// status line of the answer, or `None` when none came within `within`.
async fn answer_to_a_partial_request(port: u16, head: &str, partial_body: &[u8], within: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(partial_body).await.unwrap();
    let mut buffer = vec![0_u8; 1024];
    let read = tokio::time::timeout(within, stream.read(&mut buffer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

fn webhook_head(declared_length: usize, authorization: Option<&str>) -> String {
    let authorization = authorization.map_or_else(String::new, |a| format!("authorization: {a}\r\n"));
    format!(
        "POST /v1/storage/events HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {declared_length}\r\n{authorization}\r\n"
    )
}

#[tokio::test]
async fn the_webhook_checks_its_secret_before_it_reads_the_body() {
    // Finding 2: 960 KiB of a declared 1 MiB, without a secret, used to be read (and held)
    // before anything was checked; now the answer comes at once, with nothing read.
    let h = Harness::start_with(AppOptions::default().var("FILES_EVENTS_SECRET", SECRET)).await;
    for authorization in [None, Some("Bearer wrong")] {
        let status = answer_to_a_partial_request(
            h.app.port,
            &webhook_head(1024 * 1024, authorization),
            &[b'{'; 100],
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 401 Unauthorized"),
            "{authorization:?}"
        );
    }
    // Off (no secret configured): refused at once too.
    let off = Harness::start().await;
    let status = answer_to_a_partial_request(
        off.app.port,
        &webhook_head(1024 * 1024, None),
        &[b'{'; 100],
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 404 Not Found"));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    // Finding 2: one slow 100-byte body got no answer after 75 s.
    let options = AppOptions::default()
        .var("FILES_EVENTS_SECRET", SECRET)
        .var("FILES_BODY_TIMEOUT_SECS", "1");
    let h = Harness::start_with(options).await;
    let status = answer_to_a_partial_request(
        h.app.port,
        &webhook_head(100, Some(&format!("Bearer {SECRET}"))),
        b"{\"Records\"",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 408 Request Timeout"));

    // Every body is read under the limit, the API's JSON bodies too.
    let head = format!(
        "POST {}/files/upload-url HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: 100\r\nauthorization: Bearer {}\r\n\r\n",
        h.scope(),
        h.device_token()
    );
    let status = answer_to_a_partial_request(h.app.port, &head, b"{\"file_name\"", Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 408 Request Timeout"));
}

#[tokio::test]
async fn metrics_listen_serves_metrics_alone_and_not_on_the_api() {
    // Finding 4: /metrics needed no token on the API's port and lists tenant and device ids.
    let h = Harness::start_with(AppOptions::default().var("FILES_METRICS_LISTEN", "127.0.0.1:0")).await;
    let token = h.device_token();
    h.api.upload(&h.scope(), h.tenant, &token, "m.txt", b"m").await;
    let on_api = h.api.client.get(h.app.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    let metrics_port = h.app.metrics_port.expect("a metrics port");
    let metrics = h
        .api
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(text.contains(&format!("tenant=\"{}\"", h.tenant)), "{text}");
    // Nothing else is served there.
    let other = h
        .api
        .client
        .get(format!("http://127.0.0.1:{metrics_port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn readyz_answers_from_a_state_measured_in_the_background() {
    // Finding 4: /readyz made a database, store and cache call on every request.
    let (h, store) = Harness::with_fake_store().await;
    let before = store.gets();
    for _ in 0..50 {
        let ready = h.api.client.get(h.app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    let asked = store.gets() - before;
    // The background task asks once a second; 50 probes are not 50 database calls.
    assert!(asked <= 5, "50 probes made {asked} database calls");

    // It still follows the database: down, then back.
    store.switch.fail();
    let unready = files_testkit::eventually(Duration::from_secs(5), async || {
        h.api.client.get(h.app.url("/readyz")).send().await.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(unready, "readiness did not see the database go");
    store.switch.recover();
    let ready = files_testkit::eventually(Duration::from_secs(5), async || {
        h.api.client.get(h.app.url("/readyz")).send().await.unwrap().status() == StatusCode::OK
    })
    .await;
    assert!(ready, "readiness did not see the database come back");
}
