//! The reserve pool in the JSON API: `/api/people` (list, add, one person with the history
//! of its edits and its events, edit, remove), the roster's import and export, and events.
//! Same conventions as [`super::json`]: reads need any token, changes an admin token in
//! `Authorization: Bearer`; 400 a body or query that does not read, 404 an unknown person,
//! 422 a value refused (every refused field named, every bad roster row listed).

use super::json::{ApiPath, ApiQuery, Body};
use super::openapi::endpoints;
use super::{ApiError, Principal, State};
use crate::core::pool::{Field, Tier};
use crate::pool::{Pool, PoolError};
use crate::store::{EventFilter, PeopleFilter};
use axum::Json;
use axum::extract::{FromRequest, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The content type of an `.xlsx` workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

endpoints! {
    get "/api/people" list Some("read"), [400, 422], None, "People of the reserve pool (unit?, tier?: 1-4, all?: true for removed people too).";
    post "/api/people" add Some("admin"), [422], Some(new_person_body), "Add a person (body: field keys to values; name, unit, tier, birth required).";
    get "/api/people/check" check Some("read"), [400], None, "库况检查: every branch against the seeds' rules in [pool.rules] (date?: YYYY-MM-DD, default today): figures, findings (code, actual, required, Chinese message), violations.";
    get "/api/people/counts" counts Some("read"), [400], None, "Counting rules (`counts:` of the loaded workflows, e.g. talks twice a year) over a year (year?, default this year): per rule, who in the pool is short, with their count.";
    get "/api/people/export.xlsx" export Some("read"), [], None, "The roster as .xlsx: a summary sheet (汇总) and one sheet per branch.";
    post "/api/people/import" import Some("admin"), [400, 422], Some(import_body), "Import a roster (.xlsx or .csv body with its content type; skip_bad?, dry_run?). 422 `bad_roster` lists every bad row.";
    get "/api/people/{id}" get_person Some("read"), [404], None, "A person with the history of its edits and its events.";
    patch "/api/people/{id}" edit Some("admin"), [404, 422], Some(edit_body), "Change fields of a person (body: field keys to values; null or \"\" clears an optional field).";
    post "/api/people/{id}/remove" remove Some("admin"), [404, 422], Some(remove_body), "调整出库: take a person out of the pool (body: {reason, date?: \"YYYY-MM-DD\"}).";
    get "/api/people/{id}/events" person_events Some("read"), [404], None, "Events recorded about a person.";
    post "/api/people/{id}/events" record_event Some("admin"), [404, 422], Some(event_body), "Record an event (body: {kind, date: \"YYYY-MM-DD\", note?}); kinds are those the loaded workflows declare.";
    get "/api/events" events Some("read"), [400, 404, 422], None, "Recorded events (person?, kind?, year?).";
    post "/api/rounds/{id}/people" add_person Some("admin"), [404, 422], Some(add_person_body), "Add a person of the pool to a running round (body: {person: id or a name only one person has, dry_run?}): the round's tasks per person (`each:`) are made for them; the answer is the impact (what appears).";
}

fn field_properties() -> serde_json::Map<String, Value> {
    Field::all()
        .iter()
        .map(|f| {
            (
                f.key().to_string(),
                json!({"type": ["string", "integer", "null"], "description": f.heading()}),
            )
        })
        .collect()
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn new_person_body() -> Value {
    let required: Vec<&str> = Field::all()
        .iter()
        .filter(|f| f.required())
        .map(|f| f.key())
        .collect();
    json_body(
        json!({"type": "object", "properties": field_properties(), "required": required, "additionalProperties": false}),
    )
}

fn edit_body() -> Value {
    json_body(
        json!({"type": "object", "properties": field_properties(), "additionalProperties": false, "minProperties": 1}),
    )
}

fn remove_body() -> Value {
    json_body(
        json!({"type": "object", "required": ["reason"], "additionalProperties": false,
        "properties": {"reason": {"type": "string"}, "date": {"type": "string", "format": "date"}}}),
    )
}

fn event_body() -> Value {
    json_body(
        json!({"type": "object", "required": ["kind", "date"], "additionalProperties": false,
        "properties": {"kind": {"type": "string"}, "date": {"type": "string", "format": "date"}, "note": {"type": "string"}}}),
    )
}

fn add_person_body() -> Value {
    json_body(
        json!({"type": "object", "required": ["person"], "additionalProperties": false,
        "properties": {"person": {"type": ["integer", "string"]}, "dry_run": {"type": "boolean"}}}),
    )
}

fn import_body() -> Value {
    json!({"required": true, "content": {
        XLSX: {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
    }})
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NotFound(_) => ApiError::not_found(e.to_string()),
            PoolError::Invalid(_) | PoolError::Ambiguous(_) | PoolError::UnknownKind { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            PoolError::BadRoster(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_roster",
                e.to_string(),
            ),
            PoolError::Store(s) => s.into(),
            PoolError::Engine(e) => e.into(),
            PoolError::Write(_) => {
                tracing::error!(error = %e, "export failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                )
            }
        }
    }
}

/// A pool failure as a response: refused fields and bad roster rows are listed in the
/// error (`fields`, `problems`) so that a client can show each.
fn pool_error(e: PoolError) -> Response {
    let extra = match &e {
        PoolError::Invalid(errors) => Some((
            "fields",
            Value::Array(
                errors
                    .iter()
                    .map(|(f, r)| json!({"field": f.key(), "heading": f.heading(), "zh": r.zh, "en": r.en}))
                    .collect(),
            ),
        )),
        PoolError::BadRoster(problems) => Some(("problems", json!(problems))),
        _ => None,
    };
    let api: ApiError = e.into();
    match extra {
        Some((key, list)) => {
            let mut body = json!({"error": {"code": api.code, "message": api.message}});
            body["error"][key] = list;
            (api.status, Json(body)).into_response()
        }
        None => api.into_response(),
    }
}

/// Field keys to texts, from a JSON object: a string as it is, a number as its text, null
/// as empty (clearing an optional field). An unknown key or another type is a 400.
#[derive(Deserialize)]
#[serde(transparent)]
struct FieldsBody(BTreeMap<String, Value>);

impl FieldsBody {
    fn fields(self) -> Result<Vec<(Field, String)>, ApiError> {
        self.0
            .into_iter()
            .map(|(k, v)| {
                let f = k.parse::<Field>().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_json",
                        format!(
                            "unknown field `{k}`; known: {}",
                            Field::all()
                                .iter()
                                .map(|f| f.key())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                let text = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Null => String::new(),
                    other => {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "bad_json",
                            format!("field `{k}` must be a string, a number or null, not {other}"),
                        ));
                    }
                };
                Ok((f, text))
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    tier: Option<u8>,
    #[serde(default)]
    all: bool,
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    #[serde(default)]
    date: Option<chrono::NaiveDate>,
}

async fn check(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> Result<Json<Value>, ApiError> {
    let report = Pool::new(&s.engine).check(q.date).await?;
    Ok(Json(json!(report)))
}

async fn list(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let pool = Pool::new(&s.engine);
    let unit = match q.unit {
        Some(u) => Some(
            crate::core::pool::unit_id(&pool.catalog().directory, &u)
                .ok_or_else(|| invalid(format!("no unit `{u}` in the directory")))?,
        ),
        None => None,
    };
    let tier = q.tier.map(Tier::try_from).transpose().map_err(invalid)?;
    let rows = pool
        .list(&PeopleFilter {
            unit,
            tier,
            include_removed: q.all,
        })
        .await?;
    Ok(Json(Value::Array(
        rows.iter().map(|r| pool.person_json(r)).collect(),
    )))
}

async fn add(p: Principal, AxState(s): AxState<State>, Body(b): Body<FieldsBody>) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let fields = match b.fields() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let pool = Pool::new(&s.engine);
    match pool.add(&fields, &p.actor()).await {
        Ok(r) => (StatusCode::CREATED, Json(pool.person_json(&r))).into_response(),
        Err(e) => pool_error(e),
    }
}

async fn get_person(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let pool = Pool::new(&s.engine);
    let r = pool.get(id).await?;
    let history = s.engine.store().person_audit(id).await?;
    let events = pool
        .events(&EventFilter {
            person: Some(id),
            ..EventFilter::default()
        })
        .await?;
    let mut v = pool.person_json(&r);
    v["history"] = Value::Array(
        history
            .iter()
            .map(|a| {
                json!({"at": crate::engine::from_ms(a.entry.at), "actor": a.entry.actor, "action": a.entry.action,
                       "detail": serde_json::from_str::<Value>(&a.entry.detail_json).unwrap_or(Value::Null)})
            })
            .collect(),
    );
    v["events"] = Value::Array(events.iter().map(|e| pool.event_json(e)).collect());
    Ok(Json(v))
}

async fn edit(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    Body(b): Body<FieldsBody>,
) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let fields = match b.fields() {
        Ok(f) if f.is_empty() => {
            return ApiError::bad_request("nothing to change: the body names no field")
                .into_response();
        }
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let pool = Pool::new(&s.engine);
    match pool.edit(id, &fields, &p.actor()).await {
        Ok(r) => Json(pool.person_json(&r)).into_response(),
        Err(e) => pool_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    reason: String,
    #[serde(default)]
    date: Option<String>,
}

fn date(field: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        invalid(format!(
            "`{field}` must be a date, YYYY-MM-DD, not `{text}`"
        ))
    })
}

async fn remove(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    Body(b): Body<RemoveBody>,
) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let on = match b.date.as_deref().map(|d| date("date", d)).transpose() {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let pool = Pool::new(&s.engine);
    match pool.remove(id, &b.reason, on, &p.actor()).await {
        Ok(r) => Json(pool.person_json(&r)).into_response(),
        Err(e) => pool_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    #[serde(default)]
    skip_bad: bool,
    #[serde(default)]
    dry_run: bool,
}

async fn import(
    p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    req: axum::extract::Request,
) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if essence != XLSX && essence != "text/csv" {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the roster as `Content-Type: {XLSX}` (.xlsx) or `text/csv` (.csv)"),
        )
        .into_response();
    }
    let bytes = match axum::body::Bytes::from_request(req, &()).await {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(e.status(), "too_large", e.body_text()).into_response();
        }
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
                .into_response();
        }
    };
    let pool = Pool::new(&s.engine);
    match pool.import(&bytes, q.skip_bad, q.dry_run, &p.actor()).await {
        Ok(report) => Json(json!(report)).into_response(),
        Err(e) => pool_error(e),
    }
}

async fn export(_p: Principal, AxState(s): AxState<State>) -> Result<Response, ApiError> {
    let pool = Pool::new(&s.engine);
    let bytes = pool.export().await?;
    let name = format!("roster-{}.xlsx", pool.today());
    Ok((
        [
            (header::CONTENT_TYPE, XLSX.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

async fn person_events(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let pool = Pool::new(&s.engine);
    pool.get(id).await?;
    let events = pool
        .events(&EventFilter {
            person: Some(id),
            ..EventFilter::default()
        })
        .await?;
    Ok(Json(Value::Array(
        events.iter().map(|e| pool.event_json(e)).collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    kind: String,
    date: String,
    #[serde(default)]
    note: Option<String>,
}

async fn record_event(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(id): ApiPath<i64>,
    Body(b): Body<EventBody>,
) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let on = match date("date", &b.date) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let pool = Pool::new(&s.engine);
    match pool
        .record_event(&id.to_string(), &b.kind, on, b.note, &p.actor())
        .await
    {
        Ok(r) => {
            let mut v = pool.event_json(&r.event);
            v["owed_tasks"] = r
                .owed
                .iter()
                .map(|t| serde_json::json!({"id": t.id, "round_id": t.round_id, "key": t.key, "title": t.title, "due_at": t.due_at.map(crate::engine::from_ms)}))
                .collect::<Vec<_>>()
                .into();
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => pool_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    #[serde(default)]
    person: Option<i64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    year: Option<i32>,
}

async fn events(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let pool = Pool::new(&s.engine);
    if let Some(id) = q.person {
        pool.get(id).await?;
    }
    let kind = q.kind.map(|k| pool.event_kind(&k)).transpose()?;
    let list = pool
        .events(&EventFilter {
            person: q.person,
            kind,
            year: q.year,
        })
        .await?;
    Ok(Json(Value::Array(
        list.iter().map(|e| pool.event_json(e)).collect(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPersonBody {
    person: Value,
    #[serde(default)]
    dry_run: bool,
}

async fn add_person(
    p: Principal,
    AxState(s): AxState<State>,
    ApiPath(round): ApiPath<i64>,
    Body(b): Body<AddPersonBody>,
) -> Response {
    if let Err(e) = p.require_admin() {
        return e.into_response();
    }
    let reference = match &b.person {
        Value::String(r) => r.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return ApiError::bad_request("`person` is a person id or name").into_response();
        }
    };
    let found = match Pool::new(&s.engine).find(&reference).await {
        Ok(f) => f,
        Err(e) => return pool_error(e),
    };
    match s
        .engine
        .add_person(round, found.id, b.dry_run, &p.actor())
        .await
    {
        Ok(impact) => Json(json!(impact)).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountsQuery {
    #[serde(default)]
    year: Option<i32>,
}

async fn counts(
    _p: Principal,
    AxState(s): AxState<State>,
    ApiQuery(q): ApiQuery<CountsQuery>,
) -> Result<Json<Value>, ApiError> {
    let year = q
        .year
        .unwrap_or_else(|| chrono::Datelike::year(&Pool::new(&s.engine).today()));
    let rules = s.engine.count_reports(year).await?;
    Ok(Json(json!({"year": year, "rules": rules})))
}
