//! SQLite backend of the [`Store`](super::Store): what differs from PostgreSQL (the SQL and
//! the transaction logic are shared, see [`super::shared`]):
//!
//! - how a write transaction starts: `BEGIN IMMEDIATE`, so a transaction never has to
//!   upgrade a read lock (which SQLite refuses at once, ignoring `busy_timeout`);
//! - row locks: none (the immediate transaction already holds the single write lock);
//!   index hints for the outbox claim;
//! - how the pool is opened, the single-daemon lock, and the migrations directory.
//!
//! Only one daemon may use a SQLite file: [`SqliteStore::open`] takes an exclusive OS lock on
//! `<file>.lock` next to the file's canonical path (symlinks resolved, so a second name for
//! the same file is refused too) and keeps it for the life of the store
//! ([`SqliteStore::open_shared`], for short-lived commands, does not).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::shared::Backend;
use super::sql::{self, Dialect};
use super::{NewNotification, Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections in the pool for a file database (WAL readers run in parallel; writers queue on
/// `BEGIN IMMEDIATE` with the busy timeout).
const FILE_POOL_SIZE: u32 = 4;

/// How long a writer waits for the write lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Exclusive lock on `<file>.lock`, released when the store is dropped (None in memory and
    /// for [`open_shared`](Self::open_shared)).
    _lock: Option<File>,
}

impl SqliteStore {
    /// Open `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`.
    ///
    /// A file is created (with its parent directories) if missing, opened in WAL mode with
    /// `synchronous = NORMAL`, a 5 s busy timeout and foreign keys on, and locked: a second
    /// open of the same file, from this process or another, fails with
    /// [`StoreError::Locked`]. An in-memory database lives in one connection that the pool
    /// never closes. Does not migrate; call [`Store::migrate`](super::Store::migrate).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, true).await
    }

    /// Like [`open`](Self::open) but without the single-daemon lock, for a short-lived command
    /// next to a running daemon (SQLite itself serialises the writers).
    pub async fn open_shared(url: &str) -> Result<Self> {
        Self::open_with(url, false).await
    }

    async fn open_with(url: &str, exclusive: bool) -> Result<Self> {
        let bad_url = || StoreError::BadUrl(url.to_string());
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(bad_url)?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = database == ":memory:" || params.split('&').any(|p| p == "mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| bad_url())?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        if in_memory {
            let pool = SqlitePoolOptions::new()
                .min_connections(1)
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?;
            return Ok(Self { pool, _lock: None });
        }

        let path = options.get_filename().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(bad_url());
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let lock = if exclusive {
            Some(lock_file(&canonical_file(&path)?)?)
        } else {
            None
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            // A COMMIT that fails with SQLITE_FULL (disk full) is rolled back by SQLite
            // itself, but sqlx still counts the transaction as open, so every later
            // `BEGIN IMMEDIATE` on that connection fails ("attempted to call begin_with at
            // non-zero transaction depth") even after space is freed. An idle connection is
            // never really in a transaction: close such a one instead of handing it out.
            .before_acquire(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, _lock: lock })
    }
}

/// The database file's one true path, so that the lock is keyed on the file and not on
/// the name it was reached by (a symlink, `./`, `..`, a relative path). The file is
/// created first (SQLite takes an empty file as an empty database): only an existing file
/// can be resolved.
fn canonical_file(db: &std::path::Path) -> Result<PathBuf> {
    let io = |source| StoreError::Io {
        path: db.display().to_string(),
        source,
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(db)
        .map_err(io)?;
    std::fs::canonicalize(db).map_err(io)
}

/// Take the exclusive lock on `<db>.lock`, or fail with [`StoreError::Locked`].
fn lock_file(db: &std::path::Path) -> Result<File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let io = |source| StoreError::Io {
        path: lock_path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: db.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

impl Backend for SqliteStore {
    type Db = Sqlite;
    const NAME: &'static str = "sqlite";
    // One writer at a time (`BEGIN IMMEDIATE`): a second loop would only queue on the lock.
    const FIRING_LOOPS: usize = 1;

    fn dialect() -> &'static Dialect {
        // No row locks: `BEGIN IMMEDIATE` already holds the database's single write lock,
        // which also serialises outbox claims.
        const SQL: Dialect = sql::dialect! {
            row_lock: "",
            claim_lock: "",
            outbox_lock: "SELECT 1",
            // Without these its planner walks `outbox_state_due`, held rows and all.
            held_index: " INDEXED BY outbox_held_due",
            free_index: " INDEXED BY outbox_free_due",
        };
        &SQL
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn run_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// A write transaction holding SQLite's write lock from the first statement, so it
    /// never has to upgrade a read lock (which SQLite refuses at once, ignoring
    /// `busy_timeout`).
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Outbox rows in multi-row statements; a key already used is skipped.
    async fn insert_notifications(
        c: &mut sqlx::SqliteConnection,
        notifications: &[&NewNotification],
    ) -> Result<()> {
        for chunk in notifications.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(sql::OUTBOX_INSERT_HEAD);
            q.push_values(chunk, |mut b, n| {
                b.push_bind(&n.key)
                    .push_bind(n.round_id)
                    .push_bind(n.task_id)
                    .push_bind(n.kind.as_str())
                    .push_bind(n.channel.as_str())
                    .push_bind(&n.address)
                    .push_bind(&n.recipient_json)
                    .push_bind(&n.subject)
                    .push_bind(&n.body)
                    .push_bind(n.not_before)
                    .push_bind(n.created_at)
                    .push_bind(&n.html)
                    .push_bind(&n.item_json);
            });
            q.push(" ON CONFLICT (key) DO NOTHING");
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    }

    /// Nothing to do: SQLite plans the claim as an ordered index range without statistics.
    async fn after_timers_added(&self, _added: u64) -> Result<()> {
        Ok(())
    }
}
