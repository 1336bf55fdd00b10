//! Starting rounds: planning a workflow for a start date, turning the plan into task and
//! timer rows, and keeping each scheduled workflow's next kickoff in the timer table.

use super::{Engine, EngineError, Result, from_ms, into_timer_row, kickoff_timer, ms};
use crate::catalog::Catalog;
use crate::core::definition::Workflow;
use crate::core::directory::Party;
use crate::core::plan::{
    PersonRef, Plan, PlanInput, Problem, each_tasks_present, plan, plan_people,
};
use crate::core::state::{TaskState, TimerKind, TimerState};
use crate::core::validate::workflow_tz;
use crate::store::{AuditEntry, NewRound, NewTask, NewTimer, RoundRow, TaskRow, TimerPayload};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, HashSet};

/// A request to start a round.
#[derive(Debug, Clone)]
pub struct StartRound {
    /// Workflow id.
    pub workflow: String,
    /// Start date.
    pub start: NaiveDate,
    /// Parameter overrides.
    pub params: BTreeMap<String, String>,
    /// Only these units take part.
    pub units: Option<Vec<String>>,
    /// Who asked.
    pub actor: String,
}

/// Plan a stored round (its start, parameters, units and people, or only the units `only`)
/// with a catalog. `tasks` are the round's task rows: its people are those its tasks were
/// made for (a round never takes in a person by itself; `round add-person` does).
pub(crate) fn round_plan(
    cat: &Catalog,
    wf: &Workflow,
    round: &RoundRow,
    tasks: &[TaskRow],
    done: Option<&BTreeMap<String, DateTime<Utc>>>,
    only: Option<&[String]>,
) -> Result<Plan> {
    let units: Option<&[String]> = only.or(round.units.as_deref());
    let start = round_start(round)?;
    let people = super::person::round_people(tasks);
    plan_checked(
        cat,
        wf,
        start,
        &round.params,
        units,
        done,
        None,
        Some(&people),
    )
}

/// The assignees with overdue work when a round is started (a start date in the past),
/// gathered over the slices of its plan: each gets one `catch_up` timer, due now.
#[derive(Default)]
struct CatchUp {
    late: Vec<Party>,
    /// `kind:id` of each in `late`: a city's round has up to 10,000 branches.
    seen: HashSet<String>,
}

impl CatchUp {
    fn scan(&mut self, p: &Plan, now: DateTime<Utc>) {
        for t in &p.tasks {
            let overdue = !t.due.projected && t.due.at.is_some_and(|a| a.with_timezone(&Utc) < now);
            if overdue
                && self
                    .seen
                    .insert(format!("{}:{}", t.assignee.kind, t.assignee.id))
            {
                self.late.push(t.assignee.clone());
            }
        }
    }

    fn timers(self, tag: &str, now: DateTime<Utc>) -> Vec<NewTimer> {
        self.late
            .into_iter()
            .map(|party| {
                let key = format!("{tag}/catch_up@{}:{}", party.kind, party.id);
                let payload = TimerPayload {
                    recipient: Some(party),
                    ..Default::default()
                };
                NewTimer {
                    key,
                    round_id: None,
                    task_key: None,
                    kind: TimerKind::CatchUp,
                    due_at: ms(now),
                    payload,
                }
            })
            .collect()
    }
}

/// People per slice of a round with tasks per person: planned, turned into rows and
/// written one slice at a time, so a city's 100,000 people's tasks and timers are never
/// in memory at once.
const PEOPLE_SLICE: usize = 2000;

pub(crate) fn plan_with(
    cat: &Catalog,
    wf: &Workflow,
    start: NaiveDate,
    params: &BTreeMap<String, String>,
    units: Option<&[String]>,
    people: Option<&[PersonRef]>,
) -> Result<Plan> {
    plan_checked(cat, wf, start, params, units, None, None, people)
}

/// Plan a stored round for one unit as if event `kind` happened at `at` (the tasks due
/// from it get dated instants).
pub(crate) fn plan_event(
    cat: &Catalog,
    wf: &Workflow,
    round: &RoundRow,
    unit: &str,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<Plan> {
    let units = [unit.to_string()];
    let events = BTreeMap::from([(kind.to_string(), at)]);
    let start = round_start(round)?;
    plan_checked(
        cat,
        wf,
        start,
        &round.params,
        Some(&units),
        None,
        Some(&events),
        None,
    )
}

/// The planner over the catalog's directory, calendar and time zone; its problems as an
/// error when it cannot plan.
#[allow(clippy::too_many_arguments)]
fn plan_checked(
    cat: &Catalog,
    wf: &Workflow,
    start: NaiveDate,
    params: &BTreeMap<String, String>,
    units: Option<&[String]>,
    done: Option<&BTreeMap<String, DateTime<Utc>>>,
    events: Option<&BTreeMap<String, DateTime<Utc>>>,
    people: Option<&[PersonRef]>,
) -> Result<Plan> {
    let input = PlanInput {
        workflow: wf,
        directory: &cat.directory,
        calendar: &cat.calendar,
        tz: workflow_tz(wf, cat.config.tz()),
        start,
        params,
        units,
        done,
        events,
        people,
    };
    checked(wf, plan(input))
}

/// The per-person tasks of one slice of a round's people ([`plan_people`]).
fn plan_slice(
    cat: &Catalog,
    wf: &Workflow,
    start: NaiveDate,
    params: &BTreeMap<String, String>,
    units: Option<&[String]>,
    people: &[PersonRef],
) -> Result<Plan> {
    checked(
        wf,
        plan_people(PlanInput {
            workflow: wf,
            directory: &cat.directory,
            calendar: &cat.calendar,
            tz: workflow_tz(wf, cat.config.tz()),
            start,
            params,
            units,
            done: None,
            events: None,
            people: Some(people),
        }),
    )
}

fn checked(wf: &Workflow, (p, problems): (Option<Plan>, Vec<Problem>)) -> Result<Plan> {
    p.ok_or_else(|| EngineError::Plan {
        workflow: wf.id.value.clone(),
        problems,
    })
}

/// A stored round's start date.
fn round_start(round: &RoundRow) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(&round.start_date, "%Y-%m-%d")
        .map_err(|_| EngineError::NotFound(format!("start date of round {}", round.id)))
}

/// Tasks and timers of a planned round. Reminders already in the past are not created
/// (a round started late should not send a burst of stale reminders). A task waits when
/// its deadline is not known yet or it has prerequisites (`after:`, `{done: …}`) with
/// instances in the round; a waiting task's timers are created when it becomes owed.
/// The plan is consumed: its strings move into the rows, so a round of 100,000 tasks per
/// person does not hold every string twice while it is written.
pub(crate) fn materialise(
    tag: &str,
    wf: &Workflow,
    p: Plan,
    now: DateTime<Utc>,
) -> (Vec<NewTask>, Vec<NewTimer>) {
    let present: HashSet<String> = p.tasks.iter().map(|t| t.task.clone()).collect();
    materialise_with(tag, wf, p, now, &present)
}

/// [`materialise`] of a part of a round's plan: `present` is the ids of the tasks with
/// instances anywhere in the round (whether a task waits for another depends on the whole
/// round, not on the slice).
fn materialise_with(
    tag: &str,
    wf: &Workflow,
    p: Plan,
    now: DateTime<Utc>,
    present: &HashSet<String>,
) -> (Vec<NewTask>, Vec<NewTimer>) {
    let blocked: HashSet<String> = wf
        .tasks()
        .filter(|(_, def)| {
            crate::engine::activation::prerequisites(def)
                .iter()
                .any(|pre| present.contains(*pre))
        })
        .map(|(_, def)| def.id.value.clone())
        .collect();
    let mut waiting: HashSet<String> = HashSet::new();
    let tasks: Vec<NewTask> = p
        .tasks
        .into_iter()
        .map(|t| {
            let fixed = t.due.at.is_some() && !t.due.projected;
            let waits = !fixed || blocked.contains(t.task.as_str());
            if waits {
                waiting.insert(t.key.clone());
            }
            NewTask {
                key: t.key,
                task: t.task,
                stage: t.stage,
                title: t.title,
                assignee_kind: t.assignee.kind,
                assignee_id: t.assignee.id,
                assignee_name: t.assignee.name,
                due_at: if fixed {
                    t.due.at.map(|a| ms(a.with_timezone(&Utc)))
                } else {
                    None
                },
                state: if waits {
                    TaskState::Waiting
                } else {
                    TaskState::Open
                },
                provisional: fixed && t.due.provisional,
                person: t.person,
            }
        })
        .collect();
    let timers = p
        .timers
        .into_iter()
        .filter(|t| !t.projected)
        .filter(|t| {
            t.task
                .as_ref()
                .is_none_or(|k| !waiting.contains(k.as_str()))
        })
        .filter_map(|t| into_timer_row(tag, t, now))
        .collect();
    (tasks, timers)
}

impl Engine {
    /// Plan a workflow with the current catalog and, when it has tasks per person, the
    /// people in the pool now.
    pub(crate) async fn plan_round(
        &self,
        wf: &Workflow,
        start: NaiveDate,
        params: &BTreeMap<String, String>,
        units: Option<&[String]>,
    ) -> Result<Plan> {
        let people = self.pool_people_for(wf).await?.map(|mut people| {
            if let Some(only) = units {
                people.retain(|p| only.contains(&p.unit));
            }
            people
        });
        plan_with(&self.catalog(), wf, start, params, units, people.as_deref())
    }

    /// Start a round now: plan it and write its tasks and timers in one transaction.
    pub async fn start_round(&self, req: StartRound) -> Result<i64> {
        let cat = self.catalog();
        let Some(loaded) = cat.workflows.get(&req.workflow) else {
            let ids: Vec<&str> = cat.workflows.keys().map(String::as_str).collect();
            return Err(EngineError::UnknownWorkflow {
                id: req.workflow.clone(),
                hint: crate::core::diagnostic::suggest(&req.workflow, ids.iter().copied()),
            });
        };
        if let Some(units) = &req.units {
            let unknown = cat.directory.unknown_units(units);
            if !unknown.is_empty() {
                return Err(EngineError::UnknownUnits(unknown));
            }
        }
        let version_id = match self.version_id(&req.workflow) {
            Some(v) => v,
            None => {
                self.register_workflows().await?;
                self.version_id(&req.workflow)
                    .ok_or_else(|| EngineError::NotFound(format!("version of {}", req.workflow)))?
            }
        };
        let now = self.clock.now();
        let wf = &loaded.workflow;
        let units = req.units.as_deref();
        let people = self.pool_people_for(wf).await?.map(|mut people| {
            if let Some(only) = units {
                people.retain(|p| only.contains(&p.unit));
            }
            people
        });
        // The round without its tasks per person (stages, per-unit and per-role tasks),
        // then those slice by slice: a city's round never holds every person's rows at once.
        let whole = plan_with(
            &cat,
            wf,
            req.start,
            &req.params,
            units,
            people.as_ref().map(|_| &[][..]),
        )?;
        let mut present: HashSet<String> = whole.tasks.iter().map(|t| t.task.clone()).collect();
        if let Some(people) = &people {
            present.extend(each_tasks_present(wf, &cat.directory, people));
        }
        let tag = format!("m{}", self.tag(&req.workflow));
        // Started late: what is overdue already is told once per assignee, instead of by
        // the deadlines, overdue reminders and escalations of the past (see `effects`).
        let mut catch_up = CatchUp::default();
        catch_up.scan(&whole, now);
        let (tasks, timers) = materialise_with(&tag, wf, whole, now, &present);
        let round = NewRound {
            tag: tag.clone(),
            workflow_id: req.workflow.clone(),
            version_id,
            start_date: req.start.to_string(),
            params: req.params.clone(),
            units: req.units.clone(),
            kickoff_key: None,
            created_at: ms(now),
        };
        // One transaction: dropped before `commit` (an error below), nothing is kept.
        let mut writer = self
            .store
            .begin_round(round)
            .await?
            .ok_or_else(|| EngineError::NotFound("round (duplicate)".into()))?;
        let (mut task_count, mut timer_count) = (tasks.len(), timers.len());
        writer.add(&tasks, &timers).await?;
        drop((tasks, timers));
        for slice in people.as_deref().unwrap_or(&[]).chunks(PEOPLE_SLICE) {
            let p = plan_slice(&cat, wf, req.start, &req.params, units, slice)?;
            catch_up.scan(&p, now);
            let (tasks, timers) = materialise_with(&tag, wf, p, now, &present);
            task_count += tasks.len();
            timer_count += timers.len();
            writer.add(&tasks, &timers).await?;
        }
        let catch_up = catch_up.timers(&tag, now);
        timer_count += catch_up.len();
        writer.add(&[], &catch_up).await?;
        let id = writer.id();
        let audit = AuditEntry {
            at: ms(now),
            actor: req.actor.clone(),
            action: "round.start".into(),
            subject: format!("workflow:{}", req.workflow),
            detail_json: serde_json::json!({"tag": tag, "start": req.start.to_string(), "params": req.params, "units": req.units, "tasks": task_count, "timers": timer_count}).to_string(),
        };
        writer.commit(audit).await?;
        tracing::info!(round = id, workflow = %req.workflow, start = %req.start, "round started");
        self.wake();
        Ok(id)
    }

    /// Make sure every scheduled workflow has its next kickoff in the timer table.
    pub async fn ensure_kickoffs(&self) -> Result<()> {
        let cat = self.catalog();
        let now = self.clock.now();
        for (id, loaded) in &cat.workflows {
            let Some(schedule) = &loaded.workflow.schedule else {
                continue;
            };
            let prefix = format!("kickoff:{id}:");
            let existing = self.store.timers_with_prefix(&prefix).await?;
            // A kickoff blocked while this workflow was not loaded (or did not plan) is
            // tried at once now that it is: through the normal claim, so exactly once.
            for t in existing.iter().filter(|t| {
                t.state == TimerState::Pending && t.due_at > ms(now) && t.key.contains(":retry:")
            }) {
                if self.store.bring_forward_timer(t.id, ms(now)).await? {
                    tracing::info!(workflow = %id, kickoff = %t.key, "blocked kickoff is tried again now");
                }
            }
            if existing.iter().any(|t| t.state.is_live()) {
                continue;
            }
            let last = existing.iter().map(|t| t.due_at).max().map(from_ms);
            let after = last.map_or(now, |l| l.max(now));
            let tz = workflow_tz(&loaded.workflow, cat.config.tz());
            match crate::core::schedule::next_kickoff(schedule, tz, &cat.calendar, after) {
                Ok(Some(next)) => {
                    let next = next.with_timezone(&Utc);
                    self.store.add_timers(vec![kickoff_timer(id, next)]).await?;
                    tracing::info!(workflow = %id, next = %next, "next kickoff scheduled");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(workflow = %id, error = %e, "cannot schedule the next kickoff");
                    self.store
                        .append_audit(AuditEntry {
                            at: ms(now),
                            actor: "daemon".into(),
                            action: "kickoff.unschedulable".into(),
                            subject: format!("workflow:{id}"),
                            detail_json: serde_json::json!({"error": e.to_string()}).to_string(),
                        })
                        .await?;
                }
            }
        }
        Ok(())
    }
}
