//! The real binary, started as a user starts it: no configuration at all, so the embedded
//! default; a token from `files-server dev-token` works against it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::flow::device_flow;
use crate::helpers::{Api, new_device, new_tenant};

const BINARY: &str = env!("CARGO_BIN_EXE_files-server");

/// Kills the server when the test ends, however it ends.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command with no `FILES_*` variable of the test environment, only those given.
pub(crate) fn command(dev_dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("FILES_") || k == "RUST_LOG") {
        command.env_remove(name);
    }
    command.env("FILES_DEV_DIR", dev_dir);
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

#[tokio::test]
async fn embedded_default_serves_the_flow_with_a_dev_token() {
    let dev_dir = tempfile::tempdir().unwrap();
    // Port 0 only so that parallel test runs do not collide; everything else is the default.
    let mut child = command(dev_dir.path(), &[("FILES_LISTEN", "127.0.0.1:0")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);

    // Read the start-up lines until the address; keep draining afterwards so the pipe never fills.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut startup = Vec::new();
    let address = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'listening on' line within 60 s; got:\n{}", startup.join("\n")));
        startup.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let startup = startup.join("\n");
    assert!(
        startup.contains("development profile"),
        "the profile is named:\n{startup}"
    );
    assert!(
        startup.contains("events: logged only"),
        "what it lacks is said:\n{startup}"
    );
    assert!(startup.contains("embedded S3"), "{startup}");

    let (tenant, device) = (new_tenant(), new_device());
    let (tenant_arg, device_arg) = (tenant.to_string(), device.to_string());
    let device_tokens = |more: &[&str]| {
        let mut args = vec!["dev-token", "--tenant", &tenant_arg, "--device", &device_arg];
        args.extend(more);
        let output = command(dev_dir.path(), &[]).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "dev-token failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let stdout = device_tokens(&[]);
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT on the last line: {stdout}");

    let api = Api::new(address);
    device_flow(&api, tenant, device, &token).await;

    // --count: that many tokens, one a line, each its own (a jti each) and each accepted.
    let stdout = device_tokens(&["--count", "3"]);
    let tokens: Vec<&str> = stdout.lines().filter(|line| !line.starts_with('#')).collect();
    assert_eq!(tokens.len(), 3, "{stdout}");
    assert_eq!(
        tokens.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "distinct: {stdout}"
    );
    for token in tokens {
        let status = api
            .get(&format!("/v1/tenants/{tenant}/devices/{device}/files"), token)
            .await
            .status();
        assert_eq!(status, reqwest::StatusCode::OK);
    }

    // A tenant-service token from dev-token works too.
    let dev_token = |kind: &str| {
        let output = command(dev_dir.path(), &[])
            .args(["dev-token", "--tenant", &tenant.to_string(), kind])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        stdout.lines().last().unwrap().trim().to_owned()
    };
    let service = dev_token("--service");
    let status = api.get(&format!("/v1/tenants/{tenant}/files"), &service).await.status();
    assert_eq!(status, reqwest::StatusCode::OK);

    // And a platform token: it sets the tenant's settings, and reads no file.
    let platform = dev_token("--platform");
    let settings = serde_json::json!({"max_file_size": 1000});
    let response = api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{tenant}/settings"),
            &platform,
            Some(&settings),
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let status = api
        .get(&format!("/v1/tenants/{tenant}/files"), &platform)
        .await
        .status();
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    drop(running);
}

#[test]
fn a_wrong_value_stops_start_up_naming_the_variable() {
    let dev_dir = tempfile::tempdir().unwrap();
    let output = command(dev_dir.path(), &[("FILES_LISTEN", "nowhere")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FILES_LISTEN"), "{stderr}");
}

#[test]
fn help_lists_the_commands() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("dev-token") && help.contains("serve"), "{help}");
}

#[tokio::test]
async fn migrate_applies_then_is_a_no_op() {
    let Some(db) = files_testkit::postgres::TestDatabase::create("migrate_applies_then_is_a_no_op").await else {
        return;
    };
    let dev_dir = tempfile::tempdir().unwrap();
    let run = || {
        command(dev_dir.path(), &[("FILES_DATABASE_URL", db.url())])
            .arg("migrate")
            .output()
            .unwrap()
    };
    // `applied N migration(s)`: N, read from the command's own output.
    let applied = |output: std::process::Output| -> usize {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find_map(|line| {
                line.strip_prefix("applied ")?
                    .strip_suffix(" migration(s)")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no `applied N migration(s)` line in {stdout:?}"))
    };
    // Every migration of the crate, each a directory of files-adapters/migrations.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../files-adapters/migrations"))
        .unwrap()
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.path().is_dir()))
        .count();
    assert!(migrations > 0);
    assert_eq!(applied(run()), migrations, "the empty database gets every migration");
    assert_eq!(applied(run()), 0, "a second run applies nothing");
}

#[test]
fn migrate_without_a_database_names_the_variable() {
    let dev_dir = tempfile::tempdir().unwrap();
    let output = command(dev_dir.path(), &[]).arg("migrate").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("FILES_DATABASE_URL"));
}
