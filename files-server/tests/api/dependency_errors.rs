//! One place maps a failing dependency to HTTP: down (`PortError::Unavailable`) is a 503 that
//! names it, answering wrongly (`PortError::Failed`) is a 500 `internal` that names nothing.

use reqwest::StatusCode;

use crate::helpers::Harness;

#[tokio::test]
async fn a_store_that_answers_wrongly_is_500_internal_and_one_that_is_down_503() {
    let (h, store) = Harness::with_fake_store().await;
    let token = h.device_token();

    store.switch.answer_wrongly();
    let (status, body) = h.api.upload_url(&h.scope(), &token, "a.txt", b"a").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert_eq!(
        body["error"]["message"], "internal error",
        "the cause is logged, not shown: {body}"
    );

    store.switch.fail();
    let (status, body) = h.api.upload_url(&h.scope(), &token, "a.txt", b"a").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "dependency_unavailable", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("database"),
        "{body}"
    );

    store.switch.recover();
    let (status, body) = h.api.upload_url(&h.scope(), &token, "a.txt", b"a").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
