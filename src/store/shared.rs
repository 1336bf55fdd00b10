//! The transaction logic both backends share, generic over [`Backend`]: what one write does
//! inside its transaction (insert a round with its tasks and timers, activate a waiting
//! task, claim outbox messages …). The [`Store`](super::Store) impl built on it is in
//! `generic.rs`; the SQL text in `sql.rs`.
//!
//! The bounds below say which Rust types the shared code binds and reads (`i64`, `bool`,
//! strings, their options); both sqlx drivers provide them, so they hold for `SqliteStore`
//! and `PgStore` and are checked there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::rows::{OutboxDb, SeedDb, TaskDb, VersionDb};
use super::sql::{self, Dialect};
use super::{
    Activation, AuditEntry, ClaimedOutbox, MessageKey, Millis, NewNotification, NewRound, NewTask,
    NewTimer, OutboxClaim, OutboxRow, Result, StoreError, Transition, VersionRow,
};
use crate::core::state::{MessageKind, TaskState};

/// What differs between the two backends; everything else is shared. Implemented by
/// [`SqliteStore`](super::SqliteStore) and [`PgStore`](super::PgStore), each of which gets
/// [`Store`](super::Store) from it.
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// The sqlx driver.
    type Db: Database<QueryResult: RowsAffected>;
    /// `sqlite` or `postgres`.
    const NAME: &'static str;
    /// How many scheduler loops claim and fire batches at once.
    const FIRING_LOOPS: usize;

    /// The statements with this backend's lock clauses and index hints.
    #[doc(hidden)]
    fn dialect() -> &'static Dialect;

    /// The connection pool.
    #[doc(hidden)]
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// The embedded migrations.
    #[doc(hidden)]
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// Apply the embedded migrations.
    #[doc(hidden)]
    fn run_migrations(&self) -> impl Future<Output = Result<()>> + Send;

    /// Start a write transaction.
    #[doc(hidden)]
    fn begin_write(
        &self,
    ) -> impl Future<Output = sqlx::Result<Transaction<'static, Self::Db>>> + Send;

    /// Insert outbox rows; a key already used is skipped.
    #[doc(hidden)]
    fn insert_notifications(
        c: &mut <Self::Db as Database>::Connection,
        rows: &[&NewNotification],
    ) -> impl Future<Output = Result<()>> + Send;

    /// After `added` timers were inserted in one go.
    #[doc(hidden)]
    fn after_timers_added(&self, added: u64) -> impl Future<Output = Result<()>> + Send;
}

/// How many rows a statement changed (each driver has its own result type).
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// A backend's connection.
pub(crate) type Conn<B> = <<B as Backend>::Db as Database>::Connection;

/// The transaction helpers of a backend `B` (a namespace: never constructed).
pub(crate) struct Tx<B>(std::marker::PhantomData<B>);

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
    /// Run claim statements in one write transaction until `limit` rows are claimed; each
    /// statement takes `now, owner, lease_until, limit`.
    pub(crate) async fn claim<R>(
        store: &B,
        statements: [&'static str; 2],
        now: Millis,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, <B::Db as Database>::Row> + Send + Unpin,
    {
        let mut tx = store.begin_write().await?;
        let mut rows = Vec::new();
        for claim in statements {
            let left = limit.max(0) - rows.len() as i64;
            if left <= 0 {
                break;
            }
            rows.extend(
                sqlx::query_as::<B::Db, R>(claim)
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

    /// The body of [`Store::claim_outbox`](super::Store::claim_outbox), inside its
    /// transaction.
    pub(crate) async fn claim_outbox(c: &mut Conn<B>, req: &OutboxClaim) -> Result<ClaimedOutbox> {
        use super::budget::Rate;
        let d = B::dialect();
        let now = req.now;
        let lease_until = now.saturating_add(req.lease_ms);
        let scan = (req.max_messages as i64)
            .saturating_mul(4)
            .clamp(16, sql::OUTBOX_SEED_SCAN);
        let mut seeds = sqlx::query_as::<B::Db, SeedDb>(sql::OUTBOX_SEEDS_EXPIRED)
            .bind(now)
            .bind(scan)
            .fetch_all(&mut *c)
            .await?;
        let mut due = sqlx::query_as::<B::Db, SeedDb>(d.outbox_seeds_held)
            .bind(req.hold.ripe(now))
            .bind(scan)
            .fetch_all(&mut *c)
            .await?;
        due.extend(
            sqlx::query_as::<B::Db, SeedDb>(d.outbox_seeds_free)
                .bind(now)
                .bind(scan)
                .fetch_all(&mut *c)
                .await?,
        );
        // Held rows are due at `not_before`; free rows never carry a retry instant older
        // than their own, so not_before orders both well enough.
        due.sort_by_key(|s| (s.not_before, s.id));
        seeds.extend(due);

        // Messages in seed order, each with its channel.
        let mut seen = HashSet::new();
        let mut keys: Vec<(MessageKey, String)> = Vec::new();
        for s in &seeds {
            // A kind that does not parse makes the row go alone; claiming it below reports
            // it (and takes it out of the queue).
            let key = MessageKey::of(
                s.id,
                s.kind.parse::<MessageKind>().ok(),
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
            let tat = sqlx::query_scalar::<B::Db, i64>(d.budget_get)
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
                    throttled_until = Some(throttled_until.map_or(free_ms, |t| t.min(free_ms)));
                    continue;
                }
                *taken += 1;
            }
            picked.push(key);
        }

        // Claim every row of each picked message.
        let mut claimed: HashMap<MessageKey, Vec<OutboxDb>> = HashMap::new();
        let singles: Vec<i64> = picked
            .iter()
            .filter_map(|k| match k {
                MessageKey::Row(id) => Some(*id),
                _ => None,
            })
            .collect();
        for chunk in singles.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(
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
            let rows: Vec<OutboxDb> = q.build_query_as().fetch_all(&mut *c).await?;
            for r in rows {
                claimed.entry(MessageKey::Row(r.id)).or_default().push(r);
            }
        }
        for key in &picked {
            let q = match key {
                MessageKey::Row(_) => continue,
                MessageKey::Fixed(mid) => {
                    sqlx::query_as::<B::Db, OutboxDb>(sql::OUTBOX_CLAIM_FIXED)
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
                } => sqlx::query_as::<B::Db, OutboxDb>(if *class == "escalate" {
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

        // Spend the budget of what was claimed; rows that do not parse leave the queue.
        let mut spent: BTreeMap<&str, i64> = BTreeMap::new();
        let mut messages = Vec::with_capacity(picked.len());
        let mut corrupt = Vec::new();
        for key in picked {
            let Some(mut rows) = claimed.remove(key) else {
                continue;
            };
            if rows.is_empty() {
                continue;
            }
            rows.sort_by_key(|r| r.id);
            let budget = budgets.get_key_value(rows[0].channel.as_str());
            let mut message: Vec<OutboxRow> = Vec::with_capacity(rows.len());
            for r in rows {
                let id = r.id;
                match OutboxRow::try_from(r) {
                    Ok(row) => message.push(row),
                    Err(StoreError::Corrupt(e)) => {
                        sqlx::query(sql::OUTBOX_CORRUPT)
                            .bind(id)
                            .bind(e.to_string())
                            .execute(&mut *c)
                            .await?;
                        corrupt.push(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            if !message.is_empty() {
                if let Some((channel, _)) = budget {
                    *spent.entry(channel.as_str()).or_default() += 1;
                }
                messages.push(message);
            }
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
        Ok(ClaimedOutbox {
            messages,
            throttled_until,
            corrupt,
        })
    }

    pub(crate) async fn insert_audit(c: &mut Conn<B>, e: &AuditEntry) -> Result<()> {
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

    /// Audit entries in multi-row statements.
    pub(crate) async fn insert_audits(c: &mut Conn<B>, audit: &[&AuditEntry]) -> Result<()> {
        for chunk in audit.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::AUDIT_INSERT_HEAD);
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.at)
                    .push_bind(&e.actor)
                    .push_bind(&e.action)
                    .push_bind(&e.subject)
                    .push_bind(&e.detail_json);
            });
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_history(
        c: &mut Conn<B>,
        task_id: i64,
        at: Millis,
        from: TaskState,
        to: TaskState,
        actor: &str,
        note: Option<&str>,
    ) -> Result<()> {
        sqlx::query(sql::HISTORY_INSERT)
            .bind(task_id)
            .bind(at)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(actor)
            .bind(note)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// Insert a timer unless its key exists. `round` (when given) is the timer's round and
    /// the scope of its `task_key`; a timer without `task_key` belongs to `task`.
    pub(crate) async fn insert_timer(
        c: &mut Conn<B>,
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
                sqlx::query_scalar::<B::Db, i64>(sql::TASK_ID_BY_KEY)
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
            .bind(t.kind.as_str())
            .bind(t.due_at)
            .bind(t.payload.to_json())
            .execute(&mut *c)
            .await?;
        Ok(done.rows_affected())
    }

    /// Timers in multi-row statements, each with the task id it names (`None` for timers of
    /// no task); returns how many were inserted.
    pub(crate) async fn insert_timers(
        c: &mut Conn<B>,
        timers: &[(&NewTimer, Option<i64>, Option<i64>)],
    ) -> Result<u64> {
        let mut inserted = 0;
        for chunk in timers.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TIMERS_INSERT_HEAD);
            q.push_values(chunk, |mut b, (t, round_id, task_id)| {
                b.push_bind(t.key.as_str())
                    .push_bind(*round_id)
                    .push_bind(*task_id)
                    .push_bind(t.kind.as_str())
                    .push_bind(t.due_at)
                    .push_bind(t.payload.to_json());
            });
            q.push(" ON CONFLICT (key) DO NOTHING");
            inserted += q.build().execute(&mut *c).await?.rows_affected();
        }
        Ok(inserted)
    }

    pub(crate) async fn insert_task(
        c: &mut Conn<B>,
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
            .bind(t.assignee_kind.as_str())
            .bind(&t.assignee_id)
            .bind(&t.assignee_name)
            .bind(t.due_at)
            .bind(t.state.as_str())
            .bind(at)
            .bind(t.provisional)
            .bind(t.person.as_ref().map(|p| p.id))
            .bind(t.person.as_ref().map(json))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// Insert a round, its tasks and its timers; None when the kickoff key is used.
    pub(crate) async fn insert_round(
        c: &mut Conn<B>,
        r: &NewRound,
        tasks: &[NewTask],
        timers: &[NewTimer],
    ) -> Result<Option<i64>> {
        let Some(id) = Self::insert_round_row(c, r).await? else {
            return Ok(None);
        };
        Self::insert_round_slice(c, id, r.created_at, tasks, timers).await?;
        Ok(Some(id))
    }

    /// Insert a round's row alone; None when the kickoff key is used.
    pub(crate) async fn insert_round_row(c: &mut Conn<B>, r: &NewRound) -> Result<Option<i64>> {
        let units = r.units.as_ref().map(json);
        let id = sqlx::query_scalar::<B::Db, i64>(sql::ROUND_INSERT)
            .bind(&r.tag)
            .bind(&r.workflow_id)
            .bind(r.version_id)
            .bind(&r.start_date)
            .bind(json(&r.params))
            .bind(units)
            .bind(r.created_at)
            .bind(&r.kickoff_key)
            .fetch_optional(&mut *c)
            .await?;
        Ok(id)
    }

    /// Insert some of round `id`'s tasks and timers. A timer's task is looked up among
    /// `tasks` first, then among the round's rows already written (a round written slice
    /// by slice keeps no map of every task's id).
    pub(crate) async fn insert_round_slice(
        c: &mut Conn<B>,
        id: i64,
        created_at: Millis,
        tasks: &[NewTask],
        timers: &[NewTimer],
    ) -> Result<()> {
        // Multi-row inserts: a statement per row made a 100k-branch round take minutes.
        // Task ids come back with their keys for the timers.
        let mut task_ids = HashMap::with_capacity(tasks.len());
        for chunk in tasks.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TASKS_INSERT_HEAD);
            q.push_values(chunk, |mut b, t| {
                b.push_bind(id)
                    .push_bind(t.key.as_str())
                    .push_bind(t.task.as_str())
                    .push_bind(t.stage.as_str())
                    .push_bind(t.title.as_str())
                    .push_bind(t.assignee_kind.as_str())
                    .push_bind(t.assignee_id.as_str())
                    .push_bind(t.assignee_name.as_str())
                    .push_bind(t.due_at)
                    .push_bind(t.state.as_str())
                    .push_bind(None::<i64>)
                    .push_bind(created_at)
                    .push_bind(t.provisional)
                    .push_bind(t.person.as_ref().map(|p| p.id))
                    .push_bind(t.person.as_ref().map(json));
            });
            q.push(" RETURNING id, key");
            let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *c).await?;
            task_ids.extend(rows.into_iter().map(|(i, k)| (k, i)));
        }
        let mut rows = Vec::with_capacity(timers.len());
        for t in timers {
            let task_id = match &t.task_key {
                None => None,
                Some(k) => match task_ids.get(k) {
                    Some(i) => Some(*i),
                    None => Some(
                        sqlx::query_scalar::<B::Db, i64>(sql::TASK_ID_BY_KEY)
                            .bind(id)
                            .bind(k.as_str())
                            .fetch_optional(&mut *c)
                            .await?
                            .ok_or_else(|| {
                                StoreError::NotFound(format!(
                                    "task `{k}` in round {id} for timer `{}`",
                                    t.key
                                ))
                            })?,
                    ),
                },
            };
            rows.push((t, Some(id), task_id));
        }
        Self::insert_timers(c, &rows).await?;
        Ok(())
    }

    /// Make a waiting task owed (other states are left alone).
    pub(crate) async fn activate(c: &mut Conn<B>, t: &Transition, a: &Activation) -> Result<()> {
        let dep = sqlx::query_as::<B::Db, TaskDb>(B::dialect().task_by_key_locked)
            .bind(a.round_id)
            .bind(&a.task_key)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("task `{}` in round {}", a.task_key, a.round_id))
            })?;
        let dep = super::TaskRow::try_from(dep)?;
        if dep.state != TaskState::Waiting {
            return Ok(());
        }
        sqlx::query(sql::TASK_ACTIVATE)
            .bind(dep.id)
            .bind(a.due_at)
            .bind(t.at)
            .bind(a.provisional)
            .execute(&mut *c)
            .await?;
        let (from, to) = (TaskState::Waiting, TaskState::Open);
        Self::insert_history(c, dep.id, t.at, from, to, &t.actor, None).await?;
        for timer in &a.timers {
            Self::insert_timer(c, timer, Some(a.round_id), Some(dep.id)).await?;
        }
        Ok(())
    }

    /// One attempt at storing a version; None when a concurrent writer took the number
    /// (the transaction is rolled back and the caller retries).
    pub(crate) async fn try_put_version(
        store: &B,
        workflow_id: &str,
        hash: &str,
        source: &str,
        at: Millis,
    ) -> Result<Option<VersionRow>> {
        let mut tx = store.begin_write().await?;
        let found = sqlx::query_as::<B::Db, VersionDb>(sql::VERSION_BY_HASH)
            .bind(workflow_id)
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
        let row = match found {
            Some(row) => Some(row),
            None => {
                sqlx::query_as::<B::Db, VersionDb>(sql::VERSION_INSERT)
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
                Ok(Some(row.try_into()?))
            }
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }
}

/// A value as a JSON column.
fn json<T: serde::Serialize>(v: &T) -> String {
    // Maps and lists of strings: serialising cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}
