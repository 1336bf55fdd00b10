//! The filter form of the console's lists (rounds, tasks, the overdue board): the query
//! string read as a [`Find`], the form's choices (rounds, stages, states, branches) and
//! the export link carrying the same filter.

use super::ui::{Early, Ui};
use crate::core::state::{RoundStatus, TaskState};
use crate::report::Find;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};
use strum::VariantArray;

/// Which states a list's form offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum States {
    /// Task states and "overdue" (the task list).
    Tasks,
    /// Round statuses (the rounds list).
    Rounds,
    /// None (the overdue board: every item is overdue).
    None,
}

/// The query string as a filter; one that does not read (a round that is not a number, an
/// unknown field) is a 400 page saying so.
pub(super) fn read(ui: &Ui<'_>, q: Result<Query<Find>, QueryRejection>) -> Early<Find> {
    q.map(|Query(f)| f).map_err(|e| {
        Box::new(ui.message(
            StatusCode::BAD_REQUEST,
            "筛选条件有误",
            &format!(
                "无法读取筛选条件：{}。请用页面上的筛选表单重新选择。",
                e.body_text()
            ),
        ))
    })
}

/// A state value refused by the list: a 400 page naming it.
pub(super) fn bad_state(
    ui: &Ui<'_>,
    e: crate::report::UnknownState,
) -> Box<axum::response::Response> {
    Box::new(ui.message(
        StatusCode::BAD_REQUEST,
        "筛选条件有误",
        &format!("没有「{}」这种状态，请在筛选表单中选择。", e.0),
    ))
}

/// The form's context: the current filter, its choices, where it submits and the export
/// link (`/console/export/NAME.xlsx?...`) with the same filter.
pub(super) async fn form(
    ui: &Ui<'_>,
    find: &Find,
    action: &str,
    states: States,
    export: &str,
) -> Value {
    let cat = &ui.catalog;
    // The form still works without the round choices; the list itself reports a failure.
    let rounds = ui.state.engine.store().rounds().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "filter form: rounds not read");
        Vec::new()
    });
    let round_workflow = find
        .round
        .and_then(|id| rounds.iter().find(|r| r.id == id))
        .map(|r| r.workflow_id.clone());
    let round_opts: Vec<Value> = rounds
        .iter()
        .map(|r| json!({"value": r.id.to_string(), "label": format!("第 {} 轮 {}（{}）", r.id, ui.round_title(r), r.start_date)}))
        .collect();
    // Stages of the chosen round's workflow, else of every loaded workflow (ids are
    // shared by workflows that name a stage alike: one choice each).
    let mut stage_opts: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (id, w) in cat.workflows.iter() {
        if states == States::Rounds || round_workflow.as_ref().is_some_and(|rw| rw != id) {
            continue;
        }
        for s in &w.workflow.stages {
            if seen.insert(s.id.value.clone()) {
                stage_opts.push(json!({"value": s.id.value, "label": s.title}));
            }
        }
    }
    let state_opts: Vec<Value> = match states {
        States::Tasks => TaskState::VARIANTS
            .iter()
            .map(|s| json!({"value": s.as_str(), "label": s.zh()}))
            .chain(std::iter::once(
                json!({"value": "overdue", "label": "逾期"}),
            ))
            .collect(),
        States::Rounds => RoundStatus::VARIANTS
            .iter()
            .map(|s| json!({"value": s.as_str(), "label": s.zh()}))
            .collect(),
        States::None => Vec::new(),
    };
    let branch_opts: Vec<Value> = cat
        .directory
        .units
        .iter()
        .map(|u| json!({"value": u.id.value, "label": u.name}))
        .collect();
    let query = find.query();
    let sep = if query.is_empty() { "" } else { "?" };
    json!({
        "action": action,
        "round": find.round.map(|r| r.to_string()).unwrap_or_default(),
        "stage": find.stage.clone().unwrap_or_default(),
        "state": find.state.clone().unwrap_or_default(),
        "branch": find.branch.clone().unwrap_or_default(),
        "rounds": if states == States::Rounds { Vec::new() } else { round_opts }, "stages": stage_opts, "states": state_opts, "branches": branch_opts,
        "active": *find != Find::default(),
        "export": format!("/console/export/{export}.xlsx{sep}{query}"),
    })
}
