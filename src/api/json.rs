//! The JSON API under `/api`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Reads need any valid token; changes need an admin token in `Authorization: Bearer`
//! (not the console's cookie) and a JSON body with `Content-Type: application/json`. Bad
//! input gets a 4xx with a JSON error saying what is wrong, one status per class: 400 the
//! request does not read as the operation's input (a path id that is not a number, a query
//! or body that does not parse or has a field of the wrong type, missing or unknown), 404
//! an unknown id, 409 a task in the wrong state, 413 a body too large, 415 a body that is
//! not JSON, 422 a value that reads but is refused (an unknown state or unit, a date that
//! is not one, a limit out of range, a plan that cannot be made). Nothing is half-applied
//! (each change is one engine call, one transaction).

use super::openapi::{Endpoint, endpoints};
use super::{ApiError, Principal, State};
use crate::core::state::{RoundStatus, TaskState, TimerState};
use crate::engine::{NewDeadline, StartRound, from_ms, ms};
use crate::store::{RoundRow, TaskRow};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

// Per endpoint, the error statuses of its own (404 unknown id, 409 wrong state, 422 invalid
// value, 400 for a query); the document adds those of its kind (400 for a path parameter
// or a body, 401/403 for tokens, 403 cross-site, 413 and 415 for a body).
endpoints! { no_body:
    get "/healthz" healthz None, [], "Liveness: the process answers (also while the database is unreachable).";
    get "/readyz" readyz None, [], "Readiness: the database answers and migrations are applied; 503 with the reason otherwise.";
    get "/metrics" metrics None, [404], "Prometheus metrics (404 when not enabled).";
    get "/api/openapi.json" openapi None, [], "This document.";
    get "/api/workflows" workflows Some("read"), [], "Loaded workflows.";
    get "/api/workflows/{id}/versions" workflow_versions Some("read"), [404], "Stored versions of a workflow.";
    post "/api/workflows/validate" validate_draft Some("read"), [], "Validate a draft workflow (body: {source}).";
    post "/api/workflows/plan" plan_draft Some("read"), [422], "Plan a draft workflow (body: {source, start?: \"YYYY-MM-DD\", params?: {name: string or number}}).";
    get "/api/rounds" rounds Some("read"), [], "All rounds.";
    post "/api/rounds" start_round Some("admin"), [404, 422], "Start a round (body: {workflow, start: \"YYYY-MM-DD\", params?: {name: string or number}, branches?, only_listed?}); with `branches`, every department still takes part unless `only_listed` is true.";
    get "/api/rounds/{id}" round Some("read"), [404], "A round with progress per stage, overdue tasks and next timers.";
    get "/api/tasks" tasks Some("read"), [400, 404, 422], "Tasks, filtered by round, state, assignee, overdue, stage, branch.";
    get "/api/tasks/{id}" task Some("read"), [404], "A task with its history.";
    post "/api/tasks/{id}/complete" complete Some("admin"), [404, 409], "Mark a task done (body: {note?}, or none).";
    post "/api/tasks/{id}/waive" waive Some("admin"), [404, 409, 422], "Excuse a task (body: {reason}).";
    post "/api/tasks/{id}/reopen" reopen Some("admin"), [404, 409, 422], "Reopen a done or waived task with a new deadline (body: {reason?, due?: \"YYYY-MM-DD[THH:MM]\", in_working_days?}, or none; default: the workflow's reopen_working_days).";
    get "/api/escalations" escalations Some("read"), [], "Open tasks whose escalation chain has started.";
    get "/api/directory" directory Some("read"), [], "The directory: office, roles, units, groups.";
    get "/api/audit" audit Some("read"), [400, 422], "The append-only audit log (after, limit: 1 to 1000).";
    get "/api/tokens" token_list Some("admin"), [], "Tokens: name, rights, created, expires, revoked, last used (never the token).";
    post "/api/tokens" token_create Some("admin"), [409, 422], "Create a token (body: {name, read_only?: bool, days?: number}); the answer holds the token, shown this once.";
    post "/api/tokens/{name}/revoke" token_revoke Some("admin"), [404], "Revoke a token; the console sessions signed in with it end at once.";
}

/// JSON API routes.
pub fn routes() -> Router<State> {
    endpoints()
        .into_iter()
        .chain(super::people::endpoints())
        .chain(super::reports::endpoints())
        .chain(super::results::endpoints())
        .fold(Router::new(), |r, (e, handler)| r.route(e.path, handler))
}

/// A JSON body, with axum's rejections turned into our JSON error: 415 without
/// `Content-Type: application/json`, 400 when the body is not JSON or does not fit the
/// operation's input (a field of the wrong type, missing or unknown), 413 when too large.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.body_text())
        }
        other => body_unread(other.status(), other.body_text()),
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON, with `Content-Type: application/json`",
    )
}

/// A body that could not be read: too large (413) or cut off (400).
fn body_unread(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "too_large", text)
    } else {
        ApiError::bad_request(format!("cannot read the body: {text}"))
    }
}

/// Whether a `Content-Type` is JSON (`application/json` or `application/*+json`, any
/// parameters), as axum's `Json` decides.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Path parameters, with a malformed one (an id that is not a number) answered by the
/// JSON error: 400 `bad_path`.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) if e.status().is_client_error() => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_path",
                e.body_text(),
            )),
            Err(e) => {
                tracing::error!(error = %e.body_text(), "path parameters do not fit the route");
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                ))
            }
        }
    }
}

/// A query string, with one that does not fit (a value of the wrong type, an unknown
/// parameter) answered by the JSON error: 400 `bad_query`.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
    }
}

/// Round parameters as JSON gives them: each a string, or a number taken as its text
/// (`{"min_candidates": 3}` is `{"min_candidates": "3"}`); the workflow's types are
/// checked when the round is planned.
fn param_values<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error as _;
    BTreeMap::<String, Value>::deserialize(d)?
        .into_iter()
        .map(|(name, value)| match value {
            Value::String(s) => Ok((name, s)),
            Value::Number(n) => Ok((name, n.to_string())),
            other => Err(D::Error::custom(format!(
                "parameter `{name}` must be a string or a number, not {other}"
            ))),
        })
        .collect()
}

/// A date field (`YYYY-MM-DD`): a string that is not one is an invalid value (422).
fn parse_date(field: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("`{field}` must be a date, YYYY-MM-DD, not `{text}`"),
        )
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(AxState(s): AxState<State>) -> Response {
    // An unreachable database can take the pool's whole acquire timeout to fail.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(3), s.engine.store().ready());
    let Ok(answer) = answer.await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "the database did not answer within 3 s"})),
        )
            .into_response();
    };
    match answer {
        Ok(true) => {
            Json(json!({"ready": true, "database": s.engine.store().backend()})).into_response()
        }
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "migrations not applied"})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(AxState(s): AxState<State>) -> Response {
    let Some(handle) = &s.metrics else {
        return ApiError::not_found("metrics are not enabled").into_response();
    };
    // Sizes are read from the database at scrape time: several daemons share it.
    if let Ok(c) = s.engine.store().counts(ms(s.engine.clock().now())).await {
        metrics::gauge!("yanzhen_timers_pending").set(c.pending_timers as f64);
        metrics::gauge!("yanzhen_tasks_overdue").set(c.overdue_tasks as f64);
        metrics::gauge!("yanzhen_outbox_pending").set(c.outbox_pending as f64);
        metrics::gauge!("yanzhen_outbox_dead").set(c.outbox_dead as f64);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    let list: Vec<Endpoint> = endpoints()
        .into_iter()
        .chain(super::people::endpoints())
        .chain(super::reports::endpoints())
        .chain(super::results::endpoints())
        .map(|(e, _)| e)
        .collect();
    Json(super::openapi::document(&list))
}

#[derive(Serialize)]
struct WorkflowInfo {
    id: String,
    title: String,
    path: String,
    hash: String,
    scheduled: bool,
    stages: usize,
    tasks: usize,
}

async fn workflows(_p: Principal, AxState(s): AxState<State>) -> Json<Vec<WorkflowInfo>> {
    let cat = s.engine.catalog();
    Json(
        cat.workflows
            .values()
            .map(|w| WorkflowInfo {
                id: w.workflow.id.value.clone(),
                title: w.workflow.title.clone(),
                path: w.path.display().to_string(),
                hash: w.hash.clone(),
                scheduled: w.workflow.schedule.is_some(),
                stages: w.workflow.stages.len(),
                tasks: w.workflow.tasks().count(),
            })
            .collect(),
    )
}

async fn workflow_versions(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = s.engine.store().workflow_versions(&id).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "no stored versions of workflow `{id}`"
        )));
    }
    Ok(Json(Value::Array(
        versions
            .iter()
            .map(|v| json!({"version": v.version, "hash": v.hash, "created_at": from_ms(v.created_at), "source": v.source}))
            .collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    /// The workflow file's text.
    source: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    start: Option<String>,
    #[serde(default, deserialize_with = "param_values")]
    params: BTreeMap<String, String>,
}

/// A draft checked: the workflow when valid, the diagnostics, the start to plan from.
type CheckedDraft = (
    Option<crate::core::definition::Workflow>,
    Vec<crate::core::diagnostic::Diagnostic>,
    chrono::NaiveDate,
);

fn check_draft(s: &State, draft: &Draft) -> Result<CheckedDraft, ApiError> {
    let start = draft
        .start
        .as_deref()
        .map(|d| parse_date("start", d))
        .transpose()?;
    let cat = s.engine.catalog();
    let today = s
        .engine
        .clock()
        .now()
        .with_timezone(&cat.config.tz())
        .date_naive();
    let ctx = crate::core::validate::Context {
        directory: &cat.directory,
        calendar: &cat.calendar,
        default_tz: cat.config.tz(),
        today,
    };
    let (wf, d) = crate::core::validate::validate_workflow("draft.yaml", &draft.source, ctx);
    let start = match (start, &wf) {
        (Some(st), _) => st,
        (None, Some(w)) => crate::core::validate::default_start(w, ctx),
        (None, None) => today,
    };
    Ok((wf, d.into_sorted(), start))
}

async fn validate_draft(
    p: Principal,
    AxState(s): AxState<State>,
    Body(draft): Body<Draft>,
) -> Result<Json<Value>, ApiError> {
    let _ = p;
    let (wf, diags, _) = check_draft(&s, &draft)?;
    Ok(Json(json!({"valid": wf.is_some(), "diagnostics": diags})))
}

async fn plan_draft(
    _p: Principal,
    AxState(s): AxState<State>,
    Body(draft): Body<Draft>,
) -> Response {
    let (wf, diags, start) = match check_draft(&s, &draft) {
        Ok(checked) => checked,
        Err(e) => return e.into_response(),
    };
    let Some(wf) = wf else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"valid": false, "diagnostics": diags})),
        )
            .into_response();
    };
    let cat = s.engine.catalog();
    let (plan, problems) = crate::core::plan::plan(crate::core::plan::PlanInput {
        workflow: &wf,
        directory: &cat.directory,
        calendar: &cat.calendar,
        tz: crate::core::validate::workflow_tz(&wf, cat.config.tz()),
        start,
        params: &draft.params,
        units: None,
        done: None,
        events: None,
        people: None,
    });
    let problems: Vec<Value> = problems
        .iter()
        .map(|p| json!({"code": p.code, "line": p.loc.line, "column": p.loc.column, "message": p.message, "hint": p.hint}))
        .collect();
    match plan {
        Some(plan) => {
            Json(json!({"valid": true, "diagnostics": diags, "problems": problems, "plan": plan}))
                .into_response()
        }
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"valid": false, "diagnostics": diags, "problems": problems})),
        )
            .into_response(),
    }
}

fn round_json(r: &RoundRow) -> Value {
    json!({
        "id": r.id, "tag": r.tag, "workflow": r.workflow_id, "version_id": r.version_id,
        "start": r.start_date, "params": r.params,
        "units": r.units,
        "status": r.status, "created_at": from_ms(r.created_at), "kickoff": r.kickoff_key,
    })
}

fn task_json(t: &TaskRow, now: i64) -> Value {
    json!({
        "id": t.id, "round": t.round_id, "key": t.key, "task": t.task, "stage": t.stage, "title": t.title,
        "assignee": {"kind": t.assignee_kind, "id": t.assignee_id, "name": t.assignee_name},
        "due": t.due_at.map(from_ms), "provisional": t.provisional, "state": t.state,
        "overdue": t.state == TaskState::Open && t.due_at.is_some_and(|d| d < now),
        "completed_at": t.completed_at.map(from_ms), "updated_at": from_ms(t.updated_at),
        "person": t.person,
    })
}

async fn rounds(_p: Principal, AxState(s): AxState<State>) -> Result<Json<Value>, ApiError> {
    let rows = s.engine.store().rounds().await?;
    Ok(Json(Value::Array(rows.iter().map(round_json).collect())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRoundBody {
    workflow: String,
    /// `YYYY-MM-DD`.
    start: String,
    #[serde(default, deserialize_with = "param_values")]
    params: BTreeMap<String, String>,
    #[serde(default)]
    branches: Option<Vec<String>>,
    #[serde(default)]
    only_listed: bool,
}

async fn start_round(
    p: Principal,
    AxState(s): AxState<State>,
    Body(b): Body<NewRoundBody>,
) -> Result<Response, ApiError> {
    p.require_admin()?;
    let start = parse_date("start", &b.start)?;
    // Unknown ids are refused by the engine (422 `unknown_unit`, every one with a hint).
    let id = s
        .engine
        .start_round(StartRound {
            workflow: b.workflow,
            start,
            params: b.params,
            units: b
                .branches
                .map(|u| s.engine.catalog().directory.round_units(&u, b.only_listed)),
            actor: p.actor(),
        })
        .await?;
    let row = s.engine.store().round(id).await?;
    let body = row.as_ref().map(round_json).unwrap_or(json!({"id": id}));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn round(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let st = s.engine.status(id).await?;
    let now = ms(s.engine.clock().now());
    Ok(Json(json!({
        "round": round_json(&st.round),
        "title": st.title,
        "stages": st.stages,
        "overdue": st.overdue.iter().map(|t| task_json(t, now)).collect::<Vec<_>>(),
        "stuck": st.stuck.iter().map(|t| task_json(t, now)).collect::<Vec<_>>(),
        "next": st.next.iter().map(|t| json!({"key": t.key, "kind": t.kind, "due": from_ms(t.due_at), "provisional": crate::engine::timer_is_provisional(t)})).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFilter {
    #[serde(default)]
    round: Option<i64>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    overdue: Option<bool>,
    #[serde(default)]
    stage: Option<String>,
    /// The same as `assignee` (the console's filter calls it branch).
    #[serde(default)]
    branch: Option<String>,
}

async fn tasks(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(f): ApiQuery<TaskFilter>,
) -> Result<Json<Value>, ApiError> {
    let state = match f.state.as_deref().map(str::parse::<TaskState>) {
        None => None,
        Some(Ok(st)) => Some(st),
        Some(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "unknown state `{}`: use open, waiting, done, waived or cancelled",
                    f.state.as_deref().unwrap_or_default()
                ),
            ));
        }
    };
    let store = s.engine.store();
    let round_ids: Vec<i64> = match f.round {
        Some(r) => {
            if store.round(r).await?.is_none() {
                return Err(ApiError::not_found(format!("round {r} not found")));
            }
            vec![r]
        }
        None => store.rounds().await?.into_iter().map(|r| r.id).collect(),
    };
    let now = ms(s.engine.clock().now());
    let mut out = Vec::new();
    for r in round_ids {
        for t in store.tasks(r).await? {
            let overdue = t.state == TaskState::Open && t.due_at.is_some_and(|d| d < now);
            if state.is_some_and(|st| st != t.state)
                || f.assignee.as_ref().is_some_and(|a| *a != t.assignee_id)
                || f.overdue.is_some_and(|o| o != overdue)
                || f.stage.as_ref().is_some_and(|st| *st != t.stage)
                || f.branch.as_ref().is_some_and(|b| *b != t.assignee_id)
            {
                continue;
            }
            out.push(task_json(&t, now));
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn task(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let store = s.engine.store();
    let t = store
        .task(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let history = store.task_history(id).await?;
    let mut v = task_json(&t, ms(s.engine.clock().now()));
    v["history"] = Value::Array(
        history
            .iter()
            .map(|h| json!({"at": from_ms(h.at), "from": h.from_state, "to": h.to_state, "actor": h.actor, "note": h.note}))
            .collect(),
    );
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Reopen: the new deadline, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (local time).
    #[serde(default)]
    due: Option<String>,
    /// Reopen: the new deadline, this many working days from today.
    #[serde(default)]
    in_working_days: Option<u32>,
}

/// An optional JSON body: none (or only white space) is fine and needs no
/// `Content-Type`; any other must be `application/json` (415) and JSON of this shape (400).
async fn note_body(req: axum::extract::Request) -> Result<NoteBody, ApiError> {
    let json = is_json(req.headers());
    let bytes = axum::body::Bytes::from_request(req, &())
        .await
        .map_err(|e| body_unread(e.status(), e.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(NoteBody::default());
    }
    if !json {
        return Err(unsupported_media_type());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("invalid JSON body: {e}"),
        )
    })
}

async fn complete(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let b = note_body(req).await?;
    let t = s
        .engine
        .complete_task(id, &p.actor(), b.note.or(b.reason))
        .await?;
    Ok(Json(task_json(&t, ms(s.engine.clock().now()))))
}

async fn waive(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let b = note_body(req).await?;
    let Some(reason) = b.reason.or(b.note).filter(|r| !r.trim().is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "waiving a task needs {\"reason\": \"...\"}",
        ));
    };
    let t = s.engine.waive_task(id, &p.actor(), Some(reason)).await?;
    Ok(Json(task_json(&t, ms(s.engine.clock().now()))))
}

async fn reopen(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let b = note_body(req).await?;
    let due = match (b.due.as_deref(), b.in_working_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "give `due` or `in_working_days`, not both",
            ));
        }
        (Some(d), None) => NewDeadline::parse_date(d).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("`due` must be YYYY-MM-DD or YYYY-MM-DDTHH:MM, not `{d}`"),
            )
        })?,
        (None, Some(n)) => NewDeadline::WorkingDays(n),
        (None, None) => NewDeadline::Default,
    };
    let t = s
        .engine
        .reopen_task_due(id, &p.actor(), b.reason.or(b.note), due)
        .await?;
    Ok(Json(task_json(&t, ms(s.engine.clock().now()))))
}

/// Open tasks whose escalation chain has started: how far it climbed and whom it reached.
async fn escalations(_p: Principal, AxState(s): AxState<State>) -> Result<Json<Value>, ApiError> {
    let store = s.engine.store();
    let now = ms(s.engine.clock().now());
    let mut out = Vec::new();
    for r in store
        .rounds()
        .await?
        .into_iter()
        .filter(|r| r.status == RoundStatus::Running)
    {
        for t in store
            .tasks(r.id)
            .await?
            .into_iter()
            .filter(|t| t.state == TaskState::Open)
        {
            let prefix = format!("{}/{}/escalation/", r.tag, t.key);
            let fired: Vec<Value> = store
                .timers_with_prefix(&prefix)
                .await?
                .into_iter()
                .filter(|x| x.state == TimerState::Fired)
                .map(|x| {
                    json!({"rung": x.key.rsplit('/').next(), "at": x.fired_at.map(from_ms), "to": x.payload.recipient})
                })
                .collect();
            if !fired.is_empty() {
                let mut v = task_json(&t, now);
                v["rungs"] = Value::Array(fired);
                out.push(v);
            }
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn directory(_p: Principal, AxState(s): AxState<State>) -> Json<Value> {
    let cat = s.engine.catalog();
    let d = &cat.directory;
    Json(json!({
        "office": d.office,
        "roles": d.roles.iter().map(|r| json!({"id": r.id.value, "title": r.title, "contacts": r.contacts})).collect::<Vec<_>>(),
        "units": d.units.iter().map(|u| json!({"id": u.id.value, "name": u.name, "kind": u.kind, "contacts": u.contacts})).collect::<Vec<_>>(),
        "groups": d.groups.iter().map(|g| json!({"id": g.id.value, "title": g.title, "members": d.members(g).iter().map(|u| u.id.value.clone()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn audit(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("limit must be between 1 and 1000, not {}", q.limit),
        ));
    }
    let rows = s.engine.store().audit_after(q.after, q.limit).await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|a| {
                let mut v = json!({"id": a.id, "at": from_ms(a.entry.at), "actor": a.entry.actor, "action": a.entry.action,
                       "subject": a.entry.subject});
                // The log is append-only, so a detail that does not parse is said, not hidden
                // (and not an error for the whole page: it could never be mended).
                match serde_json::from_str::<Value>(&a.entry.detail_json) {
                    Ok(d) => v["detail"] = d,
                    Err(e) => {
                        v["detail"] = Value::Null;
                        v["detail_error"] = Value::from(
                            crate::store::Corrupt {
                                table: "audit_log",
                                id: a.id.to_string(),
                                column: "detail_json",
                                value: a.entry.detail_json.clone(),
                                problem: format!("does not parse: {e}"),
                            }
                            .to_string(),
                        );
                    }
                }
                v
            })
            .collect(),
    )))
}

fn token_json(t: &crate::store::TokenRow, now: i64) -> Value {
    json!({
        "name": t.name, "rights": t.rights, "created_at": from_ms(t.created_at),
        "expires_at": t.expires_at.map(from_ms), "revoked_at": t.revoked_at.map(from_ms),
        "last_used_at": t.last_used_at.map(from_ms),
        "active": t.revoked_at.is_none() && !t.expired(now),
    })
}

/// Every token, revoked and expired ones included (admins only: names say who holds one).
async fn token_list(p: Principal, AxState(s): AxState<State>) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let now = ms(s.engine.clock().now());
    let tokens = s.engine.store().tokens().await?;
    Ok(Json(Value::Array(
        tokens.iter().map(|t| token_json(t, now)).collect(),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    days: Option<u32>,
}

async fn token_create(
    p: Principal,
    AxState(s): AxState<State>,
    Body(b): Body<NewTokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    p.require_admin()?;
    crate::access::check_token_name(&b.name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    if b.days == Some(0) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "`days` must be at least 1",
        ));
    }
    let now = ms(s.engine.clock().now());
    let rights = if b.read_only {
        crate::core::state::Rights::Read
    } else {
        crate::core::state::Rights::Admin
    };
    let expires_at = b
        .days
        .map(|d| now.saturating_add(i64::from(d) * 86_400_000));
    let token = crate::access::create_token(
        s.engine.store().as_ref(),
        &b.name,
        rights,
        expires_at,
        &p.actor(),
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": b.name, "rights": rights, "expires_at": expires_at.map(from_ms),
            "token": token,
        })),
    ))
}

async fn token_revoke(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let now = ms(s.engine.clock().now());
    if !crate::access::revoke_token(s.engine.store().as_ref(), &name, &p.actor(), now).await? {
        return Err(ApiError::not_found(format!(
            "no active token named `{name}`"
        )));
    }
    Ok(Json(json!({"name": name, "revoked_at": from_ms(now)})))
}
