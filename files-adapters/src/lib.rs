//! Adapters of the Files service ports, one module per technology, each behind a cargo feature.

#[cfg(feature = "memory")]
pub mod memory;

pub mod log_notifier;

#[cfg(feature = "rate")]
pub mod rate;

#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "amqp",
    feature = "jwks",
    feature = "s3"
))]
mod redact;

#[cfg(any(feature = "postgres", feature = "redis", feature = "s3"))]
mod call;

#[cfg(feature = "jwks")]
pub mod jwks;

#[cfg(feature = "prometheus")]
pub mod prometheus;

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "s3")]
mod s3_xml;

#[cfg(feature = "embedded-s3")]
pub mod embedded_s3;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "amqp")]
pub mod amqp;
