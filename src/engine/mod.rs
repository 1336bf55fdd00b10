//! The engine: rounds, tasks and timers over the store. `serve`, `simulate` and the tests
//! all drive this one engine; only the clock differs.
//!
//! Architecture Invariant: every effect of firing a timer (notifications, the next
//! kickoff, a new round) is computed first and then applied in the same transaction that
//! marks the timer fired, so a crash either leaves the timer claimable again or leaves
//! it fired with all its effects — never half.

pub mod activation;
pub mod clock;
pub mod provisional;
pub mod reproject;

use crate::catalog::Catalog;
use crate::core::definition::{Misfire, Workflow};
use crate::core::diagnostic::Severity;
use crate::core::directory::{Contact, Party};
use crate::core::plan::{Plan, PlanInput, PlannedTimer, Problem, plan};
use crate::core::render::Item;
use crate::core::render::{Rendered, Renderer};
use crate::core::state::{
    AssigneeKind, MessageKind, OutboxChannel, RoundStatus, TaskState, TimerKind, TimerState,
};
use crate::core::timefmt::zh_datetime;
use crate::core::validate::workflow_tz;
use crate::store::{
    Activation, AuditEntry, ClaimedTimers, Decided, FireEffects, Millis, NewNotification, NewRound,
    NewTask, NewTimer, RoundRow, Store, StoreError, TaskRow, TimerPayload, TimerRow, Transition,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use clock::Clock;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// A kickoff that fires later than this after its instant counts as missed (Quartz's
/// misfire threshold): `misfire: skip` then drops it.
const MISFIRE_GRACE_MS: i64 = 60_000;
/// How long a claimed timer stays ours; a crashed daemon's claims expire after this.
const LEASE_MS: i64 = 30_000;
/// How soon a kickoff whose round cannot be planned yet is tried again.
const KICKOFF_RETRY_MS: i64 = 3_600_000;
/// How long a link in a message stays valid after the message is sent (and after the
/// task's deadline).
pub const LINK_VALID_DAYS: i64 = 30;

/// The expiry (epoch seconds) of a link valid for [`LINK_VALID_DAYS`] after `from_ms`.
pub fn link_expiry(from_ms: Millis) -> i64 {
    from_ms.div_euclid(1000) + LINK_VALID_DAYS * 86_400
}
/// Timers claimed per statement.
pub const CLAIM_BATCH: usize = 200;
/// Working days a reopened task gets when neither the caller nor the workflow
/// (`defaults.reopen_working_days`) says.
pub const DEFAULT_REOPEN_WORKING_DAYS: u32 = 5;

/// Engine failures.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No loaded workflow has this id.
    #[error("no workflow `{id}`; {hint}")]
    UnknownWorkflow {
        /// The id asked for.
        id: String,
        /// Known ids or a suggestion.
        hint: String,
    },
    /// The round cannot be planned.
    #[error("workflow `{workflow}` cannot be planned: {}", render_problems(.problems))]
    Plan {
        /// Workflow id.
        workflow: String,
        /// What is wrong.
        problems: Vec<Problem>,
    },
    /// A stored workflow version no longer parses.
    #[error("stored version {0} of a workflow does not parse")]
    BadVersion(i64),
    /// Something asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A value given by the caller cannot be used (e.g. a new deadline in the past).
    #[error("{0}")]
    Invalid(String),
    /// A round was asked for with unit ids that are not in the directory: each with a hint.
    #[error("{}", render_unknown_units(.0))]
    UnknownUnits(Vec<(String, String)>),
}

fn render_problems(p: &[Problem]) -> String {
    p.iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| {
            // A problem of the round's input (a `--param`), not of a line, has no position.
            if p.loc.line == 0 {
                p.message.clone()
            } else {
                format!("line {}:{}: {}", p.loc.line, p.loc.column, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn render_unknown_units(units: &[(String, String)]) -> String {
    units
        .iter()
        .map(|(id, hint)| format!("no unit `{id}` in the directory ({hint})"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias.
pub type Result<T> = std::result::Result<T, EngineError>;

/// UTC instant to epoch milliseconds.
pub fn ms(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

/// Epoch milliseconds to a UTC instant. The store reads only instants that convert (an
/// out-of-range one is `StoreError::Corrupt`), so the fallback is for computed values.
pub fn from_ms(m: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(m).unwrap_or_default()
}

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

/// What firing a claimed batch reads from the store, fetched once per batch.
struct BatchReads {
    tasks: HashMap<i64, TaskRow>,
    /// Rounds read so far; `None` when the round is gone.
    rounds: HashMap<i64, Option<RoundRow>>,
    /// Every timer of the tasks whose overdue reminders or escalations fire late (after
    /// downtime), to tell whether a later one of the same kind is due as well.
    siblings: HashMap<i64, Vec<TimerRow>>,
}

/// A kickoff blocked because its workflow is not loaded (its file is invalid or gone).
pub const BLOCKED_NOT_LOADED: &str = "not_loaded";
/// A kickoff blocked because its round cannot be planned.
pub const BLOCKED_PLAN_FAILED: &str = "plan_failed";

/// Why a kickoff is blocked, for the office (Chinese).
pub fn blocked_reason_zh(reason: &str) -> &'static str {
    match reason {
        BLOCKED_NOT_LOADED => "该工作流当前未加载：工作流文件未通过校验或已被删除",
        BLOCKED_PLAN_FAILED => "该工作流无法排出本轮日程",
        _ => "原因未知",
    }
}

/// A scheduled round that is owed but could not start yet.
#[derive(Debug, Clone, Serialize)]
pub struct BlockedKickoff {
    /// Workflow id.
    pub workflow: String,
    /// The instant the round was scheduled for (its start date).
    pub scheduled: DateTime<Utc>,
    /// [`BLOCKED_NOT_LOADED`] or [`BLOCKED_PLAN_FAILED`].
    pub reason: String,
    /// The reason in Chinese.
    pub reason_zh: String,
    /// The planner's error, if that was the reason.
    pub error: Option<String>,
    /// When it first failed.
    pub since: DateTime<Utc>,
    /// When it is tried again (at once after a reload that loads the workflow).
    pub retry_at: DateTime<Utc>,
}

/// One timer that fired, for logs and `simulate`.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The timer as claimed.
    pub timer: TimerRow,
    /// When it was processed.
    pub at: DateTime<Utc>,
    /// How many notifications it enqueued.
    pub notifications: usize,
    /// The round it started, for kickoffs.
    pub started_round: bool,
}

/// Progress of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageProgress {
    /// Stage id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Opening instant.
    pub opens: Option<DateTime<Utc>>,
    /// Closing instant.
    pub closes: Option<DateTime<Utc>>,
    /// The opening was counted over a year without a holiday file.
    pub opens_provisional: bool,
    /// The closing was counted over a year without a holiday file.
    pub closes_provisional: bool,
    /// Task instances in this stage that are still owed or settled (cancelled ones, e.g. of
    /// a branch removed from the round, are left out).
    pub total: usize,
    /// Done or waived.
    pub done: usize,
    /// Open and past due.
    pub overdue: usize,
}

/// A round's status report.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The round.
    pub round: RoundRow,
    /// Workflow title.
    pub title: String,
    /// Per stage.
    pub stages: Vec<StageProgress>,
    /// Open tasks past their deadline.
    pub overdue: Vec<TaskRow>,
    /// Waiting tasks whose prerequisites are all done or waived: stuck, something is wrong
    /// (the office should look, e.g. at an activation that could not be planned).
    pub stuck: Vec<TaskRow>,
    /// The next pending timers.
    pub next: Vec<TimerRow>,
}

/// The deadline of a reopened task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewDeadline {
    /// `defaults.reopen_working_days` working days from today (5 when unset).
    #[default]
    Default,
    /// This many working days from today.
    WorkingDays(u32),
    /// This date (local), at the task's time of day.
    On(NaiveDate),
    /// This local date and time.
    At(NaiveDateTime),
    /// The task's own deadline, even if it has passed: undoing a mistaken "done" puts the
    /// task back as it was.
    Unchanged,
}

impl NewDeadline {
    /// Parse `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (also with a space instead of `T`).
    pub fn parse_date(s: &str) -> Option<NewDeadline> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(NewDeadline::On(d));
        }
        ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(NewDeadline::At)
    }
}

/// What a task state change does besides the state.
enum Change {
    /// Done or waived: its timers stop and waiting tasks may become owed.
    Finish,
    /// Reopened: a new deadline and the timers planned from it.
    Reopen {
        timers: Vec<NewTimer>,
        due: Millis,
        provisional: bool,
    },
}

/// Everything deciding activations needs besides the rows read in the transaction, so the
/// decision is a plain function of (workflow, the round's tasks, now).
struct Joins {
    catalog: Arc<Catalog>,
    wf: Arc<Workflow>,
    round: RoundRow,
    /// The workflow task ids whose rows the decision reads.
    read: Vec<String>,
    actor: String,
    now: DateTime<Utc>,
}

impl Joins {
    /// The waiting tasks that become owed, with the deadline and timers of each, planned
    /// from when their prerequisites were finished; an activation that cannot be planned
    /// leaves its task waiting, with an audit entry (and `status` reports it).
    fn decide(&self, rows: &[TaskRow]) -> Decided {
        let ready = crate::engine::activation::ready(&self.wf, rows, ms(self.now));
        let mut out = Decided::default();
        if ready.is_empty() {
            return out;
        }
        let failed = |r: &crate::engine::activation::Ready, error: &str| {
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
        let base = match round_plan(&self.catalog, &self.wf, &self.round, None, units) {
            Ok(p) => p,
            Err(e) => {
                out.audit
                    .extend(ready.iter().map(|r| failed(r, &e.to_string())));
                return out;
            }
        };
        // A completion before the dependent's stage opens counts from the opening, so
        // finishing early never makes the next task due before its stage.
        let mut groups: BTreeMap<Option<(String, Millis)>, Vec<&crate::engine::activation::Ready>> =
            BTreeMap::new();
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
                    round_plan(&self.catalog, &self.wf, &self.round, Some(&map), units)
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

/// Plan a stored round (its start, parameters and units, or only the units `only`) with a
/// catalog.
fn round_plan(
    cat: &Catalog,
    wf: &Workflow,
    round: &RoundRow,
    done: Option<&BTreeMap<String, DateTime<Utc>>>,
    only: Option<&[String]>,
) -> Result<Plan> {
    let units: Option<&[String]> = only.or(round.units.as_deref());
    let start = NaiveDate::parse_from_str(&round.start_date, "%Y-%m-%d")
        .map_err(|_| EngineError::NotFound(format!("start date of round {}", round.id)))?;
    let (p, problems) = plan(PlanInput {
        workflow: wf,
        directory: &cat.directory,
        calendar: &cat.calendar,
        tz: workflow_tz(wf, cat.config.tz()),
        start,
        params: &round.params,
        units,
        done,
    });
    p.ok_or_else(|| EngineError::Plan {
        workflow: wf.id.value.clone(),
        problems,
    })
}

/// When a reopened task is due: a date keeps the task's time of day (its old deadline's,
/// else the workflow's `defaults.due_at`, else 18:00); it must lie in the future.
fn reopen_deadline(
    wf: &Workflow,
    calendar: &crate::core::calendar::Calendar,
    tz: chrono_tz::Tz,
    task: &TaskRow,
    due: NewDeadline,
    now: DateTime<Utc>,
) -> Result<DateTime<chrono_tz::Tz>> {
    let time = task
        .due_at
        .map(|d| from_ms(d).with_timezone(&tz).time())
        .or(wf.defaults.due_at.map(|t| t.0))
        .unwrap_or_else(|| NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default());
    let today = local_date(now, tz);
    let working_days = |n: u32| {
        calendar
            .add_working_days(today, i64::from(n))
            .map_err(|e| EngineError::Invalid(format!("cannot count {n} working days: {e}")))
    };
    let local = match due {
        // Not checked against now: the task goes back as it was, overdue or not.
        NewDeadline::Unchanged => {
            let own = task
                .due_at
                .ok_or_else(|| EngineError::Invalid(format!("task {} has no deadline", task.id)))?;
            return Ok(from_ms(own).with_timezone(&tz));
        }
        NewDeadline::Default => working_days(
            wf.defaults
                .reopen_working_days
                .unwrap_or(DEFAULT_REOPEN_WORKING_DAYS),
        )?
        .and_time(time),
        NewDeadline::WorkingDays(n) => working_days(n)?.and_time(time),
        NewDeadline::On(d) => d.and_time(time),
        NewDeadline::At(dt) => dt,
    };
    let at = tz
        .from_local_datetime(&local)
        .earliest()
        .ok_or_else(|| EngineError::Invalid(format!("{local} does not exist in {tz}")))?;
    if at.with_timezone(&Utc) <= now {
        return Err(EngineError::Invalid(format!(
            "the new deadline {} is not in the future",
            zh_datetime(&at)
        )));
    }
    Ok(at)
}

/// The workflow with one task's deadline fixed at an instant, so the planner dates its
/// reminders, overdue reminders and escalations from there. None when the task is not in it.
fn with_fixed_deadline(wf: &Workflow, task: &str, at: DateTime<chrono_tz::Tz>) -> Option<Workflow> {
    use crate::core::calendar::Roll;
    use crate::core::definition::{TimeOfDay, Val, When};
    use crate::core::diagnostic::Sp;
    let mut wf = wf.clone();
    let t = wf
        .stages
        .iter_mut()
        .flat_map(|s| s.tasks.iter_mut())
        .find(|t| t.id.value == task)?;
    let loc = t.due.loc;
    t.due = Sp {
        value: When {
            on: Some(Sp {
                value: Val::Lit(at.date_naive()),
                loc,
            }),
            at: Some(Sp {
                value: Val::Lit(TimeOfDay(at.time())),
                loc,
            }),
            if_non_working: Some(Roll::Keep),
            ..When::default()
        },
        loc,
    };
    Some(wf)
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn Store>,
    catalog: RwLock<Arc<Catalog>>,
    versions: Mutex<HashMap<String, i64>>,
    parsed: Mutex<HashMap<i64, Arc<Workflow>>>,
    clock: Arc<dyn Clock>,
    owner: String,
    wake: Notify,
    counter: AtomicU64,
    lease_ms: i64,
    renderer: Renderer,
    outbox_wake: Notify,
    links: RwLock<Option<crate::access::LinkSigner>>,
    started: DateTime<Utc>,
}

impl Engine {
    /// An engine over a store and a loaded catalog. `owner` names this daemon in leases.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        owner: impl Into<String>,
    ) -> Self {
        let started = clock.now();
        Engine {
            store,
            catalog: RwLock::new(Arc::new(catalog)),
            versions: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
            clock,
            owner: owner.into(),
            wake: Notify::new(),
            counter: AtomicU64::new(0),
            lease_ms: LEASE_MS,
            renderer: Renderer::new(),
            outbox_wake: Notify::new(),
            links: RwLock::new(None),
            started,
        }
    }

    /// Change how long claims last (tests and operators that want faster crash recovery).
    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms.max(1);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// This daemon's lease owner name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When this engine (the daemon) started, by its clock.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// Sign "mark done" links in messages with this signer (needs `notify.link_base`).
    pub fn set_link_signer(&self, signer: crate::access::LinkSigner) {
        if let Ok(mut l) = self.links.write() {
            *l = Some(signer);
        }
    }

    /// The signed "mark done" link of a branch's task in a message made at `now`: valid
    /// until [`LINK_VALID_DAYS`] after its deadline or after `now`, whichever is later, so a
    /// late notice never carries a link that has already expired.
    pub fn task_link(&self, task: &TaskRow, now: DateTime<Utc>) -> Option<String> {
        let base = self.catalog().config.notify.link_base.clone()?;
        if task.assignee_kind != AssigneeKind::Unit {
            return None;
        }
        let signer = self.links.read().ok()?.clone()?;
        let expires = link_expiry(task.due_at.unwrap_or(0).max(ms(now)));
        Some(format!(
            "{}{}",
            base.trim_end_matches('/'),
            signer.task_link(&task.assignee_id, task.id, expires)
        ))
    }

    /// The signer of branch links, when the console is configured.
    pub fn link_signer(&self) -> Option<crate::access::LinkSigner> {
        self.links.read().ok().and_then(|l| l.clone())
    }

    /// The message renderer.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replace the catalog (reload) and register the new workflow versions.
    pub async fn set_catalog(&self, catalog: Catalog) -> Result<()> {
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(catalog);
        }
        self.register_workflows().await?;
        self.ensure_kickoffs().await?;
        self.reproject_kickoffs().await?;
        self.ensure_calendar_notice().await?;
        self.wake();
        Ok(())
    }

    /// Wake the scheduler loop: new work may be due earlier than it thought.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wait until new notifications were enqueued (the outbox sender sleeps on this).
    pub async fn outbox_woken(&self) {
        self.outbox_wake.notified().await
    }

    /// Tell the outbox sender that notifications are waiting.
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Wait until [`Engine::wake`] is called.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// Store every loaded workflow's source as a version (deduplicated by hash).
    pub async fn register_workflows(&self) -> Result<()> {
        let cat = self.catalog();
        let now = ms(self.clock.now());
        for (id, w) in &cat.workflows {
            let v = self
                .store
                .put_workflow_version(id, &w.hash, &w.source, now)
                .await?;
            if let Ok(mut m) = self.versions.lock() {
                m.insert(id.clone(), v.id);
            }
            if let Ok(mut p) = self.parsed.lock() {
                p.entry(v.id)
                    .or_insert_with(|| Arc::new(w.workflow.clone()));
            }
        }
        Ok(())
    }

    fn version_id(&self, workflow: &str) -> Option<i64> {
        self.versions
            .lock()
            .ok()
            .and_then(|m| m.get(workflow).copied())
    }

    /// The workflow a round is pinned to.
    pub(crate) async fn workflow_of(&self, version_id: i64) -> Result<Arc<Workflow>> {
        if let Some(w) = self
            .parsed
            .lock()
            .ok()
            .and_then(|p| p.get(&version_id).cloned())
        {
            return Ok(w);
        }
        let v = self
            .store
            .workflow_version(version_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("workflow version {version_id}")))?;
        let mut d = crate::core::diagnostic::Diagnostics::new(&v.workflow_id);
        let wf = crate::core::yaml::parse::<Workflow>(&v.source, &mut d)
            .ok_or(EngineError::BadVersion(version_id))?;
        let wf = Arc::new(wf);
        if let Ok(mut p) = self.parsed.lock() {
            p.insert(version_id, wf.clone());
        }
        Ok(wf)
    }

    fn tag(&self, seed: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let h = Sha256::digest(
            format!("{seed}|{}|{}|{n}", self.owner, ms(self.clock.now())).as_bytes(),
        );
        h.iter().take(5).map(|b| format!("{b:02x}")).collect()
    }

    fn plan_round(
        &self,
        wf: &Workflow,
        start: NaiveDate,
        params: &BTreeMap<String, String>,
        units: Option<&[String]>,
        done: Option<&BTreeMap<String, DateTime<Utc>>>,
    ) -> Result<Plan> {
        let cat = self.catalog();
        let (p, problems) = plan(PlanInput {
            workflow: wf,
            directory: &cat.directory,
            calendar: &cat.calendar,
            tz: workflow_tz(wf, cat.config.tz()),
            start,
            params,
            units,
            done,
        });
        p.ok_or_else(|| EngineError::Plan {
            workflow: wf.id.value.clone(),
            problems,
        })
    }

    /// Tasks and timers of a planned round. Reminders already in the past are not created
    /// (a round started late should not send a burst of stale reminders). A task waits when
    /// its deadline is not known yet or it has prerequisites (`after:`, `{done: …}`) with
    /// instances in the round; a waiting task's timers are created when it becomes owed.
    fn materialise(
        tag: &str,
        wf: &Workflow,
        p: &Plan,
        now: DateTime<Utc>,
    ) -> (Vec<NewTask>, Vec<NewTimer>) {
        let present: HashSet<&str> = p.tasks.iter().map(|t| t.task.as_str()).collect();
        let blocked: HashSet<&str> = wf
            .tasks()
            .filter(|(_, def)| {
                crate::engine::activation::prerequisites(def)
                    .iter()
                    .any(|pre| present.contains(pre))
            })
            .map(|(_, def)| def.id.value.as_str())
            .collect();
        let mut waiting: HashSet<&str> = HashSet::new();
        let tasks = p
            .tasks
            .iter()
            .map(|t| {
                let fixed = t.due.at.is_some() && !t.due.projected;
                let waits = !fixed || blocked.contains(t.task.as_str());
                if waits {
                    waiting.insert(&t.key);
                }
                NewTask {
                    key: t.key.clone(),
                    task: t.task.clone(),
                    stage: t.stage.clone(),
                    title: t.title.clone(),
                    assignee_kind: t.assignee.kind,
                    assignee_id: t.assignee.id.clone(),
                    assignee_name: t.assignee.name.clone(),
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
                }
            })
            .collect();
        let timers = p
            .timers
            .iter()
            .filter(|t| !t.projected)
            .filter(|t| {
                t.task
                    .as_ref()
                    .is_none_or(|k| !waiting.contains(&k.as_str()))
            })
            .filter_map(|t| timer_row(tag, t, now))
            .collect();
        (tasks, timers)
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
        let p = self.plan_round(
            &loaded.workflow,
            req.start,
            &req.params,
            req.units.as_deref(),
            None,
        )?;
        let tag = format!("m{}", self.tag(&req.workflow));
        let (tasks, mut timers) = Self::materialise(&tag, &loaded.workflow, &p, now);
        // Started late: what is overdue already is told once per assignee, instead of by
        // the deadlines, overdue reminders and escalations of the past (see `effects`).
        timers.extend(catch_up_timers(&tag, &p, now));
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
        let audit = AuditEntry {
            at: ms(now),
            actor: req.actor.clone(),
            action: "round.start".into(),
            subject: format!("workflow:{}", req.workflow),
            detail_json: serde_json::json!({"tag": tag, "start": req.start.to_string(), "params": req.params, "units": req.units, "tasks": tasks.len(), "timers": timers.len()}).to_string(),
        };
        let id = self
            .store
            .create_round(round, tasks, timers, audit)
            .await?
            .ok_or_else(|| EngineError::NotFound("round (duplicate)".into()))?;
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

    /// Fire every timer due now, repeatedly, until none is due. Returns what fired.
    ///
    /// Each claimed batch is written in one transaction (a commit per timer capped the
    /// firing rate at a few thousand per second on SQLite).
    pub async fn fire_due(&self) -> Result<Vec<Fired>> {
        let mut fired = Vec::new();
        while let Some(batch) = self.fire_batch().await? {
            fired.extend(batch);
        }
        Ok(fired)
    }

    /// Claim and fire one batch of due timers; None when nothing could be claimed. The
    /// daemon's loop fires batch by batch, so a burst of 100k timers is never held in
    /// memory at once and a shutdown is noticed between batches.
    pub async fn fire_batch(&self) -> Result<Option<Vec<Fired>>> {
        let mut fired = Vec::new();
        let now = self.clock.now();
        // Phase durations, for `YANZHEN_LOG=yanzhen::engine=debug` when tuning a backend.
        let started = std::time::Instant::now();
        let ClaimedTimers {
            timers: batch,
            corrupt,
        } = self
            .store
            .claim_due_timers(ms(now), &self.owner, self.lease_ms, CLAIM_BATCH as i64)
            .await?;
        if batch.is_empty() && corrupt.is_empty() {
            return Ok(None);
        }
        let claimed = started.elapsed();
        // A row the batch reads that does not parse fails the whole read: then each timer
        // reads for itself, so only the timers that need that row fail.
        let mut reads = match self.batch_reads(&batch, now).await {
            Ok(r) => Some(r),
            Err(EngineError::Store(e)) if e.is_corrupt() => None,
            Err(e) => return Err(e),
        };
        let read = started.elapsed();
        let mut items = Vec::with_capacity(batch.len() + corrupt.len());
        let mut keys = Vec::with_capacity(items.capacity());
        for t in &batch {
            let effects = match &mut reads {
                Some(reads) => self.effects(t, now, reads).await,
                None => match self.batch_reads(std::slice::from_ref(t), now).await {
                    Ok(mut own) => self.effects(t, now, &mut own).await,
                    Err(e) => Err(e),
                },
            };
            let effects = match effects {
                Ok(e) => e,
                // The database failed, not the timer (e.g. it went away while the task
                // was read): firing now would drop the notifications. Leave the timer
                // claimed; it is fired when the lease expires, like after a crash.
                Err(EngineError::Store(e)) if !e.is_corrupt() => return Err(e.into()),
                // A timer whose effects cannot be computed (its data, or a row it needs,
                // does not parse) is fired with an audit entry instead of retried forever.
                Err(e) => self.failed_effects(&t.key, now, &e.to_string()),
            };
            items.push((t.id, effects));
            keys.push(t.key.as_str());
        }
        // So is a claimed timer whose own row does not parse.
        for c in &corrupt {
            items.push((c.id, self.failed_effects(&c.key, now, &c.error.to_string())));
            keys.push(c.key.as_str());
        }
        let computed = started.elapsed();
        let outcome = match self.store.fire_timers(&self.owner, ms(now), &items).await {
            Ok(o) => o,
            Err(e) if is_data_error(&e) => self.fire_one_by_one(&keys, &mut items, now).await?,
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(
            timers = batch.len(),
            claim_ms = claimed.as_secs_f64() * 1e3,
            read_ms = (read - claimed).as_secs_f64() * 1e3,
            effects_ms = (computed - read).as_secs_f64() * 1e3,
            write_ms = (started.elapsed() - computed).as_secs_f64() * 1e3,
            "batch fired"
        );
        let mut woke_outbox = false;
        for ((t, (_, effects)), ok) in batch.into_iter().zip(items).zip(outcome) {
            let notifications = effects.notifications.len();
            if !ok {
                tracing::warn!(timer = %t.key, "lease lost before firing; another daemon has it");
                continue;
            }
            tracing::info!(timer = %t.key, kind = %t.kind, late_ms = ms(now) - t.due_at, notifications, "timer fired");
            if notifications > 0 && !woke_outbox {
                self.wake_outbox();
                woke_outbox = true;
            }
            metrics::counter!("yanzhen_timers_fired_total", "kind" => t.kind.as_str()).increment(1);
            metrics::histogram!("yanzhen_timer_lateness_seconds")
                .record((ms(now) - t.due_at).max(0) as f64 / 1000.0);
            fired.push(Fired {
                timer: t,
                at: now,
                notifications,
                started_round: effects.round.is_some(),
            });
        }
        Ok(Some(fired))
    }

    /// The effects of a timer whose own effects could not be computed or written: an audit
    /// entry saying why, so the timer fires once instead of failing forever.
    fn failed_effects(&self, key: &str, now: DateTime<Utc>, error: &str) -> FireEffects {
        tracing::error!(timer = %key, error = %error, "timer failed");
        FireEffects {
            audit: vec![audit(
                now,
                "daemon",
                "timer.error",
                key,
                serde_json::json!({"error": error}),
            )],
            ..Default::default()
        }
    }

    /// A batch was refused because of one timer's data: fire them one at a time, so only
    /// the faulty timer is fired with an error audit instead of its effects.
    async fn fire_one_by_one(
        &self,
        keys: &[&str],
        items: &mut [(i64, FireEffects)],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(items.len());
        for (key, item) in keys.iter().zip(items.iter_mut()) {
            let one = std::slice::from_ref(item);
            match self.store.fire_timers(&self.owner, ms(now), one).await {
                Ok(o) => out.push(o.first().copied().unwrap_or(false)),
                Err(e) if is_data_error(&e) => {
                    item.1 = self.failed_effects(key, now, &e.to_string());
                    let o = self
                        .store
                        .fire_timers(&self.owner, ms(now), std::slice::from_ref(item))
                        .await?;
                    out.push(o.first().copied().unwrap_or(false));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The earliest instant something becomes due.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.store.next_due_at().await?.map(from_ms))
    }

    /// The tasks of a claimed batch, read in one query, a cache for their rounds, and the
    /// timers of tasks whose overdue reminders or escalations fire late.
    async fn batch_reads(&self, batch: &[TimerRow], now: DateTime<Utc>) -> Result<BatchReads> {
        let ids: Vec<i64> = batch.iter().filter_map(|t| t.task_id).collect();
        let tasks = if ids.is_empty() {
            HashMap::new()
        } else {
            self.store
                .tasks_by_ids(&ids)
                .await?
                .into_iter()
                .map(|t| (t.id, t))
                .collect()
        };
        // Two overdue reminders or rungs of one task are at least an hour apart, so only a
        // timer this late can have a later sibling that is due too (the daemon was down).
        let mut late: Vec<i64> = batch
            .iter()
            .filter(|t| t.kind.is_chain() && ms(now) - t.due_at >= MISFIRE_GRACE_MS)
            .filter_map(|t| t.task_id)
            .collect();
        late.sort_unstable();
        late.dedup();
        let mut siblings: HashMap<i64, Vec<TimerRow>> = HashMap::new();
        if !late.is_empty() {
            for t in self.store.task_timers(&late).await? {
                if let Some(task) = t.task_id {
                    siblings.entry(task).or_default().push(t);
                }
            }
        }
        Ok(BatchReads {
            tasks,
            rounds: HashMap::new(),
            siblings,
        })
    }

    /// A round, read once per batch.
    async fn round_cached(&self, id: i64, reads: &mut BatchReads) -> Result<Option<RoundRow>> {
        if let Some(r) = reads.rounds.get(&id) {
            return Ok(r.clone());
        }
        let r = self.store.round(id).await?;
        reads.rounds.insert(id, r.clone());
        Ok(r)
    }

    async fn effects(
        &self,
        t: &TimerRow,
        now: DateTime<Utc>,
        reads: &mut BatchReads,
    ) -> Result<FireEffects> {
        let payload = &t.payload;
        if t.kind != TimerKind::Kickoff
            && t.kind != TimerKind::CatchUp
            && let Some(round_id) = t.round_id
            && let Some(round) = self.round_cached(round_id, reads).await?
            && t.due_at < round.created_at - MISFIRE_GRACE_MS
        {
            // The round was started with a date in the past: its instants before that are
            // recorded, not acted on; the catch-up message tells what is overdue.
            return Ok(skipped(t, now, "before the round was started"));
        }
        match t.kind {
            TimerKind::Kickoff => self.kickoff_effects(t, payload, now),
            TimerKind::CatchUp => self.catch_up_effects(t, payload, now, reads).await,
            TimerKind::CalendarNotice => Ok(self.calendar_notice_effects(t, now)),
            TimerKind::StageOpen | TimerKind::StageClose => Ok(FireEffects {
                audit: vec![audit(
                    now,
                    "daemon",
                    if t.kind == TimerKind::StageOpen {
                        "stage.open"
                    } else {
                        "stage.close"
                    },
                    &t.key,
                    serde_json::json!({"stage": payload.stage}),
                )],
                ..Default::default()
            }),
            TimerKind::Reminder
            | TimerKind::Deadline
            | TimerKind::Overdue
            | TimerKind::Escalation => self.task_timer_effects(t, payload, now, reads).await,
        }
    }

    fn kickoff_effects(
        &self,
        t: &TimerRow,
        payload: &TimerPayload,
        now: DateTime<Utc>,
    ) -> Result<FireEffects> {
        let cat = self.catalog();
        let Some(id) = payload.workflow.clone() else {
            return Err(corrupt_payload(
                t,
                "names no workflow, which a kickoff must",
            ));
        };
        let mut fx = FireEffects::default();
        // A retried kickoff still owes the round of its original instant.
        let scheduled = payload.scheduled_ms.unwrap_or(t.due_at);
        let due = from_ms(scheduled);
        let kickoff_key = kickoff_timer(&id, due).key;
        let (Some(loaded), Some(version_id)) = (cat.workflows.get(&id), self.version_id(&id))
        else {
            // The file is invalid or gone (e.g. the daemon started while it did not
            // validate). The round is still owed: it waits, and starts once the workflow
            // is loaded again.
            return Ok(self.blocked_kickoff(
                payload,
                &id,
                &kickoff_key,
                scheduled,
                now,
                BLOCKED_NOT_LOADED,
                None,
            ));
        };
        let wf = &loaded.workflow;
        let Some(schedule) = &wf.schedule else {
            fx.audit.push(audit(
                now,
                "daemon",
                "kickoff.skipped",
                &t.key,
                serde_json::json!({"reason": "workflow has no schedule any more"}),
            ));
            return Ok(fx);
        };
        let tz = workflow_tz(wf, cat.config.tz());
        let late = ms(now) - scheduled;
        // `misfire` is about the kickoff itself being late (the daemon was down); a
        // blocked kickoff retried later still owes its round.
        if payload.scheduled_ms.is_none()
            && late > MISFIRE_GRACE_MS
            && schedule.misfire.unwrap_or_default() == Misfire::Skip
        {
            fx.audit.push(audit(
                now,
                "daemon",
                "kickoff.missed",
                &kickoff_key,
                serde_json::json!({"policy": "skip", "late_ms": late}),
            ));
            fx.timers
                .extend(self.next_kickoff(&id, schedule, tz, due, now, &mut fx.audit));
            return Ok(fx);
        }
        let start = due.with_timezone(&tz).date_naive();
        let p = match self.plan_round(wf, start, &BTreeMap::new(), None, None) {
            Ok(p) => p,
            Err(e) => {
                // E.g. the holiday calendar lacks a year the round needs. The round is
                // still owed: it waits, and starts once it plans (after a reload).
                return Ok(self.blocked_kickoff(
                    payload,
                    &id,
                    &kickoff_key,
                    scheduled,
                    now,
                    BLOCKED_PLAN_FAILED,
                    Some(e.to_string()),
                ));
            }
        };
        // The next kickoff counts from now, so kickoffs missed during an outage collapse
        // into this one firing instead of firing once each.
        fx.timers
            .extend(self.next_kickoff(&id, schedule, tz, due, now, &mut fx.audit));
        let tag = format!("k{}", short_hash(&kickoff_key));
        let (tasks, timers) = Self::materialise(&tag, wf, &p, now);
        fx.audit.push(audit(
            now,
            "daemon",
            "round.start",
            &format!("workflow:{id}"),
            serde_json::json!({"tag": tag, "start": start.to_string(), "kickoff": kickoff_key, "late_ms": late, "tasks": tasks.len()}),
        ));
        fx.notifications
            .extend(self.kickoff_notifications(&tag, wf, &p, now));
        fx.round = Some((
            NewRound {
                tag,
                workflow_id: id.clone(),
                version_id,
                start_date: start.to_string(),
                params: BTreeMap::new(),
                units: None,
                kickoff_key: Some(kickoff_key.clone()),
                created_at: ms(now),
            },
            tasks,
            timers,
        ));
        Ok(fx)
    }

    /// The effects of a kickoff that cannot start its round now: an audit entry, the same
    /// kickoff again in an hour (under a `:retry:` key, still owing the round of
    /// `scheduled`; a reload that makes the workflow valid brings it forward, see
    /// [`Engine::ensure_kickoffs`]), and, when the reason is new, a notice to the office.
    #[allow(clippy::too_many_arguments)]
    fn blocked_kickoff(
        &self,
        payload: &TimerPayload,
        id: &str,
        kickoff_key: &str,
        scheduled: Millis,
        now: DateTime<Utc>,
        reason: &str,
        error: Option<String>,
    ) -> FireEffects {
        let retry_at = ms(now) + KICKOFF_RETRY_MS;
        let since = payload.blocked_since.unwrap_or(ms(now));
        tracing::error!(workflow = %id, kickoff = %kickoff_key, reason, error = ?error, "kickoff cannot start its round; it waits and is retried");
        let mut fx = FireEffects::default();
        fx.audit.push(audit(
            now,
            "daemon",
            "kickoff.failed",
            kickoff_key,
            serde_json::json!({"reason": reason, "error": error, "retry_at": retry_at}),
        ));
        let blocked = TimerPayload {
            workflow: Some(id.to_string()),
            scheduled_ms: Some(scheduled),
            blocked: Some(reason.to_string()),
            blocked_since: Some(since),
            error: error.clone(),
            ..TimerPayload::default()
        };
        fx.timers.push(NewTimer {
            key: format!("{kickoff_key}:retry:{}", ms(now)),
            round_id: None,
            task_key: None,
            kind: TimerKind::Kickoff,
            due_at: retry_at,
            payload: blocked,
        });
        if payload.blocked.as_deref() != Some(reason) {
            fx.notifications =
                self.kickoff_blocked_notice(id, kickoff_key, scheduled, reason, error, now);
        }
        fx
    }

    /// The office's notice that a scheduled round could not start (kind `kickoff_blocked`).
    fn kickoff_blocked_notice(
        &self,
        id: &str,
        kickoff_key: &str,
        scheduled: Millis,
        reason: &str,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let cat = self.catalog();
        let tz = cat.workflows.get(id).map_or(cat.config.tz(), |w| {
            workflow_tz(&w.workflow, cat.config.tz())
        });
        let title = cat
            .workflows
            .get(id)
            .map_or_else(|| id.to_string(), |w| w.workflow.title.clone());
        let party = cat
            .directory
            .role_party(&cat.config.notify.dead_letter_role);
        let ctx = minijinja::context! {
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            workflow => minijinja::context!{ id => id, title => title.clone() },
            scheduled => zh_datetime(&from_ms(scheduled).with_timezone(&tz)),
            retry_at => zh_datetime(&from_ms(ms(now) + KICKOFF_RETRY_MS).with_timezone(&tz)),
            reason => blocked_reason_zh(reason),
            error => error,
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        let rendered = match self.renderer.render("kickoff_blocked", &[], &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "kickoff_blocked template failed");
                return Vec::new();
            }
        };
        let item = Item {
            title: format!("「{title}」定期启动受阻"),
            assignee: party.name.clone(),
            deadline: zh_datetime(&from_ms(scheduled).with_timezone(&tz)),
            days_left: 0,
            link: None,
        };
        let item_json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
        self.to_contacts(
            &format!("{kickoff_key}/blocked:{reason}"),
            None,
            MessageKind::KickoffBlocked,
            &party,
            &rendered,
            &item_json,
            now,
        )
    }

    /// Scheduled rounds that are owed but could not start (their kickoff waits for a retry).
    pub async fn blocked_kickoffs(&self) -> Result<Vec<BlockedKickoff>> {
        let mut out = Vec::new();
        for t in self.store.timers_with_prefix("kickoff:").await? {
            if !t.state.is_live() {
                continue;
            }
            let p = t.payload;
            let (Some(reason), Some(scheduled)) = (p.blocked, p.scheduled_ms) else {
                continue;
            };
            out.push(BlockedKickoff {
                workflow: p.workflow.unwrap_or_default(),
                scheduled: from_ms(scheduled),
                reason_zh: blocked_reason_zh(&reason).to_string(),
                reason,
                error: p.error,
                since: from_ms(p.blocked_since.unwrap_or(t.due_at)),
                retry_at: from_ms(t.due_at),
            });
        }
        Ok(out)
    }

    /// The next kickoff after this one, or an audit entry saying why there is none.
    fn next_kickoff(
        &self,
        id: &str,
        schedule: &crate::core::definition::Schedule,
        tz: chrono_tz::Tz,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        audit_log: &mut Vec<AuditEntry>,
    ) -> Option<NewTimer> {
        match crate::core::schedule::next_kickoff(
            schedule,
            tz,
            &self.catalog().calendar,
            due.max(now),
        ) {
            Ok(Some(next)) => Some(kickoff_timer(id, next.with_timezone(&Utc))),
            Ok(None) => None,
            Err(e) => {
                audit_log.push(audit(
                    now,
                    "daemon",
                    "kickoff.unschedulable",
                    &format!("workflow:{id}"),
                    serde_json::json!({"error": e.to_string()}),
                ));
                None
            }
        }
    }

    fn kickoff_notifications(
        &self,
        tag: &str,
        wf: &Workflow,
        p: &Plan,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let mut seen: Vec<&Party> = Vec::new();
        for t in &p.tasks {
            if !seen.contains(&&t.assignee) {
                seen.push(&t.assignee);
            }
        }
        let cat = self.catalog();
        let tz = workflow_tz(wf, cat.config.tz());
        let mut out = Vec::new();
        for party in seen {
            let items: Vec<Item> = p
                .tasks
                .iter()
                .filter(|t| &t.assignee == party)
                .map(|t| Item {
                    title: t.title.clone(),
                    assignee: party.name.clone(),
                    deadline: match t.due.at {
                        Some(a) if !t.due.projected => format!(
                            "{}{}",
                            zh_datetime(&a),
                            crate::core::timefmt::provisional_mark(t.due.provisional)
                        ),
                        _ => "视前序工作或事件而定".to_string(),
                    },
                    days_left: t
                        .due
                        .at
                        .map_or(0, |a| days_between(now, a.with_timezone(&Utc), tz)),
                    link: None,
                })
                .collect();
            let ctx = minijinja::context! {
                workflow => minijinja::context!{ id => wf.id.value.clone(), title => wf.title.clone() },
                round => minijinja::context!{ tag => tag, start => crate::core::timefmt::zh_date(p.start) },
                recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
                assignee => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
                params => minijinja::Value::from(minijinja::value::Serde(&p.params)),
                office => minijinja::context!{ name => cat.directory.office.name.clone() },
                items => minijinja::Value::from(minijinja::value::Serde(&items)),
                // The party's earliest dated deadline, for templates that name one date.
                deadline => p.tasks.iter().filter(|t| &t.assignee == party && !t.due.projected).filter_map(|t| t.due.at.map(|a| (a, t.due.provisional))).min().map(|(a, prov)| format!("{}{}", zh_datetime(&a), crate::core::timefmt::provisional_mark(prov))),
                days_left => p.tasks.iter().filter(|t| &t.assignee == party && !t.due.projected).filter_map(|t| t.due.at).min().map(|a| days_between(now, a.with_timezone(&Utc), tz)),
            };
            let rendered = match self
                .renderer
                .render("kickoff", &[Some(&wf.templates)], &ctx)
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "kickoff template failed; using the built-in one");
                    match self.renderer.render("kickoff", &[], &ctx) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                }
            };
            let item = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
            out.extend(self.to_contacts(
                &format!("{tag}/kickoff@{}", party.id),
                None,
                MessageKind::Kickoff,
                party,
                &rendered,
                &item,
                now,
            ));
        }
        out
    }

    async fn task_timer_effects(
        &self,
        t: &TimerRow,
        payload: &TimerPayload,
        now: DateTime<Utc>,
        reads: &mut BatchReads,
    ) -> Result<FireEffects> {
        let mut fx = FireEffects::default();
        let Some(task_id) = t.task_id else {
            return Ok(fx);
        };
        let Some(task) = reads.tasks.get(&task_id).cloned() else {
            return Ok(fx);
        };
        if task.state != TaskState::Open {
            fx.audit.push(audit(
                now,
                "daemon",
                "timer.skipped",
                &t.key,
                serde_json::json!({"reason": format!("task is {}", task.state)}),
            ));
            return Ok(fx);
        }
        if t.kind == TimerKind::Reminder && task.due_at.is_some_and(|d| ms(now) >= d) {
            // The deadline passed while this reminder waited (downtime); the deadline and
            // overdue notices say it better.
            fx.audit.push(audit(
                now,
                "daemon",
                "timer.skipped",
                &t.key,
                serde_json::json!({"reason": "reminder after the deadline"}),
            ));
            return Ok(fx);
        }
        let Some(party) = &payload.recipient else {
            return Ok(fx);
        };
        let cat = self.catalog();
        if t.kind.is_chain()
            && reads.siblings.get(&task_id).is_some_and(|timers| {
                timers.iter().any(|u| {
                    u.id != t.id
                        && u.kind == t.kind
                        && u.state != TimerState::Cancelled
                        && u.due_at > t.due_at
                        && u.due_at <= ms(now)
                })
            })
        {
            // After downtime only the latest due overdue reminder, and only the highest due
            // rung, are sent: one catch-up, not the whole chain in one second.
            return Ok(skipped(t, now, "a later one is due as well"));
        }
        let round = self.round_cached(task.round_id, reads).await?;
        let wf = match &round {
            // A database failure must leave the timer claimed (see `fire_due`); a stored
            // version that no longer parses only loses the workflow's own templates.
            Some(r) => match self.workflow_of(r.version_id).await {
                Ok(w) => Some(w),
                Err(e @ EngineError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::error!(timer = %t.key, error = %e, "sending with the built-in templates");
                    None
                }
            },
            None => None,
        };
        let tz = wf
            .as_ref()
            .map_or(cat.config.tz(), |w| workflow_tz(w, cat.config.tz()));
        if t.kind == TimerKind::Deadline
            && local_date(now, tz) != local_date(from_ms(task.due_at.unwrap_or(t.due_at)), tz)
        {
            // 【今日截止】 is true on the deadline's own day only; later, the overdue
            // reminders speak.
            return Ok(skipped(t, now, "the deadline's day has passed"));
        }
        let due = task.due_at.map(from_ms);
        let deadline = due
            .map(|d| {
                format!(
                    "{}{}",
                    zh_datetime(&d.with_timezone(&tz)),
                    crate::core::timefmt::provisional_mark(task.provisional)
                )
            })
            .unwrap_or_default();
        let days_left = due.map_or(0, |d| days_between(now, d, tz));
        let link = self.task_link(&task, now);
        let item = Item {
            title: task.title.clone(),
            assignee: task.assignee_name.clone(),
            deadline: deadline.clone(),
            days_left,
            link: link.clone(),
        };
        let task_def = wf
            .as_ref()
            .and_then(|w| w.task(&task.task).map(|(_, t)| t.clone()));
        let params = round.as_ref().map(|r| r.params.clone()).unwrap_or_default();
        let mut ctx = minijinja::context! {
            workflow => minijinja::context!{ id => wf.as_ref().map(|w| w.id.value.clone()), title => wf.as_ref().map(|w| w.title.clone()) },
            round => minijinja::context!{ id => task.round_id, start => round.as_ref().map(|r| r.start_date.clone()) },
            stage => minijinja::context!{ id => task.stage.clone() },
            task => minijinja::context!{ id => task.task.clone(), key => task.key.clone(), title => task.title.clone(),
                description => task_def.as_ref().and_then(|t| t.description.as_ref().map(|d| d.value.clone())) },
            assignee => minijinja::context!{ id => task.assignee_id.clone(), name => task.assignee_name.clone() },
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            deadline => deadline,
            days_left => days_left,
            params => params,
            link => link,
            items => minijinja::Value::from(minijinja::value::Serde(vec![&item])),
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        // A task description is a template too: render it with the same variables.
        if let Some(src) = task_def.as_ref().and_then(|t| t.description.as_ref()) {
            let description = self
                .renderer
                .render_text(&src.value, &ctx)
                .unwrap_or_else(|_| src.value.clone());
            ctx = minijinja::context! { task => minijinja::context!{ id => task.task.clone(), key => task.key.clone(),
            title => task.title.clone(), description => description }, ..ctx };
        }
        // The notice sent at the deadline itself is the "due today" message.
        let kind = match t.kind {
            TimerKind::Deadline => MessageKind::DueToday,
            TimerKind::Overdue => MessageKind::Overdue,
            TimerKind::Escalation => MessageKind::Escalation,
            // Only task timers come here (see `effects`).
            _ => MessageKind::Reminder,
        };
        let overrides = [
            task_def.as_ref().and_then(|t| t.templates.as_ref()),
            wf.as_ref().map(|w| &w.templates),
        ];
        let rendered = match self.renderer.render(kind.as_str(), &overrides, &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(timer = %t.key, error = %e, "template failed; using the built-in one");
                self.renderer
                    .render(kind.as_str(), &[], &ctx)
                    .map_err(|e| EngineError::NotFound(e.to_string()))?
            }
        };
        let item_json = serde_json::to_string(&item).unwrap_or_else(|_| "{}".into());
        fx.notifications =
            self.to_contacts(&t.key, Some(&task), kind, party, &rendered, &item_json, now);
        if t.kind == TimerKind::Escalation {
            fx.audit.push(audit(
                now,
                "daemon",
                "task.escalated",
                &format!("task:{}", task.id),
                serde_json::json!({"to": party.id, "timer": t.key}),
            ));
        }
        Ok(fx)
    }

    /// The one catch-up message of an assignee of a round started late: everything of theirs
    /// that is overdue when it fires (nothing, when they caught up meanwhile).
    async fn catch_up_effects(
        &self,
        t: &TimerRow,
        payload: &TimerPayload,
        now: DateTime<Utc>,
        reads: &mut BatchReads,
    ) -> Result<FireEffects> {
        let (Some(round_id), Some(party)) = (t.round_id, &payload.recipient) else {
            return Ok(skipped(t, now, "no round or recipient"));
        };
        let Some(round) = self.round_cached(round_id, reads).await? else {
            return Ok(skipped(t, now, "the round is gone"));
        };
        let wf = match self.workflow_of(round.version_id).await {
            Ok(w) => Some(w),
            Err(e @ EngineError::Store(_)) => return Err(e),
            Err(e) => {
                tracing::error!(timer = %t.key, error = %e, "sending with the built-in templates");
                None
            }
        };
        let cat = self.catalog();
        let tz = wf
            .as_ref()
            .map_or(cat.config.tz(), |w| workflow_tz(w, cat.config.tz()));
        let tasks = self.store.tasks(round_id).await?;
        let items: Vec<Item> = tasks
            .iter()
            .filter(|x| x.assignee_kind == party.kind && x.assignee_id == party.id)
            .filter(|x| is_overdue(x, ms(now)))
            .filter_map(|x| {
                let due = from_ms(x.due_at?);
                Some(Item {
                    title: x.title.clone(),
                    assignee: x.assignee_name.clone(),
                    deadline: format!(
                        "{}{}",
                        zh_datetime(&due.with_timezone(&tz)),
                        crate::core::timefmt::provisional_mark(x.provisional)
                    ),
                    days_left: days_between(now, due, tz),
                    link: self.task_link(x, now),
                })
            })
            .collect();
        if items.is_empty() {
            return Ok(skipped(t, now, "nothing overdue any more"));
        }
        let ctx = minijinja::context! {
            workflow => minijinja::context!{ id => round.workflow_id.clone(), title => wf.as_ref().map(|w| w.title.clone()) },
            round => minijinja::context!{ id => round.id, start => round.start_date.clone() },
            recipient => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            assignee => minijinja::context!{ id => party.id.clone(), name => party.name.clone() },
            items => minijinja::Value::from(minijinja::value::Serde(&items)),
            office => minijinja::context!{ name => cat.directory.office.name.clone() },
        };
        let rendered = self
            .renderer
            .render("catch_up", &[], &ctx)
            .map_err(|e| EngineError::NotFound(e.to_string()))?;
        let item_json = serde_json::to_string(&items).unwrap_or_else(|_| "[]".into());
        let mut notifications = self.to_contacts(
            &t.key,
            None,
            MessageKind::CatchUp,
            party,
            &rendered,
            &item_json,
            now,
        );
        for n in &mut notifications {
            n.round_id = Some(round_id);
        }
        Ok(FireEffects {
            notifications,
            audit: vec![audit(
                now,
                "daemon",
                "round.catch_up",
                &format!("round:{round_id}"),
                serde_json::json!({"to": party.id, "overdue": items.len(), "timer": t.key}),
            )],
            ..Default::default()
        })
    }

    /// One notification per channel of every contact of a party (a `log` entry when the
    /// party has no reachable contact, so nothing disappears silently).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn to_contacts(
        &self,
        key: &str,
        task: Option<&TaskRow>,
        kind: MessageKind,
        party: &Party,
        rendered: &Rendered,
        item_json: &str,
        now: DateTime<Utc>,
    ) -> Vec<NewNotification> {
        let cat = self.catalog();
        let contacts: Vec<Contact> = match party.kind {
            AssigneeKind::Role => cat
                .directory
                .role(&party.id)
                .map(|r| r.contacts.clone())
                .unwrap_or_default(),
            AssigneeKind::Unit => cat
                .directory
                .unit(&party.id)
                .map(|u| u.contacts.clone())
                .unwrap_or_default(),
        };
        let mut channels: Vec<(OutboxChannel, String, serde_json::Value)> = Vec::new();
        for c in &contacts {
            let who = serde_json::json!({"party": party, "contact": c});
            if let Some(e) = &c.email {
                channels.push((OutboxChannel::Email, e.clone(), who.clone()));
            }
            for w in &c.webhooks {
                channels.push((OutboxChannel::Webhook, w.url.clone(), who.clone()));
            }
            if c.email.is_none() && c.webhooks.is_empty() {
                channels.push((OutboxChannel::Log, c.name.clone(), who.clone()));
            }
        }
        if channels.is_empty() {
            channels.push((
                OutboxChannel::Log,
                party.name.clone(),
                serde_json::json!({"party": party}),
            ));
        }
        channels
            .into_iter()
            .map(|(channel, address, who)| NewNotification {
                key: format!("{key}#{channel}:{address}"),
                round_id: task.map(|t| t.round_id),
                task_id: task.map(|t| t.id),
                kind,
                channel,
                address,
                recipient_json: who.to_string(),
                subject: rendered.subject.clone(),
                body: rendered.text.clone(),
                html: rendered.html.clone(),
                item_json: item_json.to_string(),
                not_before: ms(now),
                created_at: ms(now),
            })
            .collect()
    }

    /// Mark a task done: its reminders and escalations stop, and tasks waiting on it
    /// become owed (counted from now). Allowed before the task's stage or round has begun.
    pub async fn complete_task(
        &self,
        task_id: i64,
        actor: &str,
        note: Option<String>,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "note": note});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Open],
                TaskState::Done,
                "complete",
                note,
                Change::Finish,
                detail,
            )
            .await?;
        self.finish_if_done(row.round_id, actor).await?;
        self.wake();
        Ok(row)
    }

    /// Excuse a task: its reminders and escalations stop; tasks waiting on it become owed
    /// as if it were done (counted from now).
    pub async fn waive_task(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let now = self.clock.now();
        let detail = serde_json::json!({"key": task.key, "reason": reason});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Open, TaskState::Waiting],
                TaskState::Waived,
                "waive",
                reason,
                Change::Finish,
                detail,
            )
            .await?;
        self.finish_if_done(row.round_id, actor).await?;
        self.wake();
        Ok(row)
    }

    /// Reopen a done or waived task with the workflow's default new deadline
    /// (`defaults.reopen_working_days` working days from today, 5 when unset).
    pub async fn reopen_task(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
    ) -> Result<TaskRow> {
        self.reopen_task_due(task_id, actor, reason, NewDeadline::Default)
            .await
    }

    /// Reopen a done or waived task with a new deadline: its reminders, overdue reminders
    /// and escalations are planned again from that deadline, under new keys.
    pub async fn reopen_task_due(
        &self,
        task_id: i64,
        actor: &str,
        reason: Option<String>,
        due: NewDeadline,
    ) -> Result<TaskRow> {
        let task = self.task_or_err(task_id).await?;
        let round = self
            .store
            .round(task.round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {}", task.round_id)))?;
        if !task.state.is_settled() {
            return Err(StoreError::WrongState {
                task: task.id,
                state: task.state,
                action: "reopen".into(),
            }
            .into());
        }
        let now = self.clock.now();
        let wf = self.workflow_of(round.version_id).await?;
        let cat = self.catalog();
        let tz = workflow_tz(&wf, cat.config.tz());
        let at = reopen_deadline(&wf, &cat.calendar, tz, &task, due, now)?;
        let fixed = with_fixed_deadline(&wf, &task.task, at).ok_or_else(|| {
            EngineError::NotFound(format!("task `{}` in the workflow", task.task))
        })?;
        // The office's date is checked like a planned one (e.g. not before the task's stage
        // opens), but the fault is the date's, not the workflow's.
        let only: Vec<String> = (task.assignee_kind == AssigneeKind::Unit)
            .then(|| task.assignee_id.clone())
            .into_iter()
            .collect();
        let p = round_plan(&cat, &fixed, &round, None, Some(&only)).map_err(|e| match e {
            EngineError::Plan { problems, .. } => EngineError::Invalid(format!(
                "the new deadline {} cannot be used: {}",
                zh_datetime(&at),
                problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| p.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            e => e,
        })?;
        let history = self.store.task_history(task_id).await?;
        let suffix = format!(
            "reopen{}",
            history.iter().filter(|h| h.action_is_reopen()).count() + 1
        );
        let timers: Vec<NewTimer> = p
            .timers
            .iter()
            .filter(|t| t.task.as_deref() == Some(&task.key) && !t.projected)
            .filter_map(|t| timer_row(&round.tag, t, now))
            .map(|mut t| {
                t.key = format!("{}~{suffix}", t.key);
                t.round_id = Some(round.id);
                t
            })
            .collect();
        let due_ms = ms(at.with_timezone(&Utc));
        let provisional = p
            .tasks
            .iter()
            .find(|x| x.key == task.key)
            .is_some_and(|x| x.due.provisional);
        let detail = serde_json::json!({"key": task.key, "reason": reason, "old_due": task.due_at.map(from_ms), "new_due": from_ms(due_ms)});
        let row = self
            .change(
                &task,
                now,
                actor,
                &[TaskState::Done, TaskState::Waived],
                TaskState::Open,
                "reopen",
                reason,
                Change::Reopen {
                    timers,
                    due: due_ms,
                    provisional,
                },
                detail,
            )
            .await?;
        if round.status == RoundStatus::Finished {
            self.store
                .set_round_status(
                    round.id,
                    RoundStatus::Running,
                    audit(
                        now,
                        actor,
                        "round.reopen",
                        &format!("round:{}", round.id),
                        serde_json::json!({"task": task_id}),
                    ),
                )
                .await?;
        }
        self.wake();
        Ok(row)
    }

    /// Apply a task state change with its history and audit entry (`task.{action}`). A
    /// finished task stops its timers, and which waiting tasks become owed is decided inside
    /// the store's transaction, on the round's tasks as read there under the round's lock:
    /// deciding from reads made before it let two completions at the same moment each
    /// miss the other's, and the join waited forever.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        task: &TaskRow,
        now: DateTime<Utc>,
        actor: &str,
        from: &[TaskState],
        to: TaskState,
        action: &str,
        note: Option<String>,
        what: Change,
        detail: serde_json::Value,
    ) -> Result<TaskRow> {
        let (cancel_timers, new_timers, set_due) = match what {
            Change::Finish => (true, vec![], None),
            Change::Reopen {
                timers,
                due,
                provisional,
            } => (false, timers, Some((due, provisional))),
        };
        let t = Transition {
            task_id: task.id,
            from: from.to_vec(),
            to,
            at: ms(now),
            actor: actor.to_string(),
            note,
            action: action.to_string(),
            cancel_timers,
            new_timers,
            activate: vec![],
            set_due,
            audit: audit(
                now,
                actor,
                &format!("task.{action}"),
                &format!("task:{}", task.id),
                detail,
            ),
        };
        let joins = if cancel_timers {
            self.joins(task, actor, now).await?
        } else {
            None
        };
        Ok(match &joins {
            Some(j) => {
                let decide = |rows: &[TaskRow]| j.decide(rows);
                self.store.transition_with(t, &j.read, &decide).await?
            }
            None => self.store.transition(t).await?,
        })
    }

    /// What deciding the activations `task` may release needs, read before the transaction;
    /// None when no task waits for it.
    async fn joins(
        &self,
        task: &TaskRow,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Joins>> {
        let round = self
            .store
            .round(task.round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {}", task.round_id)))?;
        let wf = self.workflow_of(round.version_id).await?;
        let read = crate::engine::activation::to_read(&wf, &task.task);
        if read.is_empty() {
            return Ok(None);
        }
        Ok(Some(Joins {
            catalog: self.catalog(),
            wf,
            round,
            read,
            actor: actor.to_string(),
            now,
        }))
    }

    /// A round whose every task is done, waived or cancelled is finished.
    async fn finish_if_done(&self, round_id: i64, actor: &str) -> Result<()> {
        let tasks = self.store.tasks(round_id).await?;
        let open = tasks.iter().any(|t| t.state.is_owed());
        if !open {
            let now = self.clock.now();
            self.store
                .set_round_status(
                    round_id,
                    RoundStatus::Finished,
                    audit(
                        now,
                        actor,
                        "round.finish",
                        &format!("round:{round_id}"),
                        serde_json::json!({}),
                    ),
                )
                .await?;
        }
        Ok(())
    }

    async fn task_or_err(&self, id: i64) -> Result<TaskRow> {
        self.store
            .task(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("task {id}")))
    }

    async fn replan(
        &self,
        round: &RoundRow,
        done: Option<&BTreeMap<String, DateTime<Utc>>>,
    ) -> Result<Plan> {
        let wf = self.workflow_of(round.version_id).await?;
        round_plan(&self.catalog(), &wf, round, done, None)
    }

    /// Plan a workflow source (a stored version) with the current catalog, at `start_from`'s
    /// example start (or today), for `workflow diff`.
    pub async fn plan_source(&self, source: &str, start_from: Option<&str>) -> Result<Plan> {
        let mut d = crate::core::diagnostic::Diagnostics::new("version");
        let wf = crate::core::yaml::parse::<Workflow>(source, &mut d)
            .ok_or(EngineError::BadVersion(0))?;
        let start_wf = match start_from {
            Some(src) => crate::core::yaml::parse::<Workflow>(src, &mut d),
            None => None,
        };
        let cat = self.catalog();
        let today = self
            .clock
            .now()
            .with_timezone(&cat.config.tz())
            .date_naive();
        let start = start_wf
            .as_ref()
            .or(Some(&wf))
            .and_then(|w| w.example_start.as_ref().map(|s| s.value))
            .unwrap_or(today);
        self.plan_round(&wf, start, &BTreeMap::new(), None, None)
    }

    /// Progress of a round: per stage, overdue tasks, what fires next.
    pub async fn status(&self, round_id: i64) -> Result<RoundReport> {
        let round = self
            .store
            .round(round_id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("round {round_id}")))?;
        let wf = self.workflow_of(round.version_id).await?;
        let now = ms(self.clock.now());
        let tasks = self.store.tasks(round_id).await?;
        let p = self.replan(&round, None).await.ok();
        let stages = wf
            .stages
            .iter()
            .map(|s| {
                let mine: Vec<&TaskRow> = tasks
                    .iter()
                    .filter(|t| t.stage == s.id.value && t.state != TaskState::Cancelled)
                    .collect();
                let window = p
                    .as_ref()
                    .and_then(|p| p.stages.iter().find(|x| x.id == s.id.value));
                StageProgress {
                    id: s.id.value.clone(),
                    title: s.title.clone(),
                    opens: window
                        .and_then(|w| w.opens.at)
                        .map(|a| a.with_timezone(&Utc)),
                    closes: window
                        .and_then(|w| w.closes.at)
                        .map(|a| a.with_timezone(&Utc)),
                    opens_provisional: window.is_some_and(|w| w.opens.provisional),
                    closes_provisional: window.is_some_and(|w| w.closes.provisional),
                    total: mine.len(),
                    done: mine.iter().filter(|t| t.state.is_settled()).count(),
                    overdue: mine.iter().filter(|t| is_overdue(t, now)).count(),
                }
            })
            .collect();
        let overdue = tasks
            .iter()
            .filter(|t| is_overdue(t, now))
            .cloned()
            .collect();
        let ready: Vec<i64> = crate::engine::activation::ready(&wf, &tasks, now)
            .into_iter()
            .map(|r| r.id)
            .collect();
        let stuck = tasks
            .iter()
            .filter(|t| ready.contains(&t.id))
            .cloned()
            .collect();
        let next = self.store.pending_timers(Some(round_id), 10).await?;
        Ok(RoundReport {
            title: wf.title.clone(),
            round,
            stages,
            overdue,
            stuck,
            next,
        })
    }
}

/// Whole calendar days from `now` to `due` in the office's time zone (negative when past).
pub fn days_between(now: DateTime<Utc>, due: DateTime<Utc>, tz: chrono_tz::Tz) -> i64 {
    (due.with_timezone(&tz).date_naive() - now.with_timezone(&tz).date_naive()).num_days()
}

/// A store error caused by the data written (a missing row, a refused state change), not
/// by the database being unavailable: retrying the same write cannot succeed.
fn is_data_error(e: &StoreError) -> bool {
    matches!(e, StoreError::NotFound(_) | StoreError::WrongState { .. })
}

fn is_overdue(t: &TaskRow, now: Millis) -> bool {
    t.state == TaskState::Open && t.due_at.is_some_and(|d| d < now)
}

/// A timer whose payload parses but lacks what its kind needs: corrupt, like one that does
/// not parse (the firing path fires it with a `timer.error` entry naming the row).
fn corrupt_payload(t: &TimerRow, problem: &str) -> EngineError {
    EngineError::Store(StoreError::Corrupt(crate::store::Corrupt {
        table: "timers",
        id: t.id.to_string(),
        column: "payload_json",
        value: t.payload.to_json(),
        problem: problem.to_string(),
    }))
}

/// A timer fired without effect, with the reason in the audit log.
fn skipped(t: &TimerRow, now: DateTime<Utc>, reason: &str) -> FireEffects {
    FireEffects {
        audit: vec![audit(
            now,
            "daemon",
            "timer.skipped",
            &t.key,
            serde_json::json!({"reason": reason, "due_at": from_ms(t.due_at)}),
        )],
        ..Default::default()
    }
}

/// One `catch_up` timer, due now, for each assignee with work already overdue when the
/// round is started (a start date in the past).
fn catch_up_timers(tag: &str, p: &Plan, now: DateTime<Utc>) -> Vec<NewTimer> {
    let mut late: Vec<&Party> = Vec::new();
    for t in &p.tasks {
        let overdue = !t.due.projected && t.due.at.is_some_and(|a| a.with_timezone(&Utc) < now);
        if overdue && !late.contains(&&t.assignee) {
            late.push(&t.assignee);
        }
    }
    late.into_iter()
        .map(|party| {
            let payload = TimerPayload {
                recipient: Some(party.clone()),
                ..Default::default()
            };
            NewTimer {
                key: format!("{tag}/catch_up@{}:{}", party.kind, party.id),
                round_id: None,
                task_key: None,
                kind: TimerKind::CatchUp,
                due_at: ms(now),
                payload,
            }
        })
        .collect()
}

fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn audit(
    now: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        at: ms(now),
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.to_string(),
        detail_json: detail.to_string(),
    }
}

/// The key of the kickoff timer of a workflow at an instant.
pub fn kickoff_timer(workflow: &str, at: DateTime<Utc>) -> NewTimer {
    NewTimer {
        key: format!("kickoff:{workflow}:{}", ms(at)),
        round_id: None,
        task_key: None,
        kind: TimerKind::Kickoff,
        due_at: ms(at),
        payload: TimerPayload {
            workflow: Some(workflow.to_string()),
            ..TimerPayload::default()
        },
    }
}

/// A planned timer as a row to insert, or None for a reminder already in the past.
pub fn timer_row(tag: &str, t: &PlannedTimer, now: DateTime<Utc>) -> Option<NewTimer> {
    let at = t.at.with_timezone(&Utc);
    if t.kind == TimerKind::Reminder && at < now {
        return None;
    }
    let payload = TimerPayload {
        stage: Some(t.stage.clone()),
        task: t.task.clone(),
        recipient: t.recipient.clone(),
        provisional: t.provisional,
        ..Default::default()
    };
    Some(NewTimer {
        key: format!("{tag}/{}", t.key),
        round_id: None,
        task_key: t.task.clone(),
        kind: t.kind,
        due_at: ms(at),
        payload,
    })
}

/// Whether a stored timer's instant was counted over a year without a holiday file (its
/// payload says so).
pub fn timer_is_provisional(t: &TimerRow) -> bool {
    t.payload.provisional
}

trait HistoryExt {
    fn action_is_reopen(&self) -> bool;
}

impl HistoryExt for crate::store::HistoryRow {
    fn action_is_reopen(&self) -> bool {
        self.to_state == TaskState::Open && self.from_state.is_settled()
    }
}

/// The local date in a time zone, for callers that hold a UTC instant.
pub fn local_date(t: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    tz.from_utc_datetime(&t.naive_utc()).date_naive()
}
