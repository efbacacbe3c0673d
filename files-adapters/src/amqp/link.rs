//! The broker connection both halves share: [`AmqpConfig`], the errors, bounded steps.

use std::fmt;
use std::time::Duration;

use files_core::PortError;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret as _, SecretString};

use crate::redact::redact_url;

/// The `app_id` of every message the publisher sends.
pub const APP_ID: &str = "files-service";

/// How the adapters reach RabbitMQ.
#[derive(Clone)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost` (`%2f` for the `/` vhost), or `amqps://`. Holds
    /// a password: a secret, never logged ([`fmt::Debug`] hides it).
    pub url: SecretString,
    /// The durable topic exchange events are published to.
    pub exchange: String,
    /// Bound on each publish (connecting included) and on each connection attempt.
    pub timeout: Duration,
    /// Publish with the `mandatory` flag, so an event that no queue is bound for comes back and
    /// the publish fails. Off by default: an event no one subscribed to is not an error in
    /// publish/subscribe (and the outbox would retry it forever); a broker-side alternate
    /// exchange is the way to keep unroutable events.
    pub mandatory: bool,
}

impl AmqpConfig {
    /// The default exchange.
    pub const DEFAULT_EXCHANGE: &str = "files.events";
    /// The default bound on each call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults for a broker at `url`.
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            exchange: Self::DEFAULT_EXCHANGE.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            mandatory: false,
        }
    }

    /// Checks that the URL is an AMQP URL, without connecting: for start-up, so a wrong value
    /// stops the service instead of failing every publish.
    ///
    /// # Errors
    /// [`InvalidAmqpUrl`] when the URL does not parse as `amqp://` or `amqps://`.
    pub fn validate(&self) -> Result<(), InvalidAmqpUrl> {
        self.uri().map(drop)
    }

    /// The URL with its password replaced by `***`, for logs.
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }

    fn uri(&self) -> Result<AMQPUri, InvalidAmqpUrl> {
        // The parser's message may quote the URL, password included: it is not kept.
        self.url.expose_secret().parse().map_err(|_| InvalidAmqpUrl)
    }
}

impl Default for AmqpConfig {
    /// The defaults for a RabbitMQ on this machine (`amqp://127.0.0.1:5672/%2f`, as guest).
    fn default() -> Self {
        Self::new("amqp://127.0.0.1:5672/%2f")
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("timeout", &self.timeout)
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

/// The URL is not an AMQP URL. Does not quote it: it may hold a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an amqp:// or amqps:// URL")]
pub struct InvalidAmqpUrl;

/// Why talking to the broker failed. Never carries the URL.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    #[error(transparent)]
    Url(#[from] InvalidAmqpUrl),
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ cancelled the consumer")]
    Cancelled,
    #[error("RabbitMQ did not take the event: {0}")]
    Refused(String),
}

impl From<LinkError> for PortError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Url(_) | LinkError::Refused(_) => Self::failed(error),
            LinkError::Timeout(_) | LinkError::Amqp(_) | LinkError::Cancelled => Self::unavailable(error),
        }
    }
}

/// `future`, or [`LinkError::Timeout`] after `limit`.
pub(super) async fn bounded<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or(Err(LinkError::Timeout(limit)))
}

/// `future`, or [`LinkError::Timeout`] (of `limit`, the bound the deadline was set by) at
/// `deadline`: for several steps under one bound.
pub(super) async fn bounded_until<T>(
    deadline: tokio::time::Instant,
    limit: Duration,
    future: impl Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout_at(deadline, future)
        .await
        .unwrap_or(Err(LinkError::Timeout(limit)))
}

/// A new connection, named after its `role` in the broker's management UI.
pub(super) async fn connect(config: &AmqpConfig, role: &str) -> Result<Connection, LinkError> {
    let uri = config.uri()?;
    let properties = ConnectionProperties::default().with_connection_name(format!("{APP_ID} {role}").into());
    Ok(Connection::connect_uri(uri, properties).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = AmqpConfig::new("amqp://files:s3cret@rabbit:5672/%2f");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("amqp://files:***@rabbit:5672/%2f"), "{shown}");
        assert_eq!(redact_url("not a url"), "***");
        assert_eq!(redact_url("amqp://rabbit"), "amqp://rabbit");
    }

    #[test]
    fn validate_refuses_what_is_not_an_amqp_url() {
        assert_eq!(
            AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f").validate(),
            Ok(())
        );
        assert_eq!(AmqpConfig::new("http://example.com").validate(), Err(InvalidAmqpUrl));
        assert_eq!(AmqpConfig::new("nonsense").validate(), Err(InvalidAmqpUrl));
        assert_eq!(AmqpConfig::default().exchange, "files.events");
        assert_eq!(AmqpConfig::default().timeout, Duration::from_secs(5));
    }
}
