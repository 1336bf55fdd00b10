//! The web console (`/console/...`) and the branch pages behind signed links (`/b/...`).
//!
//! Server-rendered HTML in Chinese: minijinja templates from `templates/console/`, embedded
//! at build time and auto-escaped (their names end in `.html`). No JavaScript framework;
//! one stylesheet and one small script (the editor's "click a diagnostic to select its
//! line", the task page's "click the link to select it"), served from `/assets/` because
//! the Content-Security-Policy allows no inline script, style or event handler.
//!
//! One module per page or concern:
//! - `ui`: the template environment, the per-request renderer `Ui` (layout context,
//!   dates in the office's time zone) and the error pages;
//! - `labels`: pure Chinese labels and short texts (states, "逾期 3 天");
//! - `display`: display names for actors and timers recorded by internal key;
//! - `auth`: sign-in, sign-out, the [`ConsoleUser`] extractor and the admin check;
//! - `rounds`: the rounds list and a round's page; `gantt` lays out its timeline;
//! - `overdue`: the overdue board;
//! - `filters`: the lists' filter form; `find`: the task list, the search box, a
//!   branch's page across rounds and the lists' `.xlsx` exports;
//! - `tasks`: a task's page and its actions (complete, waive, reopen); `messages`: the
//!   messages sent about a task and their resend;
//! - `ratings`: the ratings form of a task that collects 考核等次 (console and branch page)
//!   and the results page (by year, with the 优先使用 list);
//! - `workflows`: the workflow list; `editor`: the editor (preview, save);
//! - `tokens`: the tokens page (administrators: list, create, revoke);

//! - `pool`: the reserve pool (后备干部库): the list, a person's page, the forms;
//! - `branch`: the branch pages behind signed links and their calendar feed.
//!
//! **Console pages** need a token: a console session (the `yz_session` cookie that the
//! sign-in form sets: a random id, HttpOnly, SameSite=Strict, Secure over https; see
//! `auth`) or an `Authorization: Bearer` header. Without a valid one a page answers 303 to
//! `/console/login` rather than a JSON 401. Every change (POST) needs an admin token (a read
//! token gets a 403 page), must come from the console's own pages (`api::guard::same_origin`:
//! a form on another site, or on another port of this host, gets a 403 page), must carry
//! the session's CSRF token when it rests on the cookie ([`csrf_check`]) and goes through
//! the engine with the token as the actor (`token:NAME`), so it lands in the audit log.
//! Only administrators are shown branch links, and each one shown is audited (`link.mint`).
//!
//! **Branch pages** need no token: a signed, expiring link ([`LinkSigner`]) grants one
//! unit's page ([`Grant::Unit`]), its calendar feed only ([`Grant::Feed`]), or one of its
//! tasks ([`Grant::Task`]: its page, marking it done after a confirmation, and undoing that
//! for a few minutes). A signature is checked against the exact grant of the page it is
//! used on, so a feed signature opens no page, a unit-page signature does not open a task
//! and a task signature does not open another task or another branch; any refused link
//! gets a 403 page that says whether it expired or is not valid, and changes nothing.
//! Expiry is checked against the engine's clock.
//!
//! **The workflow editor** checks a draft with the same validation as `yanzhen validate`
//! plus a trial plan, writes the file only when the draft is valid (temp file + rename),
//! reloads as a file event would ([`Engine::reload`](crate::engine::Engine::reload): a
//! broken config keeps the running catalog, and the page says why) and records
//! `workflow.save` in the audit log. An invalid draft is never written.
//!
//! [`LinkSigner`]: crate::access::LinkSigner
//! [`Grant::Unit`]: crate::access::Grant::Unit
//! [`Grant::Task`]: crate::access::Grant::Task
//! [`Grant::Feed`]: crate::access::Grant::Feed

mod auth;
mod branch;
mod display;
mod editor;
mod filters;
mod find;
mod gantt;
mod labels;
mod messages;
mod overdue;
mod pool;
mod ratings;
mod rounds;
pub mod submissions;
mod tasks;
mod tokens;
mod ui;
mod workflows;

pub use auth::{ConsoleUser, csrf_check};
pub(crate) use find::{ReportError, build_report, xlsx_response};

use super::State;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

/// Console routes; the sign-in form's POST behind its per-address rate limit.
pub fn routes(http: &crate::config::HttpConfig) -> Router<State> {
    Router::new()
        .route("/console", get(rounds::rounds_page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/login",
            get(auth::login_form).merge(super::guard::login_rate_limit(post(auth::login), http)),
        )
        .route("/console/logout", post(auth::logout))
        .route("/console/rounds/{id}", get(rounds::round_page))
        .route("/console/overdue", get(overdue::overdue_page))
        .route("/console/tasks", get(find::tasks_page))
        .route("/console/search", get(find::search_page))
        .route("/console/units/{id}", get(find::unit_page))
        .route("/console/export/{file}", get(find::export))
        .route("/console/tasks/{id}", get(tasks::task_page))
        .route("/console/tasks/{id}/complete", post(tasks::task_complete))
        .route("/console/tasks/{id}/waive", post(tasks::task_waive))
        .route("/console/tasks/{id}/reopen", post(tasks::task_reopen))
        .route("/console/tasks/{id}/ratings", post(ratings::task_ratings))
        .route(
            "/console/tasks/{id}/messages/{message}/resend",
            post(messages::resend),
        )
        .route(
            "/console/tokens",
            get(tokens::tokens_page).post(tokens::token_create),
        )
        .route("/console/tokens/{name}/revoke", post(tokens::token_revoke))
        .route("/console/workflows", get(workflows::workflows_page))
        .route("/console/workflows/new", get(workflows::new_workflow))
        .route("/console/workflows/{id}/edit", get(editor::editor_page))
        .route(
            "/console/workflows/{id}/preview",
            post(editor::editor_preview),
        )
        .route("/console/workflows/{id}/save", post(editor::editor_save))
        .route(
            "/console/people",
            get(pool::people_page).post(pool::add_person),
        )
        .route("/console/people/new", get(pool::new_person))
        .route("/console/people/check", get(pool::check_page))
        .route("/console/people/counts", get(pool::counts_page))
        .route("/console/results", get(ratings::results_page))
        // A static path, so it wins over the lists' `/console/export/{file}` (whose filter has no year).
        .route("/console/export/results.xlsx", get(ratings::results_export))
        .route("/console/people/{id}", get(pool::person_page))
        .route(
            "/console/people/{id}/edit",
            get(pool::edit_form).post(pool::edit_person),
        )
        .route("/console/people/{id}/remove", post(pool::remove_person))
        .route("/console/people/{id}/events", post(pool::record_event))
        .merge(submissions::console_routes())
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
}

/// The branch pages behind signed links (the server puts them behind a per-address rate
/// limit).
pub fn branch_routes() -> Router<State> {
    Router::new()
        .route("/b/{unit}", get(branch::branch_page))
        .route("/b/{unit}/feed.ics", get(branch::branch_feed))
        .route("/b/{unit}/events", post(branch::branch_event))
        .route(
            "/b/{unit}/t/{task}",
            get(branch::branch_task).post(branch::branch_task_done),
        )
        .route("/b/{unit}/t/{task}/undo", post(branch::branch_task_undo))
        .route("/b/{unit}/t/{task}/ratings", post(ratings::branch_ratings))
}

/// The error page of a request refused before its page ran (the guards of every request).
pub(crate) fn error_page(
    state: &crate::api::AppState,
    branch: bool,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    ui::error_page(state, branch, status, title, text)
}

/// A static asset; its URL carries the assets' hash, so it may be cached for a day.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", ui::STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", ui::SCRIPT)
}
