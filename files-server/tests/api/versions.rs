//! Versions: the same name twice makes two ids; by name the latest, by id any available one.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, json_of};

#[tokio::test]
async fn a_name_in_nfd_is_the_same_name_as_in_nfc() {
    let h = Harness::start().await;
    let token = h.device_token();
    let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
    let first = h.api.upload(&h.scope(), h.tenant, &token, nfc, b"composed").await;
    let second = h.api.upload(&h.scope(), h.tenant, &token, nfd, b"decomposed").await;
    assert_ne!(first, second);

    // Asked for by either form, the latest of the one name is the NFD upload, named in NFC.
    for asked in [nfc, nfd] {
        let (status, latest) = h
            .api
            .download_url(&h.scope(), &token, &json!({"file_name": asked}))
            .await;
        assert_eq!(status, StatusCode::OK, "{asked:?}: {latest}");
        assert_eq!(latest["file_id"], second.as_str(), "{asked:?}");
        assert_eq!(latest["file_name"], nfc, "{asked:?}");
        assert_eq!(h.api.fetch(&latest).await.1, b"decomposed");
    }
    let (_, record) = json_of(
        h.api
            .get(&format!("/v1/tenants/{}/files/{second}", h.tenant), &token)
            .await,
    )
    .await;
    assert_eq!(record["file_name"], nfc, "{record}");
}

#[tokio::test]
async fn same_name_twice_gives_two_versions() {
    versions(&Harness::start().await).await;
}

/// Versions by name and by id against whatever adapters `h` runs on.
pub async fn versions(h: &Harness) {
    let token = h.device_token();
    let v1 = h
        .api
        .upload(&h.scope(), h.tenant, &token, "firmware.bin", b"version one")
        .await;
    let v2 = h
        .api
        .upload(&h.scope(), h.tenant, &token, "firmware.bin", b"version two")
        .await;
    assert_ne!(v1, v2);

    let (status, latest) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "firmware.bin"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["file_id"], v2.as_str());
    assert_eq!(h.api.fetch(&latest).await.1, b"version two");

    let (status, older) = h.api.download_url(&h.scope(), &token, &json!({"file_id": v1})).await;
    assert_eq!(status, StatusCode::OK, "{older}");
    assert_eq!(older["file_id"], v1.as_str());
    assert_eq!(h.api.fetch(&older).await.1, b"version one");

    // A third version that is only pending: not downloadable by id, and the latest stays v2.
    let (_, pending) = h
        .api
        .upload_url(&h.scope(), &token, "firmware.bin", b"version three")
        .await;
    let (status, body) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_id": pending["file_id"]}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "upload_not_completed");
    let (_, latest) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "firmware.bin"}))
        .await;
    assert_eq!(latest["file_id"], v2.as_str());

    // A name whose only version is pending: 409; an unknown name: 404.
    h.api.upload_url(&h.scope(), &token, "new.bin", b"n").await;
    let (status, _) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "new.bin"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = h
        .api
        .download_url(&h.scope(), &token, &json!({"file_name": "none.bin"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "file_not_found");
}
