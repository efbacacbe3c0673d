//! A PostgreSQL database of its own for each test, dropped when the test ends.
//!
//! ```no_run
//! # async fn example() {
//! use files_testkit::postgres::TestDatabase;
//! let Some(db) = TestDatabase::create("my_test").await else { return }; // skipped: no PostgreSQL
//! let store = db.store().await; // migrated
//! # drop(store);
//! # }
//! ```

use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use files_adapters::postgres::{PostgresConfig, PostgresStore};
use uuid::Uuid;

use crate::services;

/// How long the helpers wait for the admin connection.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh, empty database on the machine's PostgreSQL (found with
/// [`services::postgres_admin_url`]), dropped (`WITH (FORCE)`) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a database named `files_t_<uuid>`; `None` when PostgreSQL cannot be reached
    /// or refuses (a loud skip, or a failure under `CI=true`: see [`services::unavailable`]).
    ///
    /// # Panics
    /// Under `CI=true` when PostgreSQL is not there; when `FILES_TEST_DATABASE_URL` is not a
    /// URL.
    pub async fn create(test_name: &str) -> Option<Self> {
        let admin_url = services::postgres_admin_url();
        let name = format!("files_t_{}", Uuid::new_v4().simple());
        let url = database_url(&admin_url, &name);
        let created = async {
            let mut admin = connect(&admin_url).await?;
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| format!("CREATE DATABASE failed: {e}"))
        };
        match created.await {
            Ok(()) => Some(Self { name, url, admin_url }),
            Err(error) => services::unavailable(test_name, "PostgreSQL", &error),
        }
    }

    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store's configuration for this database: the default timeouts and a small pool.
    #[must_use]
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            pool_size: 10,
            ..PostgresConfig::new(self.url.as_str())
        }
    }

    /// A store on this database, with the migrations applied.
    ///
    /// # Panics
    /// When the store cannot be built or the migrations fail.
    pub async fn store(&self) -> PostgresStore {
        let store = PostgresStore::new(self.config()).unwrap_or_else(|e| panic!("PostgresStore::new: {e}"));
        if let Err(error) = store.migrate().await {
            panic!("migrating {}: {}", self.name, files_core::ports::error_chain(&error));
        }
        store
    }

    /// A connection of its own to this database, for a test to look at or change it behind
    /// the store's back.
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn connect(&self) -> AsyncPgConnection {
        connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    /// Runs SQL (any number of statements, no results) on this database.
    ///
    /// # Panics
    /// When it fails.
    pub async fn execute(&self, sql: &str) {
        if let Err(error) = self.connect().await.batch_execute(sql).await {
            panic!("{sql}: {error}");
        }
    }

    /// The number of rows `SELECT count(*) FROM {rows}` counts, `rows` being a table and any
    /// condition (`"outbox WHERE sent_at IS NOT NULL"`): for a test to look at what the
    /// service's ports do not show.
    ///
    /// # Panics
    /// When the query fails.
    pub async fn count(&self, rows: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let sql = format!("SELECT count(*) AS n FROM {rows}");
        match diesel_async::RunQueryDsl::get_result::<Count>(diesel::sql_query(&sql), &mut self.connect().await).await {
            Ok(count) => count.n,
            Err(error) => panic!("{sql}: {error}"),
        }
    }

    /// Ends every session connected to this database, as a restart of the server would: the
    /// clients see their connections closed.
    ///
    /// # Panics
    /// When the admin connection fails.
    pub async fn terminate_connections(&self) {
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        );
        let result = match connect(&self.admin_url).await {
            Ok(mut admin) => admin.batch_execute(&sql).await.map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            panic!("terminating the sessions of {}: {error}", self.name);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: do it on a thread of its own with a
        // runtime of its own, and wait for it.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = connect(&admin_url).await?;
                admin.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the dropping thread panicked",
                self.name
            ),
        }
    }
}

async fn connect(url: &str) -> Result<AsyncPgConnection, String> {
    match tokio::time::timeout(ADMIN_TIMEOUT, AsyncPgConnection::establish(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no connection within {ADMIN_TIMEOUT:?}")),
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = reqwest::Url::parse(admin_url)
        .unwrap_or_else(|e| panic!("FILES_TEST_DATABASE_URL is not a postgres:// URL ({e}): {admin_url}"));
    url.set_path(&format!("/{name}"));
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_everything_but_the_database() {
        assert_eq!(
            database_url(
                "postgres://postgres:pw@127.0.0.1:5432/test?sslmode=disable",
                "files_t_1"
            ),
            "postgres://postgres:pw@127.0.0.1:5432/files_t_1?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://postgres@localhost", "files_t_2"),
            "postgres://postgres@localhost/files_t_2"
        );
    }
}
