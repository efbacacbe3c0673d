//! Bad input: each a 4xx whose error code names the problem; never a 500.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of};
use files_testkit::sha256_hex;

const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[tokio::test]
async fn bad_upload_bodies_name_the_problem() {
    let h = Harness::start().await;
    let token = h.device_token();
    let url = h.app.url(&format!("{}/files/upload-url", h.scope()));
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "short sha256",
            json!({"file_name": "a", "sha256": &SHA[..63], "size": 1}).to_string(),
            "invalid_sha256",
            Some("sha256"),
        ),
        (
            "non-hex sha256",
            json!({"file_name": "a", "sha256": SHA.replace('e', "z"), "size": 1}).to_string(),
            "invalid_sha256",
            Some("sha256"),
        ),
        (
            "empty file name",
            json!({"file_name": "", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "256-byte file name",
            json!({"file_name": "n".repeat(256), "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "control character",
            json!({"file_name": "a\u{0}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "newline",
            json!({"file_name": "a\nb", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "right-to-left override",
            json!({"file_name": "invoice\u{202E}fdp.exe", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "zero-width space",
            json!({"file_name": "a\u{200B}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "zero-width non-joiner",
            json!({"file_name": "a\u{200C}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "zero-width joiner",
            json!({"file_name": "a\u{200D}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "word joiner",
            json!({"file_name": "a\u{2060}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "byte order mark",
            json!({"file_name": "\u{FEFF}a", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "line separator",
            json!({"file_name": "a\u{2028}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "paragraph separator",
            json!({"file_name": "a\u{2029}b", "sha256": SHA, "size": 1}).to_string(),
            "invalid_file_name",
            Some("file_name"),
        ),
        (
            "missing sha256",
            json!({"file_name": "a"}).to_string(),
            "missing_field",
            Some("sha256"),
        ),
        (
            // API 1.1: without it the store would take any length and the limit would not hold.
            "missing size",
            json!({"file_name": "a", "sha256": SHA}).to_string(),
            "missing_field",
            Some("size"),
        ),
        (
            "missing file_name",
            json!({"sha256": SHA}).to_string(),
            "missing_field",
            Some("file_name"),
        ),
        ("empty object", "{}".to_owned(), "missing_field", None),
        (
            "file_name a number",
            json!({"file_name": 7, "sha256": SHA, "size": 1}).to_string(),
            "invalid_type",
            Some("file_name"),
        ),
        (
            "size a string",
            json!({"file_name": "a", "sha256": SHA, "size": "12"}).to_string(),
            "invalid_type",
            Some("size"),
        ),
        (
            "size negative",
            json!({"file_name": "a", "sha256": SHA, "size": -1}).to_string(),
            "invalid_value",
            Some("size"),
        ),
        (
            "sha256 an array",
            json!({"file_name": "a", "sha256": [1, 2], "size": 1}).to_string(),
            "invalid_type",
            Some("sha256"),
        ),
        (
            "bad content type",
            json!({"file_name": "a", "sha256": SHA, "content_type": "nope", "size": 1}).to_string(),
            "invalid_content_type",
            Some("content_type"),
        ),
        (
            "malformed JSON",
            r#"{"file_name": "a", "sha256": "#.to_owned(),
            "invalid_json",
            None,
        ),
        ("not JSON", "file_name=a".to_owned(), "invalid_json", None),
        ("empty body", String::new(), "invalid_json", None),
        ("JSON array", json!(["a", SHA]).to_string(), "invalid_body", None),
        ("JSON string", json!("a").to_string(), "invalid_body", None),
        ("JSON null", "null".to_owned(), "invalid_body", None),
    ];
    for (name, body, code, field) in cases {
        let response = h
            .api
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{name}: {body}");
        }
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn sha256_in_base64_is_accepted_and_returned_as_hex() {
    let h = Harness::start().await;
    use base64::Engine as _;
    let digest = hex::decode(sha256_hex(b"b64")).unwrap();
    let body = json!({"file_name": "b", "sha256": base64::engine::general_purpose::STANDARD.encode(digest), "size": 1});
    let (status, ticket) = json_of(
        h.api
            .post(&format!("{}/files/upload-url", h.scope()), &h.device_token(), &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let file = format!("/v1/tenants/{}/files/{}", h.tenant, ticket["file_id"].as_str().unwrap());
    let (_, record) = json_of(h.api.get(&file, &h.device_token()).await).await;
    assert_eq!(record["sha256"], sha256_hex(b"b64"));
}

#[tokio::test]
async fn non_uuid_path_segments_are_400() {
    let h = Harness::start().await;
    let token = h.device_token();
    let (t, d, f) = (
        h.tenant.to_string(),
        h.device.to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let body = json!({"file_name": "a", "sha256": SHA, "size": 1});
    let cases = [
        (
            "POST",
            format!("/v1/tenants/not-a-uuid/devices/{d}/files/upload-url"),
            "tenant_id",
        ),
        (
            "POST",
            format!("/v1/tenants/{t}/devices/..%2F..%2Fetc/files/upload-url"),
            "device_id",
        ),
        ("POST", "/v1/tenants/1/files/download-url".to_owned(), "tenant_id"),
        ("GET", format!("/v1/tenants/{t}/devices/{d}x/files"), "device_id"),
        ("GET", format!("/v1/tenants/{t}/files/{f}0"), "file_id"),
        ("DELETE", format!("/v1/tenants/{t}/files/DROP%20TABLE"), "file_id"),
        ("POST", format!("/v1/tenants/{t}x/files/{f}/complete"), "tenant_id"),
    ];
    for (method, path, field) in cases {
        let request = match method {
            "POST" => h.api.client.post(h.app.url(&path)).json(&body),
            "DELETE" => h.api.client.delete(h.app.url(&path)),
            _ => h.api.client.get(h.app.url(&path)),
        };
        let (status, body) = json_of(request.bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{path}");
        assert_eq!(body["error"]["field"], field, "{path}");
    }
}

#[tokio::test]
async fn bad_download_and_list_requests() {
    let h = Harness::start().await;
    let token = h.device_token();
    let cases: [(Value, &str); 5] = [
        (json!({}), "missing_field"),
        (json!({"file_name": "invoice\u{202E}fdp.exe"}), "invalid_file_name"),
        (
            json!({"file_name": "a", "file_id": uuid::Uuid::now_v7()}),
            "invalid_request",
        ),
        (json!({"file_id": "nope"}), "invalid_file_id"),
        (json!({"file_name": ""}), "invalid_file_name"),
    ];
    for (body, code) in cases {
        let (status, answer) = h.api.download_url(&h.scope(), &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}");
    }
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=x", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("cursor=zz", "invalid_cursor"),
    ] {
        let (status, answer) = json_of(h.api.get(&format!("{}/files?{query}", h.scope()), &token).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{query}");
    }
}

#[tokio::test]
async fn oversized_bodies_and_sizes() {
    let h = Harness::start_with(crate::app::AppOptions::default().var("FILES_MAX_UPLOAD_SIZE", "1000")).await;
    let token = h.device_token();
    let huge = format!(
        r#"{{"file_name": "a", "sha256": "{SHA}", "pad": "{}"}}"#,
        "x".repeat(8 * 1024 * 1024)
    )
    .into_bytes();
    // Declared in `Content-Length`, and streamed chunked with no length: either way the answer
    // is read (sent while the body is still being written) and it is the contract's 413.
    for chunked in [false, true] {
        let (status, body) = raw_post(
            h.app.port,
            &format!("{}/files/upload-url", h.scope()),
            &token,
            &huge,
            chunked,
        )
        .await;
        assert_eq!(status, 413, "chunked: {chunked}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("chunked: {chunked}: {e}: {body}"));
        assert_eq!(body["error"]["code"], "body_too_large", "chunked: {chunked}: {body}");
    }
    let api = &h.api;
    let declare = |size: u64| {
        let body = json!({"file_name": "a", "sha256": SHA, "size": size});
        let path = format!("{}/files/upload-url", h.scope());
        let token = token.clone();
        async move { json_of(api.post(&path, &token, &body).await).await }
    };
    let (status, body) = declare(1001).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "file_too_large");
    // The service still answers, and the limit itself is allowed.
    let (status, _) = declare(1000).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = Harness::start().await;
    let (status, body) = json_of(h.api.client.get(h.app.url("/v2/nothing")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = json_of(
        h.api
            .client
            .put(h.app.url(&format!("{}/files/upload-url", h.scope())))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_405_lists_the_allowed_methods() {
    let h = Harness::start().await;
    let file = format!("/v1/tenants/{}/files/{}", h.tenant, files_core::FileId::new());
    let cases = [
        (format!("{}/files/upload-url", h.scope()), reqwest::Method::PUT, "POST"),
        (format!("{}/files", h.scope()), reqwest::Method::POST, "GET"),
        (file.clone(), reqwest::Method::PATCH, "GET, DELETE"),
        (format!("{file}/complete"), reqwest::Method::OPTIONS, "POST"),
        ("/healthz".to_owned(), reqwest::Method::TRACE, "GET"),
        ("/metrics".to_owned(), reqwest::Method::DELETE, "GET"),
        ("/v1/storage/events".to_owned(), reqwest::Method::GET, "POST"),
    ];
    for (path, method, allow) in cases {
        let response = h
            .api
            .client
            .request(method.clone(), h.app.url(&path))
            .send()
            .await
            .unwrap();
        let header = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method} {path}");
        assert_eq!(header.as_deref(), Some(allow), "{method} {path}: Allow");
    }
}

/// POSTs `body` as JSON over a plain connection, writing it while reading the answer, so an
/// answer the server sends before it has read the whole body (and then closes) is still read.
/// With `chunked`, the body goes in 64 KiB chunks with no `Content-Length`. The status and the
/// answer's body; a connection closed without an answer fails the test.
async fn raw_post(port: u16, path: &str, token: &str, body: &[u8], chunked: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\n{framing}\r\nconnection: close\r\n\r\n"
    );
    let mut wire = head.into_bytes();
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        wire.extend_from_slice(body);
    }
    // The server may stop reading and close: the write then fails, which is expected.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&wire).await;
        let _ = writer.shutdown().await;
    });
    let mut answer = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    writing.abort();
    assert!(read.is_ok(), "no answer within 30 s");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let Some((head, rest)) = answer.split_once("\r\n\r\n") else {
        panic!("the connection closed without an answer: {answer:?}");
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"));
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(rest.len());
    (status, rest.get(..length).unwrap_or(rest).to_owned())
}
