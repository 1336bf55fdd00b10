//! Fresh, migrated stores for every backend under test.
//!
//! SQLite always: a file in a new temporary directory. PostgreSQL when
//! `YANZHEN_TEST_POSTGRES_URL` is set: a brand-new database `yz_<random hex>` created through
//! that URL, so tests running in parallel never see each other's rows and the schema comes
//! from the real migrations. The [`Guard`] drops that database (`WITH (FORCE)`, closing the
//! store's connections) when the test is done with it, pass or fail.

use std::sync::{Arc, Once};

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use yanzhen::store::{PgStore, SqliteStore, Store};

/// The environment variable naming an existing PostgreSQL database to create test databases
/// from (e.g. `postgres://postgres@127.0.0.1:5432/test`).
pub const POSTGRES_URL_VAR: &str = "YANZHEN_TEST_POSTGRES_URL";

/// Keeps a test store's backing storage alive; dropping it removes the storage.
#[derive(Debug)]
pub struct Guard {
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
    /// The database's URL, for writing rows behind the store's back ([`write_raw`]).
    url: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(db) = self.pg.take() {
            db.drop_now();
        }
    }
}

/// A throwaway PostgreSQL database.
#[derive(Debug)]
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Drop the database, best effort. Runs on its own thread and runtime because `Drop`
    /// cannot await and the test's runtime may be single-threaded or shutting down.
    fn drop_now(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin_url = self.admin_url;
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = worker.join();
    }
}

/// A fresh migrated store per backend: `("sqlite", store, guard)` and, when
/// `YANZHEN_TEST_POSTGRES_URL` is set, `("postgres", store, guard)`. Keep the guard alive as
/// long as the store is used.
pub async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Guard)> {
    let mut out = vec![sqlite().await];
    match postgres_url() {
        Some(url) => out.push(postgres(&url).await),
        None => {
            let why = format!("the PostgreSQL half of these tests: {POSTGRES_URL_VAR} not set");
            // Under CI=true every caller fails; elsewhere one note is enough.
            static SKIPPED: Once = Once::new();
            if super::ci() {
                super::skip_or_fail(&why);
            }
            SKIPPED.call_once(|| super::skip_or_fail(&why));
        }
    }
    out
}

/// `YANZHEN_TEST_POSTGRES_URL`, when set and not empty.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh migrated SQLite store on a file in a new temporary directory.
pub async fn sqlite() -> (&'static str, Arc<dyn Store>, Guard) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("yanzhen.db").display());
    let store = SqliteStore::open(&url).await.expect("open SQLite store");
    store.migrate().await.expect("migrate SQLite store");
    let guard = Guard {
        _dir: Some(dir),
        pg: None,
        url,
    };
    ("sqlite", Arc::new(store), guard)
}

/// A fresh, empty PostgreSQL database for processes under test (e.g. `yanzhen serve`):
/// its URL and the guard that drops it. None, with a note, when Postgres is not configured.
pub async fn postgres_database() -> Option<(String, Guard)> {
    let Some(admin_url) = postgres_url() else {
        super::skip_or_fail(&format!("PostgreSQL test: {POSTGRES_URL_VAR} not set"));
        return None;
    };
    Some(create_database(&admin_url).await)
}

/// Create `yz_<random hex>` through `admin_url`; the guard drops it (even if later setup fails).
async fn create_database(admin_url: &str) -> (String, Guard) {
    let name = format!("yz_{}", random_hex());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}={admin_url}: {e}"));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let _ = admin.close().await;
    let url = with_database(admin_url, &name);
    let guard = Guard {
        _dir: None,
        url: url.clone(),
        pg: Some(PgDatabase {
            admin_url: admin_url.to_string(),
            name,
        }),
    };
    (url, guard)
}

/// A fresh migrated PostgreSQL store on a new database created through `admin_url`.
pub async fn postgres(admin_url: &str) -> (&'static str, Arc<dyn Store>, Guard) {
    let (url, guard) = create_database(admin_url).await;
    let store = PgStore::open(&url).await.expect("open PostgreSQL store");
    store.migrate().await.expect("migrate PostgreSQL store");
    ("postgres", Arc::new(store), guard)
}

/// Set `column` of row `id` of `table` to `value` (an SQL literal) behind the store's back,
/// as a bug, a hand edit or a partial restore would: the column's CHECK constraint (on the
/// state columns) is not applied (SQLite: `ignore_check_constraints`; PostgreSQL: the
/// constraint is dropped in this throwaway database).
pub async fn write_raw(guard: &Guard, table: &str, column: &str, id: i64, value: &str) {
    let update = format!("UPDATE {table} SET {column} = {value} WHERE id = {id}");
    if guard.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&guard.url)
            .await
            .expect("connect to the SQLite file");
        for sql in ["PRAGMA ignore_check_constraints = ON".to_string(), update] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .expect("raw write");
        }
        let _ = c.close().await;
    } else {
        let mut c = PgConnection::connect(&guard.url)
            .await
            .expect("connect to the test database");
        let drop = format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_{column}_check");
        for sql in [drop, update] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .expect("raw write");
        }
        let _ = c.close().await;
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}

/// 64 random bits as hex, from std only (per-process random hasher keys, a counter, the time).
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    format!("{:016x}", h.finish())
}

/// Run statements on the test database behind the store's back (e.g. a trigger that makes
/// a write fail part way through, to show it is rolled back).
pub async fn execute_raw(guard: &Guard, statements: &[String]) {
    if guard.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&guard.url)
            .await
            .expect("connect to the SQLite file");
        for sql in statements {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .expect("raw statement");
        }
        let _ = c.close().await;
    } else {
        let mut c = PgConnection::connect(&guard.url)
            .await
            .expect("connect to the test database");
        for sql in statements {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .execute(&mut c)
                .await
                .expect("raw statement");
        }
        let _ = c.close().await;
    }
}

/// Whether a guard's database is SQLite (else PostgreSQL).
pub fn is_sqlite(guard: &Guard) -> bool {
    guard.url.starts_with("sqlite:")
}
