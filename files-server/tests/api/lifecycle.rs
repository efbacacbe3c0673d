//! The binary's life as an operator sees it: a config file, JSON logs with request ids, and a
//! graceful stop on SIGTERM (on PostgreSQL, with a request in flight and the relay holding
//! claimed events).

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use files_core::Outbox as _;
use files_testkit::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::binary::{Running, command};
use crate::helpers::{Api, device_scope, new_device, new_tenant};

/// The binary, started with `vars`, every line of its stdout and stderr kept.
struct Server {
    running: Running,
    lines: Arc<Mutex<Vec<String>>>,
    address: String,
    dev_dir: tempfile::TempDir,
}

fn drain(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
}

impl Server {
    async fn start(vars: &[(&str, &str)]) -> Self {
        let dev_dir = tempfile::tempdir().unwrap();
        let mut all = vec![("FILES_LISTEN", "127.0.0.1:0"), ("FILES_LOG_FORMAT", "json")];
        all.extend_from_slice(vars);
        let mut child: Child = command(dev_dir.path(), &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        drain(child.stdout.take().unwrap(), lines.clone());
        drain(child.stderr.take().unwrap(), lines.clone());
        let running = Running(child);
        let mut address = None;
        let started = eventually(Duration::from_secs(60), async || {
            address = lines.lock().unwrap().iter().find_map(|line| {
                let message = serde_json::from_str::<Value>(line).ok()?["message"]
                    .as_str()?
                    .to_owned();
                Some(message.split("listening on ").nth(1)?.trim().to_owned())
            });
            address.is_some()
        })
        .await;
        assert!(
            started,
            "no 'listening on' line within 60 s:\n{}",
            lines.lock().unwrap().join("\n")
        );
        Self {
            running,
            lines,
            address: address.unwrap(),
            dev_dir,
        }
    }

    fn port(&self) -> u16 {
        self.address.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn device_token(&self, tenant: files_core::TenantId, device: files_core::DeviceId) -> String {
        let output = command(self.dev_dir.path(), &[])
            .args([
                "dev-token",
                "--tenant",
                &tenant.to_string(),
                "--device",
                &device.to_string(),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    }

    fn terminate(&self) {
        let pid = self.running.0.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let mut code = None;
        let exited = eventually(within, async || {
            code = self.running.0.try_wait().unwrap().map(|status| status.code());
            code.is_some()
        })
        .await;
        assert!(exited, "still running after {within:?}:\n{}", self.log());
        code.flatten()
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Every line, parsed: each must be a JSON object.
    fn json_lines(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap().clone();
        assert!(!lines.is_empty());
        lines
            .iter()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(value.is_object(), "{line}");
                value
            })
            .collect()
    }
}

/// Must show 4: with `FILES_LOG_FORMAT=json` every line the binary writes is JSON; a request's
/// lines carry its request id (the caller's, when sane), with its tenant and device ids; the
/// response returns the id in `x-request-id` and an error body includes it.
#[tokio::test]
async fn json_logs_carry_the_request_id_that_responses_return() {
    let mut server = Server::start(&[("FILES_LOG", "info")]).await;
    let (tenant, device) = (new_tenant(), new_device());
    let token = server.device_token(tenant, device);
    let api = Api::new(server.address.clone());
    let missing = format!("/v1/tenants/{tenant}/files/{}", uuid::Uuid::now_v7());

    // The caller's id is taken, returned, in the error body and on the request's log lines.
    let response = api
        .client
        .get(format!("{}{missing}", api.base))
        .bearer_auth(&token)
        .header("x-request-id", "req-test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-request-id"], "req-test-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "req-test-42", "{body}");
    assert_eq!(body["error"]["code"], "file_not_found", "{body}");

    // Without one (or with one that is too long or not visible ASCII), one is made.
    for sent in [None, Some("x".repeat(200)), Some("has space".to_owned())] {
        let mut request = api.client.get(format!("{}/v1/nowhere", api.base));
        if let Some(sent) = &sent {
            request = request.header("x-request-id", sent.as_str());
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty() && Some(&id) != sent.as_ref(), "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], json!(id), "{body}");
    }
    // A success carries it too.
    let ok = api.client.get(format!("{}/healthz", api.base)).send().await.unwrap();
    assert!(ok.headers().contains_key("x-request-id"));

    server.terminate();
    assert_eq!(server.exit_code(Duration::from_secs(30)).await, Some(0));
    let lines = server.json_lines();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["request_id"] == "req-test-42")
        .collect();
    let done = ours
        .iter()
        .find(|line| line["message"] == "request done")
        .unwrap_or_else(|| panic!("no request line with the id:\n{}", server.log()));
    assert_eq!(done["span"]["tenant_id"], json!(tenant.to_string()), "{done}");
    assert_eq!(done["span"]["device_id"], json!(device.to_string()), "{done}");
    assert_eq!(done["span"]["status"], json!(404), "{done}");
    assert_eq!(done["level"], "INFO");
    assert!(!server.log().contains(&token), "the token is never logged");
    // The start-up and shutdown lines are JSON as well.
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{}", server.log());
}

/// Must show 3, from the outside: a value from the config file is used, a variable overrides
/// it, an unknown key stops start-up naming it.
#[tokio::test]
async fn the_config_file_is_used_and_an_unknown_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("files.toml");
    std::fs::write(&file, "max_upload_size = 100\nlog_format = \"json\"\n").unwrap();
    let path = file.display().to_string();
    let server = Server::start(&[("FILES_CONFIG", &path)]).await;
    let (tenant, device) = (new_tenant(), new_device());
    let token = server.device_token(tenant, device);
    let api = Api::new(server.address.clone());
    let scope = device_scope(tenant, device);
    let (status, body) = api.upload_url(&scope, &token, "big.bin", &[0u8; 101]).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the file's limit is used: {body}"
    );
    drop(server);

    let server = Server::start(&[("FILES_CONFIG", &path), ("FILES_MAX_UPLOAD_SIZE", "1000")]).await;
    let token = server.device_token(tenant, device);
    let api = Api::new(server.address.clone());
    let (status, body) = api.upload_url(&scope, &token, "big.bin", &[0u8; 101]).await;
    assert_eq!(status, StatusCode::CREATED, "the variable overrides the file: {body}");
    drop(server);

    std::fs::write(&file, "max_upload_size = 100\nmax_upload_szie = 5\n").unwrap();
    let output = command(dir.path(), &[("FILES_CONFIG", &path)]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("FILES_CONFIG") && stderr.contains("unknown key `max_upload_szie`"),
        "{stderr}"
    );
    // With JSON logs asked for, even that error is a JSON line.
    let output = command(dir.path(), &[("FILES_CONFIG", &path), ("FILES_LOG_FORMAT", "json")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line: Value = serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["error"].as_str().is_some_and(|e| e.contains("max_upload_szie")),
        "{line}"
    );
}

/// `FILES_TOKEN_VERIFIER=jsonwebtoken`: a binary built with the library checks tokens with it (a
/// device's token is accepted, the same token with another signature is not); a binary built
/// without it refuses to start and says why.
#[tokio::test]
async fn the_jsonwebtoken_signature_library_is_used_when_built_in() {
    let vars = [("FILES_TOKEN_VERIFIER", "jsonwebtoken")];
    if !files_adapters::jwks::SignatureLibrary::JsonWebToken.is_built() {
        let dir = tempfile::tempdir().unwrap();
        let output = command(dir.path(), &vars).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("FILES_TOKEN_VERIFIER"), "{stderr}");
        return;
    }
    let server = Server::start(&vars).await;
    let (tenant, device) = (new_tenant(), new_device());
    let token = server.device_token(tenant, device);
    let api = Api::new(server.address.clone());
    let scope = device_scope(tenant, device);
    let (status, body) = api.upload_url(&scope, &token, "log.txt", b"hello").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut forged = token.clone();
    let at = forged.len() - 10;
    let other = if &forged[at..=at] == "A" { "B" } else { "A" };
    forged.replace_range(at..=at, other);
    let (status, body) = api.upload_url(&scope, &forged, "log.txt", b"hello").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.to_string().contains("signature"), "{body}");
}

/// Accepts connections and never answers: a broker that hangs every publish.
fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    port
}

/// Must show 5: SIGTERM while a request is in flight (its body still arriving) and while the
/// relay holds claimed events (the broker hangs each publish): the request gets its answer,
/// the listener stops accepting, the process exits 0, and no outbox row stays claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_leaves_no_claim() {
    let Some(db) = files_testkit::postgres::TestDatabase::create("sigterm_lets_the_request_in_flight_finish").await
    else {
        return;
    };
    let broker = format!("amqp://guest:guest@127.0.0.1:{}/%2f", black_hole());
    let mut server = Server::start(&[
        ("FILES_DATABASE_URL", db.url()),
        ("FILES_AMQP_URL", &broker),
        ("FILES_AMQP_TIMEOUT_MS", "1500"),
        ("FILES_SHUTDOWN_GRACE_SECS", "15"),
    ])
    .await;
    let (tenant, device) = (new_tenant(), new_device());
    let token = server.device_token(tenant, device);
    let api = Api::new(server.address.clone());
    let scope = device_scope(tenant, device);
    api.upload(&scope, tenant, &token, "before.log", b"recorded before the stop\n")
        .await;

    // The relay has claimed the event and is stuck publishing it: the outbox has it, and
    // nobody else can claim it.
    let store = db.store().await;
    let claimed_by_relay = eventually(Duration::from_secs(20), async || {
        let depth = store.stats().await.map(|s| s.depth).unwrap_or(0);
        depth == 1
            && store
                .claim(10, Duration::from_millis(1))
                .await
                .is_ok_and(|c| c.is_empty())
    })
    .await;
    assert!(claimed_by_relay, "the relay never held the event:\n{}", server.log());

    // A request whose body is still to come: the server has read its head (100 Continue).
    let body = json!({"file_name": "during.log", "sha256": "a".repeat(64), "size": 5}).to_string();
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let head = format!(
        "POST {scope}/files/upload-url HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nExpect: 100-continue\r\nx-request-id: in-flight\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut continued = [0u8; 25];
    slow.read_exact(&mut continued).await.unwrap();
    assert_eq!(&continued, b"HTTP/1.1 100 Continue\r\n\r\n");

    server.terminate();
    // The listener closes...
    let closed = eventually(Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .is_err()
    })
    .await;
    assert!(closed, "the listener still accepts after SIGTERM");
    // ...and the request in flight still gets its answer.
    slow.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_string(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.contains("x-request-id: in-flight") && answer.contains("\"file_id\""),
        "{answer}"
    );

    assert_eq!(
        server.exit_code(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        server.log()
    );
    // The event is still waiting (the broker never answered), and free: not claimed.
    assert_eq!(store.stats().await.unwrap().depth, 1);
    let free = store.claim(10, Duration::from_millis(1)).await.unwrap();
    assert_eq!(free.len(), 1, "the relay left its claim behind:\n{}", server.log());
    server.json_lines();
}

/// A client that opens a new connection for every request: what a load balancer's new
/// connections meet.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `/readyz` on a new connection: its status and body, or `None` when nothing accepted it.
async fn readyz(address: &str) -> Option<(StatusCode, Value)> {
    let response = unpooled().get(format!("{address}/readyz")).send().await.ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

/// SIGTERM with `FILES_SHUTDOWN_DELAY_SECS`: `/readyz` answers 503 `shutting_down` at once,
/// while new connections are still accepted and served; the listener closes no earlier than the
/// delay after the signal, and the process exits 0.
#[tokio::test]
async fn sigterm_turns_readyz_to_shutting_down_and_serves_through_the_shutdown_delay() {
    const DELAY: Duration = Duration::from_secs(6);
    let mut server = Server::start(&[("FILES_SHUTDOWN_DELAY_SECS", "6")]).await;
    let (tenant, device) = (new_tenant(), new_device());
    let token = server.device_token(tenant, device);
    let scope = device_scope(tenant, device);
    let address = server.address.clone();
    let ready = eventually(Duration::from_secs(10), async || {
        readyz(&address)
            .await
            .is_some_and(|(status, body)| status == StatusCode::OK && body["status"] == "ready")
    })
    .await;
    assert!(ready, "not ready before the signal: {:?}", readyz(&address).await);

    // Taken before the signal is sent: the listener may close no earlier than DELAY after it.
    let signalled = tokio::time::Instant::now();
    server.terminate();
    // The last answer, and whether the listener had closed (no answer) since.
    let mut draining = (None, false);
    let seen = eventually(DELAY, async || match readyz(&address).await {
        Some((status, body)) => {
            let seen = status == StatusCode::SERVICE_UNAVAILABLE && body["status"] == "shutting_down";
            draining = (Some((status, body)), false);
            seen
        }
        None => {
            draining.1 = true;
            false
        }
    })
    .await;
    assert!(
        seen,
        "/readyz after SIGTERM: last answered {:?}, no answer since: {}\n{}",
        draining.0,
        draining.1,
        server.log()
    );

    // Still served during the delay, on new connections: an API call and the probes.
    let api = Api {
        base: address.clone(),
        client: unpooled(),
    };
    let (status, ticket) = api.upload_url(&scope, &token, "during.log", b"during the delay").await;
    assert_eq!(status, StatusCode::CREATED, "an upload URL during the delay: {ticket}");
    let health = unpooled().get(format!("{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (status, body) = readyz(&address)
        .await
        .expect("the listener still accepts during the delay");
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("shutting_down")),
        "{body}"
    );
    assert!(
        signalled.elapsed() < DELAY,
        "the checks during the delay took {:?}, more than the delay: too slow to tell",
        signalled.elapsed()
    );

    // Then the listener closes, not before the delay has passed.
    let port = server.port();
    let closed = eventually(DELAY + Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;
    let closed_after = signalled.elapsed();
    assert!(closed, "the listener still accepts {closed_after:?} after SIGTERM");
    assert!(
        closed_after >= DELAY,
        "the listener closed {closed_after:?} after SIGTERM, before the {DELAY:?} delay"
    );
    assert_eq!(
        server.exit_code(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        server.log()
    );
    let lines = server.json_lines();
    assert!(
        lines.iter().any(
            |line| line["message"].as_str().is_some_and(|m| m.starts_with("shutting down")) && line["delay_secs"] == 6
        ),
        "no shutting-down line naming the delay:\n{}",
        server.log()
    );
}
