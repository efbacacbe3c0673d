//! Why a key source could not be set up.

use std::path::PathBuf;

use super::config::SignatureLibrary;

/// A key source could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// A key file could not be read.
    #[error("cannot read key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The document is not a JWKS (nor a single JWK).
    #[error("{origin} is not a JWKS: {reason}")]
    InvalidJwks {
        /// Where the document came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is neither JSON nor a supported PEM public key.
    #[error("{origin} is not a JWKS nor a PEM public key of type RSA, EC P-256 or Ed25519")]
    InvalidPem {
        /// Where the key came from.
        origin: String,
    },
    /// The source holds no key that can be used.
    #[error("{origin} holds no usable signing key (RSA, EC P-256 or Ed25519 with use \"sig\")")]
    NoUsableKey {
        /// Where the keys came from.
        origin: String,
    },
    /// The JWKS URL cannot be parsed, or its scheme is not http(s).
    #[error("invalid JWKS URL {url:?}: {reason}")]
    Url {
        /// The URL as given, its user info, query and fragment hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The JWKS URL is plain `http://` and [`RemoteJwks::allow_http`](crate::jwks::RemoteJwks::allow_http) is not set.
    #[error(
        "refusing the JWKS URL {url:?}: over plain http:// anyone on the path could replace the keys; \
         use https://, or allow http explicitly"
    )]
    PlainHttp {
        /// The URL, its user info, query and fragment hidden.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the JWKS HTTP client")]
    Client(#[source] reqwest::Error),
    /// The URL source was created outside a tokio runtime.
    #[error("the JWKS refresher needs a tokio runtime")]
    NoRuntime,
    /// The configuration names a signature library this build does not have.
    #[error("this build has no {0} (build files-adapters with its `jsonwebtoken` feature)")]
    LibraryNotBuilt(SignatureLibrary),
}
