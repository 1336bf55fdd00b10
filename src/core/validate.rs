//! Validation of workflow files: structure, references, cycles, templates, schedules, and
//! a trial plan that catches date problems (deadline before its stage, reminder after its
//! deadline, years missing from the holiday calendar).
//!
//! Architecture Invariant: every problem of a file is reported at once; validation never
//! stops at the first one, and never reads the clock (`today` is passed in).

use crate::core::calendar::Calendar;
use crate::core::definition::{Anchor, Workflow};
use crate::core::diagnostic::{Diagnostics, Loc, Severity, Sp, suggest};
use crate::core::directory::Directory;
use crate::core::plan::{PlanInput, Problem, plan};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a workflow is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Groups and roles that workflows may name.
    pub directory: &'a Directory,
    /// Working days.
    pub calendar: &'a Calendar,
    /// Time zone for workflows that do not set one.
    pub default_tz: Tz,
    /// Today's date, for the trial plan of workflows without `example_start`.
    pub today: NaiveDate,
}

/// Variables every message template and task description may use.
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "workflow",
    "round",
    "stage",
    "task",
    "assignee",
    "recipient",
    "deadline",
    "days_left",
    "params",
    "link",
    "items",
    "office",
    "event",
    "person",
];

/// Parse and check one workflow file. The workflow is returned only when it has no errors.
pub fn validate_workflow(
    file: &str,
    text: &str,
    ctx: Context<'_>,
) -> (Option<Workflow>, Diagnostics) {
    let mut d = Diagnostics::new(file);
    let (wf, gaps) = crate::core::yaml::parse_partial::<Workflow>(text, &mut d);
    let Some(wf) = wf else {
        return (None, d);
    };
    // A value that could not be read was left out; the checks still run on the rest, but
    // what only follows from the gap (a task without a deadline, a reference to a task that
    // was left out) is not reported.
    let before = d.items().len();
    check(&wf, ctx, &mut d, !gaps.is_empty());
    d.retain_from(before, |x| !gaps.covers(x));
    if d.has_errors() || !gaps.is_empty() {
        (None, d)
    } else {
        (Some(wf), d)
    }
}

/// The time zone of a workflow.
pub fn workflow_tz(wf: &Workflow, default_tz: Tz) -> Tz {
    wf.timezone
        .as_ref()
        .and_then(|t| t.value.parse().ok())
        .unwrap_or(default_tz)
}

/// The start date `validate` and `plan` use when none is given.
pub fn default_start(wf: &Workflow, ctx: Context<'_>) -> NaiveDate {
    if let Some(s) = &wf.example_start {
        return s.value;
    }
    if let Some(s) = &wf.schedule {
        let tz = workflow_tz(wf, ctx.default_tz);
        let noon = ctx.today.and_hms_opt(12, 0, 0).unwrap_or_default();
        if let Some(after) = tz.from_local_datetime(&noon).earliest()
            && let Ok(Some(next)) =
                crate::core::schedule::next_kickoff(s, tz, ctx.calendar, after.with_timezone(&Utc))
        {
            return next.date_naive();
        }
    }
    ctx.today
}

fn push(d: &mut Diagnostics, p: Problem) {
    match p.severity {
        Severity::Error => d.error(p.code, p.loc, p.message, p.hint),
        Severity::Warning => d.warning(p.code, p.loc, p.message, p.hint),
    }
}

fn check_unique<'a>(d: &mut Diagnostics, what: &str, ids: impl Iterator<Item = &'a Sp<String>>) {
    let mut seen: HashMap<&str, Loc> = HashMap::new();
    for id in ids {
        if let Some(first) = seen.get(id.value.as_str()) {
            d.error(
                "duplicate-id",
                id.loc,
                format!(
                    "{what} id `{}` is already used at line {}",
                    id.value, first.line
                ),
                Some(format!("give every {what} a unique id")),
            );
        } else {
            seen.insert(&id.value, id.loc);
        }
        if !id
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            || id.value.is_empty()
        {
            d.error(
                "invalid-id",
                id.loc,
                format!(
                    "{what} id `{}` may use only a-z, 0-9, `_` and `-`",
                    id.value
                ),
                Some("ids appear in links and logs; put Chinese names in `title`".into()),
            );
        }
    }
}

/// `gaps`: entries were left out while reading, so an empty list may only be their
/// consequence (a stage that could not be read leaves `stages` empty).
fn check(wf: &Workflow, ctx: Context<'_>, d: &mut Diagnostics, gaps: bool) {
    check_unique(d, "workflow", std::iter::once(&wf.id));
    check_unique(d, "stage", wf.stages.iter().map(|s| &s.id));
    check_unique(d, "task", wf.tasks().map(|(_, t)| &t.id));
    check_unique(d, "parameter", wf.parameters.iter().map(|p| &p.id));
    check_unique(d, "event", wf.events.iter().map(|e| &e.id));
    crate::core::assessment::check(wf, d);
    let stages_missing = d
        .items()
        .iter()
        .any(|x| x.code == "missing-key" && x.message.contains("`stages`"));
    if wf.stages.is_empty() && !stages_missing && !gaps {
        d.error(
            "invalid-value",
            wf.id.loc,
            "the workflow has no stages",
            Some("add `stages:` with at least one stage".to_string()),
        );
    }
    if let Some(tz) = &wf.timezone
        && tz.value.parse::<Tz>().is_err()
    {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
        d.error(
            "invalid-value",
            tz.loc,
            format!("unknown time zone `{}`", tz.value),
            Some(suggest(&tz.value, names.filter(|n| n.starts_with("Asia/")))),
        );
    }
    for (_, t) in wf.tasks() {
        if let Some(s) = &t.submit {
            crate::core::submission::check_declaration(&s.value, d);
        }
    }
    let task_ids: Vec<&str> = wf.tasks().map(|(_, t)| t.id.value.as_str()).collect();
    for (_, t) in wf.tasks() {
        for a in &t.after {
            if !task_ids.contains(&a.value.as_str()) {
                d.error(
                    "unknown-reference",
                    a.loc,
                    format!("unknown task `{}`", a.value),
                    Some(suggest(&a.value, task_ids.iter().copied())),
                );
            }
        }
        for rung in t.escalation.iter().flatten() {
            check_role(d, ctx.directory, &rung.to);
        }
    }
    for rung in wf.defaults.escalation.iter().flatten() {
        check_role(d, ctx.directory, &rung.to);
    }
    check_counts(wf, d);
    check_after_cycles(wf, d);
    check_templates(wf, d);
    if let Some(s) = &wf.schedule {
        for p in crate::core::schedule::check(s) {
            push(d, p);
        }
    }
    if d.has_errors()
        && d.items()
            .iter()
            .any(|x| x.code == "invalid-value" && x.message.contains("time zone"))
    {
        return;
    }
    let tz = workflow_tz(wf, ctx.default_tz);
    let start = default_start(wf, ctx);
    let no_params = BTreeMap::new();
    let (_, problems) = plan(PlanInput {
        workflow: wf,
        directory: ctx.directory,
        calendar: ctx.calendar,
        tz,
        start,
        params: &no_params,
        units: None,
        done: None,
        events: None,
        people: None,
    });
    for p in problems {
        push(d, p);
    }
    if let Some(s) = &wf.schedule {
        check_next_kickoff(wf, s, tz, ctx, d);
    }
}

/// The next real kickoff may need a year the calendar lacks. The file is still valid (the
/// notice is often published late in the year), so this is a warning: a year right after
/// the last holiday file is planned on the provisional calendar (and marked), a later one
/// cannot be planned until the files are added.
fn check_next_kickoff(
    wf: &Workflow,
    s: &Sp<crate::core::definition::Schedule>,
    tz: Tz,
    ctx: Context<'_>,
    d: &mut Diagnostics,
) {
    let noon = ctx.today.and_hms_opt(12, 0, 0).unwrap_or_default();
    let Some(after) = tz.from_local_datetime(&noon).earliest() else {
        return;
    };
    let next =
        match crate::core::schedule::next_kickoff(s, tz, ctx.calendar, after.with_timezone(&Utc)) {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(crate::core::schedule::ScheduleError::Calendar(e)) => {
                d.warning(
                    "calendar-year-missing",
                    s.loc,
                    format!("the next kickoff cannot be computed yet: {e}"),
                    Some("the round will not start until the holiday file is added".into()),
                );
                return;
            }
            Err(_) => return, // shape and cron errors are reported by schedule::check
        };
    if crate::core::schedule::is_provisional(s, ctx.calendar, next.date_naive()) {
        let year = next.year();
        d.warning(
            "calendar-provisional",
            s.loc,
            format!(
                "the next kickoff ({}) falls on a working day of {year}, which has no holiday file yet: it is the provisional calendar's date",
                crate::core::timefmt::zh_date(next.date_naive())
            ),
            Some(format!(
                "add config/calendar/{year}.json when the State Council notice is out; the kickoff moves if the notice says otherwise"
            )),
        );
    }
    if wf
        .example_start
        .as_ref()
        .is_some_and(|x| x.value == next.date_naive())
    {
        return;
    }
    let no_params = BTreeMap::new();
    let (_, problems) = plan(PlanInput {
        workflow: wf,
        directory: ctx.directory,
        calendar: ctx.calendar,
        tz,
        start: next.date_naive(),
        params: &no_params,
        units: None,
        done: None,
        events: None,
        people: None,
    });
    for p in problems
        .into_iter()
        .filter(|p| p.code == "calendar-year-missing" || p.code == "calendar-provisional")
    {
        let what = if p.code == "calendar-provisional" {
            "is planned provisionally"
        } else {
            "cannot be planned yet"
        };
        d.warning(
            p.code,
            p.loc,
            format!(
                "the next round ({}) {what}: {}",
                crate::core::timefmt::zh_date(next.date_naive()),
                p.message
            ),
            p.hint,
        );
    }
}

fn check_role(d: &mut Diagnostics, dir: &Directory, role: &Sp<String>) {
    if dir.role(&role.value).is_none() {
        d.error(
            "unknown-reference",
            role.loc,
            format!("unknown directory role `{}`", role.value),
            Some(suggest(&role.value, dir.role_ids())),
        );
    }
}

/// `after:` lists and `from: {done: ...}` anchors must not form a loop.
fn check_after_cycles(wf: &Workflow, d: &mut Diagnostics) {
    let mut edges: BTreeMap<&str, Vec<(&str, Loc)>> = BTreeMap::new();
    for (_, t) in wf.tasks() {
        let e = edges.entry(t.id.value.as_str()).or_default();
        for a in &t.after {
            e.push((a.value.as_str(), a.loc));
        }
        if let Some(Sp {
            value: Anchor::Done(x),
            loc,
        }) = &t.due.from
        {
            e.push((x.as_str(), *loc));
        }
    }
    let mut done: HashSet<&str> = HashSet::new();
    let mut reported: HashSet<Vec<&str>> = HashSet::new();
    for start in edges.keys() {
        let mut path: Vec<&str> = Vec::new();
        dfs(start, &edges, &mut path, &mut done, &mut reported, d);
    }
}

fn dfs<'a>(
    n: &'a str,
    edges: &BTreeMap<&'a str, Vec<(&'a str, Loc)>>,
    path: &mut Vec<&'a str>,
    done: &mut HashSet<&'a str>,
    reported: &mut HashSet<Vec<&'a str>>,
    d: &mut Diagnostics,
) {
    if done.contains(n) {
        return;
    }
    path.push(n);
    for (m, loc) in edges.get(n).into_iter().flatten() {
        if let Some(pos) = path.iter().position(|x| x == m) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            let mut key = cycle.clone();
            key.sort();
            if reported.insert(key) {
                cycle.push(m);
                d.error(
                    "cycle",
                    *loc,
                    format!(
                        "tasks wait for each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                    Some(
                        "remove one of the `after:` entries or `from: {done: ...}` anchors".into(),
                    ),
                );
            }
        } else if edges.contains_key(m) {
            dfs(m, edges, path, done, reported, d);
        }
    }
    path.pop();
    done.insert(n);
}

fn check_templates(wf: &Workflow, d: &mut Diagnostics) {
    let params: Vec<&str> = wf.parameters.iter().map(|p| p.id.value.as_str()).collect();
    let mut sources: Vec<(String, &Sp<String>)> = Vec::new();
    for (kind, t) in wf.templates.iter() {
        sources.push((format!("template `{kind}` subject"), &t.subject));
        sources.push((format!("template `{kind}` text"), &t.text));
        if let Some(h) = &t.html {
            sources.push((format!("template `{kind}` html"), h));
        }
    }
    for (_, task) in wf.tasks() {
        if let Some(desc) = &task.description {
            sources.push((format!("description of task `{}`", task.id.value), desc));
        }
        for (kind, t) in task.templates.iter().flat_map(|t| t.iter()) {
            sources.push((
                format!("template `{kind}` subject of task `{}`", task.id.value),
                &t.subject,
            ));
            sources.push((
                format!("template `{kind}` text of task `{}`", task.id.value),
                &t.text,
            ));
            if let Some(h) = &t.html {
                sources.push((
                    format!("template `{kind}` html of task `{}`", task.id.value),
                    h,
                ));
            }
        }
    }
    for (what, src) in sources {
        for p in check_template(&what, src, &params) {
            push(d, p);
        }
    }
}

/// Compile a template and check every variable it reads.
pub fn check_template(what: &str, src: &Sp<String>, params: &[&str]) -> Vec<Problem> {
    let mut out = Vec::new();
    let env = minijinja::Environment::new();
    match env.template_from_str(&src.value) {
        Err(e) => out.push(Problem {
            severity: Severity::Error,
            code: "template-syntax",
            loc: src.loc,
            message: format!(
                "{what} does not compile: {}",
                e.detail().unwrap_or("syntax error")
            ),
            hint: Some(format!(
                "check `{{{{ }}}}` and `{{% %}}` pairs (template line {})",
                e.line().unwrap_or(1)
            )),
        }),
        Ok(t) => {
            let mut vars: Vec<String> = t.undeclared_variables(true).into_iter().collect();
            vars.sort();
            for v in vars {
                let mut parts = v.split('.');
                let head = parts.next().unwrap_or("");
                if !TEMPLATE_VARIABLES.contains(&head) {
                    out.push(Problem {
                        severity: Severity::Error,
                        code: "unknown-reference",
                        loc: src.loc,
                        message: format!("{what} uses unknown template variable `{head}`"),
                        hint: Some(suggest(head, TEMPLATE_VARIABLES.iter().copied())),
                    });
                } else if head == "params"
                    && let Some(p) = parts.next()
                    && !params.contains(&p)
                {
                    out.push(Problem {
                        severity: Severity::Error,
                        code: "unknown-reference",
                        loc: src.loc,
                        message: format!("{what} uses unknown parameter `params.{p}`"),
                        hint: Some(suggest(p, params.iter().copied())),
                    });
                }
            }
        }
    }
    out
}

/// Counting rules: ids unique, counted tasks per person (or owed by an event), counted
/// events declared, a positive minimum, a day that exists.
fn check_counts(wf: &Workflow, d: &mut Diagnostics) {
    use crate::core::definition::Assignee;
    check_unique(d, "count", wf.counts.iter().map(|c| &c.id));
    let task_ids: Vec<&str> = wf.tasks().map(|(_, t)| t.id.value.as_str()).collect();
    let event_ids: Vec<&str> = wf.events.iter().map(|e| e.id.value.as_str()).collect();
    for c in &wf.counts {
        if c.tasks.is_empty() && c.events.is_empty() {
            d.error(
                "invalid-value",
                c.id.loc,
                format!("count `{}` counts nothing", c.id.value),
                Some(
                    "list the `tasks` (per person or owed by an event) and/or `events` it counts"
                        .into(),
                ),
            );
        }
        for t in &c.tasks {
            let Some((_, def)) = wf.task(&t.value) else {
                d.error(
                    "unknown-reference",
                    t.loc,
                    format!("unknown task `{}`", t.value),
                    Some(suggest(&t.value, task_ids.iter().copied())),
                );
                continue;
            };
            let per_person = matches!(def.assignee.value, Assignee::Each(_))
                || matches!(
                    def.due.from.as_ref().map(|a| &a.value),
                    Some(Anchor::Event(_))
                );
            if !per_person {
                d.error(
                    "invalid-value",
                    t.loc,
                    format!(
                        "task `{}` is not made for a person, so it cannot be counted per person",
                        t.value
                    ),
                    Some(
                        "count tasks with `assignee: {each: reserve}` or due `{from: {event: …}}`"
                            .into(),
                    ),
                );
            }
        }
        for e in &c.events {
            if !event_ids.contains(&e.value.as_str()) {
                d.error(
                    "unknown-reference",
                    e.loc,
                    format!("unknown event `{}`", e.value),
                    Some(format!(
                        "declare it under `events:`; {}",
                        suggest(&e.value, event_ids.iter().copied())
                    )),
                );
            }
        }
        if c.min_per_year.value == 0 {
            d.error(
                "invalid-value",
                c.min_per_year.loc,
                "`min_per_year: 0` asks for nothing".to_string(),
                Some("write how many a year each person is owed, e.g. `min_per_year: 2`".into()),
            );
        }
        if let Some(day) = &c.check_on
            && day.value.in_year(2023).is_none()
        {
            d.error(
                "invalid-value",
                day.loc,
                format!(
                    "{}月{}日 is not a day of the year",
                    day.value.month, day.value.day
                ),
                Some("write e.g. `check_on: {month: 12, day: 20}`".into()),
            );
        }
    }
}
