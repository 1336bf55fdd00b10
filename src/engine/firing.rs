//! The async shell around the pure firing core ([`super::fire`]): claim a batch of due
//! timers, read what their effects need, call the core, and write every effect in the one
//! transaction that marks the timers fired.

use super::fire::{self, Ctx, Reads};
use super::{CLAIM_BATCH, Engine, EngineError, Result, from_ms, is_data_error, ms};
use crate::core::state::TimerKind;
use crate::store::{ClaimedTimers, FireEffects, TimerRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// One timer that fired, for logs and `simulate`.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The timer as claimed.
    pub timer: TimerRow,
    /// When it was processed.
    pub at: DateTime<Utc>,
    /// How many notifications it enqueued.
    pub notifications: usize,
    /// The round it started, for kickoffs.
    pub started_round: bool,
}

impl Engine {
    /// Fire every timer due now, repeatedly, until none is due. Returns what fired.
    ///
    /// Each claimed batch is written in one transaction (a commit per timer capped the
    /// firing rate at a few thousand per second on SQLite).
    pub async fn fire_due(&self) -> Result<Vec<Fired>> {
        let mut fired = Vec::new();
        while let Some(batch) = self.fire_batch().await? {
            fired.extend(batch);
        }
        Ok(fired)
    }

    /// Claim and fire one batch of due timers; None when nothing could be claimed. The
    /// daemon's loop fires batch by batch, so a burst of 100k timers is never held in
    /// memory at once and a shutdown is noticed between batches.
    pub async fn fire_batch(&self) -> Result<Option<Vec<Fired>>> {
        let now = self.clock.now();
        // Phase durations, for `YANZHEN_LOG=yanzhen::engine=debug` when tuning a backend.
        let started = std::time::Instant::now();
        let ClaimedTimers {
            timers: batch,
            corrupt,
        } = self
            .store
            .claim_due_timers(ms(now), &self.owner, self.lease_ms, CLAIM_BATCH as i64)
            .await?;
        if batch.is_empty() && corrupt.is_empty() {
            return Ok(None);
        }
        let claimed = started.elapsed();
        // A row the batch reads that does not parse fails the whole read: then each timer
        // reads for itself, so only the timers that need that row fail.
        let reads = match self.prefetch(&batch, now).await {
            Ok(r) => Some(r),
            Err(EngineError::Store(e)) if e.is_corrupt() => None,
            Err(e) => return Err(e),
        };
        let read = started.elapsed();
        let catalog = self.catalog();
        let versions = self.versions_snapshot();
        let links = self.link_signer();
        let cx = Ctx {
            catalog: &catalog,
            versions: &versions,
            renderer: &self.renderer,
            links: links.as_ref(),
            now,
        };
        let mut items = Vec::with_capacity(batch.len() + corrupt.len());
        let mut keys = Vec::with_capacity(items.capacity());
        for t in &batch {
            let effects = match &reads {
                Some(reads) => fire::effects(&cx, reads, t),
                None => match self.prefetch(std::slice::from_ref(t), now).await {
                    Ok(own) => fire::effects(&cx, &own, t),
                    // The database failed, not the timer: leave it claimed; it is fired
                    // when the lease expires, like after a crash.
                    Err(EngineError::Store(e)) if !e.is_corrupt() => return Err(e.into()),
                    Err(e) => Err(e),
                },
            };
            // A timer whose effects cannot be computed (its data, or a row it needs, does
            // not parse) is fired with an audit entry instead of retried forever.
            let effects = effects.unwrap_or_else(|e| failed(&t.key, now, &e.to_string()));
            items.push((t.id, effects));
            keys.push(t.key.as_str());
        }
        // So is a claimed timer whose own row does not parse.
        for c in &corrupt {
            items.push((c.id, failed(&c.key, now, &c.error.to_string())));
            keys.push(c.key.as_str());
        }
        let computed = started.elapsed();
        let outcome = match self.store.fire_timers(&self.owner, ms(now), &items).await {
            Ok(o) => o,
            Err(e) if is_data_error(&e) => self.fire_one_by_one(&keys, &mut items, now).await?,
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(
            timers = batch.len(),
            claim_ms = claimed.as_secs_f64() * 1e3,
            read_ms = (read - claimed).as_secs_f64() * 1e3,
            effects_ms = (computed - read).as_secs_f64() * 1e3,
            write_ms = (started.elapsed() - computed).as_secs_f64() * 1e3,
            "batch fired"
        );
        let mut fired = Vec::with_capacity(batch.len());
        let mut closed_rounds: Vec<i64> = Vec::new();
        let mut woke_outbox = false;
        for ((t, (_, effects)), ok) in batch.into_iter().zip(items).zip(outcome) {
            let notifications = effects.notifications.len();
            if !ok {
                tracing::warn!(timer = %t.key, "lease lost before firing; another daemon has it");
                continue;
            }
            tracing::info!(timer = %t.key, kind = %t.kind, late_ms = ms(now) - t.due_at, notifications, "timer fired");
            if notifications > 0 && !woke_outbox {
                self.wake_outbox();
                woke_outbox = true;
            }
            metrics::counter!("yanzhen_timers_fired_total", "kind" => t.kind.as_str()).increment(1);
            metrics::histogram!("yanzhen_timer_lateness_seconds")
                .record((ms(now) - t.due_at).max(0) as f64 / 1000.0);
            if t.kind == TimerKind::StageClose
                && let Some(r) = t.round_id
                && !closed_rounds.contains(&r)
            {
                closed_rounds.push(r);
            }
            fired.push(Fired {
                timer: t,
                at: now,
                notifications,
                started_round: effects.round.is_some(),
            });
        }
        // A round whose only owed tasks wait for outside events finishes when its last
        // stage closes (the check is cheap unless that is the case).
        for r in closed_rounds {
            if let Err(e) = self.finish_if_done(r, "daemon").await {
                tracing::warn!(round = r, error = %e, "could not check whether the round is finished");
            }
        }
        Ok(Some(fired))
    }

    /// A batch was refused because of one timer's data: fire them one at a time, so only
    /// the faulty timer is fired with an error audit instead of its effects.
    async fn fire_one_by_one(
        &self,
        keys: &[&str],
        items: &mut [(i64, FireEffects)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(items.len());
        for (key, item) in keys.iter().zip(items.iter_mut()) {
            let one = std::slice::from_ref(item);
            match self.store.fire_timers(&self.owner, ms(now), one).await {
                Ok(o) => out.push(o.first().copied().unwrap_or(false)),
                Err(e) if is_data_error(&e) => {
                    item.1 = failed(key, now, &e.to_string());
                    let o = self
                        .store
                        .fire_timers(&self.owner, ms(now), std::slice::from_ref(item))
                        .await?;
                    out.push(o.first().copied().unwrap_or(false));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The earliest instant something becomes due.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.store.next_due_at().await?.map(from_ms))
    }

    /// Everything the batch's effects read, in as few queries as the store allows: the
    /// tasks in one query, each round and workflow version once, the sibling timers of late
    /// chain timers, and the tasks of rounds with catch-up messages.
    pub(crate) async fn prefetch(&self, batch: &[TimerRow], now: DateTime<Utc>) -> Result<Reads> {
        let needs = fire::needs(batch, now);
        let mut reads = Reads::default();
        if !needs.tasks.is_empty() {
            reads.tasks = self
                .store
                .tasks_by_ids(&needs.tasks)
                .await?
                .into_iter()
                .map(|t| (t.id, t))
                .collect();
        }
        let mut rounds: Vec<i64> = needs.rounds.clone();
        rounds.extend(reads.tasks.values().map(|t| t.round_id));
        rounds.sort_unstable();
        rounds.dedup();
        for id in rounds {
            let round = self.store.round(id).await?;
            if let Some(r) = &round
                && !reads.workflows.contains_key(&r.version_id)
            {
                // A stored version that no longer parses loses only the workflow's own
                // templates; a database failure leaves the batch claimed.
                let wf = match self.workflow_of(r.version_id).await {
                    Ok(w) => Some(w),
                    Err(e @ EngineError::Store(_)) => return Err(e),
                    Err(e) => {
                        tracing::error!(version = r.version_id, error = %e, "sending with the built-in templates");
                        None
                    }
                };
                reads.workflows.insert(r.version_id, wf);
            }
            reads.rounds.insert(id, round);
        }
        if !needs.siblings.is_empty() {
            let mut siblings: HashMap<i64, Vec<TimerRow>> = HashMap::new();
            for t in self.store.task_timers(&needs.siblings).await? {
                if let Some(task) = t.task_id {
                    siblings.entry(task).or_default().push(t);
                }
            }
            reads.siblings = siblings;
        }
        for id in needs.round_tasks {
            reads.round_tasks.insert(id, self.store.tasks(id).await?);
        }
        if needs.people {
            reads.people = Some(self.pool_people().await?);
        }
        for year in needs.count_years {
            reads.counts.insert(year, self.count_reports(year).await?);
        }
        if needs.running_rounds {
            for r in self.store.rounds().await? {
                if r.status == crate::core::state::RoundStatus::Running {
                    reads
                        .round_tasks
                        .insert(r.id, self.store.tasks(r.id).await?);
                    reads.rounds.insert(r.id, Some(r));
                }
            }
        }
        Ok(reads)
    }
}

/// The effects of a timer whose own effects could not be computed or written: an audit
/// entry saying why, so the timer fires once instead of failing forever.
fn failed(key: &str, now: DateTime<Utc>, error: &str) -> FireEffects {
    tracing::error!(timer = %key, error = %error, "timer failed");
    fire::failed(key, now, error)
}
