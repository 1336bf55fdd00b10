//! The rounds list (`/console`: progress per stage, pending and blocked kickoffs) and a
//! round's page (`/console/rounds/{id}`: stages, tasks, next timers and the timeline).

use super::auth::ConsoleUser;
use super::filters::{self, States};
use super::gantt::gantt;
use super::labels::{pct, round_status_zh, state_zh, timer_kind_zh};
use super::ui::Ui;
use crate::api::State;
use crate::core::state::{TaskState, TimerState};
use crate::core::timefmt::provisional_mark;
use crate::report::Find;
use crate::store::TimerPayload;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;

pub(super) async fn rounds_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    q: Result<Query<Find>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let find = match filters::read(&ui, q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let status_filter = match find.round_status() {
        Ok(s) => s,
        Err(e) => return *filters::bad_state(&ui, e),
    };
    let store = state.engine.store();
    let rounds = match store.rounds().await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let mut out = Vec::new();
    for r in rounds {
        if status_filter.is_some_and(|s| s != r.status) {
            continue;
        }
        // A branch's rounds: those that gave it a task.
        if let Some(b) = &find.branch {
            match store.tasks(r.id).await {
                Ok(t) if t.iter().any(|t| &t.assignee_id == b) => {}
                Ok(_) => continue,
                Err(e) => return ui.store_fail(e),
            }
        }
        let row = match state.engine.status(r.id).await {
            Ok(s) => {
                let stages: Vec<serde_json::Value> = s
                    .stages
                    .iter()
                    .map(|st| json!({"title": st.title, "done": st.done, "total": st.total, "pct": pct(st.done, st.total), "overdue": st.overdue}))
                    .collect();
                json!({"title": s.title, "stages": stages, "overdue": s.overdue.len(), "error": null})
            }
            Err(e) => {
                tracing::warn!(round = r.id, error = %e, "round status failed");
                json!({"title": r.workflow_id, "stages": [], "overdue": 0, "error": "无法读取本轮状态"})
            }
        };
        let mut row = row;
        if let Some(m) = row.as_object_mut() {
            m.insert("id".into(), r.id.into());
            m.insert("tag".into(), r.tag.clone().into());
            m.insert("workflow_id".into(), r.workflow_id.clone().into());
            m.insert("start_date".into(), r.start_date.clone().into());
            m.insert("status".into(), r.status.as_str().into());
            m.insert("status_zh".into(), round_status_zh(r.status).into());
        }
        out.push(row);
    }
    let kickoffs = match store.timers_with_prefix("kickoff:").await {
        Ok(t) => t,
        Err(e) => return ui.store_fail(e),
    };
    let kickoffs: Vec<serde_json::Value> = kickoffs
        .into_iter()
        .filter(|t| t.state == TimerState::Pending)
        .map(|t| {
            let (workflow, blocked) = pending_kickoff(&t.key, &t.payload);
            let title = ui
                .catalog
                .workflows
                .get(&workflow)
                .map(|w| w.workflow.title.clone())
                .unwrap_or_else(|| workflow.clone());
            let at = format!(
                "{}{}",
                ui.at(t.due_at),
                provisional_mark(state.engine.kickoff_is_provisional(&t))
            );
            json!({"workflow": workflow, "title": title, "at": at, "blocked": blocked})
        })
        .collect();
    let blocked: Vec<serde_json::Value> = match state.engine.blocked_kickoffs().await {
        Ok(b) => b
            .into_iter()
            .map(|k| {
                let title = ui
                    .catalog
                    .workflows
                    .get(&k.workflow)
                    .map_or_else(|| k.workflow.clone(), |w| w.workflow.title.clone());
                json!({"workflow": k.workflow, "title": title, "scheduled": ui.at_utc(k.scheduled),
                       "reason": k.reason_zh, "error": k.error, "since": ui.at_utc(k.since),
                       "retry_at": ui.at_utc(k.retry_at)})
            })
            .collect(),
        Err(e) => return ui.fail(e),
    };
    let mut form = filters::form(&ui, &find, "/console", States::Rounds, "progress").await;
    // The export is of tasks: it keeps the branch, not the rounds' status.
    form["export"] = json!(format!(
        "/console/export/progress.xlsx?{}",
        Find {
            branch: find.branch.clone(),
            ..Default::default()
        }
        .query()
    ));
    ui.page(
        StatusCode::OK,
        "rounds.html",
        json!({"active": "rounds", "rounds": out, "filters": form, "kickoffs": kickoffs, "blocked": blocked, "now": ui.at_utc(ui.now())}),
    )
}

pub(super) async fn round_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.parse_id(&id, "轮次") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let status = match state.engine.status(id).await {
        Ok(s) => s,
        Err(e) => return ui.fail(e),
    };
    let tasks = match state.engine.store().tasks(id).await {
        Ok(t) => t,
        Err(e) => return ui.store_fail(e),
    };
    let stage_title: BTreeMap<&str, &str> = status
        .stages
        .iter()
        .map(|s| (s.id.as_str(), s.title.as_str()))
        .collect();
    let stages: Vec<serde_json::Value> = status
        .stages
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "title": s.title,
                "opens": s.opens.map(|t| format!("{}{}", ui.at_utc(t), provisional_mark(s.opens_provisional))),
                "closes": s.closes.map(|t| format!("{}{}", ui.at_utc(t), provisional_mark(s.closes_provisional))),
                "done": s.done, "total": s.total, "pct": pct(s.done, s.total), "overdue": s.overdue,
            })
        })
        .collect();
    let task_rows: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "key": t.key, "title": t.title,
                "stage": stage_title.get(t.stage.as_str()).copied().unwrap_or(t.stage.as_str()),
                "assignee": t.assignee_name, "state": t.state, "state_zh": state_zh(t.state),
                "secretary": ui.secretary(t.assignee_kind, &t.assignee_id),
                "due": ui.due(t), "overdue": ui.overdue_text(t),
            })
        })
        .collect();
    let next: Vec<serde_json::Value> = status
        .next
        .iter()
        .map(|t| json!({"at": format!("{}{}", ui.at(t.due_at), provisional_mark(crate::engine::timer_is_provisional(t))), "kind": timer_kind_zh(t.kind), "subject": super::display::timer_subject(t, &tasks), "key": t.key.split_once('/').map(|(_, k)| k).unwrap_or(&t.key)}))
        .collect();
    let done = tasks
        .iter()
        .filter(|t| t.state == TaskState::Done || t.state == TaskState::Waived)
        .count();
    let gantt = gantt(
        &status.stages,
        &tasks,
        ui.now(),
        ui.tz(),
        &ui.catalog.calendar,
    );
    let r = &status.round;
    ui.page(
        StatusCode::OK,
        "round.html",
        json!({
            "active": "rounds",
            "title": status.title,
            "gantt_title": status.title,
            "round": {"id": r.id, "tag": r.tag, "workflow_id": r.workflow_id, "start_date": r.start_date, "status": r.status, "status_zh": round_status_zh(r.status)},
            "stages": stages, "tasks": task_rows, "next": next, "gantt": gantt,
            "total": tasks.iter().filter(|t| t.state != TaskState::Cancelled).count(),
            "done": done, "overdue": status.overdue.len(), "now": ui.at_utc(ui.now()),
            "stuck": status.stuck.iter().map(|t| json!({"id": t.id, "title": t.title, "assignee": t.assignee_name})).collect::<Vec<_>>(),
        }),
    )
}

/// The workflow a pending kickoff timer starts (from its payload, else from its key
/// `kickoff:WORKFLOW:MILLIS`) and whether its last attempt was blocked.
fn pending_kickoff(key: &str, payload: &TimerPayload) -> (String, bool) {
    let workflow = payload.workflow.clone().unwrap_or_else(|| {
        key.trim_start_matches("kickoff:")
            .rsplit_once(':')
            .map(|(w, _)| w.to_string())
            .unwrap_or_default()
    });
    let blocked = payload.blocked.is_some();
    (workflow, blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_kickoff_names_its_workflow_from_the_payload_else_from_the_key() {
        assert_eq!(
            pending_kickoff(
                "kickoff:yearly:1562889600000",
                &TimerPayload {
                    workflow: Some("community-reserve-selection".into()),
                    ..Default::default()
                }
            ),
            ("community-reserve-selection".to_string(), false)
        );
        assert_eq!(
            pending_kickoff(
                "kickoff:yearly-training:1562889600000",
                &TimerPayload::default()
            ),
            ("yearly-training".to_string(), false)
        );
    }

    #[test]
    fn a_pending_kickoff_is_blocked_when_its_payload_says_so() {
        let (workflow, blocked) = pending_kickoff(
            "kickoff:yearly:1562889600000",
            &TimerPayload {
                workflow: Some("yearly".into()),
                blocked: Some("plan_failed".into()),
                ..Default::default()
            },
        );
        assert_eq!(workflow, "yearly");
        assert!(blocked);
    }
}
