//! The reserve pool's pages (后备干部库): the list by branch with filters and the roster's
//! download, a person's page (record, events, history of edits) with its actions (record
//! an event, 调整出库), and the add and edit forms. Every change goes through
//! [`crate::pool::Pool`] with the signed-in token as the actor, so it is audited.

use super::auth::ConsoleUser;
use super::ui::Ui;
use crate::api::State;
use crate::core::pool::{Field, PersonStatus, Tier, unit_id};
use crate::pool::{Pool, PoolError};
use crate::store::{EventFilter, PeopleFilter, PersonRow};
use axum::extract::{Form, Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    unit: String,
    tier: String,
    all: String,
    flash: String,
}

/// The fields the add and edit forms show (the status changes through 调整出库).
const FORM_FIELDS: &[Field] = &[
    Field::Name,
    Field::Unit,
    Field::Tier,
    Field::PostTrack,
    Field::CurrentPost,
    Field::Gender,
    Field::Birth,
    Field::Education,
    Field::JoinedAt,
    Field::TermStart,
    Field::TermEnd,
    Field::Mentor,
    Field::Phone,
    Field::Email,
    Field::Note,
];

fn fail(ui: &Ui<'_>, e: PoolError) -> Response {
    match e {
        PoolError::NotFound(what) => ui.message(
            StatusCode::NOT_FOUND,
            "未找到",
            &format!("没有找到 {what}。"),
        ),
        PoolError::Store(s) => ui.store_fail(s),
        other => ui.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "无法保存",
            &other.to_string(),
        ),
    }
}

fn row_json(pool: &Pool<'_>, r: &PersonRow) -> Value {
    let dir = &pool.catalog().directory;
    let p = &r.person;
    json!({
        "id": r.id, "name": p.name, "tier": pool.tiers().name(p.tier),
        "post_track": p.text(Field::PostTrack, dir, pool.tiers()),
        "current_post": p.current_post, "term_end": p.text(Field::TermEnd, dir, pool.tiers()),
        "removed": p.status == PersonStatus::Removed, "status": p.status.zh(),
    })
}

pub(super) async fn people_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let pool = Pool::new(&state.engine);
    let dir = &pool.catalog().directory;
    let unit = unit_id(dir, &q.unit);
    let tier = q
        .tier
        .trim()
        .parse::<u8>()
        .ok()
        .and_then(|t| Tier::try_from(t).ok());
    let all = !q.all.is_empty();
    let rows = match pool
        .list(&PeopleFilter {
            unit: unit.clone(),
            tier,
            include_removed: all,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(&ui, e),
    };
    let mut by_unit: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &rows {
        by_unit
            .entry(r.person.unit.clone())
            .or_default()
            .push(row_json(&pool, r));
    }
    // In the directory's order, then any unit the directory no longer has.
    let mut units: Vec<Value> = Vec::new();
    for u in &dir.units {
        if let Some(list) = by_unit.remove(&u.id.value) {
            units.push(json!({"id": u.id.value, "name": u.name, "people": list}));
        }
    }
    for (id, list) in by_unit {
        units.push(json!({"id": id, "name": id, "people": list}));
    }
    let options: Vec<Value> = dir
        .units
        .iter()
        .map(|u| json!({"id": u.id.value, "name": u.name, "selected": unit.as_deref() == Some(u.id.value.as_str())}))
        .collect();
    let tiers: Vec<Value> = Tier::all()
        .map(|t| json!({"n": t.get(), "name": pool.tiers().name(t), "selected": tier == Some(t)}))
        .collect();
    ui.page(
        StatusCode::OK,
        "people.html",
        json!({
            "active": "people", "units": units, "count": rows.len(), "unit_options": options,
            "tiers": tiers, "all": all,
            "flash": (!q.flash.is_empty()).then_some(q.flash),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CheckQuery {
    date: String,
}

/// 库况检查: every branch against the seeds' rules (`[pool.rules]`) on a date, default today.
pub(super) async fn check_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<CheckQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let pool = Pool::new(&state.engine);
    // A date that does not read is today, said so on the page rather than refused.
    let date = chrono::NaiveDate::parse_from_str(q.date.trim(), "%Y-%m-%d").ok();
    let report = match pool.check(date).await {
        Ok(r) => r,
        Err(e) => return fail(&ui, e),
    };
    let bad = report
        .branches
        .iter()
        .filter(|b| !b.findings.is_empty())
        .count();
    ui.page(
        StatusCode::OK,
        "pool_check.html",
        json!({
            "active": "people", "report": report, "bad": bad,
            "date": report.date.to_string(),
            "bad_date": !q.date.trim().is_empty() && date.is_none(),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CountsQuery {
    year: String,
}

/// 次数检查: the workflows' counting rules (`counts:`, e.g. 谈心谈话 twice a year) over a
/// year, default this year: per rule, who in the pool is short and how many they have.
pub(super) async fn counts_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Query(q): Query<CountsQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let asked = q.year.trim().parse::<i32>().ok();
    let year = asked
        .filter(|y| (1900..=9999).contains(y))
        .unwrap_or_else(|| chrono::Datelike::year(&ui.today()));
    let reports = match state.engine.count_reports(year).await {
        Ok(r) => r,
        Err(e) => return ui.fail(e),
    };
    let dir = &state.engine.catalog().directory;
    let unit_name = |id: &str| {
        dir.unit(id)
            .map_or_else(|| id.to_string(), |u| u.name.clone())
    };
    let rules: Vec<Value> = reports
        .iter()
        .map(|r| {
            let short: Vec<Value> = r
                .short
                .iter()
                .map(|s| {
                    json!({"id": s.person.id, "name": s.person.name,
                        "unit": unit_name(&s.person.unit), "count": s.count})
                })
                .collect();
            json!({"workflow": r.workflow, "id": r.id, "title": r.title,
                "until": r.until.to_string(), "required": r.required,
                "people": r.people, "short": short})
        })
        .collect();
    ui.page(
        StatusCode::OK,
        "pool_counts.html",
        json!({
            "active": "people", "year": year, "rules": rules,
            "bad_year": !q.year.trim().is_empty() && asked != Some(year),
        }),
    )
}

/// A form's values: the posted fields the form shows, by key.
type FormValues = BTreeMap<String, String>;

fn form_fields(values: &FormValues) -> Vec<(Field, String)> {
    FORM_FIELDS
        .iter()
        .filter_map(|f| values.get(f.key()).map(|v| (*f, v.clone())))
        .collect()
}

fn render_form(
    ui: &Ui<'_>,
    pool: &Pool<'_>,
    status: StatusCode,
    id: Option<i64>,
    values: &FormValues,
    errors: Vec<Value>,
) -> Response {
    let fields: Vec<Value> = FORM_FIELDS
        .iter()
        .map(|f| {
            let options: Vec<String> = match f {
                Field::Unit => pool
                    .catalog()
                    .directory
                    .units
                    .iter()
                    .map(|u| u.name.clone())
                    .collect(),
                Field::Tier => pool.tiers().0.to_vec(),
                Field::PostTrack => vec!["".into(), "正职".into(), "副职".into()],
                Field::Gender => vec!["".into(), "男".into(), "女".into()],
                _ => Vec::new(),
            };
            json!({"key": f.key(), "heading": f.heading(), "required": f.required(),
                   "value": values.get(f.key()).cloned().unwrap_or_default(), "options": options})
        })
        .collect();
    let (title, action) = match id {
        Some(id) => (
            format!("修改后备干部信息（编号 {id}）"),
            format!("/console/people/{id}/edit"),
        ),
        None => ("新增后备干部".to_string(), "/console/people".to_string()),
    };
    ui.page(
        status,
        "person_form.html",
        json!({"active": "people", "title": title, "action": action, "fields": fields, "errors": errors, "id": id}),
    )
}

fn error_list(e: &PoolError) -> Vec<Value> {
    match e {
        PoolError::Invalid(list) => list
            .iter()
            .map(|(f, r)| json!({"heading": f.heading(), "text": r.zh}))
            .collect(),
        other => vec![json!({"heading": "", "text": other.to_string()})],
    }
}

pub(super) async fn new_person(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let pool = Pool::new(&state.engine);
    let mut values = FormValues::new();
    values.insert(Field::JoinedAt.key().into(), pool.today().to_string());
    values.insert(Field::Tier.key().into(), pool.tiers().0[0].clone());
    render_form(&ui, &pool, StatusCode::OK, None, &values, Vec::new())
}

pub(super) async fn add_person(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Form(values): Form<FormValues>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let pool = Pool::new(&state.engine);
    match pool.add(&form_fields(&values), &user.actor()).await {
        Ok(r) => Redirect::to(&format!("/console/people/{}?flash=added", r.id)).into_response(),
        Err(PoolError::Store(e)) => ui.store_fail(e),
        Err(e) => render_form(
            &ui,
            &pool,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            &values,
            error_list(&e),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FlashQuery {
    flash: String,
}

fn flash_text(key: &str) -> Option<&'static str> {
    match key {
        "added" => Some("已新增。"),
        "saved" => Some("已保存。"),
        "removed" => Some("已调整出库。"),
        "event" => Some("事件已记录。"),
        _ => None,
    }
}

pub(super) async fn person_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Query(q): Query<FlashQuery>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.parse_id(&id, "人员") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    render_person(&ui, id, StatusCode::OK, flash_text(&q.flash), None).await
}

/// The person's page again with a 422 and `text`: what was wrong with the form sent.
async fn refuse(ui: &Ui<'_>, id: i64, text: String) -> Response {
    render_person(ui, id, StatusCode::UNPROCESSABLE_ENTITY, None, Some(text)).await
}

async fn render_person(
    ui: &Ui<'_>,
    id: i64,
    status: StatusCode,
    flash: Option<&str>,
    error: Option<String>,
) -> Response {
    let pool = Pool::new(&ui.state.engine);
    let r = match pool.get(id).await {
        Ok(r) => r,
        Err(e) => return fail(ui, e),
    };
    let dir = &pool.catalog().directory;
    let facts: Vec<Value> = Field::all()
        .iter()
        .map(|f| (f, r.person.text(*f, dir, pool.tiers())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(f, v)| json!({"label": f.heading(), "value": v}))
        .collect();
    let history = match ui.state.engine.store().person_audit(id).await {
        Ok(h) => h,
        Err(e) => return ui.store_fail(e),
    };
    let history: Vec<Value> = history
        .iter()
        .map(|a| {
            let detail = serde_json::from_str::<Value>(&a.entry.detail_json).unwrap_or(Value::Null);
            let changes: Vec<Value> = detail["changes"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let label = k.parse::<Field>().map(|f| f.heading()).unwrap_or(k.as_str());
                            json!({"field": label, "old": show(&v["old"]), "new": show(&v["new"])})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let what = match a.entry.action.as_str() {
                "person.add" => "新增",
                "person.import" if changes.is_empty() => "名册导入（新增）",
                "person.import" => "名册导入（更新）",
                "person.edit" => "修改",
                "person.remove" => "调整出库",
                "event.record" => "记录事件",
                "assessment.rate" => "录入考核等次",
                other => other,
            };
            json!({"at": ui.at(a.entry.at), "actor": super::display::actor_zh(&a.entry.actor, &ui.catalog.directory), "what": what, "changes": changes,
                   "event": detail.get("kind").map(|k| pool.kind_title(k.as_str().unwrap_or_default()))})
        })
        .collect();
    let events = match pool
        .events(&EventFilter {
            person: Some(id),
            ..EventFilter::default()
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return fail(ui, e),
    };
    let events: Vec<Value> = events
        .iter()
        .map(|e| json!({"date": e.date.to_string(), "kind": pool.kind_title(&e.kind), "note": e.note, "by": super::display::actor_zh(&e.recorded_by, &ui.catalog.directory)}))
        .collect();
    let results = match ui
        .state
        .engine
        .store()
        .results(&crate::store::ResultFilter {
            person: Some(id),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let results: Vec<Value> = results
        .iter()
        .map(|r| json!({"year": r.year, "rating": r.rating, "failing": r.failing != 0, "priority": r.priority != 0, "by": r.recorded_by}))
        .collect();
    let kinds: Vec<Value> = pool
        .event_kinds()
        .into_iter()
        .map(|(id, title)| json!({"id": id, "title": title}))
        .collect();
    ui.page(
        status,
        "person.html",
        json!({
            "active": "people", "id": r.id, "name": r.person.name,
            "removed": r.person.status == PersonStatus::Removed, "facts": facts,
            "history": history, "events": events, "kinds": kinds, "results": results, "today": pool.today().to_string(),
            "flash": flash, "error": error,
        }),
    )
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "（空）".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) async fn edit_form(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "人员") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let pool = Pool::new(&state.engine);
    let r = match pool.get(id).await {
        Ok(r) => r,
        Err(e) => return fail(&ui, e),
    };
    let values: FormValues = FORM_FIELDS
        .iter()
        .map(|f| {
            (
                f.key().to_string(),
                r.person.text(*f, &pool.catalog().directory, pool.tiers()),
            )
        })
        .collect();
    render_form(&ui, &pool, StatusCode::OK, Some(id), &values, Vec::new())
}

pub(super) async fn edit_person(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(values): Form<FormValues>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "人员") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let pool = Pool::new(&state.engine);
    match pool.edit(id, &form_fields(&values), &user.actor()).await {
        Ok(_) => Redirect::to(&format!("/console/people/{id}?flash=saved")).into_response(),
        Err(e @ (PoolError::NotFound(_) | PoolError::Store(_))) => fail(&ui, e),
        Err(e) => render_form(
            &ui,
            &pool,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(id),
            &values,
            error_list(&e),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RemoveForm {
    reason: String,
    date: String,
}

pub(super) async fn remove_person(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "人员") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let date = match form.date.trim() {
        "" => None,
        d => match crate::core::pool::parse_date(d) {
            Some(d) => Some(d),
            None => {
                let text = format!("「{d}」不是日期。");
                return refuse(&ui, id, text).await;
            }
        },
    };
    let pool = Pool::new(&state.engine);
    match pool.remove(id, &form.reason, date, &user.actor()).await {
        Ok(_) => Redirect::to(&format!("/console/people/{id}?flash=removed")).into_response(),
        Err(e @ (PoolError::NotFound(_) | PoolError::Store(_))) => fail(&ui, e),
        Err(e) => {
            let text = error_list(&e)
                .iter()
                .filter_map(|v| v["text"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
                .join("；");
            refuse(&ui, id, text).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EventForm {
    kind: String,
    date: String,
    note: String,
}

pub(super) async fn record_event(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path(id): Path<String>,
    Form(form): Form<EventForm>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let id = match ui.admin_id(&id, "人员") {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let Some(date) = crate::core::pool::parse_date(&form.date) else {
        let text = format!("「{}」不是日期。", form.date.trim());
        return refuse(&ui, id, text).await;
    };
    let pool = Pool::new(&state.engine);
    let note = Some(form.note).filter(|n| !n.trim().is_empty());
    match pool
        .record_event(&id.to_string(), &form.kind, date, note, &user.actor())
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/people/{id}?flash=event")).into_response(),
        Err(e @ (PoolError::NotFound(_) | PoolError::Store(_))) => fail(&ui, e),
        Err(e) => refuse(&ui, id, e.to_string()).await,
    }
}
