//! Read models: a round's progress report, the kickoffs that are owed but blocked, and
//! plans of stored workflow versions (for `workflow diff`).

use super::round::round_plan;
use super::{
    BLOCKED_NOT_LOADED, BLOCKED_PLAN_FAILED, Engine, EngineError, Result, from_ms, is_overdue, ms,
};
use crate::core::definition::Workflow;
use crate::core::plan::Plan;
use crate::core::state::TaskState;
use crate::store::{RoundRow, TaskRow, TimerRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a kickoff is blocked, for the office (Chinese).
pub fn blocked_reason_zh(reason: &str) -> &'static str {
    match reason {
        BLOCKED_NOT_LOADED => "该工作流当前未加载：工作流文件未通过校验或已被删除",
        BLOCKED_PLAN_FAILED => "该工作流无法排出本轮日程",
        _ => "原因未知",
    }
}

/// A scheduled round that is owed but could not start yet.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedKickoff {
    /// Workflow id.
    pub workflow: String,
    /// The instant the round was scheduled for (its start date).
    pub scheduled: DateTime<Utc>,
    /// [`BLOCKED_NOT_LOADED`] or [`BLOCKED_PLAN_FAILED`].
    pub reason: String,
    /// The reason in Chinese.
    pub reason_zh: String,
    /// The planner's error, if that was the reason.
    pub error: Option<String>,
    /// When it first failed.
    pub since: DateTime<Utc>,
    /// When it is tried again (at once after a reload that loads the workflow).
    pub retry_at: DateTime<Utc>,
}

/// Progress of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageProgress {
    /// Stage id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Opening instant.
    pub opens: Option<DateTime<Utc>>,
    /// Closing instant.
    pub closes: Option<DateTime<Utc>>,
    /// The opening was counted over a year without a holiday file.
    pub opens_provisional: bool,
    /// The closing was counted over a year without a holiday file.
    pub closes_provisional: bool,
    /// Task instances in this stage that are still owed or settled (cancelled ones, e.g. of
    /// a branch removed from the round, are left out).
    pub total: usize,
    /// Done or waived.
    pub done: usize,
    /// Open and past due.
    pub overdue: usize,
}

/// A round's status report.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The round.
    pub round: RoundRow,
    /// Workflow title.
    pub title: String,
    /// Per stage.
    pub stages: Vec<StageProgress>,
    /// Open tasks past their deadline.
    pub overdue: Vec<TaskRow>,
    /// Waiting tasks whose prerequisites are all done or waived: stuck, something is wrong
    /// (the office should look, e.g. at an activation that could not be planned).
    pub stuck: Vec<TaskRow>,
    /// The next pending timers.
    pub next: Vec<TimerRow>,
}

impl Engine {
    /// Scheduled rounds that are owed but could not start (their kickoff waits for a retry).
    pub async fn blocked_kickoffs(&self) -> Result<Vec<BlockedKickoff>> {
        let mut out = Vec::new();
        for t in self.store.timers_with_prefix("kickoff:").await? {
            if !t.state.is_live() {
                continue;
            }
            let p = t.payload;
            let (Some(reason), Some(scheduled)) = (p.blocked, p.scheduled_ms) else {
                continue;
            };
            out.push(BlockedKickoff {
                workflow: p.workflow.unwrap_or_default(),
                scheduled: from_ms(scheduled),
                reason_zh: blocked_reason_zh(&reason).to_string(),
                reason,
                error: p.error,
                since: from_ms(p.blocked_since.unwrap_or(t.due_at)),
                retry_at: from_ms(t.due_at),
            });
        }
        Ok(out)
    }

    async fn replan(
        &self,
        round: &RoundRow,
        done: Option<&BTreeMap<String, DateTime<Utc>>>,
    ) -> Result<Plan> {
        let wf = self.workflow_of(round.version_id).await?;
        let tasks = self.store.tasks(round.id).await?;
        round_plan(&self.catalog(), &wf, round, &tasks, done, None)
    }

    /// Plan a workflow source (a stored version) with the current catalog, at `start_from`'s
    /// example start (or today), for `workflow diff`.
    pub async fn plan_source(&self, source: &str, start_from: Option<&str>) -> Result<Plan> {
        let mut d = crate::core::diagnostic::Diagnostics::new("version");
        let wf = crate::core::yaml::parse::<Workflow>(source, &mut d)
            .ok_or(EngineError::BadVersion(0))?;
        let start_wf = match start_from {
            Some(src) => crate::core::yaml::parse::<Workflow>(src, &mut d),
            None => None,
        };
        let cat = self.catalog();
        let today = self
            .clock
            .now()
            .with_timezone(&cat.config.tz())
            .date_naive();
        let start = start_wf
            .as_ref()
            .or(Some(&wf))
            .and_then(|w| w.example_start.as_ref().map(|s| s.value))
            .unwrap_or(today);
        self.plan_round(&wf, start, &BTreeMap::new(), None).await
    }

    /// Progress of a round: per stage, overdue tasks, what fires next.
    pub async fn status(&self, round_id: i64) -> Result<RoundReport> {
        let round = self
            .store
            .round(round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {round_id}")))?;
        let wf = self.workflow_of(round.version_id).await?;
        let now = ms(self.clock.now());
        let tasks = self.store.tasks(round_id).await?;
        let p = self.replan(&round, None).await.ok();
        let stages = wf
            .stages
            .iter()
            .map(|s| {
                let mine: Vec<&TaskRow> = tasks
                    .iter()
                    .filter(|t| t.stage == s.id.value && t.state != TaskState::Cancelled)
                    .collect();
                let window = p
                    .as_ref()
                    .and_then(|p| p.stages.iter().find(|x| x.id == s.id.value));
                StageProgress {
                    id: s.id.value.clone(),
                    title: s.title.clone(),
                    opens: window
                        .and_then(|w| w.opens.at)
                        .map(|a| a.with_timezone(&Utc)),
                    closes: window
                        .and_then(|w| w.closes.at)
                        .map(|a| a.with_timezone(&Utc)),
                    opens_provisional: window.is_some_and(|w| w.opens.provisional),
                    closes_provisional: window.is_some_and(|w| w.closes.provisional),
                    total: mine.len(),
                    done: mine.iter().filter(|t| t.state.is_settled()).count(),
                    overdue: mine.iter().filter(|t| is_overdue(t, now)).count(),
                }
            })
            .collect();
        let overdue = tasks
            .iter()
            .filter(|t| is_overdue(t, now))
            .cloned()
            .collect();
        let ready: Vec<i64> = crate::engine::activation::ready(&wf, &tasks, now)
            .into_iter()
            .map(|r| r.id)
            .collect();
        let stuck = tasks
            .iter()
            .filter(|t| ready.contains(&t.id))
            .cloned()
            .collect();
        let next = self.store.pending_timers(Some(round_id), 10).await?;
        Ok(RoundReport {
            title: wf.title.clone(),
            round,
            stages,
            overdue,
            stuck,
            next,
        })
    }
}
