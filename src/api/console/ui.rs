//! Rendering a console page: the embedded templates, the per-request [`Ui`] (layout
//! context, dates in the office's time zone, the clock) and the error pages every page
//! shares.

use super::labels::{action_zh, overdue_text, state_zh};
use crate::access::Grant;
use crate::api::{AppState, Principal, Rights};
use crate::catalog::Catalog;
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::timefmt::{provisional_mark, zh_datetime};
use crate::engine::{EngineError, from_ms, local_date};
use crate::store::{AuditEntry, RoundRow, StoreError, TaskRow};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::Environment;
use minijinja::value::{Serde, Value};
use serde_json::json;
use std::sync::{Arc, LazyLock};

/// The page templates, embedded at build time.
pub(super) const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../templates/console/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/console/login.html"),
    ),
    (
        "message.html",
        include_str!("../../../templates/console/message.html"),
    ),
    (
        "rounds.html",
        include_str!("../../../templates/console/rounds.html"),
    ),
    (
        "round.html",
        include_str!("../../../templates/console/round.html"),
    ),
    (
        "overdue.html",
        include_str!("../../../templates/console/overdue.html"),
    ),
    (
        "task.html",
        include_str!("../../../templates/console/task.html"),
    ),
    (
        "workflows.html",
        include_str!("../../../templates/console/workflows.html"),
    ),
    (
        "editor.html",
        include_str!("../../../templates/console/editor.html"),
    ),
    (
        "branch.html",
        include_str!("../../../templates/console/branch.html"),
    ),
    (
        "branch_task.html",
        include_str!("../../../templates/console/branch_task.html"),
    ),
    (
        "branch_done.html",
        include_str!("../../../templates/console/branch_done.html"),
    ),
    (
        "tokens.html",
        include_str!("../../../templates/console/tokens.html"),
    ),
    (
        "people.html",
        include_str!("../../../templates/console/people.html"),
    ),
    (
        "pool_check.html",
        include_str!("../../../templates/console/pool_check.html"),
    ),
    (
        "pool_counts.html",
        include_str!("../../../templates/console/pool_counts.html"),
    ),
    (
        "person.html",
        include_str!("../../../templates/console/person.html"),
    ),
    (
        "person_form.html",
        include_str!("../../../templates/console/person_form.html"),
    ),
    (
        "results.html",
        include_str!("../../../templates/console/results.html"),
    ),
    (
        "ratings_form.html",
        include_str!("../../../templates/console/ratings_form.html"),
    ),
    (
        "gantt.html",
        include_str!("../../../templates/console/gantt.html"),
    ),
    (
        "tasks.html",
        include_str!("../../../templates/console/tasks.html"),
    ),
    (
        "search.html",
        include_str!("../../../templates/console/search.html"),
    ),
    (
        "unit.html",
        include_str!("../../../templates/console/unit.html"),
    ),
    (
        "task_messages.html",
        include_str!("../../../templates/console/task_messages.html"),
    ),
    (
        "filters.html",
        include_str!("../../../templates/console/filters.html"),
    ),
    (
        "link_error.html",
        include_str!("../../../templates/console/link_error.html"),
    ),
];

/// The stylesheet of every page, served at `/assets/console.css`.
pub(super) const STYLESHEET: &str = include_str!("../../../templates/console/static/console.css");

/// The script of every page, served at `/assets/console.js`.
pub(super) const SCRIPT: &str = include_str!("../../../templates/console/static/console.js");

/// A short hash of the stylesheet and the script, in their URLs (`?v=`), so that a browser
/// may cache them for long and still fetches the new ones after an upgrade.
pub(super) static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let hash = crate::catalog::content_hash(&format!("{STYLESHEET}\n{SCRIPT}"));
    hash.chars().take(12).collect()
});

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

/// How long a signed link shown to the office stays valid, in days.
pub(super) const LINK_DAYS: i64 = 30;

/// A value, or the finished page to answer with instead (boxed: a response is large).
pub(super) type Early<T> = Result<T, Box<Response>>;

/// Renders pages for one request: knows the state (office name, time zone, clock) and who
/// is signed in (for the navigation bar).
pub(super) struct Ui<'a> {
    pub(super) state: &'a AppState,
    pub(super) user: Option<&'a Principal>,
    pub(super) catalog: Arc<Catalog>,
}

impl<'a> Ui<'a> {
    pub(super) fn new(state: &'a AppState, user: Option<&'a Principal>) -> Self {
        Ui {
            state,
            user,
            catalog: state.engine.catalog(),
        }
    }

    pub(super) fn tz(&self) -> Tz {
        self.catalog.config.tz()
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.state.engine.clock().now()
    }

    /// Today in the office's time zone, by the engine's clock.
    pub(super) fn today(&self) -> NaiveDate {
        local_date(self.now(), self.tz())
    }

    /// A branch's secretary (its first directory contact) as `{name, title, phone}`, for
    /// whoever in the office picks up the phone about a late task; None for roles,
    /// departments and branches without contacts.
    pub(super) fn secretary(
        &self,
        kind: crate::core::state::AssigneeKind,
        id: &str,
    ) -> Option<serde_json::Value> {
        if kind != crate::core::state::AssigneeKind::Unit {
            return None;
        }
        let unit = self.catalog.directory.unit(id)?;
        if unit.kind != crate::core::directory::UnitKind::Branch {
            return None;
        }
        let c = unit.contacts.first()?;
        Some(serde_json::json!({"name": c.name, "title": c.title, "phone": c.phone}))
    }

    pub(super) fn office(&self) -> &str {
        &self.catalog.directory.office.name
    }

    /// A path as a full link when `notify.link_base` is configured (calendar apps and
    /// forwarded messages need one), else the path itself.
    pub(super) fn absolute(&self, path: &str) -> String {
        match &self.catalog.config.notify.link_base {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path.to_string(),
        }
    }

    /// An instant (epoch ms) as `2019年7月12日（星期五）18:00` in the office's time zone.
    pub(super) fn at(&self, millis: i64) -> String {
        zh_datetime(&from_ms(millis).with_timezone(&self.tz()))
    }

    pub(super) fn at_utc(&self, t: DateTime<Utc>) -> String {
        zh_datetime(&t.with_timezone(&self.tz()))
    }

    /// A task's deadline, marked when it rests on the provisional calendar.
    pub(super) fn due(&self, t: &TaskRow) -> Option<String> {
        t.due_at
            .map(|d| format!("{}{}", self.at(d), provisional_mark(t.provisional)))
    }

    /// "逾期 3 天" for an open task past its deadline, else None.
    pub(super) fn overdue_text(&self, t: &TaskRow) -> Option<String> {
        overdue_text(t.state, t.due_at?, self.now(), self.tz())
    }

    /// The title of a round's workflow: the loaded one, else the id.
    pub(super) fn round_title(&self, round: &RoundRow) -> String {
        self.catalog
            .workflows
            .get(&round.workflow_id)
            .map(|w| w.workflow.title.clone())
            .unwrap_or_else(|| round.workflow_id.clone())
    }

    /// A full page: the template's own context plus the layout's (office, user, branch).
    pub(super) fn page(
        &self,
        status: StatusCode,
        template: &str,
        mut ctx: serde_json::Value,
    ) -> Response {
        if let Some(map) = ctx.as_object_mut() {
            map.insert("office".into(), self.office().into());
            map.insert("asset_version".into(), ASSET_VERSION.as_str().into());
            map.entry("branch").or_insert(false.into());
            map.entry("active").or_insert("".into());
            // Office pages say when next year's holiday file is due (branches need not know).
            let notice = if map.get("branch") == Some(&serde_json::Value::Bool(true)) {
                None
            } else {
                crate::engine::provisional::missing_file_notice(
                    &self.catalog.calendar,
                    &self.catalog.config.calendar_dir,
                    self.today(),
                )
            };
            map.insert("calendar_notice".into(), notice.into());
            // Every console form carries the session's CSRF token (empty without a session:
            // a Bearer request needs none).
            map.insert(
                "csrf".into(),
                self.user
                    .and_then(|p| p.csrf.clone())
                    .unwrap_or_default()
                    .into(),
            );
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

    /// A signed link for the signed-in administrator, recorded in the audit log
    /// (`link.mint`: who, which unit, which scope, until when) before it is shown; `None`
    /// for a read-only token (read-only means it never holds a link that changes
    /// anything) or when the record cannot be written.
    pub(super) async fn mint_link(&self, grant: &Grant, expires: i64) -> Option<String> {
        let user = self.user.filter(|p| p.rights == Rights::Admin)?;
        let entry = AuditEntry {
            at: self.now().timestamp_millis(),
            actor: user.actor(),
            action: "link.mint".into(),
            subject: grant.scope(),
            detail_json: json!({"unit": grant.unit(), "scope": grant.scope(), "expires": expires})
                .to_string(),
        };
        if let Err(e) = self.state.engine.store().append_audit(entry).await {
            tracing::error!(error = %e, "could not record a minted link; it is not shown");
            return None;
        }
        Some(self.absolute(&self.state.links.link(grant, expires)))
    }

    /// A page with a title and one message.
    pub(super) fn message(&self, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(
            status,
            "message.html",
            json!({"title": title, "text": text, "diagnostics": [], "back": null, "kind": "error"}),
        )
    }

    /// An engine failure as a page: 404 for what does not exist, 409 for a wrong state,
    /// 500 (logged) for the rest.
    pub(super) fn fail(&self, e: EngineError) -> Response {
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
                    state_zh(*state),
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

    pub(super) fn store_fail(&self, e: StoreError) -> Response {
        self.fail(EngineError::Store(e))
    }

    /// A path segment that must be a row id; anything else is a 400 page (malformed, as
    /// in the JSON API; an id that is a number but names nothing is a 404).
    pub(super) fn parse_id(&self, raw: &str, what: &str) -> Early<i64> {
        raw.parse::<i64>().map_err(|_| {
            Box::new(self.message(
                StatusCode::BAD_REQUEST,
                "地址有误",
                &format!("「{raw}」不是{what}编号。"),
            ))
        })
    }

    /// The row id in `raw` for a change only an administrator may make: the id, or the
    /// page to answer with (403 for a read-only token, 400 for a malformed id).
    pub(super) fn admin_id(&self, raw: &str, what: &str) -> Early<i64> {
        self.require_admin()?;
        self.parse_id(raw, what)
    }
}

/// The error page of a request refused before (or instead of) its page: the console's
/// layout without the signed-in user, or the branch pages' layout without the console's
/// navigation.
pub(super) fn error_page(
    state: &AppState,
    branch: bool,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    Ui::new(state, None).page(
        status,
        "message.html",
        json!({"branch": branch, "title": title, "text": text, "diagnostics": [], "back": null, "kind": "error"}),
    )
}

/// A diagnostic for a template (the workflow list, the editor, the save outcome).
/// The main text and hint are the catalogue's Chinese; the checker's English stays
/// beside them in small grey type (`en`).
pub(super) fn diag_json(d: &Diagnostic) -> serde_json::Value {
    let zh = crate::core::diagnostic_text::zh(d);
    json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "code": d.code, "file": d.file, "line": d.loc.line, "column": d.loc.column,
        "message": zh.message, "hint": zh.hint,
        "en": match &d.hint { Some(h) => format!("{} ({h})", d.message), None => d.message.clone() },
    })
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
}
