//! Reading what the lists and exports show: the tasks that pass a [`Find`] filter, each
//! with its round, stage and branch secretary looked up, and the overdue ones with their
//! escalation. Shared by the console's pages, its `.xlsx` exports and the JSON API, so a
//! filter means the same everywhere.

use super::AppState;
use crate::core::state::{RoundStatus, TaskState};
use crate::report::{Escalation, Find, StateFilter, TaskLine};
use crate::store::{RoundRow, StoreError, TaskRow};

/// A task row as a [`TaskLine`] of `round`, titles from the loaded catalog.
pub fn line(state: &AppState, round: &RoundRow, t: &TaskRow) -> TaskLine {
    TaskLine::of(&state.engine.catalog(), round, t)
}

/// The rounds a filter looks at: the one asked for, else all (newest first as stored).
async fn rounds(state: &AppState, find: &Find) -> Result<Vec<RoundRow>, StoreError> {
    let store = state.engine.store();
    Ok(match find.round {
        Some(id) => store.round(id).await?.into_iter().collect(),
        None => store.rounds().await?,
    })
}

/// Every task passing `find` (its state already parsed), across rounds.
pub async fn task_lines(
    state: &AppState,
    find: &Find,
    task_state: Option<StateFilter>,
) -> Result<Vec<TaskLine>, StoreError> {
    let store = state.engine.store();
    let now = state.engine.clock().now().timestamp_millis();
    let mut out = Vec::new();
    for round in rounds(state, find).await? {
        for t in store.tasks(round.id).await? {
            let l = line(state, &round, &t);
            if find.matches(&l, task_state, now) {
                out.push(l);
            }
        }
    }
    Ok(out)
}

/// The overdue tasks of running rounds passing `find`'s round, stage and branch, each
/// with its escalation, in round and task order.
pub async fn overdue(
    state: &AppState,
    find: &Find,
) -> Result<Vec<(TaskLine, Escalation)>, StoreError> {
    let store = state.engine.store();
    let now = state.engine.clock().now().timestamp_millis();
    let mut out = Vec::new();
    for round in rounds(state, find).await? {
        if round.status != RoundStatus::Running {
            continue;
        }
        for t in store.tasks(round.id).await? {
            if t.state != TaskState::Open {
                continue;
            }
            let l = line(state, &round, &t);
            if !find.matches(&l, Some(StateFilter::Overdue), now) {
                continue;
            }
            let timers = store
                .timers_with_prefix(&format!("{}/{}/escalation", round.tag, t.key))
                .await?;
            out.push((l, Escalation::of(&timers)));
        }
    }
    Ok(out)
}

/// The tasks of every round of a training or health check-up workflow
/// ([`COVERAGE_WORKFLOWS`](crate::report::COVERAGE_WORKFLOWS)) passing `find`.
pub async fn coverage_lines(state: &AppState, find: &Find) -> Result<Vec<TaskLine>, StoreError> {
    let store = state.engine.store();
    let mut out = Vec::new();
    for round in rounds(state, find).await? {
        if !crate::report::COVERAGE_WORKFLOWS.contains(&round.workflow_id.as_str()) {
            continue;
        }
        for t in store.tasks(round.id).await? {
            let l = line(state, &round, &t);
            if find.matches(&l, None, 0) {
                out.push(l);
            }
        }
    }
    Ok(out)
}

/// Every recorded event of the pool (of `find.branch`'s people when given) with the tasks
/// it owes across rounds (their keys end in `/eID`).
pub async fn talk_events(
    state: &AppState,
    find: &Find,
) -> Result<Vec<crate::report::TalkEvent>, StoreError> {
    let store = state.engine.store();
    let cat = state.engine.catalog();
    let people = store
        .people(&crate::store::PeopleFilter {
            unit: find.branch.clone(),
            include_removed: true,
            ..Default::default()
        })
        .await?;
    let people: std::collections::BTreeMap<i64, _> =
        people.into_iter().map(|p| (p.id, p.person)).collect();
    let mut owed: std::collections::BTreeMap<i64, Vec<TaskLine>> = Default::default();
    for round in rounds(state, find).await? {
        for t in store.tasks(round.id).await? {
            let event = t
                .key
                .rsplit_once("/e")
                .and_then(|(_, id)| id.parse::<i64>().ok());
            if let Some(id) = event {
                owed.entry(id).or_default().push(line(state, &round, &t));
            }
        }
    }
    let title = |kind: &str| {
        cat.workflows
            .values()
            .flat_map(|w| w.workflow.events.iter())
            .find(|e| e.id.value == kind)
            .map_or_else(|| kind.to_string(), |e| e.title.clone())
    };
    let mut out = Vec::new();
    for e in store.events(&crate::store::EventFilter::default()).await? {
        let Some(p) = people.get(&e.person_id) else {
            continue;
        };
        out.push(crate::report::TalkEvent {
            person: p.name.clone(),
            unit: cat
                .directory
                .unit(&p.unit)
                .map_or_else(|| p.unit.clone(), |u| u.name.clone()),
            event: title(&e.kind),
            date: e.date,
            recorded_by: e.recorded_by.clone(),
            tasks: owed.remove(&e.id).unwrap_or_default(),
        });
    }
    Ok(out)
}
