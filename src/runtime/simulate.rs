//! `yanzhen simulate SCENARIO`: one round run from date A to date B under a virtual clock,
//! through the app `serve` builds (engine, outbox in log mode) over an in-memory SQLite
//! store, driven by the same driver: it lists the messages `serve` would send, digests
//! merged, at the instants it would send them.
//!
//! The scenario file format is described in docs/simulate.md; [`load`] checks a file
//! against the catalog and reports all its problems at once, as `validate` does for
//! workflows.

use crate::catalog::Catalog;
use crate::config::DeliveryMode;
use crate::core::diagnostic::{Diagnostics, Sp, suggest};
use crate::core::timefmt::zh_datetime;
use crate::engine::{EngineError, Fired, StartRound, from_ms, ms};
use crate::notify::outbox::Sent;
use crate::runtime::app::{App, AppError, AppOptions};
use crate::runtime::clock::VirtualClock;
use crate::runtime::driver::DriverError;
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
        events: None,
        people: None,
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

/// Messages sent, as effects (at the instant each went out).
pub fn notifications(sent: &[Sent]) -> Vec<Effect> {
    sent.iter()
        .map(|m| Effect {
            at: m.at,
            what: "notify".into(),
            kind: m.kind.clone(),
            channel: m.channel.clone(),
            recipient: m.recipient.clone(),
            text: m.subject.clone(),
        })
        .collect()
}

/// Stage openings and closings among fired timers, as effects (their timers fire without a
/// message). `titles` maps stage ids to titles.
pub fn stage_effects(fired: &[Fired], titles: &BTreeMap<String, String>) -> Vec<Effect> {
    fired
        .iter()
        .filter_map(|f| {
            // Planned keys are `stage:ID/open` and `stage:ID/close` after the round's tag.
            let (_, rest) = f.timer.key.rsplit_once("/stage:")?;
            let (id, edge) = rest.rsplit_once('/')?;
            let kind = match edge {
                "open" => "stage_open",
                "close" => "stage_close",
                _ => return None,
            };
            Some(Effect {
                at: from_ms(f.timer.due_at),
                what: "stage".into(),
                kind: kind.into(),
                channel: String::new(),
                recipient: String::new(),
                text: match titles.get(id) {
                    Some(title) => format!("{title}（{id}）"),
                    None => id.to_string(),
                },
            })
        })
        .collect()
}

/// Put effects in the order of their instants; at one instant stages first, then
/// completions (each kept in the order it happened), then messages by recipient, channel
/// and subject (messages of one instant go out concurrently, in no fixed order).
pub fn sort_effects(effects: &mut [Effect]) {
    effects.sort_by(|a, b| {
        let rank = |e: &Effect| match e.what.as_str() {
            "stage" => 0,
            "complete" => 1,
            _ => 2,
        };
        let key = |e: &Effect| {
            let (at, r) = (ms(e.at), rank(e));
            if r == 2 {
                (
                    at,
                    r,
                    e.recipient.clone(),
                    e.channel.clone(),
                    e.text.clone(),
                )
            } else {
                (at, r, String::new(), String::new(), String::new())
            }
        };
        key(a).cmp(&key(b))
    });
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
    /// The app could not be built.
    #[error(transparent)]
    App(#[from] AppError),
    /// Driving time failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
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

/// Run a scenario to the end and return every effect in order: the app `serve` builds, over
/// an in-memory SQLite store with a virtual clock and the outbox in log mode, driven by the
/// same [`Driver`](crate::runtime::driver::Driver); the messages listed are those the outbox
/// sent (one per digest), not the rows queued.
pub async fn run(scenario: &Scenario, mut catalog: Catalog) -> Result<Vec<Effect>, SimulateError> {
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
    let stage_titles: BTreeMap<String, String> = catalog
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
    // Nothing leaves the process: every message goes to the log, as `mode = "log"` would.
    catalog.config.notify.mode = DeliveryMode::Log;
    let clock = Arc::new(VirtualClock::new(begin));
    let store = crate::store::open("sqlite::memory:").await?;
    store.migrate().await?;
    let (tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let app = App::build(
        catalog,
        store.clone(),
        clock.clone(),
        AppOptions {
            observer: Some(tx),
            ..AppOptions::new("simulate")
        },
    )
    .await?;
    let (engine, driver) = (&app.engine, &app.driver);
    let round = engine
        .start_round(StartRound {
            workflow: scenario.workflow.clone(),
            start: scenario.start,
            params: scenario.params.clone(),
            units: scenario.branches.clone(),
            actor: "simulate".into(),
        })
        .await?;
    let mut effects = Vec::new();
    let mut fired = Vec::new();
    for (t, c) in completions {
        if t > end {
            break;
        }
        // A completion at an instant comes before what is due then (the person was first).
        fired.extend(driver.run_before(&clock, t).await?);
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
    fired.extend(driver.run_until(&clock, end).await?);
    effects.extend(stage_effects(&fired, &stage_titles));
    let mut messages = Vec::new();
    while let Ok(m) = sent.try_recv() {
        messages.push(m);
    }
    effects.extend(notifications(&messages));
    sort_effects(&mut effects);
    Ok(effects)
}
