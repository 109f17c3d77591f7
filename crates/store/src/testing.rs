//! Fresh, empty databases for tests: a SQLite file in a temporary folder by default,
//! or a new database on the PostgreSQL server named by `LIANYI_TEST_PG_URL`
//! (an admin URL such as `postgres://postgres@127.0.0.1:55432/postgres`).
//! `scripts/test` runs every suite once per backend.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::AssertSqlSafe;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[allow(clippy::disallowed_methods)] // a unique test database name, not a time
fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("lianyi_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Which backend the current test run targets.
pub fn backend_under_test() -> &'static str {
    if std::env::var("LIANYI_TEST_PG_URL").is_ok_and(|v| !v.is_empty()) { "postgres" } else { "sqlite" }
}

/// A database URL for a new empty database, and the folder to keep alive (SQLite).
/// Panics when the configured PostgreSQL server cannot be reached: a test run that
/// asked for PostgreSQL must not quietly fall back to SQLite.
#[allow(clippy::expect_used, clippy::panic)]
pub async fn fresh_database() -> (String, TestDir) {
    match std::env::var("LIANYI_TEST_PG_URL") {
        Ok(admin) if !admin.is_empty() => {
            install_default_drivers();
            let name = unique_name();
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("LIANYI_TEST_PG_URL is set but PostgreSQL is unreachable: {e}"));
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("create test database");
            pool.close().await;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), TestDir(None))
        }
        _ => {
            let dir = std::env::temp_dir().join(unique_name());
            std::fs::create_dir_all(&dir).expect("create temp dir");
            (format!("sqlite://{}", dir.join("lianyi.db").display()), TestDir(Some(dir)))
        }
    }
}

/// A test's scratch folder (its SQLite database's; none on PostgreSQL), removed when
/// dropped so test runs do not fill the disk. Reads as `Option<PathBuf>`.
#[derive(Debug)]
pub struct TestDir(Option<std::path::PathBuf>);

impl std::ops::Deref for TestDir {
    type Target = Option<std::path::PathBuf>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs raw SQL (`;`-separated statements) against a database, behind the store's
/// back: tests use it to tamper with data the way an attacker with file access would.
#[allow(clippy::expect_used)]
pub async fn raw_execute(url: &str, sql: &str) {
    install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await.expect("connect");
    for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(AssertSqlSafe(stmt.to_string())).execute(&pool).await.expect("raw statement");
    }
    pool.close().await;
}
