//! PostgreSQL backend of the [`Store`](super::Store), for one or several daemons sharing a
//! database.
//!
//! The SQL and the transaction logic are shared with SQLite (see [`super::shared`]); what is
//! specific here: plain `BEGIN` (READ COMMITTED) write transactions, `SELECT ... FOR UPDATE` on
//! the task rows a transaction changes, and `FOR UPDATE SKIP LOCKED` in the timer claim so
//! that daemons claiming at the same moment take disjoint timers without waiting on each other.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::shared::Backend;
use super::sql::{self, Dialect};
use super::{NewNotification, Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Pool size per daemon.
const POOL_SIZE: u32 = 8;
/// Inserting this many timers at once refreshes the planner's statistics of the table.
const ANALYZE_AFTER_TIMERS: u64 = 10_000;

/// How long to wait for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to `postgres://USER@HOST/DB` (or `postgresql://`). Does not migrate; call
    /// [`Store::migrate`](super::Store::migrate).
    pub async fn open(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            return Err(StoreError::BadUrl(url.to_string()));
        }
        // One plain connection first: the pool retries a refused connection until its
        // acquire timeout, which would hide "unreachable" from the caller's retry loop.
        use sqlx::Connection as _;
        sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| refused(url, e))?
            .close()
            .await?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }
}

/// A connection error that no retry can fix — the URL cannot be parsed, the database does
/// not exist (SQLSTATE 3D000), the user is unknown or its password wrong (28000, 28P01) —
/// as [`StoreError::Refused`] with what to fix; anything else (refused, timed out, the
/// server starting up) stays a plain error the caller retries.
fn refused(url: &str, e: sqlx::Error) -> StoreError {
    let shown = super::redact_url(url);
    match &e {
        sqlx::Error::Configuration(c) => StoreError::Refused(format!(
            "the database URL {shown} is not valid: {c}; fix [database] url in the config or YANZHEN_DATABASE_URL"
        )),
        sqlx::Error::Database(d) => {
            let hint = match d.code().as_deref() {
                Some("3D000") => {
                    "create it (`createdb NAME` as a PostgreSQL superuser) or fix the name in [database] url / YANZHEN_DATABASE_URL"
                }
                Some("28P01" | "28000") => {
                    "check the user name and password in [database] url / YANZHEN_DATABASE_URL, and that pg_hba.conf lets this user connect"
                }
                _ => return e.into(),
            };
            StoreError::Refused(format!(
                "PostgreSQL refused {shown}: {} (SQLSTATE {}); {hint}",
                d.message(),
                d.code().unwrap_or_default()
            ))
        }
        _ => e.into(),
    }
}

impl Backend for PgStore {
    type Db = Postgres;
    const NAME: &'static str = "postgres";
    // Claims skip each other's rows, so two loops overlap one's round trips and commit with
    // the other's claiming and rendering.
    const FIRING_LOOPS: usize = 2;

    fn dialect() -> &'static Dialect {
        const SQL: Dialect = sql::dialect! {
            row_lock: " FOR UPDATE",
            claim_lock: " FOR UPDATE SKIP LOCKED",
            // Outbox claims take turns (a transaction-scoped advisory lock; the key is
            // arbitrary but fixed), so two daemons never split one digest between them.
            outbox_lock: "SELECT pg_advisory_xact_lock(7315221004)",
            // The planner finds the partial indexes by itself.
            held_index: "",
            free_index: "",
        };
        &SQL
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn run_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Start a write transaction (row locks are taken by the statements themselves).
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.pool.begin().await
    }

    /// Refresh the planner's statistics of `timers` after a bulk insert.
    ///
    /// Until autovacuum gets round to it (a minute or more), the statistics say the new
    /// rows do not exist, and the claim is planned as a bitmap scan that reads and sorts
    /// *every* due row to return 200: a 100k burst then cost 30-50 ms a claim instead of
    /// an ordered index range (measured with EXPLAIN ANALYZE during the bench).
    async fn after_timers_added(&self, added: u64) -> Result<()> {
        if added >= ANALYZE_AFTER_TIMERS {
            sqlx::query("ANALYZE timers").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Outbox rows in one statement over arrays; a key already used is skipped.
    ///
    /// One fixed statement whatever the row count: multi-row `VALUES` was a new statement
    /// for every batch size, and preparing it cost more than the insert (37 ms a batch).
    async fn insert_notifications(
        c: &mut sqlx::PgConnection,
        rows: &[&NewNotification],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let text = |f: fn(&NewNotification) -> &String| -> Vec<&str> {
            rows.iter().map(|n| f(n).as_str()).collect()
        };
        sqlx::query(
            "INSERT INTO outbox (key, round_id, task_id, kind, channel, address, \
             recipient_json, subject, body, not_before, created_at, html, item_json) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], \
             $12::text[], $13::text[]) ON CONFLICT (key) DO NOTHING",
        )
        .bind(text(|n| &n.key))
        .bind(rows.iter().map(|n| n.round_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|n| n.task_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|n| n.channel.as_str()).collect::<Vec<_>>())
        .bind(text(|n| &n.address))
        .bind(text(|n| &n.recipient_json))
        .bind(text(|n| &n.subject))
        .bind(text(|n| &n.body))
        .bind(rows.iter().map(|n| n.not_before).collect::<Vec<_>>())
        .bind(rows.iter().map(|n| n.created_at).collect::<Vec<_>>())
        .bind(text(|n| &n.html))
        .bind(text(|n| &n.item_json))
        .execute(&mut *c)
        .await?;
        Ok(())
    }
}
