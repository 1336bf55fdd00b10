//! A task's page (`/console/tasks/{id}`: its state, history and signed link) and its
//! actions: complete, waive and reopen (with a new deadline), each through the engine with
//! the signed-in token as the actor.

use super::auth::ConsoleUser;
use super::labels::{action_zh, done_flash, state_zh};
use super::ui::{LINK_DAYS, Ui};
use crate::access::Grant;
use crate::api::{AppState, Principal, State};
use crate::core::state::{AssigneeKind, TaskState};
use crate::engine::{EngineError, NewDeadline, from_ms};
use crate::store::StoreError;
use axum::extract::{Form, Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TaskQuery {
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NoteForm {
    note: String,
}

pub(super) async fn task_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let flash = done_flash(q.done.as_deref());
    match ui.parse_id(&id, "任务") {
        Ok(id) => render_task(&ui, id, StatusCode::OK, flash, None).await,
        Err(r) => *r,
    }
}

/// The task page with an error (a refused accept or return).
pub(super) async fn render_task_error(
    ui: &Ui<'_>,
    id: i64,
    status: StatusCode,
    error: String,
) -> Response {
    render_task(ui, id, status, None, Some(error)).await
}

pub(super) async fn render_task(
    ui: &Ui<'_>,
    id: i64,
    status: StatusCode,
    flash: Option<&str>,
    error: Option<String>,
) -> Response {
    let store = ui.state.engine.store();
    let task = match store.task(id).await {
        Ok(Some(t)) => t,
        Ok(None) => return ui.fail(EngineError::NotFound(format!("任务 {id}"))),
        Err(e) => return ui.store_fail(e),
    };
    let history = match store.task_history(id).await {
        Ok(h) => h,
        Err(e) => return ui.store_fail(e),
    };
    let round = match store.round(task.round_id).await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let round_title = round
        .as_ref()
        .map(|r| ui.round_title(r))
        .unwrap_or_default();
    let stage = round
        .as_ref()
        .and_then(|r| ui.catalog.workflows.get(&r.workflow_id))
        .and_then(|w| w.workflow.stages.iter().find(|s| s.id.value == task.stage))
        .map(|s| s.title.clone())
        .unwrap_or_else(|| task.stage.clone());
    let reopen_days = round
        .as_ref()
        .and_then(|r| ui.catalog.workflows.get(&r.workflow_id))
        .and_then(|w| w.workflow.defaults.reopen_working_days)
        .unwrap_or(crate::engine::DEFAULT_REOPEN_WORKING_DAYS);
    let expires = ui.now().timestamp() + LINK_DAYS * 86_400;
    let link = if task.assignee_kind == AssigneeKind::Unit
        && (task.state == TaskState::Open || task.state == TaskState::Waiting)
    {
        let grant = Grant::Task {
            unit: task.assignee_id.clone(),
            task: task.id,
        };
        ui.mint_link(&grant, expires).await
    } else {
        None
    };
    let ratings = if task.state == TaskState::Open {
        super::ratings::context(
            ui.state,
            &task,
            format!("/console/tasks/{}/ratings", task.id),
        )
        .await
    } else {
        None
    };
    let history: Vec<serde_json::Value> = history
        .iter()
        .map(|h| json!({"at": ui.at(h.at), "from": state_zh(h.from_state), "to": state_zh(h.to_state), "actor": super::display::actor_zh(&h.actor, &ui.catalog.directory), "note": h.note}))
        .collect();
    let hand_in = super::submissions::console_view(ui, &task).await;
    ui.page(
        status,
        "task.html",
        json!({
            "active": "rounds",
            "hand_in": hand_in,
            "task": {
                "id": task.id, "round_id": task.round_id, "key": task.key, "title": task.title,
                "stage": stage, "assignee": task.assignee_name, "state": task.state,
                "secretary": ui.secretary(task.assignee_kind, &task.assignee_id),
                "state_zh": state_zh(task.state), "due": ui.due(&task),
                "overdue": ui.overdue_text(&task), "completed": task.completed_at.map(|d| ui.at(d)),
            },
            "round_title": round_title,
            "history": history, "flash": flash, "error": error,
            "link": link, "link_expires": ui.at_utc(from_ms(expires * 1000)),
            "reopen_days": reopen_days, "ratings": ratings,
            "messages": super::messages::for_task(ui, id).await,
        }),
    )
}

#[derive(Debug, Clone)]
enum TaskAction {
    Complete,
    Waive,
    /// With the new deadline, or why the form's deadline cannot be read.
    Reopen(std::result::Result<NewDeadline, String>),
}

pub(super) async fn task_complete(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    task_action(&state, &user, &id, TaskAction::Complete, form.note).await
}

pub(super) async fn task_waive(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    task_action(&state, &user, &id, TaskAction::Waive, form.note).await
}

/// The reopen form: a reason and, optionally, the new deadline as a date or a number of
/// working days from today (empty: the workflow's default).
#[derive(Debug, Deserialize)]
pub(super) struct ReopenForm {
    note: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    in_working_days: String,
}

impl ReopenForm {
    /// The new deadline the form asks for, or why it cannot be read (in Chinese, for the
    /// task page): both fields empty is the workflow's default, at most one may be filled.
    fn deadline(&self) -> Result<NewDeadline, String> {
        match (self.due.trim(), self.in_working_days.trim()) {
            ("", "") => Ok(NewDeadline::Default),
            (d, "") => NewDeadline::parse_date(d).ok_or(format!("「{d}」不是日期（年-月-日）。")),
            ("", n) => n
                .parse::<u32>()
                .map(NewDeadline::WorkingDays)
                .map_err(|_| format!("「{n}」不是工作日天数。")),
            _ => Err("新截止日期和工作日天数只填一项。".to_string()),
        }
    }
}

pub(super) async fn task_reopen(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ReopenForm>,
) -> Response {
    let due = form.deadline();
    task_action(&state, &user, &id, TaskAction::Reopen(due), form.note).await
}

/// Apply a console action through the engine, then back to the task page (303), or the
/// task page with the error when the task is not in a state that allows it.
async fn task_action(
    state: &AppState,
    user: &Principal,
    raw_id: &str,
    action: TaskAction,
    note: String,
) -> Response {
    let ui = Ui::new(state, Some(user));
    let id = match ui.admin_id(raw_id, "任务") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let note = Some(note.trim().to_string()).filter(|n| !n.is_empty());
    let actor = user.actor();
    let engine = &state.engine;
    let (result, verb) = match action {
        TaskAction::Complete => (engine.complete_task(id, &actor, note).await, "complete"),
        TaskAction::Waive => (engine.waive_task(id, &actor, note).await, "waive"),
        TaskAction::Reopen(Err(msg)) => {
            return render_task(&ui, id, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await;
        }
        TaskAction::Reopen(Ok(due)) => (
            engine.reopen_task_due(id, &actor, note, due).await,
            "reopen",
        ),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/console/tasks/{id}?done={verb}")).into_response(),
        Err(EngineError::Store(StoreError::WrongState { state: s, .. })) => {
            let msg = format!("任务当前为「{}」，不能{}。", state_zh(s), action_zh(verb));
            render_task(&ui, id, StatusCode::CONFLICT, None, Some(msg)).await
        }
        Err(EngineError::Invalid(e)) => {
            let msg = format!(
                "不能重新打开：新截止时间不可用（须晚于现在，且不早于任务所在阶段的开始时间）。详情：{e}"
            );
            render_task(&ui, id, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await
        }
        Err(e) => ui.fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn form(due: &str, in_working_days: &str) -> ReopenForm {
        ReopenForm {
            note: "补充材料".into(),
            due: due.into(),
            in_working_days: in_working_days.into(),
        }
    }

    #[test]
    fn an_empty_reopen_form_takes_the_workflows_default_deadline() {
        assert_eq!(form("", "").deadline(), Ok(NewDeadline::Default));
        assert_eq!(form("  ", " ").deadline(), Ok(NewDeadline::Default));
    }

    #[test]
    fn a_reopen_form_reads_a_date_or_a_number_of_working_days() {
        let day = NaiveDate::from_ymd_opt(2019, 7, 22).expect("date");
        assert_eq!(
            form(" 2019-07-22 ", "").deadline(),
            Ok(NewDeadline::On(day))
        );
        let at = day.and_hms_opt(9, 30, 0).expect("time");
        assert_eq!(
            form("2019-07-22T09:30", "").deadline(),
            Ok(NewDeadline::At(at))
        );
        assert_eq!(form("", " 3 ").deadline(), Ok(NewDeadline::WorkingDays(3)));
    }

    #[test]
    fn a_reopen_form_that_cannot_be_read_says_why_in_chinese() {
        assert_eq!(
            form("7月22日", "").deadline(),
            Err("「7月22日」不是日期（年-月-日）。".to_string())
        );
        assert_eq!(
            form("", "-1").deadline(),
            Err("「-1」不是工作日天数。".to_string())
        );
        assert_eq!(
            form("2019-07-22", "3").deadline(),
            Err("新截止日期和工作日天数只填一项。".to_string())
        );
    }
}
