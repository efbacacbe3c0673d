//! Token attacks over HTTP: each a 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::json;

use crate::helpers::{Harness, json_of};

#[tokio::test]
async fn every_attack_token_is_refused_with_invalid_token() {
    let h = Harness::start().await;
    let attacks = h.dsts.attack_tokens(h.tenant, h.device);
    assert!(attacks.len() >= 15);
    let path = format!("{}/files/upload-url", h.scope());
    let body = json!({"file_name": "x", "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "size": 0});
    for (name, token) in attacks {
        let response = h.api.post(&path, &token, &body).await;
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
        assert!(challenge.contains(r#"error="invalid_token""#), "{name}: {challenge}");
        assert_eq!(body["error"]["code"], "invalid_token", "{name}");
    }
    // The good token passes, so the refusals above are about the tokens.
    let (status, body) = json_of(h.api.post(&path, &h.device_token(), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn every_algorithm_is_accepted() {
    let h = Harness::start().await;
    for alg in files_testkit::dsts::Alg::ALL {
        let token = h.dsts.device_token(alg, h.tenant, h.device);
        let status = h.api.get(&format!("{}/files", h.scope()), &token).await.status();
        assert_eq!(status, StatusCode::OK, "{alg:?}");
    }
}

#[tokio::test]
async fn no_token_or_another_scheme_is_401() {
    let h = Harness::start().await;
    let url = h.app.url(&format!("{}/files", h.scope()));
    let requests = [
        h.api.client.get(&url),
        h.api.client.get(&url).header("authorization", "Basic dXNlcjpwYXNz"),
        h.api.client.get(&url).header("authorization", "Bearer "),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
        assert_eq!(body["error"]["code"], "missing_token");
    }
}

#[tokio::test]
async fn the_jwks_url_is_shown_without_its_credentials_nor_query() {
    let dsts = files_testkit::dsts::FakeDsts::start().await;
    let address = dsts.jwks_url().replace("http://", "");
    let url = format!("http://dsts-user:dsts-password@{address}?access_token=query-secret");
    let vars = |allow: &str| {
        [
            ("FILES_LISTEN", "127.0.0.1:0"),
            ("FILES_EMBEDDED_S3_LISTEN", "127.0.0.1:0"),
            ("FILES_JWKS_URL", url.as_str()),
            ("FILES_JWKS_ALLOW_HTTP", allow),
            ("FILES_TOKEN_ISSUER", dsts.issuer()),
            ("FILES_TOKEN_AUDIENCE", dsts.audience()),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
    };

    // Plain http without FILES_JWKS_ALLOW_HTTP stops start-up, naming the variable.
    let refused = files_server::Settings::from_vars(vars("false"))
        .unwrap_err()
        .to_string();
    assert!(refused.starts_with("FILES_JWKS_URL: "), "{refused}");
    assert!(refused.contains("FILES_JWKS_ALLOW_HTTP"), "{refused}");

    let settings = files_server::Settings::from_vars(vars("true")).unwrap();
    let app = files_server::Application::build(settings, files_server::Overrides::default())
        .await
        .unwrap();
    let profile = app.profile().join("\n");
    assert!(
        profile.contains(&format!("tokens: keys from http://***@{address}?***")),
        "{profile}"
    );
    for secret in ["dsts-user", "dsts-password", "query-secret"] {
        assert!(!profile.contains(secret), "{profile}");
        assert!(!format!("{app:?}").contains(secret));
    }
    // The URL works: the keys were fetched with it.
    assert_eq!(dsts.jwks_requests(), 1);
}
