//! The branch pages behind signed links (`/b/...`): a unit's page of owed tasks, its
//! calendar feed, and a task's page whose button marks it done as `link:UNIT`. No token:
//! every request checks its signature against the exact grant of the page it is used on,
//! at the engine's clock, before reading anything else.

use super::labels::{state_zh, time_left};
use super::ui::{Early, Ui};
use crate::access::{Grant, LinkError};
use crate::api::{AppState, State};
use crate::core::state::{AssigneeKind, RoundStatus, TaskState};
use crate::engine::EngineError;
use crate::store::{StoreError, TaskRow};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

/// `?exp=&sig=` of a signed link; both optional so a missing one is a 403 page, not a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LinkQuery {
    exp: Option<String>,
    sig: Option<String>,
}

impl LinkQuery {
    pub(super) fn from(q: Result<Query<LinkQuery>, QueryRejection>) -> LinkQuery {
        q.map(|Query(q)| q).unwrap_or_default()
    }

    /// The query string to repeat in a form's action.
    pub(super) fn query(&self) -> String {
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
pub(super) fn office_contact(ui: &Ui<'_>) -> serde_json::Value {
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

pub(super) async fn branch_page(
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
        let workflow = ui.round_title(round);
        for t in tasks.iter().filter(|t| {
            t.assignee_kind == AssigneeKind::Unit
                && t.assignee_id == unit
                && (t.state == TaskState::Open || t.state == TaskState::Waiting)
        }) {
            let left = t.due_at.and_then(|d| time_left(d, now, ui.tz()));
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
    // The branch's own reserves only (the link grants this unit and nothing else).
    let pool = crate::pool::Pool::new(&state.engine);
    let people = match pool
        .list(&crate::store::PeopleFilter {
            unit: Some(unit.clone()),
            ..Default::default()
        })
        .await
    {
        Ok(p) => p,
        Err(crate::pool::PoolError::Store(e)) => return ui.store_fail(e),
        Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
    };
    let people: Vec<serde_json::Value> = people
        .iter()
        .map(|r| {
            let p = &r.person;
            json!({
                "id": r.id, "name": p.name, "tier": pool.tiers().name(p.tier),
                "post": p.current_post.clone().or_else(|| p.post_track.map(|t| format!("{}后备", t.zh()))),
                "term_end": p.term_end.map(|d| d.to_string()),
            })
        })
        .collect();
    ui.page(
        StatusCode::OK,
        "branch.html",
        json!({
            "branch": true, "unit": name, "now": ui.at_utc(now),
            "expires": ui.at_utc(DateTime::from_timestamp(exp, 0).unwrap_or_default()),
            "tasks": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "people": people,
            "event_kinds": pool.branch_event_kinds().into_iter()
                .map(|(id, title)| json!({"id": id, "title": title})).collect::<Vec<_>>(),
            "event_action": format!("/b/{unit}/events?{}", q.query()),
            "today": ui.today().to_string(),
            "office_contact": office_contact(&ui),
            "feed": ui.absolute(&state.links.feed_link(&unit, exp)),
        }),
    )
}

/// What a branch reports on its page: an event of one of its own people.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EventForm {
    person: String,
    kind: String,
    date: String,
    note: String,
}

/// A branch reports an event of one of its own people (a kind its workflows let branches
/// report): recorded as `link:UNIT`, and each running round that owes a task for it gets
/// one, as when the office records it.
pub(super) async fn branch_event(
    Shared(state): Shared<State>,
    Path(unit): Path<String>,
    q: Result<Query<LinkQuery>, QueryRejection>,
    form: Result<axum::extract::Form<EventForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    if let Err(e) = check_link(&state, &Grant::Unit { unit: unit.clone() }, &q) {
        return link_refused(&ui, e, q.exp.as_deref());
    }
    let Ok(axum::extract::Form(f)) = form else {
        return branch_message(
            &ui,
            StatusCode::BAD_REQUEST,
            "无法报告",
            "表单内容不完整，请返回本单位页面重新填写。",
        );
    };
    let back = format!("/b/{unit}?{}", q.query());
    let refuse = |text: String| {
        ui.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "message.html",
            json!({"branch": true, "title": "无法报告", "text": text, "diagnostics": [], "back": back, "kind": "error"}),
        )
    };
    let pool = crate::pool::Pool::new(&state.engine);
    let kinds = pool.branch_event_kinds();
    let Some((kind, kind_title)) = kinds.into_iter().find(|(id, _)| *id == f.kind) else {
        return refuse(format!(
            "这类事件需由{}登记，本单位不能在这里报告。",
            ui.office()
        ));
    };
    // Only the branch's own people in the pool: the link grants this unit and nothing else.
    let person = match f.person.trim().parse::<i64>() {
        Ok(id) => match pool.get(id).await {
            Ok(p)
                if p.person.unit == unit
                    && p.person.status == crate::core::pool::PersonStatus::Active =>
            {
                Some(p)
            }
            Ok(_) | Err(crate::pool::PoolError::NotFound(_)) => None,
            Err(crate::pool::PoolError::Store(e)) => return ui.store_fail(e),
            Err(e) => return ui.fail(EngineError::Invalid(e.to_string())),
        },
        Err(_) => None,
    };
    let Some(person) = person else {
        return refuse("请从本单位在库的后备干部中选择人员。".to_string());
    };
    let today = ui.today();
    let date = match chrono::NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d") {
        Ok(d) if d <= today => d,
        Ok(_) => return refuse("事件日期不能晚于今天。".to_string()),
        Err(_) => return refuse("请填写事件发生的日期（年-月-日）。".to_string()),
    };
    let note = Some(f.note.trim().to_string()).filter(|n| !n.is_empty());
    let actor = format!("link:{unit}");
    match pool
        .record_event(&person.id.to_string(), &kind, date, note, &actor)
        .await
    {
        Ok(recorded) => {
            let owed = if recorded.owed.is_empty() {
                String::new()
            } else {
                format!("已据此生成 {} 项待办工作。", recorded.owed.len())
            };
            ui.page(
                StatusCode::OK,
                "message.html",
                json!({
                    "branch": true, "title": "已报告",
                    "text": format!("已报告：{}　{}（{}）。{}{}会看到这条记录。", person.person.name, kind_title, date, owed, ui.office()),
                    "diagnostics": [], "back": back, "kind": "ok",
                }),
            )
        }
        Err(crate::pool::PoolError::Store(e)) => ui.store_fail(e),
        Err(e) => ui.fail(EngineError::Invalid(e.to_string())),
    }
}

pub(super) fn branch_message(ui: &Ui<'_>, status: StatusCode, title: &str, text: &str) -> Response {
    ui.page(
        status,
        "message.html",
        json!({"branch": true, "title": title, "text": text, "diagnostics": [], "back": null, "kind": "error"}),
    )
}

pub(super) async fn branch_feed(
    Shared(state): Shared<State>,
    Path(unit): Path<String>,
    q: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, None);
    let q = LinkQuery::from(q);
    // The feed's own read-only signature; a unit-page signature (the feed URLs made before
    // scopes, which were unit-page signatures) reads it too, granting nothing new.
    let feed = check_link(&state, &Grant::Feed { unit: unit.clone() }, &q);
    if let Err(e) = feed
        && check_link(&state, &Grant::Unit { unit: unit.clone() }, &q).is_err()
    {
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
pub(super) async fn linked_task(
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

pub(super) async fn branch_task(
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
    render_branch_task(&ui, &task, &name, &unit, &q, &[], StatusCode::OK).await
}

/// A branch's task page; `errors` are the reasons a hand-in was just refused.
pub(super) async fn render_branch_task(
    ui: &Ui<'_>,
    task: &TaskRow,
    name: &str,
    unit: &str,
    q: &LinkQuery,
    errors: &[String],
    status: StatusCode,
) -> Response {
    let state = ui.state;
    let round = state
        .engine
        .store()
        .round(task.round_id)
        .await
        .ok()
        .flatten();
    let ratings = super::ratings::context(
        state,
        task,
        format!("/b/{unit}/t/{}/ratings?{}", task.id, q.query()),
    )
    .await;
    let hand_in = super::submissions::hand_in_view(ui, task, unit, q, errors).await;
    ui.page(
        status,
        "branch_task.html",
        json!({
            "hand_in": hand_in,
            "branch": true, "unit": name,
            "workflow": round.as_ref().map(|r| ui.round_title(r)).unwrap_or_default(),
            "start": round.as_ref().map(|r| r.start_date.clone()).unwrap_or_default(),
            "task": {"title": task.title, "state": task.state, "state_zh": state_zh(task.state),
                     "due": ui.due(task), "overdue": ui.overdue_text(task)},
            "action": format!("/b/{unit}/t/{}?{}", task.id, q.query()),
            "undo_minutes": ui.catalog.config.http.branch_undo_minutes,
            "office_contact": office_contact(ui),
            "ratings": ratings,
        }),
    )
}

pub(super) async fn branch_task_done(
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
        Ok(done) => {
            let at = done
                .completed_at
                .unwrap_or_else(|| ui.now().timestamp_millis());
            let until = at.saturating_add(undo_window_ms(&ui));
            ui.page(
                StatusCode::OK,
                "branch_done.html",
                json!({
                    "branch": true, "unit": name, "title": done.title, "at": ui.at(at),
                    "undo": format!("/b/{unit}/t/{}/undo?{}", done.id, q.query()),
                    "undo_until": ui.at(until),
                    "office_contact": office_contact(&ui),
                }),
            )
        }
        Err(EngineError::Store(StoreError::WrongState { state: s, .. })) => {
            let text = if s == TaskState::Done {
                format!("「{}」已经标记完成，无需再次提交。", task.title)
            } else {
                format!(
                    "「{}」当前为「{}」，不能标记完成。",
                    task.title,
                    state_zh(s)
                )
            };
            branch_message(&ui, StatusCode::CONFLICT, "无需操作", &text)
        }
        Err(e) => ui.fail(e),
    }
}

/// How long a branch may undo its "done", in milliseconds (`[http] branch_undo_minutes`).
fn undo_window_ms(ui: &Ui<'_>) -> i64 {
    let minutes = ui.catalog.config.http.branch_undo_minutes;
    i64::try_from(minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
}

/// Undo a "done" the branch itself marked through its link, within the undo window: the
/// task is reopened (the engine's reopen path) with the deadline it had, as `link:UNIT`,
/// and `task.undo` is audited. A task done by anyone else, or longer ago, stays done.
pub(super) async fn branch_task_undo(
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
    let actor = format!("link:{unit}");
    let store = state.engine.store();
    let history = match store.task_history(task.id).await {
        Ok(h) => h,
        Err(e) => return ui.store_fail(e),
    };
    let now = ui.now().timestamp_millis();
    let undoable = task.state == TaskState::Done
        && history.last().is_some_and(|h| {
            h.to_state == TaskState::Done
                && h.actor == actor
                && now.saturating_sub(h.at) <= undo_window_ms(&ui)
        });
    if !undoable {
        let text = format!(
            "「{}」不能在这里撤销：只有本单位通过链接标记的完成，且在 {} 分钟内，才能撤销。如需更正，请联系{}。",
            task.title,
            ui.catalog.config.http.branch_undo_minutes,
            ui.office()
        );
        return branch_message(&ui, StatusCode::CONFLICT, "无法撤销", &text);
    }
    let reopened = state
        .engine
        .reopen_task_due(
            task.id,
            &actor,
            Some("支部撤销误标记的完成".into()),
            crate::engine::NewDeadline::Unchanged,
        )
        .await;
    match reopened {
        Ok(row) => {
            let entry = crate::store::AuditEntry {
                at: now,
                actor,
                action: "task.undo".into(),
                subject: format!("task:{}", row.id),
                detail_json: json!({"key": row.key, "due": row.due_at}).to_string(),
            };
            if let Err(e) = store.append_audit(entry).await {
                tracing::error!(error = %e, "could not record a branch's undo");
            }
            ui.page(
                StatusCode::OK,
                "message.html",
                json!({
                    "branch": true, "title": "已撤销",
                    "text": format!("{}的「{}」已恢复为待办，截止时间不变。", name, row.title),
                    "diagnostics": [], "back": format!("/b/{unit}/t/{}?{}", row.id, q.query()),
                    "kind": "ok",
                }),
            )
        }
        Err(EngineError::Store(StoreError::WrongState { .. })) => branch_message(
            &ui,
            StatusCode::CONFLICT,
            "无需撤销",
            &format!("「{}」当前不是已完成状态。", task.title),
        ),
        Err(e) => ui.fail(e),
    }
}
