//! The workflow editor (`/console/workflows/{id}/edit`): a draft is checked as `yanzhen
//! validate` would plus a trial plan (preview), and saved only when valid: written
//! atomically, reloaded as a file event would be, and recorded in the audit log.

use super::auth::ConsoleUser;
use super::gantt::plan_gantt;
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
    // The version this edit starts from: the file as read now (none for a new file).
    let base = on_disk(&path).map(|t| content_hash(&t)).unwrap_or_default();
    let page = EditorPage {
        id: &id,
        path: &path,
        is_new,
        source: &source,
        base: &base,
        title: ui
            .catalog
            .workflows
            .get(&id)
            .map(|w| w.workflow.title.as_str()),
    };
    ui.page(
        StatusCode::OK,
        "editor.html",
        page.ctx(&ui, None, None, None),
    )
}

/// The workflow file's text as it is on disk now, None when it does not exist (or cannot
/// be read: then a save cannot have been based on it either).
fn on_disk(path: &FsPath) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// What every rendering of the editor shows besides the check's outcome.
struct EditorPage<'a> {
    id: &'a str,
    path: &'a FsPath,
    is_new: bool,
    source: &'a str,
    /// The content hash of the file version the draft was based on ("" for a new file):
    /// a save over a newer version is refused (optimistic concurrency).
    base: &'a str,
    title: Option<&'a str>,
}

/// A refused save: the file as it is now, next to the draft.
struct Conflict {
    current: String,
}

/// Lines of `text` numbered for a side-by-side view; lines absent from `other` marked.
fn numbered(text: &str, other: &str) -> Vec<serde_json::Value> {
    let theirs: std::collections::HashSet<&str> = other.lines().collect();
    text.lines()
        .enumerate()
        .map(|(i, l)| json!({"n": i + 1, "text": l, "changed": !theirs.contains(l)}))
        .collect()
}

/// The outcome of checking a draft.
struct Checked {
    workflow: Option<Workflow>,
    diagnostics: Vec<Diagnostic>,
    plan: Option<crate::core::plan::Plan>,
    plan_start: Option<NaiveDate>,
    plan_problems: Vec<Diagnostic>,
}

impl Checked {
    fn valid(&self) -> bool {
        self.workflow.is_some()
    }
}

/// Validate a draft as `yanzhen validate` would (against the loaded directory and
/// calendar, with today's date), require its id to be the one edited, and plan it from
/// `start` (the preview's date picker), else its `example_start`, else today.
fn check_draft(
    cat: &Catalog,
    id: &str,
    path: &FsPath,
    text: &str,
    today: NaiveDate,
    start: Option<NaiveDate>,
) -> Checked {
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
        let start = start
            .or(wf.example_start.as_ref().map(|s| s.value))
            .unwrap_or(today);
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
        out.plan = p;
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

impl EditorPage<'_> {
    fn ctx(
        &self,
        ui: &Ui<'_>,
        checked: Option<&Checked>,
        message: Option<(&str, String)>,
        conflict: Option<&Conflict>,
    ) -> serde_json::Value {
        let count = |s: Severity| {
            checked.map_or(0, |c| {
                c.diagnostics.iter().filter(|d| d.severity == s).count()
            })
        };
        let gantt = checked
            .and_then(|c| c.plan.as_ref())
            .and_then(|p| plan_gantt(p, ui.now(), ui.tz(), &ui.catalog.calendar));
        json!({
            "active": "workflows", "id": self.id, "path": self.path.display().to_string(), "is_new": self.is_new,
            "title": self.title, "source": self.source, "base": self.base,
            "lines": self.source.lines().count().max(1),
            "checked": checked.is_some(),
            "errors": count(Severity::Error), "warnings": count(Severity::Warning),
            "diagnostics": checked.map(|c| c.diagnostics.iter().map(diag_json).collect::<Vec<_>>()).unwrap_or_default(),
            "plan": checked.and_then(|c| c.plan.as_ref()).map(|p| p.to_table()),
            "gantt": gantt, "gantt_title": format!("{}（计划预览）", self.title.unwrap_or(self.id)),
            "plan_start": checked.and_then(|c| c.plan_start).map(zh_date),
            "plan_start_iso": checked.and_then(|c| c.plan_start).map(|d| d.to_string()),
            "plan_problems": checked.map(|c| c.plan_problems.iter().map(diag_json).collect::<Vec<_>>()).unwrap_or_default(),
            "message": message.as_ref().map(|m| m.1.clone()),
            "message_kind": message.as_ref().map(|m| m.0).unwrap_or("error"),
            "conflict": conflict.map(|c| json!({
                "current": numbered(&c.current, self.source),
                "mine": numbered(self.source, &c.current),
            })),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SourceForm {
    source: String,
    /// The content hash of the version the draft started from ("" for a new file).
    base: String,
    /// The preview's start date (`YYYY-MM-DD`), else the workflow's `example_start`.
    start: String,
}

/// Browsers send textarea line breaks as CRLF; files keep LF.
fn normalise(source: &str) -> String {
    source.replace("\r\n", "\n")
}

/// The preview's start date from the form's date picker; None when empty or malformed
/// (then the workflow's `example_start`, else today).
fn form_start(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()
}

/// Saves are checked against the file and written one at a time, so two saves based on
/// the same version cannot both pass the version check.
static SAVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let checked = check_draft(
        &ui.catalog,
        &id,
        &path,
        &source,
        ui.today(),
        form_start(&form.start),
    );
    let page = EditorPage {
        id: &id,
        path: &path,
        is_new: !ui.catalog.workflows.contains_key(&id) && !path.is_file(),
        source: &source,
        base: &form.base,
        title: ui
            .catalog
            .workflows
            .get(&id)
            .map(|w| w.workflow.title.as_str()),
    };
    ui.page(
        StatusCode::OK,
        "editor.html",
        page.ctx(&ui, Some(&checked), None, None),
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
    let checked = check_draft(
        &ui.catalog,
        &id,
        &path,
        &source,
        today,
        form_start(&form.start),
    );
    let is_new = !ui.catalog.workflows.contains_key(&id) && !path.is_file();
    let saving = SAVING.lock().await;
    let current = on_disk(&path);
    let current_hash = current.as_deref().map(content_hash).unwrap_or_default();
    let mut page = EditorPage {
        id: &id,
        path: &path,
        is_new,
        source: &source,
        base: &form.base,
        title: ui
            .catalog
            .workflows
            .get(&id)
            .map(|w| w.workflow.title.as_str()),
    };
    if form.base != current_hash {
        // Someone saved (or edited the file on the server) since this draft was opened:
        // show both versions; the form now carries the current version, so saving again
        // replaces it knowingly.
        tracing::info!(workflow = %id, actor = %user.actor(), "a save over a newer version of the workflow was refused");
        page.base = &current_hash;
        let conflict = Conflict {
            current: current.unwrap_or_default(),
        };
        return ui.page(
            StatusCode::CONFLICT,
            "editor.html",
            page.ctx(
                &ui,
                Some(&checked),
                Some((
                    "error",
                    "没有保存：你打开编辑器之后，这个文件已被修改（其他人在控制台保存过，或在服务器上改动过）。下面并列显示文件的当前版本和你的草稿；请把需要的修改合并到草稿中再保存，再次保存将以你的草稿替换当前版本。".into(),
                )),
                Some(&conflict),
            ),
        );
    }
    if !checked.valid() {
        return ui.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "editor.html",
            page.ctx(
                &ui,
                Some(&checked),
                Some(("error", "草稿有错误，没有保存；文件保持不变。".into())),
                None,
            ),
        );
    }
    if let Err(e) = write_atomically(&path, &source) {
        tracing::error!(path = %path.display(), error = %e, "saving a workflow failed");
        return ui.page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "editor.html",
            page.ctx(
                &ui,
                Some(&checked),
                Some(("error", format!("写入文件失败：{e}"))),
                None,
            ),
        );
    }
    drop(saving);
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
