//! The workflow model: what a workflow file says, as plain data.
//!
//! These types are both the serde target for `workflows/*.yaml` and the source of the
//! JSON schema (`yanzhen schema`). Unknown keys are rejected by the loader
//! ([`crate::core::yaml::parse`]), not by serde, so that all of them are reported at once; the
//! schema still says `additionalProperties: false` through `#[schemars(deny_unknown_fields)]`.

use crate::core::calendar::Roll;
use crate::core::diagnostic::Sp;
use chrono::NaiveDate;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// One workflow file: a selection round or a recurring programme.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Workflow {
    /// Unique id, lowercase with dashes, e.g. `community-reserve-selection`.
    pub id: Sp<String>,
    /// Title shown to administrators and branches (Chinese).
    pub title: String,
    /// Free text: purpose, source document.
    #[serde(default)]
    pub description: Option<String>,
    /// IANA time zone for every date in this workflow; default from `config/yanzhen.toml`.
    #[serde(default)]
    pub timezone: Option<Sp<String>>,
    /// Round start used by `validate` and by `plan` when no `--start` is given.
    #[serde(default)]
    pub example_start: Option<Sp<NaiveDate>>,
    /// Values the seeds leave open (`x月x日`, `x天`), with defaults; referenced as `"${id}"`.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Defaults inherited by every stage and task.
    #[serde(default)]
    pub defaults: Defaults,
    /// For recurring programmes: when a round starts by itself.
    #[serde(default)]
    pub schedule: Option<Sp<Schedule>>,
    /// Named outside events that can owe a task (e.g. a job change owes a talk).
    #[serde(default)]
    pub events: Vec<EventDef>,
    /// Counting rules: each person in the pool owes at least N of some tasks or events a
    /// year (e.g. talks, `min_per_year: 2`).
    #[serde(default)]
    pub counts: Vec<CountRule>,
    /// Message templates overriding the built-in Chinese ones for this workflow.
    #[serde(default)]
    pub templates: Templates,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// A value left open by the source document, with its default.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Parameter {
    /// Identifier used in `"${id}"` references and `{{ params.id }}` in templates.
    pub id: Sp<String>,
    /// What kind of value it holds.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Default value; a round may override it (`--param id=value`).
    #[serde(default)]
    pub default: Option<Sp<serde_json::Value>>,
    /// What the value means (Chinese).
    #[serde(default)]
    pub title: Option<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Whole number (days, counts).
    Integer,
    /// Calendar date `YYYY-MM-DD`.
    Date,
    /// Time of day `HH:MM`.
    Time,
    /// Free text.
    Text,
}

impl ParamType {
    /// Lowercase name as written in files.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Date => "date",
            ParamType::Time => "time",
            ParamType::Text => "text",
        }
    }
}

/// Defaults for stages and tasks.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// Time of day of a deadline when none is given (default 18:00).
    #[serde(default)]
    pub due_at: Option<TimeOfDay>,
    /// Time of day a stage opens when none is given (default 09:00).
    #[serde(default)]
    pub opens_at: Option<TimeOfDay>,
    /// What to do when a calendar-day date lands on a non-working day (default keep).
    #[serde(default)]
    pub if_non_working: Option<Roll>,
    /// Reminders for every task that does not set its own.
    #[serde(default)]
    pub reminders: Option<Reminders>,
    /// Escalation chain for every task that does not set its own.
    #[serde(default)]
    pub escalation: Option<Vec<Sp<Rung>>>,
    /// Working days a reopened task gets from the day it is reopened, unless the office
    /// gives a deadline (default 5).
    #[serde(default)]
    pub reopen_working_days: Option<u32>,
}

/// A stage: a window in the round, holding tasks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Stage {
    /// Unique id within the workflow.
    pub id: Sp<String>,
    /// Title (Chinese), e.g. 组织实施.
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// When the stage opens; default: when the previous stage closes (the first: round start).
    #[serde(default)]
    pub opens: Option<Sp<When>>,
    /// When the stage closes. Give `closes` or `duration`.
    #[serde(default)]
    pub closes: Option<Sp<When>>,
    /// How long the stage runs from its opening (e.g. a public notice of N days).
    #[serde(default)]
    pub duration: Option<Sp<Offset>>,
    /// The tasks of this stage.
    #[serde(default)]
    pub tasks: Vec<Task>,
}

/// A task: something an assignee must do by a deadline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Task {
    /// Unique id within the workflow.
    pub id: Sp<String>,
    /// Title (Chinese), e.g. 组织推荐.
    pub title: String,
    /// What to do; a minijinja template (variables: see docs/workflow-format.md).
    #[serde(default)]
    pub description: Option<Sp<String>>,
    /// Who must do it: one role, or every member of a directory group (fan-out).
    pub assignee: Sp<Assignee>,
    /// The deadline.
    pub due: Sp<When>,
    /// Tasks that must be done before this one (ordering; checked for cycles).
    #[serde(default)]
    pub after: Vec<Sp<String>>,
    /// Reminders; default from `defaults.reminders`.
    #[serde(default)]
    pub reminders: Option<Reminders>,
    /// Escalation chain; default from `defaults.escalation`.
    #[serde(default)]
    pub escalation: Option<Vec<Sp<Rung>>>,
    /// Message templates for this task only.
    #[serde(default)]
    pub templates: Option<Templates>,
    /// The task collects a rating for each in-pool person of its branch (考核等次).
    #[serde(default)]
    pub ratings: Option<Sp<crate::core::assessment::Ratings>>,
    /// What the assignee hands in on its task page (fields, files, blank forms).
    #[serde(default)]
    pub submit: Option<Sp<crate::core::submission::Submit>>,
}

/// Who a task is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AssigneeForm")]
pub enum Assignee {
    /// One task for every member of this directory group (e.g. `branches`).
    Group(String),
    /// One task for this directory role (e.g. `organization_office`).
    Role(String),
    /// One task for every person in a pool (`{each: reserve, tier: [1, 2]}`).
    Each(EachPerson),
}

/// A task per person: which people, and to whom each task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EachPerson {
    /// The pool; `reserve` (后备干部库) is the only one.
    pub pool: String,
    /// Only people of these tiers (梯队 1–4); empty: every tier.
    pub tier: Vec<u8>,
    /// The role every task goes to; None: the person's own branch.
    pub to_role: Option<String>,
}

/// The pools an `each:` assignee may name.
pub const POOLS: &[&str] = &["reserve"];

/// Where a per-person task goes instead of the person's branch.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RouteTo {
    /// A directory role, e.g. `organization_office`.
    pub role: String,
}

/// The assignee as written: the keys of every form, checked by [`Assignee::try_from`] so
/// that unknown keys are still reported by the loader with their positions.
#[derive(Debug, Clone, Deserialize)]
pub struct AssigneeForm {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    each: Option<String>,
    #[serde(default)]
    tier: Option<Vec<i64>>,
    #[serde(default)]
    to: Option<RouteTo>,
}

impl TryFrom<AssigneeForm> for Assignee {
    type Error = String;
    fn try_from(f: AssigneeForm) -> Result<Self, String> {
        let given: Vec<&str> = [
            ("group", f.group.is_some()),
            ("role", f.role.is_some()),
            ("each", f.each.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if given.len() != 1 {
            return Err(if given.is_empty() {
                "an assignee needs one of `group`, `role` or `each`, e.g. `{group: branches}`, `{role: organization_office}` or `{each: reserve}`".into()
            } else {
                format!(
                    "an assignee takes one of `group`, `role` or `each`, not {}",
                    given
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            });
        }
        if f.each.is_none()
            && let Some(k) = [("tier", f.tier.is_some()), ("to", f.to.is_some())]
                .into_iter()
                .find_map(|(k, set)| set.then_some(k))
        {
            return Err(format!(
                "`{k}` goes with `each:` only (one task per person); a `group` or `role` assignee has no people"
            ));
        }
        match (f.group, f.role, f.each) {
            (Some(g), _, _) => Ok(Assignee::Group(g)),
            (_, Some(r), _) => Ok(Assignee::Role(r)),
            (_, _, Some(pool)) => {
                if !POOLS.contains(&pool.as_str()) {
                    return Err(format!(
                        "unknown pool `{pool}`; write `each: reserve` (the reserve-cadre pool, 后备干部库)"
                    ));
                }
                let mut tier = Vec::new();
                for t in f.tier.unwrap_or_default() {
                    match u8::try_from(t) {
                        Ok(n @ 1..=4) if !tier.contains(&n) => tier.push(n),
                        Ok(1..=4) => return Err(format!("tier {t} is listed twice")),
                        _ => {
                            return Err(format!(
                                "tier {t} does not exist; tiers (梯队) are 1 to 4, e.g. `tier: [1, 2]`"
                            ));
                        }
                    }
                }
                Ok(Assignee::Each(EachPerson {
                    pool,
                    tier,
                    to_role: f.to.map(|t| t.role),
                }))
            }
            (None, None, None) => Err("an assignee needs one of `group`, `role` or `each`".into()),
        }
    }
}

impl JsonSchema for Assignee {
    fn schema_name() -> Cow<'static, str> {
        "Assignee".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Who a task is for.",
            "oneOf": [
                {"description": "One task for every member of this directory group (e.g. `branches`).",
                 "type": "object", "properties": {"group": {"type": "string"}},
                 "additionalProperties": false, "required": ["group"]},
                {"description": "One task for this directory role (e.g. `organization_office`).",
                 "type": "object", "properties": {"role": {"type": "string"}},
                 "additionalProperties": false, "required": ["role"]},
                {"description": "One task for every person in the pool (in the pool on the day the round starts), routed to the person's branch or to `to.role`.",
                 "type": "object",
                 "properties": {
                    "each": {"enum": POOLS, "description": "The pool: `reserve` (后备干部库)."},
                    "tier": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 4}, "uniqueItems": true,
                             "description": "Only people of these tiers (梯队); default every tier."},
                    "to": {"type": "object", "properties": {"role": {"type": "string", "description": "A directory role."}},
                           "additionalProperties": false, "required": ["role"],
                           "description": "Send every task to this role instead of the person's branch."}
                 },
                 "additionalProperties": false, "required": ["each"]}
            ]
        })
    }
}

/// An instant, written as a base (`on` a date or `from` an anchor), an optional offset,
/// a time of day and a policy for non-working days.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct When {
    /// An absolute date.
    #[serde(default)]
    pub on: Option<Sp<Val<NaiveDate>>>,
    /// What the offset counts from.
    #[serde(default)]
    pub from: Option<Sp<Anchor>>,
    /// Calendar days after (negative: before) the base.
    #[serde(default)]
    pub days: Option<Sp<Val<i64>>>,
    /// Working days after (negative: before) the base, per the holiday calendar.
    #[serde(default)]
    pub working_days: Option<Sp<Val<i64>>>,
    /// Hours after the base instant.
    #[serde(default)]
    pub hours: Option<Sp<Val<i64>>>,
    /// Time of day, `HH:MM`.
    #[serde(default)]
    pub at: Option<Sp<Val<TimeOfDay>>>,
    /// What to do when the date lands on a non-working day.
    #[serde(default)]
    pub if_non_working: Option<Roll>,
}

/// What a relative instant counts from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The round's start date.
    RoundStart,
    /// The opening of the enclosing stage.
    StageOpen,
    /// The closing of the enclosing stage.
    StageClose,
    /// The opening of the named stage.
    OpenOf(String),
    /// The closing of the named stage.
    CloseOf(String),
    /// The completion of the named task (by the same assignee when both fan out to one group).
    Done(String),
    /// An outside event declared under `events:`; the task is owed each time it happens.
    Event(String),
}

/// A length of time: exactly one of days, working days or hours.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Offset {
    /// Calendar days.
    #[serde(default)]
    pub days: Option<Sp<Val<i64>>>,
    /// Working days per the holiday calendar.
    #[serde(default)]
    pub working_days: Option<Sp<Val<i64>>>,
    /// Hours.
    #[serde(default)]
    pub hours: Option<Sp<Val<i64>>>,
}

/// When to remind the assignee.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Reminders {
    /// Offsets before the deadline, e.g. `[{days: 3}, {days: 1}]`.
    #[serde(default)]
    pub before: Vec<Sp<Offset>>,
    /// Repeated reminders while the task is overdue.
    #[serde(default)]
    pub overdue: Option<Sp<Overdue>>,
}

/// Repeated reminders after the deadline.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Overdue {
    /// Interval between reminders.
    pub every: Sp<Offset>,
    /// At most this many.
    pub max: u32,
}

/// One rung of an escalation chain: this long after the deadline, tell this role.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Rung {
    /// Time after the deadline.
    pub after: Sp<Offset>,
    /// Directory role to notify.
    pub to: Sp<String>,
}

/// When a recurring programme starts a round by itself. Give `yearly` or `cron`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Schedule {
    /// A yearly rule, e.g. `{month: 12, day: 1, at: "09:00"}`.
    #[serde(default)]
    pub yearly: Option<Sp<Yearly>>,
    /// A 5-field cron expression (minute hour day month weekday) in the workflow's time zone.
    #[serde(default)]
    pub cron: Option<Sp<String>>,
    /// With `yearly`: fire every N years (2 for two-year terms), counting from `since`.
    #[serde(default)]
    pub every_years: Option<Sp<u32>>,
    /// With `every_years`: a year in which it fires.
    #[serde(default)]
    pub since: Option<i32>,
    /// A kickoff that fell due while the daemon was down: `fire_once` (default) or `skip`.
    #[serde(default)]
    pub misfire: Option<Misfire>,
}

/// Catch-up policy for a missed kickoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Start the missed round once at start-up.
    #[default]
    FireOnce,
    /// Drop missed kickoffs.
    Skip,
}

/// A yearly kickoff rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Yearly {
    /// Month 1–12.
    pub month: Sp<u32>,
    /// Day of month 1–31, or `first_working_day`, `last_working_day`, `last`.
    pub day: Sp<DayOfMonth>,
    /// Time of day (default 09:00).
    #[serde(default)]
    pub at: Option<TimeOfDay>,
}

/// Which day of the month a yearly rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOfMonth {
    /// A fixed day number.
    Day(u32),
    /// The first working day per the holiday calendar.
    FirstWorkingDay,
    /// The last working day per the holiday calendar.
    LastWorkingDay,
    /// The last calendar day.
    Last,
}

/// An outside event that owes tasks.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventDef {
    /// Identifier used in `from: {event: id}`.
    pub id: Sp<String>,
    /// Title (Chinese), e.g. 调整岗位.
    pub title: String,
    /// Whether a branch may report it itself on its signed page (e.g. 生病住院, which the
    /// branch learns of first); otherwise only the office records it.
    #[serde(default)]
    pub branch_reports: bool,
}

/// A counting rule: every person in the pool owes at least `min_per_year` of these a year,
/// counted from 1 January to `check_on`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CountRule {
    /// Identifier, unique among the workflow's counts.
    pub id: Sp<String>,
    /// Title (Chinese), e.g. 年度谈心谈话.
    pub title: String,
    /// Tasks whose instances done for a person count (tasks per person or owed by events).
    #[serde(default)]
    pub tasks: Vec<Sp<String>>,
    /// Recorded events of these kinds (declared under `events:`) count too.
    #[serde(default)]
    pub events: Vec<Sp<String>>,
    /// How many a year each person is owed (at least 1).
    pub min_per_year: Sp<u32>,
    /// The day of the year the count is checked, and up to which it counts (default 31
    /// December).
    #[serde(default)]
    pub check_on: Option<Sp<MonthDay>>,
}

/// A day of the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MonthDay {
    /// Month 1–12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
}

impl MonthDay {
    /// This day in `year`; 29 February is the 28th in other years.
    pub fn in_year(self, year: i32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, self.month, self.day).or_else(|| {
            (self.month == 2 && self.day == 29)
                .then(|| NaiveDate::from_ymd_opt(year, 2, 28))
                .flatten()
        })
    }
}

/// Message templates (minijinja). Any left out use the built-in Chinese template.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Templates {
    /// Before the deadline.
    #[serde(default)]
    pub reminder: Option<MessageTemplate>,
    /// On the day of the deadline.
    #[serde(default)]
    pub due_today: Option<MessageTemplate>,
    /// After the deadline, repeated.
    #[serde(default)]
    pub overdue: Option<MessageTemplate>,
    /// To a rung of the escalation chain.
    #[serde(default)]
    pub escalation: Option<MessageTemplate>,
    /// When a round starts.
    #[serde(default)]
    pub kickoff: Option<MessageTemplate>,
}

impl Templates {
    /// The templates that are set, with their kind name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &MessageTemplate)> {
        [
            ("reminder", &self.reminder),
            ("due_today", &self.due_today),
            ("overdue", &self.overdue),
            ("escalation", &self.escalation),
            ("kickoff", &self.kickoff),
        ]
        .into_iter()
        .filter_map(|(k, t)| t.as_ref().map(|t| (k, t)))
    }
}

/// One message: subject, plain text and optional HTML body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MessageTemplate {
    /// Subject line.
    pub subject: Sp<String>,
    /// Plain-text body.
    pub text: Sp<String>,
    /// HTML body; when absent, made from the text.
    #[serde(default)]
    pub html: Option<Sp<String>>,
}

impl JsonSchema for Roll {
    fn schema_name() -> Cow<'static, str> {
        "Roll".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"enum": ["keep", "forward", "backward"], "description": "keep the date, roll forward to the next working day, or back to the previous one"})
    }
}

/// A time of day `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(pub chrono::NaiveTime);

impl TimeOfDay {
    /// Hour and minute.
    pub fn hm(h: u32, m: u32) -> Self {
        TimeOfDay(chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap_or(chrono::NaiveTime::MIN))
    }
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map(TimeOfDay)
            .map_err(|_| format!("`{s}` is not a time of day; write HH:MM, e.g. \"18:00\""))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for TimeOfDay {
    fn schema_name() -> Cow<'static, str> {
        "TimeOfDay".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "Time of day HH:MM"})
    }
}

impl<'de> Deserialize<'de> for DayOfMonth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DayOfMonth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a day 1-31, `first_working_day`, `last_working_day` or `last`")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DayOfMonth, E> {
                match u32::try_from(v) {
                    Ok(d @ 1..=31) => Ok(DayOfMonth::Day(d)),
                    _ => Err(E::custom(format!("day {v} is not between 1 and 31"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DayOfMonth, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("day {v} is not between 1 and 31"))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DayOfMonth, E> {
                match v {
                    "first_working_day" => Ok(DayOfMonth::FirstWorkingDay),
                    "last_working_day" => Ok(DayOfMonth::LastWorkingDay),
                    "last" => Ok(DayOfMonth::Last),
                    _ => Err(E::custom(format!(
                        "unknown variant `{v}`, expected one of `first_working_day`, `last_working_day`, `last`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DayOfMonth {
    fn schema_name() -> Cow<'static, str> {
        "DayOfMonth".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [
            {"type": "integer", "minimum": 1, "maximum": 31},
            {"enum": ["first_working_day", "last_working_day", "last"]}
        ]})
    }
}

/// A literal value, or a reference `"${param}"` to a workflow parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val<T> {
    /// Written directly.
    Lit(T),
    /// Taken from the named parameter when a round is planned.
    Param(String),
}

/// Types that can appear as a literal in a [`Val`].
pub trait Literal: Sized {
    /// The parameter type that supplies this kind of value.
    const TYPE: ParamType;
    /// From a YAML integer.
    fn from_int(v: i64) -> Result<Self, String>;
    /// From a YAML string.
    fn from_text(s: &str) -> Result<Self, String>;
    /// Schema of the literal form.
    fn literal_schema() -> serde_json::Value;
}

impl Literal for i64 {
    const TYPE: ParamType = ParamType::Integer;
    fn from_int(v: i64) -> Result<Self, String> {
        Ok(v)
    }
    fn from_text(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number (or a `${{param}}` reference)"))
    }
    fn literal_schema() -> serde_json::Value {
        serde_json::json!({"type": "integer"})
    }
}

impl Literal for NaiveDate {
    const TYPE: ParamType = ParamType::Date;
    fn from_int(v: i64) -> Result<Self, String> {
        Err(format!("`{v}` is not a date; write YYYY-MM-DD"))
    }
    fn from_text(s: &str) -> Result<Self, String> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| format!("`{s}` is not a date; write YYYY-MM-DD, e.g. 2019-07-12"))
    }
    fn literal_schema() -> serde_json::Value {
        serde_json::json!({"type": "string", "format": "date"})
    }
}

impl Literal for TimeOfDay {
    const TYPE: ParamType = ParamType::Time;
    fn from_int(v: i64) -> Result<Self, String> {
        Err(format!("`{v}` is not a time of day; write \"HH:MM\""))
    }
    fn from_text(s: &str) -> Result<Self, String> {
        s.parse()
    }
    fn literal_schema() -> serde_json::Value {
        serde_json::json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"})
    }
}

/// The parameter name in `"${name}"`, if `s` is such a reference.
pub fn param_ref(s: &str) -> Option<&str> {
    s.trim()
        .strip_prefix("${")?
        .strip_suffix('}')
        .map(str::trim)
}

impl<'de, T: Literal> Deserialize<'de> for Val<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Literal> serde::de::Visitor<'_> for V<T> {
            type Value = Val<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a {} or a \"${{param}}\" reference", T::TYPE.name())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Val<T>, E> {
                T::from_int(v).map(Val::Lit).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Val<T>, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("number too large"))?;
                self.visit_i64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Val<T>, E> {
                match param_ref(v) {
                    Some(name) => Ok(Val::Param(name.to_string())),
                    None => T::from_text(v).map(Val::Lit).map_err(E::custom),
                }
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Literal> JsonSchema for Val<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}OrParam", T::TYPE.name()).into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [
            T::literal_schema(),
            {"type": "string", "pattern": "^\\$\\{\\s*[A-Za-z_][A-Za-z0-9_]*\\s*\\}$", "description": "reference to a parameter"}
        ]})
    }
}

impl Workflow {
    /// Every task with the index of its stage, in file order.
    pub fn tasks(&self) -> impl Iterator<Item = (usize, &Task)> {
        self.stages
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.tasks.iter().map(move |t| (i, t)))
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<(usize, &Task)> {
        self.tasks().find(|(_, t)| t.id.value == id)
    }

    /// The index of the stage with this id.
    pub fn stage_index(&self, id: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.id.value == id)
    }

    /// The parameter with this id.
    pub fn parameter(&self, id: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.id.value == id)
    }
}
