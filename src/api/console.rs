//! The web console (`/console/...`) and the branch pages behind signed links (`/b/...`).
//!
//! Server-rendered HTML in Chinese: minijinja templates from `templates/console/`, embedded
//! at build time and auto-escaped (their names end in `.html`). No JavaScript framework;
//! the only script is the editor's "click a diagnostic to select its line".
//!
//! **Console pages** need an administrator token: the `yz_token` cookie that the sign-in
//! form sets (HttpOnly, SameSite=Strict) or an `Authorization: Bearer` header. Without a
//! valid one a page answers 303 to `/console/login` rather than a JSON 401. Every change
//! (POST) needs an admin token (a read token gets a 403 page) and goes through the engine
//! with the token as the actor (`token:NAME`), so it lands in the audit log.
//!
//! **Branch pages** need no token: a signed, expiring link ([`LinkSigner`]) grants one
//! unit's page and calendar feed ([`Grant::Unit`]) or marking one of its tasks done
//! ([`Grant::Task`]). A signature is checked against the exact grant of the page it is
//! used on, so a unit-page signature does not open a task and a task signature does not
//! open another task or another branch; any refused link gets a 403 page that says whether
//! it expired or is not valid, and changes nothing. Expiry is checked against the engine's
//! clock.
//!
//! **The workflow editor** checks a draft with the same validation as `yanzhen validate`
//! plus a trial plan, writes the file only when the draft is valid (temp file + rename),
//! reloads as a file event would ([`Engine::reload`](crate::engine::Engine::reload): a
//! broken config keeps the running catalog, and the page says why) and records
//! `workflow.save` in the audit log. An invalid draft is never written.
//!
//! [`LinkSigner`]: crate::access::LinkSigner

use super::{AppState, Principal, Rights, State, authenticate, request_token};
use crate::access::{Grant, LinkError};
use crate::catalog::{self, Catalog, content_hash};
use crate::core::definition::Workflow;
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::directory::UnitKind;
use crate::core::plan::{PlanInput, plan};
use crate::core::state::{AssigneeKind, RoundStatus, TaskState, TimerKind, TimerState};
use crate::core::timefmt::{provisional_mark, zh_date, zh_datetime};
use crate::core::validate::{Context, validate_workflow, workflow_tz};
use crate::engine::{EngineError, NewDeadline, RoundReport, days_between, from_ms, local_date};
use crate::store::{AuditEntry, RoundRow, StoreError, TaskRow};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, State as Shared};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::Environment;
use minijinja::value::{Serde, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::LazyLock;

/// The page templates, embedded at build time.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../templates/console/base.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/console/login.html"),
    ),
    (
        "message.html",
        include_str!("../../templates/console/message.html"),
    ),
    (
        "rounds.html",
        include_str!("../../templates/console/rounds.html"),
    ),
    (
        "round.html",
        include_str!("../../templates/console/round.html"),
    ),
    (
        "overdue.html",
        include_str!("../../templates/console/overdue.html"),
    ),
    (
        "task.html",
        include_str!("../../templates/console/task.html"),
    ),
    (
        "workflows.html",
        include_str!("../../templates/console/workflows.html"),
    ),
    (
        "editor.html",
        include_str!("../../templates/console/editor.html"),
    ),
    (
        "branch.html",
        include_str!("../../templates/console/branch.html"),
    ),
    (
        "branch_task.html",
        include_str!("../../templates/console/branch_task.html"),
    ),
    (
        "branch_done.html",
        include_str!("../../templates/console/branch_done.html"),
    ),
    (
        "link_error.html",
        include_str!("../../templates/console/link_error.html"),
    ),
];

/// The template environment: auto-escaping by file name, undefined values an error when
/// printed (a template bug shows up in tests, not as an empty cell).
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "console template does not compile");
        }
    }
    env
});

/// The sign-in cookie.
const COOKIE: &str = "yz_token";
/// How long a signed task link shown to the office stays valid.
const LINK_DAYS: i64 = 30;

/// Console and branch-page routes.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/console", get(rounds_page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/rounds/{id}", get(round_page))
        .route("/console/overdue", get(overdue_page))
        .route("/console/tasks/{id}", get(task_page))
        .route("/console/tasks/{id}/complete", post(task_complete))
        .route("/console/tasks/{id}/waive", post(task_waive))
        .route("/console/tasks/{id}/reopen", post(task_reopen))
        .route("/console/workflows", get(workflows_page))
        .route("/console/workflows/new", get(new_workflow))
        .route("/console/workflows/{id}/edit", get(editor_page))
        .route("/console/workflows/{id}/preview", post(editor_preview))
        .route("/console/workflows/{id}/save", post(editor_save))
        .route("/b/{unit}", get(branch_page))
        .route("/b/{unit}/feed.ics", get(branch_feed))
        .route(
            "/b/{unit}/t/{task}",
            get(branch_task).post(branch_task_done),
        )
}

// ---------------------------------------------------------------------------------------
// Sign-in

/// An administrator signed in to the console. Unlike [`Principal`], a missing or unknown
/// token is answered with 303 to the sign-in page, not a JSON 401.
#[derive(Debug, Clone)]
pub struct ConsoleUser(pub Principal);

impl FromRequestParts<State> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let Some(token) = request_token(parts) else {
            return Err(to_login());
        };
        match authenticate(state, &token).await {
            Ok(p) => Ok(ConsoleUser(p)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(to_login()),
            Err(e) => {
                tracing::error!(error = %e.message, "console sign-in check failed");
                Err(Ui::new(state, None).message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "暂时无法登录",
                    "检查令牌时出错，详见守护进程日志。",
                ))
            }
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    token: String,
}

async fn login_form(Shared(state): Shared<State>) -> Response {
    Ui::new(&state, None).page(StatusCode::OK, "login.html", json!({"error": null}))
}

async fn login(Shared(state): Shared<State>, Form(form): Form<LoginForm>) -> Response {
    let ui = Ui::new(&state, None);
    let token = form.token.trim();
    let retry = |error: &str| ui.page(StatusCode::OK, "login.html", json!({"error": error}));
    if token.is_empty() {
        return retry("请输入访问令牌。");
    }
    match authenticate(&state, token).await {
        Ok(p) => {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            let Ok(value) = HeaderValue::from_str(&cookie) else {
                return retry("令牌无效或已被吊销。");
            };
            tracing::info!(token = %p.name, "console sign-in");
            let mut resp = Redirect::to("/console").into_response();
            resp.headers_mut().insert(header::SET_COOKIE, value);
            resp
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => retry("令牌无效或已被吊销。"),
        Err(e) => {
            tracing::error!(error = %e.message, "console sign-in failed");
            retry("检查令牌时出错，请稍后再试。")
        }
    }
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("yz_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

// ---------------------------------------------------------------------------------------
// Rendering

/// Renders pages for one request: knows the state (office name, time zone, clock) and who
/// is signed in (for the navigation bar).
struct Ui<'a> {
    state: &'a AppState,
    user: Option<&'a Principal>,
    catalog: std::sync::Arc<Catalog>,
}

impl<'a> Ui<'a> {
    fn new(state: &'a AppState, user: Option<&'a Principal>) -> Self {
        Ui {
            state,
            user,
            catalog: state.engine.catalog(),
        }
    }

    fn tz(&self) -> Tz {
        self.catalog.config.tz()
    }

    fn now(&self) -> DateTime<Utc> {
        self.state.engine.clock().now()
    }

    fn office(&self) -> &str {
        &self.catalog.directory.office.name
    }

    /// A path as a full link when `notify.link_base` is configured (calendar apps and
    /// forwarded messages need one), else the path itself.
    fn absolute(&self, path: &str) -> String {
        match &self.catalog.config.notify.link_base {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path.to_string(),
        }
    }

    /// An instant (epoch ms) as `2019年7月12日（星期五）18:00` in the office's time zone.
    fn at(&self, millis: i64) -> String {
        zh_datetime(&from_ms(millis).with_timezone(&self.tz()))
    }

    fn at_utc(&self, t: DateTime<Utc>) -> String {
        zh_datetime(&t.with_timezone(&self.tz()))
    }

    /// A task's deadline, marked when it rests on the provisional calendar.
    fn due(&self, t: &TaskRow) -> Option<String> {
        t.due_at
            .map(|d| format!("{}{}", self.at(d), provisional_mark(t.provisional)))
    }

    /// "逾期 3 天" for an open task past its deadline, else None.
    fn overdue_text(&self, t: &TaskRow) -> Option<String> {
        let due = t.due_at?;
        let now = self.now();
        if t.state != TaskState::Open || due >= now.timestamp_millis() {
            return None;
        }
        let days = -days_between(now, from_ms(due), self.tz());
        Some(if days <= 0 {
            "今日已逾期".to_string()
        } else {
            format!("逾期 {days} 天")
        })
    }

    /// A full page: the template's own context plus the layout's (office, user, branch).
    fn page(&self, status: StatusCode, template: &str, mut ctx: serde_json::Value) -> Response {
        if let Some(map) = ctx.as_object_mut() {
            map.insert("office".into(), self.office().into());
            map.entry("branch").or_insert(false.into());
            map.entry("active").or_insert("".into());
            // Office pages say when next year's holiday file is due (branches need not know).
            let notice = if map.get("branch") == Some(&serde_json::Value::Bool(true)) {
                None
            } else {
                let today = local_date(self.now(), self.tz());
                crate::engine::provisional::missing_file_notice(
                    &self.catalog.calendar,
                    &self.catalog.config.calendar_dir,
                    today,
                )
            };
            map.insert("calendar_notice".into(), notice.into());
            map.insert(
                "user".into(),
                match self.user {
                    Some(p) => json!({"name": p.name, "admin": p.rights == Rights::Admin}),
                    None => serde_json::Value::Null,
                },
            );
        }
        let html = PAGES
            .get_template(template)
            .and_then(|t| t.render(Value::from(Serde(&ctx))));
        let mut resp = match html {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %format!("{e:#}"), "console page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><meta charset=\"utf-8\"><p>页面生成失败，详见守护进程日志。</p>"),
                )
                    .into_response()
            }
        };
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }

    /// A page with a title and one message.
    fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(
            status,
            "message.html",
            json!({"title": title, "text": text, "diagnostics": [], "back": null, "kind": "error"}),
        )
    }

    /// 403 unless the signed-in token may change things.
    fn require_admin(&self) -> Early<()> {
        match self.user {
            Some(p) if p.rights == Rights::Admin => Ok(()),
            Some(p) => Err(Box::new(self.message(
                StatusCode::FORBIDDEN,
                "没有修改权限",
                &format!(
                    "令牌「{}」是只读令牌，只能查看；修改需要管理员令牌。",
                    p.name
                ),
            ))),
            None => Err(Box::new(to_login())),
        }
    }

    /// An engine failure as a page: 404 for what does not exist, 409 for a wrong state,
    /// 500 (logged) for the rest.
    fn fail(&self, e: EngineError) -> Response {
        match &e {
            EngineError::NotFound(what) | EngineError::Store(StoreError::NotFound(what)) => self
                .message(
                    StatusCode::NOT_FOUND,
                    "未找到",
                    &format!("没有找到 {what}。"),
                ),
            EngineError::Store(StoreError::WrongState { state, action, .. }) => self.message(
                StatusCode::CONFLICT,
                "无法执行",
                &format!(
                    "任务当前为「{}」，不能{}。",
                    state_zh(state),
                    action_zh(action)
                ),
            ),
            _ => {
                tracing::error!(error = %e, "console request failed");
                self.message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "内部错误",
                    "操作失败，详见守护进程日志。",
                )
            }
        }
    }

    fn store_fail(&self, e: StoreError) -> Response {
        self.fail(EngineError::Store(e))
    }
}

fn state_zh(state: &TaskState) -> &'static str {
    state.zh()
}

fn action_zh(action: &str) -> &'static str {
    match action {
        "complete" => "标记完成",
        "waive" => "免除",
        "reopen" => "重新打开",
        _ => "执行此操作",
    }
}

fn round_status_zh(status: &RoundStatus) -> &'static str {
    status.zh()
}

fn timer_kind_zh(kind: &TimerKind) -> &'static str {
    kind.zh()
}

fn pct(done: usize, total: usize) -> u64 {
    (done * 100).checked_div(total).unwrap_or(0) as u64
}

/// A path segment that must be a row id; anything else is a 404 page.
fn parse_id(ui: &Ui<'_>, raw: &str, what: &str) -> Early<i64> {
    raw.parse::<i64>().map_err(|_| {
        Box::new(ui.message(
            StatusCode::NOT_FOUND,
            "未找到",
            &format!("没有 {what} {raw}。"),
        ))
    })
}

/// A value, or the finished page to answer with instead (boxed: a response is large).
type Early<T> = Result<T, Box<Response>>;

// ---------------------------------------------------------------------------------------
// Rounds

async fn rounds_page(Shared(state): Shared<State>, ConsoleUser(user): ConsoleUser) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let store = state.engine.store();
    let rounds = match store.rounds().await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let mut out = Vec::new();
    for r in rounds {
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
            m.insert("status_zh".into(), round_status_zh(&r.status).into());
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
            let workflow = t.payload.workflow.clone().unwrap_or_else(|| {
                t.key
                    .trim_start_matches("kickoff:")
                    .rsplit_once(':')
                    .map(|(w, _)| w.to_string())
                    .unwrap_or_default()
            });
            let title = ui
                .catalog
                .workflows
                .get(&workflow)
                .map(|w| w.workflow.title.clone())
                .unwrap_or_else(|| workflow.clone());
            let blocked = t.payload.blocked.is_some();
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
    ui.page(
        StatusCode::OK,
        "rounds.html",
        json!({"active": "rounds", "rounds": out, "kickoffs": kickoffs, "blocked": blocked, "now": ui.at_utc(ui.now())}),
    )
}

async fn round_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match parse_id(&ui, &id, "轮次") {
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
                "assignee": t.assignee_name, "state": t.state, "state_zh": state_zh(&t.state),
                "due": ui.due(t), "overdue": ui.overdue_text(t),
            })
        })
        .collect();
    let next: Vec<serde_json::Value> = status
        .next
        .iter()
        .map(|t| json!({"at": format!("{}{}", ui.at(t.due_at), provisional_mark(crate::engine::timer_is_provisional(t))), "kind": timer_kind_zh(&t.kind), "key": t.key.split_once('/').map(|(_, k)| k).unwrap_or(&t.key)}))
        .collect();
    let done = tasks
        .iter()
        .filter(|t| t.state == TaskState::Done || t.state == TaskState::Waived)
        .count();
    let gantt = gantt(&status, &tasks, ui.now(), ui.tz(), &ui.catalog.calendar);
    let r = &status.round;
    ui.page(
        StatusCode::OK,
        "round.html",
        json!({
            "active": "rounds",
            "title": status.title,
            "round": {"id": r.id, "tag": r.tag, "workflow_id": r.workflow_id, "start_date": r.start_date, "status": r.status, "status_zh": round_status_zh(&r.status)},
            "stages": stages, "tasks": task_rows, "next": next, "gantt": gantt,
            "total": tasks.iter().filter(|t| t.state != TaskState::Cancelled).count(),
            "done": done, "overdue": status.overdue.len(), "now": ui.at_utc(ui.now()),
            "stuck": status.stuck.iter().map(|t| json!({"id": t.id, "title": t.title, "assignee": t.assignee_name})).collect::<Vec<_>>(),
        }),
    )
}

// ---------------------------------------------------------------------------------------
// The Gantt chart

/// Left margin for the stage names.
const LABEL_W: f64 = 180.0;
/// Height of the date axis above the first row.
const AXIS_H: f64 = 46.0;
/// Height of one stage row.
const ROW_H: f64 = 38.0;
/// Height of a stage bar.
const BAR_H: f64 = 16.0;
/// Half the width of a deadline diamond.
const DIAMOND: f64 = 6.5;

/// A server-drawn Gantt chart of a round: geometry only; `round.html` draws the SVG.
#[derive(Debug, Serialize)]
struct Gantt {
    width: f64,
    height: f64,
    tick_y1: f64,
    tick_y2: f64,
    label_y: f64,
    rest_h: f64,
    range: String,
    ticks: Vec<Tick>,
    rest: Vec<Span>,
    rows: Vec<GanttRow>,
    now: Option<NowLine>,
    /// Some instant or shaded day rests on the provisional calendar (the legend says so).
    provisional: bool,
}

#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    label_x: f64,
    label: Option<String>,
    major: bool,
}

/// A non-working day's column.
#[derive(Debug, Serialize)]
struct Span {
    x: f64,
    w: f64,
    tip: String,
}

#[derive(Debug, Serialize)]
struct GanttRow {
    id: String,
    label: String,
    line_y: f64,
    text_y: f64,
    bar: Option<Bar>,
    diamonds: Vec<Diamond>,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    done_w: f64,
    tip: String,
}

#[derive(Debug, Serialize)]
struct Diamond {
    points: String,
    cls: &'static str,
    /// The deadline rests on the provisional calendar (drawn dashed).
    provisional: bool,
    tip: String,
}

#[derive(Debug, Serialize)]
struct NowLine {
    x: f64,
    label_x: f64,
    label_y: f64,
    label: String,
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Lay out a round's Gantt chart: one bar per stage from its opening to its closing, a
/// diamond per distinct deadline of the stage's tasks, day ticks, non-working days shaded
/// (from the holiday calendar, where it covers the year), and a "now" line. None when the
/// round has no dated instant at all.
fn gantt(
    status: &RoundReport,
    tasks: &[TaskRow],
    now: DateTime<Utc>,
    tz: Tz,
    calendar: &crate::core::calendar::Calendar,
) -> Option<Gantt> {
    let live: Vec<&TaskRow> = tasks
        .iter()
        .filter(|t| t.state != TaskState::Cancelled)
        .collect();
    let instants: Vec<DateTime<Utc>> = status
        .stages
        .iter()
        .flat_map(|s| [s.opens, s.closes])
        .flatten()
        .chain(live.iter().filter_map(|t| t.due_at.map(from_ms)))
        .collect();
    let first = local_date(*instants.iter().min()?, tz);
    let last = local_date(*instants.iter().max()?, tz);
    let end = last.succ_opt()?;
    let days = (end - first).num_days().max(1);
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let start_utc = midnight(first)?;
    let end_utc = midnight(end)?;
    let ppd = (1100.0 / days as f64).clamp(3.0, 44.0);
    let x = |t: DateTime<Utc>| r1(LABEL_W + (t - start_utc).num_seconds() as f64 / 86_400.0 * ppd);
    let width = r1(LABEL_W + days as f64 * ppd + 24.0);
    let body_h = status.stages.len() as f64 * ROW_H;
    let height = r1(AXIS_H + body_h + 22.0);
    let label_every = match days {
        ..=31 => 1,
        32..=62 => 2,
        63..=120 => 7,
        _ => 0,
    };
    let mut ticks = Vec::new();
    let mut rest = Vec::new();
    for i in 0..=days {
        let Some(d) = first.checked_add_days(chrono::Days::new(i as u64)) else {
            break;
        };
        let Some(at) = midnight(d) else { continue };
        let major = d.day() == 1;
        let labelled = if label_every == 0 {
            major
        } else {
            i % label_every == 0
        };
        if label_every == 0 && !major && i != 0 {
            continue;
        }
        let px = x(at);
        if i < days && days <= 120 && calendar.is_working_day(d) == Ok(false) {
            rest.push(Span {
                x: px,
                w: r1(ppd),
                tip: if calendar.is_provisional(d.year()) {
                    format!("{}（休息日，暂按预计日历）", zh_date(d))
                } else {
                    format!("{}（休息日）", zh_date(d))
                },
            });
        }
        ticks.push(Tick {
            x: px,
            label_x: r1(px + 2.0),
            label: (labelled && i < days).then(|| format!("{}/{}", d.month(), d.day())),
            major,
        });
    }
    let now_ms = now.timestamp_millis();
    let rows = status
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let top = AXIS_H + i as f64 * ROW_H;
            let cy = top + ROW_H / 2.0;
            let bar = match (s.opens, s.closes) {
                (Some(o), Some(c)) => {
                    let (x1, x2) = (x(o), x(c));
                    let w = r1((x2 - x1).max(2.0));
                    Some(Bar {
                        x: x1,
                        y: r1(cy - BAR_H / 2.0),
                        w,
                        h: BAR_H,
                        done_w: if s.total == 0 {
                            0.0
                        } else {
                            r1(w * s.done as f64 / s.total as f64)
                        },
                        tip: format!(
                            "{}：{}{} — {}{}，完成 {}/{}",
                            s.title,
                            zh_datetime(&o.with_timezone(&tz)),
                            provisional_mark(s.opens_provisional),
                            zh_datetime(&c.with_timezone(&tz)),
                            provisional_mark(s.closes_provisional),
                            s.done,
                            s.total
                        ),
                    })
                }
                _ => None,
            };
            let mut by_due: BTreeMap<i64, Vec<&TaskRow>> = BTreeMap::new();
            for t in live.iter().filter(|t| t.stage == s.id) {
                if let Some(d) = t.due_at {
                    by_due.entry(d).or_default().push(t);
                }
            }
            let diamonds = by_due
                .into_iter()
                .map(|(due, ts)| {
                    let dx = x(from_ms(due));
                    let late = ts
                        .iter()
                        .any(|t| t.state == TaskState::Open && due < now_ms);
                    let all_done = ts
                        .iter()
                        .all(|t| t.state == TaskState::Done || t.state == TaskState::Waived);
                    let mut titles: Vec<&str> = ts.iter().map(|t| t.title.as_str()).collect();
                    titles.dedup();
                    let done = ts
                        .iter()
                        .filter(|t| t.state == TaskState::Done || t.state == TaskState::Waived)
                        .count();
                    let provisional = ts.iter().any(|t| t.provisional);
                    Diamond {
                        provisional,
                        points: format!(
                            "{},{} {},{} {},{} {},{}",
                            dx,
                            r1(cy - DIAMOND - 1.0),
                            r1(dx + DIAMOND),
                            r1(cy),
                            dx,
                            r1(cy + DIAMOND + 1.0),
                            r1(dx - DIAMOND),
                            r1(cy)
                        ),
                        cls: if late {
                            "late"
                        } else if all_done {
                            "done"
                        } else {
                            "pending"
                        },
                        tip: format!(
                            "截止 {}{}：{}（{} 项，已完成 {}）",
                            zh_datetime(&from_ms(due).with_timezone(&tz)),
                            provisional_mark(provisional),
                            titles.join("、"),
                            ts.len(),
                            done
                        ),
                    }
                })
                .collect();
            GanttRow {
                id: s.id.clone(),
                label: s.title.clone(),
                line_y: r1(top + ROW_H),
                text_y: r1(cy + 4.5),
                bar,
                diamonds,
            }
        })
        .collect();
    let now_line = (now >= start_utc && now <= end_utc).then(|| {
        let nx = x(now);
        let local = now.with_timezone(&tz);
        NowLine {
            x: nx,
            label_x: r1(nx + 3.0),
            label_y: r1(AXIS_H + body_h + 14.0),
            label: format!(
                "现在 {}月{}日 {}",
                local.month(),
                local.day(),
                local.format("%H:%M")
            ),
        }
    });
    Some(Gantt {
        width,
        height,
        tick_y1: r1(AXIS_H - 6.0),
        tick_y2: r1(AXIS_H + body_h),
        label_y: r1(AXIS_H - 12.0),
        rest_h: r1(body_h + 6.0),
        range: format!("{} 至 {}", zh_date(first), zh_date(last)),
        ticks,
        rest,
        provisional: calendar
            .provisional_year()
            .is_some_and(|y| first.year() <= y && y <= last.year()),
        rows,
        now: now_line,
    })
}

// ---------------------------------------------------------------------------------------
// Overdue board

async fn overdue_page(Shared(state): Shared<State>, ConsoleUser(user): ConsoleUser) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let store = state.engine.store();
    let now_ms = ui.now().timestamp_millis();
    let rounds = match store.rounds().await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    // (kind, id) -> (name, items with their due instant for sorting)
    let mut groups: Groups = BTreeMap::new();
    let mut total = 0usize;
    for round in rounds.iter().filter(|r| r.status == RoundStatus::Running) {
        let tasks = match store.tasks(round.id).await {
            Ok(t) => t,
            Err(e) => return ui.store_fail(e),
        };
        let title = round_title(&ui, round);
        for t in tasks {
            let Some(due) = t.due_at else { continue };
            if t.state != TaskState::Open || due >= now_ms {
                continue;
            }
            let timers = match store
                .timers_with_prefix(&format!("{}/{}/escalation", round.tag, t.key))
                .await
            {
                Ok(x) => x,
                Err(e) => return ui.store_fail(e),
            };
            let rungs: Vec<_> = timers
                .iter()
                .filter(|x| x.state != TimerState::Cancelled)
                .collect();
            let fired: Vec<_> = rungs
                .iter()
                .filter(|x| x.state == TimerState::Fired)
                .collect();
            let reached = fired.last().and_then(|x| recipient_name(x));
            let next = rungs
                .iter()
                .find(|x| x.state == TimerState::Pending)
                .map(|x| {
                    format!(
                        "{} {}",
                        recipient_name(x).unwrap_or_default(),
                        ui.at(x.due_at)
                    )
                });
            total += 1;
            let item = json!({
                "id": t.id, "title": t.title, "round_id": round.id,
                "round": format!("{title}（{}）", round.start_date),
                "due": format!("{}{}", ui.at(due), provisional_mark(t.provisional)), "days_text": ui.overdue_text(&t).unwrap_or_default(),
                "fired": fired.len(), "steps": rungs.len(), "reached": reached, "next": next,
            });
            groups
                .entry((t.assignee_kind, t.assignee_id.clone()))
                .or_insert_with(|| (t.assignee_name.clone(), Vec::new()))
                .1
                .push((due, item));
        }
    }
    let mut groups: Vec<_> = groups
        .into_iter()
        .map(|((kind, id), (name, mut items))| {
            items.sort_by_key(|(due, _)| *due);
            (kind, id, name, items)
        })
        .collect();
    groups.sort_by(|a, b| b.3.len().cmp(&a.3.len()).then_with(|| a.2.cmp(&b.2)));
    let link_expires = ui.now().timestamp() + LINK_DAYS * 86_400;
    let groups: Vec<serde_json::Value> = groups
        .into_iter()
        .map(|(kind, id, name, items)| {
            let unit = (kind == AssigneeKind::Unit)
                .then(|| ui.catalog.directory.unit(&id))
                .flatten();
            let kind = match unit.map(|u| u.kind) {
                Some(UnitKind::Branch) => "村/社区党组织",
                Some(UnitKind::Department) => "审查部门",
                None if kind == AssigneeKind::Unit => "单位",
                None => "街道角色",
            };
            json!({
                "id": id, "name": name, "kind": kind,
                "page": unit.map(|_| ui.absolute(&ui.state.links.unit_link(&id, link_expires))),
                "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            })
        })
        .collect();
    ui.page(
        StatusCode::OK,
        "overdue.html",
        json!({
            "active": "overdue", "groups": groups, "total": total, "now": ui.at_utc(ui.now()),
            "link_expires": ui.at_utc(from_ms(link_expires * 1000)),
        }),
    )
}

/// Overdue tasks by assignee `(kind, id)`: its name and `(deadline, row)` pairs.
type Groups = BTreeMap<(AssigneeKind, String), (String, Vec<(i64, serde_json::Value)>)>;

fn recipient_name(t: &crate::store::TimerRow) -> Option<String> {
    t.payload.recipient.as_ref().map(|p| p.name.clone())
}

/// The title of a round's workflow: the loaded one, else the id.
fn round_title(ui: &Ui<'_>, round: &RoundRow) -> String {
    ui.catalog
        .workflows
        .get(&round.workflow_id)
        .map(|w| w.workflow.title.clone())
        .unwrap_or_else(|| round.workflow_id.clone())
}

// ---------------------------------------------------------------------------------------
// Tasks

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskQuery {
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NoteForm {
    note: String,
}

async fn task_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let flash = match q.done.as_deref() {
        Some("complete") => Some("已标记完成。"),
        Some("waive") => Some("已免除。"),
        Some("reopen") => Some("已重新打开，提醒和催办按新的截止时间重新安排。"),
        _ => None,
    };
    match parse_id(&ui, &id, "任务") {
        Ok(id) => render_task(&ui, id, StatusCode::OK, flash, None).await,
        Err(r) => *r,
    }
}

async fn render_task(
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
        .map(|r| round_title(ui, r))
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
    let link = (task.assignee_kind == AssigneeKind::Unit
        && (task.state == TaskState::Open || task.state == TaskState::Waiting))
        .then(|| {
            ui.absolute(
                &ui.state
                    .links
                    .task_link(&task.assignee_id, task.id, expires),
            )
        });
    let history: Vec<serde_json::Value> = history
        .iter()
        .map(|h| json!({"at": ui.at(h.at), "from": state_zh(&h.from_state), "to": state_zh(&h.to_state), "actor": h.actor, "note": h.note}))
        .collect();
    ui.page(
        status,
        "task.html",
        json!({
            "active": "rounds",
            "task": {
                "id": task.id, "round_id": task.round_id, "key": task.key, "title": task.title,
                "stage": stage, "assignee": task.assignee_name, "state": task.state,
                "state_zh": state_zh(&task.state), "due": ui.due(&task),
                "overdue": ui.overdue_text(&task), "completed": task.completed_at.map(|d| ui.at(d)),
            },
            "round_title": round_title,
            "history": history, "flash": flash, "error": error,
            "link": link, "link_expires": ui.at_utc(from_ms(expires * 1000)),
            "reopen_days": reopen_days,
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

async fn task_complete(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Response {
    task_action(&state, &user, &id, TaskAction::Complete, form.note).await
}

async fn task_waive(
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
struct ReopenForm {
    note: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    in_working_days: String,
}

async fn task_reopen(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<ReopenForm>,
) -> Response {
    let due = match (form.due.trim(), form.in_working_days.trim()) {
        ("", "") => Ok(NewDeadline::Default),
        (d, "") => NewDeadline::parse_date(d).ok_or(format!("「{d}」不是日期（年-月-日）。")),
        ("", n) => n
            .parse::<u32>()
            .map(NewDeadline::WorkingDays)
            .map_err(|_| format!("「{n}」不是工作日天数。")),
        _ => Err("新截止日期和工作日天数只填一项。".to_string()),
    };
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
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let id = match parse_id(&ui, raw_id, "任务") {
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
            let msg = format!("任务当前为「{}」，不能{}。", state_zh(&s), action_zh(verb));
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

// ---------------------------------------------------------------------------------------
// Workflows and the editor

/// A diagnostic for a template.
fn diag_json(d: &Diagnostic) -> serde_json::Value {
    json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "code": d.code, "file": d.file, "line": d.loc.line, "column": d.loc.column,
        "message": d.message, "hint": d.hint,
    })
}

/// Today in the office's time zone, by the engine's clock.
fn today(ui: &Ui<'_>) -> NaiveDate {
    local_date(ui.now(), ui.tz())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SavedQuery {
    saved: Option<String>,
}

async fn workflows_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<SavedQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let cat = ui.catalog.clone();
    let today = today(&ui);
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
        let has_errors = file_diags.iter().any(|d| d.severity == Severity::Error);
        let (status, class) = match fresh.get(id) {
            Some(f) if f.hash == w.hash && file_diags.is_empty() => ("有效", "done"),
            Some(f) if f.hash == w.hash => ("有效（有警告）", "open"),
            Some(_) => ("文件已改动，尚未重新加载", "open"),
            None if has_errors => ("文件当前无效，仍运行上次有效版本", "late"),
            None if files.iter().any(|f| f == &w.path) => ("有效", "done"),
            None => ("文件不在工作流文件夹中", "waiting"),
        };
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

/// A workflow id that may name a new file: lowercase letters, digits, `-` and `_`.
fn valid_new_id(id: &str) -> bool {
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewQuery {
    id: String,
}

async fn new_workflow(
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

async fn editor_page(
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
            None => (skeleton(&id, today(&ui)), true),
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
struct SourceForm {
    source: String,
}

/// Browsers send textarea line breaks as CRLF; files keep LF.
fn normalise(source: &str) -> String {
    source.replace("\r\n", "\n")
}

async fn editor_preview(
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
    let checked = check_draft(&ui.catalog, &id, &path, &source, today(&ui));
    let is_new = !ui.catalog.workflows.contains_key(&id) && !path.is_file();
    ui.page(
        StatusCode::OK,
        "editor.html",
        editor_ctx(&id, &path, is_new, &source, Some(&checked), None),
    )
}

async fn editor_save(
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
    let today = today(&ui);
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

// ---------------------------------------------------------------------------------------
// Branch pages behind signed links

/// `?exp=&sig=` of a signed link; both optional so a missing one is a 403 page, not a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkQuery {
    exp: Option<String>,
    sig: Option<String>,
}

impl LinkQuery {
    fn from(q: Result<Query<LinkQuery>, QueryRejection>) -> LinkQuery {
        q.map(|Query(q)| q).unwrap_or_default()
    }

    /// The query string to repeat in a form's action.
    fn query(&self) -> String {
        format!(
            "exp={}&sig={}",
            self.exp.as_deref().unwrap_or(""),
            self.sig.as_deref().unwrap_or("")
        )
    }
}

/// Check a link against the exact grant of the page it is used on, at the engine's clock.
fn check_link(state: &AppState, grant: &Grant, q: &LinkQuery) -> Result<i64, LinkError> {
    let exp = q
        .exp
        .as_deref()
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or(LinkError::BadSignature)?;
    let sig = q.sig.as_deref().ok_or(LinkError::BadSignature)?;
    state
        .links
        .verify(grant, exp, sig, state.engine.clock().now().timestamp())?;
    Ok(exp)
}

/// The 403 page of a refused link.
fn link_refused(ui: &Ui<'_>, e: LinkError, exp: Option<&str>) -> Response {
    let (reason, title, text) = match e {
        LinkError::Expired => {
            let when = exp
                .and_then(|e| e.parse::<i64>().ok())
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(|t| format!("于 {} ", ui.at_utc(t)))
                .unwrap_or_default();
            (
                "expired",
                "链接已过期",
                format!("这个链接{when}已过期，不能再使用。"),
            )
        }
        LinkError::BadSignature => (
            "invalid",
            "链接无效",
            "这个链接的签名与本页面不符：链接可能被改动或不完整，或者属于其他任务、其他单位。"
                .to_string(),
        ),
    };
    ui.page(
        StatusCode::FORBIDDEN,
        "link_error.html",
        json!({"branch": true, "reason": reason, "title": title, "text": text, "contact": office_contact(ui)}),
    )
}

/// Whom a branch calls about a link that no longer works: the first contact of the office
/// role (`notify.dead_letter_role`, the organization office), from the directory.
fn office_contact(ui: &Ui<'_>) -> serde_json::Value {
    let role_id = &ui.catalog.config.notify.dead_letter_role;
    let Some(role) = ui.catalog.directory.role(role_id) else {
        return json!({"role": ui.office()});
    };
    match role.contacts.first() {
        Some(c) => {
            json!({"role": role.title, "name": c.name, "title": c.title, "phone": c.phone, "email": c.email})
        }
        None => json!({"role": role.title}),
    }
}

async fn branch_page(
    Shared(state): Shared<State>,
    Path(unit): Path<String>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let exp = match check_link(&state, &Grant::Unit { unit: unit.clone() }, &q) {
        Ok(exp) => exp,
        Err(e) => return link_refused(&ui, e, q.exp.as_deref()),
    };
    let Some(name) = ui.catalog.directory.unit(&unit).map(|u| u.name.clone()) else {
        return branch_message(&ui, StatusCode::NOT_FOUND, "未找到", "名录中没有这个单位。");
    };
    let store = state.engine.store();
    let rounds = match store.rounds().await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let now = ui.now();
    let mut rows: Vec<(i64, serde_json::Value)> = Vec::new();
    for round in rounds.iter().filter(|r| r.status == RoundStatus::Running) {
        let tasks = match store.tasks(round.id).await {
            Ok(t) => t,
            Err(e) => return ui.store_fail(e),
        };
        let workflow = round_title(&ui, round);
        for t in tasks.iter().filter(|t| {
            t.assignee_kind == AssigneeKind::Unit
                && t.assignee_id == unit
                && (t.state == TaskState::Open || t.state == TaskState::Waiting)
        }) {
            let left = t.due_at.and_then(|d| {
                let days = days_between(now, from_ms(d), ui.tz());
                (d >= now.timestamp_millis()).then(|| match days {
                    0 => "今天截止".to_string(),
                    n => format!("还有 {n} 天"),
                })
            });
            let action =
                (t.state == TaskState::Open).then(|| state.links.task_link(&unit, t.id, exp));
            rows.push((
                t.due_at.unwrap_or(i64::MAX),
                json!({
                    "id": t.id, "title": t.title, "workflow": workflow, "start": round.start_date,
                    "due": ui.due(t), "overdue": ui.overdue_text(t), "left": left,
                    "action": action,
                }),
            ));
        }
    }
    rows.sort_by_key(|(due, _)| *due);
    ui.page(
        StatusCode::OK,
        "branch.html",
        json!({
            "branch": true, "unit": name, "now": ui.at_utc(now),
            "expires": ui.at_utc(DateTime::from_timestamp(exp, 0).unwrap_or_default()),
            "tasks": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "feed": ui.absolute(&format!("/b/{unit}/feed.ics?{}", q.query())),
        }),
    )
}

fn branch_message(ui: &Ui<'_>, status: StatusCode, title: &str, text: &str) -> Response {
    ui.page(
        status,
        "message.html",
        json!({"branch": true, "title": title, "text": text, "diagnostics": [], "back": null, "kind": "error"}),
    )
}

async fn branch_feed(
    Shared(state): Shared<State>,
    Path(unit): Path<String>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    if let Err(e) = check_link(&state, &Grant::Unit { unit: unit.clone() }, &q) {
        return link_refused(&ui, e, q.exp.as_deref());
    }
    match crate::notify::ics::unit_feed(&state.engine, &unit).await {
        Ok(ics) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            ics,
        )
            .into_response(),
        Err(EngineError::NotFound(_)) => {
            branch_message(&ui, StatusCode::NOT_FOUND, "未找到", "名录中没有这个单位。")
        }
        Err(e) => ui.fail(e),
    }
}

/// The task a task link names, after checking the signature *and* that the task is the
/// unit's own; a refusal is the page to answer with.
async fn linked_task(
    ui: &Ui<'_>,
    unit: &str,
    raw_task: &str,
    q: &LinkQuery,
) -> Early<(TaskRow, String)> {
    let refuse = |e| Box::new(link_refused(ui, e, q.exp.as_deref()));
    let task_id = raw_task
        .parse::<i64>()
        .map_err(|_| refuse(LinkError::BadSignature))?;
    let grant = Grant::Task {
        unit: unit.to_string(),
        task: task_id,
    };
    check_link(ui.state, &grant, q).map_err(refuse)?;
    let task = match ui.state.engine.store().task(task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(Box::new(branch_message(
                ui,
                StatusCode::NOT_FOUND,
                "未找到",
                "这项任务已不存在。",
            )));
        }
        Err(e) => return Err(Box::new(ui.store_fail(e))),
    };
    if task.assignee_kind != AssigneeKind::Unit || task.assignee_id != unit {
        return Err(refuse(LinkError::BadSignature));
    }
    let name = ui
        .catalog
        .directory
        .unit(unit)
        .map(|u| u.name.clone())
        .unwrap_or_else(|| task.assignee_name.clone());
    Ok((task, name))
}

async fn branch_task(
    Shared(state): Shared<State>,
    Path((unit, task)): Path<(String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, name) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let round = state
        .engine
        .store()
        .round(task.round_id)
        .await
        .ok()
        .flatten();
    ui.page(
        StatusCode::OK,
        "branch_task.html",
        json!({
            "branch": true, "unit": name,
            "workflow": round.as_ref().map(|r| round_title(&ui, r)).unwrap_or_default(),
            "start": round.as_ref().map(|r| r.start_date.clone()).unwrap_or_default(),
            "task": {"title": task.title, "state": task.state, "state_zh": state_zh(&task.state),
                     "due": ui.due(&task), "overdue": ui.overdue_text(&task)},
            "action": format!("/b/{unit}/t/{}?{}", task.id, q.query()),
        }),
    )
}

async fn branch_task_done(
    Shared(state): Shared<State>,
    Path((unit, task)): Path<(String, String)>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    let (task, name) = match linked_task(&ui, &unit, &task, &q).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state
        .engine
        .complete_task(task.id, &format!("link:{unit}"), None)
        .await
    {
        Ok(done) => ui.page(
            StatusCode::OK,
            "branch_done.html",
            json!({
                "branch": true, "unit": name, "title": done.title,
                "at": ui.at(done.completed_at.unwrap_or_else(|| ui.now().timestamp_millis())),
            }),
        ),
        Err(EngineError::Store(StoreError::WrongState { state: s, .. })) => {
            let text = if s == TaskState::Done {
                format!("「{}」已经标记完成，无需再次提交。", task.title)
            } else {
                format!(
                    "「{}」当前为「{}」，不能标记完成。",
                    task.title,
                    state_zh(&s)
                )
            };
            branch_message(&ui, StatusCode::CONFLICT, "无需操作", &text)
        }
        Err(e) => ui.fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(PAGES.get_template(name).is_ok(), "{name}");
        }
    }

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
}
