//! Fan-out: each task's instances per assignee (group members or a role), and the timers
//! (reminders, deadline, overdue reminders, escalation rungs) with their stable keys.

use super::{
    MAX_OVERDUE_REMINDERS, PersonRef, Plan, PlannedStage, PlannedTask, PlannedTimer, Planner,
    Point, TimerKind, first_rung_above, len_value,
};
use crate::core::definition::{Anchor, Assignee, Rung, Task};
use crate::core::diagnostic::{Sp, suggest};
use crate::core::directory::Party;
use crate::core::state::AssigneeKind;
use chrono::DateTime;
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// One timer of a task before fan-out: kind, number, instant, provisional, escalation role.
type TaskTimer = (TimerKind, u32, DateTime<Tz>, bool, Option<String>);

impl<'a> Planner<'a> {
    /// The assignees of a task, each with the person its task is made for (`each:`).
    fn assignees(&mut self, task: &Task) -> Vec<(Party, Option<PersonRef>)> {
        let dir = self.input.directory;
        match &task.assignee.value {
            Assignee::Group(g) => match dir.group(g) {
                Some(group) => dir
                    .members(group)
                    .into_iter()
                    .filter(|u| self.takes_part(&u.id.value))
                    .map(|u| (u.party(), None))
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
                if !self.known_role(task, r) {
                    return Vec::new();
                }
                vec![(dir.role_party(r), None)]
            }
            Assignee::Each(each) => {
                if let Some(r) = &each.to_role
                    && !self.known_role(task, r)
                {
                    return Vec::new();
                }
                let people = self.input.people.unwrap_or(&[]);
                let mut out = Vec::new();
                for p in people {
                    // The unit filter is not applied: the caller passes the people who take
                    // part (a person added to a round may be of a branch without tasks).
                    // Keep in step with `each_takes` (which tells which tasks a round
                    // planned slice by slice has): the tier here, the unit below.
                    if !(each.tier.is_empty() || each.tier.contains(&p.tier)) {
                        continue;
                    }
                    let party = match (&each.to_role, dir.unit(&p.unit)) {
                        (Some(r), _) => dir.role_party(r),
                        (None, Some(u)) => u.party(),
                        (None, None) => {
                            self.warning(
                                "person-unit-unknown",
                                task.assignee.loc,
                                format!(
                                    "{} (person {}) belongs to unit `{}`, which is not in the directory: no task `{}` for them",
                                    p.name, p.id, p.unit, task.id.value
                                ),
                                Some("move the person to a unit of the directory (`yanzhen pool edit ID --unit …`)".into()),
                            );
                            continue;
                        }
                    };
                    out.push((party, Some(p.clone())));
                }
                out
            }
        }
    }

    /// Whether a unit takes part in the round (the round's unit filter).
    fn takes_part(&self, unit: &str) -> bool {
        self.input
            .units
            .is_none_or(|only| only.iter().any(|u| u == unit))
    }

    fn known_role(&mut self, task: &Task, r: &str) -> bool {
        let dir = self.input.directory;
        if dir.role(r).is_some() {
            return true;
        }
        self.error(
            "unknown-reference",
            task.assignee.loc,
            format!("unknown directory role `{r}`"),
            Some(suggest(r, dir.role_ids())),
        );
        false
    }

    pub(super) fn build(&mut self) -> Option<Plan> {
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
                    let stage_timers = if self.only_each {
                        // Planned once with the rest of the round, not per slice.
                        Vec::new()
                    } else {
                        vec![
                            (TimerKind::StageOpen, oa, o.provisional),
                            (TimerKind::StageClose, ca, c.provisional),
                        ]
                    };
                    for (kind, at, provisional) in stage_timers {
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
            if self.only_each && !matches!(task.assignee.value, Assignee::Each(_)) {
                continue;
            }
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
            for (a, person) in assignees {
                let mut key = match a.kind {
                    AssigneeKind::Unit => format!("{}@{}", task.id.value, a.id),
                    AssigneeKind::Role => format!("{}@role:{}", task.id.value, a.id),
                };
                if let Some(p) = &person {
                    key.push_str(&format!("/p{}", p.id));
                }
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
                        | TimerKind::CalendarNotice
                        | TimerKind::WeeklyReport
                        | TimerKind::CountCheck => continue,
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
                    title: match &person {
                        Some(p) => format!("{}（{}）", task.title, p.name),
                        None => task.title.clone(),
                    },
                    stage: stage.id.value.clone(),
                    assignee: a,
                    due: due.clone(),
                    after_done: after_done.clone(),
                    person,
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
        let wf_tasks = self.tasks.clone();
        let asks = wf_tasks
            .iter()
            .filter_map(|(_, t)| {
                let s = t.submit.as_ref()?;
                Some(crate::core::submission::Asks::resolve(
                    &t.id.value,
                    &s.value,
                    |v| self.val(v),
                ))
            })
            .collect();
        Some(Plan {
            provisional_year,
            asks,
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
