//! `yanzhen simulate SCENARIO`: one round run from date A to date B under a virtual clock,
//! through the same engine, store (in-memory SQLite) and scheduler step as `serve`.
//!
//! The scenario file format is described in docs/simulate.md; [`load`] checks a file
//! against the catalog and reports all its problems at once, as `validate` does for
//! workflows.

use crate::catalog::Catalog;
use crate::core::diagnostic::{Diagnostics, Sp, suggest};
use crate::core::timefmt::zh_datetime;
use crate::engine::{Engine, EngineError, StartRound, from_ms, ms};
use crate::runtime::clock::{Clock, VirtualClock};
use crate::store::OutboxRow;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A scenario file as written: every value with its position, for [`load`].
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Workflow id.
    pub workflow: Sp<String>,
    /// Round start date.
    pub start: Sp<NaiveDate>,
    /// Simulate until the end of this date.
    pub until: Sp<NaiveDate>,
    /// Parameter overrides.
    #[serde(default)]
    pub params: Option<Sp<BTreeMap<String, String>>>,
    /// Only these branches take part; every department still does unless `only_listed`.
    #[serde(default)]
    pub branches: Option<Vec<Sp<String>>>,
    /// With `branches`: leave out the departments not listed too.
    #[serde(default)]
    pub only_listed: bool,
    /// Tasks marked done, and when.
    #[serde(default)]
    pub completions: Vec<Sp<CompletionFile>>,
}

/// A completion as written in a scenario file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CompletionFile {
    /// Task id.
    pub task: Sp<String>,
    /// Unit id or role id of the assignee.
    pub assignee: Sp<String>,
    /// Local time `YYYY-MM-DDTHH:MM` in the workflow's time zone.
    pub at: Sp<String>,
}

/// Parse and check a scenario file against the catalog, reporting every problem at once:
/// values of the wrong form, an unknown workflow, parameter, branch, task or assignee, a
/// completion time that is not `YYYY-MM-DDTHH:MM`, an `until` before `start`. The scenario
/// is returned only when there is no error.
pub fn load(file: &str, text: &str, catalog: &Catalog) -> (Option<Scenario>, Diagnostics) {
    let mut d = Diagnostics::new(file);
    let (sf, gaps) = crate::core::yaml::parse_partial::<ScenarioFile>(text, &mut d);
    let Some(sf) = sf else {
        return (None, d);
    };
    let before = d.items().len();
    let scenario = check(&sf, catalog, &mut d);
    d.retain_from(before, |x| !gaps.covers(x));
    if d.has_errors() || !gaps.is_empty() {
        (None, d)
    } else {
        (Some(scenario), d)
    }
}

fn check(sf: &ScenarioFile, catalog: &Catalog, d: &mut Diagnostics) -> Scenario {
    let dir = &catalog.directory;
    let units = sf.branches.as_ref().map(|b| {
        let listed: Vec<String> = b.iter().map(|u| u.value.clone()).collect();
        for u in b {
            for (id, hint) in dir.unknown_units(std::slice::from_ref(&u.value)) {
                d.error(
                    "unknown-reference",
                    u.loc,
                    format!("no unit `{id}` in the directory"),
                    Some(hint),
                );
            }
        }
        dir.round_units(&listed, sf.only_listed)
    });
    if sf.until.value < sf.start.value {
        d.error(
            "invalid-value",
            sf.until.loc,
            format!(
                "`until` ({}) is before `start` ({})",
                sf.until.value, sf.start.value
            ),
            Some("the simulation runs from `start` to the end of `until`".into()),
        );
    }
    let params: BTreeMap<String, String> = sf
        .params
        .as_ref()
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let wf = catalog
        .workflows
        .get(&sf.workflow.value)
        .map(|w| &w.workflow);
    let Some(wf) = wf else {
        let ids: Vec<&str> = catalog.workflows.keys().map(String::as_str).collect();
        d.error(
            "unknown-reference",
            sf.workflow.loc,
            format!("no valid workflow `{}`", sf.workflow.value),
            Some(suggest(&sf.workflow.value, ids.iter().copied())),
        );
        return scenario(sf, params, units);
    };
    let tz = crate::core::validate::workflow_tz(wf, catalog.config.tz());
    if let Some(p) = &sf.params {
        let known: Vec<&str> = wf.parameters.iter().map(|x| x.id.value.as_str()).collect();
        for name in p.value.keys().filter(|n| !known.contains(&n.as_str())) {
            d.error(
                "unknown-parameter",
                p.loc,
                format!("workflow `{}` has no parameter `{name}`", wf.id.value),
                Some(suggest(name, known.iter().copied())),
            );
        }
    }
    // The round's task instances, to check each completion names one (unknown parameters
    // are reported above, not again by the planner).
    let known_params: BTreeMap<String, String> = params
        .iter()
        .filter(|(k, _)| wf.parameter(k).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (plan, _) = crate::core::plan::plan(crate::core::plan::PlanInput {
        workflow: wf,
        directory: dir,
        calendar: &catalog.calendar,
        tz,
        start: sf.start.value,
        params: &known_params,
        units: units.as_deref(),
        done: None,
    });
    let keys: Option<BTreeSet<&str>> = plan
        .as_ref()
        .map(|p| p.tasks.iter().map(|t| t.key.as_str()).collect());
    let task_ids: Vec<&str> = wf.tasks().map(|(_, t)| t.id.value.as_str()).collect();
    let (first, last) = (
        sf.start.value.and_hms_opt(0, 0, 0),
        sf.until.value.and_hms_opt(23, 59, 59),
    );
    for c in &sf.completions {
        let c = &c.value;
        match NaiveDateTime::parse_from_str(c.at.value.trim(), "%Y-%m-%dT%H:%M") {
            Err(_) => d.error(
                "invalid-value",
                c.at.loc,
                format!("completion time `{}` is not YYYY-MM-DDTHH:MM", c.at.value),
                Some(
                    "write the local time in the workflow's time zone, e.g. \"2019-07-11T09:30\""
                        .into(),
                ),
            ),
            Ok(t) if first.is_some_and(|f| t < f) || last.is_some_and(|l| t > l) => d.warning(
                "outside-simulation",
                c.at.loc,
                format!(
                    "completion time `{}` is outside {} … {}: it is never applied",
                    c.at.value, sf.start.value, sf.until.value
                ),
                Some("move it between `start` and `until`, or widen them".into()),
            ),
            Ok(_) => {}
        }
        if !task_ids.contains(&c.task.value.as_str()) {
            d.error(
                "unknown-reference",
                c.task.loc,
                format!("workflow `{}` has no task `{}`", wf.id.value, c.task.value),
                Some(suggest(&c.task.value, task_ids.iter().copied())),
            );
            continue;
        }
        let Some(keys) = &keys else { continue };
        let unit = format!("{}@{}", c.task.value, c.assignee.value);
        let role = format!("{}@role:{}", c.task.value, c.assignee.value);
        if !keys.contains(unit.as_str()) && !keys.contains(role.as_str()) {
            let prefix = format!("{}@", c.task.value);
            let who: Vec<&str> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(prefix.as_str()))
                .map(|a| a.strip_prefix("role:").unwrap_or(a))
                .collect();
            d.error(
                "unknown-reference",
                c.assignee.loc,
                format!(
                    "task `{}` has no instance for `{}` in this round",
                    c.task.value, c.assignee.value
                ),
                Some(suggest(&c.assignee.value, who.iter().copied())),
            );
        }
    }
    scenario(sf, params, units)
}

fn scenario(
    sf: &ScenarioFile,
    params: BTreeMap<String, String>,
    units: Option<Vec<String>>,
) -> Scenario {
    Scenario {
        workflow: sf.workflow.value.clone(),
        start: sf.start.value,
        until: sf.until.value,
        params,
        branches: units,
        completions: sf
            .completions
            .iter()
            .map(|c| Completion {
                task: c.task.value.clone(),
                assignee: c.assignee.value.clone(),
                at: c.at.value.trim().to_string(),
            })
            .collect(),
    }
}

/// A scenario, checked: what [`run`] runs.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Scenario {
    /// Workflow id.
    pub workflow: String,
    /// Round start date.
    pub start: NaiveDate,
    /// Simulate until the end of this date.
    pub until: NaiveDate,
    /// Parameter overrides.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Only these units take part (departments already added, see [`load`]).
    #[serde(default)]
    pub branches: Option<Vec<String>>,
    /// Tasks marked done, and when.
    #[serde(default)]
    pub completions: Vec<Completion>,
}

/// A task marked done in a scenario.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Completion {
    /// Task id.
    pub task: String,
    /// Unit id or role id of the assignee.
    pub assignee: String,
    /// Local time `YYYY-MM-DDTHH:MM` in the workflow's time zone.
    pub at: String,
}

/// One thing that happened, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effect {
    /// When.
    pub at: DateTime<Utc>,
    /// `notify`, `complete` or `stage`.
    pub what: String,
    /// Notification kind (`reminder`, `escalation` ...), task key, or `stage_open` /
    /// `stage_close`.
    pub kind: String,
    /// Channel (`email`, `webhook`, `log`), for notifications.
    pub channel: String,
    /// Recipient address or name.
    pub recipient: String,
    /// Subject or description.
    pub text: String,
}

impl Effect {
    /// The effect as a line: instant (Chinese), what, channel, recipient, text.
    pub fn line(&self, tz: chrono_tz::Tz) -> String {
        if self.what == "stage" {
            let label = if self.kind == "stage_open" {
                "阶段开始"
            } else {
                "阶段结束"
            };
            return format!(
                "{}  {label}  {}",
                zh_datetime(&self.at.with_timezone(&tz)),
                self.text
            );
        }
        let label = match (self.what.as_str(), self.kind.as_str()) {
            ("complete", _) => "完成",
            (_, "reminder") => "提醒",
            (_, "deadline") => "截止",
            (_, "due_today") => "今日截止",
            (_, "digest") => "汇总",
            (_, "overdue") => "逾期催办",
            (_, "escalation") => "逐级上报",
            (_, "kickoff") => "启动通知",
            _ => "通知",
        };
        format!(
            "{}  {:<4}  {:<7} {}  {}",
            zh_datetime(&self.at.with_timezone(&tz)),
            label,
            self.channel,
            self.recipient,
            self.text
        )
    }
}

/// Outbox rows as effects.
pub fn notifications(rows: &[OutboxRow]) -> Vec<Effect> {
    rows.iter()
        .map(|r| Effect {
            at: from_ms(r.created_at),
            what: "notify".into(),
            kind: r.kind.to_string(),
            channel: r.channel.to_string(),
            recipient: r.address.clone(),
            text: r.subject.clone(),
        })
        .collect()
}

/// Simulation failures.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The scenario is wrong.
    #[error("scenario: {0}")]
    Scenario(String),
}

fn local(tz: chrono_tz::Tz, naive: NaiveDateTime) -> Result<DateTime<Utc>, SimulateError> {
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| SimulateError::Scenario(format!("{naive} does not exist in {tz}")))
}

/// Run a scenario to the end and return every effect in order.
pub async fn run(scenario: &Scenario, catalog: Catalog) -> Result<Vec<Effect>, SimulateError> {
    let tz = catalog
        .workflows
        .get(&scenario.workflow)
        .map(|w| crate::core::validate::workflow_tz(&w.workflow, catalog.config.tz()))
        .unwrap_or(catalog.config.tz());
    let mut completions = Vec::new();
    for c in &scenario.completions {
        let naive = NaiveDateTime::parse_from_str(&c.at, "%Y-%m-%dT%H:%M").map_err(|_| {
            SimulateError::Scenario(format!(
                "completion time `{}` is not YYYY-MM-DDTHH:MM",
                c.at
            ))
        })?;
        completions.push((local(tz, naive)?, c.clone()));
    }
    completions.sort_by_key(|(t, _)| *t);
    let begin = local(tz, scenario.start.and_hms_opt(0, 0, 0).unwrap_or_default())?;
    let end = local(
        tz,
        scenario.until.and_hms_opt(23, 59, 59).unwrap_or_default(),
    )?;
    let clock = Arc::new(VirtualClock::new(begin));
    let store = crate::store::open("sqlite::memory:").await?;
    store.migrate().await?;
    let engine = Engine::new(store.clone(), catalog, clock.clone(), "simulate");
    engine.register_workflows().await?;
    let round = engine
        .start_round(StartRound {
            workflow: scenario.workflow.clone(),
            start: scenario.start,
            params: scenario.params.clone(),
            units: scenario.branches.clone(),
            actor: "simulate".into(),
        })
        .await?;
    let tag = store.round(round).await?.map(|r| r.tag).unwrap_or_default();
    let stage_titles: BTreeMap<String, String> = engine
        .catalog()
        .workflows
        .get(&scenario.workflow)
        .map(|w| {
            w.workflow
                .stages
                .iter()
                .map(|s| (s.id.value.clone(), s.title.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut effects = Vec::new();
    let mut seen = 0i64;
    let mut stages_seen: BTreeSet<i64> = BTreeSet::new();
    let mut pending = completions.into_iter().peekable();
    loop {
        crate::runtime::scheduler::step(&engine).await;
        // Stage openings and closings: their timers fire without a message.
        for t in store.timers_with_prefix(&format!("{tag}/stage:")).await? {
            if t.state != crate::core::state::TimerState::Fired || !stages_seen.insert(t.id) {
                continue;
            }
            let id = t
                .key
                .rsplit_once("/stage:")
                .and_then(|(_, rest)| rest.rsplit_once('/'))
                .map_or("", |(id, _)| id);
            effects.push(Effect {
                at: from_ms(t.due_at),
                what: "stage".into(),
                kind: t.kind.to_string(),
                channel: String::new(),
                recipient: String::new(),
                text: match stage_titles.get(id) {
                    Some(title) => format!("{title}（{id}）"),
                    None => id.to_string(),
                },
            });
        }
        let rows = store.outbox_after(seen, i64::MAX).await?;
        seen = rows.last().map_or(seen, |r| r.id);
        effects.extend(notifications(&rows));
        let next_timer = engine.next_due_at().await?;
        let next_completion = pending.peek().map(|(t, _)| *t);
        let next = match (next_timer, next_completion) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(x) => x,
                None => break,
            },
        };
        if next > end {
            break;
        }
        clock.set(next.max(clock.now()));
        while let Some((t, c)) = pending.next_if(|(t, _)| *t <= clock.now()) {
            let key_unit = format!("{}@{}", c.task, c.assignee);
            let key_role = format!("{}@role:{}", c.task, c.assignee);
            let task = match store.task_by_key(round, &key_unit).await? {
                Some(t) => t,
                None => store.task_by_key(round, &key_role).await?.ok_or_else(|| {
                    SimulateError::Scenario(format!("no task `{key_unit}` in the round"))
                })?,
            };
            engine.complete_task(task.id, "simulate", None).await?;
            effects.push(Effect {
                at: t,
                what: "complete".into(),
                kind: task.key.clone(),
                channel: String::new(),
                recipient: task.assignee_name.clone(),
                text: task.title.clone(),
            });
        }
    }
    // In order of their instants; what happened at the same instant keeps its order.
    effects.sort_by_key(|e| ms(e.at));
    Ok(effects)
}
