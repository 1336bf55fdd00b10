//! The planner: turns (workflow, directory, calendar, start, parameters) into the dated
//! stages, task instances and timers of one round.
//!
//! Architecture Invariant: pure. No I/O and no clock reads; everything, including the
//! round's start, is passed in. `plan`, `validate`, the daemon and `simulate` all call
//! [`plan`], so a timeline shown to an administrator is the one the daemon will run.

use crate::core::calendar::{Calendar, CalendarError, Roll};
use crate::core::definition::{
    Anchor, Assignee, Literal, Offset, ParamType, Rung, Task, TimeOfDay, Val, When, Workflow,
};
use crate::core::diagnostic::{Loc, Severity, Sp, suggest};
use crate::core::directory::{Directory, Party};
use crate::core::state::AssigneeKind;
use chrono::{DateTime, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;
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
    /// Unique key within the round: `task@unit` or `task@role:id`.
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
}

/// A resolved parameter value.
#[derive(Debug, Clone, PartialEq)]
enum ParamValue {
    Integer(i64),
    Date(NaiveDate),
    Time(TimeOfDay),
    Text(String),
}

impl ParamValue {
    fn json(&self) -> serde_json::Value {
        match self {
            ParamValue::Integer(i) => (*i).into(),
            ParamValue::Date(d) => d.to_string().into(),
            ParamValue::Time(t) => t.to_string().into(),
            ParamValue::Text(s) => s.clone().into(),
        }
    }

    fn parse(kind: ParamType, v: &serde_json::Value) -> Result<ParamValue, String> {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match kind {
            ParamType::Integer => match v.as_i64() {
                Some(i) => Ok(ParamValue::Integer(i)),
                None => i64::from_text(&text).map(ParamValue::Integer),
            },
            ParamType::Date => NaiveDate::from_text(&text).map(ParamValue::Date),
            ParamType::Time => TimeOfDay::from_text(&text).map(ParamValue::Time),
            ParamType::Text => Ok(ParamValue::Text(text)),
        }
    }
}

/// Values that can be taken out of a parameter.
trait FromParam: Sized + Literal {
    fn from_param(v: &ParamValue) -> Option<Self>;
}
impl FromParam for i64 {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromParam for NaiveDate {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Date(d) => Some(*d),
            _ => None,
        }
    }
}
impl FromParam for TimeOfDay {
    fn from_param(v: &ParamValue) -> Option<Self> {
        match v {
            ParamValue::Time(t) => Some(*t),
            _ => None,
        }
    }
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

/// One timer of a task before fan-out: kind, number, instant, provisional, escalation role.
type TaskTimer = (TimerKind, u32, DateTime<Tz>, bool, Option<String>);

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
}

/// Plan one round. Returns the plan (None if any error) and every problem found.
pub fn plan(input: PlanInput<'_>) -> (Option<Plan>, Vec<Problem>) {
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

    fn resolve_params(&mut self) {
        let wf = self.input.workflow;
        for (name, _) in self.input.params.iter() {
            if wf.parameter(name).is_none() {
                let known: Vec<&str> = wf.parameters.iter().map(|p| p.id.value.as_str()).collect();
                self.error(
                    "unknown-parameter",
                    Loc::default(),
                    format!("workflow `{}` has no parameter `{name}`", wf.id.value),
                    Some(suggest(name, known.iter().copied())),
                );
            }
        }
        for param in &wf.parameters {
            let given = self.input.params.get(&param.id.value);
            let (value, loc, source) = match (given, &param.default) {
                (Some(text), _) => (
                    serde_json::Value::String(text.clone()),
                    param.id.loc,
                    "--param",
                ),
                (None, Some(d)) => (d.value.clone(), d.loc, "default"),
                (None, None) => {
                    self.error(
                        "missing-parameter",
                        param.id.loc,
                        format!(
                            "parameter `{}` has no default and no value was given",
                            param.id.value
                        ),
                        Some(format!(
                            "add `default:` to the parameter or pass --param {}=VALUE",
                            param.id.value
                        )),
                    );
                    continue;
                }
            };
            match ParamValue::parse(param.kind, &value) {
                Ok(v) => {
                    self.params.insert(param.id.value.clone(), v);
                }
                Err(e) => self.error(
                    "invalid-value",
                    loc,
                    format!(
                        "{source} value of parameter `{}` is not a {}: {e}",
                        param.id.value,
                        param.kind.name()
                    ),
                    None,
                ),
            }
        }
    }

    fn val<T: FromParam + Clone>(&mut self, v: &Sp<Val<T>>) -> Option<T> {
        match &v.value {
            Val::Lit(x) => Some(x.clone()),
            Val::Param(name) => match self.params.get(name) {
                Some(pv) => match T::from_param(pv) {
                    Some(x) => Some(x),
                    None => {
                        let actual = self
                            .input
                            .workflow
                            .parameter(name)
                            .map(|p| p.kind.name())
                            .unwrap_or("?");
                        self.error(
                            "parameter-type",
                            v.loc,
                            format!("parameter `{name}` is of type {actual}, but this value must be of type {}", T::TYPE.name()),
                            Some(format!("use a parameter declared with `type: {}`", T::TYPE.name())),
                        );
                        None
                    }
                },
                None => {
                    if self.input.workflow.parameter(name).is_none() {
                        let known: Vec<&str> = self
                            .input
                            .workflow
                            .parameters
                            .iter()
                            .map(|p| p.id.value.as_str())
                            .collect();
                        self.error(
                            "unknown-reference",
                            v.loc,
                            format!("unknown parameter `{name}`"),
                            Some(suggest(name, known.iter().copied())),
                        );
                    }
                    None
                }
            },
        }
    }

    fn offset(&mut self, o: &Sp<Offset>) -> Option<Len> {
        let given = [
            o.days.is_some(),
            o.working_days.is_some(),
            o.hours.is_some(),
        ];
        if given.iter().filter(|x| **x).count() != 1 {
            self.error(
                "invalid-offset",
                o.loc,
                "an offset needs exactly one of `days`, `working_days`, `hours`".into(),
                Some("e.g. `{days: 3}` or `{working_days: 2}`".into()),
            );
            return None;
        }
        if let Some(v) = &o.days {
            return self.val(v).map(Len::Days);
        }
        if let Some(v) = &o.working_days {
            return self.val(v).map(Len::WorkingDays);
        }
        o.hours.as_ref().and_then(|v| self.val(v)).map(Len::Hours)
    }

    fn cal_error(&mut self, loc: Loc, e: CalendarError) {
        let hint = match &e {
            CalendarError::YearNotCovered { .. } => {
                "working days need the holiday notice of that year (the year after the last file is planned provisionally, later years are not); add the file, or count in calendar `days`".to_string()
            }
            _ => "check the month and year".to_string(),
        };
        self.error("calendar-year-missing", loc, e.to_string(), Some(hint));
    }

    fn local(&mut self, loc: Loc, date: NaiveDate, t: TimeOfDay) -> Option<DateTime<Tz>> {
        let naive = date.and_time(t.0);
        // A wall time skipped by a DST change resolves to the first valid instant after it.
        match self.input.tz.from_local_datetime(&naive).earliest() {
            Some(x) => Some(x),
            None => match naive
                .checked_add_signed(Duration::hours(1))
                .and_then(|n| self.input.tz.from_local_datetime(&n).earliest())
            {
                Some(x) => Some(x),
                None => {
                    self.error(
                        "invalid-time",
                        loc,
                        format!("{naive} does not exist in {}", self.input.tz),
                        None,
                    );
                    None
                }
            },
        }
    }

    /// Note that the instant defined at `loc` was counted over the provisional year.
    fn provisional(&mut self, loc: Loc, provisional: bool) -> bool {
        if provisional && self.provisional_at.is_none() {
            self.provisional_at = Some(loc);
        }
        provisional
    }

    /// `at` moved by `len` (times `sign`), and whether the move counted over the
    /// provisional year.
    fn shift(
        &mut self,
        loc: Loc,
        at: DateTime<Tz>,
        len: Len,
        sign: i64,
        time: Option<TimeOfDay>,
    ) -> Option<(DateTime<Tz>, bool)> {
        let t = time.unwrap_or(TimeOfDay(at.time()));
        // Checked: an offset from a file can be any i64, and chrono panics past its range.
        let Some(n) = sign.checked_mul(len_value(len)) else {
            return self.out_of_range(loc, len);
        };
        match len {
            Len::Hours(_) => match Duration::try_hours(n).and_then(|d| at.checked_add_signed(d)) {
                Some(x) => Some((x, false)),
                None => self.out_of_range(loc, len),
            },
            Len::Days(_) => {
                match Duration::try_days(n).and_then(|d| at.date_naive().checked_add_signed(d)) {
                    Some(date) => self.local(loc, date, t).map(|x| (x, false)),
                    None => self.out_of_range(loc, len),
                }
            }
            Len::WorkingDays(_) => {
                match self
                    .input
                    .calendar
                    .add_working_days_dated(at.date_naive(), n)
                {
                    Ok(d) => {
                        let p = self.provisional(loc, d.provisional);
                        self.local(loc, d.date, t).map(|x| (x, p))
                    }
                    Err(e) => {
                        self.cal_error(loc, e);
                        None
                    }
                }
            }
        }
    }

    fn out_of_range<T>(&mut self, loc: Loc, len: Len) -> Option<T> {
        self.error(
            "invalid-offset",
            loc,
            format!(
                "the offset `{}: {}` is out of range: the date would not exist",
                match len {
                    Len::Days(_) => "days",
                    Len::WorkingDays(_) => "working_days",
                    Len::Hours(_) => "hours",
                },
                len_value(len)
            ),
            Some("check the number for a typo".into()),
        );
        None
    }

    fn round_start(&mut self) -> Option<DateTime<Tz>> {
        let (start, opens) = (self.input.start, self.opens_at);
        self.local(Loc::default(), start, opens)
    }

    /// Resolve a point, detecting cycles.
    fn point(&mut self, pt: Point, from_loc: Loc) -> Option<Moment> {
        match self.memo.get(&pt) {
            Some(State::Done(m)) => return m.clone(),
            Some(State::Visiting) => {
                let pos = self.stack.iter().position(|x| *x == pt).unwrap_or(0);
                let mut names: Vec<String> = self.stack[pos..]
                    .iter()
                    .map(|x| self.point_name(*x))
                    .collect();
                names.push(self.point_name(pt));
                self.error(
                    "cycle",
                    from_loc,
                    format!("dates depend on each other in a cycle: {}", names.join(" → ")),
                    Some("make one of them count from `round_start`, an earlier stage or a fixed date".into()),
                );
                return None;
            }
            None => {}
        }
        // Resolution recurses once per link: a long forward chain would overflow the stack.
        if self.stack.len() >= MAX_DATE_CHAIN {
            self.error(
                "invalid-when",
                from_loc,
                format!(
                    "the {} depends on a chain of more than {MAX_DATE_CHAIN} other dates",
                    self.point_name(pt)
                ),
                Some("count from `round_start`, an earlier stage or a fixed date".into()),
            );
            return None;
        }
        self.memo.insert(pt, State::Visiting);
        self.stack.push(pt);
        let m = self.compute(pt);
        self.stack.pop();
        self.memo.insert(pt, State::Done(m.clone()));
        m
    }

    fn point_name(&self, pt: Point) -> String {
        let wf = self.input.workflow;
        match pt {
            Point::Open(i) => format!("opening of stage `{}`", wf.stages[i].id.value),
            Point::Close(i) => format!("closing of stage `{}`", wf.stages[i].id.value),
            Point::Due(i) => format!("deadline of task `{}`", self.tasks[i].1.id.value),
        }
    }

    fn compute(&mut self, pt: Point) -> Option<Moment> {
        let wf = self.input.workflow;
        match pt {
            Point::Open(i) => {
                let stage = &wf.stages[i];
                match &stage.opens {
                    Some(w) => self.when(w, i, self.opens_at),
                    None if i == 0 => self.round_start().map(fixed),
                    None => self.point(Point::Close(i - 1), stage.id.loc),
                }
            }
            Point::Close(i) => {
                let stage = &wf.stages[i];
                match (&stage.closes, &stage.duration) {
                    (Some(w), None) => self.when(w, i, self.due_at),
                    (None, Some(d)) => {
                        let open = self.point(Point::Open(i), d.loc)?;
                        let len = self.offset(d)?;
                        match open.at {
                            Some(at) => {
                                let (at, p) = self.shift(d.loc, at, len, 1, None)?;
                                Some(Moment {
                                    at: Some(at),
                                    provisional: open.provisional || p,
                                    ..open
                                })
                            }
                            None => Some(open),
                        }
                    }
                    (Some(w), Some(_)) => {
                        self.error(
                            "invalid-stage",
                            w.loc,
                            format!(
                                "stage `{}` has both `closes` and `duration`",
                                stage.id.value
                            ),
                            Some("keep one of them".into()),
                        );
                        None
                    }
                    (None, None) => {
                        self.error(
                            "invalid-stage",
                            stage.id.loc,
                            format!("stage `{}` has no end", stage.id.value),
                            Some(
                                "add `closes:` (an instant) or `duration:` (e.g. `{days: 5}`)"
                                    .into(),
                            ),
                        );
                        None
                    }
                }
            }
            Point::Due(i) => {
                let (stage, task) = self.tasks[i];
                self.when(&task.due, stage, self.due_at)
            }
        }
    }

    fn anchor(&mut self, a: &Sp<Anchor>, stage: usize) -> Option<Moment> {
        let wf = self.input.workflow;
        let stage_ids = || wf.stages.iter().map(|s| s.id.value.as_str());
        match &a.value {
            Anchor::RoundStart => self.round_start().map(fixed),
            Anchor::StageOpen => self.point(Point::Open(stage), a.loc),
            Anchor::StageClose => self.point(Point::Close(stage), a.loc),
            Anchor::OpenOf(id) | Anchor::CloseOf(id) => match wf.stage_index(id) {
                Some(j) => {
                    let pt = if matches!(a.value, Anchor::OpenOf(_)) {
                        Point::Open(j)
                    } else {
                        Point::Close(j)
                    };
                    self.point(pt, a.loc)
                }
                None => {
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown stage `{id}`"),
                        Some(suggest(id, stage_ids())),
                    );
                    None
                }
            },
            Anchor::Done(id) => match self.tasks.iter().position(|(_, t)| t.id.value == *id) {
                Some(_) if self.input.done.is_some_and(|d| d.contains_key(id)) => {
                    let at = self.input.done.and_then(|d| d.get(id)).copied()?;
                    Some(fixed(at.with_timezone(&self.input.tz)))
                }
                Some(j) => self.point(Point::Due(j), a.loc).map(|m| Moment {
                    projected: m.at.is_some(),
                    ..m
                }),
                None => {
                    let ids: Vec<&str> = self
                        .tasks
                        .iter()
                        .map(|(_, t)| t.id.value.as_str())
                        .collect();
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown task `{id}`"),
                        Some(suggest(id, ids.iter().copied())),
                    );
                    None
                }
            },
            Anchor::Event(id) => {
                if wf.events.iter().any(|e| e.id.value == *id) {
                    Some(Moment {
                        at: None,
                        projected: false,
                        provisional: false,
                        event: Some(id.clone()),
                        wait: None,
                    })
                } else {
                    let ids: Vec<&str> = wf.events.iter().map(|e| e.id.value.as_str()).collect();
                    self.error(
                        "unknown-reference",
                        a.loc,
                        format!("unknown event `{id}`"),
                        Some(format!(
                            "declare it under `events:`; {}",
                            suggest(id, ids.iter().copied())
                        )),
                    );
                    None
                }
            }
        }
    }

    fn when(&mut self, w: &Sp<When>, stage: usize, default_time: TimeOfDay) -> Option<Moment> {
        let offsets = [
            w.days.is_some(),
            w.working_days.is_some(),
            w.hours.is_some(),
        ];
        if offsets.iter().filter(|x| **x).count() > 1 {
            self.error(
                "invalid-when",
                w.loc,
                "give at most one of `days`, `working_days`, `hours`".into(),
                None,
            );
            return None;
        }
        if w.hours.is_some() && w.at.is_some() {
            self.error(
                "invalid-when",
                w.loc,
                "`at` cannot be combined with `hours`".into(),
                Some("use `days`/`working_days` with `at`, or `hours` alone".into()),
            );
            return None;
        }
        let at = match &w.at {
            Some(v) => Some(self.val(v)?),
            None => None,
        };
        let base: Moment = match (&w.on, &w.from) {
            (Some(on), None) => {
                let date = self.val(on)?;
                fixed(self.local(on.loc, date, at.unwrap_or(default_time))?)
            }
            (None, Some(a)) => self.anchor(a, stage)?,
            (Some(_), Some(_)) => {
                self.error(
                    "invalid-when",
                    w.loc,
                    "give either `on` (a date) or `from` (an anchor), not both".into(),
                    None,
                );
                return None;
            }
            (None, None) => {
                self.error(
                    "invalid-when",
                    w.loc,
                    "an instant needs `on: YYYY-MM-DD` or `from: ...`".into(),
                    Some("e.g. `{from: round_start, days: 11}` or `{on: 2019-07-12}`".into()),
                );
                return None;
            }
        };
        let len = if let Some(v) = &w.days {
            Some(Len::Days(self.val(v)?))
        } else if let Some(v) = &w.working_days {
            Some(Len::WorkingDays(self.val(v)?))
        } else if let Some(v) = &w.hours {
            Some(Len::Hours(self.val(v)?))
        } else {
            None
        };
        let Some(base_at) = base.at else {
            // Waits for an event: the instant is known only once it happens.
            return Some(Moment {
                wait: len.map(len_zh),
                ..base
            });
        };
        let (mut result, mut provisional) = match len {
            Some(l @ (Len::Days(_) | Len::WorkingDays(_))) => {
                self.shift(w.loc, base_at, l, 1, Some(at.unwrap_or(default_time)))?
            }
            Some(l @ Len::Hours(_)) => self.shift(w.loc, base_at, l, 1, None)?,
            None => match at {
                Some(t) if w.on.is_none() => (self.local(w.loc, base_at.date_naive(), t)?, false),
                _ => (base_at, false),
            },
        };
        if !matches!(len, Some(Len::WorkingDays(_))) {
            let roll = w.if_non_working.unwrap_or(self.roll);
            if roll != Roll::Keep {
                match self.input.calendar.roll_dated(result.date_naive(), roll) {
                    Ok(d) => {
                        provisional |= self.provisional(w.loc, d.provisional);
                        if d.date != result.date_naive() {
                            result = self.local(w.loc, d.date, TimeOfDay(result.time()))?;
                        }
                    }
                    Err(e) => {
                        self.cal_error(w.loc, e);
                        return None;
                    }
                }
            }
        }
        Some(Moment {
            at: Some(result),
            provisional: base.provisional || provisional,
            ..base
        })
    }

    fn assignees(&mut self, task: &Task) -> Vec<Party> {
        let dir = self.input.directory;
        match &task.assignee.value {
            Assignee::Group(g) => match dir.group(g) {
                Some(group) => dir
                    .members(group)
                    .into_iter()
                    .filter(|u| {
                        self.input
                            .units
                            .is_none_or(|only| only.contains(&u.id.value))
                    })
                    .map(|u| u.party())
                    .collect(),
                None => {
                    self.error(
                        "unknown-reference",
                        task.assignee.loc,
                        format!("unknown directory group `{g}`"),
                        Some(suggest(g, dir.group_ids())),
                    );
                    Vec::new()
                }
            },
            Assignee::Role(r) => {
                if dir.role(r).is_none() {
                    self.error(
                        "unknown-reference",
                        task.assignee.loc,
                        format!("unknown directory role `{r}`"),
                        Some(suggest(r, dir.role_ids())),
                    );
                    return Vec::new();
                }
                vec![dir.role_party(r)]
            }
        }
    }

    fn build(&mut self) -> Option<Plan> {
        let wf = self.input.workflow;
        let round_start = self.round_start()?;
        let mut stages = Vec::new();
        let mut timers = Vec::new();
        for (i, s) in wf.stages.iter().enumerate() {
            let opens = self.point(Point::Open(i), s.id.loc);
            let closes = self.point(Point::Close(i), s.id.loc);
            if let (Some(o), Some(c)) = (&opens, &closes) {
                if let (Some(oa), Some(ca)) = (o.at, c.at) {
                    if ca < oa {
                        let loc = s.closes.as_ref().map(|w| w.loc).unwrap_or(s.id.loc);
                        self.error(
                            "stage-closes-before-opening",
                            loc,
                            format!(
                                "stage `{}` closes ({}) before it opens ({})",
                                s.id.value,
                                crate::core::timefmt::zh_datetime(&ca),
                                crate::core::timefmt::zh_datetime(&oa)
                            ),
                            None,
                        );
                    }
                    for (kind, at, provisional) in [
                        (TimerKind::StageOpen, oa, o.provisional),
                        (TimerKind::StageClose, ca, c.provisional),
                    ] {
                        timers.push(PlannedTimer {
                            key: format!(
                                "stage:{}/{}",
                                s.id.value,
                                if kind == TimerKind::StageOpen {
                                    "open"
                                } else {
                                    "close"
                                }
                            ),
                            kind,
                            at,
                            projected: o.projected || c.projected,
                            provisional,
                            stage: s.id.value.clone(),
                            task: None,
                            recipient: None,
                        });
                    }
                }
                stages.push(PlannedStage {
                    id: s.id.value.clone(),
                    title: s.title.clone(),
                    opens: o.clone(),
                    closes: c.clone(),
                });
            }
        }
        let mut tasks = Vec::new();
        for idx in 0..self.tasks.len() {
            let (si, task) = self.tasks[idx];
            let stage = &wf.stages[si];
            let due = self.point(Point::Due(idx), task.due.loc);
            let assignees = self.assignees(task);
            let Some(due) = due else { continue };
            if let (Some(at), Some(open)) = (due.at, stages.get(si).and_then(|s| s.opens.at))
                && at < open
                && !due.projected
            {
                self.error(
                    "deadline-before-stage",
                    task.due.loc,
                    format!(
                        "task `{}` is due {} but its stage `{}` opens only {}",
                        task.id.value,
                        crate::core::timefmt::zh_datetime(&at),
                        stage.id.value,
                        crate::core::timefmt::zh_datetime(&open)
                    ),
                    Some(
                        "move the deadline into the stage window or open the stage earlier".into(),
                    ),
                );
            }
            if let (Some(at), Some(close)) = (due.at, stages.get(si).and_then(|s| s.closes.at))
                && at > close
                && !due.projected
            {
                self.warning(
                    "deadline-after-stage",
                    task.due.loc,
                    format!(
                        "task `{}` is due {}, after its stage `{}` closes {}",
                        task.id.value,
                        crate::core::timefmt::zh_datetime(&at),
                        stage.id.value,
                        crate::core::timefmt::zh_datetime(&close)
                    ),
                    Some("is the deadline or the stage window wrong?".into()),
                );
            }
            let after_done = match &task.due.from {
                Some(Sp {
                    value: Anchor::Done(t),
                    ..
                }) => Some(t.clone()),
                _ => None,
            };
            let reminders = task.reminders.as_ref().or(wf.defaults.reminders.as_ref());
            let chain = task.escalation.as_ref().or(wf.defaults.escalation.as_ref());
            let mut task_timers: Vec<TaskTimer> = Vec::new();
            if let Some(at) = due.at {
                task_timers.push((TimerKind::Deadline, 0, at, due.provisional, None));
                if let Some(r) = reminders {
                    for (n, off) in r.before.iter().enumerate() {
                        let Some(len) = self.offset(off) else {
                            continue;
                        };
                        if len_value(len) <= 0 {
                            self.error(
                                "reminder-after-deadline",
                                off.loc,
                                format!("reminder {} of task `{}` is not before the deadline", n + 1, task.id.value),
                                Some("`before` offsets count back from the deadline and must be positive; use `overdue` for reminders after it".into()),
                            );
                            continue;
                        }
                        if let Some((t, p)) = self.shift(off.loc, at, len, -1, None) {
                            let p = due.provisional || p;
                            task_timers.push((TimerKind::Reminder, n as u32, t, p, None));
                        }
                    }
                    if let Some(o) = &r.overdue
                        && let Some(len) = self.offset(&o.every)
                    {
                        if len_value(len) <= 0 {
                            self.error(
                                "invalid-offset",
                                o.every.loc,
                                "the overdue reminder interval must be positive".into(),
                                None,
                            );
                        } else if o.max > MAX_OVERDUE_REMINDERS {
                            // Each one is a timer per assignee; an unbounded count would
                            // plan (and store) millions of them.
                            self.error(
                                "invalid-value",
                                o.loc,
                                format!(
                                    "`max: {}` overdue reminders is too many; at most {MAX_OVERDUE_REMINDERS} are allowed",
                                    o.max
                                ),
                                Some("escalate to a higher role instead of reminding forever".into()),
                            );
                        } else {
                            let (mut t, mut p) = (at, due.provisional);
                            for k in 1..=o.max {
                                let Some((next, q)) = self.shift(o.every.loc, t, len, 1, None)
                                else {
                                    break;
                                };
                                (t, p) = (next, p || q);
                                task_timers.push((TimerKind::Overdue, k, t, p, None));
                            }
                        }
                    }
                }
                if let Some(chain) = chain {
                    let mut last: Option<DateTime<Tz>> = None;
                    for (n, rung) in chain.iter().enumerate() {
                        let Some((t, p)) = self.rung(rung, at) else {
                            continue;
                        };
                        if last.is_some_and(|l| t < l) {
                            self.warning(
                                "escalation-order",
                                rung.after.loc,
                                format!("escalation rung {} of task `{}` fires before the rung above it", n + 1, task.id.value),
                                Some("order rungs by `after`, shortest first".into()),
                            );
                        }
                        last = Some(t);
                        task_timers.push((
                            TimerKind::Escalation,
                            n as u32,
                            t,
                            due.provisional || p,
                            Some(rung.to.value.clone()),
                        ));
                    }
                }
            }
            for a in assignees {
                let key = match a.kind {
                    AssigneeKind::Unit => format!("{}@{}", task.id.value, a.id),
                    AssigneeKind::Role => format!("{}@role:{}", task.id.value, a.id),
                };
                let first_rung = chain.map_or(0, |c| first_rung_above(c, &a));
                if chain.is_some_and(|c| !c.is_empty() && first_rung >= c.len()) {
                    self.warning(
                        "escalation-to-assignee",
                        task.assignee.loc,
                        format!(
                            "task `{}` is assigned to `{}`, the last rung of its escalation chain: nobody above it is told when it is late",
                            task.id.value, a.id
                        ),
                        Some(format!("give the task its own `escalation` with a rung above `{}`, or `escalation: []` if nobody is to be told", a.id)),
                    );
                }
                for (kind, n, at, provisional, to) in &task_timers {
                    if *at < round_start {
                        continue; // an instant before the round exists never fires
                    }
                    if *kind == TimerKind::Escalation && (*n as usize) < first_rung {
                        continue; // the assignee itself, or a rung below it
                    }
                    let recipient = match to {
                        Some(role) => self.input.directory.role_party(role),
                        None => a.clone(),
                    };
                    let suffix = match kind {
                        TimerKind::Deadline => "deadline".to_string(),
                        TimerKind::Reminder => format!("reminder/{n}"),
                        TimerKind::Overdue => format!("overdue/{n}"),
                        TimerKind::Escalation => format!("escalation/{n}"),
                        // Not task timers.
                        TimerKind::StageOpen
                        | TimerKind::StageClose
                        | TimerKind::Kickoff
                        | TimerKind::CatchUp
                        | TimerKind::CalendarNotice => continue,
                    };
                    timers.push(PlannedTimer {
                        key: format!("{key}/{suffix}"),
                        kind: *kind,
                        at: *at,
                        projected: due.projected,
                        provisional: *provisional,
                        stage: stage.id.value.clone(),
                        task: Some(key.clone()),
                        recipient: Some(recipient),
                    });
                }
                tasks.push(PlannedTask {
                    key,
                    task: task.id.value.clone(),
                    title: task.title.clone(),
                    stage: stage.id.value.clone(),
                    assignee: a,
                    due: due.clone(),
                    after_done: after_done.clone(),
                });
            }
        }
        timers.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        let mut params: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for (k, v) in &self.params {
            params.insert(k.clone(), v.json());
        }
        let provisional_year = self.provisional_at.and_then(|loc| {
            let year = self.input.calendar.provisional_year()?;
            self.warning(
                "calendar-provisional",
                loc,
                format!(
                    "dates in {year} are planned on a provisional calendar: there is no holiday file for {year} yet"
                ),
                Some(format!(
                    "the provisional calendar has weekends and the statutory holidays but no bridge days or make-up working days; add config/calendar/{year}.json when the State Council notice is out, and running rounds are re-projected onto it"
                )),
            );
            Some(year)
        });
        Some(Plan {
            provisional_year,
            workflow: wf.id.value.clone(),
            title: wf.title.clone(),
            timezone: self.input.tz.name().to_string(),
            start: self.input.start,
            params,
            stages,
            tasks,
            timers,
        })
    }

    fn rung(&mut self, rung: &Sp<Rung>, due: DateTime<Tz>) -> Option<(DateTime<Tz>, bool)> {
        if self.input.directory.role(&rung.to.value).is_none() {
            self.error(
                "unknown-reference",
                rung.to.loc,
                format!("unknown directory role `{}`", rung.to.value),
                Some(suggest(&rung.to.value, self.input.directory.role_ids())),
            );
            return None;
        }
        let len = self.offset(&rung.after)?;
        if len_value(len) < 0 {
            self.error(
                "invalid-offset",
                rung.after.loc,
                "an escalation rung fires after the deadline; `after` must not be negative".into(),
                None,
            );
            return None;
        }
        self.shift(rung.after.loc, due, len, 1, None)
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

fn len_zh(l: Len) -> String {
    match l {
        Len::Days(n) => format!("{n}天"),
        Len::WorkingDays(n) => format!("{n}个工作日"),
        Len::Hours(n) => format!("{n}小时"),
    }
}

fn len_value(l: Len) -> i64 {
    match l {
        Len::Days(n) | Len::WorkingDays(n) | Len::Hours(n) => n,
    }
}

fn fixed(at: DateTime<Tz>) -> Moment {
    Moment {
        at: Some(at),
        projected: false,
        provisional: false,
        event: None,
        wait: None,
    }
}

impl Plan {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diagnostic::Diagnostics;

    /// A task per assignee kind, under the shipped three-rung default chain.
    const CHAIN: &str = r#"id: chain
title: 上报链
defaults:
  escalation:
    - after: {working_days: 1}
      to: organization_office
    - after: {working_days: 2}
      to: committee_head
    - after: {working_days: 4}
      to: district_department
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 10}
    tasks:
      - id: by_branch
        title: 支部的工作
        assignee: {group: branches}
        due: {from: stage_close}
      - id: by_office
        title: 组织办的工作
        assignee: {role: organization_office}
        due: {from: stage_close}
      - id: by_head
        title: 书记的工作
        assignee: {role: committee_head}
        due: {from: stage_close}
      - id: by_district
        title: 区委组织部的工作
        assignee: {role: district_department}
        due: {from: stage_close}
      - id: by_district_explicit
        title: 区委组织部的另一项工作
        assignee: {role: district_department}
        due: {from: stage_close}
        escalation: []
"#;

    fn planned(text: &str) -> (Plan, Vec<Problem>) {
        let mut d = Diagnostics::new("chain.yaml");
        let wf: Workflow = crate::core::yaml::parse(text, &mut d).expect("workflow parses");
        let mut dd = Diagnostics::new("directory.yaml");
        let dir = Directory::parse(include_str!("../../config/directory.yaml"), &mut dd)
            .expect("shipped directory");
        let cal = Calendar::from_sources([(
            "2019.json",
            include_str!("../../config/calendar/2019.json"),
        )])
        .expect("calendar");
        let (p, problems) = plan(PlanInput {
            workflow: &wf,
            directory: &dir,
            calendar: &cal,
            tz: chrono_tz::Asia::Shanghai,
            start: NaiveDate::from_ymd_opt(2019, 7, 1).expect("date"),
            params: &BTreeMap::new(),
            units: Some(&["dongguan".to_string()]),
            done: None,
        });
        (p.expect("plans"), problems)
    }

    fn rungs(p: &Plan, task: &str) -> Vec<(String, String)> {
        p.timers
            .iter()
            .filter(|t| t.kind == TimerKind::Escalation && t.task.as_deref() == Some(task))
            .map(|t| {
                let key = t.key.rsplit('/').next().unwrap_or_default().to_string();
                (
                    key,
                    t.recipient
                        .as_ref()
                        .map(|r| r.id.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn a_role_task_never_escalates_to_its_own_role_and_starts_at_the_rung_above_it() {
        let (p, _) = planned(CHAIN);
        let r = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            rungs(&p, "by_branch@dongguan"),
            [
                r("0", "organization_office"),
                r("1", "committee_head"),
                r("2", "district_department")
            ],
            "a branch's task climbs the whole chain"
        );
        assert_eq!(
            rungs(&p, "by_office@role:organization_office"),
            [r("1", "committee_head"), r("2", "district_department")],
            "组织办 is not told that 组织办 is late; rung keys keep their positions"
        );
        assert_eq!(
            rungs(&p, "by_head@role:committee_head"),
            [r("2", "district_department")],
            "the rungs below the assignee are skipped too"
        );
        assert!(rungs(&p, "by_district@role:district_department").is_empty());
    }

    #[test]
    fn a_chain_that_collapses_onto_the_assignee_is_a_warning_unless_it_is_turned_off() {
        let (_, problems) = planned(CHAIN);
        let warned: Vec<&str> = problems
            .iter()
            .filter(|p| p.code == "escalation-to-assignee")
            .map(|p| p.message.as_str())
            .collect();
        assert_eq!(warned.len(), 1, "{problems:?}");
        assert!(warned[0].contains("`by_district`"), "{}", warned[0]);
        assert!(
            problems
                .iter()
                .all(|p| p.severity == Severity::Warning || p.code != "escalation-to-assignee")
        );
    }
}
