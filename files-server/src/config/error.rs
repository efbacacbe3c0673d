//! The error of a configuration that cannot be used.

/// A variable that is missing or holds a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable, e.g. `FILES_LISTEN`.
    pub variable: &'static str,
    /// What is wrong with it (never its value when it is a secret).
    pub problem: String,
}
