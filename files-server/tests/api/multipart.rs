//! Multipart uploads through the API (`cargo nextest run multipart`): the part plan, part
//! tickets, the stored parts, `complete` on the store, `DELETE` aborting, on the embedded
//! default and on Postgres + Redis + garage.

use files_adapters::s3::{S3Config, S3Objects};
use files_core::{ObjectKey, ObjectStore as _, Owner, Sha256};
use files_testkit::AppOptions;
use files_testkit::contract::objects::composite_sha256;
use files_testkit::services::TestS3;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of, sha256_hex};
use crate::real::{RedisRoute, stack_with};

#[path = "../../examples/device_upload/client.rs"]
mod device_client;

const MIB: usize = 1024 * 1024;
/// The limit the tests run with (`FILES_MAX_UPLOAD_SIZE`).
const LIMIT: usize = 40 * MIB;

fn options() -> AppOptions {
    AppOptions::default().var("FILES_MAX_UPLOAD_SIZE", LIMIT.to_string())
}

/// Deterministic bytes that differ from part to part.
pub(crate) fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + usize::from(seed) * 7 + i / 4096) % 251).unwrap_or(0))
        .collect()
}

fn sha256_of(bytes: &[u8]) -> Sha256 {
    use sha2::Digest as _;
    Sha256::from_bytes(sha2::Sha256::digest(bytes).into())
}

/// The upload request of `data` in parts of `part_size`.
pub(crate) fn plan(name: &str, data: &[u8], part_size: usize) -> Value {
    let digests: Vec<String> = data.chunks(part_size).map(sha256_hex).collect();
    json!({
        "file_name": name,
        "sha256": sha256_hex(data),
        "size": data.len(),
        "parts": {"size": part_size, "sha256": digests},
    })
}

/// Starts a multipart upload of `data` in parts of `part_size` in the harness' device root;
/// the 201 answer.
pub(crate) async fn start(h: &Harness, name: &str, data: &[u8], part_size: usize) -> Value {
    let (status, answer) = json_of(
        h.api
            .post(
                &format!("{}/files/upload-url", h.scope()),
                &h.device_token(),
                &plan(name, data, part_size),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

fn part_numbers(listing: &Value, stored: bool) -> Vec<u64> {
    listing["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["stored"] == stored)
        .map(|p| p["part_number"].as_u64().unwrap())
        .collect()
}

pub(crate) fn ticket(answer: &Value, number: u64) -> &Value {
    answer["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["part_number"] == number)
        .unwrap_or_else(|| panic!("no ticket for part {number} in {answer}"))
}

async fn twelve_mib_in_parts_resumes_and_completes(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    let data = content(12 * MIB, 1);
    let parts: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let answer = start(h, "dump.bin", &data, 5 * MIB).await;
    assert_eq!(answer["upload"], "multipart");
    assert_eq!(answer["part_size"], 5 * MIB);
    assert_eq!(answer["part_count"], 3);
    assert!(
        answer["expires_at"].is_string() && answer["expires_in"].is_u64(),
        "{answer}"
    );
    assert_eq!(answer["parts"].as_array().unwrap().len(), 3, "{answer}");
    let first = ticket(&answer, 1);
    assert_eq!(first["method"], "PUT");
    assert_eq!(first["headers"]["content-length"], (5 * MIB).to_string());
    assert_eq!(
        first["headers"]["x-amz-checksum-sha256"],
        sha256_of(parts[0]).to_base64()
    );
    assert_eq!(ticket(&answer, 3)["headers"]["content-length"], (2 * MIB).to_string());
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let parts_path = format!("/v1/tenants/{}/files/{file_id}/parts", h.tenant);

    // Two parts, then the connection is "lost".
    for number in [1, 2] {
        let put = h.api.put(ticket(&answer, number), parts[number as usize - 1]).await;
        assert!(put.status().is_success(), "part {number}: {}", put.status());
    }
    let (status, listing) = json_of(h.api.get(&parts_path, &token).await).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert_eq!(listing["part_size"], 5 * MIB);
    assert_eq!(listing["part_count"], 3);
    assert_eq!(part_numbers(&listing, true), [1, 2], "{listing}");
    assert_eq!(part_numbers(&listing, false), [3], "{listing}");
    assert_eq!(listing["parts"][2]["size"], 2 * MIB);
    assert_eq!(listing["parts"][2]["sha256"], sha256_hex(parts[2]));

    // Resuming: a fresh ticket for the missing part.
    let (status, fresh) = json_of(
        h.api
            .post(
                &parts_path,
                &token,
                &json!({"part_numbers": part_numbers(&listing, false)}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["parts"].as_array().unwrap().len(), 1);
    let put = h.api.put(ticket(&fresh, 3), parts[2]).await;
    assert!(put.status().is_success(), "part 3: {}", put.status());

    let (status, file) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["state"], "available");
    assert_eq!(file["integrity"], "parts");
    assert_eq!(file["sha256"], sha256_hex(&data));
    assert_eq!(file["size"], 12 * MIB);
    let composite = composite_sha256(&parts.iter().map(|p| sha256_of(p)).collect::<Vec<_>>());
    assert_eq!(
        file["parts"],
        json!({"size": 5 * MIB, "count": 3, "sha256_of_parts": composite})
    );
    // Idempotent, and the parts all stored once complete.
    let (status, again) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!((status, &again["state"]), (StatusCode::OK, &json!("available")));
    let (_, listing) = json_of(h.api.get(&parts_path, &token).await).await;
    assert_eq!(part_numbers(&listing, true), [1, 2, 3], "{listing}");

    // The downloaded bytes are the file.
    let (status, download) = h.api.download_url(&scope, &token, &json!({"file_id": file_id})).await;
    assert_eq!(status, StatusCode::OK, "{download}");
    let (status, bytes) = h.api.fetch(&download).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&bytes), sha256_hex(&data), "the downloaded bytes differ");
}

async fn a_part_with_other_bytes_is_refused_and_complete_names_the_missing_parts(h: &Harness) -> String {
    let token = h.device_token();
    let data = content(12 * MIB, 2);
    let parts: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let answer = start(h, "bad.bin", &data, 5 * MIB).await;
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let put = h.api.put(ticket(&answer, 1), parts[0]).await;
    assert!(put.status().is_success(), "part 1: {}", put.status());
    let mut other = parts[1].to_vec();
    other[1000] ^= 0xff;
    let put = h.api.put(ticket(&answer, 2), &other).await;
    assert!(
        put.status().is_client_error(),
        "the store took other bytes for part 2: {}",
        put.status()
    );
    let (status, refused) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "parts_missing");
    assert_eq!(refused["error"]["missing_parts"], json!([2, 3]));
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("2, 3"),
        "{refused}"
    );
    let (_, file) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
            .await,
    )
    .await;
    assert_eq!(file["state"], "pending");
    file_id
}

/// Deletes a pending multipart file with one part stored; answers its file id and a part
/// ticket that was valid before the deletion.
async fn delete_of_a_pending_multipart_file_aborts_it(h: &Harness) -> (String, Value) {
    let token = h.device_token();
    let data = content(11 * MIB, 3);
    let parts: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let answer = start(h, "gone.bin", &data, 5 * MIB).await;
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let put = h.api.put(ticket(&answer, 1), parts[0]).await;
    assert!(put.status().is_success(), "part 1: {}", put.status());
    let response = h
        .api
        .delete(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The upload is gone from the store: a part sent with a still-valid URL is refused (an
    // error answer, or the store closing the connection without reading the part).
    assert!(
        h.api.put_is_refused(ticket(&answer, 2), parts[1]).await,
        "the store took a part of an aborted upload"
    );
    let (status, _) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{file_id}/parts", h.tenant), &token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    (file_id, ticket(&answer, 1).clone())
}

async fn over_the_limit_is_413_single_or_multipart(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    // 250 parts of 5 MiB but the last: over the limit of this server.
    let size = 249 * 5 * MIB + 1;
    let digests: Vec<String> = (0..250_u32).map(|i| sha256_hex(&i.to_be_bytes())).collect();
    let body = json!({
        "file_name": "big.bin", "sha256": sha256_hex(b"big"), "size": size,
        "parts": {"size": 5 * MIB, "sha256": digests},
    });
    // Over the limit of this server: 413, single or multipart.
    let (status, refused) = json_of(h.api.post(&format!("{scope}/files/upload-url"), &token, &body).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    assert_eq!(refused["error"]["code"], "file_too_large");
    let single = json!({"file_name": "big.bin", "sha256": sha256_hex(b"big"), "size": LIMIT + 1});
    let (status, refused) = json_of(h.api.post(&format!("{scope}/files/upload-url"), &token, &single).await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    assert_eq!(refused["error"]["code"], "file_too_large");
}

async fn part_tickets_come_a_hundred_at_a_time(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    // 250 parts of 5 MiB but the last (the plan is checked and ticketed; nothing is sent).
    let part = 5 * MIB;
    let size = 249 * part + 1;
    let digests: Vec<String> = (0..250_u32).map(|i| sha256_hex(&i.to_be_bytes())).collect();
    let body = json!({
        "file_name": "many.bin", "sha256": sha256_hex(b"many"), "size": size,
        "parts": {"size": part, "sha256": digests},
    });
    let (status, answer) = json_of(h.api.post(&format!("{scope}/files/upload-url"), &token, &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["part_count"], 250);
    let first: Vec<u64> = answer["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["part_number"].as_u64().unwrap())
        .collect();
    assert_eq!(first, (1..=100).collect::<Vec<_>>());
    let file_id = answer["file_id"].as_str().unwrap();
    let parts_path = format!("/v1/tenants/{}/files/{file_id}/parts", h.tenant);
    let (status, more) = json_of(
        h.api
            .post(
                &parts_path,
                &token,
                &json!({"part_numbers": (101..=200).collect::<Vec<u64>>()}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{more}");
    assert_eq!(more["parts"].as_array().unwrap().len(), 100);
    assert_eq!(ticket(&more, 200)["headers"]["content-length"], part.to_string());
    assert_eq!(
        ticket(&more, 200)["headers"]["x-amz-checksum-sha256"]
            .as_str()
            .unwrap()
            .len(),
        44
    );
    let (status, last) = json_of(h.api.post(&parts_path, &token, &json!({"part_numbers": [250]})).await).await;
    assert_eq!(status, StatusCode::OK, "{last}");
    assert_eq!(ticket(&last, 250)["headers"]["content-length"], "1");
    for (asked, what) in [
        (json!({"part_numbers": (1..=101).collect::<Vec<u64>>()}), "101 at once"),
        (json!({"part_numbers": [0]}), "part 0"),
        (json!({"part_numbers": [251]}), "part 251 of 250"),
        (json!({"part_numbers": []}), "none"),
    ] {
        let (status, refused) = json_of(h.api.post(&parts_path, &token, &asked).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {refused}");
        assert_eq!(refused["error"]["code"], "invalid_part_numbers", "{what}");
        assert_eq!(refused["error"]["field"], "part_numbers", "{what}");
    }
    // Nothing sent, nothing to complete.
    let (status, refused) = h.api.complete(h.tenant, file_id, &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["missing_parts"].as_array().unwrap().len(), 250);
}

async fn plans_that_cannot_work_are_400_naming_the_problem(h: &Harness) {
    let token = h.device_token();
    let scope = h.scope();
    let path = format!("{scope}/files/upload-url");
    let twelve = content(12 * MIB, 4);
    let mut short_digests = plan("p.bin", &twelve, 5 * MIB);
    short_digests["parts"]["sha256"].as_array_mut().unwrap().pop();
    let mut bad_digest = plan("p.bin", &twelve, 5 * MIB);
    bad_digest["parts"]["sha256"][1] = json!("not a digest");
    let many = json!({
        "file_name": "p.bin", "sha256": sha256_hex(b"p"), "size": 10_001_u64 * 1024,
        "parts": {"size": 1024, "sha256": vec![sha256_hex(b"p"); 10_001]},
    });
    for (body, code, field) in [
        (plan("p.bin", &twelve, MIB), "part_too_small", "parts.size"),
        (short_digests, "part_count_mismatch", "parts.sha256"),
        (bad_digest, "invalid_sha256", "parts.sha256[1]"),
        (many, "too_many_parts", "parts.size"),
        (
            json!({"file_name": "p.bin", "sha256": sha256_hex(b""), "size": 0, "parts": {"size": 5 * MIB, "sha256": []}}),
            "invalid_size",
            "size",
        ),
        (
            json!({"file_name": "p.bin", "sha256": sha256_hex(b"p"), "parts": {"size": 5 * MIB, "sha256": []}}),
            "missing_field",
            "size",
        ),
    ] {
        let (status, refused) = json_of(h.api.post(&path, &token, &body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code}: {refused}");
        assert_eq!(refused["error"]["code"], code, "{refused}");
        assert_eq!(refused["error"]["field"], field, "{refused}");
    }
}

/// Must-show 8: the device example, stopped after its first part and run again, sends only
/// the rest and completes.
async fn the_device_example_resumes_without_sending_stored_parts_again(h: &Harness) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.tar");
    let data = content(12 * MIB, 9);
    std::fs::write(&file, &data).unwrap();
    let upload = device_client::Upload {
        api: h.app.address.clone(),
        token: h.device_token(),
        tenant: h.tenant.to_string(),
        device: h.device.to_string(),
        file: file.clone(),
        name: "bundle.tar".to_owned(),
        part_size: 5 * MIB as u64,
        state: dir.path().join("bundle.tar.upload.json"),
        stop_after: Some(1),
    };
    let first = device_client::run(&upload).await.unwrap();
    assert_eq!(first.sent, [1]);
    assert!(first.file.is_none());
    assert!(upload.state.exists(), "the upload in progress is remembered");
    let second = device_client::run(&device_client::Upload {
        stop_after: None,
        ..upload.clone()
    })
    .await
    .unwrap();
    assert_eq!(second.skipped, [1], "part 1 was stored already");
    assert_eq!(second.sent, [2, 3], "only the missing parts are sent");
    let file = second.file.unwrap();
    assert_eq!(file["state"], "available");
    assert_eq!(file["integrity"], "parts");
    assert_eq!(file["sha256"], sha256_hex(&data));
    assert!(!upload.state.exists(), "the state is forgotten once complete");
    // A small file goes in one PUT.
    let small = dir.path().join("small.log");
    std::fs::write(&small, b"a small log").unwrap();
    let one = device_client::run(&device_client::Upload {
        file: small,
        name: "small.log".to_owned(),
        stop_after: None,
        ..upload
    })
    .await
    .unwrap();
    assert_eq!(one.file.unwrap()["integrity"], "object");
}

/// The server, with a limit that holds the 250-part plan (1.2 GiB; nothing is sent).
fn options_for_many_parts() -> AppOptions {
    AppOptions::default().var("FILES_MAX_UPLOAD_SIZE", (2_u64 << 30).to_string())
}

#[tokio::test]
async fn multipart_uploads_on_the_embedded_store() {
    let h = Harness::start_with(options()).await;
    twelve_mib_in_parts_resumes_and_completes(&h).await;
    a_part_with_other_bytes_is_refused_and_complete_names_the_missing_parts(&h).await;
    delete_of_a_pending_multipart_file_aborts_it(&h).await;
    over_the_limit_is_413_single_or_multipart(&h).await;
    plans_that_cannot_work_are_400_naming_the_problem(&h).await;
    the_device_example_resumes_without_sending_stored_parts_again(&h).await;
    let h = Harness::start_with(options_for_many_parts()).await;
    let token = h.device_token();
    let many = json!({
        "file_name": "p.bin", "sha256": sha256_hex(b"p"), "size": 10_001_u64 * 1024,
        "parts": {"size": 1024, "sha256": vec![sha256_hex(b"p"); 10_001]},
    });
    let r = h
        .api
        .client
        .post(format!("{}{}/files/upload-url", h.app.address, h.scope()))
        .bearer_auth(&token)
        .json(&many)
        .send()
        .await;
    eprintln!("RESULT {r:?}");
    eprintln!("BODY {:?}", r.unwrap().text().await);
}

pub(crate) fn objects_of(s3: &TestS3) -> S3Objects {
    S3Objects::new(&S3Config {
        endpoint: s3.endpoint.parse().unwrap(),
        public_endpoint: None,
        region: s3.region.clone(),
        bucket: s3.bucket.clone(),
        access_key: s3.access_key.clone(),
        secret_key: s3.secret_key.clone().into(),
        path_style: true,
        timeout: std::time::Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn multipart_uploads_on_postgres_redis_and_garage() {
    let test = "multipart_uploads_on_postgres_redis_and_garage";
    let Some(s3) = TestS3::from_env(test).await else { return };
    let Some(s) = stack_with(test, false, RedisRoute::Direct, options()).await else {
        return;
    };
    let h = &s.h;
    twelve_mib_in_parts_resumes_and_completes(h).await;
    a_part_with_other_bytes_is_refused_and_complete_names_the_missing_parts(h).await;
    let (file_id, _) = delete_of_a_pending_multipart_file_aborts_it(h).await;
    // In the store itself: no multipart upload of that key, and no object.
    let key = ObjectKey {
        tenant: h.tenant,
        owner: Owner::Device(h.device),
        file: file_id.parse().unwrap(),
    };
    assert_eq!(objects_of(&s3).inspect(&key).await.unwrap(), None, "an object is left");
    over_the_limit_is_413_single_or_multipart(h).await;
    plans_that_cannot_work_are_400_naming_the_problem(h).await;
    the_device_example_resumes_without_sending_stored_parts_again(h).await;
    drop(s);
    let Some(s) = stack_with(test, false, RedisRoute::Direct, options_for_many_parts()).await else {
        return;
    };
    part_tickets_come_a_hundred_at_a_time(&s.h).await;
}
