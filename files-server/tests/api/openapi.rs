//! `docs/openapi.yaml` is kept true: every documented operation is served and answers only
//! documented statuses with the documented required fields; undocumented methods on documented
//! paths are refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of, sha256_hex};

const SECRET: &str = "openapi-test-secret";

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Follows a local `$ref`.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(spec, spec.pointer(reference.trim_start_matches('#')).unwrap()),
        None => value,
    }
}

/// The fields a documented JSON response must have.
fn required_fields(spec: &Value, response: &Value) -> Vec<String> {
    let response = resolve(spec, response);
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        return Vec::new();
    };
    let schema = resolve(spec, schema);
    schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_spec_matches_the_server() {
    let h = Harness::start_with(files_testkit::AppOptions::default().var("FILES_EVENTS_SECRET", SECRET)).await;
    let token = h.service_token();
    let scope = h.scope();
    let file_id = h.api.upload(&scope, h.tenant, &token, "spec.txt", b"spec").await;
    let tenant_root = crate::helpers::tenant_scope(h.tenant);
    h.api.upload(&tenant_root, h.tenant, &token, "spec.txt", b"spec").await;
    let spec = spec();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "every route is documented");

    // DELETE last, so the file exists for the others.
    let mut operations: Vec<(String, Method, Value)> = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((path.clone(), method, operation.clone()));
        }
    }
    operations.sort_by_key(|(_, method, _)| *method == Method::DELETE);

    for (template, method, operation) in &operations {
        let path = template
            .replace("{tenant_id}", &h.tenant.to_string())
            .replace("{device_id}", &h.device.to_string())
            .replace("{file_id}", &file_id);
        let body = match (template.as_str(), method.as_str()) {
            (t, "POST") if t.ends_with("upload-url") => {
                Some(json!({"file_name": "x", "sha256": sha256_hex(b"x"), "size": 1}))
            }
            (t, "POST") if t.ends_with("download-url") => Some(json!({"file_name": "spec.txt"})),
            ("/v1/storage/events", "POST") => Some(json!({"Records": []})),
            _ => None,
        };
        let auth = if template == "/v1/storage/events" {
            format!("Bearer {SECRET}")
        } else {
            format!("Bearer {token}")
        };
        let mut request = h
            .api
            .client
            .request(method.clone(), h.app.url(&path))
            .header("authorization", auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let (_, answer) = json_of(response).await;
        let documented = &operation["responses"][status.as_str()];
        assert!(
            !documented.is_null(),
            "{method} {template} answered an undocumented {status}: {answer}"
        );
        if is_json {
            for field in required_fields(&spec, documented) {
                assert!(
                    answer.get(&field).is_some(),
                    "{method} {template} {status}: no {field} in {answer}"
                );
            }
        }
        assert!(status.is_success(), "{method} {template} answered {status}: {answer}");
    }

    // Undocumented methods on documented paths are refused with 405.
    for (template, item) in paths {
        let path = template
            .replace("{tenant_id}", &h.tenant.to_string())
            .replace("{device_id}", &h.device.to_string())
            .replace("{file_id}", &file_id);
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let response = h
                .api
                .client
                .request(method.clone(), h.app.url(&path))
                .bearer_auth(&token)
                .send()
                .await;
            let status = response.unwrap().status();
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template} is served but not documented"
            );
        }
    }
}
