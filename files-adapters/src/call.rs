//! The one wrapper around every call an adapter makes to its dependency: bounded by a timeout
//! (a slow dependency is [`PortError::Unavailable`], never a hang) and, when metrics are given,
//! timed into [`Metrics::dependency_call`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use files_core::{Dependency, Metrics, PortError};

/// A call that did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("{} {operation} timed out after {timeout:?}", dependency.label())]
pub(crate) struct TimedOut {
    /// Which dependency.
    pub dependency: Dependency,
    /// Which call.
    pub operation: &'static str,
    /// The bound it passed.
    pub timeout: Duration,
}

/// How one adapter's calls are bounded and counted.
#[derive(Clone)]
pub(crate) struct Calls {
    dependency: Dependency,
    timeout: Duration,
    metrics: Option<Arc<dyn Metrics>>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("dependency", &self.dependency)
            .field("timeout", &self.timeout)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Calls {
    /// Calls to `dependency`, each bounded by `timeout`, not counted.
    pub(crate) const fn new(dependency: Dependency, timeout: Duration) -> Self {
        Self {
            dependency,
            timeout,
            metrics: None,
        }
    }

    /// Counts every call (operation, outcome, latency) in `metrics`.
    #[cfg(any(feature = "postgres", feature = "s3"))]
    pub(crate) fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The bound on each call.
    #[cfg(feature = "redis")]
    pub(crate) const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one call under the timeout and counts it.
    pub(crate) async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call).await.unwrap_or_else(|_| {
            Err(PortError::unavailable(TimedOut {
                dependency: self.dependency,
                operation,
                timeout: self.timeout,
            }))
        });
        if let Some(metrics) = &self.metrics {
            metrics.dependency_call(self.dependency, operation, result.is_ok(), started.elapsed());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(Dependency, &'static str, bool)>>);

    impl Metrics for Seen {
        fn dependency_call(&self, dependency: Dependency, operation: &'static str, ok: bool, _: Duration) {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((dependency, operation, ok));
        }
    }

    #[tokio::test]
    async fn a_slow_call_is_unavailable_and_every_call_is_counted() {
        let seen = Arc::new(Seen::default());
        let calls = Calls::new(Dependency::Database, Duration::from_millis(20)).with_metrics(seen.clone());
        let fast = calls.run("get", async { Ok::<_, PortError>(1) }).await;
        assert!(matches!(fast, Ok(1)));
        let slow = calls
            .run("list", async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, PortError>(2)
            })
            .await;
        match slow {
            Err(PortError::Unavailable(cause)) => assert!(cause.to_string().contains("database list timed out")),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let failed = calls
            .run("insert", async { Err::<(), _>(PortError::failed("refused")) })
            .await;
        assert!(matches!(failed, Err(PortError::Failed(_))));
        let seen = seen.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        assert_eq!(
            seen,
            [
                (Dependency::Database, "get", true),
                (Dependency::Database, "list", false),
                (Dependency::Database, "insert", false)
            ]
        );
    }
}
