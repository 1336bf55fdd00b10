//! Editing workflows, the directory and the calendar while the daemon runs: reload (file
//! events, SIGHUP, `yanzhen reload`), keep the last good state on errors, and re-project
//! running rounds (through `Engine::reproject`, in `engine::reproject`) onto a changed
//! directory or a corrected calendar.

use crate::catalog::{self, Catalog};
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::state::RoundStatus;
use crate::engine::reproject::Impact;
use crate::engine::{Engine, ms};
use crate::store::AuditEntry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The result of a reload, or of the daemon's load at start-up. Stored (setting
/// `last_reload`) with the daemon that wrote it, so `status` shows the running daemon's
/// state and never one left by an earlier process.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ReloadReport {
    /// `start` (the load at start-up) or `reload`.
    #[serde(default)]
    pub kind: String,
    /// The daemon that wrote it (its lease owner name, `host-pid`).
    #[serde(default)]
    pub owner: String,
    /// When that daemon started.
    #[serde(default)]
    pub daemon_started: Option<DateTime<Utc>>,
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// True when the new config/directory/calendar were taken.
    pub applied: bool,
    /// Workflows whose new file was rejected (the previous version keeps running).
    pub rejected: Vec<String>,
    /// Workflow files with errors that nothing was loaded from (at start-up there is no
    /// previous version to keep).
    #[serde(default)]
    pub not_loaded: Vec<String>,
    /// Every diagnostic of the reload.
    #[serde(default, skip_deserializing)]
    pub diagnostics: Vec<Diagnostic>,
    /// Re-projected rounds with their changes.
    #[serde(default, skip_deserializing)]
    pub reprojected: Vec<Impact>,
}

/// The setting that holds the running daemon's last [`ReloadReport`] (JSON).
pub const RELOAD_STATE: &str = "last_reload";

impl Engine {
    /// Reload config, directory, calendar and workflows. A broken config, directory or
    /// calendar changes nothing; a workflow file that does not validate is rejected whole
    /// and its previous version keeps running. Running rounds are then re-projected onto
    /// the new directory and calendar (their workflow versions stay pinned).
    pub async fn reload(&self, config_path: &Path) -> ReloadReport {
        let now = self.clock().now();
        let old = self.catalog();
        let today = now.with_timezone(&old.config.tz()).date_naive();
        let (loaded, diagnostics) = catalog::load(config_path, today);
        let mut report = ReloadReport {
            kind: "reload".into(),
            owner: self.owner().to_string(),
            daemon_started: Some(self.started()),
            at: Some(now),
            diagnostics,
            ..Default::default()
        };
        let Some(mut fresh) = loaded else {
            // Each problem itself (file:line:col, code, message), so the log says what to fix.
            for d in report
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
            {
                tracing::error!("reload: {d}");
            }
            tracing::error!(
                errors = report.diagnostics.len(),
                "reload rejected: config, directory or calendar has errors; keeping the running state"
            );
            self.save_report(&report).await;
            return report;
        };
        // Files that failed keep their previous version.
        let failed: BTreeSet<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.file.clone())
            .collect();
        report.rejected = keep_last_good(&old, &mut fresh, &failed);
        for d in report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
        {
            tracing::error!("reload: {d}");
        }
        report.applied = true;
        if let Err(e) = self.set_catalog(fresh).await {
            tracing::error!(error = %e, "reload: storing workflow versions failed");
        }
        match self.store().rounds().await {
            Ok(rounds) => {
                for round in rounds
                    .into_iter()
                    .filter(|r| r.status == RoundStatus::Running)
                {
                    match self
                        .reproject(round.id, None, &[], false, "daemon", "reload")
                        .await
                    {
                        Ok(i) if !i.changes.is_empty() => report.reprojected.push(i),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(round = round.id, error = %e, "reload: cannot re-project round")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reload: cannot list rounds"),
        }
        tracing::info!(
            rejected = report.rejected.len(),
            reprojected = report.reprojected.len(),
            "reloaded"
        );
        self.save_report(&report).await;
        report
    }

    /// Record the daemon's load at start-up as its reload state: the workflow files it
    /// could not load, with their errors. This replaces whatever an earlier process left.
    pub async fn record_start(&self, diagnostics: Vec<Diagnostic>) {
        let loaded: BTreeSet<String> = self
            .catalog()
            .workflows
            .values()
            .map(|w| w.path.display().to_string())
            .collect();
        let not_loaded: BTreeSet<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error && !loaded.contains(&d.file))
            .map(|d| d.file.clone())
            .collect();
        let report = ReloadReport {
            kind: "start".into(),
            owner: self.owner().to_string(),
            daemon_started: Some(self.started()),
            at: Some(self.clock().now()),
            applied: true,
            not_loaded: not_loaded.into_iter().collect(),
            diagnostics,
            ..Default::default()
        };
        self.save_report(&report).await;
    }

    /// Forget this daemon's reload state as it stops (another daemon's is left alone).
    pub async fn forget_reload_state(&self) {
        let ours = match self.store().setting(RELOAD_STATE).await {
            Ok(Some(text)) if !text.is_empty() => match serde_json::from_str::<ReloadReport>(&text)
            {
                Ok(r) => r.owner == self.owner(),
                Err(e) => {
                    tracing::warn!(error = %e, "the stored reload state does not parse; left as it is");
                    false
                }
            },
            _ => false,
        };
        if ours && let Err(e) = self.store().put_setting(RELOAD_STATE, "").await {
            tracing::warn!(error = %e, "cannot clear the reload state");
        }
    }

    async fn save_report(&self, report: &ReloadReport) {
        let json = serde_json::to_string(report).unwrap_or_default();
        let now = ms(self.clock().now());
        let _ = self
            .store()
            .append_audit(AuditEntry {
                at: now,
                actor: "daemon".into(),
                action: "reload".into(),
                subject: "catalog".into(),
                detail_json: json.clone(),
            })
            .await;
        let _ = self.store().put_setting(RELOAD_STATE, &json).await;
    }
}

/// Replace a fresh catalog's invalid workflows with the old ones; exposed for tests.
pub fn keep_last_good(
    old: &Catalog,
    fresh: &mut Catalog,
    failed_files: &BTreeSet<String>,
) -> Vec<String> {
    let mut kept = Vec::new();
    for (id, w) in &old.workflows {
        if failed_files.contains(&w.path.display().to_string()) && !fresh.workflows.contains_key(id)
        {
            kept.push(id.clone());
            fresh.workflows.insert(id.clone(), w.clone());
        }
    }
    kept
}

/// Watch the workflow folder, the directory file's folder and the calendar folder and call
/// `on_change` after edits settle (500 ms). Editors save by writing a temporary file and
/// renaming it, so folders are watched, not files. The returned debouncer must be kept.
pub fn watch(
    paths: &[std::path::PathBuf],
    on_change: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<
    notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    notify::Error,
> {
    use notify::RecursiveMode;
    let mut debouncer = notify_debouncer_full::new_debouncer(
        std::time::Duration::from_millis(500),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            if let Ok(events) = res
                && events.iter().any(|e| !e.kind.is_access())
            {
                let _ = on_change.send(());
            }
        },
    )?;
    for p in paths {
        debouncer.watch(p, RecursiveMode::NonRecursive)?;
    }
    Ok(debouncer)
}
