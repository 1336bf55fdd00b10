//! The pure firing core: what a claimed timer does, as data.
//!
//! [`effects`] is a plain synchronous function of the timer, the rows the shell read for its
//! batch ([`Reads`]) and the daemon's context ([`Ctx`]: catalog, current workflow versions,
//! renderer, link signer, `now`). It returns the timer's [`FireEffects`] — notifications,
//! audit entries, new timers, a round to start — and never touches the store or the clock.
//! The async shell in [`super::firing`] claims a batch, prefetches [`Reads`], calls this and
//! writes every effect in the transaction that marks the timers fired.
//!
//! Architecture Invariant: nothing in this module is `async`, reads a clock or calls the
//! store; its unit tests build [`Reads`] by hand and need no database.

use super::{
    BLOCKED_NOT_LOADED, BLOCKED_PLAN_FAILED, EngineError, KICKOFF_RETRY_MS, MISFIRE_GRACE_MS,
    Result, audit, days_between, from_ms, is_overdue, kickoff_timer, link_expiry, local_date, ms,
    short_hash,
};
use crate::access::LinkSigner;
use crate::catalog::Catalog;
use crate::core::definition::{Misfire, Workflow};
use crate::core::directory::{Contact, Party};
use crate::core::plan::Plan;
use crate::core::render::{Item, Rendered, Renderer};
use crate::core::state::TimerState;
use crate::core::state::{AssigneeKind, MessageKind, OutboxChannel, TaskState, TimerKind};
use crate::core::timefmt::{provisional_mark, zh_date, zh_datetime};
use crate::core::validate::workflow_tz;
use crate::store::{
    AuditEntry, FireEffects, NewNotification, NewRound, NewTimer, RoundRow, StoreError, TaskRow,
    TimerPayload, TimerRow,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Everything a batch's effects read from the store, fetched by the shell before the core
/// runs (see [`needs`] for what to fetch).
#[derive(Debug, Default, Clone)]
pub struct Reads {
    /// The batch's tasks by id.
    pub tasks: HashMap<i64, TaskRow>,
    /// The rounds of the batch's timers and tasks; `None` when the round is gone.
    pub rounds: HashMap<i64, Option<RoundRow>>,
    /// The workflow versions those rounds are pinned to; `None` when a stored version no
    /// longer parses (messages then use the built-in templates).
    pub workflows: HashMap<i64, Option<Arc<Workflow>>>,
    /// Every timer of the tasks whose overdue reminders or escalations fire late (after
    /// downtime), to tell whether a later one of the same kind is due as well.
    pub siblings: HashMap<i64, Vec<TimerRow>>,
    /// All tasks of the rounds whose catch-up messages fire in the batch.
    pub round_tasks: HashMap<i64, Vec<TaskRow>>,
    /// The people in the pool, when a kickoff fires in the batch (its round's tasks per
    /// person are made for them).
    pub people: Option<Vec<crate::core::plan::PersonRef>>,
    /// Every counting rule's report by year, for the years whose count checks fire.
    pub counts: HashMap<i32, Vec<crate::core::counts::CountReport>>,
}

/// What the shell must read for a batch before calling [`effects`]: the first stage (tasks
/// and the rounds named by timers) is known from the timers alone; rounds of tasks and the
/// workflow versions follow from what that read returned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Task rows, by id.
    pub tasks: Vec<i64>,
    /// Tasks whose chain timers fire late: all their timers are read.
    pub siblings: Vec<i64>,
    /// Rounds named by the timers themselves.
    pub rounds: Vec<i64>,
    /// Rounds whose every task is read (catch-up messages).
    pub round_tasks: Vec<i64>,
    /// The people in the pool (a kickoff fires).
    pub people: bool,
    /// Every running round and its tasks are read (the weekly 通报).
    pub running_rounds: bool,
    /// Years whose counting rules are checked (count checks fire).
    pub count_years: Vec<i32>,
}

/// What a batch needs read, from the timers and `now` alone.
pub fn needs(batch: &[TimerRow], now: DateTime<Utc>) -> Needs {
    let mut n = Needs::default();
    for t in batch {
        n.running_rounds |= t.kind == TimerKind::WeeklyReport;
        if let Some(task) = t.task_id {
            n.tasks.push(task);
            // Two overdue reminders or rungs of one task are at least an hour apart, so
            // only a timer this late can have a later sibling that is due too.
            if t.kind.is_chain() && ms(now) - t.due_at >= MISFIRE_GRACE_MS {
                n.siblings.push(task);
            }
        }
        if let Some(round) = t.round_id {
            n.rounds.push(round);
            if t.kind == TimerKind::CatchUp {
                n.round_tasks.push(round);
            }
        }
        n.people |= t.kind == TimerKind::Kickoff;
        if t.kind == TimerKind::CountCheck {
            n.count_years.extend(t.payload.year);
        }
    }
    n.count_years.sort_unstable();
    n.count_years.dedup();
    for v in [
        &mut n.tasks,
        &mut n.siblings,
        &mut n.rounds,
        &mut n.round_tasks,
    ] {
        v.sort_unstable();
        v.dedup();
    }
    n
}

/// The daemon's side of firing: the loaded catalog, the version id of each loaded
/// workflow, the message renderer, the link signer and the instant of firing.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Loaded workflows, directory, calendar and config.
    pub catalog: &'a Catalog,
    /// The stored version id of each loaded workflow (kickoffs pin new rounds to it).
    pub versions: &'a HashMap<String, i64>,
    /// Message templates.
    pub renderer: &'a Renderer,
    /// Signs the branch links in messages, when the console is configured.
    pub links: Option<&'a LinkSigner>,
    /// When the batch fires.
    pub now: DateTime<Utc>,
}

/// `{{ person }}` in a per-person task's messages: id, name, the branch's name (`unit`) and
/// id (`unit_id`), tier.
pub fn person_context(cat: &Catalog, p: &crate::core::plan::PersonRef) -> minijinja::Value {
    let unit = cat
        .directory
        .unit(&p.unit)
        .map_or_else(|| p.unit.clone(), |u| u.name.clone());
    minijinja::context! { id => p.id, name => p.name.clone(), unit => unit, unit_id => p.unit.clone(), tier => p.tier }
}

/// The effects of one claimed timer. An error means the timer's own data (or a row it
/// needs) is unusable; the shell then fires it with a `timer.error` audit entry.
pub fn effects(cx: &Ctx, reads: &Reads, t: &TimerRow) -> Result<FireEffects> {
    let now = cx.now;
    if t.kind != TimerKind::Kickoff
        && t.kind != TimerKind::CatchUp
        && let Some(round_id) = t.round_id
        && let Some(round) = round(reads, round_id)?
        && t.due_at < round.created_at - MISFIRE_GRACE_MS
    {
        // The round was started with a date in the past: its instants before that are
        // recorded, not acted on; the catch-up message tells what is overdue.
        return Ok(skipped(t, now, "before the round was started"));
    }
    match t.kind {
        TimerKind::Kickoff => kickoff(cx, reads, t),
        TimerKind::CatchUp => catch_up(cx, reads, t),
        TimerKind::CalendarNotice => Ok(calendar_notice(cx, t)),
        TimerKind::WeeklyReport => Ok(super::weekly::fire(cx, reads, t)),
        TimerKind::CountCheck => Ok(super::count_check::fire(cx, reads, t)),
        TimerKind::StageOpen | TimerKind::StageClose => Ok(FireEffects {
            audit: vec![audit(
                now,
                "daemon",
                if t.kind == TimerKind::StageOpen {
                    "stage.open"
                } else {
                    "stage.close"
                },
                &t.key,
                serde_json::json!({"stage": t.payload.stage}),
            )],
            ..Default::default()
        }),
        TimerKind::Reminder | TimerKind::Deadline | TimerKind::Overdue | TimerKind::Escalation => {
            task_timer(cx, reads, t)
        }
    }
}

/// The effects of a timer whose own effects could not be computed or written: an audit
/// entry saying why, so the timer fires once instead of failing forever.
pub fn failed(key: &str, now: DateTime<Utc>, error: &str) -> FireEffects {
    FireEffects {
        audit: vec![audit(
            now,
            "daemon",
            "timer.error",
            key,
            serde_json::json!({"error": error}),
        )],
        ..Default::default()
    }
}

/// A prefetched round; an error when the shell did not read it (a bug, reported as the
/// timer's error rather than acted on with missing data).
fn round(reads: &Reads, id: i64) -> Result<Option<&RoundRow>> {
    reads
        .rounds
        .get(&id)
        .map(Option::as_ref)
        .ok_or_else(|| EngineError::NotFound(format!("round {id} in the batch's reads")))
}

/// The workflow a prefetched round is pinned to; None when its version does not parse.
fn workflow(reads: &Reads, round: &RoundRow) -> Option<Arc<Workflow>> {
    reads.workflows.get(&round.version_id).cloned().flatten()
}

/// A timer fired without effect, with the reason in the audit log.
pub fn skipped(t: &TimerRow, now: DateTime<Utc>, reason: &str) -> FireEffects {
    FireEffects {
        audit: vec![audit(
            now,
            "daemon",
            "timer.skipped",
            &t.key,
            serde_json::json!({"reason": reason, "due_at": from_ms(t.due_at)}),
        )],
        ..Default::default()
    }
}

/// A timer whose payload parses but lacks what its kind needs: corrupt, like one that does
/// not parse (the firing path fires it with a `timer.error` entry naming the row).
fn corrupt_payload(t: &TimerRow, problem: &str) -> EngineError {
    EngineError::Store(StoreError::Corrupt(crate::store::Corrupt {
        table: "timers",
        id: t.id.to_string(),
        column: "payload_json",
        value: t.payload.to_json(),
        problem: problem.to_string(),
    }))
}

/// The signed "mark done" link of a branch's task in a message made at `now`: valid until
/// [`super::LINK_VALID_DAYS`] after its deadline or after `now`, whichever is later, so a
/// late notice never carries a link that has already expired.
pub fn task_link(
    catalog: &Catalog,
    links: Option<&LinkSigner>,
    task: &TaskRow,
    now: DateTime<Utc>,
) -> Option<String> {
    let base = catalog.config.notify.link_base.as_deref()?;
    if task.assignee_kind != AssigneeKind::Unit {
        return None;
    }
    let expires = link_expiry(task.due_at.unwrap_or(0).max(ms(now)));
    Some(format!(
        "{}{}",
        base.trim_end_matches('/'),
        links?.task_link(&task.assignee_id, task.id, expires)
    ))
}

fn kickoff(cx: &Ctx, reads: &Reads, t: &TimerRow) -> Result<FireEffects> {
    let (cat, now, payload) = (cx.catalog, cx.now, &t.payload);
    let Some(id) = payload.workflow.clone() else {
        return Err(corrupt_payload(
            t,
            "names no workflow, which a kickoff must",
        ));
    };
    let mut fx = FireEffects::default();
    // A retried kickoff still owes the round of its original instant.
    let scheduled = payload.scheduled_ms.unwrap_or(t.due_at);
    let due = from_ms(scheduled);
    let kickoff_key = kickoff_timer(&id, due).key;
    let blocked = |reason: &'static str, error: Option<String>| Blocked {
        payload,
        id: &id,
        kickoff_key: &kickoff_key,
        scheduled,
        reason,
        error,
    };
    let (Some(loaded), Some(&version_id)) = (cat.workflows.get(&id), cx.versions.get(&id)) else {
        // The file is invalid or gone (e.g. the daemon started while it did not validate).
        // The round is still owed: it waits, and starts once the workflow is loaded again.
        return Ok(blocked_kickoff(cx, blocked(BLOCKED_NOT_LOADED, None)));
    };
    let wf = &loaded.workflow;
    let Some(schedule) = &wf.schedule else {
        fx.audit.push(audit(
            now,
            "daemon",
            "kickoff.skipped",
            &t.key,
            serde_json::json!({"reason": "workflow has no schedule any more"}),
        ));
        return Ok(fx);
    };
    let tz = workflow_tz(wf, cat.config.tz());
    let late = ms(now) - scheduled;
    // `misfire` is about the kickoff itself being late (the daemon was down); a blocked
    // kickoff retried later still owes its round.
    if payload.scheduled_ms.is_none()
        && late > MISFIRE_GRACE_MS
        && schedule.misfire.unwrap_or_default() == Misfire::Skip
    {
        fx.audit.push(audit(
            now,
            "daemon",
            "kickoff.missed",
            &kickoff_key,
            serde_json::json!({"policy": "skip", "late_ms": late}),
        ));
        fx.timers
            .extend(next_kickoff(cx, &id, schedule, tz, due, &mut fx.audit));
        return Ok(fx);
    }
    let start = due.with_timezone(&tz).date_naive();
    let people =
        if super::person::has_each(wf) {
            Some(reads.people.as_deref().ok_or_else(|| {
                EngineError::Invalid("the pool was not read for a kickoff".into())
            })?)
        } else {
            None
        };
    let p = match super::round::plan_with(cat, wf, start, &BTreeMap::new(), None, people) {
        Ok(p) => p,
        // E.g. the holiday calendar lacks a year the round needs. The round is still owed:
        // it waits, and starts once it plans (after a reload).
        Err(e) => {
            return Ok(blocked_kickoff(
                cx,
                blocked(BLOCKED_PLAN_FAILED, Some(e.to_string())),
            ));
        }
    };
    // The next kickoff counts from now, so kickoffs missed during an outage collapse into
    // this one firing instead of firing once each.
    fx.timers
        .extend(next_kickoff(cx, &id, schedule, tz, due, &mut fx.audit));
    let tag = format!("k{}", short_hash(&kickoff_key));
    let notifications = kickoff_notifications(cx, &tag, wf, &p);
    let (tasks, timers) = super::round::materialise(&tag, wf, p, now);
    fx.audit.push(audit(
        now,
        "daemon",
        "round.start",
        &format!("workflow:{id}"),
        serde_json::json!({"tag": tag, "start": start.to_string(), "kickoff": kickoff_key, "late_ms": late, "tasks": tasks.len()}),
    ));
    fx.notifications.extend(notifications);
    fx.round = Some((
        NewRound {
            tag,
            workflow_id: id.clone(),
            version_id,
            start_date: start.to_string(),
            params: BTreeMap::new(),
            units: None,
            kickoff_key: Some(kickoff_key.clone()),
            created_at: ms(now),
        },
        tasks,
        timers,
    ));
    Ok(fx)
}

/// A kickoff that cannot start its round now, and why.
struct Blocked<'a> {
    payload: &'a TimerPayload,
    id: &'a str,
    kickoff_key: &'a str,
    scheduled: i64,
    reason: &'static str,
    error: Option<String>,
}

/// The effects of a kickoff that cannot start its round now: an audit entry, the same
/// kickoff again in an hour (under a `:retry:` key, still owing the round of `scheduled`; a
/// reload that makes the workflow valid brings it forward, see
/// [`super::Engine::ensure_kickoffs`]), and, when the reason is new, a notice to the office.
fn blocked_kickoff(cx: &Ctx, b: Blocked) -> FireEffects {
    let now = cx.now;
    let retry_at = ms(now) + KICKOFF_RETRY_MS;
    let since = b.payload.blocked_since.unwrap_or(ms(now));
    tracing::error!(workflow = %b.id, kickoff = %b.kickoff_key, reason = b.reason, error = ?b.error, "kickoff cannot start its round; it waits and is retried");
    let mut fx = FireEffects::default();
    fx.audit.push(audit(
        now,
        "daemon",
        "kickoff.failed",
        b.kickoff_key,
        serde_json::json!({"reason": b.reason, "error": b.error, "retry_at": retry_at}),
    ));
    fx.timers.push(NewTimer {
        key: format!("{}:retry:{}", b.kickoff_key, ms(now)),
        round_id: None,
        task_key: None,
        kind: TimerKind::Kickoff,
        due_at: retry_at,
        payload: TimerPayload {
            workflow: Some(b.id.to_string()),
            scheduled_ms: Some(b.scheduled),
            blocked: Some(b.reason.to_string()),
            blocked_since: Some(since),
            error: b.error.clone(),
            ..TimerPayload::default()
        },
    });
    if b.payload.blocked.as_deref() != Some(b.reason) {
        fx.notifications = kickoff_blocked_notice(cx, &b);
    }
    fx
}

/// The office's notice that a scheduled round could not start (kind `kickoff_blocked`).
fn kickoff_blocked_notice(cx: &Ctx, b: &Blocked) -> Vec<NewNotification> {
    let (cat, now) = (cx.catalog, cx.now);
    let loaded = cat.workflows.get(b.id);
    let tz = loaded.map_or(cat.config.tz(), |w| {
        workflow_tz(&w.workflow, cat.config.tz())
    });
    let title = loaded.map_or_else(|| b.id.to_string(), |w| w.workflow.title.clone());
    let party = cat
        .directory
        .role_party(&cat.config.notify.dead_letter_role);
    let ctx = minijinja::context! {
        recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
        workflow => minijinja::context!{ id => b.id, title => title.clone() },
        scheduled => zh_datetime(&from_ms(b.scheduled).with_timezone(&tz)),
        retry_at => zh_datetime(&from_ms(ms(now) + KICKOFF_RETRY_MS).with_timezone(&tz)),
        reason => super::blocked_reason_zh(b.reason),
        error => b.error.clone(),
        office => minijinja::context!{ name => cat.directory.office.name.clone() },
    };
    let rendered = match cx.renderer.render("kickoff_blocked", &[], &ctx) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "kickoff_blocked template failed");
            return Vec::new();
        }
    };
    let item = Item {
        title: format!("「{title}」定期启动受阻"),
        assignee: party.name.clone(),
        deadline: zh_datetime(&from_ms(b.scheduled).with_timezone(&tz)),
        days_left: 0,
        link: None,
    };
    let item_json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
    to_contacts(
        cat,
        &Message {
            key: &format!("{}/blocked:{}", b.kickoff_key, b.reason),
            task: None,
            kind: MessageKind::KickoffBlocked,
            party: &party,
            rendered: &rendered,
            item_json: &item_json,
        },
        now,
    )
}

/// The next kickoff after this one, or an audit entry saying why there is none.
fn next_kickoff(
    cx: &Ctx,
    id: &str,
    schedule: &crate::core::definition::Schedule,
    tz: chrono_tz::Tz,
    due: DateTime<Utc>,
    audit_log: &mut Vec<AuditEntry>,
) -> Option<NewTimer> {
    let after = due.max(cx.now);
    match crate::core::schedule::next_kickoff(schedule, tz, &cx.catalog.calendar, after) {
        Ok(Some(next)) => Some(kickoff_timer(id, next.with_timezone(&Utc))),
        Ok(None) => None,
        Err(e) => {
            audit_log.push(audit(
                cx.now,
                "daemon",
                "kickoff.unschedulable",
                &format!("workflow:{id}"),
                serde_json::json!({"error": e.to_string()}),
            ));
            None
        }
    }
}

/// One kickoff message per assignee of a round a kickoff starts, listing its tasks.
fn kickoff_notifications(cx: &Ctx, tag: &str, wf: &Workflow, p: &Plan) -> Vec<NewNotification> {
    let (cat, now) = (cx.catalog, cx.now);
    let mut seen: Vec<&Party> = Vec::new();
    for t in &p.tasks {
        if !seen.contains(&&t.assignee) {
            seen.push(&t.assignee);
        }
    }
    let tz = workflow_tz(wf, cat.config.tz());
    let mut out = Vec::new();
    for party in seen {
        let mine = || p.tasks.iter().filter(move |t| &t.assignee == party);
        let items: Vec<Item> = mine()
            .map(|t| Item {
                title: t.title.clone(),
                assignee: party.name.clone(),
                deadline: match t.due.at {
                    Some(a) if !t.due.projected => {
                        format!("{}{}", zh_datetime(&a), provisional_mark(t.due.provisional))
                    }
                    _ => "视前序工作或事件而定".to_string(),
                },
                days_left: t
                    .due
                    .at
                    .map_or(0, |a| days_between(now, a.with_timezone(&Utc), tz)),
                link: None,
            })
            .collect();
        let dated = || mine().filter(|t| !t.due.projected);
        // The party's earliest dated deadline, for templates that name one date.
        let first = dated()
            .filter_map(|t| t.due.at.map(|a| (a, t.due.provisional)))
            .min();
        let ctx = minijinja::context! {
            workflow => minijinja::context!{ id => wf.id.value.clone(), title => wf.title.clone() },
            round => minijinja::context!{ tag => tag, start => zh_date(p.start) },
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            assignee => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            params => minijinja::Value::from(minijinja::value::Serde(&p.params)),
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
            items => minijinja::Value::from(minijinja::value::Serde(&items)),
            deadline => first.map(|(a, prov)| format!("{}{}", zh_datetime(&a), provisional_mark(prov))),
            days_left => first.map(|(a, _)| days_between(now, a.with_timezone(&Utc), tz)),
        };
        let rendered = match cx.renderer.render("kickoff", &[Some(&wf.templates)], &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "kickoff template failed; using the built-in one");
                match cx.renderer.render("kickoff", &[], &ctx) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            }
        };
        let item_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        out.extend(to_contacts(
            cat,
            &Message {
                key: &format!("{tag}/kickoff@{}", party.id),
                task: None,
                kind: MessageKind::Kickoff,
                party,
                rendered: &rendered,
                item_json: &item_json,
            },
            now,
        ));
    }
    out
}

/// A branch's or role's reminder, 【今日截止】, overdue reminder or escalation.
fn task_timer(cx: &Ctx, reads: &Reads, t: &TimerRow) -> Result<FireEffects> {
    let (cat, now, payload) = (cx.catalog, cx.now, &t.payload);
    let mut fx = FireEffects::default();
    let Some(task_id) = t.task_id else {
        return Ok(fx);
    };
    let Some(task) = reads.tasks.get(&task_id) else {
        return Ok(fx);
    };
    if task.state != TaskState::Open {
        fx.audit.push(audit(
            now,
            "daemon",
            "timer.skipped",
            &t.key,
            serde_json::json!({"reason": format!("task is {}", task.state)}),
        ));
        return Ok(fx);
    }
    if t.kind == TimerKind::Reminder && task.due_at.is_some_and(|d| ms(now) >= d) {
        // The deadline passed while this reminder waited (downtime); the deadline and
        // overdue notices say it better.
        fx.audit.push(audit(
            now,
            "daemon",
            "timer.skipped",
            &t.key,
            serde_json::json!({"reason": "reminder after the deadline"}),
        ));
        return Ok(fx);
    }
    let Some(party) = &payload.recipient else {
        return Ok(fx);
    };
    if t.kind.is_chain()
        && reads.siblings.get(&task_id).is_some_and(|timers| {
            timers.iter().any(|u| {
                u.id != t.id
                    && u.kind == t.kind
                    && u.state != TimerState::Cancelled
                    && u.due_at > t.due_at
                    && u.due_at <= ms(now)
            })
        })
    {
        // After downtime only the latest due overdue reminder, and only the highest due
        // rung, are sent: one catch-up, not the whole chain in one second.
        return Ok(skipped(t, now, "a later one is due as well"));
    }
    let round = round(reads, task.round_id)?;
    // A stored version that no longer parses only loses the workflow's own templates.
    let wf = round.and_then(|r| workflow(reads, r));
    let tz = wf
        .as_ref()
        .map_or(cat.config.tz(), |w| workflow_tz(w, cat.config.tz()));
    if t.kind == TimerKind::Deadline
        && local_date(now, tz) != local_date(from_ms(task.due_at.unwrap_or(t.due_at)), tz)
    {
        // 【今日截止】 is true on the deadline's own day only; later, the overdue reminders
        // speak.
        return Ok(skipped(t, now, "the deadline's day has passed"));
    }
    let due = task.due_at.map(from_ms);
    let deadline = due
        .map(|d| {
            format!(
                "{}{}",
                zh_datetime(&d.with_timezone(&tz)),
                provisional_mark(task.provisional)
            )
        })
        .unwrap_or_default();
    let days_left = due.map_or(0, |d| days_between(now, d, tz));
    let link = task_link(cat, cx.links, task, now);
    let item = Item {
        title: task.title.clone(),
        assignee: task.assignee_name.clone(),
        deadline: deadline.clone(),
        days_left,
        link: link.clone(),
    };
    let task_def = wf
        .as_ref()
        .and_then(|w| w.task(&task.task).map(|(_, t)| t.clone()));
    let params = round.map(|r| r.params.clone()).unwrap_or_default();
    let mut ctx = minijinja::context! {
        workflow => minijinja::context!{ id => wf.as_ref().map(|w| w.id.value.clone()), title => wf.as_ref().map(|w| w.title.clone()) },
        round => minijinja::context!{ id => task.round_id, start => round.map(|r| r.start_date.clone()) },
        stage => minijinja::context!{ id => task.stage.clone() },
        task => minijinja::context!{ id => task.task.clone(), key => task.key.clone(), title => task.title.clone(),
            description => task_def.as_ref().and_then(|t| t.description.as_ref().map(|d| d.value.clone())) },
        assignee => minijinja::context!{ id => task.assignee_id.clone(), name => task.assignee_name.clone() },
        recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
        deadline => deadline,
        days_left => days_left,
        params => params,
        link => link,
        items => minijinja::Value::from(minijinja::value::Serde(vec![&item])),
        office => minijinja::context!{ name => cat.directory.office.name.clone() },
        person => task.person.as_ref().map(|p| person_context(cat, p)),
    };
    // A task description is a template too: render it with the same variables.
    if let Some(src) = task_def.as_ref().and_then(|t| t.description.as_ref()) {
        let description = cx
            .renderer
            .render_text(&src.value, &ctx)
            .unwrap_or_else(|_| src.value.clone());
        ctx = minijinja::context! { task => minijinja::context!{ id => task.task.clone(), key => task.key.clone(),
        title => task.title.clone(), description => description }, ..ctx };
    }
    // The notice sent at the deadline itself is the "due today" message.
    let kind = match t.kind {
        TimerKind::Deadline => MessageKind::DueToday,
        TimerKind::Overdue => MessageKind::Overdue,
        TimerKind::Escalation => MessageKind::Escalation,
        // Only task timers come here (see `effects`).
        _ => MessageKind::Reminder,
    };
    let overrides = [
        task_def.as_ref().and_then(|t| t.templates.as_ref()),
        wf.as_ref().map(|w| &w.templates),
    ];
    let rendered = match cx.renderer.render(kind.as_str(), &overrides, &ctx) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(timer = %t.key, error = %e, "template failed; using the built-in one");
            cx.renderer
                .render(kind.as_str(), &[], &ctx)
                .map_err(|e| EngineError::NotFound(e.to_string()))?
        }
    };
    let item_json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
    fx.notifications = to_contacts(
        cat,
        &Message {
            key: &t.key,
            task: Some(task),
            kind,
            party,
            rendered: &rendered,
            item_json: &item_json,
        },
        now,
    );
    if t.kind == TimerKind::Escalation {
        fx.audit.push(audit(
            now,
            "daemon",
            "task.escalated",
            &format!("task:{}", task.id),
            serde_json::json!({"to": party.id, "timer": t.key}),
        ));
    }
    Ok(fx)
}

/// The one catch-up message of an assignee of a round started late: everything of theirs
/// that is overdue when it fires (nothing, when they caught up meanwhile).
fn catch_up(cx: &Ctx, reads: &Reads, t: &TimerRow) -> Result<FireEffects> {
    let (cat, now) = (cx.catalog, cx.now);
    let (Some(round_id), Some(party)) = (t.round_id, &t.payload.recipient) else {
        return Ok(skipped(t, now, "no round or recipient"));
    };
    let Some(round) = round(reads, round_id)? else {
        return Ok(skipped(t, now, "the round is gone"));
    };
    let wf = workflow(reads, round);
    let tz = wf
        .as_ref()
        .map_or(cat.config.tz(), |w| workflow_tz(w, cat.config.tz()));
    let tasks = reads.round_tasks.get(&round_id).ok_or_else(|| {
        EngineError::NotFound(format!(
            "the tasks of round {round_id} in the batch's reads"
        ))
    })?;
    let items: Vec<Item> = tasks
        .iter()
        .filter(|x| x.assignee_kind == party.kind && x.assignee_id == party.id)
        .filter(|x| is_overdue(x, ms(now)))
        .filter_map(|x| {
            let due = from_ms(x.due_at?);
            Some(Item {
                title: x.title.clone(),
                assignee: x.assignee_name.clone(),
                deadline: format!(
                    "{}{}",
                    zh_datetime(&due.with_timezone(&tz)),
                    provisional_mark(x.provisional)
                ),
                days_left: days_between(now, due, tz),
                link: task_link(cat, cx.links, x, now),
            })
        })
        .collect();
    if items.is_empty() {
        return Ok(skipped(t, now, "nothing overdue any more"));
    }
    let ctx = minijinja::context! {
        workflow => minijinja::context!{ id => round.workflow_id.clone(), title => wf.as_ref().map(|w| w.title.clone()) },
        round => minijinja::context!{ id => round.id, start => round.start_date.clone() },
        recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
        assignee => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
        items => minijinja::Value::from(minijinja::value::Serde(&items)),
        office => minijinja::context!{ name => cat.directory.office.name.clone() },
    };
    let rendered = cx
        .renderer
        .render("catch_up", &[], &ctx)
        .map_err(|e| EngineError::NotFound(e.to_string()))?;
    let item_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
    let mut notifications = to_contacts(
        cat,
        &Message {
            key: &t.key,
            task: None,
            kind: MessageKind::CatchUp,
            party,
            rendered: &rendered,
            item_json: &item_json,
        },
        now,
    );
    for n in &mut notifications {
        n.round_id = Some(round_id);
    }
    Ok(FireEffects {
        notifications,
        audit: vec![audit(
            now,
            "daemon",
            "round.catch_up",
            &format!("round:{round_id}"),
            serde_json::json!({"to": party.id, "overdue": items.len(), "timer": t.key}),
        )],
        ..Default::default()
    })
}

/// A weekly missing-calendar notice: tell the office where to put the file and schedule
/// next week's, or stop (audited) when the file has been added.
fn calendar_notice(cx: &Ctx, t: &TimerRow) -> FireEffects {
    use super::provisional::{NOTICE_EVERY_DAYS, notice_instant, notice_timer};
    let (cat, now) = (cx.catalog, cx.now);
    let audit =
        |action: &str, detail: serde_json::Value| audit(now, "daemon", action, &t.key, detail);
    let mut fx = FireEffects::default();
    let Some(year) = t.payload.year else {
        fx.audit.push(audit(
            "calendar.notice.skipped",
            serde_json::json!({"reason": "the timer names no year"}),
        ));
        return fx;
    };
    if cat.calendar.covers(year) {
        fx.audit.push(audit(
            "calendar.notice.stopped",
            serde_json::json!({"year": year, "reason": "the holiday file is there"}),
        ));
        return fx;
    }
    let tz = cat.config.tz();
    let file = cat.config.calendar_dir.join(format!("{year}.json"));
    let party = cat
        .directory
        .role_party(&cat.config.notify.dead_letter_role);
    let ctx = minijinja::context! {
        recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
        office => minijinja::context!{ name => cat.directory.office.name.clone() },
        year => year,
        file => file.display().to_string(),
        folder => cat.config.calendar_dir.display().to_string(),
    };
    match cx.renderer.render("calendar_missing", &[], &ctx) {
        Ok(rendered) => {
            fx.notifications = to_contacts(
                cat,
                &Message {
                    key: &t.key,
                    task: None,
                    kind: MessageKind::CalendarMissing,
                    party: &party,
                    rendered: &rendered,
                    item_json: "{}",
                },
                now,
            );
        }
        Err(e) => tracing::error!(error = %e, "missing-calendar notice failed to render"),
    }
    tracing::warn!(year, file = %file.display(), "holiday file missing; the office is told");
    fx.audit.push(audit(
        "calendar.notice",
        serde_json::json!({"year": year, "file": file.display().to_string(), "to": party.id}),
    ));
    let next = from_ms(t.due_at)
        .with_timezone(&tz)
        .date_naive()
        .checked_add_days(chrono::Days::new(NOTICE_EVERY_DAYS))
        .and_then(|d| notice_instant(d, tz));
    fx.timers.extend(next.map(|n| notice_timer(year, n)));
    fx
}

/// A rendered message to a party, before it is split by contact and channel.
pub struct Message<'a> {
    /// The message's key (the timer's, or a key of its own); each row's key adds the
    /// channel and address.
    pub key: &'a str,
    /// The task it is about, if any.
    pub task: Option<&'a TaskRow>,
    /// What kind of message.
    pub kind: MessageKind,
    /// To whom.
    pub party: &'a Party,
    /// Subject and bodies.
    pub rendered: &'a Rendered,
    /// The digest item(s) as JSON.
    pub item_json: &'a str,
}

/// One notification per channel of every contact of a party (a `log` entry when the party
/// has no reachable contact, so nothing disappears silently).
pub fn to_contacts(cat: &Catalog, m: &Message, now: DateTime<Utc>) -> Vec<NewNotification> {
    let party = m.party;
    let contacts: Vec<Contact> = match party.kind {
        AssigneeKind::Role => cat
            .directory
            .role(&party.id)
            .map(|r| r.contacts.clone())
            .unwrap_or_default(),
        AssigneeKind::Unit => cat
            .directory
            .unit(&party.id)
            .map(|u| u.contacts.clone())
            .unwrap_or_default(),
    };
    let mut channels: Vec<(OutboxChannel, String, serde_json::Value)> = Vec::new();
    for c in &contacts {
        let who = serde_json::json!({"party": party, "contact": c});
        if let Some(e) = &c.email {
            channels.push((OutboxChannel::Email, e.clone(), who.clone()));
        }
        for w in &c.webhooks {
            channels.push((OutboxChannel::Webhook, w.url.clone(), who.clone()));
        }
        if c.email.is_none() && c.webhooks.is_empty() {
            channels.push((OutboxChannel::Log, c.name.clone(), who.clone()));
        }
    }
    if channels.is_empty() {
        channels.push((
            OutboxChannel::Log,
            party.name.clone(),
            serde_json::json!({"party": party}),
        ));
    }
    channels
        .into_iter()
        .map(|(channel, address, who)| NewNotification {
            key: format!("{}#{channel}:{address}", m.key),
            round_id: m.task.map(|t| t.round_id),
            task_id: m.task.map(|t| t.id),
            kind: m.kind,
            channel,
            address,
            recipient_json: who.to_string(),
            subject: m.rendered.subject.clone(),
            body: m.rendered.text.clone(),
            html: m.rendered.html.clone(),
            item_json: m.item_json.to_string(),
            not_before: ms(now),
            created_at: ms(now),
        })
        .collect()
}

#[cfg(test)]
mod tests;
