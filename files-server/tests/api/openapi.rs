//! `docs/openapi.yaml` is kept true: every documented operation is served and answers, on
//! success and on the refusals a client meets first (no token, an unknown file, an empty
//! body, a wrong method), only documented statuses, in a documented media type, with a body
//! of the documented shape (types, `required` at every depth, `nullable`, `enum`,
//! `additionalProperties`, `oneOf`); undocumented methods on documented paths are refused with
//! a 405 whose `Allow` lists the documented ones; links name operations and parameters that
//! exist. `scripts/fuzz-api` checks the rest (formats, patterns, bounds, every input) with
//! schemathesis.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of};
use files_testkit::sha256_hex;

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

/// Where `value` breaks `schema`, an OpenAPI 3.0 schema: `$ref`, `type`, `nullable`, `enum`,
/// `required`, `properties`, `additionalProperties`, `items`, `oneOf`, `anyOf`, `allOf`, at every
/// depth. Each problem is pushed with its JSON pointer. Formats, patterns and bounds are left to
/// `scripts/fuzz-api`.
fn violations(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    let conforms = |branch: &Value| {
        let mut found = Vec::new();
        violations(spec, branch, value, at, &mut found);
        found.is_empty()
    };
    if let Some(branches) = schema["allOf"].as_array() {
        for branch in branches {
            violations(spec, branch, value, at, problems);
        }
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let matching = branches.iter().filter(|branch| conforms(branch)).count();
        if matching != 1 {
            problems.push(format!(
                "{at}: matches {matching} of the oneOf branches, not 1: {value}"
            ));
        }
    }
    if let Some(branches) = schema["anyOf"].as_array()
        && !branches.iter().any(conforms)
    {
        problems.push(format!("{at}: matches none of the anyOf branches: {value}"));
    }
    if value.is_null() {
        if schema.get("type").is_some() && schema["nullable"] != true {
            problems.push(format!("{at}: null, which is not nullable"));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let type_ok = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("{at}: a schema type this test does not know: {other}"),
    };
    if !type_ok {
        problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(object) = value.as_object() {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            if !object.contains_key(field) {
                problems.push(format!("{at}: the required field {field} is missing"));
            }
        }
        for (field, item) in object {
            let path = format!("{at}/{field}");
            match (schema["properties"].get(field), &schema["additionalProperties"]) {
                (Some(property), _) => violations(spec, property, item, &path, problems),
                (None, Value::Bool(false)) => problems.push(format!("{path}: not a documented field")),
                (None, additional) if additional.is_object() => violations(spec, additional, item, &path, problems),
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (n, item) in array.iter().enumerate() {
            violations(spec, items, item, &format!("{at}/{n}"), problems);
        }
    }
}

/// Asserts that an answer is one the spec documents for the operation: its status, its media
/// type, and (for JSON) a body of the documented schema; a documented answer without content
/// has no body.
fn assert_documented(spec: &Value, operation: &Value, what: &str, answer: &Answer) {
    let Answer {
        status,
        content_type,
        text,
    } = answer;
    let documented = &operation["responses"][status.as_str()];
    assert!(
        !documented.is_null(),
        "{what} answered an undocumented {status}: {text}"
    );
    let documented = resolve(spec, documented);
    let Some(media) = documented["content"].as_object() else {
        assert!(
            text.is_empty(),
            "{what} {status}: documented without content, answered {text}"
        );
        return;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some(described) = media.get(essence) else {
        panic!(
            "{what} {status}: answered {content_type:?}, documented {:?}",
            media.keys().collect::<Vec<_>>()
        );
    };
    let schema = &described["schema"];
    if essence == "application/json" {
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{what} {status}: the body is not JSON ({e}): {text}"));
        let mut problems = Vec::new();
        violations(spec, schema, &body, "", &mut problems);
        assert!(problems.is_empty(), "{what} {status}: {problems:#?} in {body}");
    } else {
        assert_eq!(
            resolve(spec, schema)["type"],
            "string",
            "{what} {status}: a {essence} body documented as other than a string"
        );
        assert!(!text.is_empty(), "{what} {status}: an empty {essence} body");
    }
}

/// What the server answered.
struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

async fn answer_of(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        text,
    }
}

#[test]
fn the_schema_check_catches_what_it_claims() {
    let spec = spec();
    let file = json!({"$ref": "#/components/schemas/File"});
    let error = json!({"$ref": "#/components/schemas/Error"});
    let check = |schema: &Value, value: Value| {
        let mut problems = Vec::new();
        violations(&spec, schema, &value, "", &mut problems);
        problems
    };
    let good = json!({"file_id": "018f3a2e-9b7c-7d41-8f0a-3c2b1a0e9d88", "tenant_id": "018f3a2e-9b7c-7d41-8f0a-3c2b1a0e9d88",
        "device_id": null, "file_name": "a", "sha256": "00", "size": 1, "content_type": null,
        "state": "available", "created_at": "x", "completed_at": null, "integrity": "object", "parts": null});
    assert_eq!(check(&file, good.clone()), Vec::<String>::new());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("completed_at");
    assert_eq!(check(&file, missing).len(), 1, "a missing required field");
    let mut not_nullable = good.clone();
    not_nullable["file_name"] = Value::Null;
    assert_eq!(check(&file, not_nullable).len(), 1, "null where not nullable");
    let mut wrong_enum = good.clone();
    wrong_enum["state"] = json!("gone");
    assert_eq!(check(&file, wrong_enum).len(), 1, "a value out of its enum");
    let mut wrong_type = good;
    wrong_type["size"] = json!("1");
    assert_eq!(check(&file, wrong_type).len(), 1, "a string for an integer");
    assert_eq!(
        check(&error, json!({"error": {"code": "x", "message": "y"}})),
        Vec::<String>::new()
    );
    assert_eq!(
        check(&error, json!({"error": {"code": "x"}})).len(),
        1,
        "a nested required field"
    );
    assert_eq!(check(&error, json!({"error": "x"})).len(), 1, "a nested type");
    let readiness = json!({"$ref": "#/components/responses/Readiness/content/application~1json/schema"});
    assert_eq!(
        check(
            &readiness,
            json!({"status": "ready", "dependencies": {"database": "down"}})
        )
        .len(),
        1,
        "additionalProperties are checked"
    );
}

#[tokio::test]
async fn the_spec_matches_the_server() {
    let h = Harness::start_with(crate::app::AppOptions::default().var("FILES_EVENTS_SECRET", SECRET)).await;
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
            (t, "PUT") if t.ends_with("/settings") => Some(json!({"max_file_size": 1_000_000})),
            _ => None,
        };
        let auth = if template == "/v1/storage/events" {
            format!("Bearer {SECRET}")
        } else if method == Method::PUT && template.ends_with("/settings") {
            // Only the platform sets a tenant's settings.
            format!("Bearer {}", crate::tenants::platform_token(&h))
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
        let what = format!("{method} {template}");
        let answer = answer_of(request).await;
        assert_documented(&spec, operation, &what, &answer);
        assert!(
            answer.status.is_success(),
            "{what} answered {}: {}",
            answer.status,
            answer.text
        );
    }

    // The refusals a client meets first answer as documented too.
    let unknown_file = uuid::Uuid::now_v7().to_string();
    let mut refusals = 0;
    for (template, method, operation) in &operations {
        let path = |file: &str| {
            template
                .replace("{tenant_id}", &h.tenant.to_string())
                .replace("{device_id}", &h.device.to_string())
                .replace("{file_id}", file)
        };
        let request = |path: String| h.api.client.request(method.clone(), h.app.url(&path));
        let secured = operation
            .get("security")
            .is_none_or(|s| s.as_array().is_some_and(|s| !s.is_empty()));
        let mut variants = Vec::new();
        if secured {
            variants.push(("no token", request(path(&file_id))));
        }
        if template.contains("{file_id}") {
            variants.push(("an unknown file", request(path(&unknown_file)).bearer_auth(&token)));
        }
        if operation.get("requestBody").is_some() {
            let auth = if template == "/v1/storage/events" {
                SECRET
            } else {
                token.as_str()
            };
            variants.push((
                "an empty JSON object",
                request(path(&file_id)).bearer_auth(auth).json(&json!({})),
            ));
        }
        for (variant, request) in variants {
            let what = format!("{method} {template} with {variant}");
            let answer = answer_of(request).await;
            assert!(
                answer.status.is_client_error(),
                "{what} answered {}: {}",
                answer.status,
                answer.text
            );
            assert_documented(&spec, operation, &what, &answer);
            refusals += 1;
        }
    }
    assert!(refusals >= 15, "only {refusals} refusals checked");

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
            let allow = response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = response.text().await.unwrap();
            // The body is the documented 405's (every operation of the path documents the same).
            if let Some((_, operation)) = operations_of(item).next() {
                let answer = Answer {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    content_type,
                    text,
                };
                assert_documented(&spec, operation, &format!("{method} {template}"), &answer);
            }
            let mut allowed: Vec<String> = allow
                .as_deref()
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

/// The spec's `FileName` pattern refuses exactly the characters of the BMP that the server
/// refuses in a name (those beyond the BMP are named in its comment: a pattern cannot hold them
/// for schemathesis), so a fuzzer's schema-valid name is one the server takes.
#[test]
fn the_file_name_pattern_is_the_servers_rule_over_the_bmp() {
    let spec = spec();
    let pattern = spec["components"]["schemas"]["FileName"]["pattern"].as_str().unwrap();
    let pattern = regex::Regex::new(pattern).unwrap();
    let mut disagree = Vec::new();
    for c in (0..=0xFFFF_u32).filter_map(char::from_u32) {
        let name = format!("a{c}");
        let server = files_core::FileName::parse(name.as_str()).is_ok();
        if pattern.is_match(&name) != server {
            disagree.push(format!(
                "U+{:04X} (server {})",
                u32::from(c),
                if server { "takes" } else { "refuses" }
            ));
        }
    }
    assert!(disagree.is_empty(), "{} characters: {disagree:?}", disagree.len());
}
