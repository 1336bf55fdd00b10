//! The [`Store`] impl of every [`Backend`]: one body for SQLite and PostgreSQL, over the
//! shared SQL (`sql.rs`) and transaction helpers (`shared.rs`). Rows are parsed into their
//! domain types on the way out (`rows.rs`).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::bulk::{TxPeople, TxRound};
use super::rows::{
    AuditDb, HistoryDb, OutboxDb, RoundDb, SessionDb, TaskDb, TimerDb, TokenDb, VersionDb, convert,
    convert_opt, word,
};
use super::shared::{Backend, Conn, RowsAffected as _, Tx};
use super::sql;
use super::{
    AuditEntry, AuditRow, ClaimedOutbox, ClaimedTimers, Counts, Decide, Delivery, DigestHold,
    FireEffects, HistoryRow, Millis, NewNotification, NewRound, NewTask, NewTimer, OutboxClaim,
    OutboxRow, Reprojection, Result, RoundRow, SessionRow, Store, StoreError, TaskRow, TimerRow,
    TokenRow, Transition, VersionRow,
};
use super::{EventFilter, EventRow, NewEvent, PeopleFilter, PersonRow, PoolWrite};
use super::{PeopleWriter, RoundWriter};
use super::{RatingsWrite, ResultFilter, ResultRow};
use super::{SubmissionChange, SubmissionRow};
use crate::core::pool::Person;
use crate::core::state::{RoundStatus, TaskState};

/// How often storing a workflow version may lose the race for the next number.
const VERSION_PUT_ATTEMPTS: usize = 32;

#[async_trait]
impl<B> Store for B
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
    fn backend(&self) -> &'static str {
        B::NAME
    }

    fn firing_loops(&self) -> usize {
        B::FIRING_LOOPS
    }

    async fn migrate(&self) -> Result<()> {
        self.run_migrations().await
    }

    async fn ready(&self) -> Result<bool> {
        sqlx::query(sql::SELECT_ONE).execute(self.pool()).await?;
        let latest = B::migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .max();
        let applied = sqlx::query_scalar::<B::Db, Option<i64>>(sql::LATEST_MIGRATION)
            .fetch_one(self.pool())
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
        // Losing means another writer took the number and committed, so each retry
        // follows someone's progress; 3 attempts were too few when 8 daemons or requests
        // stored 4 new versions at once (seen on Postgres).
        for _ in 0..VERSION_PUT_ATTEMPTS {
            if let Some(row) = Tx::try_put_version(self, workflow_id, hash, source, at).await? {
                return Ok(row);
            }
        }
        Err(StoreError::NotFound(format!(
            "version of workflow `{workflow_id}` with hash {hash} (kept losing the race for \
             the next version number)"
        )))
    }

    async fn workflow_versions(&self, workflow_id: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query_as::<B::Db, VersionDb>(sql::VERSIONS_OF)
            .bind(workflow_id)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn workflow_version(&self, id: i64) -> Result<Option<VersionRow>> {
        let row = sqlx::query_as::<B::Db, VersionDb>(sql::VERSION_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn create_round(
        &self,
        round: NewRound,
        tasks: Vec<NewTask>,
        timers: Vec<NewTimer>,
        audit: AuditEntry,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let Some(id) = Tx::<B>::insert_round(&mut tx, &round, &tasks, &timers).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        self.after_timers_added(timers.len() as u64).await?;
        Ok(Some(id))
    }

    async fn round(&self, id: i64) -> Result<Option<RoundRow>> {
        let row = sqlx::query_as::<B::Db, RoundDb>(sql::ROUND_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn rounds(&self) -> Result<Vec<RoundRow>> {
        let rows = sqlx::query_as::<B::Db, RoundDb>(sql::ROUNDS_ALL)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn set_round_status(
        &self,
        id: i64,
        status: RoundStatus,
        audit: AuditEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(sql::ROUND_SET_STATUS)
            .bind(id)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound(format!("round {id}")));
        }
        if status == RoundStatus::Cancelled {
            // Tasks before timers: the same lock order as `transition`.
            let owed = sqlx::query_as::<B::Db, (i64, String)>(B::dialect().tasks_to_cancel)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            for (task_id, state) in owed {
                let state: TaskState = word("tasks", task_id, "state", state)?;
                sqlx::query(sql::TASK_CANCEL)
                    .bind(task_id)
                    .bind(audit.at)
                    .execute(&mut *tx)
                    .await?;
                let to = TaskState::Cancelled;
                Tx::<B>::insert_history(&mut tx, task_id, audit.at, state, to, &audit.actor, None)
                    .await?;
            }
            sqlx::query(sql::TIMERS_CANCEL_OF_ROUND)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tasks(&self, round_id: i64) -> Result<Vec<TaskRow>> {
        let rows = sqlx::query_as::<B::Db, TaskDb>(sql::TASKS_OF_ROUND)
            .bind(round_id)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn task(&self, id: i64) -> Result<Option<TaskRow>> {
        let row = sqlx::query_as::<B::Db, TaskDb>(sql::TASK_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn tasks_by_ids(&self, ids: &[i64]) -> Result<Vec<TaskRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TASKS_BY_IDS);
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            let rows: Vec<TaskDb> = q.build_query_as().fetch_all(self.pool()).await?;
            out.extend(convert::<_, TaskRow>(rows)?);
        }
        Ok(out)
    }

    async fn task_by_key(&self, round_id: i64, key: &str) -> Result<Option<TaskRow>> {
        let row = sqlx::query_as::<B::Db, TaskDb>(sql::TASK_BY_KEY)
            .bind(round_id)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn task_history(&self, task_id: i64) -> Result<Vec<HistoryRow>> {
        let rows = sqlx::query_as::<B::Db, HistoryDb>(sql::HISTORY_OF)
            .bind(task_id)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn transition_with(
        &self,
        t: Transition,
        read: &[String],
        decide: Decide<'_>,
    ) -> Result<TaskRow> {
        let d = B::dialect();
        let mut tx = self.begin_write().await?;
        let round_id = sqlx::query_scalar::<B::Db, i64>(sql::ROUND_OF_TASK)
            .bind(t.task_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {}", t.task_id)))?;
        sqlx::query_scalar::<B::Db, i64>(d.round_lock)
            .bind(round_id)
            .fetch_optional(&mut *tx)
            .await?;
        let task = sqlx::query_as::<B::Db, TaskDb>(d.task_by_id_locked)
            .bind(t.task_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {}", t.task_id)))?;
        let task = TaskRow::try_from(task)?;
        if !t.from.contains(&task.state) {
            tx.rollback().await?;
            return Err(StoreError::WrongState {
                task: task.id,
                state: task.state,
                action: t.action,
            });
        }
        let completed_at = match t.to {
            TaskState::Done | TaskState::Waived => Some(t.at),
            TaskState::Open => None,
            _ => task.completed_at,
        };
        sqlx::query(sql::TASK_SET_STATE)
            .bind(task.id)
            .bind(t.to.as_str())
            .bind(t.at)
            .bind(completed_at)
            .execute(&mut *tx)
            .await?;
        let note = t.note.as_deref();
        Tx::<B>::insert_history(&mut tx, task.id, t.at, task.state, t.to, &t.actor, note).await?;
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
            Tx::<B>::insert_timer(&mut tx, timer, Some(task.round_id), Some(task.id)).await?;
        }
        for a in &t.activate {
            Tx::<B>::activate(&mut tx, &t, a).await?;
        }
        Tx::<B>::insert_audit(&mut tx, &t.audit).await?;
        match &t.submission {
            None => {}
            Some(SubmissionChange::Insert(s, audit)) => {
                Tx::<B>::insert_submission_in(&mut tx, s, audit).await?;
            }
            Some(SubmissionChange::Decide {
                id,
                outcome,
                by,
                reason,
            }) => {
                let decided = Tx::<B>::decide_submission_in(
                    &mut tx,
                    *id,
                    *outcome,
                    t.at,
                    by,
                    reason.as_deref(),
                )
                .await?;
                if !decided {
                    tx.rollback().await?;
                    return Err(StoreError::Exists(format!(
                        "submission {id} of task {} was already decided",
                        task.id
                    )));
                }
            }
        }
        if !read.is_empty() {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TASKS_OF_ROUND_BY_TASK);
            q.push_bind(task.round_id);
            q.push(" AND task IN (");
            let mut list = q.separated(", ");
            for id in read {
                list.push_bind(id.as_str());
            }
            q.push(") ORDER BY id");
            let rows: Vec<TaskDb> = q.build_query_as().fetch_all(&mut *tx).await?;
            let rows: Vec<TaskRow> = convert(rows)?;
            let decided = decide(&rows);
            for a in &decided.activate {
                Tx::<B>::activate(&mut tx, &t, a).await?;
            }
            for e in &decided.audit {
                Tx::<B>::insert_audit(&mut tx, e).await?;
            }
        }
        let row = sqlx::query_as::<B::Db, TaskDb>(sql::TASK_BY_ID)
            .bind(task.id)
            .fetch_one(&mut *tx)
            .await?;
        let row = TaskRow::try_from(row)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn task_timers(&self, task_ids: &[i64]) -> Result<Vec<TimerRow>> {
        let mut out = Vec::new();
        for chunk in task_ids.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TIMERS_OF_TASKS);
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(") ORDER BY task_id, due_at, id");
            let rows: Vec<TimerDb> = q.build_query_as().fetch_all(self.pool()).await?;
            out.extend(convert::<_, TimerRow>(rows)?);
        }
        Ok(out)
    }

    async fn add_timers(&self, timers: Vec<NewTimer>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut inserted = 0;
        // Timers that name a task need its id looked up; the rest go in multi-row
        // statements.
        let (by_task, plain): (Vec<&NewTimer>, Vec<&NewTimer>) =
            timers.iter().partition(|t| t.task_key.is_some());
        for t in by_task {
            inserted += Tx::<B>::insert_timer(&mut tx, t, None, None).await?;
        }
        let plain: Vec<_> = plain.into_iter().map(|t| (t, t.round_id, None)).collect();
        inserted += Tx::<B>::insert_timers(&mut tx, &plain).await?;
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
    ) -> Result<ClaimedTimers> {
        let d = B::dialect();
        let mut rows: Vec<TimerDb> = Tx::claim(
            self,
            [d.claim_expired, d.claim_due],
            now,
            owner,
            lease_ms,
            limit,
        )
        .await?;
        rows.sort_by_key(|r| (r.due_at, r.id));
        let mut out = ClaimedTimers::default();
        for r in rows {
            r.claimed_into(&mut out);
        }
        Ok(out)
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
        // A statement per row made a batch of reminders cost several round trips each; one
        // update and multi-row inserts keep it to a handful.
        let mut fired = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::TIMERS_FIRE_HEAD);
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
        let applied = || {
            batch
                .iter()
                .filter(|(id, _)| fired.contains(id))
                .map(|(_, e)| e)
        };
        let notifications: Vec<&NewNotification> =
            applied().flat_map(|e| e.notifications.iter()).collect();
        B::insert_notifications(&mut tx, &notifications).await?;
        let mut round_timers = 0;
        for effects in applied() {
            for t in &effects.timers {
                Tx::<B>::insert_timer(&mut tx, t, None, None).await?;
            }
            if let Some((round, tasks, timers)) = &effects.round {
                // A used kickoff key means the round exists: nothing to add.
                if Tx::<B>::insert_round(&mut tx, round, tasks, timers)
                    .await?
                    .is_some()
                {
                    round_timers += timers.len() as u64;
                }
            }
        }
        let audit: Vec<&AuditEntry> = applied().flat_map(|e| e.audit.iter()).collect();
        Tx::<B>::insert_audits(&mut tx, &audit).await?;
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
        Ok(sqlx::query_scalar::<B::Db, Option<i64>>(sql::NEXT_DUE)
            .fetch_one(self.pool())
            .await?)
    }

    async fn pending_timers(&self, round_id: Option<i64>, limit: i64) -> Result<Vec<TimerRow>> {
        let rows = sqlx::query_as::<B::Db, TimerDb>(sql::PENDING_TIMERS)
            .bind(round_id)
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn timers_with_prefix(&self, prefix: &str) -> Result<Vec<TimerRow>> {
        let rows = sqlx::query_as::<B::Db, TimerDb>(sql::TIMERS_WITH_PREFIX)
            .bind(prefix)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn outbox_after(&self, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query_as::<B::Db, OutboxDb>(sql::OUTBOX_AFTER)
            .bind(after_id)
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn outbox_for_task(&self, task_id: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query_as::<B::Db, OutboxDb>(sql::OUTBOX_FOR_TASK)
            .bind(task_id)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn enqueue(&self, rows: Vec<NewNotification>, audit: Option<AuditEntry>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let refs: Vec<&NewNotification> = rows.iter().collect();
        B::insert_notifications(&mut tx, &refs).await?;
        if let Some(a) = &audit {
            Tx::<B>::insert_audit(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_outbox(&self, c: &OutboxClaim) -> Result<ClaimedOutbox> {
        let mut tx = self.begin_write().await?;
        // One claimer at a time: seeds read and messages claimed by one daemon are never
        // split with another (SQLite's write lock already does this).
        sqlx::query(B::dialect().outbox_lock)
            .execute(&mut *tx)
            .await?;
        let out = Tx::<B>::claim_outbox(&mut tx, c).await?;
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

    async fn refund_budget(&self, channel: &str, per_minute: u32, messages: u32) -> Result<()> {
        let rate = super::budget::Rate::per_minute(per_minute);
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

    async fn settle_outbox(&self, ids: &[i64], owner: &str, outcome: Delivery) -> Result<u64> {
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
            // Tell the office only if we really moved rows to dead (not on a lost lease,
            // where another daemon owns the outcome).
            if n > 0 {
                let notices: Vec<&NewNotification> = notices.iter().collect();
                B::insert_notifications(&mut tx, &notices).await?;
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn next_outbox_at(&self, hold: DigestHold) -> Result<Option<Millis>> {
        let (free, held, lease) = sqlx::query_as::<B::Db, (Option<i64>, Option<i64>, Option<i64>)>(
            B::dialect().outbox_next,
        )
        .fetch_one(self.pool())
        .await?;
        // Held rows are released in due order (`release` is monotonic), so the earliest
        // held row's release is the earliest of them all.
        Ok([free, held.map(|t| hold.release(t)), lease]
            .into_iter()
            .flatten()
            .min())
    }

    async fn create_token(&self, token: TokenRow, audit: AuditEntry) -> Result<()> {
        let exists = || {
            StoreError::Exists(format!(
                "a token named `{}` already exists; revoke it or choose another name",
                token.name
            ))
        };
        let mut tx = self.begin_write().await?;
        let old = sqlx::query_as::<B::Db, TokenDb>(sql::TOKEN_BY_NAME)
            .bind(&token.name)
            .fetch_optional(&mut *tx)
            .await?;
        let q = match old {
            Some(old) if old.is_revoked() => {
                // The revoked token's sessions are gone already; make sure of it before
                // the name means another token.
                sqlx::query(sql::SESSIONS_OF_TOKEN_DELETE)
                    .bind(&token.name)
                    .execute(&mut *tx)
                    .await?;
                sql::TOKEN_REPLACE_REVOKED
            }
            Some(_) => return Err(exists()),
            None => sql::TOKEN_INSERT,
        };
        let inserted = sqlx::query(q)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(token.rights.as_str())
            .bind(token.created_at)
            .bind(token.revoked_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {}
            // Another writer took the name between our look and our insert.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Err(exists()),
            Err(e) => return Err(e.into()),
        }
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let rows = sqlx::query_as::<B::Db, TokenDb>(sql::TOKENS_ALL)
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn revoke_token(&self, name: &str, audit: AuditEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(sql::TOKEN_REVOKE)
            .bind(name)
            .bind(audit.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(sql::SESSIONS_OF_TOKEN_DELETE)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn token_used(&self, name: &str, at: Millis) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::TOKEN_USED)
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_session(&self, session: SessionRow, audit: AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::SESSION_INSERT)
            .bind(&session.id_hash)
            .bind(&session.token_name)
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(session.last_seen)
            .execute(&mut *tx)
            .await?;
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: Millis) -> Result<Option<(SessionRow, TokenRow)>> {
        let row = sqlx::query_as::<B::Db, SessionDb>(sql::SESSION_GET)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn touch_session(
        &self,
        id_hash: &str,
        last_seen: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::SESSION_TOUCH)
            .bind(id_hash)
            .bind(last_seen)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::SESSION_DELETE)
            .bind(id_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Millis) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(sql::SESSIONS_EXPIRED_DELETE)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>> {
        let row = sqlx::query_as::<B::Db, TokenDb>(sql::TOKEN_BY_HASH)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        convert_opt(row)
    }

    async fn setting_or_insert(&self, key: &str, default: &str) -> Result<String> {
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::SETTING_INSERT)
            .bind(key)
            .bind(default)
            .execute(&mut *tx)
            .await?;
        let value = sqlx::query_scalar::<B::Db, String>(sql::SETTING_GET)
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
        Ok(sqlx::query_scalar::<B::Db, String>(sql::SETTING_GET)
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(
            sqlx::query_as::<B::Db, (String, String)>(sql::SETTINGS_WITH_PREFIX)
                .bind(prefix)
                .fetch_all(self.pool())
                .await?,
        )
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

    async fn reproject(&self, r: Reprojection) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let units = r
            .units
            .as_ref()
            .map(|u| serde_json::to_string(u).unwrap_or_default());
        sqlx::query(sql::ROUND_REPIN)
            .bind(r.round_id)
            .bind(r.version_id)
            .bind(units)
            .execute(&mut *tx)
            .await?;
        for id in &r.cancel_timers {
            sqlx::query(sql::TIMER_CANCEL_PENDING)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for t in &r.new_tasks {
            Tx::<B>::insert_task(&mut tx, r.round_id, t, r.at).await?;
        }
        for id in &r.cancel_tasks {
            let row = sqlx::query_as::<B::Db, TaskDb>(B::dialect().task_by_id_locked)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = convert_opt::<_, TaskRow>(row)? else {
                continue;
            };
            if !row.state.is_owed() {
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
            let to = TaskState::Cancelled;
            let note = r.note.as_deref();
            Tx::<B>::insert_history(&mut tx, *id, r.at, row.state, to, &r.actor, note).await?;
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
            Tx::<B>::insert_timer(&mut tx, t, Some(r.round_id), None).await?;
        }
        for a in &r.audit {
            Tx::<B>::insert_audit(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn counts(&self, now: Millis) -> Result<Counts> {
        let (pending_timers, overdue_tasks, outbox_pending, outbox_dead) =
            sqlx::query_as::<B::Db, (i64, i64, i64, i64)>(sql::COUNTS)
                .bind(now)
                .fetch_one(self.pool())
                .await?;
        Ok(Counts {
            pending_timers,
            overdue_tasks,
            outbox_pending,
            outbox_dead,
        })
    }

    async fn replace_timer(&self, old: i64, new: NewTimer, audit: AuditEntry) -> Result<bool> {
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
        Tx::<B>::insert_timer(&mut tx, &new, None, None).await?;
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        Tx::<B>::insert_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_after(&self, after_id: i64, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query_as::<B::Db, AuditDb>(sql::AUDIT_AFTER)
            .bind(after_id)
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await?;
        convert(rows)
    }

    async fn begin_round(&self, round: NewRound) -> Result<Option<Box<dyn RoundWriter + '_>>> {
        let mut tx = self.begin_write().await?;
        let Some(id) = Tx::<B>::insert_round_row(&mut tx, &round).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        Ok(Some(Box::new(TxRound {
            store: self,
            tx,
            id,
            created_at: round.created_at,
            timers: 0,
        })))
    }

    async fn begin_people(&self, who: PoolWrite) -> Result<Box<dyn PeopleWriter + '_>> {
        let tx = self.begin_write().await?;
        Ok(Box::new(TxPeople::<B> { tx, who }))
    }

    async fn pool_refs(&self) -> Result<Vec<crate::core::plan::PersonRef>> {
        Tx::pool_refs(self).await
    }

    async fn people_keys(&self) -> Result<Vec<(i64, String, String, chrono::NaiveDate)>> {
        Tx::people_keys(self).await
    }

    async fn people(&self, filter: &PeopleFilter) -> Result<Vec<PersonRow>> {
        Tx::people(self, filter).await
    }

    async fn person(&self, id: i64) -> Result<Option<PersonRow>> {
        Tx::person_read(self, id).await
    }

    async fn write_people(
        &self,
        adds: &[Person],
        updates: &[(i64, Person)],
        who: &PoolWrite,
    ) -> Result<(Vec<i64>, u64)> {
        Tx::write_people(self, adds, updates, who).await
    }

    async fn update_person(&self, id: i64, person: &Person, who: &PoolWrite) -> Result<PersonRow> {
        let mut tx = self.begin_write().await?;
        Tx::<B>::update_person(&mut tx, id, person, who).await?;
        let row = Tx::<B>::person(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("person {id}")))?;
        tx.commit().await?;
        Ok(row)
    }

    async fn person_audit(&self, id: i64) -> Result<Vec<AuditRow>> {
        Tx::person_audit(self, id).await
    }

    async fn record_event(&self, event: &NewEvent, who: &PoolWrite) -> Result<EventRow> {
        Tx::record_event(self, event, who).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>> {
        Tx::events(self, filter).await
    }

    async fn write_ratings(&self, w: &RatingsWrite, who: &PoolWrite) -> Result<Vec<EventRow>> {
        Tx::write_ratings(self, w, who).await
    }

    async fn results(&self, filter: &ResultFilter) -> Result<Vec<ResultRow>> {
        Tx::results(self, filter).await
    }

    async fn task_submissions(&self, task_id: i64) -> Result<Vec<SubmissionRow>> {
        Tx::submissions_where(self, super::submissions::BY_TASK, task_id).await
    }

    async fn round_submissions(&self, round_id: i64) -> Result<Vec<SubmissionRow>> {
        Tx::submissions_where(self, super::submissions::BY_ROUND, round_id).await
    }

    async fn person_tasks_done(
        &self,
        workflow: &str,
        tasks: &[String],
    ) -> Result<Vec<(i64, Millis)>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::QueryBuilder::<B::Db>::new(sql::PERSON_TASKS_DONE_HEAD);
        q.push_bind(workflow);
        q.push(") AND task IN (");
        let mut list = q.separated(", ");
        for t in tasks {
            list.push_bind(t.as_str());
        }
        q.push(")");
        let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows)
    }
}
