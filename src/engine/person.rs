//! Tasks per person (`assignee: {each: reserve}`): which people a round's per-person
//! tasks are made for, and adding a person to a running round.
//!
//! A round takes the people in the pool (在库) on the day it starts; after that its people
//! are those its tasks were made for (each task row keeps the person it is for), so a
//! reload or a re-projection never takes in or drops a person by itself.
//! [`Engine::add_person`] adds one, like `round add-branch` adds a branch.

use super::reproject::Impact;
use super::{Engine, EngineError, Result};
use crate::core::counts::CountReport;
use crate::core::definition::{Assignee, Workflow};
use crate::core::plan::PersonRef;
use crate::core::pool::PersonStatus;
use crate::store::{EventFilter, PersonRow, TaskRow};

/// Whether a workflow has a task made per person.
pub fn has_each(wf: &Workflow) -> bool {
    wf.tasks()
        .any(|(_, t)| matches!(t.assignee.value, Assignee::Each(_)))
}

/// A stored person as the planner sees them.
pub fn person_ref(row: &PersonRow) -> PersonRef {
    PersonRef {
        id: row.id,
        name: row.person.name.clone(),
        unit: row.person.unit.clone(),
        tier: row.person.tier.get(),
    }
}

/// The people a round's tasks were made for, each once, by id.
pub fn round_people(tasks: &[TaskRow]) -> Vec<PersonRef> {
    let mut out: Vec<PersonRef> = tasks.iter().filter_map(|t| t.person.clone()).collect();
    out.sort_by_key(|p| p.id);
    out.dedup_by_key(|p| p.id);
    out
}

impl Engine {
    /// The people in the pool now, when `wf` has tasks per person (None otherwise, so a
    /// workflow without them never reads the pool).
    pub(crate) async fn pool_people_for(&self, wf: &Workflow) -> Result<Option<Vec<PersonRef>>> {
        if !has_each(wf) {
            return Ok(None);
        }
        Ok(Some(self.pool_people().await?))
    }

    /// Everybody in the pool (在库) now: only the columns a task per person needs (a city's
    /// pool is 100,000 rows).
    pub(crate) async fn pool_people(&self) -> Result<Vec<PersonRef>> {
        Ok(self.store().pool_refs().await?)
    }

    /// Add a person of the pool to a running round: the round's tasks per person are made
    /// for them too (those their tier and branch qualify for), through a re-projection.
    pub async fn add_person(
        &self,
        round_id: i64,
        person_id: i64,
        dry_run: bool,
        actor: &str,
    ) -> Result<Impact> {
        let row = self
            .store()
            .person(person_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("person {person_id}")))?;
        if row.person.status != PersonStatus::Active {
            return Err(EngineError::Invalid(format!(
                "{} (person {person_id}) is no longer in the pool (调整出库); only people in the pool get tasks",
                row.person.name
            )));
        }
        let person = person_ref(&row);
        self.reproject_with(
            round_id,
            None,
            &[],
            std::slice::from_ref(&person),
            dry_run,
            actor,
            &format!("add person {person_id}"),
        )
        .await
    }

    /// Every counting rule (`counts:`) of the loaded workflows over `year`: who in the pool
    /// had fewer of the counted tasks done and events recorded than the rule asks, from 1
    /// January to the rule's `check_on`. A task counts on the day it was done, in the
    /// workflow's time zone.
    pub async fn count_reports(&self, year: i32) -> Result<Vec<CountReport>> {
        let cat = self.catalog();
        let mut out = Vec::new();
        let mut people: Option<Vec<PersonRef>> = None;
        for (id, loaded) in &cat.workflows {
            let wf = &loaded.workflow;
            if wf.counts.is_empty() {
                continue;
            }
            let people = match &people {
                Some(p) => p,
                None => people.insert(self.pool_people().await?),
            };
            let tz = crate::core::validate::workflow_tz(wf, cat.config.tz());
            for rule in &wf.counts {
                let tasks: Vec<String> = rule.tasks.iter().map(|t| t.value.clone()).collect();
                let mut happened: Vec<(i64, chrono::NaiveDate)> = self
                    .store()
                    .person_tasks_done(id, &tasks)
                    .await?
                    .into_iter()
                    .map(|(p, at)| (p, super::from_ms(at).with_timezone(&tz).date_naive()))
                    .collect();
                for kind in &rule.events {
                    let events = self
                        .store()
                        .events(&EventFilter {
                            person: None,
                            kind: Some(kind.value.clone()),
                            year: Some(year),
                        })
                        .await?;
                    happened.extend(events.iter().map(|e| (e.person_id, e.date)));
                }
                out.push(crate::core::counts::check(
                    id, rule, people, &happened, year,
                ));
            }
        }
        Ok(out)
    }
}
