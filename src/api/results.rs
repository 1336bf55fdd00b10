//! Assessment results in the JSON API: a ratings task's form and its submission
//! (`/api/tasks/{id}/ratings`), the results by year (`/api/results`) and the year's
//! 优先使用 list (`/api/results/priority`). Same conventions as [`super::json`]; a refused
//! submission is 422 with the code `quota_exceeded` or `ratings_invalid` and the Chinese
//! message, and nothing is stored.

use super::json::{ApiPath, ApiQuery, Body};
use super::openapi::endpoints;
use super::results_export::{results_json, results_xlsx};
use super::{ApiError, Principal, State};
use crate::assessment::{AssessError, Assessment, Form};
use crate::store::{ResultFilter, ResultRow};
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

endpoints! {
    get "/api/tasks/{id}/ratings" form Some("read"), [404, 422], None, "A ratings task's form: the scale, the quota, the branch's in-pool people and the ratings kept for the year.";
    post "/api/tasks/{id}/ratings" submit Some("admin"), [404, 409, 422], Some(ratings_body), "Submit a branch's ratings (body: {ratings: [{person: id, rating}]}, one per in-pool person of the branch) and complete the task. 422 `quota_exceeded` or `ratings_invalid` (Chinese message citing the rule): nothing stored.";
    get "/api/results" results Some("read"), [400], None, "Assessment results (year?, unit?, person?), by year, branch and name.";
    get "/api/reports/results" results_json Some("read"), [400], None, "考核结果汇总表 as JSON (year?; every year when none): sheets 考核结果 (per person), 支部汇总 (per branch's submission: count per rating, the capped rating's share, the quota limit, within quota) and 等次分布; {name, title, sheets: [{name, columns: [{key, heading}], rows}]} (docs/exports.md).";
    get "/api/reports/results/xlsx" results_xlsx Some("read"), [400], None, "The same 考核结果汇总表 as an .xlsx workbook with Chinese headings.";
    get "/api/results/priority" priority Some("read"), [400], None, "The 优先使用 list of a year (year?): people whose rating the workflow's `priority` names.";
}

fn ratings_body() -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {
        "type": "object", "required": ["ratings"], "additionalProperties": false,
        "properties": {"ratings": {"type": "array", "items": {
            "type": "object", "required": ["person", "rating"], "additionalProperties": false,
            "properties": {"person": {"type": "integer"}, "rating": {"type": "string"}}}}}}}}})
}

impl From<AssessError> for ApiError {
    fn from(e: AssessError) -> Self {
        match e {
            AssessError::NotFound(_) => ApiError::not_found(e.to_string()),
            AssessError::NotRatings(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_ratings",
                e.to_string(),
            ),
            AssessError::NotOpen(_) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", e.to_string())
            }
            AssessError::Refused(r) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, r.code(), r.to_string())
            }
            AssessError::Store(s) => s.into(),
            AssessError::Engine(e) => e.into(),
        }
    }
}

/// A form as JSON (the API's answer and the pages' data).
pub fn form_json(f: &Form) -> Value {
    json!({
        "task": {"id": f.task.id, "title": f.task.title, "unit": f.task.assignee_id,
            "unit_name": f.task.assignee_name, "state": f.task.state.as_str()},
        "year": f.year,
        "scale": f.rules.scale,
        "failing": f.rules.failing,
        "quota": f.rules.quota.as_ref().map(|q| json!({"rating": q.rating, "max_percent": q.max_percent,
            "max_now": q.max_of(f.people.len()), "rule": q.text(), "basis": q.basis})),
        "people": f.people.iter().map(|(id, name)| json!({"id": id, "name": name,
            "rating": f.kept.get(id)})).collect::<Vec<_>>(),
    })
}

/// A stored result as JSON.
pub fn result_json(r: &ResultRow) -> Value {
    json!({"person": r.person_id, "name": r.name, "year": r.year, "rating": r.rating,
        "failing": r.failing != 0, "priority": r.priority != 0, "unit": r.unit,
        "workflow": r.workflow_id, "round_id": r.round_id, "task_id": r.task_id,
        "adjust_event": r.adjust_event, "recorded_by": r.recorded_by,
        "recorded_at": crate::engine::from_ms(r.recorded_at)})
}

async fn form(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let f = Assessment::new(&s.engine).form(id).await?;
    Ok(Json(form_json(&f)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingsBody {
    ratings: Vec<RatingItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingItem {
    person: i64,
    rating: String,
}

async fn submit(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    Body(b): Body<RatingsBody>,
) -> Result<Json<Value>, ApiError> {
    p.require_admin()?;
    let given: Vec<(i64, String)> = b
        .ratings
        .into_iter()
        .map(|r| (r.person, r.rating.trim().to_string()))
        .collect();
    let done = Assessment::new(&s.engine)
        .submit(id, &given, &p.actor())
        .await?;
    Ok(Json(json!({
        "task": {"id": done.task.id, "state": done.task.state.as_str()},
        "results": done.results.iter().map(result_json).collect::<Vec<_>>(),
        "adjust_tasks": done.adjust_tasks.iter().map(|t| json!({"id": t.id, "round_id": t.round_id,
            "key": t.key, "title": t.title, "assignee": t.assignee_id,
            "due_at": t.due_at.map(crate::engine::from_ms)})).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultQuery {
    #[serde(default)]
    year: Option<i32>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    person: Option<i64>,
}

async fn results(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<ResultQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = s
        .engine
        .store()
        .results(&ResultFilter {
            year: q.year,
            unit: q.unit,
            person: q.person,
            priority_only: false,
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(Value::Array(list.iter().map(result_json).collect())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityQuery {
    #[serde(default)]
    year: Option<i32>,
}

async fn priority(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<PriorityQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = s
        .engine
        .store()
        .results(&ResultFilter {
            year: q.year,
            priority_only: true,
            ..ResultFilter::default()
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(Value::Array(list.iter().map(result_json).collect())))
}
