//! Multipart uploads through the API (`cargo nextest run multipart`): the part plan, part
//! tickets, the stored parts, `complete` on the store, `DELETE` aborting, on the embedded
//! default and on Postgres + Redis + garage.

use std::time::Duration;

use crate::app::AppOptions;
use files_adapters::s3::{S3Config, S3Objects, S3Signer};
use files_core::{NoSuchUpload, ObjectKey, ObjectStore as _, Owner, PartSpec, PortError, TenantId, UrlSigner as _};
use files_testkit::contract::objects::composite_sha256;
use files_testkit::dsts::Alg;
use files_testkit::proxy::TcpProxy;
use files_testkit::services::TestS3;
use files_testkit::{eventually, sha256_hex, sha256_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Harness, json_of, new_device, new_tenant, tenant_scope};
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

/// A limit (1 TiB) that holds the 250-part plan (1.2 GiB), the 10,000-part plan (49 GiB) and
/// a single upload over 5 GiB; nothing of that size is sent.
const LARGE_LIMIT: u64 = 1 << 40;

/// The server, with [`LARGE_LIMIT`].
fn options_for_large_files() -> AppOptions {
    AppOptions::default().var("FILES_MAX_UPLOAD_SIZE", LARGE_LIMIT.to_string())
}

/// A plan of 10,001 parts is refused whatever the limit, naming the parts: 400
/// `too_many_parts` on `parts.size` (a larger part size makes fewer parts), the count in the
/// message. The body (10,001 digests, 680 KB) is under the 1 MiB a body may have, so it is the
/// plan that is refused, not the body.
async fn a_plan_of_10_001_parts_is_400_naming_the_parts(h: &Harness) {
    let many = json!({
        "file_name": "p.bin", "sha256": sha256_hex(b"p"), "size": 10_001_u64 * 1024,
        "parts": {"size": 1024, "sha256": vec![sha256_hex(b"p"); 10_001]},
    });
    let path = format!("{}/files/upload-url", h.scope());
    let (status, refused) = json_of(h.api.post(&path, &h.device_token(), &many).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_parts", "{refused}");
    assert_eq!(refused["error"]["field"], "parts.size", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("10001 parts") && message.contains("10000"),
        "{refused}"
    );
}

/// A single upload over 5 GiB (one PUT's reach) without a plan: 400 `multipart_required` on
/// `size`, under a limit that allows it in parts; 5 GiB exactly goes in one PUT.
async fn a_single_upload_over_5_gib_is_400_multipart_required(h: &Harness) {
    let token = h.device_token();
    let path = format!("{}/files/upload-url", h.scope());
    let five_gib = 5_u64 << 30;
    let single = |size: u64| json!({"file_name": "huge.bin", "sha256": sha256_hex(b"huge"), "size": size});
    let (status, refused) = json_of(h.api.post(&path, &token, &single(five_gib + 1)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "multipart_required", "{refused}");
    assert_eq!(refused["error"]["field"], "size", "{refused}");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("parts"),
        "{refused}"
    );
    let (status, answer) = json_of(h.api.post(&path, &token, &single(five_gib)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["upload"], "single", "{answer}");
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
    let h = Harness::start_with(options_for_large_files()).await;
    part_tickets_come_a_hundred_at_a_time(&h).await;
    a_plan_of_10_001_parts_is_400_naming_the_parts(&h).await;
    a_single_upload_over_5_gib_is_400_multipart_required(&h).await;
}

/// The test store's configuration, as the service's would be.
fn s3_config(s3: &TestS3) -> S3Config {
    S3Config {
        endpoint: s3.endpoint.parse().unwrap(),
        public_endpoint: None,
        region: s3.region.clone(),
        bucket: s3.bucket.clone(),
        access_key: s3.access_key.clone(),
        secret_key: s3.secret_key.clone().into(),
        path_style: true,
        timeout: Duration::from_secs(10),
    }
}

pub(crate) fn objects_of(s3: &TestS3) -> S3Objects {
    S3Objects::new(&s3_config(s3)).unwrap()
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
    let Some(s) = stack_with(test, false, RedisRoute::Direct, options_for_large_files()).await else {
        return;
    };
    part_tickets_come_a_hundred_at_a_time(&s.h).await;
}

/// Starts a one-part multipart upload of `data` (under 5 MiB) in `scope` with `token`; its
/// file id and part ticket.
async fn start_one_part(h: &Harness, scope: &str, token: &str, name: &str, data: &[u8]) -> (String, Value) {
    let body = plan(name, data, data.len());
    let (status, answer) = json_of(h.api.post(&format!("{scope}/files/upload-url"), token, &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["upload"], "multipart", "{answer}");
    (
        answer["file_id"].as_str().unwrap().to_owned(),
        ticket(&answer, 1).clone(),
    )
}

/// The four multipart calls on a file by id with `token`: `POST .../parts`, `GET .../parts`,
/// `complete` and `DELETE`, each with its status and body, in that order.
async fn multipart_calls(h: &Harness, tenant: TenantId, file_id: &str, token: &str) -> [(StatusCode, Value); 4] {
    let file = format!("/v1/tenants/{tenant}/files/{file_id}");
    let parts = format!("{file}/parts");
    [
        json_of(h.api.post(&parts, token, &json!({"part_numbers": [1]})).await).await,
        json_of(h.api.get(&parts, token).await).await,
        h.api.complete(tenant, file_id, token).await,
        json_of(h.api.delete(&file, token).await).await,
    ]
}

/// docs/api.md's permission table on the multipart routes: they are writes where the file
/// lives. A device writes its own root, the tenant service any root of its tenant; another
/// device of the tenant, a device in the tenant root (read only there) and any principal of
/// another tenant get 403 `forbidden` on each of the four calls, and change nothing.
#[tokio::test]
async fn multipart_routes_follow_the_permission_table() {
    let h = Harness::start_with(options()).await;
    let tenant = h.tenant;
    let device = h.device_token();
    let service = h.service_token();
    let other_device = h.dsts.device_token(Alg::Es256, tenant, new_device());
    let other_tenant = new_tenant();
    let foreign_device = h.dsts.device_token(Alg::Es256, other_tenant, new_device());
    let foreign_service = h.dsts.service_token(Alg::Es256, other_tenant);
    let foreigners = [
        ("another tenant's device", &foreign_device),
        ("another tenant's service", &foreign_service),
    ];
    let roots = [
        (
            "the device root",
            h.scope(),
            &device,
            vec![("the device", &device), ("the tenant service", &service)],
            vec![("another device of the tenant", &other_device)],
        ),
        (
            "the tenant root",
            tenant_scope(tenant),
            &service,
            vec![("the tenant service", &service)],
            vec![("a device (read only there)", &device)],
        ),
    ];
    let data = content(1024, 5);
    for (root, scope, starter, allowed, refused) in roots {
        // Refused: each call is 403, and the upload is as it was (its part stored, pending).
        let (file_id, part) = start_one_part(&h, &scope, starter, "mine.bin", &data).await;
        assert!(h.api.put(&part, &data).await.status().is_success());
        for (who, token) in refused.iter().chain(&foreigners) {
            let answers = multipart_calls(&h, tenant, &file_id, token).await;
            for ((status, body), call) in answers.iter().zip(["POST parts", "GET parts", "complete", "DELETE"]) {
                assert_eq!(*status, StatusCode::FORBIDDEN, "{call} by {who} in {root}: {body}");
                assert_eq!(body["error"]["code"], "forbidden", "{call} by {who} in {root}: {body}");
            }
        }
        let (status, listing) = json_of(
            h.api
                .get(&format!("/v1/tenants/{tenant}/files/{file_id}/parts"), starter)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{listing}");
        assert_eq!(
            part_numbers(&listing, true),
            [1],
            "a refused call changed the upload: {listing}"
        );
        // Another tenant naming the file under its own tenant learns nothing of it.
        for (who, token) in &foreigners {
            let (status, body) = json_of(
                h.api
                    .get(&format!("/v1/tenants/{other_tenant}/files/{file_id}/parts"), token)
                    .await,
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {body}");
        }
        // Nothing was changed: the upload completes.
        let (status, done) = h.api.complete(tenant, &file_id, allowed[0].1).await;
        assert_eq!(
            (status, &done["state"]),
            (StatusCode::OK, &json!("available")),
            "{done}"
        );
        // Each allowed principal lists, tickets, completes and deletes an upload of its own
        // starting.
        for (who, token) in &allowed {
            let (file_id, part) = start_one_part(&h, &scope, starter, "theirs.bin", &data).await;
            assert!(h.api.put(&part, &data).await.status().is_success());
            let [tickets, listing, completed, deleted] = multipart_calls(&h, tenant, &file_id, token).await;
            assert_eq!(
                tickets.0,
                StatusCode::OK,
                "POST parts by {who} in {root}: {}",
                tickets.1
            );
            assert_eq!(listing.0, StatusCode::OK, "GET parts by {who} in {root}: {}", listing.1);
            assert_eq!(part_numbers(&listing.1, true), [1], "{}", listing.1);
            assert_eq!(
                completed.0,
                StatusCode::OK,
                "complete by {who} in {root}: {}",
                completed.1
            );
            assert_eq!(
                deleted.0,
                StatusCode::NO_CONTENT,
                "DELETE by {who} in {root}: {}",
                deleted.1
            );
            // And a pending one: DELETE aborts it.
            let (file_id, _) = start_one_part(&h, &scope, starter, "aborted.bin", &data).await;
            let deleted = h
                .api
                .delete(&format!("/v1/tenants/{tenant}/files/{file_id}"), token)
                .await;
            assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "DELETE by {who} in {root}");
        }
    }
}

/// Bound on anything that should be quick on a shared machine (a proxy closing its
/// connections, a store coming back).
const SOON: Duration = Duration::from_secs(15);

/// The server on garage (metadata in memory), reaching the store at `endpoint` (garage itself,
/// or a proxy in front of it) while devices reach garage directly.
async fn on_garage(s3: &TestS3, endpoint: &str, options: AppOptions) -> Harness {
    let mut options = options;
    options.vars.extend(s3.server_vars());
    let options = options
        .var("FILES_S3_ENDPOINT", endpoint)
        .var("FILES_S3_PUBLIC_ENDPOINT", s3.endpoint.clone())
        .var("FILES_S3_TIMEOUT_MS", "2000");
    Harness::start_with(options).await
}

/// The store's upload id, as a part ticket's URL carries it.
fn upload_id_of(ticket: &Value) -> String {
    let url = reqwest::Url::parse(ticket["url"].as_str().unwrap()).unwrap();
    url.query_pairs()
        .find(|(name, _)| name == "uploadId")
        .map(|(_, id)| id.into_owned())
        .unwrap_or_else(|| panic!("no uploadId in {ticket}"))
}

/// Whether the store said it knows no such upload ([`NoSuchUpload`] in the cause chain).
fn is_no_such_upload(error: &PortError) -> bool {
    let (PortError::Failed(cause) | PortError::Unavailable(cause)) = error;
    std::iter::successors(Some(cause.as_ref() as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<NoSuchUpload>())
}

fn key_of(h: &Harness, file_id: &str) -> ObjectKey {
    ObjectKey {
        tenant: h.tenant,
        owner: Owner::Device(h.device),
        file: file_id.parse().unwrap(),
    }
}

/// `DELETE` of a pending multipart upload while the store is cut: 503 naming the object store
/// (the file is gone from the API at once), and the same `DELETE` once the store is back
/// aborts the upload: 204, and garage no longer takes parts for it.
#[tokio::test]
async fn multipart_delete_with_the_store_down_is_503_then_204_on_garage() {
    let test = "multipart_delete_with_the_store_down_is_503_then_204_on_garage";
    let Some(s3) = TestS3::from_env(test).await else { return };
    let garage = s3.endpoint.trim_start_matches("http://").trim_end_matches('/');
    let proxy = TcpProxy::start(garage).await.unwrap();
    let h = on_garage(&s3, &format!("http://{}", proxy.addr()), options()).await;
    let token = h.device_token();
    let data = content(11 * MIB, 6);
    let parts: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let answer = start(&h, "cut.bin", &data, 5 * MIB).await;
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let file = format!("/v1/tenants/{}/files/{file_id}", h.tenant);
    let put = h.api.put(ticket(&answer, 1), parts[0]).await;
    assert!(put.status().is_success(), "part 1: {}", put.status());

    assert!(proxy.cut_and_wait(SOON).await, "the proxy still holds connections");
    let (status, body) = json_of(h.api.delete(&file, &token).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("object store"),
        "{body}"
    );
    // The upload is still on the store: a part is taken (the devices' side is not cut).
    let put = h.api.put(ticket(&answer, 2), parts[1]).await;
    assert!(
        put.status().is_success(),
        "part 2 while the service's side is cut: {}",
        put.status()
    );

    proxy.restore();
    let mut last = None;
    let deleted = eventually(SOON, async || {
        let answer = json_of(h.api.delete(&file, &token).await).await;
        let done = answer.0 == StatusCode::NO_CONTENT;
        last = Some(answer);
        done
    })
    .await;
    assert!(deleted, "DELETE once the store is back: {last:?}");
    let (status, _) = json_of(h.api.get(&file, &token).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Aborted on the store: no more parts taken, nothing listed, no object.
    assert!(
        h.api.put_is_refused(ticket(&answer, 3), parts[2]).await,
        "garage took a part of an upload the DELETE aborted"
    );
    let objects = objects_of(&s3);
    let key = key_of(&h, &file_id);
    let listed = objects.list_parts(&key, &upload_id_of(ticket(&answer, 1))).await;
    assert!(
        listed.as_ref().is_err_and(is_no_such_upload),
        "the upload is still on garage: {listed:?}"
    );
    assert_eq!(objects.inspect(&key).await.unwrap(), None, "an object is left");
}

/// The composite checksum checked on a real store. The part URLs sign each part's SHA-256,
/// so garage refuses other bytes part by part; what can still put other parts under the file's
/// key is a writer with the store's own credentials. Here one completes the device's upload
/// with parts of the same sizes and other bytes: `complete` finds the upload gone and an object
/// of the declared size whose composite is not the plan's, answers 409 `checksum_mismatch`
/// and deletes it; the file stays pending, and a second `complete` finds nothing (409
/// `upload_expired`).
#[tokio::test]
async fn multipart_an_object_of_other_parts_is_409_checksum_mismatch_and_deleted_on_garage() {
    let test = "multipart_an_object_of_other_parts_is_409_checksum_mismatch_and_deleted_on_garage";
    let Some(s3) = TestS3::from_env(test).await else { return };
    let h = on_garage(&s3, &s3.endpoint, options()).await;
    let token = h.device_token();
    let data = content(11 * MIB, 7);
    let answer = start(&h, "declared.bin", &data, 5 * MIB).await;
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let key = key_of(&h, &file_id);
    let upload_id = upload_id_of(ticket(&answer, 1));

    let other = content(11 * MIB, 8);
    let signer = S3Signer::new(&s3_config(&s3)).unwrap();
    let objects = objects_of(&s3);
    let mut stored = Vec::new();
    for (index, bytes) in other.chunks(5 * MIB).enumerate() {
        let number = u16::try_from(index + 1).unwrap();
        let request = signer
            .sign_part(&PartSpec {
                key,
                upload_id: upload_id.clone(),
                part_number: number,
                size: bytes.len() as u64,
                sha256: sha256_of(bytes),
                expires_in: Duration::from_secs(300),
            })
            .unwrap();
        let put = h
            .api
            .put(
                &json!({"method": "PUT", "url": request.url, "headers": request.headers}),
                bytes,
            )
            .await;
        assert!(
            put.status().is_success(),
            "part {number} of other bytes: {}",
            put.status()
        );
        stored.push(number);
    }
    let listed = objects.list_parts(&key, &upload_id).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.part_number).collect::<Vec<_>>(), stored);
    let completed = objects.complete_multipart(&key, &upload_id, &listed).await.unwrap();
    let declared = composite_sha256(&data.chunks(5 * MIB).map(sha256_of).collect::<Vec<_>>());
    assert_ne!(completed.composite_sha256.as_deref(), Some(declared.as_str()));

    let (status, refused) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "checksum_mismatch", "{refused}");
    assert_eq!(
        objects.inspect(&key).await.unwrap(),
        None,
        "the object of other parts was kept"
    );
    let (_, file) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
            .await,
    )
    .await;
    assert_eq!(file["state"], "pending", "{file}");
    let (status, refused) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "upload_expired", "{refused}");
}

/// Part 10,000, the last S3 allows, on a real store. A plan of 10,000 parts of 5 MiB (49 GiB)
/// is accepted; its first 9,999 parts are never sent. The ticket of part 10,000 signs its
/// length and SHA-256, garage takes the part, and `GET .../parts` lists it stored (and
/// only it); `complete` names the 9,999 missing.
#[tokio::test]
async fn multipart_part_10_000_is_ticketed_stored_and_listed_on_garage() {
    let test = "multipart_part_10_000_is_ticketed_stored_and_listed_on_garage";
    let Some(s3) = TestS3::from_env(test).await else { return };
    let h = on_garage(&s3, &s3.endpoint, options_for_large_files()).await;
    let token = h.device_token();
    let last = content(1000, 10);
    let part = 5 * MIB as u64;
    let size = 9_999 * part + last.len() as u64;
    let mut digests: Vec<String> = (0..9_999_u32).map(|i| sha256_hex(&i.to_be_bytes())).collect();
    digests.push(sha256_hex(&last));
    let body = json!({
        "file_name": "ten-thousand.bin", "sha256": sha256_hex(b"ten thousand"), "size": size,
        "parts": {"size": part, "sha256": digests},
    });
    let (status, answer) = json_of(
        h.api
            .post(&format!("{}/files/upload-url", h.scope()), &token, &body)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["part_count"], 10_000, "{answer}");
    let file_id = answer["file_id"].as_str().unwrap().to_owned();
    let parts_path = format!("/v1/tenants/{}/files/{file_id}/parts", h.tenant);

    let (status, tickets) = json_of(
        h.api
            .post(&parts_path, &token, &json!({"part_numbers": [10_000]}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tickets}");
    let last_ticket = ticket(&tickets, 10_000);
    assert!(
        last_ticket["url"].as_str().unwrap().contains("partNumber=10000"),
        "{last_ticket}"
    );
    assert_eq!(last_ticket["headers"]["content-length"], "1000");
    assert_eq!(
        last_ticket["headers"]["x-amz-checksum-sha256"],
        sha256_of(&last).to_base64()
    );
    let put = h.api.put(last_ticket, &last).await;
    assert!(put.status().is_success(), "part 10,000: {}", put.status());

    // Every page of the listing (following `next`): 10,000 parts, only the last one stored.
    let (mut listed, mut stored, mut after) = (0, Vec::new(), None::<u64>);
    let last_part = loop {
        let path = match after {
            Some(after) => format!("{parts_path}?after={after}"),
            None => parts_path.clone(),
        };
        let (status, page) = json_of(h.api.get(&path, &token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["part_count"], 10_000);
        listed += page["parts"].as_array().unwrap().len();
        stored.extend(part_numbers(&page, true));
        match page["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break page["parts"].as_array().unwrap().last().unwrap().clone(),
        }
    };
    assert_eq!((listed, stored), (10_000, vec![10_000]));
    assert_eq!(
        last_part,
        json!({"part_number": 10_000, "size": 1000, "sha256": sha256_hex(&last), "stored": true})
    );
    // The store itself holds it.
    let stored = objects_of(&s3)
        .list_parts(&key_of(&h, &file_id), &upload_id_of(last_ticket))
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|p| (p.part_number, p.size)).collect::<Vec<_>>(),
        [(10_000, 1000)]
    );
    let (status, refused) = h.api.complete(h.tenant, &file_id, &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "parts_missing");
    assert_eq!(refused["error"]["missing_parts"].as_array().unwrap().len(), 9_999);
    let response = h
        .api
        .delete(&format!("/v1/tenants/{}/files/{file_id}", h.tenant), &token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}
