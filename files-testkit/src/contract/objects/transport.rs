//! The ways to send the signed requests to a store: real HTTP, or straight to the fake.

use std::time::Duration;

use async_trait::async_trait;
use files_core::PresignedRequest;
use files_core::ports::error_chain;

use crate::fakes::FakeObjectStore;

/// Sends pre-signed requests to a store, as a device does.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` with `body`; `Ok` when the store accepted (stored) it, else why not.
    ///
    /// # Errors
    /// A description of the refusal: the store's status and answer, or why nothing was sent.
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String>;

    /// Sends `request` (a download); the body when the store answered with success, else why
    /// not.
    ///
    /// # Errors
    /// A description of the refusal (for example no such object).
    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String>;
}

/// Real HTTP with reqwest: sends exactly the request's method, URL and headers. The one
/// exception is `content-length`, which an HTTP client cannot choose: it is always the body's
/// own length (sent even when 0), as for any device, so a body of another length than the
/// signed one arrives with another `content-length` than was signed.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport whose requests give up after `timeout`.
    ///
    /// # Panics
    /// When the HTTP client cannot be built: the test environment is broken.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        match reqwest::Client::builder().timeout(timeout).build() {
            Ok(client) => Self { client },
            Err(error) => panic!("cannot build the contract's HTTP client: {}", error_chain(&error)),
        }
    }

    async fn send(&self, request: &PresignedRequest, body: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            if !name.eq_ignore_ascii_case("content-length") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        if let Some(body) = body {
            // Said even for an empty body, which HTTP clients otherwise leave out.
            builder = builder
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.to_vec());
        }
        let response = builder
            .send()
            .await
            .map_err(|error| format!("not sent: {}", error_chain(&error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("{status}, body not read: {}", error_chain(&error)))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            Err(format!("{status}: {text}"))
        }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String> {
        self.send(request, Some(body)).await.map(drop)
    }

    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        self.send(request, None).await
    }
}

/// Hands requests to a [`FakeObjectStore`], which checks them as a real store does (see
/// [`FakeObjectStore::receive_put`], and [`FakeObjectStore::receive_part`] for URLs with an
/// `uploadId`).
#[derive(Debug, Clone, Copy)]
pub struct FakeTransport<'a>(pub &'a FakeObjectStore);

#[async_trait]
impl Transport for FakeTransport<'_> {
    async fn put(&self, request: &PresignedRequest, body: &[u8]) -> Result<(), String> {
        let sent = if request.url.contains("uploadId=") {
            self.0.receive_part(request, body)
        } else {
            self.0.receive_put(request, body)
        };
        sent.map_err(|refusal| refusal.to_string())
    }

    async fn get(&self, request: &PresignedRequest) -> Result<Vec<u8>, String> {
        self.0.serve_get(request).map_err(|refusal| refusal.to_string())
    }
}
