//! Starting the server in this test binary: on port 0, with a chosen set of adapters.

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use files_server::{Application, Overrides, Settings};
use tokio::task::JoinHandle;

/// A server running in this process for one test; stopped when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The API's port.
    pub port: u16,
    /// The port of `/metrics` when `FILES_METRICS_LISTEN` gives it its own.
    pub metrics_port: Option<u16>,
    handle: ServerHandle,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dev_dir: tempfile::TempDir,
}

/// What to start.
#[derive(Debug, Default)]
pub struct AppOptions {
    /// `FILES_*` variables on top of the test defaults (port 0 for the API and the embedded store,
    /// a fresh `FILES_DEV_DIR`).
    pub vars: Vec<(String, String)>,
    /// Adapters in place of the configured ones.
    pub overrides: Overrides,
}

impl AppOptions {
    /// Adds a variable.
    #[must_use]
    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.push((name.to_owned(), value.into()));
        self
    }
}

/// Starts the server with `options`: by default the embedded store and in-memory metadata.
///
/// # Errors
/// When the configuration is refused or the server cannot start.
pub async fn spawn_app(options: AppOptions) -> anyhow::Result<TestApp> {
    files_testkit::init_logging();
    let dev_dir = tempfile::tempdir().context("dev dir")?;
    let mut vars = vec![
        ("FILES_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("FILES_EMBEDDED_S3_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("FILES_DEV_DIR".to_owned(), dev_dir.path().display().to_string()),
    ];
    vars.extend(options.vars);
    let settings = Settings::from_vars(vars)?;
    let app = Application::build(settings, options.overrides).await?;
    let port = app.port();
    let metrics_port = app.metrics_port();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    Ok(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        handle,
        task: Some(task),
        _dev_dir: dev_dir,
    })
}

impl TestApp {
    /// The URL of an API path.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let handle = self.handle.clone();
            // Stop without waiting, so that a test's end frees its ports at once.
            drop(tokio::spawn(async move { handle.stop(false).await }));
            task.abort();
        }
    }
}
