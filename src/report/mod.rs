//! Finding tasks and the tables that go upward: the filter the console's lists and the
//! JSON API share ([`Find`]), and the exports (轮次进度, 逾期清单, 任务清单) as plain tables
//! with fixed Chinese headings ([`Report`]), written as `.xlsx` ([`Report::to_xlsx`]) or
//! JSON ([`Report::to_json`]).
//!
//! Pure: every function takes the rows already read (and the clock's reading) and returns
//! data; the console and the API read the store and hand the rows in. The columns and sheet
//! names are documented in `docs/exports.md`; changing one is a change of that document.

use crate::core::state::{RoundStatus, TaskState};
use crate::engine::{days_between, from_ms};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

pub mod results;
pub mod weekly;

/// What a list shows: every field optional, an empty one (as an HTML form sends an unset
/// select) the same as none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Find {
    /// One round (its id).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub round: Option<i64>,
    /// One stage (its id in the workflow).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub stage: Option<String>,
    /// A task state (`open`, `waiting`, `done`, `waived`, `cancelled`) or `overdue`; for
    /// the rounds list, a round status (`running`, `finished`, `cancelled`).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub state: Option<String>,
    /// One branch, department or role (the assignee's id).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub branch: Option<String>,
}

/// A query value where the empty string means "not given".
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = Option::<String>::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A state to filter tasks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Tasks in this state.
    Is(TaskState),
    /// Open tasks past their deadline.
    Overdue,
}

/// A filter value that names no state or status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state `{0}`: use open, waiting, done, waived, cancelled or overdue (rounds: running, finished, cancelled)"
)]
pub struct UnknownState(pub String);

impl Find {
    /// The task state asked for, if any.
    pub fn task_state(&self) -> Result<Option<StateFilter>, UnknownState> {
        match self.state.as_deref() {
            None => Ok(None),
            Some("overdue") => Ok(Some(StateFilter::Overdue)),
            Some(s) => s
                .parse::<TaskState>()
                .map(|s| Some(StateFilter::Is(s)))
                .map_err(|_| UnknownState(s.to_string())),
        }
    }

    /// The round status asked for (the rounds list), if any.
    pub fn round_status(&self) -> Result<Option<RoundStatus>, UnknownState> {
        self.state
            .as_deref()
            .map(|s| {
                s.parse::<RoundStatus>()
                    .map_err(|_| UnknownState(s.to_string()))
            })
            .transpose()
    }

    /// Whether a task of round `round_id` passes the round, stage, branch and state
    /// filters (`state` already parsed; `now` in epoch ms decides "overdue").
    pub fn matches(&self, t: &TaskLine, state: Option<StateFilter>, now: i64) -> bool {
        self.round.is_none_or(|r| r == t.round_id)
            && self.stage.as_deref().is_none_or(|s| s == t.stage)
            && self.branch.as_deref().is_none_or(|b| b == t.assignee_id)
            && match state {
                None => true,
                Some(StateFilter::Is(s)) => s == t.state,
                Some(StateFilter::Overdue) => t.is_overdue(now),
            }
    }

    /// The query string of this filter (`round=3&branch=dongguan`), for links.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.round {
            parts.push(format!("round={r}"));
        }
        for (k, v) in [
            ("stage", &self.stage),
            ("state", &self.state),
            ("branch", &self.branch),
        ] {
            if let Some(v) = v {
                parts.push(format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
        }
        parts.join("&")
    }
}

/// A task with what a list or an export shows beside it, already looked up (round,
/// workflow and stage titles, the secretary of its branch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskLine {
    /// Task row id.
    pub id: i64,
    /// Round id.
    pub round_id: i64,
    /// The round's workflow title.
    pub workflow: String,
    /// The round's start date.
    pub round_start: String,
    /// Stage id.
    pub stage: String,
    /// Stage title.
    pub stage_title: String,
    /// Task title.
    pub title: String,
    /// A unit or a role.
    pub assignee_kind: crate::core::state::AssigneeKind,
    /// Assignee id.
    pub assignee_id: String,
    /// Assignee name.
    pub assignee: String,
    /// The branch secretary's name, when the assignee is a branch with a contact.
    pub secretary: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// State.
    pub state: TaskState,
    /// Deadline (epoch ms).
    pub due_at: Option<i64>,
    /// When done or waived (epoch ms).
    pub completed_at: Option<i64>,
    /// The deadline rests on the provisional calendar.
    pub provisional: bool,
}

/// A branch's secretary (its first directory contact): name and phone; None for roles,
/// departments and branches without contacts.
pub fn secretary(
    directory: &crate::core::directory::Directory,
    kind: crate::core::state::AssigneeKind,
    id: &str,
) -> Option<(String, Option<String>)> {
    use crate::core::directory::UnitKind;
    if kind != crate::core::state::AssigneeKind::Unit {
        return None;
    }
    let unit = directory.unit(id)?;
    if unit.kind != UnitKind::Branch {
        return None;
    }
    let c = unit.contacts.first()?;
    Some((c.name.clone(), c.phone.clone()))
}

impl TaskLine {
    /// A task row of `round` with its titles from the loaded catalog (ids when the workflow
    /// is no longer loaded) and its branch's secretary.
    pub fn of(
        cat: &crate::catalog::Catalog,
        round: &crate::store::RoundRow,
        t: &crate::store::TaskRow,
    ) -> TaskLine {
        let wf = cat.workflows.get(&round.workflow_id).map(|w| &w.workflow);
        let stage_title = wf
            .and_then(|w| w.stages.iter().find(|s| s.id.value == t.stage))
            .map_or_else(|| t.stage.clone(), |s| s.title.clone());
        let sec = secretary(&cat.directory, t.assignee_kind, &t.assignee_id);
        TaskLine {
            id: t.id,
            round_id: round.id,
            workflow: wf.map_or_else(|| round.workflow_id.clone(), |w| w.title.clone()),
            round_start: round.start_date.clone(),
            stage: t.stage.clone(),
            stage_title,
            title: t.title.clone(),
            assignee_kind: t.assignee_kind,
            assignee_id: t.assignee_id.clone(),
            assignee: t.assignee_name.clone(),
            secretary: sec.as_ref().map(|s| s.0.clone()),
            phone: sec.and_then(|s| s.1),
            state: t.state,
            due_at: t.due_at,
            completed_at: t.completed_at,
            provisional: t.provisional,
        }
    }

    /// Open and past its deadline at `now` (epoch ms).
    pub fn is_overdue(&self, now: i64) -> bool {
        self.state == TaskState::Open && self.due_at.is_some_and(|d| d < now)
    }

    /// Whole calendar days past the deadline (0 on the day itself), for an overdue task.
    pub fn days_overdue(&self, now: DateTime<Utc>, tz: Tz) -> Option<i64> {
        if !self.is_overdue(now.timestamp_millis()) {
            return None;
        }
        Some((-days_between(now, from_ms(self.due_at?), tz)).max(0))
    }
}

/// How far an overdue task's escalation chain has climbed (from its timers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Escalation {
    /// Rungs in the chain.
    pub steps: usize,
    /// Rungs that fired.
    pub fired: usize,
    /// Whom the last fired rung reached.
    pub reached: Option<String>,
    /// Whom the next pending rung will reach.
    pub next: Option<String>,
    /// When (epoch ms).
    pub next_at: Option<i64>,
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A fraction (a share in percent).
    Num(f64),
    /// Nothing.
    Empty,
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

/// A column: its key in JSON and its heading in the workbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    /// JSON key.
    pub key: &'static str,
    /// Chinese heading.
    pub heading: &'static str,
}

const fn col(key: &'static str, heading: &'static str) -> Column {
    Column { key, heading }
}

/// One sheet: a fixed name and columns, and its rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sheet {
    /// Sheet name (Chinese, fixed).
    pub name: &'static str,
    /// Columns, in order.
    pub columns: &'static [Column],
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

/// An export: one or more sheets under a file name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// File stem and API name (`progress`, `overdue`, `tasks`).
    pub name: &'static str,
    /// Title (Chinese).
    pub title: &'static str,
    /// Sheets, in order.
    pub sheets: Vec<Sheet>,
}

/// The task list's columns (任务清单, and 轮次进度's 按任务 sheet).
pub const TASK_COLUMNS: &[Column] = &[
    col("round", "轮次编号"),
    col("workflow", "工作"),
    col("round_start", "开始日期"),
    col("stage", "阶段"),
    col("task", "任务"),
    col("assignee", "承办单位"),
    col("secretary", "书记"),
    col("phone", "联系电话"),
    col("state", "状态"),
    col("due", "截止时间"),
    col("completed", "完成时间"),
    col("days_overdue", "逾期天数"),
];

/// 轮次进度's 按支部 sheet.
pub const BRANCH_COLUMNS: &[Column] = &[
    col("round", "轮次编号"),
    col("workflow", "工作"),
    col("assignee", "承办单位"),
    col("total", "任务数"),
    col("done", "已完成"),
    col("waived", "已免除"),
    col("open", "待办"),
    col("overdue", "逾期"),
    col("pct", "完成率(%)"),
];

/// 逾期清单.
pub const OVERDUE_COLUMNS: &[Column] = &[
    col("assignee", "承办单位"),
    col("secretary", "书记"),
    col("phone", "联系电话"),
    col("task", "任务"),
    col("round", "轮次编号"),
    col("workflow", "工作"),
    col("due", "截止时间"),
    col("days_overdue", "逾期天数"),
    col("fired", "已上报级数"),
    col("steps", "上报链级数"),
    col("reached", "已上报至"),
    col("next", "下一级"),
    col("next_at", "下一级时间"),
];

/// An instant as `2019-07-12 18:00` in the office's time zone (text, so every spreadsheet
/// shows the same).
fn stamp(ms: Option<i64>, tz: Tz) -> Cell {
    ms.map_or(Cell::Empty, |m| {
        Cell::Text(
            from_ms(m)
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        )
    })
}

fn task_row(t: &TaskLine, now: DateTime<Utc>, tz: Tz) -> Vec<Cell> {
    vec![
        t.round_id.into(),
        t.workflow.as_str().into(),
        t.round_start.as_str().into(),
        t.stage_title.as_str().into(),
        t.title.as_str().into(),
        t.assignee.as_str().into(),
        t.secretary.clone().into(),
        t.phone.clone().into(),
        t.state.zh().into(),
        stamp(t.due_at, tz),
        stamp(t.completed_at, tz),
        t.days_overdue(now, tz).into(),
    ]
}

/// 任务清单: one row per task (cancelled ones left out), as given.
pub fn tasks(lines: &[TaskLine], now: DateTime<Utc>, tz: Tz) -> Report {
    Report {
        name: "tasks",
        title: "任务清单",
        sheets: vec![Sheet {
            name: "任务清单",
            columns: TASK_COLUMNS,
            rows: lines
                .iter()
                .filter(|t| t.state != TaskState::Cancelled)
                .map(|t| task_row(t, now, tz))
                .collect(),
        }],
    }
}

/// 轮次进度: per round and assignee the counts (按支部), then every task (按任务);
/// cancelled tasks are left out of both.
pub fn progress(lines: &[TaskLine], now: DateTime<Utc>, tz: Tz) -> Report {
    let now_ms = now.timestamp_millis();
    // (round, assignee) in first-seen order, so the sheet follows the task order given.
    let mut order: Vec<(i64, &str)> = Vec::new();
    let mut counts: BTreeMap<(i64, &str), (&TaskLine, [usize; 5])> = BTreeMap::new();
    for t in lines.iter().filter(|t| t.state != TaskState::Cancelled) {
        let key = (t.round_id, t.assignee_id.as_str());
        let entry = counts.entry(key).or_insert_with(|| {
            order.push(key);
            (t, [0; 5])
        });
        let c = &mut entry.1;
        c[0] += 1;
        match t.state {
            TaskState::Done => c[1] += 1,
            TaskState::Waived => c[2] += 1,
            TaskState::Open => c[3] += 1,
            _ => {}
        }
        if t.is_overdue(now_ms) {
            c[4] += 1;
        }
    }
    let branch_rows = order
        .iter()
        .filter_map(|k| counts.get(k))
        .map(|(t, c)| {
            let finished = c[1] + c[2];
            vec![
                t.round_id.into(),
                t.workflow.as_str().into(),
                t.assignee.as_str().into(),
                c[0].into(),
                c[1].into(),
                c[2].into(),
                c[3].into(),
                c[4].into(),
                ((finished * 100).checked_div(c[0]).unwrap_or(0)).into(),
            ]
        })
        .collect();
    let mut report = tasks(lines, now, tz);
    report.sheets[0].name = "按任务";
    report.sheets.insert(
        0,
        Sheet {
            name: "按支部",
            columns: BRANCH_COLUMNS,
            rows: branch_rows,
        },
    );
    Report {
        name: "progress",
        title: "轮次进度",
        sheets: report.sheets,
    }
}

/// 逾期清单: the overdue tasks given, each with its escalation, in the order given.
pub fn overdue(items: &[(TaskLine, Escalation)], now: DateTime<Utc>, tz: Tz) -> Report {
    let rows = items
        .iter()
        .map(|(t, e)| {
            vec![
                t.assignee.as_str().into(),
                t.secretary.clone().into(),
                t.phone.clone().into(),
                t.title.as_str().into(),
                t.round_id.into(),
                t.workflow.as_str().into(),
                stamp(t.due_at, tz),
                t.days_overdue(now, tz).into(),
                e.fired.into(),
                e.steps.into(),
                e.reached.clone().into(),
                e.next.clone().into(),
                stamp(e.next_at, tz),
            ]
        })
        .collect();
    Report {
        name: "overdue",
        title: "逾期清单",
        sheets: vec![Sheet {
            name: "逾期清单",
            columns: OVERDUE_COLUMNS,
            rows,
        }],
    }
}

/// The workflows whose rounds 培训体检覆盖 counts: the shipped yearly training and health
/// check-up.
pub const COVERAGE_WORKFLOWS: &[&str] = &["yearly-training", "health-checkup"];

/// 培训体检覆盖.
pub const COVERAGE_COLUMNS: &[Column] = &[
    col("year", "年度"),
    col("workflow", "工作"),
    col("round", "轮次编号"),
    col("assignee", "承办单位"),
    col("total", "任务数"),
    col("done", "已完成"),
    col("pct", "完成率(%)"),
    col("covered", "是否全部完成"),
];

/// 培训体检覆盖: per round of a training or health check-up workflow and per branch (tasks
/// of the office's roles are left out), how
/// many of its tasks are done (waived ones count as done: excused by the office). The
/// lines given are those rounds' tasks.
pub fn coverage(lines: &[TaskLine]) -> Report {
    let mut order: Vec<(i64, &str)> = Vec::new();
    let mut counts: BTreeMap<(i64, &str), (&TaskLine, usize, usize)> = BTreeMap::new();
    let branches = lines.iter().filter(|t| {
        t.state != TaskState::Cancelled && t.assignee_kind == crate::core::state::AssigneeKind::Unit
    });
    for t in branches {
        let key = (t.round_id, t.assignee_id.as_str());
        let e = counts.entry(key).or_insert_with(|| {
            order.push(key);
            (t, 0, 0)
        });
        e.1 += 1;
        if t.state.is_settled() {
            e.2 += 1;
        }
    }
    let rows = order
        .iter()
        .filter_map(|k| counts.get(k))
        .map(|(t, total, done)| {
            vec![
                t.round_start.get(..4).unwrap_or_default().into(),
                t.workflow.as_str().into(),
                t.round_id.into(),
                t.assignee.as_str().into(),
                (*total).into(),
                (*done).into(),
                ((done * 100).checked_div(*total).unwrap_or(0)).into(),
                if done == total { "是" } else { "否" }.into(),
            ]
        })
        .collect();
    Report {
        name: "coverage",
        title: "培训体检覆盖",
        sheets: vec![Sheet {
            name: "培训体检覆盖",
            columns: COVERAGE_COLUMNS,
            rows,
        }],
    }
}

/// 谈心谈话台账.
pub const TALK_COLUMNS: &[Column] = &[
    col("person", "姓名"),
    col("unit", "所在单位"),
    col("event", "事由"),
    col("date", "发生日期"),
    col("recorded_by", "登记人"),
    col("task", "谈话任务"),
    col("state", "状态"),
    col("due", "截止时间"),
    col("completed", "完成时间"),
];

/// One recorded event of the pool for the talk ledger, with the talk tasks it owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkEvent {
    /// The person's name.
    pub person: String,
    /// Their unit's name.
    pub unit: String,
    /// The event's title (its id when no loaded workflow declares it).
    pub event: String,
    /// When it happened.
    pub date: chrono::NaiveDate,
    /// Who recorded it.
    pub recorded_by: String,
    /// The tasks it owes (key `TASK@UNIT/eID`).
    pub tasks: Vec<TaskLine>,
}

/// 谈心谈话台账: one row per event and talk task it owes (one row with the task columns
/// empty for an event that owes none), by person then date.
pub fn talks(events: &[TalkEvent], tz: Tz) -> Report {
    let mut events: Vec<&TalkEvent> = events.iter().collect();
    events.sort_by(|a, b| (&a.person, a.date).cmp(&(&b.person, b.date)));
    let mut rows = Vec::new();
    for e in events {
        let head: Vec<Cell> = vec![
            e.person.as_str().into(),
            e.unit.as_str().into(),
            e.event.as_str().into(),
            e.date.to_string().into(),
            e.recorded_by.as_str().into(),
        ];
        if e.tasks.is_empty() {
            let mut row = head.clone();
            row.extend([Cell::Empty, Cell::Empty, Cell::Empty, Cell::Empty]);
            rows.push(row);
        }
        for t in &e.tasks {
            let mut row = head.clone();
            row.extend([
                t.title.as_str().into(),
                t.state.zh().into(),
                stamp(t.due_at, tz),
                stamp(t.completed_at, tz),
            ]);
            rows.push(row);
        }
    }
    Report {
        name: "talks",
        title: "谈心谈话台账",
        sheets: vec![Sheet {
            name: "谈心谈话台账",
            columns: TALK_COLUMNS,
            rows,
        }],
    }
}

/// A workbook could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write the workbook: {0}")]
pub struct WriteError(#[from] rust_xlsxwriter::XlsxError);

impl Report {
    /// The workbook: one worksheet per sheet, headings in bold on the first row, frozen.
    pub fn to_xlsx(&self) -> Result<Vec<u8>, WriteError> {
        use rust_xlsxwriter::{Format, Workbook};
        let bold = Format::new().set_bold();
        let mut book = Workbook::new();
        for sheet in &self.sheets {
            let ws = book.add_worksheet();
            ws.set_name(sheet.name)?;
            for (c, column) in sheet.columns.iter().enumerate() {
                let c = c as u16;
                ws.write_string_with_format(0, c, column.heading, &bold)?;
                ws.set_column_width(c, (column.heading.chars().count() * 2 + 4).max(10) as f64)?;
            }
            ws.set_freeze_panes(1, 0)?;
            for (r, row) in sheet.rows.iter().enumerate() {
                let r = r as u32 + 1;
                for (c, cell) in row.iter().enumerate() {
                    let c = c as u16;
                    match cell {
                        Cell::Text(s) => ws.write_string(r, c, s)?,
                        Cell::Int(n) => ws.write_number(r, c, *n as f64)?,
                        Cell::Num(x) => ws.write_number(r, c, *x)?,
                        Cell::Empty => ws,
                    };
                }
            }
        }
        Ok(book.save_to_buffer()?)
    }

    /// As JSON: `{name, title, sheets: [{name, columns: [{key, heading}], rows: [{key:
    /// value}]}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let sheets: Vec<serde_json::Value> = self
            .sheets
            .iter()
            .map(|s| {
                let rows: Vec<serde_json::Value> = s
                    .rows
                    .iter()
                    .map(|row| {
                        s.columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| (c.key.to_string(), serde_json::json!(v)))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect();
                serde_json::json!({"name": s.name, "columns": s.columns, "rows": rows})
            })
            .collect();
        serde_json::json!({"name": self.name, "title": self.title, "sheets": sheets})
    }
}

impl Escalation {
    /// From a task's escalation timers (ordered by due instant); cancelled rungs do not
    /// count.
    pub fn of(timers: &[crate::store::TimerRow]) -> Escalation {
        use crate::core::state::TimerState;
        let rungs: Vec<_> = timers
            .iter()
            .filter(|x| x.state != TimerState::Cancelled)
            .collect();
        let name =
            |t: &crate::store::TimerRow| t.payload.recipient.as_ref().map(|p| p.name.clone());
        let next = rungs.iter().find(|x| x.state == TimerState::Pending);
        Escalation {
            steps: rungs.len(),
            fired: rungs
                .iter()
                .filter(|x| x.state == TimerState::Fired)
                .count(),
            reached: rungs
                .iter()
                .rfind(|x| x.state == TimerState::Fired)
                .and_then(|x| name(x)),
            next: next.map(|x| name(x).unwrap_or_default()),
            next_at: next.map(|x| x.due_at),
        }
    }
}

#[cfg(test)]
mod tests;
