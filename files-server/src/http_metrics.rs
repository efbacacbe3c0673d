//! What the HTTP layer needs of a metrics backend: count each request and render every series
//! for `GET /metrics`. Start-up registers the backend as app data (`web::Data<dyn HttpMetrics>`),
//! so the request middleware and the route read it without naming the adapter.

use std::time::Duration;

use files_adapters::prometheus::Prometheus;

/// A metrics backend as the HTTP layer sees it.
pub trait HttpMetrics: Send + Sync {
    /// Counts one request: `route` is the pattern of the resource that served it (a bounded
    /// set), `status` its status code.
    fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration);

    /// Every series, in the Prometheus text format.
    ///
    /// # Errors
    /// When the series cannot be encoded.
    fn render(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>>;
}

impl HttpMetrics for Prometheus {
    fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        Self::observe_http(self, route, method, status, elapsed);
    }

    fn render(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self::render(self)?)
    }
}
