//! Hand-ins on the branch link: a valid submission moves the task to `submitted` and stops
//! its reminders; the office accepts it (the task is done, waiting tasks become owed) or
//! returns it with a reason and a new deadline (the engine's reopen path replans reminders
//! and escalation from there, and 【退回】 goes to the branch). Every step is in the task's
//! history and the audit log.

use super::round::round_plan;
use super::transition::Change;
use super::{Engine, EngineError, Result, audit, from_ms};
use crate::core::state::{AssigneeKind, MessageKind, TaskState};
use crate::core::submission::Asks;
use crate::core::timefmt::zh_datetime;
use crate::core::validate::workflow_tz;
use crate::engine::NewDeadline;
use crate::store::{NewSubmission, Outcome, SubmissionChange, SubmissionRow, TaskRow};

impl Engine {
    /// What the task asks its assignee to hand in, resolved with its round's parameters;
    /// None when its workflow has no `submit:` for it.
    pub async fn asks_of(&self, task: &TaskRow) -> Result<Option<Asks>> {
        let round = self
            .store
            .round(task.round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {}", task.round_id)))?;
        let wf = self.workflow_of(round.version_id).await?;
        if wf.task(&task.task).is_none_or(|(_, t)| t.submit.is_none()) {
            return Ok(None);
        }
        let only: Vec<String> = (task.assignee_kind == AssigneeKind::Unit)
            .then(|| task.assignee_id.clone())
            .into_iter()
            .collect();
        let p = round_plan(
            &self.catalog(),
            &wf,
            &round,
            std::slice::from_ref(task),
            None,
            Some(&only),
        )?;
        Ok(p.asks_of(&task.task).cloned())
    }

    /// Record a hand-in whose rules were checked: the task goes from open to submitted (its
    /// timers stop) and the submission is stored with its `submission.create` audit, in one
    /// transaction.
    pub async fn submit_task(&self, s: NewSubmission) -> Result<TaskRow> {
        let task = self.task_or_err(s.task_id).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "files": s.files.len()});
        let entry = audit(
            now,
            &s.actor,
            "submission.create",
            &format!("task:{}", task.id),
            serde_json::json!({"key": task.key, "fields": s.fields, "files": s.files}),
        );
        let actor = s.actor.clone();
        let row = self
            .change(
                &task,
                now,
                &actor,
                &[TaskState::Open],
                TaskState::Submitted,
                "submit",
                None,
                Change::Pause,
                detail,
                Some(SubmissionChange::Insert(s, entry)),
            )
            .await?;
        self.wake();
        Ok(row)
    }

    /// 通过: the open submission is accepted and the task is done.
    pub async fn accept_submission(&self, task_id: i64, actor: &str) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let sub = self.pending_submission(&task).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "submission": sub.id});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Submitted],
                TaskState::Done,
                "accept",
                None,
                Change::Finish,
                detail,
                Some(SubmissionChange::Decide {
                    id: sub.id,
                    outcome: Outcome::Accepted,
                    by: actor.to_string(),
                    reason: None,
                }),
            )
            .await?;
        self.finish_if_done(row.round_id, actor).await?;
        self.wake();
        Ok(row)
    }

    /// 退回: the open submission is returned with a reason; the task is open again with a
    /// new deadline (reminders, overdue reminders and escalation planned from it), and
    /// 【退回】 with the reason and the link goes to the assignee.
    pub async fn return_submission(
        &self,
        task_id: i64,
        actor: &str,
        reason: &str,
        due: NewDeadline,
    ) -> Result<TaskRow> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(EngineError::Invalid(
                "a return needs a reason the branch can act on".into(),
            ));
        }
        let task = self.task_or_err(task_id).await?;
        let sub = self.pending_submission(&task).await?;
        let decide = SubmissionChange::Decide {
            id: sub.id,
            outcome: Outcome::Returned,
            by: actor.to_string(),
            reason: Some(reason.to_string()),
        };
        let row = self
            .reopen_task_due_with(
                task_id,
                actor,
                Some(format!("退回：{reason}")),
                due,
                Some(decide),
            )
            .await?;
        let now = self.clock.now();
        self.store
            .append_audit(audit(
                now,
                actor,
                "submission.return",
                &format!("task:{task_id}"),
                serde_json::json!({"key": row.key, "submission": sub.id, "reason": reason, "new_due": row.due_at.map(from_ms)}),
            ))
            .await?;
        self.send_returned(&row, sub.id, reason).await;
        Ok(row)
    }

    async fn pending_submission(&self, task: &TaskRow) -> Result<SubmissionRow> {
        let subs = self.store.task_submissions(task.id).await?;
        match subs.into_iter().last() {
            Some(s) if s.outcome.is_none() && task.state == TaskState::Submitted => Ok(s),
            _ => Err(crate::store::StoreError::WrongState {
                task: task.id,
                state: task.state,
                action: "decide".into(),
            }
            .into()),
        }
    }

    /// 【退回】 to every contact of the assignee; a failure to render or enqueue is logged
    /// (the return itself stands, and its audit entry says what was asked).
    async fn send_returned(&self, task: &TaskRow, submission: i64, reason: &str) {
        let cat = self.catalog();
        let now = self.clock.now();
        let round = self.store.round(task.round_id).await.ok().flatten();
        let wf = match &round {
            Some(r) => self.workflow_of(r.version_id).await.ok(),
            None => None,
        };
        let tz = wf
            .as_ref()
            .map_or(cat.config.tz(), |w| workflow_tz(w, cat.config.tz()));
        let deadline = task
            .due_at
            .map(|d| zh_datetime(&from_ms(d).with_timezone(&tz)))
            .unwrap_or_default();
        let party = match task.assignee_kind {
            AssigneeKind::Unit => {
                cat.directory
                    .unit(&task.assignee_id)
                    .map(|u| crate::core::directory::Party {
                        kind: AssigneeKind::Unit,
                        id: u.id.value.clone(),
                        name: u.name.clone(),
                    })
            }
            AssigneeKind::Role => Some(cat.directory.role_party(&task.assignee_id)),
        };
        let Some(party) = party else {
            tracing::error!(
                task = task.id,
                "returned task's assignee is not in the directory"
            );
            return;
        };
        let link = self.task_link(task, now);
        let ctx = minijinja::context! {
            workflow => minijinja::context!{ title => wf.as_ref().map(|w| w.title.clone()) },
            task => minijinja::context!{ id => task.task.clone(), title => task.title.clone() },
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            deadline => deadline.clone(),
            reason => reason,
            link => link.clone(),
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        let rendered = match self.renderer().render("returned", &[], &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "returned template failed");
                return;
            }
        };
        let item = crate::core::render::Item {
            title: task.title.clone(),
            assignee: task.assignee_name.clone(),
            deadline,
            days_left: 0,
            link,
        };
        let item_json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
        let key = format!("returned:{submission}");
        let rows = super::fire::to_contacts(
            &cat,
            &super::fire::Message {
                key: &key,
                task: Some(task),
                kind: MessageKind::Returned,
                party: &party,
                rendered: &rendered,
                item_json: &item_json,
            },
            now,
        );
        match self.store.enqueue(rows, None).await {
            Ok(()) => self.wake_outbox(),
            Err(e) => tracing::error!(error = %e, task = task.id, "could not enqueue 【退回】"),
        }
    }
}
