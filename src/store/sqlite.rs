//! SQLite backend of the [`Store`](super::Store), and the half that both backends share.
//!
//! Both backends run the same SQL (`$1` placeholders work on both) and the same transaction
//! logic: [`store_impl!`] generates the `Store` impl once per pool type. The dialect
//! differences are passed to it or live next to each store:
//!
//! - how a write transaction starts (`begin_write`): `BEGIN IMMEDIATE` here, so a transaction
//!   never has to upgrade a read lock (which SQLite refuses at once, ignoring `busy_timeout`);
//! - row locks: none here (the immediate transaction already holds the single write lock),
//!   `FOR UPDATE` / `FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! - how the pool is opened, and the migrations directory.
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

use super::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections in the pool for a file database (WAL readers run in parallel; writers queue on
/// `BEGIN IMMEDIATE` with the busy timeout).
const FILE_POOL_SIZE: u32 = 4;

/// Rows per multi-row INSERT (12 parameters a task row: well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters per statement).
pub(crate) const INSERT_CHUNK: usize = 1000;

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

    /// Start a write transaction holding SQLite's write lock from the first statement.
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
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

/// Rows, SQL and helpers shared by both backends.
pub(crate) mod shared {
    use crate::store::{
        AuditEntry, AuditRow, HistoryRow, OutboxRow, RoundRow, TaskRow, TimerRow, TokenRow,
        VersionRow,
    };

    /// Column lists, as literals so that `concat!` can build `&'static str` statements.
    macro_rules! cols {
        (version) => {
            "id, workflow_id, version, hash, source, created_at"
        };
        (round) => {
            "id, tag, workflow_id, version_id, start_date, params_json, units_json, status, \
             created_at, kickoff_key"
        };
        (task) => {
            "id, round_id, key, task, stage, title, assignee_kind, assignee_id, \
             assignee_name, due_at, state, completed_at, updated_at, provisional"
        };
        (timer) => {
            "id, key, round_id, task_id, kind, due_at, payload_json, state, attempts, \
             lease_owner, lease_until, fired_at"
        };
        (outbox) => {
            "id, key, round_id, task_id, kind, channel, address, recipient_json, subject, \
             body, state, attempts, not_before, created_at, sent_at, last_error, html, \
             item_json, message_id, next_attempt_at"
        };
        (history) => {
            "at, from_state, to_state, actor, note"
        };
        (audit) => {
            "id, at, actor, action, subject, detail_json"
        };
    }
    pub(crate) use cols;

    /// Pending reminders and escalations not yet attempted: they wait for their digest.
    /// Spelled exactly as in the partial index `outbox_held_due` (SQLite uses a partial
    /// index only when the query repeats its terms).
    macro_rules! outbox_held {
        () => {
            "kind IN ('reminder', 'due_today', 'overdue', 'escalation') AND message_id IS NULL"
        };
    }
    /// Every other pending row (partial index `outbox_free_due`).
    macro_rules! outbox_free {
        () => {
            "(kind NOT IN ('reminder', 'due_today', 'overdue', 'escalation') \
             OR message_id IS NOT NULL)"
        };
    }

    pub(crate) use {outbox_free, outbox_held};

    /// The columns of an outbox row that decide which message it belongs to.
    #[derive(sqlx::FromRow, Debug)]
    pub(crate) struct SeedDb {
        pub(crate) id: i64,
        pub(crate) kind: String,
        pub(crate) channel: String,
        pub(crate) address: String,
        pub(crate) not_before: i64,
        pub(crate) message_id: Option<String>,
    }

    /// A `FromRow` twin of a public row type, with the conversion.
    macro_rules! db_row {
        ($db:ident => $row:ident { $($field:ident: $ty:ty),* $(,)? }) => {
            #[derive(sqlx::FromRow)]
            pub(crate) struct $db {
                $(pub(crate) $field: $ty),*
            }

            impl From<$db> for $row {
                fn from(r: $db) -> Self {
                    Self { $($field: r.$field),* }
                }
            }
        };
    }

    db_row!(VersionDb => VersionRow {
        id: i64, workflow_id: String, version: i64, hash: String, source: String,
        created_at: i64,
    });
    db_row!(RoundDb => RoundRow {
        id: i64, tag: String, workflow_id: String, version_id: i64, start_date: String,
        params_json: String, units_json: Option<String>, status: String, created_at: i64,
        kickoff_key: Option<String>,
    });
    db_row!(TaskDb => TaskRow {
        id: i64, round_id: i64, key: String, task: String, stage: String, title: String,
        assignee_kind: String, assignee_id: String, assignee_name: String,
        due_at: Option<i64>, state: String, completed_at: Option<i64>, updated_at: i64,
        provisional: bool,
    });
    db_row!(TimerDb => TimerRow {
        id: i64, key: String, round_id: Option<i64>, task_id: Option<i64>, kind: String,
        due_at: i64, payload_json: String, state: String, attempts: i64,
        lease_owner: Option<String>, lease_until: Option<i64>, fired_at: Option<i64>,
    });
    db_row!(OutboxDb => OutboxRow {
        id: i64, key: String, round_id: Option<i64>, task_id: Option<i64>, kind: String,
        channel: String, address: String, recipient_json: String, subject: String,
        body: String, state: String, attempts: i64, not_before: i64, created_at: i64,
        sent_at: Option<i64>, last_error: Option<String>, html: String, item_json: String,
        message_id: Option<String>, next_attempt_at: Option<i64>,
    });
    db_row!(TokenDb => TokenRow {
        name: String, hash: String, rights: String, created_at: i64, revoked_at: Option<i64>,
    });
    db_row!(HistoryDb => HistoryRow {
        at: i64, from_state: String, to_state: String, actor: String, note: Option<String>,
    });

    /// An audit row as stored.
    #[derive(sqlx::FromRow)]
    pub(crate) struct AuditDb {
        id: i64,
        at: i64,
        actor: String,
        action: String,
        subject: String,
        detail_json: String,
    }

    impl From<AuditDb> for AuditRow {
        fn from(r: AuditDb) -> Self {
            Self {
                id: r.id,
                entry: AuditEntry {
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    detail_json: r.detail_json,
                },
            }
        }
    }

    pub(crate) const SELECT_ONE: &str = "SELECT 1";
    pub(crate) const LATEST_MIGRATION: &str =
        "SELECT MAX(version) FROM _sqlx_migrations WHERE success";

    pub(crate) const VERSION_BY_HASH: &str = concat!(
        "SELECT ",
        cols!(version),
        " FROM workflow_versions WHERE workflow_id = $1 AND hash = $2"
    );
    /// Numbers the new version one above the highest; a concurrent insert of the same number
    /// or hash makes this insert nothing (the caller then reads or retries).
    pub(crate) const VERSION_INSERT: &str = concat!(
        "INSERT INTO workflow_versions (workflow_id, version, hash, source, created_at) \
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM workflow_versions \
         WHERE workflow_id = $1 ON CONFLICT DO NOTHING RETURNING ",
        cols!(version)
    );
    pub(crate) const VERSIONS_OF: &str = concat!(
        "SELECT ",
        cols!(version),
        " FROM workflow_versions WHERE workflow_id = $1 ORDER BY version"
    );
    pub(crate) const VERSION_BY_ID: &str = concat!(
        "SELECT ",
        cols!(version),
        " FROM workflow_versions WHERE id = $1"
    );

    pub(crate) const ROUND_INSERT: &str = "INSERT INTO rounds (tag, workflow_id, version_id, \
         start_date, params_json, units_json, status, created_at, kickoff_key) \
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8) \
         ON CONFLICT (kickoff_key) DO NOTHING RETURNING id";
    pub(crate) const ROUND_BY_ID: &str =
        concat!("SELECT ", cols!(round), " FROM rounds WHERE id = $1");
    pub(crate) const ROUNDS_ALL: &str =
        concat!("SELECT ", cols!(round), " FROM rounds ORDER BY id DESC");
    pub(crate) const ROUND_SET_STATUS: &str = "UPDATE rounds SET status = $2 WHERE id = $1";

    pub(crate) const TASK_INSERT: &str = "INSERT INTO tasks (round_id, key, task, stage, title, \
         assignee_kind, assignee_id, assignee_name, due_at, state, completed_at, updated_at, \
         provisional) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)";
    pub(crate) const TASK_BY_ID: &str =
        concat!("SELECT ", cols!(task), " FROM tasks WHERE id = $1");
    /// Followed by a bound id list and `)`.
    pub(crate) const TASKS_BY_IDS: &str =
        concat!("SELECT ", cols!(task), " FROM tasks WHERE id IN (");
    pub(crate) const TASK_BY_KEY: &str = concat!(
        "SELECT ",
        cols!(task),
        " FROM tasks WHERE round_id = $1 AND key = $2"
    );
    pub(crate) const TASK_ID_BY_KEY: &str = "SELECT id FROM tasks WHERE round_id = $1 AND key = $2";
    pub(crate) const ROUND_OF_TASK: &str = "SELECT round_id FROM tasks WHERE id = $1";
    /// Followed by a bound round id, ` AND task IN (`, a bound list and `) ORDER BY id`.
    pub(crate) const TASKS_OF_ROUND_BY_TASK: &str =
        concat!("SELECT ", cols!(task), " FROM tasks WHERE round_id = ");
    /// Followed by a bound id list and `) ORDER BY task_id, due_at, id`.
    pub(crate) const TIMERS_OF_TASKS: &str =
        concat!("SELECT ", cols!(timer), " FROM timers WHERE task_id IN (");
    pub(crate) const TASKS_OF_ROUND: &str = concat!(
        "SELECT ",
        cols!(task),
        " FROM tasks WHERE round_id = $1 ORDER BY id"
    );
    pub(crate) const TASK_SET_STATE: &str =
        "UPDATE tasks SET state = $2, updated_at = $3, completed_at = $4 WHERE id = $1";
    pub(crate) const TASK_ACTIVATE: &str = "UPDATE tasks SET state = 'open', due_at = $2, \
         updated_at = $3, provisional = $4 WHERE id = $1";
    pub(crate) const TASK_CANCEL: &str =
        "UPDATE tasks SET state = 'cancelled', updated_at = $2 WHERE id = $1";

    pub(crate) const ROUND_REPIN: &str =
        "UPDATE rounds SET version_id = $2, units_json = $3 WHERE id = $1";
    pub(crate) const TIMER_CANCEL_PENDING: &str =
        "UPDATE timers SET state = 'cancelled' WHERE id = $1 AND state = 'pending'";
    pub(crate) const TASK_SET_DUE: &str = "UPDATE tasks SET due_at = $2, updated_at = $3, \
         provisional = $4 WHERE id = $1 AND state IN ('open', 'waiting')";

    pub(crate) const TASK_SET_TITLE: &str = "UPDATE tasks SET title = $2, updated_at = $3 \
         WHERE id = $1 AND state IN ('open', 'waiting')";

    pub(crate) const HISTORY_INSERT: &str = "INSERT INTO task_history \
         (task_id, at, from_state, to_state, actor, note) VALUES ($1, $2, $3, $4, $5, $6)";
    pub(crate) const HISTORY_OF: &str = concat!(
        "SELECT ",
        cols!(history),
        " FROM task_history WHERE task_id = $1 ORDER BY id"
    );

    pub(crate) const TIMER_INSERT: &str = "INSERT INTO timers \
         (key, round_id, task_id, kind, due_at, payload_json) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (key) DO NOTHING";
    pub(crate) const TIMERS_CANCEL_OF_TASK: &str = "UPDATE timers SET state = 'cancelled', \
         lease_owner = NULL, lease_until = NULL \
         WHERE task_id = $1 AND state IN ('pending', 'running')";
    pub(crate) const TIMERS_CANCEL_OF_ROUND: &str = "UPDATE timers SET state = 'cancelled', \
         lease_owner = NULL, lease_until = NULL \
         WHERE (round_id = $1 OR task_id IN (SELECT id FROM tasks WHERE round_id = $1)) \
         AND state IN ('pending', 'running')";
    pub(crate) const TIMER_RELEASE: &str = "UPDATE timers SET state = 'pending', \
         lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND state = 'running' AND lease_owner = $2";
    pub(crate) const TIMER_BRING_FORWARD: &str = "UPDATE timers SET due_at = $2 \
         WHERE id = $1 AND state = 'pending' AND due_at > $2";
    pub(crate) const NEXT_DUE: &str = "SELECT MIN(t) FROM (\
         SELECT MIN(due_at) AS t FROM timers WHERE state = 'pending' \
         UNION ALL SELECT MIN(lease_until) AS t FROM timers WHERE state = 'running') AS m";
    pub(crate) const PENDING_TIMERS: &str = concat!(
        "SELECT ",
        cols!(timer),
        " FROM timers WHERE state = 'pending' AND ($1 IS NULL OR round_id = $1) \
         ORDER BY due_at, id LIMIT $2"
    );
    /// `substr` rather than `LIKE`: SQLite's `LIKE` ignores ASCII case and both treat `%`/`_`.
    pub(crate) const TIMERS_WITH_PREFIX: &str = concat!(
        "SELECT ",
        cols!(timer),
        " FROM timers WHERE substr(key, 1, length($1)) = $1 ORDER BY due_at, id"
    );

    /// A claimed row of a message, right before its send: still ours, lease extended,
    /// Message-ID fixed if unset, one more attempt.
    pub(crate) const OUTBOX_BEGIN_ATTEMPT: &str = "UPDATE outbox SET lease_until = $3, \
         attempts = attempts + 1, message_id = COALESCE(message_id, $4) \
         WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
    pub(crate) const OUTBOX_RELEASE: &str = "UPDATE outbox SET state = 'pending', \
         lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
    pub(crate) const OUTBOX_SENT: &str = "UPDATE outbox SET state = 'sent', sent_at = $3, \
         last_error = NULL, lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
    pub(crate) const OUTBOX_RETRY: &str = "UPDATE outbox SET state = 'pending', \
         next_attempt_at = $3, last_error = $4, lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
    pub(crate) const OUTBOX_DEAD: &str = "UPDATE outbox SET state = 'dead', last_error = $3, \
         lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND state = 'sending'";
    /// Seeds of a claim: light columns of the rows that can start a message.
    pub(crate) const OUTBOX_SEEDS_EXPIRED: &str = "SELECT id, kind, channel, address, \
         not_before, message_id FROM outbox WHERE state = 'sending' AND lease_until < $1 \
         ORDER BY id LIMIT $2";
    /// Rows a claim may take at `$3`: pending and due, or sending with an expired lease.
    macro_rules! claim_outbox_set {
        () => {
            "UPDATE outbox SET state = 'sending', lease_owner = $1, lease_until = $2 \
             WHERE ((state = 'pending' AND COALESCE(next_attempt_at, not_before) <= $3) \
             OR (state = 'sending' AND lease_until < $3)) AND "
        };
    }
    /// Ends the claim of single rows, built with a bound id list (`claim_outbox_in`).
    pub(crate) const OUTBOX_RETURNING: &str = concat!(" RETURNING ", cols!(outbox));
    pub(crate) const OUTBOX_CLAIM_FIXED: &str = concat!(
        claim_outbox_set!(),
        "message_id = $4 RETURNING ",
        cols!(outbox)
    );
    /// A recipient's reminders of one clock hour ([`crate::store::DIGEST_CLASSES`]).
    pub(crate) const OUTBOX_CLAIM_REMIND: &str = concat!(
        claim_outbox_set!(),
        "address = $4 AND channel = $5 AND message_id IS NULL \
         AND kind IN ('reminder', 'due_today', 'overdue') \
         AND not_before >= $6 AND not_before < $7 RETURNING ",
        cols!(outbox)
    );
    /// A recipient's escalations of one clock hour.
    pub(crate) const OUTBOX_CLAIM_ESCALATE: &str = concat!(
        claim_outbox_set!(),
        "address = $4 AND channel = $5 AND message_id IS NULL \
         AND kind IN ('escalation') \
         AND not_before >= $6 AND not_before < $7 RETURNING ",
        cols!(outbox)
    );

    pub(crate) const BUDGET_INSERT: &str = "INSERT INTO rate_budget (channel, tat_us) \
         VALUES ($1, 0) ON CONFLICT (channel) DO NOTHING";
    pub(crate) const BUDGET_PUT: &str = "UPDATE rate_budget SET tat_us = $2 WHERE channel = $1";
    pub(crate) const BUDGET_REFUND: &str =
        "UPDATE rate_budget SET tat_us = tat_us - $2 WHERE channel = $1";

    pub(crate) const SETTINGS_WITH_PREFIX: &str = "SELECT key, value FROM settings \
         WHERE substr(key, 1, length($1)) = $1 ORDER BY key";
    pub(crate) const SETTINGS_DELETE_PREFIX: &str =
        "DELETE FROM settings WHERE substr(key, 1, length($1)) = $1";
    pub(crate) const OUTBOX_AFTER: &str = concat!(
        "SELECT ",
        cols!(outbox),
        " FROM outbox WHERE id > $1 ORDER BY id LIMIT $2"
    );

    pub(crate) const TOKEN_INSERT: &str = "INSERT INTO api_tokens \
         (name, hash, rights, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)";
    pub(crate) const TOKEN_BY_HASH: &str = "SELECT name, hash, rights, created_at, revoked_at \
         FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL";
    pub(crate) const SETTING_INSERT: &str =
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
    pub(crate) const SETTING_GET: &str = "SELECT value FROM settings WHERE key = $1";
    pub(crate) const SETTING_PUT: &str = "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value";

    pub(crate) const COUNTS: &str = "SELECT \
         (SELECT COUNT(*) FROM timers WHERE state = 'pending'), \
         (SELECT COUNT(*) FROM tasks WHERE state = 'open' AND due_at < $1), \
         (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')), \
         (SELECT COUNT(*) FROM outbox WHERE state = 'dead')";

    pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_log \
         (at, actor, action, subject, detail_json) VALUES ($1, $2, $3, $4, $5)";
    pub(crate) const AUDIT_AFTER: &str = concat!(
        "SELECT ",
        cols!(audit),
        " FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
    );
}

/// Most seed rows read per scan of an outbox claim (expired, held-and-released, free); a
/// claim of few messages reads four rows per message it may take.
pub(crate) const OUTBOX_SEED_SCAN: i64 = 200;

/// How often storing a workflow version may lose the race for the next number.
pub(crate) const VERSION_PUT_ATTEMPTS: usize = 32;

/// Generates the backend-neutral code for a store type: helpers running inside a transaction
/// and the whole [`Store`](crate::store::Store) impl.
///
/// The store must have a field `pool`, an inherent
/// `async fn begin_write(&self) -> sqlx::Result<Transaction<'static, DB>>` and an inherent
/// `async fn insert_notifications(c: &mut Conn, rows: &[&NewNotification]) -> Result<()>`
/// (how to write many rows at once differs: multi-row `VALUES` or `UNNEST` of arrays), and
/// an inherent `async fn after_timers_added(&self, added: u64) -> Result<()>` (planner
/// statistics after a bulk insert, see the Postgres store). `row_lock` is
/// appended to selects of rows that a transaction will change, `claim_lock` to the claim's
/// inner select.
macro_rules! store_impl {
    (
        store: $store:ident,
        db: $db:ty,
        conn: $conn:ty,
        backend: $backend:literal,
        migrator: $migrator:ident,
        row_lock: $row_lock:literal,
        claim_lock: $claim_lock:literal,
        outbox_lock: $outbox_lock:literal,
        held_index: $held_index:literal,
        free_index: $free_index:literal,
        firing_loops: $firing_loops:literal $(,)?
    ) => {
        const _: () = {
            use $crate::store::sqlite::shared::{self as sql, cols};
            use $crate::store::{
                AuditEntry, AuditRow, FireEffects, HistoryRow, Millis, NewNotification, NewRound,
                NewTask, NewTimer, OutboxRow, Result, RoundRow, Store, StoreError, TaskRow,
                TimerRow, Transition, VersionRow, task_state,
            };

            const TASK_BY_ID_LOCKED: &str = concat!(
                "SELECT ",
                cols!(task),
                " FROM tasks WHERE id = $1",
                $row_lock
            );
            const TASK_BY_KEY_LOCKED: &str = concat!(
                "SELECT ",
                cols!(task),
                " FROM tasks WHERE round_id = $1 AND key = $2",
                $row_lock
            );
            /// The round row, locked: every transition of a task takes it first (as do
            /// cancelling and re-projecting a round), so transitions of one round run one
            /// after the other and each reads what the one before committed.
            const ROUND_LOCK: &str =
                concat!("SELECT id FROM rounds WHERE id = $1", $row_lock);
            const TASKS_TO_CANCEL: &str = concat!(
                "SELECT id, state FROM tasks WHERE round_id = $1 \
                 AND state IN ('open', 'waiting') ORDER BY id",
                $row_lock
            );
            /// Held rows (reminders, escalations not yet attempted) whose digest is
            /// released, by the partial index of held rows (`held_index`: SQLite's planner
            /// prefers the full `(state, …)` indexes, which walk every held row).
            const OUTBOX_SEEDS_HELD: &str = concat!(
                "SELECT id, kind, channel, address, not_before, message_id FROM outbox",
                $held_index,
                " WHERE state = 'pending' AND ",
                sql::outbox_held!(),
                " AND not_before <= $1 ORDER BY not_before, id LIMIT $2"
            );
            /// Every other pending row that is due (`free_index`).
            const OUTBOX_SEEDS_FREE: &str = concat!(
                "SELECT id, kind, channel, address, not_before, message_id FROM outbox",
                $free_index,
                " WHERE state = 'pending' AND ",
                sql::outbox_free!(),
                " AND COALESCE(next_attempt_at, not_before) <= $1 \
                 ORDER BY COALESCE(next_attempt_at, not_before), id LIMIT $2"
            );
            /// The earliest due free row, the earliest held row (released later by the
            /// sender's rule) and the earliest lease expiry; each one probe of an index.
            const OUTBOX_NEXT: &str = concat!(
                "SELECT (SELECT MIN(COALESCE(next_attempt_at, not_before)) FROM outbox",
                $free_index,
                " WHERE state = 'pending' AND ",
                sql::outbox_free!(),
                "), (SELECT MIN(not_before) FROM outbox",
                $held_index,
                " WHERE state = 'pending' AND ",
                sql::outbox_held!(),
                "), (SELECT MIN(lease_until) FROM outbox WHERE state = 'sending')"
            );
            const BUDGET_GET: &str = concat!(
                "SELECT tat_us FROM rate_budget WHERE channel = $1",
                $row_lock
            );
            /// Running timers whose lease expired (their daemon died), then due pending ones.
            const CLAIM_EXPIRED: &str = concat!(
                "UPDATE timers SET state = 'running', lease_owner = $2, lease_until = $3, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM timers \
                 WHERE state = 'running' AND lease_until < $1 AND due_at <= $1 \
                 ORDER BY due_at, id LIMIT $4",
                $claim_lock,
                ") RETURNING ",
                cols!(timer)
            );
            const CLAIM_DUE: &str = concat!(
                "UPDATE timers SET state = 'running', lease_owner = $2, lease_until = $3, \
                 attempts = attempts + 1 WHERE id IN (SELECT id FROM timers \
                 WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $4",
                $claim_lock,
                ") RETURNING ",
                cols!(timer)
            );

            impl $store {
                /// Run claim statements in one write transaction until `limit` rows are
                /// claimed; each statement takes `now, owner, lease_until, limit`.
                async fn claim<R>(
                    &self,
                    statements: [&'static str; 2],
                    now: Millis,
                    owner: &str,
                    lease_ms: i64,
                    limit: i64,
                ) -> Result<Vec<R>>
                where
                    R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                {
                    let mut tx = self.begin_write().await?;
                    let mut rows = Vec::new();
                    for claim in statements {
                        let left = limit.max(0) - rows.len() as i64;
                        if left <= 0 {
                            break;
                        }
                        rows.extend(
                            sqlx::query_as::<$db, R>(claim)
                                .bind(now)
                                .bind(owner)
                                .bind(now.saturating_add(lease_ms))
                                .bind(left)
                                .fetch_all(&mut *tx)
                                .await?,
                        );
                    }
                    tx.commit().await?;
                    Ok(rows)
                }

                /// The body of [`Store::claim_outbox`], inside its transaction.
                async fn claim_outbox_in(
                    c: &mut $conn,
                    req: &$crate::store::OutboxClaim,
                ) -> Result<$crate::store::ClaimedOutbox> {
                    use $crate::store::budget::Rate;
                    use $crate::store::MessageKey;
                    use std::collections::{BTreeMap, HashSet};
                    let now = req.now;
                    let lease_until = now.saturating_add(req.lease_ms);
                    let scan = (req.max_messages as i64)
                        .saturating_mul(4)
                        .clamp(16, $crate::store::sqlite::OUTBOX_SEED_SCAN);
                    let mut seeds = sqlx::query_as::<$db, sql::SeedDb>(sql::OUTBOX_SEEDS_EXPIRED)
                        .bind(now)
                        .bind(scan)
                        .fetch_all(&mut *c)
                        .await?;
                    let mut due = sqlx::query_as::<$db, sql::SeedDb>(OUTBOX_SEEDS_HELD)
                        .bind(req.hold.ripe(now))
                        .bind(scan)
                        .fetch_all(&mut *c)
                        .await?;
                    due.extend(
                        sqlx::query_as::<$db, sql::SeedDb>(OUTBOX_SEEDS_FREE)
                            .bind(now)
                            .bind(scan)
                            .fetch_all(&mut *c)
                            .await?,
                    );
                    // Held rows are due at `not_before`; free rows never carry a retry
                    // instant older than their own, so not_before orders both well enough.
                    due.sort_by_key(|s| (s.not_before, s.id));
                    seeds.extend(due);

                    // Messages in seed order, each with its channel.
                    let mut seen = HashSet::new();
                    let mut keys: Vec<(MessageKey, String)> = Vec::new();
                    for s in &seeds {
                        let key = MessageKey::of(
                            s.id,
                            &s.kind,
                            &s.channel,
                            &s.address,
                            s.not_before,
                            s.message_id.as_deref(),
                            &req.hold,
                        );
                        if seen.insert(key.clone()) {
                            keys.push((key, s.channel.clone()));
                        }
                    }

                    // The shared budget of every limited channel that has something due.
                    let now_us = now.saturating_mul(1000);
                    let mut budgets: BTreeMap<String, (Rate, i64, i64)> = BTreeMap::new();
                    for (_, channel) in &keys {
                        let Some(n) = req.per_minute.get(channel) else {
                            continue;
                        };
                        if budgets.contains_key(channel) {
                            continue;
                        }
                        sqlx::query(sql::BUDGET_INSERT)
                            .bind(channel)
                            .execute(&mut *c)
                            .await?;
                        let tat = sqlx::query_scalar::<$db, i64>(BUDGET_GET)
                            .bind(channel)
                            .fetch_one(&mut *c)
                            .await?;
                        budgets.insert(channel.clone(), (Rate::per_minute(*n), tat, 0));
                    }

                    let mut throttled_until: Option<Millis> = None;
                    let mut picked: Vec<&MessageKey> = Vec::new();
                    for (key, channel) in &keys {
                        if picked.len() >= req.max_messages {
                            break;
                        }
                        if let Some((rate, tat, taken)) = budgets.get_mut(channel) {
                            if rate.available(*tat, now_us) <= *taken {
                                let free_us = rate.next_free_us(rate.take(*tat, now_us, *taken));
                                let free_ms = (free_us + 999).div_euclid(1000);
                                throttled_until =
                                    Some(throttled_until.map_or(free_ms, |t| t.min(free_ms)));
                                continue;
                            }
                            *taken += 1;
                        }
                        picked.push(key);
                    }

                    // Claim every row of each picked message.
                    let mut claimed: std::collections::HashMap<MessageKey, Vec<sql::OutboxDb>> =
                        std::collections::HashMap::new();
                    let singles: Vec<i64> = picked
                        .iter()
                        .filter_map(|k| match k {
                            MessageKey::Row(id) => Some(*id),
                            _ => None,
                        })
                        .collect();
                    for chunk in singles.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "UPDATE outbox SET state = 'sending', lease_owner = ",
                        );
                        q.push_bind(req.owner.as_str())
                            .push(", lease_until = ")
                            .push_bind(lease_until)
                            .push(
                                " WHERE ((state = 'pending' \
                                 AND COALESCE(next_attempt_at, not_before) <= ",
                            )
                            .push_bind(now)
                            .push(") OR (state = 'sending' AND lease_until < ")
                            .push_bind(now)
                            .push(")) AND id IN (");
                        let mut ids = q.separated(", ");
                        for id in chunk {
                            ids.push_bind(*id);
                        }
                        ids.push_unseparated(")");
                        q.push(sql::OUTBOX_RETURNING);
                        let rows: Vec<sql::OutboxDb> =
                            q.build_query_as().fetch_all(&mut *c).await?;
                        for r in rows {
                            claimed.entry(MessageKey::Row(r.id)).or_default().push(r);
                        }
                    }
                    for key in &picked {
                        let q = match key {
                            MessageKey::Row(_) => continue,
                            MessageKey::Fixed(mid) => {
                                sqlx::query_as::<$db, sql::OutboxDb>(sql::OUTBOX_CLAIM_FIXED)
                                    .bind(req.owner.as_str())
                                    .bind(lease_until)
                                    .bind(now)
                                    .bind(mid.as_str())
                            }
                            MessageKey::Digest {
                                channel,
                                address,
                                class,
                                hour,
                            } => sqlx::query_as::<$db, sql::OutboxDb>(if *class == "escalate" {
                                sql::OUTBOX_CLAIM_ESCALATE
                            } else {
                                sql::OUTBOX_CLAIM_REMIND
                            })
                            .bind(req.owner.as_str())
                            .bind(lease_until)
                            .bind(now)
                            .bind(address.as_str())
                            .bind(channel.as_str())
                            .bind(*hour)
                            .bind(*hour + 3_600_000),
                        };
                        let rows = q.fetch_all(&mut *c).await?;
                        claimed.insert((*key).clone(), rows);
                    }

                    // Spend the budget of what was claimed.
                    let mut spent: BTreeMap<&str, i64> = BTreeMap::new();
                    let mut messages = Vec::with_capacity(picked.len());
                    for key in picked {
                        let Some(mut rows) = claimed.remove(key) else {
                            continue;
                        };
                        if rows.is_empty() {
                            continue;
                        }
                        rows.sort_by_key(|r| r.id);
                        if let Some((channel, _)) = budgets.get_key_value(rows[0].channel.as_str()) {
                            *spent.entry(channel.as_str()).or_default() += 1;
                        }
                        messages.push(rows.into_iter().map(Into::into).collect());
                    }
                    for (channel, n) in spent {
                        if let Some((rate, tat, _)) = budgets.get(channel) {
                            sqlx::query(sql::BUDGET_PUT)
                                .bind(channel)
                                .bind(rate.take(*tat, now_us, n))
                                .execute(&mut *c)
                                .await?;
                        }
                    }
                    Ok($crate::store::ClaimedOutbox {
                        messages,
                        throttled_until,
                    })
                }

                async fn insert_audit(c: &mut $conn, e: &AuditEntry) -> Result<()> {
                    sqlx::query(sql::AUDIT_INSERT)
                        .bind(e.at)
                        .bind(&e.actor)
                        .bind(&e.action)
                        .bind(&e.subject)
                        .bind(&e.detail_json)
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                }

                async fn insert_history(
                    c: &mut $conn,
                    task_id: i64,
                    at: Millis,
                    from: &str,
                    to: &str,
                    actor: &str,
                    note: Option<&str>,
                ) -> Result<()> {
                    sqlx::query(sql::HISTORY_INSERT)
                        .bind(task_id)
                        .bind(at)
                        .bind(from)
                        .bind(to)
                        .bind(actor)
                        .bind(note)
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                }

                /// Insert a timer unless its key exists. `round` (when given) is the timer's
                /// round and the scope of its `task_key`; a timer without `task_key` belongs
                /// to `task`.
                async fn insert_timer(
                    c: &mut $conn,
                    t: &NewTimer,
                    round: Option<i64>,
                    task: Option<i64>,
                ) -> Result<u64> {
                    let round_id = round.or(t.round_id);
                    let task_id = match (&t.task_key, round_id) {
                        (None, _) => task,
                        (Some(key), None) => {
                            return Err(StoreError::NotFound(format!(
                                "round of task `{key}` for timer `{}`",
                                t.key
                            )));
                        }
                        (Some(key), Some(round_id)) => Some(
                            sqlx::query_scalar::<$db, i64>(sql::TASK_ID_BY_KEY)
                                .bind(round_id)
                                .bind(key)
                                .fetch_optional(&mut *c)
                                .await?
                                .ok_or_else(|| {
                                    StoreError::NotFound(format!(
                                        "task `{key}` in round {round_id} for timer `{}`",
                                        t.key
                                    ))
                                })?,
                        ),
                    };
                    let done = sqlx::query(sql::TIMER_INSERT)
                        .bind(&t.key)
                        .bind(round_id)
                        .bind(task_id)
                        .bind(&t.kind)
                        .bind(t.due_at)
                        .bind(&t.payload_json)
                        .execute(&mut *c)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn insert_task(
                    c: &mut $conn,
                    round: i64,
                    t: &NewTask,
                    at: Millis,
                ) -> Result<()> {
                    sqlx::query(sql::TASK_INSERT)
                        .bind(round)
                        .bind(&t.key)
                        .bind(&t.task)
                        .bind(&t.stage)
                        .bind(&t.title)
                        .bind(&t.assignee_kind)
                        .bind(&t.assignee_id)
                        .bind(&t.assignee_name)
                        .bind(t.due_at)
                        .bind(&t.state)
                        .bind(at)
                        .bind(t.provisional)
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                }

                /// Insert a round, its tasks and its timers; None when the kickoff key is used.
                async fn insert_round(
                    c: &mut $conn,
                    r: &NewRound,
                    tasks: &[NewTask],
                    timers: &[NewTimer],
                ) -> Result<Option<i64>> {
                    let id = sqlx::query_scalar::<$db, i64>(sql::ROUND_INSERT)
                        .bind(&r.tag)
                        .bind(&r.workflow_id)
                        .bind(r.version_id)
                        .bind(&r.start_date)
                        .bind(&r.params_json)
                        .bind(&r.units_json)
                        .bind(r.created_at)
                        .bind(&r.kickoff_key)
                        .fetch_optional(&mut *c)
                        .await?;
                    let Some(id) = id else { return Ok(None) };
                    // Multi-row inserts: a statement per row made a 100k-branch round take
                    // minutes. Task ids come back with their keys for the timers.
                    let mut task_ids = std::collections::HashMap::with_capacity(tasks.len());
                    for chunk in tasks.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO tasks (round_id, key, task, stage, title, assignee_kind, \
                             assignee_id, assignee_name, due_at, state, completed_at, updated_at, \
                             provisional) ",
                        );
                        q.push_values(chunk, |mut b, t| {
                            b.push_bind(id)
                                .push_bind(t.key.clone())
                                .push_bind(t.task.clone())
                                .push_bind(t.stage.clone())
                                .push_bind(t.title.clone())
                                .push_bind(t.assignee_kind.clone())
                                .push_bind(t.assignee_id.clone())
                                .push_bind(t.assignee_name.clone())
                                .push_bind(t.due_at)
                                .push_bind(t.state.clone())
                                .push_bind(None::<i64>)
                                .push_bind(r.created_at)
                                .push_bind(t.provisional);
                        });
                        q.push(" RETURNING id, key");
                        let rows: Vec<(i64, String)> =
                            q.build_query_as().fetch_all(&mut *c).await?;
                        task_ids.extend(rows.into_iter().map(|(i, k)| (k, i)));
                    }
                    for chunk in timers.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO timers (key, round_id, task_id, kind, due_at, payload_json) ",
                        );
                        let mut missing = None;
                        q.push_values(chunk, |mut b, t| {
                            let task_id = t.task_key.as_ref().and_then(|k| {
                                let found = task_ids.get(k).copied();
                                if found.is_none() {
                                    missing = Some((k.clone(), t.key.clone()));
                                }
                                found
                            });
                            b.push_bind(t.key.clone())
                                .push_bind(id)
                                .push_bind(task_id)
                                .push_bind(t.kind.clone())
                                .push_bind(t.due_at)
                                .push_bind(t.payload_json.clone());
                        });
                        if let Some((key, timer)) = missing {
                            return Err(StoreError::NotFound(format!(
                                "task `{key}` in round {id} for timer `{timer}`"
                            )));
                        }
                        q.push(" ON CONFLICT (key) DO NOTHING");
                        q.build().execute(&mut *c).await?;
                    }
                    Ok(Some(id))
                }

                /// Make a waiting task owed (other states are left alone).
                async fn activate(
                    c: &mut $conn,
                    t: &Transition,
                    a: &$crate::store::Activation,
                ) -> Result<()> {
                    let dep = sqlx::query_as::<$db, sql::TaskDb>(TASK_BY_KEY_LOCKED)
                        .bind(a.round_id)
                        .bind(&a.task_key)
                        .fetch_optional(&mut *c)
                        .await?
                        .ok_or_else(|| {
                            StoreError::NotFound(format!(
                                "task `{}` in round {}",
                                a.task_key, a.round_id
                            ))
                        })?;
                    if dep.state != task_state::WAITING {
                        return Ok(());
                    }
                    sqlx::query(sql::TASK_ACTIVATE)
                        .bind(dep.id)
                        .bind(a.due_at)
                        .bind(t.at)
                        .bind(a.provisional)
                        .execute(&mut *c)
                        .await?;
                    let (from, to) = (task_state::WAITING, task_state::OPEN);
                    Self::insert_history(c, dep.id, t.at, from, to, &t.actor, None).await?;
                    for timer in &a.timers {
                        Self::insert_timer(c, timer, Some(a.round_id), Some(dep.id)).await?;
                    }
                    Ok(())
                }

                /// One attempt at storing a version; None when a concurrent writer took the
                /// number (the transaction is rolled back and the caller retries).
                async fn try_put_version(
                    &self,
                    workflow_id: &str,
                    hash: &str,
                    source: &str,
                    at: Millis,
                ) -> Result<Option<VersionRow>> {
                    let mut tx = self.begin_write().await?;
                    let found = sqlx::query_as::<$db, sql::VersionDb>(sql::VERSION_BY_HASH)
                        .bind(workflow_id)
                        .bind(hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let row = match found {
                        Some(row) => Some(row),
                        None => {
                            sqlx::query_as::<$db, sql::VersionDb>(sql::VERSION_INSERT)
                                .bind(workflow_id)
                                .bind(hash)
                                .bind(source)
                                .bind(at)
                                .fetch_optional(&mut *tx)
                                .await?
                        }
                    };
                    match row {
                        Some(row) => {
                            tx.commit().await?;
                            Ok(Some(row.into()))
                        }
                        None => {
                            tx.rollback().await?;
                            Ok(None)
                        }
                    }
                }
            }

            #[async_trait::async_trait]
            impl Store for $store {
                fn backend(&self) -> &'static str {
                    $backend
                }

                fn firing_loops(&self) -> usize {
                    $firing_loops
                }

                async fn migrate(&self) -> Result<()> {
                    $migrator.run(&self.pool).await?;
                    Ok(())
                }

                async fn ready(&self) -> Result<bool> {
                    sqlx::query(sql::SELECT_ONE).execute(&self.pool).await?;
                    let latest = $migrator
                        .iter()
                        .filter(|m| !m.migration_type.is_down_migration())
                        .map(|m| m.version)
                        .max();
                    let applied = sqlx::query_scalar::<$db, Option<i64>>(sql::LATEST_MIGRATION)
                        .fetch_one(&self.pool)
                        .await;
                    Ok(match (latest, applied) {
                        (None, _) => true,
                        (Some(latest), Ok(Some(applied))) => applied >= latest,
                        // No migrations table yet, or nothing applied.
                        (Some(_), Ok(None) | Err(_)) => false,
                    })
                }

                async fn put_workflow_version(
                    &self,
                    workflow_id: &str,
                    hash: &str,
                    source: &str,
                    at: Millis,
                ) -> Result<VersionRow> {
                    // Losing means another writer took the number and committed, so each
                    // retry follows someone's progress; 3 attempts were too few when 8
                    // daemons or requests stored 4 new versions at once (seen on Postgres).
                    for _ in 0..$crate::store::sqlite::VERSION_PUT_ATTEMPTS {
                        if let Some(row) =
                            self.try_put_version(workflow_id, hash, source, at).await?
                        {
                            return Ok(row);
                        }
                    }
                    Err(StoreError::NotFound(format!(
                        "version of workflow `{workflow_id}` with hash {hash} (kept losing \
                         the race for the next version number)"
                    )))
                }

                async fn workflow_versions(&self, workflow_id: &str) -> Result<Vec<VersionRow>> {
                    let rows = sqlx::query_as::<$db, sql::VersionDb>(sql::VERSIONS_OF)
                        .bind(workflow_id)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn workflow_version(&self, id: i64) -> Result<Option<VersionRow>> {
                    let row = sqlx::query_as::<$db, sql::VersionDb>(sql::VERSION_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn create_round(
                    &self,
                    round: NewRound,
                    tasks: Vec<NewTask>,
                    timers: Vec<NewTimer>,
                    audit: AuditEntry,
                ) -> Result<Option<i64>> {
                    let mut tx = self.begin_write().await?;
                    let Some(id) = Self::insert_round(&mut tx, &round, &tasks, &timers).await?
                    else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    Self::insert_audit(&mut tx, &audit).await?;
                    tx.commit().await?;
                    self.after_timers_added(timers.len() as u64).await?;
                    Ok(Some(id))
                }

                async fn round(&self, id: i64) -> Result<Option<RoundRow>> {
                    let row = sqlx::query_as::<$db, sql::RoundDb>(sql::ROUND_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn rounds(&self) -> Result<Vec<RoundRow>> {
                    let rows = sqlx::query_as::<$db, sql::RoundDb>(sql::ROUNDS_ALL)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn set_round_status(
                    &self,
                    id: i64,
                    status: &str,
                    audit: AuditEntry,
                ) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    let updated = sqlx::query(sql::ROUND_SET_STATUS)
                        .bind(id)
                        .bind(status)
                        .execute(&mut *tx)
                        .await?;
                    if updated.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Err(StoreError::NotFound(format!("round {id}")));
                    }
                    if status == "cancelled" {
                        // Tasks before timers: the same lock order as `transition`.
                        let owed = sqlx::query_as::<$db, (i64, String)>(TASKS_TO_CANCEL)
                            .bind(id)
                            .fetch_all(&mut *tx)
                            .await?;
                        for (task_id, state) in owed {
                            sqlx::query(sql::TASK_CANCEL)
                                .bind(task_id)
                                .bind(audit.at)
                                .execute(&mut *tx)
                                .await?;
                            let to = task_state::CANCELLED;
                            Self::insert_history(
                                &mut tx,
                                task_id,
                                audit.at,
                                &state,
                                to,
                                &audit.actor,
                                None,
                            )
                            .await?;
                        }
                        sqlx::query(sql::TIMERS_CANCEL_OF_ROUND)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Self::insert_audit(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn tasks(&self, round_id: i64) -> Result<Vec<TaskRow>> {
                    let rows = sqlx::query_as::<$db, sql::TaskDb>(sql::TASKS_OF_ROUND)
                        .bind(round_id)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn task(&self, id: i64) -> Result<Option<TaskRow>> {
                    let row = sqlx::query_as::<$db, sql::TaskDb>(sql::TASK_BY_ID)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn tasks_by_ids(&self, ids: &[i64]) -> Result<Vec<TaskRow>> {
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(sql::TASKS_BY_IDS);
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        q.push(")");
                        let rows: Vec<sql::TaskDb> = q.build_query_as().fetch_all(&self.pool).await?;
                        out.extend(rows.into_iter().map(Into::into));
                    }
                    Ok(out)
                }

                async fn task_by_key(&self, round_id: i64, key: &str) -> Result<Option<TaskRow>> {
                    let row = sqlx::query_as::<$db, sql::TaskDb>(sql::TASK_BY_KEY)
                        .bind(round_id)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn task_history(&self, task_id: i64) -> Result<Vec<HistoryRow>> {
                    let rows = sqlx::query_as::<$db, sql::HistoryDb>(sql::HISTORY_OF)
                        .bind(task_id)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn transition_with(
                    &self,
                    t: Transition,
                    read: &[String],
                    decide: $crate::store::Decide<'_>,
                ) -> Result<TaskRow> {
                    let mut tx = self.begin_write().await?;
                    let round_id = sqlx::query_scalar::<$db, i64>(sql::ROUND_OF_TASK)
                        .bind(t.task_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("task {}", t.task_id)))?;
                    sqlx::query_scalar::<$db, i64>(ROUND_LOCK)
                        .bind(round_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let task = sqlx::query_as::<$db, sql::TaskDb>(TASK_BY_ID_LOCKED)
                        .bind(t.task_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("task {}", t.task_id)))?;
                    if !t.from.iter().any(|s| *s == task.state) {
                        tx.rollback().await?;
                        return Err(StoreError::WrongState {
                            task: task.id,
                            state: task.state,
                            action: t.action,
                        });
                    }
                    let completed_at = match t.to.as_str() {
                        task_state::DONE | task_state::WAIVED => Some(t.at),
                        task_state::OPEN => None,
                        _ => task.completed_at,
                    };
                    sqlx::query(sql::TASK_SET_STATE)
                        .bind(task.id)
                        .bind(&t.to)
                        .bind(t.at)
                        .bind(completed_at)
                        .execute(&mut *tx)
                        .await?;
                    let note = t.note.as_deref();
                    Self::insert_history(
                        &mut tx,
                        task.id,
                        t.at,
                        &task.state,
                        &t.to,
                        &t.actor,
                        note,
                    )
                    .await?;
                    if let Some((due, provisional)) = t.set_due {
                        sqlx::query(sql::TASK_SET_DUE)
                            .bind(task.id)
                            .bind(due)
                            .bind(t.at)
                            .bind(provisional)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if t.cancel_timers {
                        sqlx::query(sql::TIMERS_CANCEL_OF_TASK)
                            .bind(task.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for timer in &t.new_timers {
                        Self::insert_timer(&mut tx, timer, Some(task.round_id), Some(task.id))
                            .await?;
                    }
                    for a in &t.activate {
                        Self::activate(&mut tx, &t, a).await?;
                    }
                    Self::insert_audit(&mut tx, &t.audit).await?;
                    if !read.is_empty() {
                        let mut q = sqlx::QueryBuilder::<$db>::new(sql::TASKS_OF_ROUND_BY_TASK);
                        q.push_bind(task.round_id);
                        q.push(" AND task IN (");
                        let mut list = q.separated(", ");
                        for id in read {
                            list.push_bind(id.as_str());
                        }
                        q.push(") ORDER BY id");
                        let rows: Vec<sql::TaskDb> = q.build_query_as().fetch_all(&mut *tx).await?;
                        let rows: Vec<TaskRow> = rows.into_iter().map(Into::into).collect();
                        let decided = decide(&rows);
                        for a in &decided.activate {
                            Self::activate(&mut tx, &t, a).await?;
                        }
                        for e in &decided.audit {
                            Self::insert_audit(&mut tx, e).await?;
                        }
                    }
                    let row = sqlx::query_as::<$db, sql::TaskDb>(sql::TASK_BY_ID)
                        .bind(task.id)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(row.into())
                }

                async fn task_timers(&self, task_ids: &[i64]) -> Result<Vec<TimerRow>> {
                    let mut out = Vec::new();
                    for chunk in task_ids.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(sql::TIMERS_OF_TASKS);
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        q.push(") ORDER BY task_id, due_at, id");
                        let rows: Vec<sql::TimerDb> =
                            q.build_query_as().fetch_all(&self.pool).await?;
                        out.extend(rows.into_iter().map(Into::into));
                    }
                    Ok(out)
                }

                async fn add_timers(&self, timers: Vec<NewTimer>) -> Result<u64> {
                    let mut tx = self.begin_write().await?;
                    let mut inserted = 0;
                    // Timers that name a task need its id looked up; the rest go in
                    // multi-row statements.
                    let (by_task, plain): (Vec<&NewTimer>, Vec<&NewTimer>) =
                        timers.iter().partition(|t| t.task_key.is_some());
                    for t in by_task {
                        inserted += Self::insert_timer(&mut tx, t, None, None).await?;
                    }
                    for chunk in plain.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO timers (key, round_id, task_id, kind, due_at, payload_json) ",
                        );
                        q.push_values(chunk, |mut b, t| {
                            b.push_bind(&t.key)
                                .push_bind(t.round_id)
                                .push_bind(None::<i64>)
                                .push_bind(&t.kind)
                                .push_bind(t.due_at)
                                .push_bind(&t.payload_json);
                        });
                        q.push(" ON CONFLICT (key) DO NOTHING");
                        inserted += q.build().execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    self.after_timers_added(inserted).await?;
                    Ok(inserted)
                }

                async fn claim_due_timers(
                    &self,
                    now: Millis,
                    owner: &str,
                    lease_ms: i64,
                    limit: i64,
                ) -> Result<Vec<TimerRow>> {
                    let mut rows: Vec<sql::TimerDb> =
                        self.claim([CLAIM_EXPIRED, CLAIM_DUE], now, owner, lease_ms, limit).await?;
                    rows.sort_by_key(|r| (r.due_at, r.id));
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn fire_timer(
                    &self,
                    timer_id: i64,
                    owner: &str,
                    now: Millis,
                    effects: FireEffects,
                ) -> Result<bool> {
                    let fired = self.fire_timers(owner, now, &[(timer_id, effects)]).await?;
                    Ok(fired.first().copied().unwrap_or(false))
                }

                async fn fire_timers(
                    &self,
                    owner: &str,
                    now: Millis,
                    batch: &[(i64, FireEffects)],
                ) -> Result<Vec<bool>> {
                    if batch.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_write().await?;
                    // A statement per row made a batch of reminders cost several round
                    // trips each; one update and multi-row inserts keep it to a handful.
                    let mut fired = std::collections::HashSet::with_capacity(batch.len());
                    for chunk in batch.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "UPDATE timers SET state = 'fired', fired_at = ",
                        );
                        q.push_bind(now);
                        q.push(
                            ", lease_owner = NULL, lease_until = NULL \
                             WHERE state = 'running' AND lease_owner = ",
                        );
                        q.push_bind(owner);
                        q.push(" AND id IN (");
                        let mut list = q.separated(", ");
                        for (id, _) in chunk {
                            list.push_bind(*id);
                        }
                        q.push(") RETURNING id");
                        let ids: Vec<(i64,)> = q.build_query_as().fetch_all(&mut *tx).await?;
                        fired.extend(ids.into_iter().map(|(i,)| i));
                    }
                    let out: Vec<bool> = batch.iter().map(|(id, _)| fired.contains(id)).collect();
                    if fired.is_empty() {
                        tx.rollback().await?;
                        return Ok(out);
                    }
                    let applied = || batch.iter().filter(|(id, _)| fired.contains(id)).map(|(_, e)| e);
                    let notifications: Vec<&NewNotification> =
                        applied().flat_map(|e| e.notifications.iter()).collect();
                    Self::insert_notifications(&mut tx, &notifications).await?;
                    let mut round_timers = 0;
                    for effects in applied() {
                        for t in &effects.timers {
                            Self::insert_timer(&mut tx, t, None, None).await?;
                        }
                        if let Some((round, tasks, timers)) = &effects.round {
                            // A used kickoff key means the round exists: nothing to add.
                            if Self::insert_round(&mut tx, round, tasks, timers).await?.is_some() {
                                round_timers += timers.len() as u64;
                            }
                        }
                    }
                    let audit: Vec<&AuditEntry> = applied().flat_map(|e| e.audit.iter()).collect();
                    for chunk in audit.chunks($crate::store::sqlite::INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO audit_log (at, actor, action, subject, detail_json) ",
                        );
                        q.push_values(chunk, |mut b, e| {
                            b.push_bind(e.at)
                                .push_bind(&e.actor)
                                .push_bind(&e.action)
                                .push_bind(&e.subject)
                                .push_bind(&e.detail_json);
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    // A kickoff can start a round as large as `create_round` does.
                    self.after_timers_added(round_timers).await?;
                    Ok(out)
                }

                async fn release_timer(&self, timer_id: i64, owner: &str) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::TIMER_RELEASE)
                        .bind(timer_id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn bring_forward_timer(&self, timer_id: i64, due_at: Millis) -> Result<bool> {
                    let mut tx = self.begin_write().await?;
                    let n = sqlx::query(sql::TIMER_BRING_FORWARD)
                        .bind(timer_id)
                        .bind(due_at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(n > 0)
                }

                async fn next_due_at(&self) -> Result<Option<Millis>> {
                    Ok(sqlx::query_scalar::<$db, Option<i64>>(sql::NEXT_DUE)
                        .fetch_one(&self.pool)
                        .await?)
                }

                async fn pending_timers(
                    &self,
                    round_id: Option<i64>,
                    limit: i64,
                ) -> Result<Vec<TimerRow>> {
                    let rows = sqlx::query_as::<$db, sql::TimerDb>(sql::PENDING_TIMERS)
                        .bind(round_id)
                        .bind(limit.max(0))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn timers_with_prefix(&self, prefix: &str) -> Result<Vec<TimerRow>> {
                    let rows = sqlx::query_as::<$db, sql::TimerDb>(sql::TIMERS_WITH_PREFIX)
                        .bind(prefix)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn outbox_after(&self, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
                    let rows = sqlx::query_as::<$db, sql::OutboxDb>(sql::OUTBOX_AFTER)
                        .bind(after_id)
                        .bind(limit.max(0))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn claim_outbox(
                    &self,
                    c: &$crate::store::OutboxClaim,
                ) -> Result<$crate::store::ClaimedOutbox> {
                    let mut tx = self.begin_write().await?;
                    // One claimer at a time: seeds read and messages claimed by one daemon
                    // are never split with another (SQLite's write lock already does this).
                    sqlx::query($outbox_lock).execute(&mut *tx).await?;
                    let out = Self::claim_outbox_in(&mut tx, c).await?;
                    tx.commit().await?;
                    Ok(out)
                }

                async fn begin_attempt(
                    &self,
                    ids: &[i64],
                    owner: &str,
                    lease_until: Millis,
                    message_id: &str,
                ) -> Result<bool> {
                    let mut tx = self.begin_write().await?;
                    let mut n = 0;
                    for id in ids {
                        n += sqlx::query(sql::OUTBOX_BEGIN_ATTEMPT)
                            .bind(id)
                            .bind(owner)
                            .bind(lease_until)
                            .bind(message_id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    if n as usize != ids.len() {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                async fn release_outbox(&self, ids: &[i64], owner: &str) -> Result<u64> {
                    let mut tx = self.begin_write().await?;
                    let mut n = 0;
                    for id in ids {
                        n += sqlx::query(sql::OUTBOX_RELEASE)
                            .bind(id)
                            .bind(owner)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                    Ok(n)
                }

                async fn refund_budget(
                    &self,
                    channel: &str,
                    per_minute: u32,
                    messages: u32,
                ) -> Result<()> {
                    let rate = $crate::store::budget::Rate::per_minute(per_minute);
                    let back = rate.take(0, 0, i64::from(messages));
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::BUDGET_REFUND)
                        .bind(channel)
                        .bind(back)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn settle_outbox(
                    &self,
                    ids: &[i64],
                    owner: &str,
                    outcome: $crate::store::Delivery,
                ) -> Result<u64> {
                    use $crate::store::Delivery;
                    let mut tx = self.begin_write().await?;
                    let mut n = 0;
                    for id in ids {
                        let q = match &outcome {
                            Delivery::Sent { at } => {
                                sqlx::query(sql::OUTBOX_SENT).bind(id).bind(owner).bind(*at)
                            }
                            Delivery::Retry { at, error } => sqlx::query(sql::OUTBOX_RETRY)
                                .bind(id)
                                .bind(owner)
                                .bind(*at)
                                .bind(error.clone()),
                            Delivery::Dead { error, .. } => sqlx::query(sql::OUTBOX_DEAD)
                                .bind(id)
                                .bind(owner)
                                .bind(error.clone()),
                        };
                        n += q.execute(&mut *tx).await?.rows_affected();
                    }
                    if let Delivery::Dead { notices, .. } = &outcome {
                        // Tell the office only if we really moved rows to dead (not on a
                        // lost lease, where another daemon owns the outcome).
                        if n > 0 {
                            let notices: Vec<&NewNotification> = notices.iter().collect();
                            Self::insert_notifications(&mut tx, &notices).await?;
                        }
                    }
                    tx.commit().await?;
                    Ok(n)
                }

                async fn next_outbox_at(
                    &self,
                    hold: $crate::store::DigestHold,
                ) -> Result<Option<Millis>> {
                    let (free, held, lease) =
                        sqlx::query_as::<$db, (Option<i64>, Option<i64>, Option<i64>)>(
                            OUTBOX_NEXT,
                        )
                        .fetch_one(&self.pool)
                        .await?;
                    // Held rows are released in due order (`release` is monotonic), so the
                    // earliest held row's release is the earliest of them all.
                    Ok([free, held.map(|t| hold.release(t)), lease]
                        .into_iter()
                        .flatten()
                        .min())
                }

                async fn create_token(
                    &self,
                    token: $crate::store::TokenRow,
                    audit: AuditEntry,
                ) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::TOKEN_INSERT)
                        .bind(&token.name)
                        .bind(&token.hash)
                        .bind(&token.rights)
                        .bind(token.created_at)
                        .bind(token.revoked_at)
                        .execute(&mut *tx)
                        .await?;
                    Self::insert_audit(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn token_by_hash(
                    &self,
                    hash: &str,
                ) -> Result<Option<$crate::store::TokenRow>> {
                    let row = sqlx::query_as::<$db, sql::TokenDb>(sql::TOKEN_BY_HASH)
                        .bind(hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(Into::into))
                }

                async fn setting_or_insert(&self, key: &str, default: &str) -> Result<String> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::SETTING_INSERT)
                        .bind(key)
                        .bind(default)
                        .execute(&mut *tx)
                        .await?;
                    let value = sqlx::query_scalar::<$db, String>(sql::SETTING_GET)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(value)
                }

                async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::SETTING_PUT)
                        .bind(key)
                        .bind(value)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn setting(&self, key: &str) -> Result<Option<String>> {
                    Ok(sqlx::query_scalar::<$db, String>(sql::SETTING_GET)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn settings_with_prefix(
                    &self,
                    prefix: &str,
                ) -> Result<Vec<(String, String)>> {
                    Ok(sqlx::query_as::<$db, (String, String)>(sql::SETTINGS_WITH_PREFIX)
                        .bind(prefix)
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn delete_settings_with_prefix(&self, prefix: &str) -> Result<u64> {
                    let mut tx = self.begin_write().await?;
                    let n = sqlx::query(sql::SETTINGS_DELETE_PREFIX)
                        .bind(prefix)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok(n)
                }

                async fn reproject(&self, r: $crate::store::Reprojection) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sql::ROUND_REPIN)
                        .bind(r.round_id)
                        .bind(r.version_id)
                        .bind(&r.units_json)
                        .execute(&mut *tx)
                        .await?;
                    for id in &r.cancel_timers {
                        sqlx::query(sql::TIMER_CANCEL_PENDING)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for t in &r.new_tasks {
                        Self::insert_task(&mut tx, r.round_id, t, r.at).await?;
                    }
                    for id in &r.cancel_tasks {
                        let row = sqlx::query_as::<$db, sql::TaskDb>(TASK_BY_ID_LOCKED)
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let Some(row) = row else { continue };
                        if row.state != task_state::OPEN && row.state != task_state::WAITING {
                            continue;
                        }
                        sqlx::query(sql::TASK_CANCEL)
                            .bind(id)
                            .bind(r.at)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(sql::TIMERS_CANCEL_OF_TASK)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        Self::insert_history(
                            &mut tx,
                            *id,
                            r.at,
                            &row.state,
                            task_state::CANCELLED,
                            &r.actor,
                            r.note.as_deref(),
                        )
                        .await?;
                    }
                    for (id, due, provisional) in &r.due_changes {
                        sqlx::query(sql::TASK_SET_DUE)
                            .bind(id)
                            .bind(*due)
                            .bind(r.at)
                            .bind(*provisional)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for (id, title) in &r.title_changes {
                        sqlx::query(sql::TASK_SET_TITLE)
                            .bind(id)
                            .bind(title)
                            .bind(r.at)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for t in &r.new_timers {
                        Self::insert_timer(&mut tx, t, Some(r.round_id), None).await?;
                    }
                    for a in &r.audit {
                        Self::insert_audit(&mut tx, a).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn counts(&self, now: Millis) -> Result<$crate::store::Counts> {
                    let (pending_timers, overdue_tasks, outbox_pending, outbox_dead) =
                        sqlx::query_as::<$db, (i64, i64, i64, i64)>(sql::COUNTS)
                            .bind(now)
                            .fetch_one(&self.pool)
                            .await?;
                    Ok($crate::store::Counts {
                        pending_timers,
                        overdue_tasks,
                        outbox_pending,
                        outbox_dead,
                    })
                }

                async fn replace_timer(
                    &self,
                    old: i64,
                    new: NewTimer,
                    audit: AuditEntry,
                ) -> Result<bool> {
                    let mut tx = self.begin_write().await?;
                    let cancelled = sqlx::query(sql::TIMER_CANCEL_PENDING)
                        .bind(old)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if cancelled == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    Self::insert_timer(&mut tx, &new, None, None).await?;
                    Self::insert_audit(&mut tx, &audit).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn append_audit(&self, entry: AuditEntry) -> Result<()> {
                    let mut tx = self.begin_write().await?;
                    Self::insert_audit(&mut tx, &entry).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn audit_after(&self, after_id: i64, limit: i64) -> Result<Vec<AuditRow>> {
                    let rows = sqlx::query_as::<$db, sql::AuditDb>(sql::AUDIT_AFTER)
                        .bind(after_id)
                        .bind(limit.max(0))
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
            }
        };
    };
}
pub(crate) use store_impl;

impl SqliteStore {
    /// Nothing to do: SQLite plans the claim as an ordered index range without statistics.
    async fn after_timers_added(&self, _added: u64) -> Result<()> {
        Ok(())
    }

    /// Outbox rows in multi-row statements; a key already used is skipped.
    async fn insert_notifications(
        c: &mut sqlx::SqliteConnection,
        notifications: &[&super::NewNotification],
    ) -> Result<()> {
        for chunk in notifications.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO outbox (key, round_id, task_id, kind, channel, address, \
                 recipient_json, subject, body, not_before, created_at, html, item_json) ",
            );
            q.push_values(chunk, |mut b, n| {
                b.push_bind(&n.key)
                    .push_bind(n.round_id)
                    .push_bind(n.task_id)
                    .push_bind(&n.kind)
                    .push_bind(&n.channel)
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
}

// SQLite needs no row locks: `BEGIN IMMEDIATE` already holds the database's single write lock.
store_impl! {
    store: SqliteStore,
    db: sqlx::Sqlite,
    conn: sqlx::SqliteConnection,
    backend: "sqlite",
    migrator: MIGRATOR,
    row_lock: "",
    claim_lock: "",
    // `BEGIN IMMEDIATE` already serialises outbox claims.
    outbox_lock: "SELECT 1",
    // Without this its planner walks `outbox_state_due`, held rows and all.
    held_index: " INDEXED BY outbox_held_due",
    free_index: " INDEXED BY outbox_free_due",
    // One writer at a time (`BEGIN IMMEDIATE`): a second loop would only queue on the lock.
    firing_loops: 1,
}
