//! The workflow editor (`/console/workflows/{id}/edit`): a draft is checked as `yanzhen
//! validate` would plus a trial plan (preview), and saved only when valid: written
//! atomically, reloaded as a file event would be, and recorded in the audit log.

use super::auth::ConsoleUser;
use super::ui::{Early, Ui, diag_json};
use crate::api::State;
use crate::catalog::{Catalog, content_hash};
use crate::core::definition::Workflow;
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::plan::{PlanInput, plan};
use crate::core::timefmt::zh_date;
use crate::core::validate::{Context, validate_workflow, workflow_tz};
use crate::store::AuditEntry;
use axum::extract::{Form, Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

/// A workflow id that may name a new file: lowercase letters, digits, `-` and `_`.
pub(super) fn valid_new_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Where the editor reads and writes workflow `id`: its file when loaded, else an existing
/// `<workflows_dir>/<id>.yaml`/`.yml`, else a new `<workflows_dir>/<id>.yaml`.
fn target_path(cat: &Catalog, id: &str) -> PathBuf {
    if let Some(w) = cat.workflows.get(id) {
        return w.path.clone();
    }
    let dir = &cat.config.workflows_dir;
    for ext in ["yaml", "yml"] {
        let p = dir.join(format!("{id}.{ext}"));
        if p.is_file() {
            return p;
        }
    }
    dir.join(format!("{id}.yaml"))
}

/// The editor's target, or a 404/400 page for an id that is neither loaded nor a valid
/// new file name (no path tricks).
fn editor_target(ui: &Ui<'_>, id: &str) -> Early<PathBuf> {
    if ui.catalog.workflows.contains_key(id) || valid_new_id(id) {
        Ok(target_path(&ui.catalog, id))
    } else {
        Err(Box::new(ui.message(
            StatusCode::BAD_REQUEST,
            "id 不合规",
            "工作流 id 只能由小写字母、数字、- 和 _ 组成，并以字母或数字开头。",
        )))
    }
}

/// A starting text for a new workflow.
fn skeleton(id: &str, today: NaiveDate) -> String {
    format!(
        "id: {id}\ntitle: 新工作流\nexample_start: {today}\n\nstages:\n  - id: deployment\n    title: 工作部署\n    opens: {{from: round_start}}\n    closes: {{from: round_start, days: 6}}\n    tasks:\n      - id: meeting\n        title: 召开会议部署\n        assignee: {{group: communities}}\n        due: {{from: stage_close}}\n"
    )
}

pub(super) async fn editor_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let path = match editor_target(&ui, &id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let (source, is_new) = match std::fs::read_to_string(&path) {
        Ok(text) => (text, false),
        Err(_) => match ui.catalog.workflows.get(&id) {
            Some(w) => (w.source.clone(), false),
            None => (skeleton(&id, ui.today()), true),
        },
    };
    ui.page(
        StatusCode::OK,
        "editor.html",
        editor_ctx(&id, &path, is_new, &source, None, None),
    )
}

/// The outcome of checking a draft.
struct Checked {
    workflow: Option<Workflow>,
    diagnostics: Vec<Diagnostic>,
    plan: Option<String>,
    plan_start: Option<NaiveDate>,
    plan_problems: Vec<Diagnostic>,
}

impl Checked {
    fn valid(&self) -> bool {
        self.workflow.is_some()
    }
}

/// Validate a draft as `yanzhen validate` would (against the loaded directory and
/// calendar, with today's date), require its id to be the one edited, and plan it from its
/// `example_start` (or today) for the preview.
fn check_draft(cat: &Catalog, id: &str, path: &FsPath, text: &str, today: NaiveDate) -> Checked {
    let file = path.display().to_string();
    let ctx = Context {
        directory: &cat.directory,
        calendar: &cat.calendar,
        default_tz: cat.config.tz(),
        today,
    };
    let (wf, d) = validate_workflow(&file, text, ctx);
    let mut diagnostics = d.into_sorted();
    let workflow = match wf {
        Some(wf) if wf.id.value != id => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                code: "id-mismatch",
                file: file.clone(),
                loc: wf.id.loc,
                message: format!(
                    "the file's id `{}` is not the workflow being edited (`{id}`)",
                    wf.id.value
                ),
                hint: Some(format!(
                    "keep `id: {id}`, or create `{}` from the workflows page",
                    wf.id.value
                )),
            });
            None
        }
        other => other,
    };
    let mut out = Checked {
        workflow,
        diagnostics,
        plan: None,
        plan_start: None,
        plan_problems: Vec::new(),
    };
    if let Some(wf) = &out.workflow {
        let start = wf.example_start.as_ref().map(|s| s.value).unwrap_or(today);
        let params = BTreeMap::new();
        let (p, problems) = plan(PlanInput {
            workflow: wf,
            directory: &cat.directory,
            calendar: &cat.calendar,
            tz: workflow_tz(wf, cat.config.tz()),
            start,
            params: &params,
            units: None,
            done: None,
            events: None,
            people: None,
        });
        out.plan_start = Some(start);
        out.plan = p.map(|p| p.to_table());
        out.plan_problems = problems
            .into_iter()
            .map(|p| Diagnostic {
                severity: p.severity,
                code: p.code,
                file: file.clone(),
                loc: p.loc,
                message: p.message,
                hint: p.hint,
            })
            .collect();
    }
    out
}

fn editor_ctx(
    id: &str,
    path: &FsPath,
    is_new: bool,
    source: &str,
    checked: Option<&Checked>,
    message: Option<(&str, String)>,
) -> serde_json::Value {
    let count = |s: Severity| {
        checked.map_or(0, |c| {
            c.diagnostics.iter().filter(|d| d.severity == s).count()
        })
    };
    json!({
        "active": "workflows", "id": id, "path": path.display().to_string(), "is_new": is_new,
        "source": source, "checked": checked.is_some(),
        "errors": count(Severity::Error), "warnings": count(Severity::Warning),
        "diagnostics": checked.map(|c| c.diagnostics.iter().map(diag_json).collect::<Vec<_>>()).unwrap_or_default(),
        "plan": checked.and_then(|c| c.plan.clone()),
        "plan_start": checked.and_then(|c| c.plan_start).map(zh_date),
        "plan_problems": checked.map(|c| c.plan_problems.iter().map(diag_json).collect::<Vec<_>>()).unwrap_or_default(),
        "message": message.as_ref().map(|m| m.1.clone()),
        "message_kind": message.as_ref().map(|m| m.0).unwrap_or("error"),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SourceForm {
    source: String,
}

/// Browsers send textarea line breaks as CRLF; files keep LF.
fn normalise(source: &str) -> String {
    source.replace("\r\n", "\n")
}

pub(super) async fn editor_preview(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<SourceForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let path = match editor_target(&ui, &id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let source = normalise(&form.source);
    let checked = check_draft(&ui.catalog, &id, &path, &source, ui.today());
    let is_new = !ui.catalog.workflows.contains_key(&id) && !path.is_file();
    ui.page(
        StatusCode::OK,
        "editor.html",
        editor_ctx(&id, &path, is_new, &source, Some(&checked), None),
    )
}

pub(super) async fn editor_save(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<SourceForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let path = match editor_target(&ui, &id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let source = normalise(&form.source);
    let today = ui.today();
    let checked = check_draft(&ui.catalog, &id, &path, &source, today);
    let is_new = !ui.catalog.workflows.contains_key(&id) && !path.is_file();
    if !checked.valid() {
        return ui.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "editor.html",
            editor_ctx(
                &id,
                &path,
                is_new,
                &source,
                Some(&checked),
                Some(("error", "草稿有错误，没有保存；文件保持不变。".into())),
            ),
        );
    }
    if let Err(e) = write_atomically(&path, &source) {
        tracing::error!(path = %path.display(), error = %e, "saving a workflow failed");
        return ui.page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "editor.html",
            editor_ctx(
                &id,
                &path,
                is_new,
                &source,
                Some(&checked),
                Some(("error", format!("写入文件失败：{e}"))),
            ),
        );
    }
    // The same reload as a file event or SIGHUP: a broken config, directory or calendar
    // changes nothing, other broken workflow files keep their last good version, and
    // running rounds are re-projected onto the current directory and calendar.
    let report = state.engine.reload(&state.config_path).await;
    let hash = content_hash(&source);
    let live = state
        .engine
        .catalog()
        .workflows
        .get(&id)
        .is_some_and(|w| w.hash == hash);
    let audit = AuditEntry {
        at: ui.now().timestamp_millis(),
        actor: user.actor(),
        action: "workflow.save".into(),
        subject: format!("workflow:{id}"),
        detail_json: json!({"path": path.display().to_string(), "hash": hash, "new": is_new, "reloaded": report.applied, "live": live}).to_string(),
    };
    if let Err(e) = state.engine.store().append_audit(audit).await {
        return ui.store_fail(e);
    }
    tracing::info!(workflow = %id, path = %path.display(), actor = %user.actor(), live, "workflow saved from the console");
    if live {
        return Redirect::to(&format!("/console/workflows?saved={id}")).into_response();
    }
    let file = path.display().to_string();
    let (text, errors): (String, Vec<serde_json::Value>) = if report.applied {
        (
            "重新加载时这个文件没有被采用（见下方问题），仍在运行上一个有效版本。".into(),
            report
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error && d.file == file)
                .map(diag_json)
                .collect(),
        )
    } else {
        (
            "重新加载失败：配置、名录或日历有错误，仍在使用原有的目录、日历和工作流。".into(),
            report
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(diag_json)
                .collect(),
        )
    };
    ui.page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        json!({
            "active": "workflows", "title": "已保存，但未能生效",
            "text": format!("工作流 {id} 已写入 {file}。{text}"),
            "diagnostics": errors, "back": "/console/workflows", "kind": "warning",
        }),
    )
}

/// Write `text` to `path` so readers see the old file or the new one, never half: a
/// temporary file in the same folder, flushed, then renamed over the target.
fn write_atomically(path: &FsPath, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| FsPath::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("workflow.yaml");
    let nonce: u64 = rand::random();
    let tmp = dir.join(format!(".{name}.{nonce:016x}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_workflow_ids_cannot_leave_the_folder() {
        assert!(valid_new_id("yearly-training_2"));
        for bad in ["", "../x", "a/b", "A", "-x", "x.yaml", "名字"] {
            assert!(!valid_new_id(bad), "{bad}");
        }
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("w.yaml");
        std::fs::write(&p, "old").expect("write");
        write_atomically(&p, "new").expect("atomic write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "new");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn textarea_line_breaks_are_saved_as_lf() {
        assert_eq!(normalise("id: x\r\ntitle: t\r\n"), "id: x\ntitle: t\n");
        assert_eq!(normalise("a\nb"), "a\nb");
    }
}
