//! Assessment results in the store (migration 0011): one rating per person and year, for
//! both backends. A submission writes every rating, its audit entries (`person:ID`, action
//! `assessment.rate`, the old and new rating when it changes) and any 调整 event it owes in
//! one transaction.

use chrono::NaiveDate;
use serde_json::json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::people::{EVENT_INSERT, audit, ymd};
use super::shared::{Backend, Conn, Tx};
use super::{EventRow, Millis, PoolWrite, Result};

/// One person's rating in a submission.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The person.
    pub person_id: i64,
    /// The rating, from the workflow's scale.
    pub rating: String,
    /// Whether the rating fails.
    pub failing: bool,
    /// Whether it puts the person on the 优先使用 list.
    pub priority: bool,
    /// The note of the 调整 event this result owes (a run of failing years ends here).
    pub adjust: Option<String>,
}

/// A branch's submitted ratings for one year.
#[derive(Debug, Clone)]
pub struct RatingsWrite {
    /// The assessment year (the round's start year).
    pub year: i32,
    /// The branch.
    pub unit: String,
    /// The workflow.
    pub workflow_id: String,
    /// The round.
    pub round_id: i64,
    /// The task that collected them.
    pub task_id: i64,
    /// The ratings.
    pub results: Vec<NewResult>,
    /// The event kind and date of any 调整 event owed.
    pub adjust_event: Option<(String, NaiveDate)>,
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResultRow {
    /// Row id.
    pub id: i64,
    /// The person.
    pub person_id: i64,
    /// The person's name.
    pub name: String,
    /// The assessment year.
    pub year: i64,
    /// The rating.
    pub rating: String,
    /// Whether it fails (1) or not (0).
    pub failing: i64,
    /// On the 优先使用 list (1) or not (0).
    pub priority: i64,
    /// The branch when rated.
    pub unit: String,
    /// The workflow.
    pub workflow_id: String,
    /// The round.
    pub round_id: i64,
    /// The task.
    pub task_id: i64,
    /// The 调整 event this result owed, if any.
    pub adjust_event: Option<i64>,
    /// Who submitted it.
    pub recorded_by: String,
    /// When.
    pub recorded_at: Millis,
}

/// Which results to list.
#[derive(Debug, Clone, Default)]
pub struct ResultFilter {
    /// Of one year.
    pub year: Option<i32>,
    /// Of one person.
    pub person: Option<i64>,
    /// Of one branch.
    pub unit: Option<String>,
    /// Only those on the 优先使用 list.
    pub priority_only: bool,
}

const RESULTS: &str = "SELECT r.id, r.person_id, p.name, r.year, r.rating, r.failing, \
     r.priority, r.unit, r.workflow_id, r.round_id, r.task_id, r.adjust_event, r.recorded_by, \
     r.recorded_at FROM assessment_results r JOIN people p ON p.id = r.person_id \
     WHERE ($1 IS NULL OR r.year = $1) AND ($2 IS NULL OR r.person_id = $2) \
     AND ($3 IS NULL OR r.unit = $3) AND ($4 = 0 OR r.priority = 1) \
     ORDER BY r.year, r.unit, p.name, r.id";

const RESULT_OF: &str = "SELECT rating, adjust_event FROM assessment_results \
     WHERE person_id = $1 AND year = $2";

const RESULT_INSERT: &str = "INSERT INTO assessment_results (person_id, year, rating, failing, \
     priority, unit, workflow_id, round_id, task_id, recorded_by, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

const RESULT_UPDATE: &str = "UPDATE assessment_results SET rating = $3, failing = $4, \
     priority = $5, unit = $6, workflow_id = $7, round_id = $8, task_id = $9, \
     recorded_by = $10, recorded_at = $11 WHERE person_id = $1 AND year = $2";

const RESULT_ADJUSTED: &str =
    "UPDATE assessment_results SET adjust_event = $3 WHERE person_id = $1 AND year = $2";

impl<B> Tx<B>
where
    B: Backend,
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Decode<'q, B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    /// Write a submission; returns the 调整 events it recorded (none on a re-submission
    /// whose events were recorded before).
    pub(crate) async fn write_ratings(
        store: &B,
        w: &RatingsWrite,
        who: &PoolWrite,
    ) -> Result<Vec<EventRow>> {
        let mut tx = store.begin_write().await?;
        let mut events = Vec::new();
        let year = i64::from(w.year);
        for r in &w.results {
            let old: Option<(String, Option<i64>)> = sqlx::query_as(RESULT_OF)
                .bind(r.person_id)
                .bind(year)
                .fetch_optional(&mut *tx)
                .await?;
            let sql = if old.is_some() {
                RESULT_UPDATE
            } else {
                RESULT_INSERT
            };
            sqlx::query(sql)
                .bind(r.person_id)
                .bind(year)
                .bind(r.rating.as_str())
                .bind(i64::from(r.failing))
                .bind(i64::from(r.priority))
                .bind(w.unit.as_str())
                .bind(w.workflow_id.as_str())
                .bind(w.round_id)
                .bind(w.task_id)
                .bind(who.actor.as_str())
                .bind(who.at)
                .execute(&mut *tx)
                .await?;
            let (old_rating, adjusted) = old.map_or((None, None), |(r, a)| (Some(r), a));
            if old_rating.as_deref() != Some(r.rating.as_str()) {
                let detail = json!({"year": w.year, "rating": r.rating, "old": old_rating,
                    "task": w.task_id, "round": w.round_id});
                Tx::<B>::insert_audit(&mut tx, &audit(who, r.person_id, detail)).await?;
            }
            if let (Some(note), Some((kind, date)), None) = (&r.adjust, &w.adjust_event, adjusted) {
                let id = sqlx::query_scalar::<B::Db, i64>(EVENT_INSERT)
                    .bind(r.person_id)
                    .bind(kind.as_str())
                    .bind(ymd(*date))
                    .bind(note.as_str())
                    .bind(who.actor.as_str())
                    .bind(who.at)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(RESULT_ADJUSTED)
                    .bind(r.person_id)
                    .bind(year)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let ev_who = PoolWrite {
                    action: "event.record".into(),
                    ..who.clone()
                };
                let detail = json!({"event": id, "kind": kind, "date": ymd(*date), "note": note});
                Tx::<B>::insert_audit(&mut tx, &audit(&ev_who, r.person_id, detail)).await?;
                events.push(EventRow {
                    id,
                    person_id: r.person_id,
                    kind: kind.clone(),
                    date: *date,
                    note: Some(note.clone()),
                    recorded_by: who.actor.clone(),
                    recorded_at: who.at,
                });
            }
        }
        tx.commit().await?;
        Ok(events)
    }

    pub(crate) async fn results(store: &B, f: &ResultFilter) -> Result<Vec<ResultRow>> {
        let rows = sqlx::query_as::<B::Db, ResultRow>(RESULTS)
            .bind(f.year.map(i64::from))
            .bind(f.person)
            .bind(f.unit.as_deref())
            .bind(i64::from(f.priority_only))
            .fetch_all(store.pool())
            .await?;
        Ok(rows)
    }
}
