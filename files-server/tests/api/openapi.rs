//! `docs/openapi.yaml` is kept true: every documented operation is served and answers only
//! documented statuses with the documented required fields; undocumented methods on documented
//! paths are refused with a 405 whose `Allow` lists the documented ones; links name operations
//! and parameters that exist. `scripts/fuzz-api` checks the rest with schemathesis.

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
    // A multipart upload in progress (one part) for the `/parts` calls.
    let plan = json!({"file_name": "parts.bin", "sha256": sha256_hex(b"part"), "size": 4,
                      "parts": {"size": 4, "sha256": [sha256_hex(b"part")]}});
    let (status, multipart) = json_of(h.api.post(&format!("{scope}/files/upload-url"), &token, &plan).await).await;
    assert_eq!(status, StatusCode::CREATED, "{multipart}");
    let multipart_id = multipart["file_id"].as_str().unwrap().to_owned();
    let spec = spec();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 13, "every route is documented");

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
            .replace(
                "{file_id}",
                if template.ends_with("/parts") {
                    &multipart_id
                } else {
                    &file_id
                },
            );
        let body = match (template.as_str(), method.as_str()) {
            (t, "POST") if t.ends_with("/parts") => Some(json!({"part_numbers": [1]})),
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

    // Undocumented methods on documented paths are refused with 405, whose Allow lists exactly
    // the documented methods; every operation documents that 405 and its Allow header.
    for (template, item) in paths {
        let path = template
            .replace("{tenant_id}", &h.tenant.to_string())
            .replace("{device_id}", &h.device.to_string())
            .replace("{file_id}", &file_id);
        let mut documented: Vec<String> = operations_of(item).map(|(method, _)| method.to_uppercase()).collect();
        documented.sort();
        for (method, operation) in operations_of(item) {
            let allow = resolve(&spec, &operation["responses"]["405"]);
            assert_eq!(
                allow.pointer("/headers/Allow/required"),
                Some(&Value::Bool(true)),
                "{method} {template} documents no 405 with a required Allow header"
            );
        }
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::TRACE,
        ] {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let response = h
                .api
                .client
                .request(method.clone(), h.app.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {template} is served but not documented"
            );
            let allow = response.headers().get("allow").and_then(|v| v.to_str().ok());
            let mut allowed: Vec<String> = allow
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            allowed.sort();
            assert_eq!(allowed, documented, "{method} {template}: Allow {allow:?}");
        }
    }
}

/// The operations of a path item: (method, operation).
fn operations_of(item: &Value) -> impl Iterator<Item = (&String, &Value)> {
    item.as_object().unwrap().iter().filter(|(key, _)| {
        ["get", "put", "post", "delete", "patch", "options", "head", "trace"].contains(&key.as_str())
    })
}

/// The names of the path (and query) parameters of an operation, its path item's included.
fn parameter_names(spec: &Value, item: &Value, operation: &Value, location: &str) -> Vec<String> {
    [&item["parameters"], &operation["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .map(|parameter| resolve(spec, parameter))
        .filter(|parameter| parameter["in"] == location)
        .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every link names an operation that exists, gives only parameters that operation has, and
/// takes them from request path parameters the linking operation has or from fields its
/// response has.
#[test]
fn links_name_what_exists() {
    let spec = spec();
    let paths = spec["paths"].as_object().unwrap();
    let mut by_id = std::collections::HashMap::new();
    for item in paths.values() {
        for (_, operation) in operations_of(item) {
            let id = operation["operationId"]
                .as_str()
                .expect("every operation has an operationId");
            assert!(
                by_id.insert(id, (item, operation)).is_none(),
                "operationId {id} is used twice"
            );
        }
    }
    let mut links = 0;
    for (template, item) in paths {
        for (method, operation) in operations_of(item) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let response = resolve(&spec, response);
                let Some(defined) = response["links"].as_object() else {
                    continue;
                };
                let source = format!("{method} {template} {status}");
                let body = response
                    .pointer("/content/application~1json/schema")
                    .map(|schema| resolve(&spec, schema));
                for (name, link) in defined {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap_or_default();
                    let Some((target_item, target_operation)) = by_id.get(target) else {
                        panic!("{source}: link {name} names no operation ({target})");
                    };
                    let target_parameters = parameter_names(&spec, target_item, target_operation, "path");
                    for (parameter, expression) in link["parameters"].as_object().unwrap() {
                        assert!(
                            target_parameters.contains(parameter),
                            "{source}: link {name} gives {parameter}, which {target} does not have"
                        );
                        let expression = expression.as_str().unwrap();
                        if let Some(own) = expression.strip_prefix("$request.path.") {
                            assert!(
                                parameter_names(&spec, item, operation, "path").iter().any(|p| p == own),
                                "{source}: link {name} takes {expression}, which is not a path parameter here"
                            );
                        } else if let Some(pointer) = expression.strip_prefix("$response.body#") {
                            let field = pointer.trim_start_matches('/').split('/').next().unwrap_or_default();
                            let properties = body.map(|schema| &schema["properties"]);
                            assert!(
                                properties.is_some_and(|p| p.get(field).is_some()),
                                "{source}: link {name} takes {expression}, which the answer does not have"
                            );
                        } else {
                            panic!("{source}: link {name} takes {expression}: not an expression this test knows");
                        }
                    }
                }
            }
        }
    }
    assert!(links > 0, "the spec defines links");
}
