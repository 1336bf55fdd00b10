//! Submitting assessment results (考核等次) through a task that declares `ratings:`, shared
//! by the JSON API, the console and the branch's signed page: the pure rules
//! ([`crate::core::assessment`]) judge the submission, the store keeps the ratings by year
//! with their audit entries, the 调整 events owed are recorded (and their tasks added), and
//! the task is completed. A refused submission stores nothing.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use crate::core::assessment::{Ratings, Refusal, Rules, ratings_task};
use crate::core::definition::Workflow;
use crate::core::state::{AssigneeKind, TaskState};
use crate::engine::event::Occurrence;
use crate::engine::{Engine, EngineError, local_date, ms};
use crate::store::{
    NewResult, PeopleFilter, PoolWrite, RatingsWrite, ResultFilter, ResultRow, RoundRow,
    StoreError, TaskRow,
};

/// What a submission can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    /// No such task.
    #[error("task {0} not found")]
    NotFound(i64),
    /// The task does not collect ratings, or is not a branch's.
    #[error("{0}")]
    NotRatings(String),
    /// The task is not open (done, waived, waiting).
    #[error("该任务当前为“{0}”，不能录入考核等次；如需更正，请先重新打开任务。")]
    NotOpen(String),
    /// The submission breaks a rule; nothing was stored.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed (completing the task, adding the 调整 tasks).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, AssessError>;

/// What a ratings form shows: the rules, the branch's people and any ratings already kept
/// for the year.
#[derive(Debug, Clone)]
pub struct Form {
    /// The task.
    pub task: TaskRow,
    /// The rules in force for the round.
    pub rules: Rules,
    /// The assessment year.
    pub year: i32,
    /// In-pool people of the branch (id → name), by name.
    pub people: Vec<(i64, String)>,
    /// The ratings kept for the year, by person.
    pub kept: BTreeMap<i64, String>,
}

/// The outcome of an accepted submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The completed task.
    pub task: TaskRow,
    /// The stored results.
    pub results: Vec<ResultRow>,
    /// The 调整 tasks added for people whose run of failing years ended this year.
    pub adjust_tasks: Vec<TaskRow>,
}

/// The year a round assesses: the year its start date falls in.
pub fn round_year(start_date: &str) -> Option<i32> {
    NaiveDate::parse_from_str(start_date, "%Y-%m-%d")
        .ok()
        .map(|d| d.year())
}

/// Assessment operations over an engine.
pub struct Assessment<'a> {
    engine: &'a Engine,
}

impl<'a> Assessment<'a> {
    /// Over an engine.
    pub fn new(engine: &'a Engine) -> Self {
        Assessment { engine }
    }

    /// Whether a workflow task collects ratings.
    pub fn collects(wf: &Workflow, task: &str) -> bool {
        ratings_task(wf, task).is_some()
    }

    /// The form of a task that collects ratings.
    pub async fn form(&self, task_id: i64) -> Result<Form> {
        let store = self.engine.store();
        let task = store
            .task(task_id)
            .await?
            .ok_or(AssessError::NotFound(task_id))?;
        let round = store
            .round(task.round_id)
            .await?
            .ok_or(AssessError::NotFound(task_id))?;
        let wf = self.engine.workflow_of(round.version_id).await?;
        let block = ratings_task(&wf, &task.task).ok_or_else(|| {
            AssessError::NotRatings(format!("任务“{}”不收集考核等次。", task.title))
        })?;
        if task.assignee_kind != AssigneeKind::Unit {
            return Err(AssessError::NotRatings(format!(
                "任务“{}”不是支部的任务，不能录入考核等次。",
                task.title
            )));
        }
        let rules = round_rules(&wf, block, &round);
        let year = round_year(&round.start_date).ok_or_else(|| {
            AssessError::NotRatings(format!("round {} has no valid start date", round.id))
        })?;
        let filter = PeopleFilter {
            unit: Some(task.assignee_id.clone()),
            ..PeopleFilter::default()
        };
        let mut people: Vec<(i64, String)> = store
            .people(&filter)
            .await?
            .into_iter()
            .map(|p| (p.id, p.person.name))
            .collect();
        people.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let kept = store
            .results(&ResultFilter {
                year: Some(year),
                unit: Some(task.assignee_id.clone()),
                ..ResultFilter::default()
            })
            .await?
            .into_iter()
            .map(|r| (r.person_id, r.rating))
            .collect();
        Ok(Form {
            task,
            rules,
            year,
            people,
            kept,
        })
    }

    /// The rules in force for the ratings kept by task `task_id` (None when the task, its
    /// round or its ratings block is gone), for judging stored results afterwards.
    pub async fn rules_of(&self, task_id: i64) -> Result<Option<Rules>> {
        let store = self.engine.store();
        let Some(task) = store.task(task_id).await? else {
            return Ok(None);
        };
        let Some(round) = store.round(task.round_id).await? else {
            return Ok(None);
        };
        let wf = self.engine.workflow_of(round.version_id).await?;
        Ok(ratings_task(&wf, &task.task).map(|block| round_rules(&wf, block, &round)))
    }

    /// Submit a branch's ratings (person id → rating) and complete the task. Refused
    /// submissions store nothing.
    pub async fn submit(
        &self,
        task_id: i64,
        given: &[(i64, String)],
        actor: &str,
    ) -> Result<Submitted> {
        let form = self.form(task_id).await?;
        if form.task.state != TaskState::Open {
            return Err(AssessError::NotOpen(form.task.state.zh().to_string()));
        }
        let people: BTreeMap<i64, String> = form.people.iter().cloned().collect();
        let store = self.engine.store();
        let mut others = BTreeMap::new();
        for (id, _) in given.iter().filter(|(id, _)| !people.contains_key(id)) {
            if let Some(p) = store.person(*id).await? {
                others.insert(*id, p.person.name);
            }
        }
        form.rules.judge(&people, &others, given)?;
        let now = self.engine.clock().now();
        let today = local_date(now, self.engine.catalog().config.tz());
        let years_back = form.rules.adjust.as_ref().map_or(0, |(n, _)| *n);
        let mut history: BTreeMap<i64, BTreeMap<i32, String>> = BTreeMap::new();
        for back in 1..i32::try_from(years_back).unwrap_or(0) {
            let rows = store
                .results(&ResultFilter {
                    year: Some(form.year - back),
                    ..ResultFilter::default()
                })
                .await?;
            for r in rows
                .into_iter()
                .filter(|r| people.contains_key(&r.person_id))
            {
                history
                    .entry(r.person_id)
                    .or_default()
                    .insert(form.year - back, r.rating);
            }
        }
        let empty = BTreeMap::new();
        let results = given
            .iter()
            .map(|(id, rating)| {
                let past = history.get(id).unwrap_or(&empty);
                let adjust = form
                    .rules
                    .owes_adjustment(form.year, rating, past)
                    .then(|| adjust_note(form.year, years_back, rating));
                NewResult {
                    person_id: *id,
                    rating: rating.clone(),
                    failing: form.rules.fails(rating),
                    priority: form.rules.prioritised(rating),
                    adjust,
                }
            })
            .collect();
        let round = store
            .round(form.task.round_id)
            .await?
            .ok_or(AssessError::NotFound(task_id))?;
        let write = RatingsWrite {
            year: form.year,
            unit: form.task.assignee_id.clone(),
            workflow_id: round.workflow_id.clone(),
            round_id: round.id,
            task_id,
            results,
            adjust_event: form.rules.adjust.as_ref().map(|(_, k)| (k.clone(), today)),
        };
        let who = PoolWrite {
            actor: actor.to_string(),
            at: ms(now),
            action: "assessment.rate".into(),
        };
        let mut events = store.write_ratings(&write, &who).await?;
        // A 调整 event recorded by an earlier submission whose task was never added (the
        // daemon stopped in between) gets its task now; adding is idempotent per event.
        if let Some((_, kind)) = &form.rules.adjust {
            let marked: Vec<(i64, i64)> = store
                .results(&ResultFilter {
                    year: Some(form.year),
                    unit: Some(form.task.assignee_id.clone()),
                    ..ResultFilter::default()
                })
                .await?
                .iter()
                .filter(|r| r.round_id == round.id)
                .filter_map(|r| r.adjust_event.map(|e| (r.person_id, e)))
                .filter(|(_, e)| !events.iter().any(|x| x.id == *e))
                .collect();
            for (person, id) in marked {
                let filter = crate::store::EventFilter {
                    person: Some(person),
                    kind: Some(kind.clone()),
                    year: None,
                };
                events.extend(
                    store
                        .events(&filter)
                        .await?
                        .into_iter()
                        .filter(|e| e.id == id),
                );
            }
        }
        let mut adjust_tasks = Vec::new();
        for e in events {
            let name = people.get(&e.person_id).cloned().unwrap_or_default();
            // The tier lets the 调整 task name its person (`tasks.person_id`).
            let tier = store
                .person(e.person_id)
                .await?
                .map(|p| p.person.tier.get());
            adjust_tasks.extend(
                self.engine
                    .event_occurred_in(
                        round.id,
                        &Occurrence {
                            id: e.id,
                            kind: e.kind.clone(),
                            date: e.date,
                            unit: form.task.assignee_id.clone(),
                            person: Some((e.person_id, name)),
                            person_tier: tier,
                            actor: actor.to_string(),
                        },
                    )
                    .await?,
            );
        }
        let note = format!("已录入{}年度考核等次{}人", form.year, given.len());
        let task = self
            .engine
            .complete_task(task_id, actor, Some(note))
            .await?;
        let results = store
            .results(&ResultFilter {
                year: Some(form.year),
                unit: Some(form.task.assignee_id.clone()),
                ..ResultFilter::default()
            })
            .await?;
        Ok(Submitted {
            task,
            results,
            adjust_tasks,
        })
    }
}

/// A ratings block's rules for a round: its parameters from the round's overrides, else
/// the workflow's defaults.
fn round_rules(wf: &Workflow, block: &Ratings, round: &RoundRow) -> Rules {
    let param = |name: &str| -> Option<i64> {
        round
            .params
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                wf.parameters
                    .iter()
                    .find(|p| p.id.value == name)
                    .and_then(|p| p.default.as_ref())
                    .and_then(|v| v.value.as_i64())
            })
    };
    Rules::of(block, &wf.id.value, &param)
}

fn adjust_note(year: i32, years: u32, rating: &str) -> String {
    let first = year - i32::try_from(years).unwrap_or(1) + 1;
    if first == year {
        format!("{year}年度考核为“{rating}”，应予调整")
    } else {
        format!("{first}—{year}年度连续{years}年考核不合格（{year}年度为“{rating}”），应予调整")
    }
}
