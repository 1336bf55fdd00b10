//! The planner: turns (workflow, directory, calendar, start, parameters) into the dated
//! stages, task instances and timers of one round.
//!
//! Architecture Invariant: pure. No I/O and no clock reads; everything, including the
//! round's start, is passed in. `plan`, `validate`, the daemon and `simulate` all call
//! [`plan`], so a timeline shown to an administrator is the one the daemon will run.

mod dating;
mod fanout;
mod params;
#[cfg(test)]
mod tests;

use crate::core::calendar::{Calendar, Roll};
use crate::core::definition::{Rung, Task, TimeOfDay, Workflow};
use crate::core::diagnostic::{Loc, Severity, Sp};
use crate::core::directory::{Directory, Party};
use crate::core::state::AssigneeKind;
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use params::ParamValue;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The largest `reminders.overdue.max` a workflow may set.
pub const MAX_OVERDUE_REMINDERS: u32 = 1000;

/// How many dates one date may depend on through a chain of anchors.
pub const MAX_DATE_CHAIN: usize = 100;

/// Everything a round's plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The workflow version being run.
    pub workflow: &'a Workflow,
    /// Who the tasks fan out to.
    pub directory: &'a Directory,
    /// Working days.
    pub calendar: &'a Calendar,
    /// Time zone of every wall-clock time in the workflow.
    pub tz: Tz,
    /// The round's start date.
    pub start: NaiveDate,
    /// Parameter values given for this round (`--param k=v`), as text.
    pub params: &'a BTreeMap<String, String>,
    /// Only these units take part (None: every member of each group).
    pub units: Option<&'a [String]>,
    /// Tasks already completed, by task id: `from: {done: id}` counts from this instant
    /// instead of projecting from the task's deadline.
    pub done: Option<&'a BTreeMap<String, DateTime<chrono::Utc>>>,
    /// Outside events that happened, by event id: `from: {event: id}` counts from this
    /// instant (one occurrence; the engine plans each occurrence's task on its own).
    pub events: Option<&'a BTreeMap<String, DateTime<chrono::Utc>>>,
    /// The people of the pool a task `{each: …}` is made for (those in the pool on the day
    /// the round starts, or a running round's own), already filtered by the round's units
    /// (`units` does not apply to them); None: no per-person task is planned.
    pub people: Option<&'a [PersonRef]>,
}

/// A person a task is made for, as the planner, the task row and messages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PersonRef {
    /// `people.id`.
    pub id: i64,
    /// Name (姓名).
    pub name: String,
    /// The person's branch: a unit id of the directory.
    pub unit: String,
    /// Tier (梯队) 1–4.
    pub tier: u8,
}

/// Whether a task `{each: …}` is made for a person: of a tier it names (or of any) and,
/// when it goes to the person's own branch, of a unit the directory has.
pub fn each_takes(
    each: &crate::core::definition::EachPerson,
    p: &PersonRef,
    directory: &Directory,
) -> bool {
    (each.tier.is_empty() || each.tier.contains(&p.tier))
        && (each.to_role.is_some() || directory.unit(&p.unit).is_some())
}

/// The ids of the tasks `{each: …}` of a workflow that at least one of `people` gets: what
/// a round planned slice by slice ([`plan_people`]) has of them, known before any slice is.
pub fn each_tasks_present(
    workflow: &Workflow,
    directory: &Directory,
    people: &[PersonRef],
) -> std::collections::HashSet<String> {
    workflow
        .tasks()
        .filter_map(|(_, t)| match &t.assignee.value {
            crate::core::definition::Assignee::Each(each)
                if people.iter().any(|p| each_takes(each, p, directory)) =>
            {
                Some(t.id.value.clone())
            }
            _ => None,
        })
        .collect()
}

/// A problem met while planning, positioned in the workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: &'static str,
    /// Where in the workflow file.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// When something happens in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moment {
    /// The instant; None when it waits for an outside event.
    pub at: Option<DateTime<Tz>>,
    /// True when the instant assumes an earlier task is completed exactly at its deadline.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub projected: bool,
    /// True when the instant was counted over a day of the provisional calendar year
    /// (no holiday file yet), so it may move when the file is added.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
    /// The outside event this waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// For an event: how long after it (e.g. "10个工作日").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

/// A stage window.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    /// Stage id.
    pub id: String,
    /// Stage title.
    pub title: String,
    /// When it opens.
    pub opens: Moment,
    /// When it closes.
    pub closes: Moment,
}

/// One task for one assignee.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTask {
    /// Unique key within the round: `task@unit` or `task@role:id`, for a person's task
    /// followed by `/pID`.
    pub key: String,
    /// Task id.
    pub task: String,
    /// Task title.
    pub title: String,
    /// Stage id.
    pub stage: String,
    /// Who must do it.
    pub assignee: Party,
    /// The deadline.
    pub due: Moment,
    /// The task this one waits for (`from: {done: ...}`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_done: Option<String>,
    /// The person a task `{each: …}` is made for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonRef>,
}

pub use crate::core::state::TimerKind;

/// One instant at which the daemon acts.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedTimer {
    /// Unique key within the round, stable across replans (the idempotency key's suffix).
    pub key: String,
    /// What happens.
    pub kind: TimerKind,
    /// When.
    pub at: DateTime<Tz>,
    /// True when it assumes an earlier task completes exactly at its deadline.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub projected: bool,
    /// True when it was counted over a day of the provisional calendar year.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
    /// Stage id.
    pub stage: String,
    /// Task instance key, for task timers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Who is told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Party>,
}

/// The whole dated timeline of one round.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Workflow id.
    pub workflow: String,
    /// Workflow title.
    pub title: String,
    /// Time zone name.
    pub timezone: String,
    /// Round start date.
    pub start: NaiveDate,
    /// Parameter values used.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Stage windows in order.
    pub stages: Vec<PlannedStage>,
    /// Task instances in workflow order, then assignee order.
    pub tasks: Vec<PlannedTask>,
    /// Timers sorted by instant, then key.
    pub timers: Vec<PlannedTimer>,
    /// The year without a holiday file that the instants marked `provisional` rest on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisional_year: Option<i32>,
    /// What each task with `submit:` asks for, resolved for this round.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub asks: Vec<crate::core::submission::Asks>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Point {
    Open(usize),
    Close(usize),
    Due(usize),
}

#[derive(Debug, Clone)]
enum State {
    Visiting,
    Done(Option<Moment>),
}

/// The length of an offset, resolved.
#[derive(Debug, Clone, Copy)]
enum Len {
    Days(i64),
    WorkingDays(i64),
    Hours(i64),
}

struct Planner<'a> {
    input: PlanInput<'a>,
    tasks: Vec<(usize, &'a Task)>,
    params: HashMap<String, ParamValue>,
    memo: HashMap<Point, State>,
    stack: Vec<Point>,
    problems: Vec<Problem>,
    due_at: TimeOfDay,
    opens_at: TimeOfDay,
    roll: Roll,
    /// Where the first instant counted over the provisional year was defined.
    provisional_at: Option<Loc>,
    /// Only the tasks `{each: …}` and their timers ([`plan_people`]).
    only_each: bool,
}

/// Plan one round. Returns the plan (None if any error) and every problem found.
pub fn plan(input: PlanInput<'_>) -> (Option<Plan>, Vec<Problem>) {
    plan_part(input, false)
}

/// Plan only the tasks `{each: …}` for `input.people` and their timers: one slice of a
/// round's people. A round with a task per person of a city's pool is planned as
/// [`plan`] with `people: Some(&[])` (stages, per-unit and per-role tasks) and then this
/// per slice of its people, so that the tasks and timers of 100,000 people are never
/// held at once; the union is what [`plan`] with every person gives (a task's dates do
/// not depend on its assignees). The plan's `stages` are filled in (the tasks need them)
/// but it has no stage timers.
pub fn plan_people(input: PlanInput<'_>) -> (Option<Plan>, Vec<Problem>) {
    plan_part(input, true)
}

fn plan_part(input: PlanInput<'_>, only_each: bool) -> (Option<Plan>, Vec<Problem>) {
    let wf = input.workflow;
    let mut p = Planner {
        input,
        tasks: wf.tasks().collect(),
        params: HashMap::new(),
        memo: HashMap::new(),
        stack: Vec::new(),
        problems: Vec::new(),
        due_at: wf.defaults.due_at.unwrap_or(TimeOfDay::hm(18, 0)),
        opens_at: wf.defaults.opens_at.unwrap_or(TimeOfDay::hm(9, 0)),
        roll: wf.defaults.if_non_working.unwrap_or(Roll::Keep),
        provisional_at: None,
        only_each,
    };
    p.resolve_params();
    let plan = p.build();
    let has_error = p.problems.iter().any(|x| x.severity == Severity::Error);
    (if has_error { None } else { plan }, p.problems)
}

impl<'a> Planner<'a> {
    fn error(&mut self, code: &'static str, loc: Loc, message: String, hint: Option<String>) {
        self.push(Severity::Error, code, loc, message, hint);
    }

    fn warning(&mut self, code: &'static str, loc: Loc, message: String, hint: Option<String>) {
        self.push(Severity::Warning, code, loc, message, hint);
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        loc: Loc,
        message: String,
        hint: Option<String>,
    ) {
        let p = Problem {
            severity,
            code,
            loc,
            message,
            hint,
        };
        if !self
            .problems
            .iter()
            .any(|q| q.code == p.code && q.loc == p.loc)
        {
            self.problems.push(p);
        }
    }
}

/// Where a task's escalation starts for one assignee: after the last rung addressed to the
/// assignee itself (telling 组织办 that 组织办 is late helps nobody, and the rungs listed
/// before it are below it), else at the first rung. Rungs go to roles, so a unit-assigned
/// task always starts at the first rung.
pub fn first_rung_above(chain: &[Sp<Rung>], assignee: &Party) -> usize {
    if assignee.kind != AssigneeKind::Role {
        return 0;
    }
    chain
        .iter()
        .rposition(|r| r.to.value == assignee.id)
        .map_or(0, |i| i + 1)
}

fn len_value(l: Len) -> i64 {
    match l {
        Len::Days(n) | Len::WorkingDays(n) | Len::Hours(n) => n,
    }
}

impl Plan {
    /// What the task with this id asks for, when it has `submit:`.
    pub fn asks_of(&self, task: &str) -> Option<&crate::core::submission::Asks> {
        self.asks.iter().find(|a| a.task == task)
    }

    /// A readable table (Chinese dates with weekday) of stages, tasks and timers.
    pub fn to_table(&self) -> String {
        use crate::core::timefmt::zh_datetime;
        use std::fmt::Write;
        let moment = |m: &Moment| match (&m.at, &m.event) {
            (Some(at), _) => format!(
                "{}{}{}",
                zh_datetime(at),
                if m.projected { "（预计）" } else { "" },
                crate::core::timefmt::provisional_mark(m.provisional)
            ),
            (None, Some(e)) => format!("事件「{e}」发生后{}", m.wait.as_deref().unwrap_or("")),
            (None, None) => "—".to_string(),
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}（{}）  起始 {}  时区 {}",
            self.title,
            self.workflow,
            crate::core::timefmt::zh_date(self.start),
            self.timezone
        );
        if !self.params.is_empty() {
            let ps: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "参数：{}", ps.join(", "));
        }
        let _ = writeln!(out, "\n阶段");
        for s in &self.stages {
            let _ = writeln!(
                out,
                "  {:<14} {}  {} — {}",
                s.id,
                s.title,
                moment(&s.opens),
                moment(&s.closes)
            );
        }
        let _ = writeln!(out, "\n任务（{} 项）", self.tasks.len());
        for t in &self.tasks {
            let _ = writeln!(
                out,
                "  {}  {}  {}  截止 {}",
                t.key,
                t.title,
                t.assignee.name,
                moment(&t.due)
            );
        }
        if !self.asks.is_empty() {
            let _ = writeln!(out, "\n提交要求");
            for a in &self.asks {
                let _ = writeln!(out, "  {}", a.task);
                for line in a.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        let _ = writeln!(out, "\n时间线（{} 个定时）", self.timers.len());
        for t in &self.timers {
            let who = t.recipient.as_ref().map(|r| r.name.as_str()).unwrap_or("");
            let _ = writeln!(
                out,
                "  {}{}{}  {:<6} {}  {}",
                zh_datetime(&t.at),
                if t.projected { "（预计）" } else { "" },
                crate::core::timefmt::provisional_mark(t.provisional),
                t.kind.zh(),
                t.task.as_deref().unwrap_or(&format!("stage:{}", t.stage)),
                who
            );
        }
        if let Some(year) = self.provisional_year {
            let _ = writeln!(
                out,
                "\n注：标“{}”的时间涉及{year}年，该年节假日安排尚未发布，暂按周末和法定节假日推算（不含调休上班日）；添加 {year}.json 后将按正式安排重新推算。",
                crate::core::timefmt::PROVISIONAL_MARK.trim_matches(['（', '）'])
            );
        }
        out
    }
}
