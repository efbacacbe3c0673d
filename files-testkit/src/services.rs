//! Finding the machine's real services for integration tests.
//!
//! Addresses come from variables with this machine's defaults. When a service cannot be
//! reached, a test either skips, saying so loudly on stderr and recording the skip for the
//! runner to count (`FILES_TEST_SKIPS_FILE`), or — with `CI=true` — fails: in CI a missing
//! service is a failure, not a skip.

use std::time::Duration;

/// `FILES_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`: a database
/// the tests may create other databases from.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("FILES_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `FILES_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
#[must_use]
pub fn redis_url() -> String {
    std::env::var("FILES_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Whether a missing service fails the test (`CI=true`) instead of skipping it.
#[must_use]
pub fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `FILES_TEST_SKIPS_FILE`: the file every skip is appended to, one line each, so the runner
/// (`scripts/test`) can name and count them at the end of the run. nextest hides the output
/// of passing tests, so the notice on stderr alone would go unseen.
pub const SKIPS_FILE_VAR: &str = "FILES_TEST_SKIPS_FILE";

/// Called when `service` is not there: panics under CI, else prints a loud skip notice and
/// records the skip in [`SKIPS_FILE_VAR`]'s file when it is set.
/// Returns `None` so callers can `let Some(x) = ... else { return };`.
///
/// # Panics
/// Under `CI=true`, always.
pub fn unavailable<T>(test: &str, service: &str, why: &dyn std::fmt::Display) -> Option<T> {
    let test = test_name(test);
    assert!(
        !services_required(),
        "{test}: {service} is required under CI=true but unavailable: {why}"
    );
    eprintln!("\n*** SKIPPED {test}: {service} unavailable ({why}); set CI=true to make this a failure ***\n");
    record_skip(&format!("{test}: {service} unavailable ({why})"));
    None
}

/// The running test's full name when the harness names its thread after it (libtest does,
/// under nextest too), prefixed with nextest's binary id; else `fallback`.
fn test_name(fallback: &str) -> String {
    let thread = std::thread::current();
    let name = thread.name().filter(|name| *name != "main").unwrap_or(fallback);
    match std::env::var("NEXTEST_BINARY_ID") {
        Ok(binary) if !binary.is_empty() => format!("{binary} {name}"),
        _ => name.to_owned(),
    }
}

/// Appends one line to the skips file. A failure to record is printed, and fails the test: a
/// skip the runner cannot count is a silent skip again.
fn record_skip(line: &str) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os(SKIPS_FILE_VAR).filter(|path| !path.is_empty()) else {
        return;
    };
    let line = format!("{}\n", line.replace('\n', " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        panic!("could not record the skip in {}: {error}", path.display());
    }
}

/// A local port where connections are refused, for as long as this lives: a socket bound to it
/// that does not listen. Unlike a port bound and freed, nothing else can take it meanwhile.
#[derive(Debug)]
pub struct ClosedPort {
    socket: tokio::net::TcpSocket,
    port: u16,
}

impl ClosedPort {
    /// Binds `127.0.0.1:0` without listening.
    ///
    /// # Errors
    /// When no socket can be made or bound.
    pub fn bind() -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((std::net::Ipv4Addr::LOCALHOST, 0).into())?;
        let port = socket.local_addr()?.port();
        Ok(Self { socket, port })
    }

    /// The port.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    ///
    /// # Errors
    /// When the socket's address cannot be read.
    pub fn addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }
}

/// Whether something accepts TCP connections at `host:port` within a short time.
pub async fn reachable(address: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

/// The test S3 store that `scripts/test` starts (garage): `FILES_TEST_S3_ENDPOINT`,
/// `FILES_TEST_S3_REGION`, `FILES_TEST_S3_BUCKET`, `FILES_TEST_S3_ACCESS_KEY`,
/// `FILES_TEST_S3_SECRET_KEY`.
#[derive(Debug, Clone)]
pub struct TestS3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The region it checks signatures for.
    pub region: String,
    /// The bucket that exists.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl TestS3 {
    /// The store from the environment, or `None` (via [`unavailable`]) when it is not set or
    /// not reachable.
    pub async fn from_env(test: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("FILES_TEST_S3_ENDPOINT") else {
            return unavailable(
                test,
                "the test S3 store",
                &"FILES_TEST_S3_ENDPOINT is not set (run scripts/test)",
            );
        };
        let address = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        if !reachable(&address).await {
            return unavailable(test, "the test S3 store", &format!("nothing listens at {endpoint}"));
        }
        Some(Self {
            endpoint,
            region: var("FILES_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            bucket: var("FILES_TEST_S3_BUCKET").unwrap_or_else(|| "files-test".to_owned()),
            access_key: var("FILES_TEST_S3_ACCESS_KEY").unwrap_or_default(),
            secret_key: var("FILES_TEST_S3_SECRET_KEY").unwrap_or_default(),
        })
    }

    /// The `FILES_S3_*` variables that point the server at this store.
    #[must_use]
    pub fn server_vars(&self) -> Vec<(String, String)> {
        [
            ("FILES_S3_ENDPOINT", &self.endpoint),
            ("FILES_S3_REGION", &self.region),
            ("FILES_S3_BUCKET", &self.bucket),
            ("FILES_S3_ACCESS_KEY", &self.access_key),
            ("FILES_S3_SECRET_KEY", &self.secret_key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}
