//! The reserve pool in the store: people and the events recorded about them (migration
//! 0009), for both backends. Every change writes its audit entry (`person:ID`, with the old
//! and new values of what changed) in the same transaction.
//!
//! A person's dates are `YYYY-MM-DD` text; a row whose date, tier, status, gender or post
//! track does not parse is [`StoreError::Corrupt`], as for the other tables.

use chrono::NaiveDate;
use serde_json::json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::{AuditDb, convert};
use super::shared::{Backend, Conn, Tx};
use super::{AuditEntry, AuditRow, Corrupt, Millis, Result, StoreError};
use crate::core::plan::PersonRef;
use crate::core::pool::{Person, Tier};
use crate::core::state::Stored;

/// A stored person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    /// Row id.
    pub id: i64,
    /// The record.
    pub person: Person,
    /// When added.
    pub created_at: Millis,
    /// When last changed.
    pub updated_at: Millis,
}

/// Which people to list.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    /// Of one unit.
    pub unit: Option<String>,
    /// Of one tier.
    pub tier: Option<Tier>,
    /// Removed people too (调整出库).
    pub include_removed: bool,
}

/// Who changes the pool, when, and what the audit calls it (`person.add`, `person.edit`,
/// `person.remove`, `person.import`, `event.record`).
#[derive(Debug, Clone)]
pub struct PoolWrite {
    /// The actor (`cli`, `token:NAME`).
    pub actor: String,
    /// When.
    pub at: Millis,
    /// The audit action.
    pub action: String,
}

/// An event to record about a person.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The person.
    pub person_id: i64,
    /// The kind (an event id a workflow declares).
    pub kind: String,
    /// When it happened.
    pub date: NaiveDate,
    /// A note.
    pub note: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// The person.
    pub person_id: i64,
    /// The kind.
    pub kind: String,
    /// When it happened.
    pub date: NaiveDate,
    /// A note.
    pub note: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// When recorded.
    pub recorded_at: Millis,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Of one person.
    pub person: Option<i64>,
    /// Of one kind.
    pub kind: Option<String>,
    /// That happened in one year.
    pub year: Option<i32>,
}

macro_rules! person_cols {
    () => {
        "id, name, unit, tier, post_track, current_post, gender, birth, education, joined_at, \
         term_start, term_end, mentor, status, removed_reason, removed_at, phone, email, note, \
         created_at, updated_at"
    };
}

const PERSON_BY_ID: &str = concat!("SELECT ", person_cols!(), " FROM people WHERE id = $1");
const PERSON_BY_ID_LOCKED: &str = concat!(
    "SELECT ",
    person_cols!(),
    " FROM people WHERE id = $1 FOR UPDATE"
);

const PEOPLE: &str = concat!(
    "SELECT ",
    person_cols!(),
    " FROM people WHERE ($1 IS NULL OR unit = $1) AND ($2 IS NULL OR tier = $2) \
     AND ($3 OR status = 'active') ORDER BY unit, tier, name, id"
);

/// The columns a round's tasks per person need, of the people in the pool, in `PEOPLE`'s
/// order.
const POOL_REFS: &str = "SELECT id, name, unit, tier FROM people WHERE status = 'active' \
     ORDER BY unit, tier, name, id";

/// What an import matches rows on, of everybody (removed people too).
const PEOPLE_KEYS: &str = "SELECT id, name, unit, birth FROM people ORDER BY id";

const PERSON_INSERT: &str = "INSERT INTO people (name, unit, tier, post_track, current_post, \
     gender, birth, education, joined_at, term_start, term_end, mentor, status, \
     removed_reason, removed_at, phone, email, note, created_at, updated_at) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19) \
     RETURNING id";

/// Followed by multi-row `VALUES` (an import's new people, [`PEOPLE_CHUNK`] at a time).
const PEOPLE_INSERT_HEAD: &str = "INSERT INTO people (name, unit, tier, post_track, \
     current_post, gender, birth, education, joined_at, term_start, term_end, mentor, status, \
     removed_reason, removed_at, phone, email, note, created_at, updated_at) ";

/// People per multi-row INSERT: 20 bound values each stays under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters per statement.
const PEOPLE_CHUNK: usize = 1000;

const PERSON_UPDATE: &str = "UPDATE people SET name = $2, unit = $3, tier = $4, \
     post_track = $5, current_post = $6, gender = $7, birth = $8, education = $9, \
     joined_at = $10, term_start = $11, term_end = $12, mentor = $13, status = $14, \
     removed_reason = $15, removed_at = $16, phone = $17, email = $18, note = $19, \
     updated_at = $20 WHERE id = $1";

const AUDIT_OF_SUBJECT: &str = "SELECT id, at, actor, action, subject, detail_json \
     FROM audit_log WHERE subject = $1 ORDER BY id";

pub(super) const EVENT_INSERT: &str = "INSERT INTO person_events (person_id, kind, date, note, \
     recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

const EVENTS: &str = "SELECT id, person_id, kind, date, note, recorded_by, recorded_at \
     FROM person_events WHERE ($1 IS NULL OR person_id = $1) AND ($2 IS NULL OR kind = $2) \
     AND ($3 IS NULL OR (date >= $3 AND date <= $4)) ORDER BY date, id";

/// A person as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct PersonDb {
    id: i64,
    name: String,
    unit: String,
    tier: i64,
    post_track: Option<String>,
    current_post: Option<String>,
    gender: Option<String>,
    birth: String,
    education: Option<String>,
    joined_at: String,
    term_start: Option<String>,
    term_end: Option<String>,
    mentor: Option<String>,
    status: String,
    removed_reason: Option<String>,
    removed_at: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    note: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(
    table: &'static str,
    id: i64,
    column: &'static str,
    value: String,
    problem: String,
) -> StoreError {
    StoreError::Corrupt(Corrupt {
        table,
        id: id.to_string(),
        column,
        value,
        problem,
    })
}

fn date(table: &'static str, id: i64, column: &'static str, v: String) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
        .map_err(|_| corrupt(table, id, column, v, "is not a date (YYYY-MM-DD)".into()))
}

fn date_opt(
    table: &'static str,
    id: i64,
    column: &'static str,
    v: Option<String>,
) -> Result<Option<NaiveDate>> {
    v.map(|v| date(table, id, column, v)).transpose()
}

fn word<T: Stored>(id: i64, column: &'static str, v: String) -> Result<T> {
    v.parse::<T>()
        .map_err(|_| corrupt("people", id, column, v, format!("is not {}", T::WHAT)))
}

fn word_opt<T: Stored>(id: i64, column: &'static str, v: Option<String>) -> Result<Option<T>> {
    v.map(|v| word(id, column, v)).transpose()
}

impl TryFrom<PersonDb> for PersonRow {
    type Error = StoreError;
    fn try_from(r: PersonDb) -> Result<Self> {
        let id = r.id;
        let t = "people";
        Ok(PersonRow {
            id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            person: Person {
                tier: Tier::try_from(r.tier)
                    .map_err(|e| corrupt(t, id, "tier", r.tier.to_string(), e))?,
                post_track: word_opt(id, "post_track", r.post_track)?,
                gender: word_opt(id, "gender", r.gender)?,
                birth: date(t, id, "birth", r.birth)?,
                joined_at: date(t, id, "joined_at", r.joined_at)?,
                term_start: date_opt(t, id, "term_start", r.term_start)?,
                term_end: date_opt(t, id, "term_end", r.term_end)?,
                status: word(id, "status", r.status)?,
                removed_at: date_opt(t, id, "removed_at", r.removed_at)?,
                name: r.name,
                unit: r.unit,
                current_post: r.current_post,
                education: r.education,
                mentor: r.mentor,
                removed_reason: r.removed_reason,
                phone: r.phone,
                email: r.email,
                note: r.note,
            },
        })
    }
}

/// An event as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct EventDb {
    id: i64,
    person_id: i64,
    kind: String,
    date: String,
    note: Option<String>,
    recorded_by: String,
    recorded_at: i64,
}

impl TryFrom<EventDb> for EventRow {
    type Error = StoreError;
    fn try_from(r: EventDb) -> Result<Self> {
        Ok(EventRow {
            id: r.id,
            person_id: r.person_id,
            date: date("person_events", r.id, "date", r.date)?,
            kind: r.kind,
            note: r.note,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at,
        })
    }
}

pub(super) fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The columns of a person as bound, in `PERSON_INSERT`'s order ($1 to $18).
struct Bound {
    text: [Option<String>; 17],
    tier: i64,
}

fn bound(p: &Person) -> Bound {
    let s = |v: &str| Some(v.to_string());
    Bound {
        tier: i64::from(p.tier.get()),
        text: [
            s(&p.name),
            s(&p.unit),
            p.post_track.map(|v| v.word().to_string()),
            p.current_post.clone(),
            p.gender.map(|v| v.word().to_string()),
            Some(ymd(p.birth)),
            p.education.clone(),
            Some(ymd(p.joined_at)),
            p.term_start.map(ymd),
            p.term_end.map(ymd),
            p.mentor.clone(),
            Some(p.status.word().to_string()),
            p.removed_reason.clone(),
            p.removed_at.map(ymd),
            p.phone.clone(),
            p.email.clone(),
            p.note.clone(),
        ],
    }
}

pub(super) fn audit(who: &PoolWrite, id: i64, detail: serde_json::Value) -> AuditEntry {
    AuditEntry {
        at: who.at,
        actor: who.actor.clone(),
        action: who.action.clone(),
        subject: format!("person:{id}"),
        detail_json: detail.to_string(),
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
    pub(crate) async fn people(store: &B, f: &PeopleFilter) -> Result<Vec<PersonRow>> {
        use futures_util::StreamExt as _;
        // Each row is parsed as it arrives: a city's pool is 100,000 rows, and collecting
        // the raw rows first held both lists at once.
        let mut rows = sqlx::query_as::<B::Db, PersonDb>(PEOPLE)
            .bind(f.unit.as_deref())
            .bind(f.tier.map(|t| i64::from(t.get())))
            .bind(f.include_removed)
            .fetch(store.pool());
        let mut out = Vec::new();
        while let Some(row) = rows.next().await {
            out.push(PersonRow::try_from(row?)?);
        }
        Ok(out)
    }

    pub(crate) async fn pool_refs(store: &B) -> Result<Vec<PersonRef>> {
        let rows = sqlx::query_as::<B::Db, (i64, String, String, i64)>(POOL_REFS)
            .fetch_all(store.pool())
            .await?;
        rows.into_iter()
            .map(|(id, name, unit, tier)| {
                let t = Tier::try_from(tier)
                    .map_err(|e| corrupt("people", id, "tier", tier.to_string(), e))?;
                Ok(PersonRef {
                    id,
                    name,
                    unit,
                    tier: t.get(),
                })
            })
            .collect()
    }

    pub(crate) async fn people_keys(store: &B) -> Result<Vec<(i64, String, String, NaiveDate)>> {
        let rows = sqlx::query_as::<B::Db, (i64, String, String, String)>(PEOPLE_KEYS)
            .fetch_all(store.pool())
            .await?;
        rows.into_iter()
            .map(|(id, name, unit, birth)| {
                Ok((id, name, unit, date("people", id, "birth", birth)?))
            })
            .collect()
    }

    pub(crate) async fn person_read(store: &B, id: i64) -> Result<Option<PersonRow>> {
        let row = sqlx::query_as::<B::Db, PersonDb>(PERSON_BY_ID)
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
        row.map(PersonRow::try_from).transpose()
    }

    pub(crate) async fn person(c: &mut Conn<B>, id: i64) -> Result<Option<PersonRow>> {
        // Under PostgreSQL the row is locked for the rest of the transaction; SQLite's
        // `BEGIN IMMEDIATE` already holds the only write lock.
        let sql = if B::NAME == "postgres" {
            PERSON_BY_ID_LOCKED
        } else {
            PERSON_BY_ID
        };
        let row = sqlx::query_as::<B::Db, PersonDb>(sql)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
        row.map(PersonRow::try_from).transpose()
    }

    async fn insert_person(c: &mut Conn<B>, p: &Person, who: &PoolWrite) -> Result<i64> {
        let b = bound(p);
        let [
            name,
            unit,
            post_track,
            current_post,
            gender,
            birth,
            education,
            joined_at,
            term_start,
            term_end,
            mentor,
            status,
            removed_reason,
            removed_at,
            phone,
            email,
            note,
        ] = b.text;
        let id = sqlx::query_scalar::<B::Db, i64>(PERSON_INSERT)
            .bind(name)
            .bind(unit)
            .bind(b.tier)
            .bind(post_track)
            .bind(current_post)
            .bind(gender)
            .bind(birth)
            .bind(education)
            .bind(joined_at)
            .bind(term_start)
            .bind(term_end)
            .bind(mentor)
            .bind(status)
            .bind(removed_reason)
            .bind(removed_at)
            .bind(phone)
            .bind(email)
            .bind(note)
            .bind(who.at)
            .fetch_one(&mut *c)
            .await?;
        let new = serde_json::to_value(p).unwrap_or_default();
        Tx::<B>::insert_audit(c, &audit(who, id, json!({"new": new}))).await?;
        Ok(id)
    }

    /// Insert many people with multi-row statements (an import of a city's roster is
    /// 100,000 rows), and their audit entries likewise; the ids in `people`'s order.
    pub(crate) async fn insert_people(
        c: &mut Conn<B>,
        people: &[Person],
        who: &PoolWrite,
    ) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(people.len());
        for chunk in people.chunks(PEOPLE_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(PEOPLE_INSERT_HEAD);
            q.push_values(chunk, |mut b, p| {
                let bound = bound(p);
                // PERSON_INSERT's order: name, unit, tier, then the other text columns.
                let mut text = bound.text.into_iter();
                b.push_bind(text.next().flatten())
                    .push_bind(text.next().flatten())
                    .push_bind(bound.tier);
                for v in text {
                    b.push_bind(v);
                }
                b.push_bind(who.at).push_bind(who.at);
            });
            q.push(" RETURNING id");
            let mut got: Vec<i64> = q.build_query_scalar().fetch_all(&mut *c).await?;
            // Both backends number a statement's rows in VALUES order; RETURNING's order
            // is not promised, so the ids are sorted rather than trusted as returned.
            got.sort_unstable();
            if got.len() != chunk.len() {
                return Err(StoreError::NotFound(format!(
                    "{} of {} people inserted",
                    got.len(),
                    chunk.len()
                )));
            }
            ids.extend(got);
        }
        let audit: Vec<AuditEntry> = people
            .iter()
            .zip(&ids)
            .map(|(p, id)| {
                let new = serde_json::to_value(p).unwrap_or_default();
                audit(who, *id, json!({"new": new}))
            })
            .collect();
        Tx::<B>::insert_audits(c, &audit.iter().collect::<Vec<_>>()).await?;
        Ok(ids)
    }

    /// Write `new` over the row `id`; the audit names each changed field's old and new
    /// value. Nothing is written when nothing changed (returns false).
    pub(crate) async fn update_person(
        c: &mut Conn<B>,
        id: i64,
        new: &Person,
        who: &PoolWrite,
    ) -> Result<bool> {
        let old = Tx::<B>::person(c, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        let changes = old.person.changes(new);
        if changes.is_empty() {
            return Ok(false);
        }
        let b = bound(new);
        let [
            name,
            unit,
            post_track,
            current_post,
            gender,
            birth,
            education,
            joined_at,
            term_start,
            term_end,
            mentor,
            status,
            removed_reason,
            removed_at,
            phone,
            email,
            note,
        ] = b.text;
        sqlx::query(PERSON_UPDATE)
            .bind(id)
            .bind(name)
            .bind(unit)
            .bind(b.tier)
            .bind(post_track)
            .bind(current_post)
            .bind(gender)
            .bind(birth)
            .bind(education)
            .bind(joined_at)
            .bind(term_start)
            .bind(term_end)
            .bind(mentor)
            .bind(status)
            .bind(removed_reason)
            .bind(removed_at)
            .bind(phone)
            .bind(email)
            .bind(note)
            .bind(who.at)
            .execute(&mut *c)
            .await?;
        Tx::<B>::insert_audit(c, &audit(who, id, json!({"changes": changes}))).await?;
        Ok(true)
    }

    pub(crate) async fn write_people(
        store: &B,
        adds: &[Person],
        updates: &[(i64, Person)],
        who: &PoolWrite,
    ) -> Result<(Vec<i64>, u64)> {
        let mut tx = store.begin_write().await?;
        let ids = if adds.len() == 1 {
            vec![Tx::<B>::insert_person(&mut tx, &adds[0], who).await?]
        } else {
            Tx::<B>::insert_people(&mut tx, adds, who).await?
        };
        let mut changed = 0;
        for (id, p) in updates {
            if Tx::<B>::update_person(&mut tx, *id, p, who).await? {
                changed += 1;
            }
        }
        tx.commit().await?;
        Ok((ids, changed))
    }

    pub(crate) async fn person_audit(store: &B, id: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query_as::<B::Db, AuditDb>(AUDIT_OF_SUBJECT)
            .bind(format!("person:{id}"))
            .fetch_all(store.pool())
            .await?;
        convert(rows)
    }

    pub(crate) async fn record_event(store: &B, e: &NewEvent, who: &PoolWrite) -> Result<EventRow> {
        let mut tx = store.begin_write().await?;
        if Tx::<B>::person(&mut tx, e.person_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("person {}", e.person_id)));
        }
        let id = sqlx::query_scalar::<B::Db, i64>(EVENT_INSERT)
            .bind(e.person_id)
            .bind(e.kind.as_str())
            .bind(ymd(e.date))
            .bind(e.note.as_deref())
            .bind(who.actor.as_str())
            .bind(who.at)
            .fetch_one(&mut *tx)
            .await?;
        let detail = json!({"event": id, "kind": e.kind, "date": ymd(e.date), "note": e.note});
        Tx::<B>::insert_audit(&mut tx, &audit(who, e.person_id, detail)).await?;
        tx.commit().await?;
        Ok(EventRow {
            id,
            person_id: e.person_id,
            kind: e.kind.clone(),
            date: e.date,
            note: e.note.clone(),
            recorded_by: who.actor.clone(),
            recorded_at: who.at,
        })
    }

    pub(crate) async fn events(store: &B, f: &EventFilter) -> Result<Vec<EventRow>> {
        let (from, to) = match f.year {
            Some(y) => (Some(format!("{y:04}-01-01")), Some(format!("{y:04}-12-31"))),
            None => (None, None),
        };
        let rows = sqlx::query_as::<B::Db, EventDb>(EVENTS)
            .bind(f.person)
            .bind(f.kind.as_deref())
            .bind(from)
            .bind(to)
            .fetch_all(store.pool())
            .await?;
        convert(rows)
    }
}
