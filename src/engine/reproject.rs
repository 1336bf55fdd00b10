//! Re-projection: re-plan a running round onto a new workflow version, a changed directory
//! or a corrected calendar, and apply what moves, appears or vanishes. Reload, migration,
//! add-branch and the provisional calendar's corrections all go through it.
//!
//! Architecture Invariant: a running round changes only through `Engine::reproject`, which
//! never rewrites a done task, a fired timer or a sent message, and applies everything in one
//! transaction with the old and new instants in the audit log.

use crate::core::plan::Plan;
use crate::core::state::{AssigneeKind, TaskState, TimerState};
use crate::engine::{Engine, EngineError, from_ms, ms};
use crate::store::{AuditEntry, NewTask, NewTimer, Reprojection};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One pending item that moves, appears or vanishes, or whose instant stays but stops (or
/// starts) resting on the provisional calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `moved`, `appears`, `vanishes`, `confirmed` (same instant, no longer provisional:
    /// the year's holiday file was added) or `provisional` (same instant, now provisional).
    pub change: &'static str,
    /// `task` (its deadline) or a timer kind (`reminder`, `escalation` ...).
    pub what: String,
    /// The planned key, e.g. `nomination@dongguan/reminder/0`.
    pub key: String,
    /// Who it concerns (assignee or recipient name).
    pub who: String,
    /// Instant before.
    pub old: Option<DateTime<Utc>>,
    /// Instant after.
    pub new: Option<DateTime<Utc>>,
}

/// A change of wording between two versions: a title, a description or a message template.
/// Dates are in [`Change`]; these take effect for every message sent after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextChange {
    /// `changed`, `appears` or `vanishes`.
    pub change: &'static str,
    /// `title`, `description` or `template`.
    pub what: &'static str,
    /// Where: `workflow`, `stage:ID`, `task:ID`, `templates.reminder.subject`,
    /// `task:ID/templates.overdue.text` …
    pub key: String,
    /// The text before.
    pub old: Option<String>,
    /// The text after.
    pub new: Option<String>,
}

impl TextChange {
    /// One line for the command line: the change, what, where, and both texts shortened.
    pub fn line(&self) -> String {
        let show = |t: &Option<String>| t.as_deref().map_or_else(|| "—".to_string(), short);
        format!(
            "  {:<8} {:<11} {:<45} {} → {}",
            self.change,
            self.what,
            self.key,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// A text on one line, at most 40 characters: newlines shown as `⏎`, the rest elided.
fn short(text: &str) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { c })
        .collect();
    if flat.chars().count() > 40 {
        format!("「{}…」", flat.chars().take(40).collect::<String>())
    } else {
        format!("「{flat}」")
    }
}

/// Titles, descriptions and templates that differ between two versions of a workflow. A stage
/// or task that exists in only one of them is left out (its dates appear or vanish in
/// [`diff_plans`]); templates are compared everywhere.
pub fn diff_texts(
    old: &crate::core::definition::Workflow,
    new: &crate::core::definition::Workflow,
) -> Vec<TextChange> {
    use crate::core::definition::{Templates, Workflow};
    type Texts = BTreeMap<(String, &'static str), String>;
    fn templates(out: &mut Texts, prefix: &str, t: &Templates) {
        for (kind, m) in t.iter() {
            let mut put = |part: &str, text: &str| {
                out.insert(
                    (format!("{prefix}templates.{kind}.{part}"), "template"),
                    text.to_string(),
                );
            };
            put("subject", &m.subject.value);
            put("text", &m.text.value);
            if let Some(h) = &m.html {
                put("html", &h.value);
            }
        }
    }
    fn texts(wf: &Workflow, stages: &BTreeSet<&str>, tasks: &BTreeSet<&str>) -> Texts {
        let mut out = Texts::new();
        out.insert(("workflow".into(), "title"), wf.title.clone());
        if let Some(d) = &wf.description {
            out.insert(("workflow".into(), "description"), d.clone());
        }
        templates(&mut out, "", &wf.templates);
        for s in wf
            .stages
            .iter()
            .filter(|s| stages.contains(s.id.value.as_str()))
        {
            let key = format!("stage:{}", s.id.value);
            out.insert((key.clone(), "title"), s.title.clone());
            if let Some(d) = &s.description {
                out.insert((key, "description"), d.clone());
            }
        }
        for (_, t) in wf.tasks() {
            let key = format!("task:{}", t.id.value);
            if let Some(tt) = &t.templates {
                templates(&mut out, &format!("{key}/"), tt);
            }
            if !tasks.contains(t.id.value.as_str()) {
                continue;
            }
            out.insert((key.clone(), "title"), t.title.clone());
            if let Some(d) = &t.description {
                out.insert((key, "description"), d.value.clone());
            }
        }
        out
    }
    let ids = |wf: &Workflow| -> (BTreeSet<String>, BTreeSet<String>) {
        (
            wf.stages.iter().map(|s| s.id.value.clone()).collect(),
            wf.tasks().map(|(_, t)| t.id.value.clone()).collect(),
        )
    };
    let ((s1, t1), (s2, t2)) = (ids(old), ids(new));
    let stages: BTreeSet<&str> = s1.intersection(&s2).map(String::as_str).collect();
    let tasks: BTreeSet<&str> = t1.intersection(&t2).map(String::as_str).collect();
    let (a, b) = (texts(old, &stages, &tasks), texts(new, &stages, &tasks));
    let mut out = Vec::new();
    for ((key, what), x) in &a {
        let change = match b.get(&(key.clone(), *what)) {
            Some(y) if y == x => continue,
            Some(_) => "changed",
            None => "vanishes",
        };
        out.push(TextChange {
            change,
            what,
            key: key.clone(),
            old: Some(x.clone()),
            new: b.get(&(key.clone(), *what)).cloned(),
        });
    }
    for ((key, what), y) in &b {
        if !a.contains_key(&(key.clone(), *what)) {
            out.push(TextChange {
                change: "appears",
                what,
                key: key.clone(),
                old: None,
                new: Some(y.clone()),
            });
        }
    }
    out.sort_by(|x, y| (&x.key, x.what).cmp(&(&y.key, y.what)));
    out
}

/// What a re-projection does (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct Impact {
    /// Round id.
    pub round: i64,
    /// Version row before.
    pub from_version: i64,
    /// Version row after.
    pub to_version: i64,
    /// Version number before (1, 2, ...).
    pub from_number: i64,
    /// Version number after.
    pub to_number: i64,
    /// Every change, sorted by who, then key.
    pub changes: Vec<Change>,
    /// Titles, descriptions and templates that change with the version.
    pub texts: Vec<TextChange>,
}

impl Impact {
    /// A table for the command line (Chinese dates).
    pub fn to_table(&self, tz: chrono_tz::Tz) -> String {
        use std::fmt::Write;
        let t = |x: &Option<DateTime<Utc>>| {
            x.map(|d| crate::core::timefmt::zh_datetime(&d.with_timezone(&tz)))
                .unwrap_or_else(|| "—".into())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "round {}: v{} → v{}: {} change(s)",
            self.round,
            self.from_number,
            self.to_number,
            self.changes.len()
        );
        for c in &self.changes {
            let _ = writeln!(
                out,
                "  {:<8} {:<10} {:<45} {:<10} {} → {}",
                c.change,
                c.what,
                c.key,
                c.who,
                t(&c.old),
                t(&c.new)
            );
        }
        if !self.texts.is_empty() {
            let _ = writeln!(out, "wording: {} change(s)", self.texts.len());
            for c in &self.texts {
                let _ = writeln!(out, "{}", c.line());
            }
        }
        out
    }
}

/// The change of an item whose instant stays while its provisional mark flips.
fn remarked(provisional: bool) -> &'static str {
    if provisional {
        "provisional"
    } else {
        "confirmed"
    }
}

fn planned_key<'a>(tag: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(tag)?.strip_prefix('/')?;
    Some(rest.split('~').next().unwrap_or(rest))
}

impl Engine {
    /// Re-plan a running round under `to_version` (default: its pinned version), the current
    /// directory and calendar, and the round's units plus `add_units`; apply unless `dry_run`.
    pub async fn reproject(
        &self,
        round_id: i64,
        to_version: Option<i64>,
        add_units: &[String],
        dry_run: bool,
        actor: &str,
        reason: &str,
    ) -> Result<Impact, EngineError> {
        self.reproject_with(round_id, to_version, add_units, &[], dry_run, actor, reason)
            .await
    }

    /// [`Engine::reproject`], also making the round's tasks per person for `add_people`
    /// (the round's own people are those its tasks were made for).
    #[allow(clippy::too_many_arguments)]
    pub async fn reproject_with(
        &self,
        round_id: i64,
        to_version: Option<i64>,
        add_units: &[String],
        add_people: &[crate::core::plan::PersonRef],
        dry_run: bool,
        actor: &str,
        reason: &str,
    ) -> Result<Impact, EngineError> {
        let store = self.store().clone();
        let round = store
            .round(round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {round_id}")))?;
        let version = to_version.unwrap_or(round.version_id);
        let now = self.clock().now();
        let tasks = store.tasks(round_id).await?;
        // The round's units: those it already has (a reload never adds a branch by itself).
        let mut units: BTreeSet<String> = tasks
            .iter()
            .filter(|t| t.assignee_kind == AssigneeKind::Unit)
            .map(|t| t.assignee_id.clone())
            .collect();
        if let Some(list) = &round.units {
            units.extend(list.iter().cloned());
        }
        units.extend(add_units.iter().cloned());
        let units: Vec<String> = units.into_iter().collect();
        let mut people = crate::engine::person::round_people(&tasks);
        people.extend(
            add_people
                .iter()
                .filter(|p| !people.iter().any(|q| q.id == p.id))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let plan = self.plan_version(&round, version, &units, &people).await?;
        let wf = self.workflow_of(version).await?;
        // A task that appears waits, like at the round's start, while it has prerequisites
        // in the round (`after:`, `{done: …}`).
        let present: BTreeSet<&str> = plan.tasks.iter().map(|t| t.task.as_str()).collect();
        let blocked = |task: &str| {
            wf.task(task).is_some_and(|(_, def)| {
                crate::engine::activation::prerequisites(def)
                    .iter()
                    .any(|pre| present.contains(pre))
            })
        };
        let by_key: HashMap<&str, &crate::store::TaskRow> =
            tasks.iter().map(|t| (t.key.as_str(), t)).collect();
        let timers = store.timers_with_prefix(&format!("{}/", round.tag)).await?;
        let mut changes = Vec::new();
        let mut r = Reprojection {
            round_id,
            version_id: version,
            units: (round.units.is_some() || !add_units.is_empty()).then(|| units.clone()),
            at: ms(now),
            actor: actor.to_string(),
            note: Some(reason.to_string()),
            ..Default::default()
        };
        // Tasks.
        let mut live: BTreeSet<String> = BTreeSet::new(); // task keys open after the change
        let mut fresh: BTreeSet<String> = BTreeSet::new();
        for pt in &plan.tasks {
            let fixed = pt
                .due
                .at
                .filter(|_| !pt.due.projected)
                .map(|a| a.with_timezone(&Utc));
            match by_key.get(pt.key.as_str()) {
                None => {
                    changes.push(Change {
                        change: "appears",
                        what: "task".into(),
                        key: pt.key.clone(),
                        who: pt.assignee.name.clone(),
                        old: None,
                        new: fixed,
                    });
                    r.new_tasks.push(NewTask {
                        key: pt.key.clone(),
                        task: pt.task.clone(),
                        stage: pt.stage.clone(),
                        title: pt.title.clone(),
                        assignee_kind: pt.assignee.kind,
                        assignee_id: pt.assignee.id.clone(),
                        assignee_name: pt.assignee.name.clone(),
                        due_at: fixed.map(ms),
                        state: if fixed.is_some() && !blocked(&pt.task) {
                            TaskState::Open
                        } else {
                            TaskState::Waiting
                        },
                        provisional: fixed.is_some() && pt.due.provisional,
                        person: pt.person.clone(),
                    });
                    if fixed.is_some() && !blocked(&pt.task) {
                        live.insert(pt.key.clone());
                        fresh.insert(pt.key.clone());
                    }
                }
                Some(t) if t.state.is_owed() => {
                    // An owed task takes the new version's title; done ones keep theirs.
                    if t.title != pt.title {
                        r.title_changes.push((t.id, pt.title.clone()));
                    }
                    if t.state == TaskState::Waiting {
                        continue;
                    }
                    live.insert(pt.key.clone());
                    // A deadline counted from a completion keeps the instant it got then.
                    if let (Some(new), false) = (fixed, pt.after_done.is_some()) {
                        let moved = t.due_at != Some(ms(new));
                        if moved || t.provisional != pt.due.provisional {
                            changes.push(Change {
                                change: if moved {
                                    "moved"
                                } else {
                                    remarked(pt.due.provisional)
                                },
                                what: "task".into(),
                                key: pt.key.clone(),
                                who: pt.assignee.name.clone(),
                                old: t.due_at.map(from_ms),
                                new: Some(new),
                            });
                            r.due_changes
                                .push((t.id, Some(ms(new)), pt.due.provisional));
                        }
                    }
                }
                // A waiting task keeps its fixed deadline up to date; its timers are made
                // when it becomes owed.
                Some(t) if t.state == TaskState::Waiting => {
                    if let (Some(new), false) = (fixed, pt.after_done.is_some())
                        && t.due_at.is_some()
                    {
                        let moved = t.due_at != Some(ms(new));
                        if moved || t.provisional != pt.due.provisional {
                            changes.push(Change {
                                change: if moved {
                                    "moved"
                                } else {
                                    remarked(pt.due.provisional)
                                },
                                what: "task".into(),
                                key: pt.key.clone(),
                                who: pt.assignee.name.clone(),
                                old: t.due_at.map(from_ms),
                                new: Some(new),
                            });
                            r.due_changes
                                .push((t.id, Some(ms(new)), pt.due.provisional));
                        }
                    }
                }
                Some(_) => {} // done, waived or cancelled: left alone
            }
        }
        let planned: BTreeSet<&str> = plan.tasks.iter().map(|t| t.key.as_str()).collect();
        for t in tasks
            .iter()
            .filter(|t| t.state.is_owed() && !planned.contains(t.key.as_str()))
        {
            changes.push(Change {
                change: "vanishes",
                what: "task".into(),
                key: t.key.clone(),
                who: t.assignee_name.clone(),
                old: t.due_at.map(from_ms),
                new: None,
            });
            r.cancel_tasks.push(t.id);
        }
        // Timers.
        let mut existing: HashMap<String, Vec<&crate::store::TimerRow>> = HashMap::new();
        for t in &timers {
            if let Some(k) = planned_key(&round.tag, &t.key) {
                existing.entry(k.to_string()).or_default().push(t);
            }
        }
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for pt in plan.timers.iter().filter(|t| !t.projected) {
            let task_ok = pt.task.as_ref().is_none_or(|k| live.contains(k));
            if !task_ok {
                continue;
            }
            wanted.insert(pt.key.clone());
            let at = pt.at.with_timezone(&Utc);
            let who = pt
                .recipient
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            let what = pt.kind.to_string();
            let rows = existing.get(&pt.key).cloned().unwrap_or_default();
            let pending: Vec<&&crate::store::TimerRow> = rows
                .iter()
                .filter(|t| t.state == TimerState::Pending)
                .collect();
            let task_is_fresh = pt.task.as_ref().is_some_and(|k| fresh.contains(k));
            if let Some(p) = pending.first() {
                if p.due_at != ms(at) {
                    if at < now && pt.kind == crate::core::plan::TimerKind::Reminder {
                        changes.push(Change {
                            change: "vanishes",
                            what,
                            key: pt.key.clone(),
                            who,
                            old: Some(from_ms(p.due_at)),
                            new: None,
                        });
                        r.cancel_timers.push(p.id);
                        continue;
                    }
                    changes.push(Change {
                        change: "moved",
                        what,
                        key: pt.key.clone(),
                        who,
                        old: Some(from_ms(p.due_at)),
                        new: Some(at),
                    });
                    r.cancel_timers.push(p.id);
                    r.new_timers.extend(self.timer_for(
                        &round.tag,
                        pt,
                        now,
                        &format!("~r{}", ms(now)),
                    ));
                } else if at >= now && crate::engine::timer_is_provisional(p) != pt.provisional {
                    // Same instant, but its mark flips: replace the row so it says so (one
                    // already due fires in a moment; replacing it could drop a reminder).
                    changes.push(Change {
                        change: remarked(pt.provisional),
                        what,
                        key: pt.key.clone(),
                        who,
                        old: Some(from_ms(p.due_at)),
                        new: Some(at),
                    });
                    r.cancel_timers.push(p.id);
                    r.new_timers.extend(self.timer_for(
                        &round.tag,
                        pt,
                        now,
                        &format!("~r{}", ms(now)),
                    ));
                }
            } else if rows.is_empty() || task_is_fresh {
                // Never planned before (a new task, rung or reminder): it appears.
                if let Some(t) = self.timer_for(&round.tag, pt, now, "") {
                    changes.push(Change {
                        change: "appears",
                        what,
                        key: pt.key.clone(),
                        who,
                        old: None,
                        new: Some(at),
                    });
                    r.new_timers.push(t);
                }
            }
            // Already fired or cancelled under this key: history stays, nothing is re-sent.
        }
        for (k, rows) in &existing {
            if wanted.contains(k) {
                continue;
            }
            for t in rows.iter().filter(|t| t.state == TimerState::Pending) {
                let task_vanished = t.task_id.is_some_and(|id| r.cancel_tasks.contains(&id));
                if task_vanished {
                    continue; // cancelled with its task
                }
                let who = t
                    .task_id
                    .and_then(|id| tasks.iter().find(|x| x.id == id))
                    .map(|x| x.assignee_name.clone())
                    .unwrap_or_default();
                changes.push(Change {
                    change: "vanishes",
                    what: t.kind.to_string(),
                    key: k.clone(),
                    who,
                    old: Some(from_ms(t.due_at)),
                    new: None,
                });
                r.cancel_timers.push(t.id);
            }
        }
        changes.sort_by(|a, b| (&a.who, &a.key, a.change).cmp(&(&b.who, &b.key, b.change)));
        let from_number = store
            .workflow_version(round.version_id)
            .await?
            .map_or(0, |v| v.version);
        let to_number = store
            .workflow_version(version)
            .await?
            .map_or(0, |v| v.version);
        let texts = if version == round.version_id {
            Vec::new()
        } else {
            diff_texts(
                &*self.workflow_of(round.version_id).await?,
                &*self.workflow_of(version).await?,
            )
        };
        let impact = Impact {
            round: round_id,
            from_version: round.version_id,
            to_version: version,
            from_number,
            to_number,
            changes,
            texts,
        };
        if dry_run
            || (impact.changes.is_empty()
                && version == round.version_id
                && add_units.is_empty()
                && add_people.is_empty())
        {
            return Ok(impact);
        }
        r.audit = impact
            .changes
            .iter()
            .map(|c| AuditEntry {
                at: ms(now),
                actor: actor.to_string(),
                action: "round.reproject".into(),
                subject: format!("round:{round_id}"),
                detail_json: serde_json::json!({"reason": reason, "change": c.change, "what": c.what, "key": c.key, "old": c.old, "new": c.new}).to_string(),
            })
            .collect();
        r.audit.push(AuditEntry {
            at: ms(now),
            actor: actor.to_string(),
            action: "round.migrate".into(),
            subject: format!("round:{round_id}"),
            detail_json: serde_json::json!({"reason": reason, "from_version": round.version_id, "to_version": version, "changes": impact.changes.len(), "texts": impact.texts, "added_units": add_units,
                "added_people": add_people.iter().map(|p| p.id).collect::<Vec<_>>()}).to_string(),
        });
        store.reproject(r).await?;
        self.wake();
        Ok(impact)
    }

    fn timer_for(
        &self,
        tag: &str,
        pt: &crate::core::plan::PlannedTimer,
        now: DateTime<Utc>,
        suffix: &str,
    ) -> Option<NewTimer> {
        let mut t = crate::engine::timer_row(tag, pt, now)?;
        t.key.push_str(suffix);
        Some(t)
    }

    async fn plan_version(
        &self,
        round: &crate::store::RoundRow,
        version: i64,
        units: &[String],
        people: &[crate::core::plan::PersonRef],
    ) -> Result<Plan, EngineError> {
        let wf = self.workflow_of(version).await?;
        let start = NaiveDate::parse_from_str(&round.start_date, "%Y-%m-%d")
            .map_err(|_| EngineError::NotFound(format!("start date of round {}", round.id)))?;
        let cat = self.catalog();
        let (p, problems) = crate::core::plan::plan(crate::core::plan::PlanInput {
            workflow: &wf,
            directory: &cat.directory,
            calendar: &cat.calendar,
            tz: crate::core::validate::workflow_tz(&wf, cat.config.tz()),
            start,
            params: &round.params,
            units: Some(units),
            done: None,
            events: None,
            people: Some(people),
        });
        p.ok_or(EngineError::Plan {
            workflow: wf.id.value.clone(),
            problems,
        })
    }
}

/// What changed between two plans of the same round (e.g. of two workflow versions at the
/// same start date): stage windows, deadlines per assignee, and every timer.
pub fn diff_plans(old: &Plan, new: &Plan) -> Vec<Change> {
    let mut a: BTreeMap<String, (String, String, Option<DateTime<Utc>>)> = BTreeMap::new();
    let mut b = a.clone();
    for (plan, map) in [(old, &mut a), (new, &mut b)] {
        for s in &plan.stages {
            map.insert(
                format!("stage:{}/open", s.id),
                (
                    "stage_open".into(),
                    s.title.clone(),
                    s.opens.at.map(|x| x.with_timezone(&Utc)),
                ),
            );
            map.insert(
                format!("stage:{}/close", s.id),
                (
                    "stage_close".into(),
                    s.title.clone(),
                    s.closes.at.map(|x| x.with_timezone(&Utc)),
                ),
            );
        }
        for t in &plan.tasks {
            map.insert(
                t.key.clone(),
                (
                    "task".into(),
                    t.assignee.name.clone(),
                    t.due.at.map(|x| x.with_timezone(&Utc)),
                ),
            );
        }
        for t in plan.timers.iter().filter(|t| t.task.is_some()) {
            let kind = t.kind.to_string();
            let who = t
                .recipient
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_default();
            map.insert(t.key.clone(), (kind, who, Some(t.at.with_timezone(&Utc))));
        }
    }
    let mut out = Vec::new();
    for (k, (what, who, at)) in &a {
        match b.get(k) {
            None => out.push(Change {
                change: "vanishes",
                what: what.clone(),
                key: k.clone(),
                who: who.clone(),
                old: *at,
                new: None,
            }),
            Some((_, _, at2)) if at2 != at => out.push(Change {
                change: "moved",
                what: what.clone(),
                key: k.clone(),
                who: who.clone(),
                old: *at,
                new: *at2,
            }),
            Some(_) => {}
        }
    }
    for (k, (what, who, at)) in &b {
        if !a.contains_key(k) {
            out.push(Change {
                change: "appears",
                what: what.clone(),
                key: k.clone(),
                who: who.clone(),
                old: None,
                new: *at,
            });
        }
    }
    out.sort_by(|x, y| (&x.key, x.change).cmp(&(&y.key, y.change)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(text: &str) -> crate::core::definition::Workflow {
        let mut d = crate::core::diagnostic::Diagnostics::new("t.yaml");
        let w = crate::core::yaml::parse(text, &mut d).expect("parses");
        assert!(!d.has_errors(), "{:?}", d.items());
        w
    }

    const V1: &str = "id: t\ntitle: 测试\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 5}\n    tasks:\n      - id: a\n        title: 任务甲\n        description: 说明一\n        assignee: {group: branches}\n        due: {from: stage_close}\n      - id: b\n        title: 任务乙\n        assignee: {group: branches}\n        due: {from: stage_close}\n";

    #[test]
    fn text_diff_reports_titles_descriptions_and_templates_but_not_removed_tasks() {
        let v2 = V1
            .replace("title: 任务甲", "title: 任务甲（修订）")
            .replace("description: 说明一", "description: 说明二")
            .replace(
                "      - id: b\n        title: 任务乙\n        assignee: {group: branches}\n        due: {from: stage_close}\n",
                "",
            )
            + "templates:\n  reminder:\n    subject: 【提醒】{{ task.title }}\n    text: 请按时完成。\n";
        let got = diff_texts(&wf(V1), &wf(&v2));
        let rows: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| (c.change, c.what, c.key.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("changed", "description", "task:a"),
                ("changed", "title", "task:a"),
                ("appears", "template", "templates.reminder.subject"),
                ("appears", "template", "templates.reminder.text"),
            ]
        );
        assert_eq!(got[1].old.as_deref(), Some("任务甲"));
        assert_eq!(got[1].new.as_deref(), Some("任务甲（修订）"));
        assert_eq!(
            got[1].line(),
            format!(
                "  changed  title       {:<45} 「任务甲」 → 「任务甲（修订）」",
                "task:a"
            )
        );
        assert!(diff_texts(&wf(V1), &wf(V1)).is_empty());
    }
}
