//! What the store reads and writes: the row types, the requests that change several rows at
//! once, and the conversion from the database's text to them.
//!
//! The sqlx row structs (`*Db`) are text and integers exactly as stored; converting one to
//! its domain row parses every state, kind, instant and JSON column, and a value that does
//! not parse is [`StoreError::Corrupt`] naming the table, the row, the column and the
//! value. Nothing is read as a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Corrupt, Millis, Result, StoreError};
use crate::core::directory::Party;
use crate::core::plan::PersonRef;
use crate::core::state::{
    AssigneeKind, MessageKind, OutboxChannel, OutboxState, Rights, RoundStatus, Stored, TaskState,
    TimerKind, TimerState,
};

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
    /// Parameter overrides.
    pub params: BTreeMap<String, String>,
    /// Unit ids taking part, or None for all.
    pub units: Option<Vec<String>>,
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
    /// Start date `YYYY-MM-DD` (checked to be a date when read).
    pub start_date: String,
    /// Parameter overrides.
    pub params: BTreeMap<String, String>,
    /// Units taking part, or None for all.
    pub units: Option<Vec<String>>,
    /// Running, finished or cancelled.
    pub status: RoundStatus,
    /// When created.
    pub created_at: Millis,
    /// Kickoff timer key, for scheduled rounds.
    pub kickoff_key: Option<String>,
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
    /// A unit or a role.
    pub assignee_kind: AssigneeKind,
    /// Unit or role id.
    pub assignee_id: String,
    /// Display name.
    pub assignee_name: String,
    /// Deadline, when known.
    pub due_at: Option<Millis>,
    /// Open or waiting.
    pub state: TaskState,
    /// The deadline was counted over a year without a holiday file (provisional calendar).
    pub provisional: bool,
    /// The person a task `{each: …}` is made for.
    pub person: Option<PersonRef>,
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
    /// A unit or a role.
    pub assignee_kind: AssigneeKind,
    /// Unit or role id.
    pub assignee_id: String,
    /// Display name.
    pub assignee_name: String,
    /// Deadline.
    pub due_at: Option<Millis>,
    /// Where it stands.
    pub state: TaskState,
    /// When done/waived.
    pub completed_at: Option<Millis>,
    /// Last change.
    pub updated_at: Millis,
    /// The deadline was counted over a year without a holiday file (provisional calendar).
    pub provisional: bool,
    /// The person a task `{each: …}` is made for, as when the task was made.
    pub person: Option<PersonRef>,
}

/// One entry of a task's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// When.
    pub at: Millis,
    /// Previous state.
    pub from_state: TaskState,
    /// New state.
    pub to_state: TaskState,
    /// Who (token name, `link:unit`, `cli`, `daemon`).
    pub actor: String,
    /// Free text.
    pub note: Option<String>,
}

/// What a timer carries besides its kind and instant (stored as JSON; every field is
/// optional and unknown fields are ignored, so older rows read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerPayload {
    /// Workflow, for kickoffs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Stage id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Task key within the round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Who is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Party>,
    /// For a retried or moved kickoff: the scheduled instant of the round it still owes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_ms: Option<Millis>,
    /// For a retried kickoff: why its round could not start (`not_loaded`, `plan_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// When the kickoff first failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_since: Option<Millis>,
    /// The error, for a round that could not be planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The instant was counted over a year without a holiday file (provisional calendar).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
    /// The calendar year a missing-calendar notice is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
}

impl TimerPayload {
    /// As stored.
    pub fn to_json(&self) -> String {
        // Strings, integers and booleans only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
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
    /// What it does.
    pub kind: TimerKind,
    /// When it fires.
    pub due_at: Millis,
    /// Kind-specific data.
    pub payload: TimerPayload,
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
    /// What it does.
    pub kind: TimerKind,
    /// When it fires.
    pub due_at: Millis,
    /// Kind-specific data.
    pub payload: TimerPayload,
    /// Where it stands.
    pub state: TimerState,
    /// Claims so far.
    pub attempts: i64,
    /// Daemon holding the claim.
    pub lease_owner: Option<String>,
    /// Claim expiry.
    pub lease_until: Option<Millis>,
    /// When it fired.
    pub fired_at: Option<Millis>,
}

/// What a timer claim returned ([`Store::claim_due_timers`](super::Store::claim_due_timers)).
#[derive(Debug, Clone, Default)]
pub struct ClaimedTimers {
    /// Claimed timers, by due instant and id.
    pub timers: Vec<TimerRow>,
    /// Claimed rows that do not parse. The caller fires each with an error entry instead of
    /// effects: retrying cannot mend them, and left claimed they would come back with every
    /// lease.
    pub corrupt: Vec<CorruptTimer>,
}

/// A claimed timer row that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptTimer {
    /// Row id.
    pub id: i64,
    /// Its key.
    pub key: String,
    /// Its due instant as stored.
    pub due_at: i64,
    /// What does not parse.
    pub error: Corrupt,
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
    /// What it says (the template).
    pub kind: MessageKind,
    /// How it goes.
    pub channel: OutboxChannel,
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
    /// What it says.
    pub kind: MessageKind,
    /// How it goes.
    pub channel: OutboxChannel,
    /// Address.
    pub address: String,
    /// Recipient JSON.
    pub recipient_json: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Where it stands.
    pub state: OutboxState,
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
    /// Read and change, or read only.
    pub rights: Rights,
    /// When created.
    pub created_at: Millis,
    /// When revoked, if it was.
    pub revoked_at: Option<Millis>,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<Millis>,
    /// When it was last used (signing in, or a request; updated at most every few
    /// minutes), if ever.
    pub last_used_at: Option<Millis>,
}

impl TokenRow {
    /// Whether the token is past its expiry at `now`.
    pub fn expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A console session as stored: only a hash of its id, never the id or the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the session id the cookie holds.
    pub id_hash: String,
    /// The token it was opened with.
    pub token_name: String,
    /// When it was opened.
    pub created_at: Millis,
    /// When it ends unless used again (idle expiry).
    pub expires_at: Millis,
    /// When it was last used.
    pub last_seen: Millis,
}

/// A running round re-projected onto a (possibly new) workflow version, directory or
/// calendar, applied atomically. Done tasks, fired timers and sent messages are untouched.
#[derive(Debug, Clone, Default)]
pub struct Reprojection {
    /// Round id.
    pub round_id: i64,
    /// The version the round is pinned to afterwards.
    pub version_id: i64,
    /// The round's unit list afterwards, or None for all.
    pub units: Option<Vec<String>>,
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
    pub from: Vec<TaskState>,
    /// New state.
    pub to: TaskState,
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
    /// A hand-in recorded or decided with the change, in its transaction: a task is never
    /// 已提交 without its submission, nor reopened or done with it undecided.
    pub submission: Option<SubmissionChange>,
}

/// What a transition does to the task's submissions.
#[derive(Debug, Clone)]
pub enum SubmissionChange {
    /// The branch's hand-in, with its own audit entry.
    Insert(super::NewSubmission, AuditEntry),
    /// The office's decision on submission `id`; the transition fails (nothing written)
    /// when it was already decided.
    Decide {
        /// Submission row id.
        id: i64,
        /// Accepted or returned.
        outcome: super::Outcome,
        /// Who decided.
        by: String,
        /// Why (a return's reason).
        reason: Option<String>,
    },
}

/// What a transition's caller decides inside its transaction, from the round's task rows as
/// read there (see [`Store::transition_with`](super::Store::transition_with)).
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

/// What the outbox sender asks of one claim ([`Store::claim_outbox`](super::Store::claim_outbox)).
#[derive(Debug, Clone)]
pub struct OutboxClaim {
    /// The sender's clock.
    pub now: Millis,
    /// Who claims (the lease owner).
    pub owner: String,
    /// Lease length; the sender renews it right before each send
    /// ([`Store::begin_attempt`](super::Store::begin_attempt)).
    pub lease_ms: i64,
    /// How digest rows wait for companions.
    pub hold: super::DigestHold,
    /// Most messages to claim (a digest of several rows is one message).
    pub max_messages: usize,
    /// Messages per minute per channel (`email`, `webhook`, `log`), a budget shared by every
    /// daemon on the database; channels not listed are not limited.
    pub per_minute: BTreeMap<String, u32>,
}

/// What a claim returned.
#[derive(Debug, Clone, Default)]
pub struct ClaimedOutbox {
    /// Claimed messages, each the rows that go out together (one, or a digest's rows, or
    /// the rows of an already fixed Message-ID), in due order; rows in id order.
    pub messages: Vec<Vec<OutboxRow>>,
    /// When the budget of a channel that had messages left unclaimed refills.
    pub throttled_until: Option<Millis>,
    /// Claimed rows that do not parse; the claim moved them to `dead` with the error as
    /// their last error, so they neither go out nor come back.
    pub corrupt: Vec<Corrupt>,
}

/// How a delivery attempt ended, for [`Store::settle_outbox`](super::Store::settle_outbox).
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

// ---------------------------------------------------------------------------------------
// Rows as stored, and their conversion.

/// A column read, or what is wrong with it.
type Parsed<T> = std::result::Result<T, Corrupt>;

/// Parses the columns of one stored row, naming the row in every error.
struct Columns {
    table: &'static str,
    id: String,
}

impl Columns {
    fn of(table: &'static str, id: impl ToString) -> Columns {
        Columns {
            table,
            id: id.to_string(),
        }
    }

    fn corrupt(&self, column: &'static str, value: String, problem: String) -> Corrupt {
        Corrupt {
            table: self.table,
            id: self.id.clone(),
            column,
            value,
            problem,
        }
    }

    /// A state or kind.
    fn word<T: Stored>(&self, column: &'static str, value: String) -> Parsed<T> {
        value
            .parse::<T>()
            .map_err(|_| self.corrupt(column, value, format!("is not {}", T::WHAT)))
    }

    /// An instant (epoch milliseconds that a date can be made of).
    fn instant(&self, column: &'static str, value: i64) -> Parsed<Millis> {
        match chrono::DateTime::from_timestamp_millis(value) {
            Some(_) => Ok(value),
            None => Err(self.corrupt(
                column,
                value.to_string(),
                "is not an instant (epoch milliseconds out of range)".into(),
            )),
        }
    }

    fn instant_opt(&self, column: &'static str, value: Option<i64>) -> Parsed<Option<Millis>> {
        value.map(|v| self.instant(column, v)).transpose()
    }

    /// A JSON column.
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        value: String,
    ) -> Parsed<T> {
        serde_json::from_str(&value)
            .map_err(|e| self.corrupt(column, value, format!("does not parse: {e}")))
    }

    /// A date `YYYY-MM-DD`.
    fn date(&self, column: &'static str, value: String) -> Parsed<String> {
        match chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
            Ok(_) => Ok(value),
            Err(_) => Err(self.corrupt(column, value, "is not a date (YYYY-MM-DD)".into())),
        }
    }
}

/// A workflow version as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct VersionDb {
    id: i64,
    workflow_id: String,
    version: i64,
    hash: String,
    source: String,
    created_at: i64,
}

impl TryFrom<VersionDb> for VersionRow {
    type Error = StoreError;
    fn try_from(r: VersionDb) -> Result<Self> {
        let c = Columns::of("workflow_versions", r.id);
        Ok(VersionRow {
            id: r.id,
            workflow_id: r.workflow_id,
            version: r.version,
            hash: r.hash,
            source: r.source,
            created_at: c.instant("created_at", r.created_at)?,
        })
    }
}

/// A round as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct RoundDb {
    id: i64,
    tag: String,
    workflow_id: String,
    version_id: i64,
    start_date: String,
    params_json: String,
    units_json: Option<String>,
    status: String,
    created_at: i64,
    kickoff_key: Option<String>,
}

impl TryFrom<RoundDb> for RoundRow {
    type Error = StoreError;
    fn try_from(r: RoundDb) -> Result<Self> {
        let c = Columns::of("rounds", r.id);
        Ok(RoundRow {
            id: r.id,
            tag: r.tag,
            workflow_id: r.workflow_id,
            version_id: r.version_id,
            start_date: c.date("start_date", r.start_date)?,
            params: c.json("params_json", r.params_json)?,
            units: r.units_json.map(|u| c.json("units_json", u)).transpose()?,
            status: c.word("status", r.status)?,
            created_at: c.instant("created_at", r.created_at)?,
            kickoff_key: r.kickoff_key,
        })
    }
}

/// A task as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskDb {
    pub(crate) id: i64,
    round_id: i64,
    key: String,
    task: String,
    stage: String,
    title: String,
    assignee_kind: String,
    assignee_id: String,
    assignee_name: String,
    due_at: Option<i64>,
    state: String,
    completed_at: Option<i64>,
    updated_at: i64,
    provisional: bool,
    person_json: Option<String>,
}

impl TryFrom<TaskDb> for TaskRow {
    type Error = StoreError;
    fn try_from(r: TaskDb) -> Result<Self> {
        let c = Columns::of("tasks", r.id);
        Ok(TaskRow {
            id: r.id,
            round_id: r.round_id,
            key: r.key,
            task: r.task,
            stage: r.stage,
            title: r.title,
            assignee_kind: c.word("assignee_kind", r.assignee_kind)?,
            assignee_id: r.assignee_id,
            assignee_name: r.assignee_name,
            due_at: c.instant_opt("due_at", r.due_at)?,
            state: c.word("state", r.state)?,
            completed_at: c.instant_opt("completed_at", r.completed_at)?,
            updated_at: c.instant("updated_at", r.updated_at)?,
            provisional: r.provisional,
            person: r
                .person_json
                .map(|j| c.json("person_json", j))
                .transpose()?,
        })
    }
}

/// A timer as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct TimerDb {
    pub(crate) id: i64,
    key: String,
    round_id: Option<i64>,
    task_id: Option<i64>,
    kind: String,
    pub(crate) due_at: i64,
    payload_json: String,
    state: String,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    fired_at: Option<i64>,
}

impl TryFrom<TimerDb> for TimerRow {
    type Error = StoreError;
    fn try_from(r: TimerDb) -> Result<Self> {
        Ok(r.parse()?)
    }
}

impl TimerDb {
    /// The row, or the first column that does not parse.
    fn parse(self) -> Parsed<TimerRow> {
        let r = self;
        let c = Columns::of("timers", r.id);
        Ok(TimerRow {
            id: r.id,
            key: r.key,
            round_id: r.round_id,
            task_id: r.task_id,
            kind: c.word("kind", r.kind)?,
            due_at: c.instant("due_at", r.due_at)?,
            payload: c.json("payload_json", r.payload_json)?,
            state: c.word("state", r.state)?,
            attempts: r.attempts,
            lease_owner: r.lease_owner,
            lease_until: c.instant_opt("lease_until", r.lease_until)?,
            fired_at: c.instant_opt("fired_at", r.fired_at)?,
        })
    }

    /// Put the claimed row with the timers, or with the corrupt ones when it does not parse.
    pub(crate) fn claimed_into(self, out: &mut ClaimedTimers) {
        let (id, key, due_at) = (self.id, self.key.clone(), self.due_at);
        match self.parse() {
            Ok(t) => out.timers.push(t),
            Err(error) => out.corrupt.push(CorruptTimer {
                id,
                key,
                due_at,
                error,
            }),
        }
    }
}

/// An outbox row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct OutboxDb {
    pub(crate) id: i64,
    key: String,
    round_id: Option<i64>,
    task_id: Option<i64>,
    kind: String,
    pub(crate) channel: String,
    address: String,
    recipient_json: String,
    subject: String,
    body: String,
    state: String,
    attempts: i64,
    not_before: i64,
    created_at: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
    html: String,
    item_json: String,
    message_id: Option<String>,
    next_attempt_at: Option<i64>,
}

impl TryFrom<OutboxDb> for OutboxRow {
    type Error = StoreError;
    fn try_from(r: OutboxDb) -> Result<Self> {
        let c = Columns::of("outbox", r.id);
        Ok(OutboxRow {
            id: r.id,
            key: r.key,
            round_id: r.round_id,
            task_id: r.task_id,
            kind: c.word("kind", r.kind)?,
            channel: c.word("channel", r.channel)?,
            address: r.address,
            recipient_json: r.recipient_json,
            subject: r.subject,
            body: r.body,
            state: c.word("state", r.state)?,
            attempts: r.attempts,
            not_before: c.instant("not_before", r.not_before)?,
            created_at: c.instant("created_at", r.created_at)?,
            sent_at: c.instant_opt("sent_at", r.sent_at)?,
            last_error: r.last_error,
            html: r.html,
            item_json: r.item_json,
            message_id: r.message_id,
            next_attempt_at: c.instant_opt("next_attempt_at", r.next_attempt_at)?,
        })
    }
}

/// A token as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenDb {
    name: String,
    hash: String,
    rights: String,
    created_at: i64,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TokenDb {
    /// Whether the stored token is revoked.
    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

impl TryFrom<TokenDb> for TokenRow {
    type Error = StoreError;
    fn try_from(r: TokenDb) -> Result<Self> {
        let c = Columns::of("api_tokens", &r.name);
        Ok(TokenRow {
            rights: c.word("rights", r.rights)?,
            created_at: c.instant("created_at", r.created_at)?,
            revoked_at: c.instant_opt("revoked_at", r.revoked_at)?,
            expires_at: c.instant_opt("expires_at", r.expires_at)?,
            last_used_at: c.instant_opt("last_used_at", r.last_used_at)?,
            name: r.name,
            hash: r.hash,
        })
    }
}

/// A session with its token, as stored (one join).
#[derive(sqlx::FromRow)]
pub(crate) struct SessionDb {
    id_hash: String,
    token_name: String,
    s_created_at: i64,
    s_expires_at: i64,
    last_seen: i64,
    #[sqlx(flatten)]
    token: TokenDb,
}

impl TryFrom<SessionDb> for (SessionRow, TokenRow) {
    type Error = StoreError;
    fn try_from(r: SessionDb) -> Result<Self> {
        let c = Columns::of("sessions", &r.token_name);
        Ok((
            SessionRow {
                created_at: c.instant("created_at", r.s_created_at)?,
                expires_at: c.instant("expires_at", r.s_expires_at)?,
                last_seen: c.instant("last_seen", r.last_seen)?,
                id_hash: r.id_hash,
                token_name: r.token_name,
            },
            r.token.try_into()?,
        ))
    }
}

/// A history entry as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct HistoryDb {
    id: i64,
    at: i64,
    from_state: String,
    to_state: String,
    actor: String,
    note: Option<String>,
}

impl TryFrom<HistoryDb> for HistoryRow {
    type Error = StoreError;
    fn try_from(r: HistoryDb) -> Result<Self> {
        let c = Columns::of("task_history", r.id);
        Ok(HistoryRow {
            at: c.instant("at", r.at)?,
            from_state: c.word("from_state", r.from_state)?,
            to_state: c.word("to_state", r.to_state)?,
            actor: r.actor,
            note: r.note,
        })
    }
}

/// An audit entry as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditDb {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    subject: String,
    detail_json: String,
}

impl TryFrom<AuditDb> for AuditRow {
    type Error = StoreError;
    fn try_from(r: AuditDb) -> Result<Self> {
        let c = Columns::of("audit_log", r.id);
        Ok(AuditRow {
            id: r.id,
            entry: AuditEntry {
                at: c.instant("at", r.at)?,
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                detail_json: r.detail_json,
            },
        })
    }
}

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

/// One state or kind column read on its own (`id` names the row in the error).
pub(crate) fn word<T: Stored>(
    table: &'static str,
    id: impl ToString,
    column: &'static str,
    value: String,
) -> Result<T> {
    Ok(Columns::of(table, id).word(column, value)?)
}

/// Converts every row, failing on the first that does not parse.
pub(crate) fn convert<D, R>(rows: Vec<D>) -> Result<Vec<R>>
where
    R: TryFrom<D, Error = StoreError>,
{
    rows.into_iter().map(R::try_from).collect()
}

/// Converts a row if there is one.
pub(crate) fn convert_opt<D, R>(row: Option<D>) -> Result<Option<R>>
where
    R: TryFrom<D, Error = StoreError>,
{
    row.map(R::try_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_db(state: &str, due_at: Option<i64>) -> TaskDb {
        TaskDb {
            id: 42,
            round_id: 1,
            key: "k".into(),
            task: "t".into(),
            stage: "s".into(),
            title: "T".into(),
            assignee_kind: "unit".into(),
            assignee_id: "u".into(),
            assignee_name: "U".into(),
            due_at,
            state: state.into(),
            completed_at: None,
            updated_at: 0,
            provisional: false,
            person_json: None,
        }
    }

    #[test]
    fn a_task_with_an_unknown_state_is_an_error_naming_table_row_and_value() {
        let err = TaskRow::try_from(task_db("opne", None)).expect_err("not a state");
        assert_eq!(
            err.to_string(),
            "row 42 of table `tasks` has state `opne`, which is not a task state"
        );
        assert!(TaskRow::try_from(task_db("open", Some(1))).is_ok());
    }

    #[test]
    fn an_instant_out_of_range_is_an_error_not_1970() {
        let err = TaskRow::try_from(task_db("open", Some(i64::MAX))).expect_err("range");
        let StoreError::Corrupt(c) = err else {
            panic!("{err}")
        };
        assert_eq!(
            (c.table, c.id.as_str(), c.column),
            ("tasks", "42", "due_at")
        );
        assert_eq!(c.value, i64::MAX.to_string());
    }

    #[test]
    fn a_payload_that_does_not_parse_is_an_error_but_unknown_fields_are_not() {
        let c = Columns::of("timers", 7);
        assert!(
            c.json::<TimerPayload>("payload_json", r#"{"n":1}"#.into())
                .is_ok()
        );
        let err = c
            .json::<TimerPayload>("payload_json", r#"{"provisional":"yes"}"#.into())
            .expect_err("a string is not a flag");
        assert!(
            err.to_string()
                .starts_with("row 7 of table `timers` has payload_json `{\"provisional\":\"yes\"}`, which does not parse"),
            "{err}"
        );
    }
}
