//! The store: everything durable. One interface, two backends (SQLite, PostgreSQL).
//!
//! Architecture Invariant: the `timers` table is the source of truth for every instant
//! the daemon acts on, recurring kickoffs included; nothing that must fire lives only in
//! memory. Every state change and the rows it causes (timers, outbox, history, audit) are
//! written in one transaction.
//!
//! Times are UTC epoch milliseconds (`i64`) in both databases: index-friendly and
//! identical across backends. The clock is passed in by the caller; the store never reads it.

use async_trait::async_trait;
use std::sync::Arc;

pub mod budget;
mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    /// A row that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// A task is not in a state that allows this change.
    #[error("task {task} is {state}; cannot {action}")]
    WrongState {
        /// Task id.
        task: i64,
        /// Its current state.
        state: String,
        /// What was asked.
        action: String,
    },
    /// The database server answered but refuses this URL for good (the database does not
    /// exist, unknown user, wrong password): retrying cannot help.
    #[error("{0}")]
    Refused(String),
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

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A stored version of a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Row id (rounds pin to it).
    pub id: i64,
    /// Workflow id.
    pub workflow_id: String,
    /// 1, 2, 3 ... per workflow.
    pub version: i64,
    /// SHA-256 of the source.
    pub hash: String,
    /// The exact file text.
    pub source: String,
    /// When first stored.
    pub created_at: Millis,
}

/// A round to create.
#[derive(Debug, Clone)]
pub struct NewRound {
    /// Short unique tag chosen by the engine; prefixes the round's timer keys so they are
    /// unique before the round has a row id.
    pub tag: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Pinned workflow version row id.
    pub version_id: i64,
    /// Start date `YYYY-MM-DD`.
    pub start_date: String,
    /// Parameter overrides, JSON object.
    pub params_json: String,
    /// Unit ids taking part, JSON array, or None for all.
    pub units_json: Option<String>,
    /// For rounds started by a schedule: the kickoff timer key (unique: a kickoff starts one round).
    pub kickoff_key: Option<String>,
    /// When created.
    pub created_at: Millis,
}

/// A stored round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRow {
    /// Round id.
    pub id: i64,
    /// Unique tag (prefix of the round's timer keys).
    pub tag: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Pinned version row id.
    pub version_id: i64,
    /// Start date `YYYY-MM-DD`.
    pub start_date: String,
    /// Parameter overrides, JSON object.
    pub params_json: String,
    /// Units taking part, JSON array, or None.
    pub units_json: Option<String>,
    /// `running`, `finished` or `cancelled`.
    pub status: String,
    /// When created.
    pub created_at: Millis,
    /// Kickoff timer key, for scheduled rounds.
    pub kickoff_key: Option<String>,
}

/// Task states.
pub mod task_state {
    /// Owed and not done.
    pub const OPEN: &str = "open";
    /// Waits for another task's completion or an outside event before it is owed.
    pub const WAITING: &str = "waiting";
    /// Done by its assignee.
    pub const DONE: &str = "done";
    /// Excused by the office.
    pub const WAIVED: &str = "waived";
    /// Withdrawn (round cancelled, branch removed).
    pub const CANCELLED: &str = "cancelled";
}

/// Timer states.
pub mod timer_state {
    /// Waiting for its instant.
    pub const PENDING: &str = "pending";
    /// Claimed by a daemon (see lease columns).
    pub const RUNNING: &str = "running";
    /// Done; never fires again.
    pub const FIRED: &str = "fired";
    /// Withdrawn (task completed, round cancelled).
    pub const CANCELLED: &str = "cancelled";
}

/// A task instance to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Key unique within the round (`task@unit`).
    pub key: String,
    /// Task id in the workflow.
    pub task: String,
    /// Stage id.
    pub stage: String,
    /// Title.
    pub title: String,
    /// `unit` or `role`.
    pub assignee_kind: String,
    /// Unit or role id.
    pub assignee_id: String,
    /// Display name.
    pub assignee_name: String,
    /// Deadline, when known.
    pub due_at: Option<Millis>,
    /// `open` or `waiting`.
    pub state: String,
    /// The deadline was counted over a year without a holiday file (provisional calendar).
    pub provisional: bool,
}

/// A stored task instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Task row id.
    pub id: i64,
    /// Round id.
    pub round_id: i64,
    /// Key unique within the round.
    pub key: String,
    /// Task id in the workflow.
    pub task: String,
    /// Stage id.
    pub stage: String,
    /// Title.
    pub title: String,
    /// `unit` or `role`.
    pub assignee_kind: String,
    /// Unit or role id.
    pub assignee_id: String,
    /// Display name.
    pub assignee_name: String,
    /// Deadline.
    pub due_at: Option<Millis>,
    /// See [`task_state`].
    pub state: String,
    /// When done/waived.
    pub completed_at: Option<Millis>,
    /// Last change.
    pub updated_at: Millis,
    /// The deadline was counted over a year without a holiday file (provisional calendar).
    pub provisional: bool,
}

/// One entry of a task's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// When.
    pub at: Millis,
    /// Previous state.
    pub from_state: String,
    /// New state.
    pub to_state: String,
    /// Who (token name, `link:unit`, `cli`, `daemon`).
    pub actor: String,
    /// Free text.
    pub note: Option<String>,
}

/// A timer to create.
#[derive(Debug, Clone)]
pub struct NewTimer {
    /// Globally unique key (`r{round}/{planned key}`, `kickoff:{workflow}:{millis}`); inserting
    /// an existing key is a no-op, which makes materialisation idempotent.
    pub key: String,
    /// Round, for round timers.
    pub round_id: Option<i64>,
    /// Task key within the round, for task timers (resolved to the task row id on insert).
    pub task_key: Option<String>,
    /// `stage_open`, `stage_close`, `reminder`, `deadline`, `overdue`, `escalation`, `kickoff`.
    pub kind: String,
    /// When it fires.
    pub due_at: Millis,
    /// Kind-specific data, JSON.
    pub payload_json: String,
}

/// A stored timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    /// Row id.
    pub id: i64,
    /// Unique key.
    pub key: String,
    /// Round.
    pub round_id: Option<i64>,
    /// Task row id.
    pub task_id: Option<i64>,
    /// Kind.
    pub kind: String,
    /// When it fires.
    pub due_at: Millis,
    /// Kind-specific data, JSON.
    pub payload_json: String,
    /// See [`timer_state`].
    pub state: String,
    /// Claims so far.
    pub attempts: i64,
    /// Daemon holding the claim.
    pub lease_owner: Option<String>,
    /// Claim expiry.
    pub lease_until: Option<Millis>,
    /// When it fired.
    pub fired_at: Option<Millis>,
}

/// A notification to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Idempotency key, unique (also the source of the email Message-ID).
    pub key: String,
    /// Round.
    pub round_id: Option<i64>,
    /// Task row id.
    pub task_id: Option<i64>,
    /// `reminder`, `due_today`, `overdue`, `escalation`, `kickoff` ...
    pub kind: String,
    /// `email`, `webhook` or `log`.
    pub channel: String,
    /// Address: email address, webhook URL, or a name for `log`.
    pub address: String,
    /// Recipient as JSON (party and contact).
    pub recipient_json: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// HTML body.
    pub html: String,
    /// The task this is about, as a JSON message item (`{}` for none).
    pub item_json: String,
    /// When it should go out.
    pub not_before: Millis,
    /// When created.
    pub created_at: Millis,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Idempotency key.
    pub key: String,
    /// Round.
    pub round_id: Option<i64>,
    /// Task row id.
    pub task_id: Option<i64>,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: String,
    /// Address.
    pub address: String,
    /// Recipient JSON.
    pub recipient_json: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// `pending`, `sending`, `sent`, `failed`, `dead`.
    pub state: String,
    /// Delivery attempts.
    pub attempts: i64,
    /// Not before this instant.
    pub not_before: Millis,
    /// When created.
    pub created_at: Millis,
    /// When delivered.
    pub sent_at: Option<Millis>,
    /// Last error text.
    pub last_error: Option<String>,
    /// HTML body.
    pub html: String,
    /// The task this is about, JSON.
    pub item_json: String,
    /// Message-ID fixed at the first delivery attempt (shared by a digest's rows).
    pub message_id: Option<String>,
    /// Earliest next attempt after a transient failure.
    pub next_attempt_at: Option<Millis>,
}

/// An administrator token as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Unique name, e.g. `zzb-ma`.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    /// `admin` (read and change) or `read`.
    pub rights: String,
    /// When created.
    pub created_at: Millis,
    /// When revoked, if it was.
    pub revoked_at: Option<Millis>,
}

/// A running round re-projected onto a (possibly new) workflow version, directory or
/// calendar, applied atomically. Done tasks, fired timers and sent messages are untouched.
#[derive(Debug, Clone, Default)]
pub struct Reprojection {
    /// Round id.
    pub round_id: i64,
    /// The version the round is pinned to afterwards.
    pub version_id: i64,
    /// The round's unit list afterwards (JSON array) or None for all.
    pub units_json: Option<String>,
    /// Pending timers to cancel (moved or vanished).
    pub cancel_timers: Vec<i64>,
    /// Task instances that appear.
    pub new_tasks: Vec<NewTask>,
    /// Open or waiting tasks that vanish (cancelled, with history).
    pub cancel_tasks: Vec<i64>,
    /// New deadlines of open or waiting tasks, with their provisional mark.
    pub due_changes: Vec<(i64, Option<Millis>, bool)>,
    /// New titles of open or waiting tasks (a new workflow version renamed them).
    pub title_changes: Vec<(i64, String)>,
    /// Timers that appear or replace moved ones.
    pub new_timers: Vec<NewTimer>,
    /// When.
    pub at: Millis,
    /// Who.
    pub actor: String,
    /// Why (task history note).
    pub note: Option<String>,
    /// Audit entries (one per change, with old and new instants).
    pub audit: Vec<AuditEntry>,
}

/// Sizes for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Timers waiting for their instant.
    pub pending_timers: i64,
    /// Open tasks past their deadline.
    pub overdue_tasks: i64,
    /// Outbox rows not yet delivered.
    pub outbox_pending: i64,
    /// Dead-lettered outbox rows.
    pub outbox_dead: i64,
}

/// Outbox kinds that are merged into one message per recipient and clock hour, by class:
/// a recipient's reminders (reminder, due today, overdue) form one digest, its escalations
/// another. The claim SQL and the partial indexes of `0007_outbox_digests_and_budget.sql`
/// spell the same list.
pub const DIGEST_CLASSES: [(&str, &[&str]); 2] = [
    ("remind", &["reminder", "due_today", "overdue"]),
    ("escalate", &["escalation"]),
];

/// The digest class of an outbox kind, if it is merged at all.
pub fn digest_class(kind: &str) -> Option<&'static str> {
    DIGEST_CLASSES
        .iter()
        .find(|(_, kinds)| kinds.contains(&kind))
        .map(|(class, _)| *class)
}

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// How a reminder or escalation waits for companions before it is sent (docs/decisions.md
/// §22): the first row of a recipient's digest waits `window_ms`, but never past the end of
/// its clock hour; every row of that recipient, class and hour due by then goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestHold {
    /// How long the first row of a digest waits for companions; 0 merges only rows that
    /// are due together.
    pub window_ms: i64,
    /// The time zone's UTC offset modulo one hour: local clock hours start this long after
    /// UTC hour boundaries (0 for whole-hour zones such as Asia/Shanghai).
    pub hour_shift_ms: i64,
}

impl DigestHold {
    /// A hold of `window_ms` in a time zone whose UTC offset is `offset_ms` now.
    pub fn new(window_ms: i64, offset_ms: i64) -> DigestHold {
        DigestHold {
            window_ms: window_ms.clamp(0, HOUR_MS),
            hour_shift_ms: offset_ms.rem_euclid(HOUR_MS),
        }
    }

    /// Start of the local clock hour that contains `t`.
    pub fn hour_start(&self, t: Millis) -> Millis {
        (t + self.hour_shift_ms).div_euclid(HOUR_MS) * HOUR_MS - self.hour_shift_ms
    }

    /// When a digest whose first row became due at `t` is sent: after the window, or at the
    /// end of `t`'s hour if that comes first.
    pub fn release(&self, t: Millis) -> Millis {
        (t.saturating_add(self.window_ms)).min(self.hour_start(t) + HOUR_MS)
    }

    /// The latest due instant of a first row whose digest may go at `now`: a row due at
    /// `t` is released iff `t <= ripe(now)` (its window has passed, or its hour has ended).
    pub fn ripe(&self, now: Millis) -> Millis {
        (now - self.window_ms).max(self.hour_start(now) - 1)
    }
}

/// What the outbox sender asks of one claim ([`Store::claim_outbox`]).
#[derive(Debug, Clone)]
pub struct OutboxClaim {
    /// The sender's clock.
    pub now: Millis,
    /// Who claims (the lease owner).
    pub owner: String,
    /// Lease length; the sender renews it right before each send
    /// ([`Store::begin_attempt`]).
    pub lease_ms: i64,
    /// How digest rows wait for companions.
    pub hold: DigestHold,
    /// Most messages to claim (a digest of several rows is one message).
    pub max_messages: usize,
    /// Messages per minute per channel, a budget shared by every daemon on the database;
    /// channels not listed are not limited.
    pub per_minute: std::collections::BTreeMap<String, u32>,
}

/// What a claim returned.
#[derive(Debug, Clone, Default)]
pub struct ClaimedOutbox {
    /// Claimed messages, each the rows that go out together (one, or a digest's rows, or
    /// the rows of an already fixed Message-ID), in due order; rows in id order.
    pub messages: Vec<Vec<OutboxRow>>,
    /// When the budget of a channel that had messages left unclaimed refills.
    pub throttled_until: Option<Millis>,
}

/// How rows go out together: the key of one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MessageKey {
    /// Rows whose Message-ID is already fixed (a retry, a crash-repeat).
    Fixed(String),
    /// A recipient's digest of one class and clock hour.
    Digest {
        /// `email`, `webhook`, `log`.
        channel: String,
        /// Where it goes.
        address: String,
        /// See [`DIGEST_CLASSES`].
        class: &'static str,
        /// Start of the clock hour.
        hour: Millis,
    },
    /// A row that goes alone.
    Row(i64),
}

impl MessageKey {
    /// The message a row belongs to.
    pub(crate) fn of(
        id: i64,
        kind: &str,
        channel: &str,
        address: &str,
        not_before: Millis,
        message_id: Option<&str>,
        hold: &DigestHold,
    ) -> MessageKey {
        if let Some(m) = message_id {
            return MessageKey::Fixed(m.to_string());
        }
        match digest_class(kind) {
            Some(class) => MessageKey::Digest {
                channel: channel.to_string(),
                address: address.to_string(),
                class,
                hour: hold.hour_start(not_before),
            },
            None => MessageKey::Row(id),
        }
    }
}

/// How a delivery attempt ended, for [`Store::settle_outbox`].
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Delivered at this instant.
    Sent {
        /// When.
        at: Millis,
    },
    /// Transient failure: try again from `at`.
    Retry {
        /// Next attempt.
        at: Millis,
        /// What went wrong.
        error: String,
    },
    /// Given up (permanent failure or too many attempts); `notices` (telling the office)
    /// are enqueued in the same transaction.
    Dead {
        /// What went wrong.
        error: String,
        /// Dead-letter notices to enqueue.
        notices: Vec<NewNotification>,
    },
}

/// An append-only audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: Millis,
    /// Who.
    pub actor: String,
    /// What, e.g. `round.start`, `task.complete`, `timer.fire`.
    pub action: String,
    /// What it concerns, e.g. `round:3`, `task:17`.
    pub subject: String,
    /// Details, JSON.
    pub detail_json: String,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Row id (monotonic).
    pub id: i64,
    /// The entry.
    pub entry: AuditEntry,
}

/// A task that stops waiting and becomes owed, with its timers.
#[derive(Debug, Clone)]
pub struct Activation {
    /// Round.
    pub round_id: i64,
    /// Task key within the round.
    pub task_key: String,
    /// Its deadline.
    pub due_at: Millis,
    /// The deadline was counted over a year without a holiday file.
    pub provisional: bool,
    /// Its timers.
    pub timers: Vec<NewTimer>,
}

/// A task state change and everything it causes, applied atomically.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Task row id.
    pub task_id: i64,
    /// Allowed current states; anything else fails with [`StoreError::WrongState`].
    pub from: Vec<String>,
    /// New state.
    pub to: String,
    /// When.
    pub at: Millis,
    /// Who.
    pub actor: String,
    /// Why.
    pub note: Option<String>,
    /// Verb for the error message (`complete`, `waive`, `reopen`).
    pub action: String,
    /// Cancel the task's pending timers (completing/waiving stops reminders and escalations).
    pub cancel_timers: bool,
    /// Timers to (re)create for this task (reopen).
    pub new_timers: Vec<NewTimer>,
    /// Dependent tasks that become owed now.
    pub activate: Vec<Activation>,
    /// A new deadline for the task (reopening with a new date), and whether it was counted
    /// over a provisional calendar year.
    pub set_due: Option<(Millis, bool)>,
    /// Audit entry.
    pub audit: AuditEntry,
}

/// What a transition's caller decides inside its transaction, from the round's task rows as
/// read there (see [`Store::transition_with`]).
#[derive(Debug, Clone, Default)]
pub struct Decided {
    /// Waiting tasks that become owed.
    pub activate: Vec<Activation>,
    /// Audit entries (activations, and activations that could not be planned).
    pub audit: Vec<AuditEntry>,
}

/// The decision run inside a transition's transaction: given the round's rows of the
/// workflow tasks asked for (the changed task already in its new state), what else changes.
pub type Decide<'a> = &'a (dyn Fn(&[TaskRow]) -> Decided + Send + Sync);

/// What firing one timer causes, applied atomically with marking it fired.
#[derive(Debug, Clone, Default)]
pub struct FireEffects {
    /// Notifications to enqueue (existing keys are skipped).
    pub notifications: Vec<NewNotification>,
    /// Timers to add (e.g. the next kickoff).
    pub timers: Vec<NewTimer>,
    /// A round to start (a kickoff), with its tasks and timers.
    pub round: Option<(NewRound, Vec<NewTask>, Vec<NewTimer>)>,
    /// Audit entries.
    pub audit: Vec<AuditEntry>,
}

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

    /// Set a round's status (`finished`, `cancelled`); cancelling also cancels its pending
    /// timers and open/waiting tasks.
    async fn set_round_status(&self, id: i64, status: &str, audit: AuditEntry) -> Result<()>;

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
    /// PostgreSQL, `BEGIN IMMEDIATE` on SQLite). Increments `attempts`.
    async fn claim_due_timers(
        &self,
        now: Millis,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<TimerRow>>;

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

    /// Store a new token (by hash) and an audit entry; fails if the name exists.
    async fn create_token(&self, token: TokenRow, audit: AuditEntry) -> Result<()>;

    /// The unrevoked token with this hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;

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

#[cfg(test)]
mod tests {
    use super::{DigestHold, digest_class};

    #[test]
    fn a_digest_is_released_after_its_window_or_at_the_end_of_its_hour() {
        let h = DigestHold::new(15 * 60_000, 8 * 3_600_000); // Asia/Shanghai
        let at = |hh: i64, mm: i64| hh * 3_600_000 + mm * 60_000;
        assert_eq!(h.release(at(10, 0)), at(10, 15));
        assert_eq!(h.release(at(10, 50)), at(11, 0), "never past its hour");
        assert_eq!(h.ripe(at(10, 15)), at(10, 0));
        assert_eq!(
            h.ripe(at(11, 0)),
            at(11, 0) - 1,
            "the whole last hour is released"
        );
        for t in [at(10, 0), at(10, 7), at(10, 50), at(10, 59)] {
            let r = h.release(t);
            assert!(
                t <= h.ripe(r) && t > h.ripe(r - 1),
                "{t}: ripe exactly at {r}"
            );
        }
    }

    #[test]
    fn clock_hours_follow_a_half_hour_time_zone() {
        let h = DigestHold::new(0, 5 * 3_600_000 + 30 * 60_000); // Asia/Kolkata
        assert_eq!(h.hour_start(3 * 3_600_000), 2 * 3_600_000 + 30 * 60_000);
    }

    #[test]
    fn reminders_and_escalations_are_digested_separately_and_nothing_else_is() {
        assert_eq!(digest_class("due_today"), Some("remind"));
        assert_eq!(digest_class("escalation"), Some("escalate"));
        assert_eq!(digest_class("kickoff"), None);
        assert_eq!(digest_class("dead_letter"), None);
    }
}
