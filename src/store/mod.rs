//! The store: everything durable. One interface, two backends (SQLite, PostgreSQL).
//!
//! Architecture Invariant: the `timers` table is the source of truth for every instant
//! the daemon acts on, recurring kickoffs included; nothing that must fire lives only in
//! memory. Every state change and the rows it causes (timers, outbox, history, audit) are
//! written in one transaction.
//!
//! Times are UTC epoch milliseconds (`i64`) in both databases: index-friendly and
//! identical across backends. The clock is passed in by the caller; the store never reads it.
//!
//! Layout: this file is the [`Store`] trait and its errors; `rows.rs` the row types and
//! their parsing from what is stored; `sql.rs` the SQL text both backends run; `shared.rs`
//! the transaction logic and `generic.rs` the `Store` impl, both generic over
//! [`Backend`]; `sqlite.rs` and `postgres.rs` only what differs (opening, the begin
//! statement, lock clauses, bulk inserts); `digest.rs` which outbox rows go out together;
//! `budget.rs` the shared rate limit.

use async_trait::async_trait;
use std::sync::Arc;

use crate::core::state::{RoundStatus, TaskState};

pub mod budget;
mod bulk;
mod digest;
mod generic;
mod people;
mod postgres;
mod results;
mod rows;
mod shared;
mod sql;
mod sqlite;
mod submissions;

pub(crate) use digest::MessageKey;
pub use digest::{DIGEST_CLASSES, DigestHold, digest_class};
pub use people::{EventFilter, EventRow, NewEvent, PeopleFilter, PersonRow, PoolWrite};
pub use postgres::PgStore;
pub use results::{NewResult, RatingsWrite, ResultFilter, ResultRow};
pub use rows::{
    Activation, AuditEntry, AuditRow, ClaimedOutbox, ClaimedTimers, CorruptTimer, Counts, Decide,
    Decided, Delivery, FireEffects, HistoryRow, NewNotification, NewRound, NewTask, NewTimer,
    OutboxClaim, OutboxRow, Reprojection, RoundRow, SessionRow, SubmissionChange, TaskRow,
    TimerPayload, TimerRow, TokenRow, Transition, VersionRow,
};
pub use shared::{Backend, RowsAffected};
#[doc(hidden)]
pub use sql::Dialect;
pub use sqlite::SqliteStore;
pub use submissions::{NewSubmission, Outcome, StoredFile, SubmissionRow};

/// UTC epoch milliseconds.
pub type Millis = i64;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    /// No space left where the database lives (SQLite `SQLITE_FULL`, PostgreSQL
    /// `53100 disk_full`); the change was rolled back.
    #[error(
        "no space left for the database ({0}): this change was not written; free space on the volume that holds the database, then try again"
    )]
    DiskFull(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another daemon already holds this SQLite file.
    #[error(
        "database {path} is in use by another yanzhen process (lock file {path}.lock); stop it or use PostgreSQL for several daemons"
    )]
    Locked {
        /// The database file.
        path: String,
    },
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// A row with this unique name exists already; the text says what to do.
    #[error("{0}")]
    Exists(String),
    /// A row that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// A task is not in a state that allows this change.
    #[error("task {task} is {state}; cannot {action}")]
    WrongState {
        /// Task id.
        task: i64,
        /// Its current state.
        state: TaskState,
        /// What was asked.
        action: String,
    },
    /// The database server answered but refuses this URL for good (the database does not
    /// exist, unknown user, wrong password): retrying cannot help.
    #[error("{0}")]
    Refused(String),
    /// A stored row that does not parse (a state or kind that is not one, JSON that does
    /// not read, an instant out of range): corruption, reported instead of defaulted.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Local I/O (lock file, directories).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // SQLITE_FULL is 13; PostgreSQL says disk_full (53100).
            sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("13" | "53100")) => {
                let backend = if d.code().as_deref() == Some("13") {
                    "SQLite"
                } else {
                    "PostgreSQL"
                };
                StoreError::DiskFull(format!("{backend}: {}", d.message()))
            }
            _ => StoreError::Db(e),
        }
    }
}

impl StoreError {
    /// The stored data is wrong (not the database unavailable): reading it again cannot help.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt(_))
    }
}

/// A column of a stored row whose value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {id} of table `{table}` has {column} `{value}`, which {problem}")]
pub struct Corrupt {
    /// The table.
    pub table: &'static str,
    /// The row's id (a token's name for `api_tokens`).
    pub id: String,
    /// The column.
    pub column: &'static str,
    /// The value as stored.
    pub value: String,
    /// What is wrong with it: "is not a task state", "does not parse: …".
    pub problem: String,
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The store interface shared by the SQLite and PostgreSQL backends.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// How many scheduler loops claim and fire batches at once.
    fn firing_loops(&self) -> usize;

    /// Apply embedded migrations.
    async fn migrate(&self) -> Result<()>;

    /// True when the database answers and migrations are applied.
    async fn ready(&self) -> Result<bool>;

    /// Store a workflow source; returns the existing row when the hash is known, else a new
    /// version numbered one above the highest.
    async fn put_workflow_version(
        &self,
        workflow_id: &str,
        hash: &str,
        source: &str,
        at: Millis,
    ) -> Result<VersionRow>;

    /// All versions of a workflow, oldest first.
    async fn workflow_versions(&self, workflow_id: &str) -> Result<Vec<VersionRow>>;

    /// One version by row id.
    async fn workflow_version(&self, id: i64) -> Result<Option<VersionRow>>;

    /// Create a round with its tasks and timers and an audit entry in one transaction.
    /// Returns None (and changes nothing) when `kickoff_key` is already used.
    async fn create_round(
        &self,
        round: NewRound,
        tasks: Vec<NewTask>,
        timers: Vec<NewTimer>,
        audit: AuditEntry,
    ) -> Result<Option<i64>>;

    /// One round.
    async fn round(&self, id: i64) -> Result<Option<RoundRow>>;

    /// All rounds, newest first.
    async fn rounds(&self) -> Result<Vec<RoundRow>>;

    /// Set a round's status; cancelling also cancels its pending timers and open/waiting
    /// tasks.
    async fn set_round_status(&self, id: i64, status: RoundStatus, audit: AuditEntry)
    -> Result<()>;

    /// Tasks of a round, in creation order.
    async fn tasks(&self, round_id: i64) -> Result<Vec<TaskRow>>;

    /// One task.
    async fn task(&self, id: i64) -> Result<Option<TaskRow>>;

    /// Several tasks by id in one query (missing ids are absent), so firing a batch of
    /// timers reads their tasks at once instead of one round trip each.
    async fn tasks_by_ids(&self, ids: &[i64]) -> Result<Vec<TaskRow>>;

    /// A task by round and key.
    async fn task_by_key(&self, round_id: i64, key: &str) -> Result<Option<TaskRow>>;

    /// History of a task, oldest first.
    async fn task_history(&self, task_id: i64) -> Result<Vec<HistoryRow>>;

    /// Apply a task state change atomically (see [`Transition`]).
    async fn transition(&self, t: Transition) -> Result<TaskRow> {
        self.transition_with(t, &[], &|_| Decided::default()).await
    }

    /// [`transition`](Self::transition), and in the same transaction: lock the task's round
    /// (every transition does, so transitions of one round are serialised), read the round's
    /// tasks whose workflow task id is in `read` (after the change), and apply what `decide`
    /// makes of them. Nothing is read or decided when `read` is empty.
    async fn transition_with(
        &self,
        t: Transition,
        read: &[String],
        decide: Decide<'_>,
    ) -> Result<TaskRow>;

    /// Timers of these tasks, any state, by task then due instant.
    async fn task_timers(&self, task_ids: &[i64]) -> Result<Vec<TimerRow>>;

    /// Insert timers whose keys are new; returns how many were inserted.
    async fn add_timers(&self, timers: Vec<NewTimer>) -> Result<u64>;

    /// Claim up to `limit` timers due at `now`: pending ones, and running ones whose lease
    /// expired (a crashed daemon's). Atomic across daemons (`FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, `BEGIN IMMEDIATE` on SQLite). Increments `attempts`. Claimed rows that
    /// do not parse are returned apart ([`ClaimedTimers::corrupt`]), still claimed.
    async fn claim_due_timers(
        &self,
        now: Millis,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<ClaimedTimers>;

    /// Mark a claimed timer fired and apply its effects in one transaction. Returns false
    /// (and applies nothing) when `owner` no longer holds the claim.
    async fn fire_timer(
        &self,
        timer_id: i64,
        owner: &str,
        now: Millis,
        effects: FireEffects,
    ) -> Result<bool>;

    /// [`fire_timer`](Self::fire_timer) for several claimed timers in one transaction (a
    /// commit per timer caps the firing rate). Returns, in order, whether each fired; one
    /// whose claim `owner` lost is skipped with its effects. Any error rolls back them all.
    async fn fire_timers(
        &self,
        owner: &str,
        now: Millis,
        batch: &[(i64, FireEffects)],
    ) -> Result<Vec<bool>>;

    /// Give a claimed timer back (graceful shutdown) so another daemon can take it at once.
    async fn release_timer(&self, timer_id: i64, owner: &str) -> Result<()>;

    /// Make a pending timer due at `due_at` if it was due later (a blocked kickoff whose
    /// workflow became valid again fires at once); true when it moved. A timer that is
    /// claimed, fired or cancelled is left alone.
    async fn bring_forward_timer(&self, timer_id: i64, due_at: Millis) -> Result<bool>;

    /// The earliest instant at which some timer becomes claimable (pending due_at, or the
    /// lease expiry of a running one).
    async fn next_due_at(&self) -> Result<Option<Millis>>;

    /// Pending timers, earliest first, optionally of one round.
    async fn pending_timers(&self, round_id: Option<i64>, limit: i64) -> Result<Vec<TimerRow>>;

    /// Timers whose key starts with `prefix`, any state, ordered by due_at.
    async fn timers_with_prefix(&self, prefix: &str) -> Result<Vec<TimerRow>>;

    /// Outbox rows, in insertion order, with id greater than `after_id`.
    async fn outbox_after(&self, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>>;

    /// The outbox rows about one task, oldest first.
    async fn outbox_for_task(&self, task_id: i64) -> Result<Vec<OutboxRow>>;

    /// Put messages in the outbox outside a firing (a resend, the weekly summary), with
    /// their audit entry, in one transaction; a key already used is skipped.
    async fn enqueue(&self, rows: Vec<NewNotification>, audit: Option<AuditEntry>) -> Result<()>;

    /// Claim whole messages ready to send at `now` (see [`OutboxClaim`]): rows due (a
    /// reminder or escalation only once its digest is released, [`DigestHold`]) and rows
    /// whose lease expired, grouped by [`MessageKey`] with every row of each chosen message,
    /// at most `max_messages` and no more than each channel's shared budget allows; the
    /// budget is spent in the same transaction. Claims are serialised across daemons, so a
    /// message is never split between two. Does not count an attempt.
    async fn claim_outbox(&self, claim: &OutboxClaim) -> Result<ClaimedOutbox>;

    /// Right before a send: check that `owner` still holds every row of the message, extend
    /// its lease to `lease_until`, fix the Message-ID where none is set, and count one
    /// delivery attempt. False (and nothing changed) when any row was lost to another sender.
    async fn begin_attempt(
        &self,
        ids: &[i64],
        owner: &str,
        lease_until: Millis,
        message_id: &str,
    ) -> Result<bool>;

    /// Hand claimed rows back unsent (shutdown, a failed pass): pending again at once, no
    /// attempt counted. Returns how many rows `owner` still held.
    async fn release_outbox(&self, ids: &[i64], owner: &str) -> Result<u64>;

    /// Give back budget spent on messages that were not sent (claim lost, handed back).
    async fn refund_budget(&self, channel: &str, per_minute: u32, messages: u32) -> Result<()>;

    /// Record the outcome of an attempt for rows still claimed by `owner`; returns how many
    /// rows were updated.
    async fn settle_outbox(&self, ids: &[i64], owner: &str, outcome: Delivery) -> Result<u64>;

    /// The earliest instant some outbox row becomes sendable under `hold` (a held digest at
    /// its release), or a lease expires.
    async fn next_outbox_at(&self, hold: DigestHold) -> Result<Option<Millis>>;

    /// Store a new token (by hash) and an audit entry; [`StoreError::Exists`] if an
    /// unrevoked token has that name (a revoked token's name may be used again).
    async fn create_token(&self, token: TokenRow, audit: AuditEntry) -> Result<()>;

    /// The unrevoked token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;

    /// Every token, revoked ones included, by name.
    async fn tokens(&self) -> Result<Vec<TokenRow>>;

    /// Revoke the token `name` at `audit.at` and end its console sessions, with an audit
    /// entry; false (and nothing written) when no unrevoked token has that name.
    async fn revoke_token(&self, name: &str, audit: AuditEntry) -> Result<bool>;

    /// Record that token `name` was used at `at`.
    async fn token_used(&self, name: &str, at: Millis) -> Result<()>;

    /// Open a console session, with an audit entry.
    async fn create_session(&self, session: SessionRow, audit: AuditEntry) -> Result<()>;

    /// The session with this id hash and its token, if the session has not expired at
    /// `now` and its token is not revoked.
    async fn session(&self, id_hash: &str, now: Millis) -> Result<Option<(SessionRow, TokenRow)>>;

    /// Mark a session used at `last_seen`, to expire at `expires_at` unless used again.
    async fn touch_session(
        &self,
        id_hash: &str,
        last_seen: Millis,
        expires_at: Millis,
    ) -> Result<()>;

    /// End a session (sign-out); ends nothing when there is none.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    /// Remove the sessions that expired by `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Millis) -> Result<u64>;

    /// A setting, writing `default` first if it is not set yet (first writer wins across
    /// daemons); returns the stored value.
    async fn setting_or_insert(&self, key: &str, default: &str) -> Result<String>;

    /// Set a setting (insert or replace).
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;

    /// A setting's value.
    async fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Every setting whose key starts with `prefix`, by key.
    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>>;

    /// Remove every setting whose key starts with `prefix`; returns how many.
    async fn delete_settings_with_prefix(&self, prefix: &str) -> Result<u64>;

    /// Apply a re-projection of a round in one transaction.
    async fn reproject(&self, r: Reprojection) -> Result<()>;

    /// Counts for the metrics endpoint, at `now`.
    async fn counts(&self, now: Millis) -> Result<Counts>;

    /// Replace a pending timer: cancel `old` and insert `new` with `audit`, in one
    /// transaction. Returns false (and changes nothing) when `old` is no longer pending,
    /// so of several daemons re-projecting the same timer exactly one replaces it.
    async fn replace_timer(&self, old: i64, new: NewTimer, audit: AuditEntry) -> Result<bool>;

    /// Append an audit entry on its own.
    async fn append_audit(&self, entry: AuditEntry) -> Result<()>;

    /// Audit entries with id greater than `after_id`, oldest first.
    async fn audit_after(&self, after_id: i64, limit: i64) -> Result<Vec<AuditRow>>;

    /// People of the reserve pool, by unit, tier and name.
    async fn people(&self, filter: &PeopleFilter) -> Result<Vec<PersonRow>>;

    /// One person.
    async fn person(&self, id: i64) -> Result<Option<PersonRow>>;

    /// Add people and update others (an import) in one transaction, each with its audit
    /// entry (`person:ID`: the new record, or the old and new values of what changed).
    /// Returns the new ids and how many updates changed something.
    async fn write_people(
        &self,
        adds: &[crate::core::pool::Person],
        updates: &[(i64, crate::core::pool::Person)],
        who: &PoolWrite,
    ) -> Result<(Vec<i64>, u64)>;

    /// Replace a person's record (an edit, a removal) with its audit entry; the row as it
    /// now is. Nothing is written (nor audited) when nothing changes.
    async fn update_person(
        &self,
        id: i64,
        person: &crate::core::pool::Person,
        who: &PoolWrite,
    ) -> Result<PersonRow>;

    /// The audit entries about a person (edits and recorded events), oldest first.
    async fn person_audit(&self, id: i64) -> Result<Vec<AuditRow>>;

    /// Record an event about a person, with its audit entry.
    async fn record_event(&self, event: &NewEvent, who: &PoolWrite) -> Result<EventRow>;

    /// Recorded events, by date.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>>;

    /// Store a branch's ratings for a year (replacing that year's earlier ones) with their
    /// audit entries, and record each 调整 event owed that was not recorded before; returns
    /// the events recorded now.
    async fn write_ratings(&self, ratings: &RatingsWrite, who: &PoolWrite)
    -> Result<Vec<EventRow>>;

    /// Assessment results by year, branch and name.
    async fn results(&self, filter: &ResultFilter) -> Result<Vec<ResultRow>>;

    /// A task's submissions, oldest first.
    async fn task_submissions(&self, task_id: i64) -> Result<Vec<SubmissionRow>>;

    /// A round's submissions, oldest first.
    async fn round_submissions(&self, round_id: i64) -> Result<Vec<SubmissionRow>>;

    /// The task instances made for a person and done, of these task ids in rounds of
    /// `workflow`: (person id, when done). What a counting rule counts.
    async fn person_tasks_done(
        &self,
        workflow: &str,
        tasks: &[String],
    ) -> Result<Vec<(i64, Millis)>>;

    /// Begin creating a round whose rows are written slice by slice in one transaction
    /// (a round with a task per person of a city's pool): the round's row is inserted now;
    /// None (and nothing written) when `kickoff_key` is already used. Nothing is kept
    /// unless [`RoundWriter::commit`] succeeds.
    async fn begin_round(&self, round: NewRound) -> Result<Option<Box<dyn RoundWriter + '_>>>;

    /// Begin writing people (an import) in one transaction, slice by slice. Nothing is
    /// kept unless [`PeopleWriter::commit`] succeeds.
    async fn begin_people(&self, who: PoolWrite) -> Result<Box<dyn PeopleWriter + '_>>;

    /// The people in the pool (在库) as the planner sees them (id, name, unit, tier), by
    /// unit, tier, name: only the columns a round's tasks per person need.
    async fn pool_refs(&self) -> Result<Vec<crate::core::plan::PersonRef>>;

    /// Every person's (id, name, unit, birth), removed ones included: what an import
    /// matches a roster's rows against.
    async fn people_keys(&self) -> Result<Vec<(i64, String, String, chrono::NaiveDate)>>;
}

/// A round being created in one open transaction (see [`Store::begin_round`]). Dropped
/// without [`commit`](RoundWriter::commit), everything it wrote is rolled back.
#[async_trait]
pub trait RoundWriter: Send {
    /// The round's id.
    fn id(&self) -> i64;

    /// Write some of the round's tasks and timers. A timer's task may be in this slice or
    /// an earlier one.
    async fn add(&mut self, tasks: &[NewTask], timers: &[NewTimer]) -> Result<()>;

    /// Write the round's audit entry and commit.
    async fn commit(self: Box<Self>, audit: AuditEntry) -> Result<()>;
}

/// People being written in one open transaction (see [`Store::begin_people`]), each with
/// its audit entry. Dropped without [`commit`](PeopleWriter::commit), everything it wrote
/// is rolled back.
#[async_trait]
pub trait PeopleWriter: Send {
    /// One person as this transaction sees it (locked under PostgreSQL until the end).
    async fn person(&mut self, id: i64) -> Result<Option<PersonRow>>;

    /// Add people (multi-row statements); their ids in order.
    async fn add(&mut self, people: &[crate::core::pool::Person]) -> Result<Vec<i64>>;

    /// Replace a person's record; false (nothing written) when nothing changed.
    async fn update(&mut self, id: i64, person: &crate::core::pool::Person) -> Result<bool>;

    /// Commit.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A database URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Open the store named by a URL (`sqlite://path`, `sqlite::memory:`, `postgres://...`).
/// SQLite files are created on first use, in WAL mode, and locked against a second daemon.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}

/// Open the store for a short-lived command next to a running daemon: same as [`open`]
/// but without taking the SQLite single-daemon lock (SQLite itself serialises writers).
pub async fn open_shared(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_shared(url).await?))
    } else {
        open(url).await
    }
}
