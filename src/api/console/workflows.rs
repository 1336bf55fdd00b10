//! The workflow list (`/console/workflows`): each loaded workflow with its stored
//! versions and whether its file, checked again as it is now, is what runs; the files that
//! fail validation; and the form that starts a new workflow in the editor.

use super::auth::ConsoleUser;
use super::editor::valid_new_id;
use super::ui::{Ui, diag_json};
use crate::api::State;
use crate::catalog;
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::timefmt::zh_date;
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SavedQuery {
    saved: Option<String>,
}

pub(super) async fn workflows_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<SavedQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let cat = ui.catalog.clone();
    let today = ui.today();
    let dir = cat.config.workflows_dir.clone();
    // Re-check the folder as it is now, against the loaded directory and calendar.
    let (files, mut other) = match catalog::workflow_files(std::slice::from_ref(&dir)) {
        Ok(f) => (f, Vec::new()),
        Err(d) => (Vec::new(), vec![d]),
    };
    let (fresh, diags) =
        catalog::load_workflows(&files, &cat.config, &cat.directory, &cat.calendar, today);
    let mut by_file: BTreeMap<String, Vec<&Diagnostic>> = BTreeMap::new();
    for d in &diags {
        by_file.entry(d.file.clone()).or_default().push(d);
    }
    let mut rows = Vec::new();
    for (id, w) in &cat.workflows {
        let path = w.path.display().to_string();
        let versions = match state.engine.store().workflow_versions(id).await {
            Ok(v) => v,
            Err(e) => return ui.store_fail(e),
        };
        let versions: Vec<serde_json::Value> = versions
            .iter()
            .rev()
            .map(|v| json!({"version": v.version, "hash": v.hash.get(..8).unwrap_or(&v.hash), "created": ui.at(v.created_at), "current": v.hash == w.hash}))
            .collect();
        let file_diags = by_file.get(&path).cloned().unwrap_or_default();
        let (status, class) = file_status(
            fresh.get(id).map(|f| f.hash.as_str()),
            &w.hash,
            &file_diags,
            files.iter().any(|f| f == &w.path),
        );
        rows.push(json!({
            "id": id, "title": w.workflow.title, "path": path, "versions": versions,
            "status": status, "status_class": class,
            "diagnostics": file_diags.iter().map(|d| diag_json(d)).collect::<Vec<_>>(),
        }));
    }
    let loaded_paths: Vec<String> = cat
        .workflows
        .values()
        .map(|w| w.path.display().to_string())
        .collect();
    let mut invalid = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let ok = fresh.values().any(|w| &w.path == f);
        if ok || loaded_paths.contains(&name) {
            continue;
        }
        let ds: Vec<serde_json::Value> = by_file
            .get(&name)
            .map(|v| v.iter().map(|d| diag_json(d)).collect())
            .unwrap_or_default();
        let edit = f
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| valid_new_id(s))
            .map(str::to_string);
        invalid.push(json!({"path": name, "diagnostics": ds, "edit": edit}));
    }
    let known: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    other.extend(diags.iter().filter(|d| !known.contains(&d.file)).cloned());
    ui.page(
        StatusCode::OK,
        "workflows.html",
        json!({
            "active": "workflows", "workflows": rows, "invalid": invalid,
            "other": other.iter().map(diag_json).collect::<Vec<_>>(),
            "dir": dir.display().to_string(), "today": zh_date(today),
            "saved": q.saved.filter(|s| cat.workflows.contains_key(s)),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NewQuery {
    id: String,
}

pub(super) async fn new_workflow(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<NewQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = q.id.trim();
    if !valid_new_id(id) {
        return ui.message(
            StatusCode::BAD_REQUEST,
            "id 不合规",
            "工作流 id 只能由小写字母、数字、- 和 _ 组成，并以字母或数字开头。",
        );
    }
    Redirect::to(&format!("/console/workflows/{id}/edit")).into_response()
}

/// How a loaded workflow's file stands, as a label and the badge's CSS class: checked
/// again as it is now (`fresh_hash`, None when it does not load now) against the hash that
/// runs, with the diagnostics of that check and whether the file is still in the folder.
fn file_status(
    fresh_hash: Option<&str>,
    running_hash: &str,
    diagnostics: &[&Diagnostic],
    in_folder: bool,
) -> (&'static str, &'static str) {
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    match fresh_hash {
        Some(h) if h == running_hash && diagnostics.is_empty() => ("有效", "done"),
        Some(h) if h == running_hash => ("有效（有警告）", "open"),
        Some(_) => ("文件已改动，尚未重新加载", "open"),
        None if has_errors => ("文件当前无效，仍运行上次有效版本", "late"),
        None if in_folder => ("有效", "done"),
        None => ("文件不在工作流文件夹中", "waiting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diagnostic::Loc;

    fn diag(severity: Severity) -> Diagnostic {
        Diagnostic {
            severity,
            code: "test",
            file: "workflows/w.yaml".into(),
            loc: Loc { line: 1, column: 1 },
            message: "m".into(),
            hint: None,
        }
    }

    #[test]
    fn a_file_that_loads_as_it_runs_is_valid_with_or_without_warnings() {
        assert_eq!(file_status(Some("h1"), "h1", &[], true), ("有效", "done"));
        let warning = diag(Severity::Warning);
        assert_eq!(
            file_status(Some("h1"), "h1", &[&warning], true),
            ("有效（有警告）", "open")
        );
    }

    #[test]
    fn a_changed_file_is_not_yet_reloaded() {
        assert_eq!(
            file_status(Some("h2"), "h1", &[], true),
            ("文件已改动，尚未重新加载", "open")
        );
    }

    #[test]
    fn a_file_that_no_longer_loads_keeps_running_its_last_good_version() {
        let error = diag(Severity::Error);
        assert_eq!(
            file_status(None, "h1", &[&error], true),
            ("文件当前无效，仍运行上次有效版本", "late")
        );
        assert_eq!(
            file_status(None, "h1", &[], false),
            ("文件不在工作流文件夹中", "waiting")
        );
        assert_eq!(file_status(None, "h1", &[], true), ("有效", "done"));
    }
}
