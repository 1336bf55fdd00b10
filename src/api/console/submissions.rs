//! Hand-ins: the branch's form on its signed task page (fields and files, multipart,
//! streamed into the file store), the files served back (to the same branch's link or an
//! administrator, always as attachments), and the office's 通过 / 退回 on the console's
//! task page.

use super::auth::ConsoleUser;
use super::branch::{LinkQuery, branch_message, linked_task, render_branch_task};
use super::ui::Ui;
use crate::api::State;
use crate::core::state::TaskState;
use crate::core::submission::{Asks, Entry, GivenFile, check_entry, kinds_zh, sanitise_name};
use crate::engine::{EngineError, NewDeadline};
use crate::files::FilesError;
use crate::store::{NewSubmission, StoredFile, SubmissionRow, TaskRow};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Multipart, Path, Query, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

/// The largest hand-in request: every file of a task together, plus its fields. Each
/// file's own limit (`max_mb`) is enforced while it streams.
pub const UPLOAD_MAX_BYTES: usize = 256 * 1024 * 1024;

/// The branch's hand-in route (behind the branch rate limit, with limits of its own: see
/// `api::router`).
pub fn branch_upload_routes(http: &crate::config::HttpConfig) -> Router<State> {
    // One semaphore for every hand-in: a waiting one has not read its body yet, so it
    // holds a connection but no buffers.
    let slots = tower::limit::GlobalConcurrencyLimitLayer::new(http.max_concurrent_uploads);
    Router::new().route(
        "/b/{unit}/t/{task}/submit",
        post(branch_submit).layer(slots),
    )
}

/// The branch's file downloads (its own hand-ins and the blank forms), under the branch
/// pages' limits: a download's body streams after the response starts.
pub fn branch_file_routes() -> Router<State> {
    Router::new()
        .route("/b/{unit}/t/{task}/files/{sub}/{n}", get(branch_file))
        .route("/b/{unit}/t/{task}/forms/{n}", get(branch_form))
}

/// The console's accept, return and file routes.
pub fn console_routes() -> Router<State> {
    Router::new()
        .route("/console/tasks/{id}/accept", post(accept))
        .route("/console/tasks/{id}/return", post(give_back))
        .route("/console/submissions/{task}/{sub}/{n}", get(console_file))
        .route("/console/rounds/{id}/archive", post(round_archive))
}

/// 归档: the round's zip, written to a temporary file and streamed from it (the file is
/// unlinked once open, so nothing is left behind and the zip is never in memory).
async fn round_archive(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let id = match ui.parse_id(&id, "轮次") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let files = match state.files() {
        Ok(f) => f,
        Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
    };
    let path = std::env::temp_dir().join(format!(
        "yanzhen-archive-{id}-{}-{}.zip",
        std::process::id(),
        ui.now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let store = state.engine.store();
    let tz = ui.tz();
    let written = crate::archive::write_round_archive(store.as_ref(), files, id, tz, &path).await;
    let opened = tokio::fs::File::open(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    let (a, file) = match (written, opened) {
        (Ok(a), Ok(f)) => (a, f),
        (Err(crate::archive::ArchiveError::NoRound(_)), _) => {
            return ui.fail(EngineError::NotFound(format!("轮次 {id}")));
        }
        (Err(e), _) => return ui.fail(EngineError::Invalid(e.to_string())),
        (_, Err(e)) => return ui.fail(EngineError::Invalid(e.to_string())),
    };
    let entry = crate::store::AuditEntry {
        at: ui.now().timestamp_millis(),
        actor: user.actor(),
        action: "round.archive".into(),
        subject: format!("round:{id}"),
        detail_json: json!({"files": a.files, "bytes": a.bytes, "rows": a.rows}).to_string(),
    };
    if let Err(e) = store.append_audit(entry).await {
        return ui.store_fail(e);
    }
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let name = format!("第{id}轮归档.zip");
    let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC);
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"round-{id}.zip\"; filename*=UTF-8''{encoded}"),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What the branch's task page shows of a hand-in: what is asked, the form's action, the
/// earlier submissions with their files, and the reasons of a refusal. Null when the task
/// asks for nothing.
pub(super) async fn hand_in_view(
    ui: &Ui<'_>,
    task: &TaskRow,
    unit: &str,
    q: &LinkQuery,
    errors: &[String],
) -> serde_json::Value {
    let asks = match ui.state.engine.asks_of(task).await {
        Ok(Some(a)) => a,
        _ => return serde_json::Value::Null,
    };
    let subs = ui
        .state
        .engine
        .store()
        .task_submissions(task.id)
        .await
        .unwrap_or_default();
    let link = |s: &SubmissionRow, n: usize| {
        format!("/b/{unit}/t/{}/files/{}/{n}?{}", task.id, s.id, q.query())
    };
    json!({
        "asks": asks_json(&asks),
        "lines": asks.lines(),
        "action": format!("/b/{unit}/t/{}/submit?{}", task.id, q.query()),
        "forms": asks.forms.iter().enumerate().map(|(n, p)| json!({
            "name": crate::core::submission::form_name(p),
            "href": format!("/b/{unit}/t/{}/forms/{n}?{}", task.id, q.query()),
        })).collect::<Vec<_>>(),
        "errors": errors,
        "history": history_json(ui, &asks, &subs, link),
    })
}

fn asks_json(asks: &Asks) -> serde_json::Value {
    json!({
        "fields": asks.fields.iter().map(|f| json!({
            "id": f.id, "label": f.label, "kind": f.kind, "required": f.required,
            "min": f.min, "max": f.max, "choices": f.choices,
        })).collect::<Vec<_>>(),
        "files": asks.files.iter().map(|f| json!({
            "id": f.id, "label": f.label, "required": f.required, "multiple": f.max_count > 1,
            "accept": f.kinds.iter().map(|k| format!(".{}", k.ext())).collect::<Vec<_>>().join(","),
            "kinds": kinds_zh(&f.kinds), "max_mb": f.max_bytes / (1024 * 1024), "max_count": f.max_count,
        })).collect::<Vec<_>>(),
        "forms": asks.forms.iter().map(|p| crate::core::submission::form_name(p)).collect::<Vec<_>>(),
    })
}

/// Earlier submissions, newest first, with links to their files.
fn history_json(
    ui: &Ui<'_>,
    asks: &Asks,
    subs: &[SubmissionRow],
    link: impl Fn(&SubmissionRow, usize) -> String,
) -> Vec<serde_json::Value> {
    let label = |id: &str| {
        asks.fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.label.clone())
            .or_else(|| asks.file(id).map(|f| f.label.clone()))
            .unwrap_or_else(|| id.to_string())
    };
    subs.iter()
        .rev()
        .map(|s| {
            json!({
                "id": s.id, "at": ui.at(s.at),
                "outcome": s.outcome.map(|o| o.zh()).unwrap_or("待审核"),
                "reason": s.reason,
                "fields": s.fields.iter().map(|(k, v)| json!({"label": label(k), "value": v})).collect::<Vec<_>>(),
                "files": s.files.iter().enumerate().map(|(n, f)| json!({
                    "label": label(&f.slot), "name": f.name, "size_kb": f.size.div_ceil(1024),
                    "href": link(s, n),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The branch's task page a hand-in answers with.
struct TaskPage<'a> {
    ui: &'a Ui<'a>,
    task: &'a TaskRow,
    name: &'a str,
    unit: &'a str,
    q: &'a LinkQuery,
}

impl TaskPage<'_> {
    /// A refusal of the whole hand-in: the page again with the reasons; the files this
    /// request added to the store are removed first.
    async fn refuse(&self, fresh: &[String], errors: Vec<String>, status: StatusCode) -> Response {
        if let Ok(files) = self.ui.state.files() {
            for h in fresh {
                if let Err(e) = files.delete(h).await {
                    tracing::error!(error = %e, "could not remove a refused upload");
                }
            }
        }
        render_branch_task(
            self.ui, self.task, self.name, self.unit, self.q, &errors, status,
        )
        .await
    }
}

async fn branch_submit(
    Shared(state): Shared<State>,
    Path((unit, task)): Path<(String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
    mut form: Multipart,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, name) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if task.state != TaskState::Open {
        let text = format!(
            "「{}」当前为「{}」，不能提交。",
            task.title,
            task.state.zh()
        );
        return branch_message(&ui, StatusCode::CONFLICT, "无需提交", &text);
    }
    let page = TaskPage {
        ui: &ui,
        task: &task,
        name: &name,
        unit: &unit,
        q: &q,
    };
    let asks = match state.engine.asks_of(&task).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            let text = format!("「{}」不需要提交材料。", task.title);
            return branch_message(&ui, StatusCode::NOT_FOUND, "无需提交", &text);
        }
        Err(e) => return ui.fail(e),
    };
    let files = match state.files() {
        Ok(f) => f,
        Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
    };
    let mut entry = Entry::default();
    let mut stored: Vec<StoredFile> = Vec::new();
    // Hashes this request added to the store (not there before), removed on refusal.
    let mut fresh: Vec<String> = Vec::new();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let why = vec![format!("上传中断，请重新提交（{e}）。")];
                return page.refuse(&fresh, why, StatusCode::BAD_REQUEST).await;
            }
        };
        let key = field.name().unwrap_or("").to_string();
        if let Some(id) = key.strip_prefix("f.") {
            let text = match field.text().await {
                Ok(t) => t,
                Err(e) => {
                    let why = vec![format!("上传中断，请重新提交（{e}）。")];
                    return page.refuse(&fresh, why, StatusCode::BAD_REQUEST).await;
                }
            };
            if asks.fields.iter().any(|f| f.id == id) {
                entry.fields.insert(id.to_string(), text);
            }
            continue;
        }
        let Some(slot) = key.strip_prefix("file.").and_then(|id| asks.file(id)) else {
            continue;
        };
        // A file input left empty still sends a part, without a name.
        let raw_name = field.file_name().unwrap_or("").to_string();
        if raw_name.is_empty() {
            continue;
        }
        match files.put_stream(field, slot.max_bytes, &slot.kinds).await {
            Ok(r) => {
                if !stored.iter().any(|s| s.hash == r.hash) && !fresh.contains(&r.hash) {
                    // `put_stream` has already written it: whether it is new is told by
                    // the submissions that name it, not by the store.
                    if !hash_in_use(&state, &r.hash, task.round_id).await {
                        fresh.push(r.hash.clone());
                    }
                }
                entry.files.push(GivenFile {
                    slot: slot.id.clone(),
                    kind: r.kind,
                    size: r.size,
                });
                stored.push(StoredFile {
                    slot: slot.id.clone(),
                    name: sanitise_name(&raw_name, r.kind),
                    kind: r.kind,
                    size: r.size,
                    hash: r.hash,
                });
            }
            Err(FilesError::TooLarge { limit }) => {
                let why = vec![format!(
                    "「{}」的文件“{}”超过 {}MB，未能接收。请压缩或拆分后重新提交。",
                    slot.label,
                    raw_name,
                    limit / (1024 * 1024)
                )];
                return page
                    .refuse(&fresh, why, StatusCode::PAYLOAD_TOO_LARGE)
                    .await;
            }
            Err(FilesError::WrongKind { .. }) => {
                let why = vec![format!(
                    "「{}」的文件“{}”不是 {} 文件（按文件内容判断，不看文件名），未能接收。",
                    slot.label,
                    raw_name,
                    kinds_zh(&slot.kinds)
                )];
                return page
                    .refuse(&fresh, why, StatusCode::UNPROCESSABLE_ENTITY)
                    .await;
            }
            Err(FilesError::Read(e)) => {
                let why = vec![format!("上传中断，请重新提交（{e}）。")];
                return page.refuse(&fresh, why, StatusCode::BAD_REQUEST).await;
            }
            Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
        }
    }
    let pool: Vec<String> = if asks
        .fields
        .iter()
        .any(|f| f.kind == crate::core::submission::FieldKind::Person)
    {
        let filter = crate::store::PeopleFilter {
            unit: Some(unit.clone()),
            ..Default::default()
        };
        match state.engine.store().people(&filter).await {
            Ok(p) => p.into_iter().map(|r| r.person.name).collect(),
            Err(e) => return ui.store_fail(e),
        }
    } else {
        Vec::new()
    };
    let why = check_entry(&asks, &entry, &pool);
    if !why.is_empty() {
        return page
            .refuse(&fresh, why, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    let sub = NewSubmission {
        task_id: task.id,
        round_id: task.round_id,
        unit: unit.clone(),
        at: ui.now().timestamp_millis(),
        actor: format!("link:{unit}"),
        fields: entry.fields.clone(),
        files: stored,
    };
    match state.engine.submit_task(sub).await {
        Ok(row) => ui.page(
            StatusCode::OK,
            "message.html",
            json!({
                "branch": true, "title": "已提交",
                "text": format!("{}的「{}」已提交，等待{}审核；审核结果会另行通知。", name, row.title, ui.office()),
                "diagnostics": [], "back": format!("/b/{unit}/t/{}?{}", row.id, q.query()),
                "kind": "ok",
            }),
        ),
        Err(EngineError::Store(crate::store::StoreError::WrongState { state: s, .. })) => {
            let why = vec![format!("「{}」当前为「{}」，不能提交。", task.title, s.zh())];
            page.refuse(&fresh, why, StatusCode::CONFLICT).await
        }
        Err(e) => ui.fail(e),
    }
}

/// Whether an earlier submission of the round names this content (then a refused upload
/// of the same bytes must not remove it).
async fn hash_in_use(state: &State, hash: &str, round_id: i64) -> bool {
    state
        .engine
        .store()
        .round_submissions(round_id)
        .await
        .map(|subs| subs.iter().any(|s| s.files.iter().any(|f| f.hash == hash)))
        .unwrap_or(true)
}

/// A stored file as an attachment: never rendered by the browser, never sniffed.
async fn send_file(ui: &Ui<'_>, f: &StoredFile) -> Response {
    let files = match ui.state.files() {
        Ok(f) => f,
        Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
    };
    let stream = match files.get(&f.hash).await {
        Ok(s) => s,
        Err(e) => return ui.fail(EngineError::NotFound(e.to_string())),
    };
    let encoded =
        percent_encoding::utf8_percent_encode(&f.name, percent_encoding::NON_ALPHANUMERIC);
    let disposition = format!(
        "attachment; filename=\"file.{}\"; filename*=UTF-8''{encoded}",
        f.kind.ext()
    );
    (
        [
            (header::CONTENT_TYPE, f.kind.mime().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
            (header::CONTENT_LENGTH, f.size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The `n`th file of submission `sub` of this task.
async fn file_of(state: &State, task: i64, sub: &str, n: &str) -> Option<StoredFile> {
    let (sub, n) = (sub.parse::<i64>().ok()?, n.parse::<usize>().ok()?);
    let subs = state.engine.store().task_submissions(task).await.ok()?;
    subs.into_iter()
        .find(|s| s.id == sub)?
        .files
        .into_iter()
        .nth(n)
}

async fn branch_file(
    Shared(state): Shared<State>,
    Path((unit, task, sub, n)): Path<(String, String, String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, _) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match file_of(&state, task.id, &sub, &n).await {
        Some(f) => send_file(&ui, &f).await,
        None => branch_message(&ui, StatusCode::NOT_FOUND, "未找到", "没有这个文件。"),
    }
}

/// The `n`th blank form of the task, as an attachment. Its path was checked when the
/// workflow loaded (under `templates/forms/`, no `..`).
async fn branch_form(
    Shared(state): Shared<State>,
    Path((unit, task, n)): Path<(String, String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, _) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let missing = || branch_message(&ui, StatusCode::NOT_FOUND, "未找到", "没有这份空白表格。");
    let asks = match state.engine.asks_of(&task).await {
        Ok(Some(a)) => a,
        Ok(None) => return missing(),
        Err(e) => return ui.fail(e),
    };
    let Some(path) = n.parse::<usize>().ok().and_then(|n| asks.forms.get(n)) else {
        return missing();
    };
    let (Some(kind), Ok(bytes)) = (
        crate::core::submission::FileKind::from_name(path),
        tokio::fs::read(path).await,
    ) else {
        return missing();
    };
    let name = crate::core::submission::form_name(path);
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    (
        [
            (header::CONTENT_TYPE, kind.mime().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"form.{}\"; filename*=UTF-8''{encoded}",
                    kind.ext()
                ),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response()
}

async fn console_file(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path((task, sub, n)): Path<(String, String, String)>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let Ok(task) = task.parse::<i64>() else {
        return ui.fail(EngineError::NotFound("文件".into()));
    };
    match file_of(&state, task, &sub, &n).await {
        Some(f) => send_file(&ui, &f).await,
        None => ui.fail(EngineError::NotFound("文件".into())),
    }
}

/// What the console's task page shows of the task's submissions: each with its files, and
/// whether 通过 / 退回 apply now.
pub(super) async fn console_view(ui: &Ui<'_>, task: &TaskRow) -> serde_json::Value {
    let subs = ui
        .state
        .engine
        .store()
        .task_submissions(task.id)
        .await
        .unwrap_or_default();
    let Ok(Some(asks)) = ui.state.engine.asks_of(task).await else {
        return serde_json::Value::Null;
    };
    let link =
        |s: &SubmissionRow, n: usize| format!("/console/submissions/{}/{}/{n}", task.id, s.id);
    json!({
        "lines": asks.lines(),
        "history": history_json(ui, &asks, &subs, link),
        "pending": task.state == TaskState::Submitted,
    })
}

/// 退回: a reason and the new deadline (a date, or N working days from today).
#[derive(Debug, Deserialize)]
struct ReturnForm {
    reason: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    in_working_days: String,
}

/// The task page with a 409: the task (in state `s`) holds no hand-in waiting for a decision.
async fn nothing_to_decide(ui: &Ui<'_>, id: i64, s: TaskState) -> Response {
    super::tasks::render_task_error(
        ui,
        id,
        StatusCode::CONFLICT,
        format!("任务当前为「{}」，没有待审核的提交。", s.zh()),
    )
    .await
}

async fn accept(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "任务") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match state.engine.accept_submission(id, &user.actor()).await {
        Ok(_) => Redirect::to(&format!("/console/tasks/{id}?done=accept")).into_response(),
        Err(EngineError::Store(crate::store::StoreError::WrongState { state: s, .. })) => {
            nothing_to_decide(&ui, id, s).await
        }
        Err(e) => ui.fail(e),
    }
}

async fn give_back(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ReturnForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "任务") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let unprocessable = |msg: String| {
        super::tasks::render_task_error(&ui, id, StatusCode::UNPROCESSABLE_ENTITY, msg)
    };
    if form.reason.trim().is_empty() {
        return unprocessable("退回须写明原因，分支按原因修改后重新提交。".into()).await;
    }
    let due = match (form.due.trim(), form.in_working_days.trim()) {
        ("", "") => NewDeadline::Default,
        (d, "") => match NewDeadline::parse_date(d) {
            Some(d) => d,
            None => return unprocessable(format!("「{d}」不是日期（年-月-日）。")).await,
        },
        ("", n) => match n.parse::<u32>() {
            Ok(n) => NewDeadline::WorkingDays(n),
            Err(_) => return unprocessable(format!("「{n}」不是工作日天数。")).await,
        },
        _ => return unprocessable("新截止日期和工作日天数只填一项。".into()).await,
    };
    match state
        .engine
        .return_submission(id, &user.actor(), &form.reason, due)
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/tasks/{id}?done=return")).into_response(),
        Err(EngineError::Store(crate::store::StoreError::WrongState { state: s, .. })) => {
            nothing_to_decide(&ui, id, s).await
        }
        Err(EngineError::Invalid(e)) => {
            unprocessable(format!(
                "不能退回：新截止时间不可用（须晚于现在）。详情：{e}"
            ))
            .await
        }
        Err(e) => ui.fail(e),
    }
}
