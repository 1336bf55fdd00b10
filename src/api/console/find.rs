//! Finding things: the task list across rounds (`/console/tasks`, filtered by round,
//! stage, state and branch), the search box's answers for branches and people
//! (`/console/search`), a branch's page with all its tasks across rounds
//! (`/console/units/{id}`) and the `.xlsx` exports of the lists (`/console/export/...`).

use super::auth::ConsoleUser;
use super::filters::{self, States};
use super::ui::Ui;
use crate::api::State;
use crate::report::{self, Find, Report, TaskLine};
use crate::store::PeopleFilter;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// A task line as a list row of the console.
fn row(ui: &Ui<'_>, t: &TaskLine) -> Value {
    json!({
        "id": t.id, "round_id": t.round_id, "workflow": t.workflow, "round_start": t.round_start,
        "stage": t.stage_title, "title": t.title, "assignee": t.assignee, "assignee_id": t.assignee_id,
        "state": t.state, "state_zh": t.state.zh(),
        "secretary": t.secretary, "phone": t.phone,
        "due": t.due_at.map(|d| ui.at(d)),
        "overdue": super::labels::overdue_text(t.state, t.due_at.unwrap_or(i64::MAX), ui.now(), ui.tz()),
    })
}

pub(super) async fn tasks_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    q: Result<Query<Find>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let find = match filters::read(&ui, q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let task_state = match find.task_state() {
        Ok(s) => s,
        Err(e) => return *filters::bad_state(&ui, e),
    };
    let lines = match crate::api::find::task_lines(&state, &find, task_state).await {
        Ok(l) => l,
        Err(e) => return ui.store_fail(e),
    };
    let rows: Vec<Value> = lines.iter().map(|t| row(&ui, t)).collect();
    ui.page(
        StatusCode::OK,
        "tasks.html",
        json!({
            "active": "tasks", "tasks": rows, "now": ui.at_utc(ui.now()), "query": find.query(),
            "filters": filters::form(&ui, &find, "/console/tasks", States::Tasks, "tasks").await,
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SearchQuery {
    q: String,
}

pub(super) async fn search_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(sq): Query<SearchQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let needle = sq.q.trim().to_lowercase();
    let (units, people) = if needle.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let units: Vec<Value> = ui
            .catalog
            .directory
            .units
            .iter()
            .filter(|u| {
                u.name.to_lowercase().contains(&needle)
                    || u.id.value.to_lowercase().contains(&needle)
                    || u.contacts.iter().any(|c| c.name.contains(&needle))
            })
            .map(|u| {
                json!({"id": u.id.value, "name": u.name,
                       "kind": super::labels::assignee_kind_zh(crate::core::state::AssigneeKind::Unit, Some(u.kind)),
                       "contacts": u.contacts.iter().map(|c| json!({"name": c.name, "title": c.title, "phone": c.phone})).collect::<Vec<_>>()})
            })
            .collect();
        let people = match state
            .engine
            .store()
            .people(&PeopleFilter {
                include_removed: true,
                ..Default::default()
            })
            .await
        {
            Ok(p) => p,
            Err(e) => return ui.store_fail(e),
        };
        let people: Vec<Value> = people
            .iter()
            .filter(|p| {
                p.person.name.to_lowercase().contains(&needle)
                    || p.person.phone.as_deref().is_some_and(|x| x.contains(&needle))
            })
            .map(|p| {
                let unit = ui
                    .catalog
                    .directory
                    .unit(&p.person.unit)
                    .map_or_else(|| p.person.unit.clone(), |u| u.name.clone());
                json!({"id": p.id, "name": p.person.name, "unit": unit, "post": p.person.current_post,
                       "removed": p.person.status == crate::core::pool::PersonStatus::Removed})
            })
            .collect();
        (units, people)
    };
    ui.page(
        StatusCode::OK,
        "search.html",
        json!({"active": "search", "q": sq.q, "units": units, "people": people}),
    )
}

pub(super) async fn unit_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let Some(unit) = ui.catalog.directory.unit(&id).cloned() else {
        return ui.message(
            StatusCode::NOT_FOUND,
            "未找到",
            &format!("名录中没有「{id}」这个党组织或部门。"),
        );
    };
    let find = Find {
        branch: Some(id.clone()),
        ..Default::default()
    };
    let lines = match crate::api::find::task_lines(&state, &find, None).await {
        Ok(l) => l,
        Err(e) => return ui.store_fail(e),
    };
    let now = ui.now().timestamp_millis();
    // One section per round, in the order the store lists rounds.
    let mut rounds: Vec<(i64, String, Vec<Value>)> = Vec::new();
    for t in &lines {
        match rounds.last_mut() {
            Some((r, _, items)) if *r == t.round_id => items.push(row(&ui, t)),
            _ => rounds.push((
                t.round_id,
                format!("第 {} 轮 {}（{}）", t.round_id, t.workflow, t.round_start),
                vec![row(&ui, t)],
            )),
        }
    }
    let open = lines
        .iter()
        .filter(|t| t.state == crate::core::state::TaskState::Open)
        .count();
    let overdue = lines.iter().filter(|t| t.is_overdue(now)).count();
    let rounds: Vec<Value> = rounds
        .into_iter()
        .map(|(id, title, items)| json!({"id": id, "title": title, "tasks": items}))
        .collect();
    ui.page(
        StatusCode::OK,
        "unit.html",
        json!({
            "active": "search", "unit": {"id": unit.id.value, "name": unit.name,
                "kind": super::labels::assignee_kind_zh(crate::core::state::AssigneeKind::Unit, Some(unit.kind))},
            "contacts": unit.contacts.iter().map(|c| json!({"name": c.name, "title": c.title, "phone": c.phone})).collect::<Vec<_>>(),
            "rounds": rounds, "total": lines.len(), "open": open, "overdue": overdue,
            "export": format!("/console/export/tasks.xlsx?{}", find.query()),
        }),
    )
}

/// The report a list exports, by name, for the filter; `None` for an unknown name.
pub(crate) async fn build_report(
    state: &crate::api::AppState,
    name: &str,
    find: &Find,
) -> Result<Option<Report>, ReportError> {
    let now = state.engine.clock().now();
    let tz = state.engine.catalog().config.tz();
    Ok(Some(match name {
        "tasks" | "progress" => {
            let st = find.task_state()?;
            let lines = crate::api::find::task_lines(state, find, st).await?;
            if name == "tasks" {
                report::tasks(&lines, now, tz)
            } else {
                report::progress(&lines, now, tz)
            }
        }
        "overdue" => report::overdue(&crate::api::find::overdue(state, find).await?, now, tz),
        "coverage" => report::coverage(&crate::api::find::coverage_lines(state, find).await?),
        "talks" => report::talks(&crate::api::find::talk_events(state, find).await?, tz),
        _ => return Ok(None),
    }))
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    /// A state filter that names no state.
    #[error(transparent)]
    State(#[from] report::UnknownState),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub(super) async fn export(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(file): Path<String>,
    q: Result<Query<Find>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let find = match filters::read(&ui, q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let name = file.strip_suffix(".xlsx").unwrap_or("");
    let report = match build_report(&state, name, &find).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ui.message(
                StatusCode::NOT_FOUND,
                "未找到",
                &format!("没有「{file}」这份导出表。"),
            );
        }
        Err(ReportError::State(e)) => return *filters::bad_state(&ui, e),
        Err(ReportError::Store(e)) => return ui.store_fail(e),
    };
    match report.to_xlsx() {
        Ok(bytes) => xlsx_response(&format!("{}-{}.xlsx", report.name, ui.today()), bytes),
        Err(e) => {
            tracing::error!(error = %e, "export failed");
            ui.message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "导出失败",
                "导出失败，详见守护进程日志。",
            )
        }
    }
}

/// A workbook as a download.
pub(crate) fn xlsx_response(file: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, crate::api::people::XLSX.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}
