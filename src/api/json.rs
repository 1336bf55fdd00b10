//! The JSON API under `/api`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Reads need any valid token; changes need an admin token. Bad input gets a 4xx with a
//! JSON error saying what is wrong, and nothing is half-applied (each change is one engine
//! call, one transaction).

use super::openapi::Endpoint;
use super::{ApiError, Principal, State};
use crate::core::state::{RoundStatus, TaskState, TimerState};
use crate::engine::{NewDeadline, StartRound, from_ms, ms};
use crate::store::{RoundRow, TaskRow};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

macro_rules! endpoints {
    ($( $method:ident $path:literal $handler:ident $auth:expr, $summary:literal; )*) => {
        /// Every endpoint of this module with its handler: the router and the OpenAPI
        /// document are both built from this one list, so they cannot drift apart.
        pub fn endpoints() -> Vec<(Endpoint, axum::routing::MethodRouter<State>)> {
            vec![$(
                (Endpoint { method: stringify!($method), path: $path, summary: $summary, auth: $auth },
                 axum::routing::$method($handler)),
            )*]
        }
    };
}

endpoints! {
    get "/healthz" healthz None, "Liveness: the process answers (also while the database is unreachable).";
    get "/readyz" readyz None, "Readiness: the database answers and migrations are applied; 503 with the reason otherwise.";
    get "/metrics" metrics None, "Prometheus metrics.";
    get "/api/openapi.json" openapi None, "This document.";
    get "/api/workflows" workflows Some("read"), "Loaded workflows.";
    get "/api/workflows/{id}/versions" workflow_versions Some("read"), "Stored versions of a workflow.";
    post "/api/workflows/validate" validate_draft Some("read"), "Validate a draft workflow (body: {source}).";
    post "/api/workflows/plan" plan_draft Some("read"), "Plan a draft workflow (body: {source, start?, params?}).";
    get "/api/rounds" rounds Some("read"), "All rounds.";
    post "/api/rounds" start_round Some("admin"), "Start a round (body: {workflow, start, params?, branches?, only_listed?}); with `branches`, every department still takes part unless `only_listed` is true.";
    get "/api/rounds/{id}" round Some("read"), "A round with progress per stage, overdue tasks and next timers.";
    get "/api/tasks" tasks Some("read"), "Tasks, filtered by round, state, assignee, overdue.";
    get "/api/tasks/{id}" task Some("read"), "A task with its history.";
    post "/api/tasks/{id}/complete" complete Some("admin"), "Mark a task done (body: {note?}).";
    post "/api/tasks/{id}/waive" waive Some("admin"), "Excuse a task (body: {reason}).";
    post "/api/tasks/{id}/reopen" reopen Some("admin"), "Reopen a done or waived task with a new deadline (body: {reason?, due?: \"YYYY-MM-DD[THH:MM]\", in_working_days?}; default: the workflow's reopen_working_days).";
    get "/api/escalations" escalations Some("read"), "Open tasks whose escalation chain has started.";
    get "/api/directory" directory Some("read"), "The directory: office, roles, units, groups.";
    get "/api/audit" audit Some("read"), "The append-only audit log (after, limit).";
}

/// JSON API routes.
pub fn routes() -> Router<State> {
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, (e, handler)| r.route(e.path, handler))
}

/// A JSON body, with malformed JSON turned into our 400 error instead of axum's text.
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
    let status = e.status();
    let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        "unsupported_media_type"
    } else {
        "bad_json"
    };
    ApiError::new(status, code, e.body_text())
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
        return (StatusCode::NOT_FOUND, "metrics are not enabled").into_response();
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
    let list: Vec<Endpoint> = endpoints().into_iter().map(|(e, _)| e).collect();
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
    Path(id): Path<String>,
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
    #[serde(default)]
    start: Option<chrono::NaiveDate>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

fn check_draft(
    s: &State,
    draft: &Draft,
) -> (
    Option<crate::core::definition::Workflow>,
    Vec<crate::core::diagnostic::Diagnostic>,
    chrono::NaiveDate,
) {
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
    let start = match (&draft.start, &wf) {
        (Some(st), _) => *st,
        (None, Some(w)) => crate::core::validate::default_start(w, ctx),
        (None, None) => today,
    };
    (wf, d.into_sorted(), start)
}

async fn validate_draft(
    p: Principal,
    AxState(s): AxState<State>,
    Body(draft): Body<Draft>,
) -> Json<Value> {
    let _ = p;
    let (wf, diags, _) = check_draft(&s, &draft);
    Json(json!({"valid": wf.is_some(), "diagnostics": diags}))
}

async fn plan_draft(
    _p: Principal,
    AxState(s): AxState<State>,
    Body(draft): Body<Draft>,
) -> Response {
    let (wf, diags, start) = check_draft(&s, &draft);
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
    start: chrono::NaiveDate,
    #[serde(default)]
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
    // Unknown ids are refused by the engine (422 `unknown_unit`, every one with a hint).
    let id = s
        .engine
        .start_round(StartRound {
            workflow: b.workflow,
            start: b.start,
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
    Path(id): Path<i64>,
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
}

async fn tasks(
    _p: Principal,
    AxState(s): AxState<State>,
    q: Result<Query<TaskFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let state = match f.state.as_deref().map(str::parse::<TaskState>) {
        None => None,
        Some(Ok(st)) => Some(st),
        Some(Err(_)) => {
            return Err(ApiError::bad_request(format!(
                "unknown state `{}`: use open, waiting, done, waived or cancelled",
                f.state.as_deref().unwrap_or_default()
            )));
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
    Path(id): Path<i64>,
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

/// An optional JSON body: empty is fine, malformed is a 400.
async fn note_body(req: axum::extract::Request) -> Result<NoteBody, ApiError> {
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(NoteBody::default());
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
    Path(id): Path<i64>,
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
    Path(id): Path<i64>,
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
    Path(id): Path<i64>,
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
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
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
