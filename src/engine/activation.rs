//! Which waiting tasks become owed: a plain function of the workflow and a round's task rows.
//!
//! A task waits for its prerequisites: the tasks in its `after:` list and the task its
//! deadline counts from (`due: {from: {done: …}}`). It becomes owed once every instance of
//! each prerequisite it waits for is finished (done or waived). An instance pairs with the
//! prerequisite's instance of the same assignee when both fan out over it (each branch's
//! talk follows that branch's assessment); otherwise it waits for every instance (a join).
//!
//! [`Joins::decide`] turns the ready tasks into activations (deadline and timers planned
//! from when their prerequisites finished): a plain function of the catalog, the workflow,
//! the round and the rows read inside the transaction.
//!
//! Architecture Invariant: the engine calls [`ready`] inside the transaction that
//! completes or waives a task, on the rows read there under the round's lock, so two
//! completions at the same moment cannot both miss the last prerequisite. `status` calls it
//! on rows read outside any transaction to report tasks that still wait although nothing
//! holds them back.

use crate::catalog::Catalog;
use crate::core::definition::{Anchor, Task, Workflow};
use crate::core::state::{AssigneeKind, TaskState};
use crate::engine::round::round_plan;
use crate::engine::{audit, from_ms, ms, timer_row};
use crate::store::{Activation, Decided, Millis, RoundRow, TaskRow};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The workflow task ids a task waits for: its `after:` list, then the task its deadline
/// counts from, without repeats.
pub fn prerequisites(task: &Task) -> Vec<&str> {
    let mut out: Vec<&str> = task.after.iter().map(|a| a.value.as_str()).collect();
    if let Some(d) = done_anchor(task)
        && !out.contains(&d)
    {
        out.push(d);
    }
    out
}

/// The task whose completion a task's deadline counts from, if any.
pub fn done_anchor(task: &Task) -> Option<&str> {
    match task.due.value.from.as_ref().map(|a| &a.value) {
        Some(Anchor::Done(id)) => Some(id.as_str()),
        _ => None,
    }
}

/// The outside event a task's deadline counts from, if any.
pub fn event_anchor(task: &Task) -> Option<&str> {
    match task.due.value.from.as_ref().map(|a| &a.value) {
        Some(Anchor::Event(id)) => Some(id.as_str()),
        _ => None,
    }
}

/// The workflow task ids whose rows decide what finishing task `task` releases: every task
/// that waits for it, and everything those wait for. Empty when nothing waits for it.
pub fn to_read(wf: &Workflow, task: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, t) in wf.tasks() {
        let pre = prerequisites(t);
        if !pre.contains(&task) {
            continue;
        }
        for id in pre.into_iter().chain([t.id.value.as_str()]) {
            if !out.iter().any(|x| x == id) {
                out.push(id.to_string());
            }
        }
    }
    out
}

/// A waiting task whose prerequisites are all finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Task row id.
    pub id: i64,
    /// Key within the round.
    pub key: String,
    /// The task its deadline counts from and when the instances it waits for were
    /// finished (the latest of them); None when its deadline does not count from a
    /// completion.
    pub done: Option<(String, Millis)>,
}

fn finished(t: &TaskRow) -> bool {
    t.state.is_settled()
}

/// Whether a set of instances is all finished, and when the last of them was.
#[derive(Debug, Clone, Copy)]
struct Summary {
    finished: bool,
    last: Option<Millis>,
}

impl Summary {
    fn of<'a>(rows: impl IntoIterator<Item = &'a TaskRow>) -> Summary {
        let mut s = Summary {
            finished: true,
            last: None,
        };
        for x in rows {
            s.finished &= finished(x);
            let at = x.completed_at.unwrap_or(x.updated_at);
            s.last = Some(s.last.map_or(at, |l: Millis| l.max(at)));
        }
        s
    }
}

/// The rows of a round indexed for the decision (a round may have many thousands): the
/// summary of every task's instances and of every assignee's instance. Cancelled instances
/// (a branch that left) hold nothing back.
struct Index<'a> {
    all: HashMap<&'a str, Summary>,
    own: HashMap<(&'a str, AssigneeKind, &'a str), Summary>,
}

impl<'a> Index<'a> {
    fn new(tasks: &'a [TaskRow]) -> Index<'a> {
        let mut by_task: HashMap<&str, Vec<&TaskRow>> = HashMap::new();
        let mut by_own: HashMap<(&str, AssigneeKind, &str), Vec<&TaskRow>> = HashMap::new();
        for t in tasks.iter().filter(|t| t.state != TaskState::Cancelled) {
            by_task.entry(&t.task).or_default().push(t);
            by_own
                .entry((&t.task, t.assignee_kind, &t.assignee_id))
                .or_default()
                .push(t);
        }
        Index {
            all: by_task
                .into_iter()
                .map(|(k, v)| (k, Summary::of(v)))
                .collect(),
            own: by_own
                .into_iter()
                .map(|(k, v)| (k, Summary::of(v)))
                .collect(),
        }
    }

    /// The instances of prerequisite `pre` that `t` waits for: the one of its own assignee
    /// when there is one, else all of them (none at all: nothing to wait for).
    fn of(&self, pre: &str, t: &TaskRow) -> Summary {
        self.own
            .get(&(pre, t.assignee_kind, t.assignee_id.as_str()))
            .or_else(|| self.all.get(pre))
            .copied()
            .unwrap_or(Summary {
                finished: true,
                last: None,
            })
    }
}

/// The waiting tasks among `tasks` (a round's rows) whose prerequisites are all done or
/// waived, in row order. A prerequisite with no instance in the round holds nothing back; a
/// deadline counted from such a one counts from `now`. Tasks that wait for an outside event,
/// or for nothing this module knows (e.g. a task of another workflow version), are left alone.
pub fn ready(wf: &Workflow, tasks: &[TaskRow], now: Millis) -> Vec<Ready> {
    let mut out = Vec::new();
    let index = Index::new(tasks);
    for t in tasks.iter().filter(|t| t.state == TaskState::Waiting) {
        let Some((_, def)) = wf.task(&t.task) else {
            continue;
        };
        if event_anchor(def).is_some() {
            continue;
        }
        let pre = prerequisites(def);
        if pre.is_empty() {
            continue;
        }
        if pre.iter().any(|p| !index.of(p, t).finished) {
            continue;
        }
        let done = done_anchor(def).map(|d| (d.to_string(), index.of(d, t).last.unwrap_or(now)));
        out.push(Ready {
            id: t.id,
            key: t.key.clone(),
            done,
        });
    }
    out
}

/// Everything deciding activations needs besides the rows read in the transaction, so the
/// decision is a plain function of (workflow, the round's tasks, now).
pub(crate) struct Joins {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) wf: Arc<Workflow>,
    pub(crate) round: RoundRow,
    /// The workflow task ids whose rows the decision reads.
    pub(crate) read: Vec<String>,
    pub(crate) actor: String,
    pub(crate) now: DateTime<Utc>,
}

impl Joins {
    /// The waiting tasks that become owed, with the deadline and timers of each, planned
    /// from when their prerequisites were finished; an activation that cannot be planned
    /// leaves its task waiting, with an audit entry (and `status` reports it).
    pub(crate) fn decide(&self, rows: &[TaskRow]) -> Decided {
        let ready = ready(&self.wf, rows, ms(self.now));
        let mut out = Decided::default();
        if ready.is_empty() {
            return out;
        }
        let failed = |r: &Ready, error: &str| {
            audit(
                self.now,
                &self.actor,
                "task.activation_failed",
                &format!("task:{}", r.id),
                serde_json::json!({"key": r.key, "error": error}),
            )
        };
        // Only the units of the ready tasks are planned (role tasks always are): this runs
        // inside the transaction, and a whole round of thousands of branches is planned in
        // seconds, not milliseconds.
        let mut units: Vec<String> = rows
            .iter()
            .filter(|t| t.assignee_kind == AssigneeKind::Unit && ready.iter().any(|r| r.id == t.id))
            .map(|t| t.assignee_id.clone())
            .collect();
        units.sort();
        units.dedup();
        let units = Some(units.as_slice());
        // Likewise only the people of the ready tasks.
        let people: Vec<TaskRow> = rows
            .iter()
            .filter(|t| t.person.is_some() && ready.iter().any(|r| r.id == t.id))
            .cloned()
            .collect();
        let base = match round_plan(&self.catalog, &self.wf, &self.round, &people, None, units) {
            Ok(p) => p,
            Err(e) => {
                out.audit
                    .extend(ready.iter().map(|r| failed(r, &e.to_string())));
                return out;
            }
        };
        // A completion before the dependent's stage opens counts from the opening, so
        // finishing early never makes the next task due before its stage.
        let mut groups: BTreeMap<Option<(String, Millis)>, Vec<&Ready>> = BTreeMap::new();
        for r in &ready {
            let done = r.done.clone().map(|(task, at)| {
                let opens = base
                    .tasks
                    .iter()
                    .find(|t| t.key == r.key)
                    .and_then(|t| base.stages.iter().find(|s| s.id == t.stage))
                    .filter(|s| !s.opens.projected)
                    .and_then(|s| s.opens.at)
                    .map(|a| ms(a.with_timezone(&Utc)));
                (task, opens.map_or(at, |o| o.max(at)))
            });
            groups.entry(done).or_default().push(r);
        }
        for (done, list) in groups {
            let plan = match &done {
                None => Ok(base.clone()),
                Some((task, at)) => {
                    let map = BTreeMap::from([(task.clone(), from_ms(*at))]);
                    round_plan(
                        &self.catalog,
                        &self.wf,
                        &self.round,
                        &people,
                        Some(&map),
                        units,
                    )
                }
            };
            let p = match plan {
                Ok(p) => p,
                Err(e) => {
                    out.audit
                        .extend(list.iter().map(|r| failed(r, &e.to_string())));
                    continue;
                }
            };
            for r in list {
                let planned = p
                    .tasks
                    .iter()
                    .find(|x| x.key == r.key)
                    .filter(|x| !x.due.projected);
                let provisional = planned.is_some_and(|x| x.due.provisional);
                let due = planned.and_then(|x| x.due.at);
                let Some(due) = due else {
                    out.audit.push(failed(r, "its deadline cannot be dated"));
                    continue;
                };
                let timers = p
                    .timers
                    .iter()
                    .filter(|x| x.task.as_deref() == Some(&r.key) && !x.projected)
                    .filter_map(|x| timer_row(&self.round.tag, x, self.now))
                    .map(|mut x| {
                        x.round_id = Some(self.round.id);
                        x
                    })
                    .collect();
                let due = ms(due.with_timezone(&Utc));
                out.audit.push(audit(
                    self.now,
                    &self.actor,
                    "task.activate",
                    &format!("task:{}", r.id),
                    serde_json::json!({"key": r.key, "due": from_ms(due), "counted_from": done.as_ref().map(|(t, at)| serde_json::json!({"task": t, "at": from_ms(*at)}))}),
                ));
                out.activate.push(Activation {
                    round_id: self.round.id,
                    task_key: r.key.clone(),
                    due_at: due,
                    provisional,
                    timers,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WF: &str = "id: w\ntitle: 测试\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 10}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {group: branches}\n        due: {from: stage_close}\n      - id: b\n        title: 乙\n        assignee: {role: organization_office}\n        due: {from: stage_close}\n      - id: join\n        title: 汇总\n        assignee: {role: organization_office}\n        after: [a, b]\n        due: {from: {done: a}, days: 2}\n      - id: pair\n        title: 配对\n        assignee: {group: branches}\n        due: {from: {done: a}, days: 1}\n      - id: event\n        title: 事件\n        assignee: {role: organization_office}\n        after: [a]\n        due: {from: {event: e}, days: 1}\n      - id: free\n        title: 无前序\n        assignee: {role: organization_office}\n        due: {from: stage_close}\n";

    fn wf() -> Workflow {
        let mut d = crate::core::diagnostic::Diagnostics::new("w");
        crate::core::yaml::parse::<Workflow>(WF, &mut d).expect("parses")
    }

    fn row(
        id: i64,
        task: &str,
        kind: &str,
        who: &str,
        state: TaskState,
        done: Option<Millis>,
    ) -> TaskRow {
        TaskRow {
            id,
            round_id: 1,
            key: format!("{task}@{who}"),
            task: task.into(),
            stage: "s".into(),
            title: task.into(),
            assignee_kind: kind.parse().expect("assignee kind"),
            assignee_id: who.into(),
            assignee_name: who.into(),
            due_at: None,
            provisional: false,
            person: None,
            state,
            completed_at: done,
            updated_at: done.unwrap_or(0),
        }
    }

    fn keys(r: &[Ready]) -> Vec<&str> {
        r.iter().map(|x| x.key.as_str()).collect()
    }

    #[test]
    fn prerequisites_are_the_after_list_and_the_done_anchor_once_each() {
        let wf = wf();
        let pre = |id: &str| prerequisites(wf.task(id).expect("task").1);
        assert_eq!(pre("join"), ["a", "b"]);
        assert_eq!(pre("pair"), ["a"]);
        assert!(pre("free").is_empty());
        assert_eq!(to_read(&wf, "a"), ["a", "b", "join", "pair", "event"]);
        assert_eq!(to_read(&wf, "b"), ["a", "b", "join"]);
        assert!(to_read(&wf, "join").is_empty());
    }

    #[test]
    fn a_join_is_ready_only_when_every_instance_of_every_prerequisite_is_finished() {
        let wf = wf();
        let mut tasks = vec![
            row(1, "a", "unit", "x", TaskState::Done, Some(100)),
            row(2, "a", "unit", "y", TaskState::Open, None),
            row(
                3,
                "b",
                "role",
                "organization_office",
                TaskState::Done,
                Some(50),
            ),
            row(
                4,
                "join",
                "role",
                "organization_office",
                TaskState::Waiting,
                None,
            ),
        ];
        assert!(ready(&wf, &tasks, 1000).is_empty());
        tasks[1] = row(2, "a", "unit", "y", TaskState::Waived, Some(200));
        let r = ready(&wf, &tasks, 1000);
        assert_eq!(keys(&r), ["join@organization_office"]);
        assert_eq!(
            r[0].done,
            Some(("a".into(), 200)),
            "the latest of the instances"
        );
        tasks[2] = row(3, "b", "role", "organization_office", TaskState::Open, None);
        assert!(
            ready(&wf, &tasks, 1000).is_empty(),
            "after: [b] holds it back"
        );
    }

    #[test]
    fn a_fanned_out_dependent_pairs_with_its_own_assignees_instance() {
        let wf = wf();
        let tasks = vec![
            row(1, "a", "unit", "x", TaskState::Done, Some(100)),
            row(2, "a", "unit", "y", TaskState::Open, None),
            row(3, "pair", "unit", "x", TaskState::Waiting, None),
            row(4, "pair", "unit", "y", TaskState::Waiting, None),
        ];
        let r = ready(&wf, &tasks, 1000);
        assert_eq!(keys(&r), ["pair@x"]);
        assert_eq!(r[0].done, Some(("a".into(), 100)));
    }

    #[test]
    fn cancelled_instances_hold_nothing_back_and_events_are_left_alone() {
        let wf = wf();
        let tasks = vec![
            row(1, "a", "unit", "x", TaskState::Cancelled, None),
            row(
                2,
                "b",
                "role",
                "organization_office",
                TaskState::Done,
                Some(5),
            ),
            row(
                3,
                "join",
                "role",
                "organization_office",
                TaskState::Waiting,
                None,
            ),
            row(
                4,
                "event",
                "role",
                "organization_office",
                TaskState::Waiting,
                None,
            ),
            row(
                5,
                "free",
                "role",
                "organization_office",
                TaskState::Waiting,
                None,
            ),
        ];
        let r = ready(&wf, &tasks, 1000);
        assert_eq!(keys(&r), ["join@organization_office"]);
        assert_eq!(
            r[0].done,
            Some(("a".into(), 1000)),
            "no completion: counted from now"
        );
    }
}
