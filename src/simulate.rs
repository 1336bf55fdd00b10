//! `yanzhen simulate SCENARIO`: one round run from date A to date B under a virtual clock,
//! through the same engine, store (in-memory SQLite) and scheduler step as `serve`.

use crate::catalog::Catalog;
use crate::clock::{Clock, VirtualClock};
use crate::engine::{Engine, EngineError, StartRound, from_ms};
use crate::store::OutboxRow;
use crate::timefmt::zh_datetime;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A scenario file.
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
    /// Only these units take part.
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
    /// `notify`, `complete` or `kickoff`.
    pub what: String,
    /// Notification kind (`reminder`, `escalation` ...) or task key.
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
        let label = match (self.what.as_str(), self.kind.as_str()) {
            ("complete", _) => "完成",
            (_, "reminder") => "提醒",
            (_, "deadline") => "截止",
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
            kind: r.kind.clone(),
            channel: r.channel.clone(),
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
        .map(|w| crate::validate::workflow_tz(&w.workflow, catalog.config.tz()))
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
    let mut effects = Vec::new();
    let mut seen = 0i64;
    let mut pending = completions.into_iter().peekable();
    loop {
        crate::scheduler::step(&engine).await;
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
    Ok(effects)
}
