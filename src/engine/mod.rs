//! The engine: rounds, tasks and timers over the store. `serve`, `simulate` and the tests
//! all drive this one engine; only the clock differs.
//!
//! Architecture Invariant: every effect of firing a timer (notifications, the next
//! kickoff, a new round) is computed first and then applied in the same transaction that
//! marks the timer fired, so a crash either leaves the timer claimable again or leaves
//! it fired with all its effects — never half.

pub mod activation;
pub mod clock;
pub mod count_check;
pub mod event;
pub mod fire;
mod firing;
pub mod person;
pub mod provisional;
mod report;
pub mod reproject;
mod round;
pub mod submission;
mod transition;
pub mod weekly;

pub use firing::Fired;
pub use report::{BlockedKickoff, RoundReport, StageProgress, blocked_reason_zh};
pub use round::StartRound;
pub use transition::NewDeadline;

use crate::catalog::Catalog;
use crate::core::definition::Workflow;
use crate::core::diagnostic::Severity;
use crate::core::plan::{PlannedTimer, Problem};
use crate::core::render::Renderer;
use crate::core::state::{TaskState, TimerKind};
use crate::store::{
    AuditEntry, Millis, NewTimer, Store, StoreError, TaskRow, TimerPayload, TimerRow,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use clock::Clock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// A kickoff that fires later than this after its instant counts as missed (Quartz's
/// misfire threshold): `misfire: skip` then drops it.
pub(crate) const MISFIRE_GRACE_MS: i64 = 60_000;
/// How long a claimed timer stays ours; a crashed daemon's claims expire after this.
const LEASE_MS: i64 = 30_000;
/// How soon a kickoff whose round cannot be planned yet is tried again.
pub(crate) const KICKOFF_RETRY_MS: i64 = 3_600_000;
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

/// A kickoff blocked because its workflow is not loaded (its file is invalid or gone).
pub const BLOCKED_NOT_LOADED: &str = "not_loaded";
/// A kickoff blocked because its round cannot be planned.
pub const BLOCKED_PLAN_FAILED: &str = "plan_failed";

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
        fire::task_link(&self.catalog(), self.link_signer().as_ref(), task, now)
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
        self.ensure_weekly_report().await?;
        self.ensure_count_checks().await?;
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

    /// The stored version id of every loaded workflow, as the firing core reads it.
    fn versions_snapshot(&self) -> HashMap<String, i64> {
        self.versions.lock().map(|m| m.clone()).unwrap_or_default()
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
}

/// Whole calendar days from `now` to `due` in the office's time zone (negative when past).
pub fn days_between(now: DateTime<Utc>, due: DateTime<Utc>, tz: chrono_tz::Tz) -> i64 {
    (due.with_timezone(&tz).date_naive() - now.with_timezone(&tz).date_naive()).num_days()
}

/// A store error caused by the data written (a missing row, a refused state change), not
/// by the database being unavailable: retrying the same write cannot succeed.
pub(crate) fn is_data_error(e: &StoreError) -> bool {
    matches!(e, StoreError::NotFound(_) | StoreError::WrongState { .. })
}

pub(crate) fn is_overdue(t: &TaskRow, now: Millis) -> bool {
    t.state == TaskState::Open && t.due_at.is_some_and(|d| d < now)
}

pub(crate) fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn audit(
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
    if past_reminder(t, now) {
        return None;
    }
    into_timer_row(tag, t.clone(), now)
}

/// A reminder whose instant has passed is not created.
fn past_reminder(t: &PlannedTimer, now: DateTime<Utc>) -> bool {
    t.kind == TimerKind::Reminder && t.at.with_timezone(&Utc) < now
}

/// `timer_row` of a timer the caller no longer needs: its strings move into the row.
pub(crate) fn into_timer_row(tag: &str, t: PlannedTimer, now: DateTime<Utc>) -> Option<NewTimer> {
    if past_reminder(&t, now) {
        return None;
    }
    let payload = TimerPayload {
        stage: Some(t.stage),
        task: t.task.clone(),
        recipient: t.recipient,
        provisional: t.provisional,
        ..Default::default()
    };
    Some(NewTimer {
        key: format!("{tag}/{}", t.key),
        round_id: None,
        task_key: t.task,
        kind: t.kind,
        due_at: ms(t.at.with_timezone(&Utc)),
        payload,
    })
}

/// Whether a stored timer's instant was counted over a year without a holiday file (its
/// payload says so).
pub fn timer_is_provisional(t: &TimerRow) -> bool {
    t.payload.provisional
}

/// The local date in a time zone, for callers that hold a UTC instant.
pub fn local_date(t: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    tz.from_utc_datetime(&t.naive_utc()).date_naive()
}
