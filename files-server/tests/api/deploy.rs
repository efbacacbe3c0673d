//! The deployment files kept true: compose's and the Kubernetes manifests' settings against
//! the variables the server reads ([`files_server::config::VARIABLES`]), the Dockerfile's
//! shape, and every metric the Grafana dashboard and the alert rules name against `/metrics`
//! after a scripted run. (`scripts/check-deploy` renders and validates the manifests and checks
//! the rules with promtool.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::app::AppOptions;
use files_server::Settings;
use files_server::config::{PRODUCTION_VARIABLES, VARIABLES};
use files_testkit::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

use crate::helpers::Harness;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every YAML document of a file.
fn yaml_documents(path: &str) -> Vec<Yaml> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Settings from these variables, as the server would read them.
fn settings(vars: &BTreeMap<String, String>) -> Result<Settings, files_server::config::ConfigError> {
    Settings::from_vars(vars.iter().map(|(k, v)| (k.clone(), v.clone())))
}

fn assert_known(place: &str, names: impl IntoIterator<Item = impl AsRef<str>>) {
    for name in names {
        let name = name.as_ref();
        if name.starts_with("FILES_") {
            assert!(
                VARIABLES.contains(&name),
                "{place} sets {name}, which the server does not read"
            );
        }
    }
}

#[test]
fn compose_sets_only_variables_the_server_reads_and_every_required_one() {
    let compose = yaml("compose/docker-compose.yml");
    let services = &compose["services"];
    for name in [
        "postgres",
        "redis",
        "rabbitmq",
        "minio",
        "minio-setup",
        "files",
        "prometheus",
    ] {
        assert!(services.get(name).is_some(), "compose has no service {name}");
    }
    // No service sets a FILES_* variable the server does not read (the files service's are
    // checked below with the rest).
    for (name, service) in services.as_mapping().unwrap() {
        if let Some(environment) = service["environment"].as_mapping() {
            assert_known(&format!("compose's {}", text(name)), environment.keys().map(text));
        }
    }
    let files = &services["files"];
    assert_eq!(text(&files["build"]["dockerfile"]), "Dockerfile");
    assert_eq!(text(&files["build"]["context"]), "..");
    let env: BTreeMap<String, String> = files["environment"]
        .as_mapping()
        .expect("the files service's environment is a map")
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect();
    assert_known("compose's files service", env.keys());
    for required in PRODUCTION_VARIABLES {
        assert!(env.contains_key(*required), "compose's files service lacks {required}");
    }
    // The server accepts them, and nothing but the tokens runs on its embedded default.
    let parsed = settings(&env).unwrap_or_else(|e| panic!("compose's settings are refused: {e}"));
    assert!(parsed.database.is_some() && parsed.redis.is_some() && parsed.amqp.is_some());
    assert!(matches!(parsed.store, files_server::config::StoreSettings::S3(_)));

    // The pieces that must agree with each other.
    let minio = &services["minio"]["environment"];
    assert_eq!(text(&minio["MINIO_ROOT_USER"]), env["FILES_S3_ACCESS_KEY"]);
    assert_eq!(text(&minio["MINIO_ROOT_PASSWORD"]), env["FILES_S3_SECRET_KEY"]);
    assert_eq!(
        text(&minio["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FILES"]),
        env["FILES_EVENTS_SECRET"],
        "MinIO's webhook token is the service's events secret"
    );
    let webhook = text(&minio["MINIO_NOTIFY_WEBHOOK_ENDPOINT_FILES"]);
    let port = env["FILES_LISTEN"].rsplit(':').next().unwrap().to_owned();
    assert_eq!(webhook, format!("http://files:{port}/v1/storage/events"));
    assert_eq!(
        text(&minio["MINIO_NOTIFY_AMQP_ROUTING_KEY_FILES"]),
        env["FILES_AMQP_INGEST_QUEUE"],
        "MinIO's AMQP target routes to the ingest queue"
    );
    let setup = text(&services["minio-setup"]["command"][0]);
    assert!(setup.contains(&format!("local/{}", env["FILES_S3_BUCKET"])), "{setup}");
    let postgres = &services["postgres"]["environment"];
    let database_url = &env["FILES_DATABASE_URL"];
    assert!(
        database_url.contains(&format!(
            "{}:{}@postgres:5432/{}",
            text(&postgres["POSTGRES_USER"]),
            text(&postgres["POSTGRES_PASSWORD"]),
            text(&postgres["POSTGRES_DB"])
        )),
        "{database_url}"
    );
    let rabbit = &services["rabbitmq"]["environment"];
    assert!(env["FILES_AMQP_URL"].contains(&format!(
        "{}:{}@rabbitmq:5672",
        text(&rabbit["RABBITMQ_DEFAULT_USER"]),
        text(&rabbit["RABBITMQ_DEFAULT_PASS"])
    )));
    let scrape = yaml("compose/prometheus.yml");
    let metrics_port = env["FILES_METRICS_LISTEN"].rsplit(':').next().unwrap().to_owned();
    assert_eq!(
        text(&scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]),
        format!("files:{metrics_port}")
    );
}

#[test]
fn the_dockerfile_builds_files_server_and_runs_it_as_a_user() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage");
    assert!(dockerfile.contains("cargo build --release --locked -p files-server"));
    let user = lines.iter().rev().find(|l| l.starts_with("USER ")).expect("a USER");
    assert!(
        !user.contains("root") && !user.ends_with(" 0") && !user.contains(" 0:"),
        "{user}"
    );
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/files-server"]"#));
    let env_names: Vec<&str> = dockerfile
        .split_whitespace()
        .filter_map(|word| word.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("FILES_"))
        .collect();
    assert!(env_names.contains(&"FILES_LISTEN"));
    assert_known("the Dockerfile", env_names);
}

/// A kustomization's settings: its files.toml (the ConfigMap mounted as `FILES_CONFIG`) and the
/// Deployment's variables, secrets referenced by name.
struct Kubernetes {
    config_file: PathBuf,
    env: BTreeMap<String, Yaml>,
}

fn kubernetes(config_file: &str) -> Kubernetes {
    let deployment = yaml("deploy/kubernetes/base/deployment.yaml");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|item| (text(&item["name"]), item.clone()))
        .collect();
    Kubernetes {
        config_file: repo().join(config_file),
        env,
    }
}

#[test]
fn the_kubernetes_settings_are_read_by_the_server_and_secrets_are_references() {
    const SECRET_VARIABLES: [&str; 6] = [
        "FILES_DATABASE_URL",
        "FILES_REDIS_URL",
        "FILES_AMQP_URL",
        "FILES_S3_ACCESS_KEY",
        "FILES_S3_SECRET_KEY",
        "FILES_EVENTS_SECRET",
    ];
    for config in [
        "deploy/kubernetes/base/files.toml",
        "deploy/kubernetes/overlays/production/files.toml",
    ] {
        let k = kubernetes(config);
        assert_known("the Deployment", k.env.keys());
        assert_eq!(
            k.env.get("FILES_CONFIG").map(|v| text(&v["value"])).as_deref(),
            Some("/etc/files-server/files.toml")
        );
        for secret in SECRET_VARIABLES {
            let reference = k
                .env
                .get(secret)
                .unwrap_or_else(|| panic!("the Deployment lacks {secret}"));
            assert!(
                reference.get("value").is_none() && reference["valueFrom"]["secretKeyRef"]["name"].is_string(),
                "{secret} must come from a Secret: {reference:?}"
            );
        }
        // The file holds no secret, and what it holds the server accepts (an unknown key
        // would stop start-up), with the secrets given as the Secret would.
        let file: toml::Table = read(config).parse().unwrap_or_else(|e| panic!("{config}: {e}"));
        for secret in SECRET_VARIABLES {
            let key = secret.trim_start_matches("FILES_").to_ascii_lowercase();
            assert!(!file.contains_key(&key), "{config} holds the secret {key}");
        }
        let mut vars: BTreeMap<String, String> = SECRET_VARIABLES
            .iter()
            .map(|v| ((*v).to_owned(), "postgres://u:p@db/files".to_owned()))
            .collect();
        vars.insert("FILES_REDIS_URL".to_owned(), "redis://cache:6379".to_owned());
        vars.insert("FILES_AMQP_URL".to_owned(), "amqp://u:p@broker:5672/%2f".to_owned());
        // As the ConfigMap is mounted: a file no one else may change (a checkout's own mode
        // follows the umask, and the server refuses a file its group may write).
        let mounted = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(mounted.path(), std::fs::read(&k.config_file).unwrap()).unwrap();
        vars.insert("FILES_CONFIG".to_owned(), mounted.path().display().to_string());
        let parsed = settings(&vars).unwrap_or_else(|e| panic!("{config} is refused: {e}"));
        assert!(matches!(parsed.tokens.keys, files_server::config::KeySource::Url(_)));
        assert!(parsed.metrics_listen.is_some(), "/metrics on its own port");
        let set: BTreeSet<String> = file
            .keys()
            .map(|k| format!("FILES_{}", k.to_ascii_uppercase()))
            .chain(k.env.keys().cloned())
            .collect();
        for required in PRODUCTION_VARIABLES {
            assert!(set.contains(*required), "{config}: {required} is not set");
        }
        // The pod is given the time the server takes to stop.
        let deployment = yaml("deploy/kubernetes/base/deployment.yaml");
        let termination = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        let needed = parsed.shutdown.delay + parsed.shutdown.grace;
        assert!(
            termination > needed.as_secs(),
            "{config}: terminationGracePeriodSeconds {termination} <= {needed:?}"
        );
    }
}

#[test]
fn the_service_monitor_scrapes_the_metrics_port() {
    let deployment = yaml("deploy/kubernetes/base/deployment.yaml");
    let ports: Vec<(String, u64)> = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (text(&p["name"]), p["containerPort"].as_u64().unwrap()))
        .collect();
    let file: toml::Table = read("deploy/kubernetes/base/files.toml").parse().unwrap();
    let metrics_port: u64 = file["metrics_listen"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert!(ports.contains(&("metrics".to_owned(), metrics_port)), "{ports:?}");
    let services = yaml_documents("deploy/kubernetes/base/service.yaml");
    let metrics_service = services
        .iter()
        .find(|s| s["spec"]["ports"][0]["name"].as_str() == Some("metrics"))
        .expect("a metrics Service");
    let monitor = yaml("deploy/kubernetes/base/servicemonitor.yaml");
    assert_eq!(text(&monitor["spec"]["endpoints"][0]["port"]), "metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    let labels = metrics_service["metadata"]["labels"].as_mapping().unwrap();
    for (key, value) in selector {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the ServiceMonitor selects the metrics Service"
        );
    }
}

/// Every `files_*` name in a text (PromQL expressions).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("files_") {
        let start = i + found;
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if !preceded {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

fn expressions_of_dashboards() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        ("query" | "definition", Value::String(query)) => out.push(query.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("deploy/grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            walk(&dashboard, &mut out);
        }
    }
    out
}

fn expressions_of_rules() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("deploy/prometheus")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".yml") && !name.ends_with(".test.yml") {
            let rules: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for group in rules["groups"].as_sequence().unwrap() {
                for rule in group["rules"].as_sequence().unwrap() {
                    out.push(text(&rule["expr"]));
                }
            }
        }
    }
    out
}

/// The names a Prometheus text exposition shows: each series' name, and each family's (the
/// `# TYPE` line), so a histogram's `_bucket`, `_sum` and `_count` and its own name are there.
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(r#"sum(rate(files_a_total{x="files_not"}[5m])) / files_b_bucket + myfiles_c"#);
    assert_eq!(
        names,
        BTreeSet::from([
            "files_a_total".to_owned(),
            "files_b_bucket".to_owned(),
            "files_not".to_owned()
        ])
    );
    let exposed = exposed_names("# HELP files_h x\n# TYPE files_h histogram\nfiles_h_bucket{le=\"1\"} 0\nfiles_g 1\n");
    assert_eq!(
        exposed,
        BTreeSet::from(["files_h".to_owned(), "files_h_bucket".to_owned(), "files_g".to_owned()])
    );
}

/// Must show 2: a scripted run (a device's whole upload and download, a refused token, an
/// upload over the tenant's limit, a bucket notification, an unknown route), then every metric that the dashboard and the alert
/// rules name is in `/metrics`.
#[tokio::test]
async fn every_metric_of_the_dashboard_and_the_alerts_is_served() {
    let mut used = BTreeSet::new();
    let dashboards = expressions_of_dashboards();
    let rules = expressions_of_rules();
    assert!(dashboards.len() > 10 && rules.len() >= 5, "{dashboards:?} {rules:?}");
    for expr in dashboards.iter().chain(&rules) {
        used.extend(metric_names(expr));
    }
    assert!(used.len() >= 10, "{used:?}");

    let h = Harness::start_with(AppOptions::default().var("FILES_EVENTS_SECRET", "metrics-secret")).await;
    let token = h.device_token();
    let scope = h.scope();
    let file_id = h
        .api
        .upload(&scope, h.tenant, &token, "metrics.log", b"metrics\n")
        .await;
    // A second read of the same file: a cache hit.
    for _ in 0..2 {
        let status = h
            .api
            .get(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
            .await
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = h
        .api
        .download_url(&scope, &token, &json!({"file_name": "metrics.log"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = h.api.get(&format!("{scope}/files"), "not-a-token").await.status();
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
    // An upload over the tenant's own size limit: a limit refusal.
    let platform = crate::tenants::platform_token(&h);
    let limited = h
        .api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/tenants/{}/settings", h.tenant),
            &platform,
            Some(&json!({"max_file_size": 2})),
        )
        .await
        .status();
    assert_eq!(limited, StatusCode::OK);
    let (too_large, _) = h.api.upload_url(&scope, &token, "big.log", b"three").await;
    assert_eq!(too_large, StatusCode::PAYLOAD_TOO_LARGE);
    let notified = h
        .api
        .client
        .post(h.app.url("/v1/storage/events"))
        .header("authorization", "Bearer metrics-secret")
        .body(
            json!({"Records": [{"eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "another-bucket"}, "object": {"key": "k", "size": 1}}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert!(notified.is_success(), "{notified}");

    // The relay publishes the upload's event in the background.
    let published = eventually(std::time::Duration::from_secs(10), async || {
        h.metrics_text()
            .await
            .contains("files_outbox_publishes_total{outcome=\"published\"}")
    })
    .await;
    assert!(published, "the relay published the event");
    let exposed = exposed_names(&h.metrics_text().await);
    let missing: Vec<&String> = used.iter().filter(|name| !exposed.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "named by deploy/grafana or deploy/prometheus but not in /metrics: {missing:?}\nexposed: {exposed:?}"
    );
}
