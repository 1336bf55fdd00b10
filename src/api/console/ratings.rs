//! The ratings form (考核等次) of a task whose workflow declares `ratings:`: shown on the
//! console's task page and on the branch's signed task page (the branch's own in-pool
//! people only), posted to `/console/tasks/{id}/ratings` (admin, CSRF) or
//! `/b/{unit}/t/{task}/ratings` (the task's signed link). Both go through
//! [`Assessment::submit`]: a refusal shows the page again with the Chinese message and
//! stores nothing; an accepted form completes the task.

use super::auth::ConsoleUser;
use super::branch::{LinkQuery, branch_message, linked_task};
use super::ui::Ui;
use crate::api::{AppState, State};
use crate::assessment::{AssessError, Assessment};
use crate::store::TaskRow;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::BTreeMap;

/// The form's data for a template, or None when the task collects no ratings (or is not
/// open). `action` is where the form posts.
pub(super) async fn context(
    state: &AppState,
    task: &TaskRow,
    action: String,
) -> Option<serde_json::Value> {
    if task.state != crate::core::state::TaskState::Open {
        return None;
    }
    let form = Assessment::new(&state.engine).form(task.id).await.ok()?;
    let mut v = crate::api::results::form_json(&form);
    v["action"] = action.into();
    Some(v)
}

/// The form's `p{id}` fields as (person id, rating); empty choices are left out (and so
/// reported as not rated).
fn given(fields: &BTreeMap<String, String>) -> Vec<(i64, String)> {
    fields
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix('p')?.parse::<i64>().ok()?;
            let v = v.trim();
            (!v.is_empty()).then(|| (id, v.to_string()))
        })
        .collect()
}

fn refusal_text(e: &AssessError) -> Option<(StatusCode, String)> {
    match e {
        AssessError::Refused(r) => Some((StatusCode::UNPROCESSABLE_ENTITY, r.to_string())),
        AssessError::NotRatings(m) => Some((StatusCode::UNPROCESSABLE_ENTITY, m.clone())),
        AssessError::NotOpen(_) => Some((StatusCode::CONFLICT, e.to_string())),
        _ => None,
    }
}

pub(super) async fn task_ratings(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(fields): Form<BTreeMap<String, String>>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "任务") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match Assessment::new(&state.engine)
        .submit(id, &given(&fields), &user.actor())
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/tasks/{id}?done=complete")).into_response(),
        Err(e) => match refusal_text(&e) {
            Some((status, msg)) => {
                super::tasks::render_task(&ui, id, status, None, Some(msg)).await
            }
            None => fail(&ui, e),
        },
    }
}

pub(super) async fn branch_ratings(
    Shared(state): Shared<State>,
    Path((unit, task)): Path<(String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
    Form(fields): Form<BTreeMap<String, String>>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, _) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match Assessment::new(&state.engine)
        .submit(task.id, &given(&fields), &format!("link:{unit}"))
        .await
    {
        Ok(done) => branch_message_ok(
            &ui,
            &format!(
                "「{}」已提交：{}人的考核等次已保存，任务已完成。",
                task.title,
                done.results.len()
            ),
        ),
        Err(e) => match refusal_text(&e) {
            Some((status, msg)) => branch_message(&ui, status, "未能提交", &msg),
            None => fail(&ui, e),
        },
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct YearQuery {
    year: String,
}

/// The results of a year (all years when none is given), with the 优先使用 list.
pub(super) async fn results_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<YearQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let year = q.year.trim().parse::<i32>().ok();
    let filter = crate::store::ResultFilter {
        year,
        ..Default::default()
    };
    let rows = match state.engine.store().results(&filter).await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let dir = &ui.catalog.directory;
    let row = |r: &crate::store::ResultRow| {
        let unit = dir.unit(&r.unit).map_or(r.unit.clone(), |u| u.name.clone());
        serde_json::json!({"year": r.year, "person": r.person_id, "name": r.name, "unit": unit,
            "rating": r.rating, "failing": r.failing != 0, "priority": r.priority != 0})
    };
    let results: Vec<_> = rows.iter().map(row).collect();
    let priority: Vec<_> = rows.iter().filter(|r| r.priority != 0).map(row).collect();
    ui.page(
        StatusCode::OK,
        "results.html",
        serde_json::json!({"active": "people", "year": year, "results": results, "priority": priority,
            "export": format!("/console/export/results.xlsx{}", year.map_or(String::new(), |y| format!("?year={y}")))}),
    )
}

/// The 考核结果汇总表 of a year (all years when none is given) as a download.
pub(super) async fn results_export(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<YearQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let year = q.year.trim().parse::<i32>().ok();
    let report = match crate::api::results_export::results_report(&state, year).await {
        Ok(r) => r,
        Err(e) => return fail(&ui, e),
    };
    match report.to_xlsx() {
        Ok(bytes) => {
            super::xlsx_response(&crate::api::results_export::file_name(&report, year), bytes)
        }
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

fn branch_message_ok(ui: &Ui<'_>, text: &str) -> Response {
    ui.page(
        StatusCode::OK,
        "message.html",
        serde_json::json!({"branch": true, "title": "已提交", "text": text, "diagnostics": [], "back": null, "kind": "ok"}),
    )
}

fn fail(ui: &Ui<'_>, e: AssessError) -> Response {
    match e {
        AssessError::Store(e) => ui.store_fail(e),
        AssessError::Engine(e) => ui.fail(e),
        AssessError::NotFound(id) => {
            ui.fail(crate::engine::EngineError::NotFound(format!("任务 {id}")))
        }
        other => ui.fail(crate::engine::EngineError::Invalid(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_person_fields_and_leaves_out_empty_choices_and_other_fields() {
        let fields = BTreeMap::from([
            ("csrf".to_string(), "x".to_string()),
            ("p3".to_string(), " 好 ".to_string()),
            ("p4".to_string(), "".to_string()),
            ("pz".to_string(), "差".to_string()),
        ]);
        assert_eq!(given(&fields), vec![(3, "好".to_string())]);
    }
}
