//! Task transitions: complete, waive and reopen. Each is one store transaction that
//! changes the task, writes its history and audit entry, stops or replans its timers and —
//! for a finished task — decides inside the same transaction which waiting tasks become
//! owed ([`super::activation::Joins`]).

use super::activation::Joins;
use super::round::round_plan;
use super::{
    DEFAULT_REOPEN_WORKING_DAYS, Engine, EngineError, Result, audit, from_ms, local_date, ms,
    timer_row,
};
use crate::core::definition::Workflow;
use crate::core::diagnostic::Severity;
use crate::core::state::{AssigneeKind, RoundStatus, TaskState};
use crate::core::timefmt::zh_datetime;
use crate::core::validate::workflow_tz;
use crate::store::{Millis, NewTimer, StoreError, SubmissionChange, TaskRow, Transition};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// The deadline of a reopened task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewDeadline {
    /// `defaults.reopen_working_days` working days from today (5 when unset).
    #[default]
    Default,
    /// This many working days from today.
    WorkingDays(u32),
    /// This date (local), at the task's time of day.
    On(NaiveDate),
    /// This local date and time.
    At(NaiveDateTime),
    /// The task's own deadline, even if it has passed: undoing a mistaken "done" puts the
    /// task back as it was.
    Unchanged,
}

impl NewDeadline {
    /// Parse `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (also with a space instead of `T`).
    pub fn parse_date(s: &str) -> Option<NewDeadline> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(NewDeadline::On(d));
        }
        ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(NewDeadline::At)
    }
}

/// What a task state change does besides the state.
pub(super) enum Change {
    /// Done or waived: its timers stop and waiting tasks may become owed.
    Finish,
    /// Handed in: its timers stop, but nothing waiting on it becomes owed until the office
    /// accepts it.
    Pause,
    /// Reopened: a new deadline and the timers planned from it.
    Reopen {
        timers: Vec<NewTimer>,
        due: Millis,
        provisional: bool,
    },
}

/// When a reopened task is due: a date keeps the task's time of day (its old deadline's,
/// else the workflow's `defaults.due_at`, else 18:00); it must lie in the future.
fn reopen_deadline(
    wf: &Workflow,
    calendar: &crate::core::calendar::Calendar,
    tz: chrono_tz::Tz,
    task: &TaskRow,
    due: NewDeadline,
    now: DateTime<Utc>,
) -> Result<DateTime<chrono_tz::Tz>> {
    let time = task
        .due_at
        .map(|d| from_ms(d).with_timezone(&tz).time())
        .or(wf.defaults.due_at.map(|t| t.0))
        .unwrap_or_else(|| NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default());
    let today = local_date(now, tz);
    let working_days = |n: u32| {
        calendar
            .add_working_days(today, i64::from(n))
            .map_err(|e| EngineError::Invalid(format!("cannot count {n} working days: {e}")))
    };
    let local = match due {
        // Not checked against now: the task goes back as it was, overdue or not.
        NewDeadline::Unchanged => {
            let own = task
                .due_at
                .ok_or_else(|| EngineError::Invalid(format!("task {} has no deadline", task.id)))?;
            return Ok(from_ms(own).with_timezone(&tz));
        }
        NewDeadline::Default => working_days(
            wf.defaults
                .reopen_working_days
                .unwrap_or(DEFAULT_REOPEN_WORKING_DAYS),
        )?
        .and_time(time),
        NewDeadline::WorkingDays(n) => working_days(n)?.and_time(time),
        NewDeadline::On(d) => d.and_time(time),
        NewDeadline::At(dt) => dt,
    };
    let at = tz
        .from_local_datetime(&local)
        .earliest()
        .ok_or_else(|| EngineError::Invalid(format!("{local} does not exist in {tz}")))?;
    if at.with_timezone(&Utc) <= now {
        return Err(EngineError::Invalid(format!(
            "the new deadline {} is not in the future",
            zh_datetime(&at)
        )));
    }
    Ok(at)
}

/// The workflow with one task's deadline fixed at an instant, so the planner dates its
/// reminders, overdue reminders and escalations from there. None when the task is not in it.
fn with_fixed_deadline(wf: &Workflow, task: &str, at: DateTime<chrono_tz::Tz>) -> Option<Workflow> {
    use crate::core::calendar::Roll;
    use crate::core::definition::{TimeOfDay, Val, When};
    use crate::core::diagnostic::Sp;
    let mut wf = wf.clone();
    let t = wf
        .stages
        .iter_mut()
        .flat_map(|s| s.tasks.iter_mut())
        .find(|t| t.id.value == task)?;
    let loc = t.due.loc;
    t.due = Sp {
        value: When {
            on: Some(Sp {
                value: Val::Lit(at.date_naive()),
                loc,
            }),
            at: Some(Sp {
                value: Val::Lit(TimeOfDay(at.time())),
                loc,
            }),
            if_non_working: Some(Roll::Keep),
            ..When::default()
        },
        loc,
    };
    Some(wf)
}

trait HistoryExt {
    fn action_is_reopen(&self) -> bool;
}

impl HistoryExt for crate::store::HistoryRow {
    fn action_is_reopen(&self) -> bool {
        self.to_state == TaskState::Open
            && (self.from_state.is_settled() || self.from_state == TaskState::Submitted)
    }
}

impl Engine {
    /// Mark a task done: its reminders and escalations stop, and tasks waiting on it
    /// become owed (counted from now). Allowed before the task's stage or round has begun.
    pub async fn complete_task(
        &self,
        task_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "note": note});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Open],
                TaskState::Done,
                "complete",
                note,
                Change::Finish,
                detail,
                None,
            )
            .await?;
        self.finish_if_done(row.round_id, actor).await?;
        self.wake();
        Ok(row)
    }

    /// Excuse a task: its reminders and escalations stop; tasks waiting on it become owed
    /// as if it were done (counted from now).
    pub async fn waive_task(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "reason": reason});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Open, TaskState::Waiting],
                TaskState::Waived,
                "waive",
                reason,
                Change::Finish,
                detail,
                None,
            )
            .await?;
        self.finish_if_done(row.round_id, actor).await?;
        self.wake();
        Ok(row)
    }

    /// Reopen a done or waived task with the workflow's default new deadline
    /// (`defaults.reopen_working_days` working days from today, 5 when unset).
    pub async fn reopen_task(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
    ) -> Result<TaskRow> {
        self.reopen_task_due(task_id, actor, reason, NewDeadline::Default)
            .await
    }

    /// Reopen a done, waived or submitted (returned) task with a new deadline: its
    /// reminders, overdue reminders and escalations are planned again from that deadline,
    /// under new keys.
    pub async fn reopen_task_due(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
        due: NewDeadline,
    ) -> Result<TaskRow> {
        self.reopen_task_due_with(task_id, actor, reason, due, None)
            .await
    }

    /// [`reopen_task_due`](Self::reopen_task_due), changing a submission in the same
    /// transaction (a 退回 decides the branch's hand-in as it reopens the task).
    pub(super) async fn reopen_task_due_with(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
        due: NewDeadline,
        submission: Option<SubmissionChange>,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let round = self
            .store
            .round(task.round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {}", task.round_id)))?;
        if !(task.state.is_settled() || task.state == TaskState::Submitted) {
            return Err(StoreError::WrongState {
                task: task.id,
                state: task.state,
                action: "reopen".into(),
            }
            .into());
        }
        let now = self.clock.now();
        let wf = self.workflow_of(round.version_id).await?;
        let cat = self.catalog();
        let tz = workflow_tz(&wf, cat.config.tz());
        let at = reopen_deadline(&wf, &cat.calendar, tz, &task, due, now)?;
        let fixed = with_fixed_deadline(&wf, &task.task, at).ok_or_else(|| {
            EngineError::NotFound(format!("task `{}` in the workflow", task.task))
        })?;
        // The office's date is checked like a planned one (e.g. not before the task's stage
        // opens), but the fault is the date's, not the workflow's.
        let only: Vec<String> = (task.assignee_kind == AssigneeKind::Unit)
            .then(|| task.assignee_id.clone())
            .into_iter()
            .collect();
        let p = round_plan(
            &cat,
            &fixed,
            &round,
            std::slice::from_ref(&task),
            None,
            Some(&only),
        )
        .map_err(|e| match e {
            EngineError::Plan { problems, .. } => EngineError::Invalid(format!(
                "the new deadline {} cannot be used: {}",
                zh_datetime(&at),
                problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            e => e,
        })?;
        let history = self.store.task_history(task_id).await?;
        let suffix = format!(
            "reopen{}",
            history.iter().filter(|h| h.action_is_reopen()).count() + 1
        );
        let timers: Vec<NewTimer> = p
            .timers
            .iter()
            .filter(|t| t.task.as_deref() == Some(&task.key) && !t.projected)
            .filter_map(|t| timer_row(&round.tag, t, now))
            .map(|mut t| {
                t.key = format!("{}~{suffix}", t.key);
                t.round_id = Some(round.id);
                t
            })
            .collect();
        let due_ms = ms(at.with_timezone(&Utc));
        let provisional = p
            .tasks
            .iter()
            .find(|x| x.key == task.key)
            .is_some_and(|x| x.due.provisional);
        let detail = serde_json::json!({"key": task.key, "reason": reason, "old_due": task.due_at.map(from_ms), "new_due": from_ms(due_ms)});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Done, TaskState::Waived, TaskState::Submitted],
                TaskState::Open,
                "reopen",
                reason,
                Change::Reopen {
                    timers,
                    due: due_ms,
                    provisional,
                },
                detail,
                submission,
            )
            .await?;
        if round.status == RoundStatus::Finished {
            self.store
                .set_round_status(
                    round.id,
                    RoundStatus::Running,
                    audit(
                        now,
                        actor,
                        "round.reopen",
                        &format!("round:{}", round.id),
                        serde_json::json!({"task": task_id}),
                    ),
                )
                .await?;
        }
        self.wake();
        Ok(row)
    }

    /// Apply a task state change with its history and audit entry (`task.{action}`). A
    /// finished task stops its timers, and which waiting tasks become owed is decided inside
    /// the store's transaction, on the round's tasks as read there under the round's lock:
    /// deciding from reads made before it let two completions at the same moment each
    /// miss the other's, and the join waited forever.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn change(
        &self,
        task: &TaskRow,
        now: DateTime<Utc>,
        actor: &str,
        from: &[TaskState],
        to: TaskState,
        action: &str,
        note: Option<String>,
        what: Change,
        detail: serde_json::Value,
        submission: Option<SubmissionChange>,
    ) -> Result<TaskRow> {
        let finish = matches!(what, Change::Finish);
        let (cancel_timers, new_timers, set_due) = match what {
            Change::Finish | Change::Pause => (true, vec![], None),
            Change::Reopen {
                timers,
                due,
                provisional,
            } => (false, timers, Some((due, provisional))),
        };
        let t = Transition {
            task_id: task.id,
            from: from.to_vec(),
            to,
            at: ms(now),
            actor: actor.to_string(),
            note,
            action: action.to_string(),
            cancel_timers,
            new_timers,
            activate: vec![],
            set_due,
            audit: audit(
                now,
                actor,
                &format!("task.{action}"),
                &format!("task:{}", task.id),
                detail,
            ),
            submission,
        };
        let joins = if finish {
            self.joins(task, actor, now).await?
        } else {
            None
        };
        Ok(match &joins {
            Some(j) => {
                let decide = |rows: &[TaskRow]| j.decide(rows);
                self.store.transition_with(t, &j.read, &decide).await?
            }
            None => self.store.transition(t).await?,
        })
    }

    /// What deciding the activations `task` may release needs, read before the transaction;
    /// None when no task waits for it.
    async fn joins(
        &self,
        task: &TaskRow,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Joins>> {
        let round = self
            .store
            .round(task.round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {}", task.round_id)))?;
        let wf = self.workflow_of(round.version_id).await?;
        let read = crate::engine::activation::to_read(&wf, &task.task);
        if read.is_empty() {
            return Ok(None);
        }
        Ok(Some(Joins {
            catalog: self.catalog(),
            wf,
            round,
            read,
            actor: actor.to_string(),
            now,
        }))
    }

    /// A round whose every task is done, waived or cancelled is finished.
    pub(crate) async fn finish_if_done(&self, round_id: i64, actor: &str) -> Result<()> {
        let Some(round) = self.store.round(round_id).await? else {
            return Ok(());
        };
        if round.status != RoundStatus::Running {
            return Ok(());
        }
        let tasks = self.store.tasks(round_id).await?;
        // A hand-in the office has not yet accepted or returned keeps the round open.
        if tasks.iter().any(|t| t.state == TaskState::Submitted) {
            return Ok(());
        }
        let owed: Vec<&TaskRow> = tasks.iter().filter(|t| t.state.is_owed()).collect();
        let now = self.clock.now();
        let mut waiting_for_events = Vec::new();
        if !owed.is_empty() {
            // A task waiting for an outside event stands for "whenever it happens" (each
            // occurrence gets a task of its own, see `engine::event`): it holds the round
            // open only until the round's last stage has closed.
            let wf = self.workflow_of(round.version_id).await?;
            let waits = |t: &TaskRow| {
                t.state == TaskState::Waiting
                    && wf
                        .task(&t.task)
                        .is_some_and(|(_, d)| super::activation::event_anchor(d).is_some())
            };
            if owed.iter().any(|t| !waits(t)) {
                return Ok(());
            }
            // Only the stage windows are read: no people needed.
            let p = round_plan(&self.catalog(), &wf, &round, &[], None, None)?;
            let closed = p
                .stages
                .iter()
                .filter_map(|s| s.closes.at)
                .max()
                .is_some_and(|c| c.with_timezone(&Utc) <= now);
            if !closed {
                return Ok(());
            }
            waiting_for_events = owed.iter().map(|t| t.id).collect();
            self.store
                .reproject(crate::store::Reprojection {
                    round_id,
                    version_id: round.version_id,
                    units: round.units.clone(),
                    cancel_tasks: waiting_for_events.clone(),
                    at: ms(now),
                    actor: actor.to_string(),
                    note: Some("the round's last stage has closed".into()),
                    ..crate::store::Reprojection::default()
                })
                .await?;
        }
        self.store
            .set_round_status(
                round_id,
                RoundStatus::Finished,
                audit(
                    now,
                    actor,
                    "round.finish",
                    &format!("round:{round_id}"),
                    serde_json::json!({"closed_waiting_for_events": waiting_for_events}),
                ),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn task_or_err(&self, id: i64) -> Result<TaskRow> {
        self.store
            .task(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("task {id}")))
    }
}
