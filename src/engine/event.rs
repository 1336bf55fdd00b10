//! Outside events (a job change, a promotion, a hospital stay …) and the tasks they owe.
//!
//! A workflow task due `{from: {event: KIND}, …}` is owed **each time** the event happens:
//! recording one occurrence for a person of a branch adds, to every running round whose
//! workflow has such tasks and in which that branch takes part, one task instance per
//! occurrence (key `TASK@UNIT/eID`), dated from the event's date by the planner and with
//! its own reminders, overdue reminders and escalations. The instance waiting in the round
//! for the event itself stays waiting (it stands for "whenever it happens"); it does not
//! hold the round open once the round's last stage has closed (see
//! [`super::transition`]).
//!
//! [`occurrence_tasks`] is pure: the rows to add are a function of the catalog, the
//! workflow, the round and the occurrence.

use super::round::plan_event;
use super::{Engine, EngineError, Result, audit, ms, timer_row};
use crate::catalog::Catalog;
use crate::core::definition::Workflow;
use crate::core::state::{AssigneeKind, RoundStatus, TaskState};
use crate::store::{AuditEntry, NewTask, NewTimer, Reprojection, RoundRow, TaskRow};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// One occurrence of an outside event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Stored event id; it keys the task instances the occurrence owes, so recording is
    /// idempotent per event.
    pub id: i64,
    /// Event id as the workflow declares it under `events:`.
    pub kind: String,
    /// The day it happened.
    pub date: NaiveDate,
    /// The unit (branch) of the person it happened to.
    pub unit: String,
    /// The person, by id and name, when the event is about one.
    pub person: Option<(i64, String)>,
    /// The person's tier (梯队), when known: the owed tasks then name the person
    /// (`tasks.person_id`), so that a counting rule counts them.
    pub person_tier: Option<u8>,
    /// Who recorded it (`token:NAME`, `cli`).
    pub actor: String,
}

/// What an occurrence adds to one round.
#[derive(Debug, Clone, Default)]
pub struct OccurrenceTasks {
    /// Task instances, one per workflow task due from the event.
    pub tasks: Vec<NewTask>,
    /// Their reminders, deadline notices, overdue reminders and escalations.
    pub timers: Vec<NewTimer>,
    /// One audit entry per task instance.
    pub audit: Vec<AuditEntry>,
}

/// The workflow task ids due from `{event: kind}`.
pub fn tasks_due_from(wf: &Workflow, kind: &str) -> Vec<String> {
    wf.tasks()
        .filter(|(_, t)| super::activation::event_anchor(t) == Some(kind))
        .map(|(_, t)| t.id.value.clone())
        .collect()
}

/// The task instances (and their timers) an occurrence owes in one round: none when the
/// workflow has no task due from the event or the unit does not take part in the round.
pub fn occurrence_tasks(
    cat: &Catalog,
    wf: &Workflow,
    round: &RoundRow,
    o: &Occurrence,
    now: DateTime<Utc>,
) -> Result<OccurrenceTasks> {
    let mut out = OccurrenceTasks::default();
    let owed = tasks_due_from(wf, &o.kind);
    if owed.is_empty() || round.units.as_ref().is_some_and(|u| !u.contains(&o.unit)) {
        return Ok(out);
    }
    let tz = crate::core::validate::workflow_tz(wf, cat.config.tz());
    let start_of_day = o
        .date
        .and_hms_opt(0, 0, 0)
        .and_then(|d| tz.from_local_datetime(&d).earliest())
        .ok_or_else(|| EngineError::Invalid(format!("{} does not exist in {tz}", o.date)))?
        .with_timezone(&Utc);
    let p = plan_event(cat, wf, round, &o.unit, &o.kind, start_of_day)?;
    for t in p.tasks.iter().filter(|t| {
        // A role's task (the office's 调整 task) is owed once per occurrence too; a unit's
        // only for the person's own unit.
        owed.contains(&t.task)
            && (t.assignee.kind == AssigneeKind::Role
                || (t.assignee.kind == AssigneeKind::Unit && t.assignee.id == o.unit))
    }) {
        let Some(due) = t.due.at.filter(|_| !t.due.projected) else {
            continue;
        };
        let key = format!("{}/e{}", t.key, o.id);
        let title = match &o.person {
            Some((_, name)) => format!("{}（{name}）", t.title),
            None => t.title.clone(),
        };
        out.tasks.push(NewTask {
            key: key.clone(),
            task: t.task.clone(),
            stage: t.stage.clone(),
            title,
            assignee_kind: t.assignee.kind,
            assignee_id: t.assignee.id.clone(),
            assignee_name: t.assignee.name.clone(),
            due_at: Some(ms(due.with_timezone(&Utc))),
            state: TaskState::Open,
            provisional: t.due.provisional,
            person: match (&o.person, o.person_tier) {
                (Some((id, name)), Some(tier)) => Some(crate::core::plan::PersonRef {
                    id: *id,
                    name: name.clone(),
                    unit: o.unit.clone(),
                    tier,
                }),
                _ => None,
            },
        });
        let prefix = format!("{}/", t.key);
        out.timers.extend(
            p.timers
                .iter()
                .filter(|x| x.task.as_deref() == Some(&t.key) && !x.projected)
                .filter_map(|x| {
                    let mut x = x.clone();
                    x.key = format!("{key}/{}", x.key.strip_prefix(&prefix).unwrap_or(&x.key));
                    x.task = Some(key.clone());
                    timer_row(&round.tag, &x, now)
                })
                .map(|mut x| {
                    x.round_id = Some(round.id);
                    x
                }),
        );
        out.audit.push(audit(
            now,
            &o.actor,
            "task.owed_by_event",
            &format!("round:{}", round.id),
            serde_json::json!({"key": key, "event": o.id, "kind": o.kind, "date": o.date.to_string(),
                "person": o.person.as_ref().map(|(id, name)| serde_json::json!({"id": id, "name": name})),
                "due": due.with_timezone(&Utc)}),
        ));
    }
    Ok(out)
}

impl Engine {
    /// Add the task instances an occurrence owes to every running round (idempotent: an
    /// occurrence already planned in a round is skipped there). Returns the new tasks.
    pub async fn event_occurred(&self, o: &Occurrence) -> Result<Vec<TaskRow>> {
        let mut added = Vec::new();
        for round in self.store.rounds().await? {
            added.extend(self.owe_in_round(&round, o).await?);
        }
        self.wake();
        Ok(added)
    }

    /// Add the task instances an occurrence owes to one round only (an assessment's 调整
    /// task belongs to the round whose ratings owed it, not to every running round).
    pub async fn event_occurred_in(&self, round_id: i64, o: &Occurrence) -> Result<Vec<TaskRow>> {
        let round = self
            .store
            .round(round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {round_id}")))?;
        let added = self.owe_in_round(&round, o).await?;
        self.wake();
        Ok(added)
    }

    async fn owe_in_round(&self, round: &RoundRow, o: &Occurrence) -> Result<Vec<TaskRow>> {
        let mut added = Vec::new();
        if round.status != RoundStatus::Running {
            return Ok(added);
        }
        let cat = self.catalog();
        let now = self.clock.now();
        let wf = self.workflow_of(round.version_id).await?;
        let rows = occurrence_tasks(&cat, &wf, round, o, now)?;
        let Some(first) = rows.tasks.first() else {
            return Ok(added);
        };
        if self
            .store
            .task_by_key(round.id, &first.key)
            .await?
            .is_some()
        {
            return Ok(added);
        }
        let keys: Vec<String> = rows.tasks.iter().map(|t| t.key.clone()).collect();
        self.store
            .reproject(Reprojection {
                round_id: round.id,
                version_id: round.version_id,
                units: round.units.clone(),
                new_tasks: rows.tasks,
                new_timers: rows.timers,
                at: ms(now),
                actor: o.actor.clone(),
                note: Some(format!("event {} ({})", o.id, o.kind)),
                audit: rows.audit,
                ..Reprojection::default()
            })
            .await?;
        for key in keys {
            if let Some(t) = self.store.task_by_key(round.id, &key).await? {
                tracing::info!(round = round.id, task = %t.key, event = o.id, "task owed by an event");
                added.push(t);
            }
        }
        Ok(added)
    }
}
