//! Hand-ins on the branch link in the store (migration 0012): one row per submission with
//! its field values and the files it stored (JSON: slot, name, kind, size, content hash),
//! and the office's decision. The bytes are in the file store (`crate::files`).

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};
use std::collections::BTreeMap;

use super::shared::{Backend, Conn, RowsAffected as _, Tx};
use super::{AuditEntry, Corrupt, Millis, Result, StoreError};
use crate::core::submission::FileKind;

/// One stored file of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The slot it was uploaded for.
    pub slot: String,
    /// The sanitised name it is sent back under.
    pub name: String,
    /// Its kind, told by content.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex: the key in the file store.
    pub hash: String,
}

/// A submission to record.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    /// The task.
    pub task_id: i64,
    /// Its round.
    pub round_id: i64,
    /// The unit that handed it in.
    pub unit: String,
    /// When.
    pub at: Millis,
    /// Who (`link:UNIT`).
    pub actor: String,
    /// Field values by id.
    pub fields: BTreeMap<String, String>,
    /// The files stored.
    pub files: Vec<StoredFile>,
}

/// The office's decision on a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 通过: the task is done.
    Accepted,
    /// 退回: the task is open again with a new deadline.
    Returned,
}

impl Outcome {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Returned => "returned",
        }
    }

    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            Outcome::Accepted => "已通过",
            Outcome::Returned => "已退回",
        }
    }
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRow {
    /// Row id.
    pub id: i64,
    /// The task.
    pub task_id: i64,
    /// Its round.
    pub round_id: i64,
    /// The unit.
    pub unit: String,
    /// When handed in.
    pub at: Millis,
    /// Who handed it in.
    pub actor: String,
    /// Field values by id.
    pub fields: BTreeMap<String, String>,
    /// The files.
    pub files: Vec<StoredFile>,
    /// The office's decision, once made.
    pub outcome: Option<Outcome>,
    /// When decided.
    pub decided_at: Option<Millis>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The reason given with a return.
    pub reason: Option<String>,
}

macro_rules! cols {
    () => {
        "SELECT id, task_id, round_id, unit, at, actor, fields_json, files_json, outcome, \
         decided_at, decided_by, reason FROM submissions "
    };
}

/// A task's submissions, oldest first.
pub(crate) const BY_TASK: &str = concat!(cols!(), "WHERE task_id = $1 ORDER BY id");
/// A round's submissions, oldest first.
pub(crate) const BY_ROUND: &str = concat!(cols!(), "WHERE round_id = $1 ORDER BY id");

const INSERT: &str = "INSERT INTO submissions (task_id, round_id, unit, at, actor, fields_json, \
     files_json) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

const DECIDE: &str = "UPDATE submissions SET outcome = $2, decided_at = $3, decided_by = $4, \
     reason = $5 WHERE id = $1 AND outcome IS NULL";

#[derive(sqlx::FromRow)]
pub(crate) struct SubmissionDb {
    id: i64,
    task_id: i64,
    round_id: i64,
    unit: String,
    at: i64,
    actor: String,
    fields_json: String,
    files_json: String,
    outcome: Option<String>,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    reason: Option<String>,
}

fn corrupt(id: i64, column: &'static str, value: String, problem: String) -> StoreError {
    StoreError::Corrupt(Corrupt {
        table: "submissions",
        id: id.to_string(),
        column,
        value,
        problem,
    })
}

impl TryFrom<SubmissionDb> for SubmissionRow {
    type Error = StoreError;
    fn try_from(r: SubmissionDb) -> Result<Self> {
        let id = r.id;
        let fields = serde_json::from_str(&r.fields_json)
            .map_err(|e| corrupt(id, "fields_json", r.fields_json.clone(), e.to_string()))?;
        let files = serde_json::from_str(&r.files_json)
            .map_err(|e| corrupt(id, "files_json", r.files_json.clone(), e.to_string()))?;
        let outcome = match r.outcome.as_deref() {
            None => None,
            Some("accepted") => Some(Outcome::Accepted),
            Some("returned") => Some(Outcome::Returned),
            Some(o) => {
                return Err(corrupt(
                    id,
                    "outcome",
                    o.to_string(),
                    "is not accepted or returned".into(),
                ));
            }
        };
        Ok(SubmissionRow {
            id,
            task_id: r.task_id,
            round_id: r.round_id,
            unit: r.unit,
            at: r.at,
            actor: r.actor,
            fields,
            files,
            outcome,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            reason: r.reason,
        })
    }
}

impl<B> Tx<B>
where
    B: Backend,
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    /// The submission and its audit entry (subject `task:ID`), in the caller's transaction
    /// (a task's state change: see `Transition::submission`).
    pub(crate) async fn insert_submission_in(
        c: &mut Conn<B>,
        s: &NewSubmission,
        audit: &AuditEntry,
    ) -> Result<i64> {
        let fields = serde_json::to_string(&s.fields).unwrap_or_else(|_| "{}".into());
        let files = serde_json::to_string(&s.files).unwrap_or_else(|_| "[]".into());
        let id = sqlx::query_scalar::<B::Db, i64>(INSERT)
            .bind(s.task_id)
            .bind(s.round_id)
            .bind(s.unit.as_str())
            .bind(s.at)
            .bind(s.actor.as_str())
            .bind(fields)
            .bind(files)
            .fetch_one(&mut *c)
            .await?;
        let mut audit = audit.clone();
        audit.subject = format!("task:{}", s.task_id);
        Tx::<B>::insert_audit(c, &audit).await?;
        Ok(id)
    }

    /// Record the decision in the caller's transaction; false when it was already decided.
    pub(crate) async fn decide_submission_in(
        c: &mut Conn<B>,
        id: i64,
        outcome: Outcome,
        at: Millis,
        by: &str,
        reason: Option<&str>,
    ) -> Result<bool> {
        let n = sqlx::query(DECIDE)
            .bind(id)
            .bind(outcome.as_str())
            .bind(at)
            .bind(by)
            .bind(reason)
            .execute(&mut *c)
            .await?;
        Ok(n.rows_affected() == 1)
    }

    pub(crate) async fn submissions_where(
        store: &B,
        sql: &'static str,
        value: i64,
    ) -> Result<Vec<SubmissionRow>> {
        let rows = sqlx::query_as::<B::Db, SubmissionDb>(sql)
            .bind(value)
            .fetch_all(store.pool())
            .await?;
        rows.into_iter().map(SubmissionRow::try_from).collect()
    }
}
