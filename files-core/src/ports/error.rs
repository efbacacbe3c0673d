//! How a port fails: the error every port returns, and its cause as logs show it.

/// The cause of a port failure, kept for logs (never shown to callers).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and its sources, `: `-separated, for logs.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failure of a dependency behind a port.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The dependency cannot be reached or did not answer in time; retrying later may work.
    #[error("unavailable")]
    Unavailable(#[source] BoxError),
    /// The dependency answered with something unexpected.
    #[error("failed")]
    Failed(#[source] BoxError),
}

impl PortError {
    /// Wraps a cause as [`PortError::Unavailable`].
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// Wraps a cause as [`PortError::Failed`].
    pub fn failed(cause: impl Into<BoxError>) -> Self {
        Self::Failed(cause.into())
    }
}
