//! Fault: PostgreSQL is restarted under a running `yanzhen serve` in the middle of a burst.
//! Timers also fall due while the server is down (the burst alone can be over before the
//! stop takes effect now that firing is fast). The daemon must not exit, must reconnect by
//! itself, must fire the timers that fell due in the outage after it, and must finish the
//! burst with every
//! due timer fired exactly once (the same notifications as a clean run) and every
//! notification delivered; its log shows the database errors and then the recovery.
//!
//! Restarting the cluster disturbs every client of it, so this is its own test binary (cargo
//! runs test binaries one after another) with a single test. Needs
//! `YANZHEN_TEST_POSTGRES_URL` pointing at a local cluster managed by `pg_ctlcluster`, and
//! the rights to restart it (root or the postgres user).

#[path = "it/common/mod.rs"]
mod common;

use common::daemon::{Setup, wait_for, wait_until};
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yanzhen::core::state::{OutboxState, TimerState};
use yanzhen::store::{NewTimer, Store};

/// Past rounds started before the daemon, so that hundreds of timers are due at once.
const ROUNDS: u32 = 8;

/// Timers that fall due while the server is down.
const OUTAGE_TIMERS: usize = 50;

/// How long PostgreSQL stays down after it has stopped: longer than the daemon's pool
/// acquire timeout (10 s), so that the daemon's operations fail (not just wait) and its
/// error paths run, whatever it was doing when the server went away.
const OUTAGE: Duration = Duration::from_secs(12);

/// The timer lease of the daemons here.
const LEASE_MS: u32 = 1000;

/// The local cluster behind `YANZHEN_TEST_POSTGRES_URL`: the newest version under
/// /etc/postgresql, cluster `main`.
struct Cluster {
    version: String,
}

impl Cluster {
    fn local() -> Option<Cluster> {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|v| v.split('.').all(|p| p.parse::<u32>().is_ok()))
            .max_by_key(|v| {
                v.split('.')
                    .map(|p| p.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>()
            })?;
        let c = Cluster { version };
        c.ctl("status").ok().map(|_| c)
    }

    /// `pg_ctlcluster VERSION main ACTION`; Err with its output when it fails.
    fn ctl(&self, action: &str) -> Result<(), String> {
        let out = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.version, "main", action])
            .output()
            .map_err(|e| format!("pg_ctlcluster: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctlcluster {} main {action}: {}{}",
                self.version,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn ensure_up(&self) {
        if self.ctl("status").is_err()
            && let Err(e) = self.ctl("start")
        {
            eprintln!("could not start PostgreSQL again: {e}");
        }
    }
}

/// Starts the cluster again when dropped, whatever happened in between.
struct KeepUp<'a>(&'a Cluster);

impl Drop for KeepUp<'_> {
    fn drop(&mut self) {
        self.0.ensure_up();
    }
}

async fn outbox_len(store: &Arc<dyn Store>) -> Option<usize> {
    store.outbox_after(0, i64::MAX).await.ok().map(|r| r.len())
}

/// Every due timer fired (none pending or claimed) and every notification sent; false while
/// the database cannot be read.
async fn drained(store: &Arc<dyn Store>) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    // Timers first: rows a firing adds to the outbox are then in the second read.
    let Ok(timers) = store.timers_with_prefix("").await else {
        return false;
    };
    let Ok(outbox) = store.outbox_after(0, i64::MAX).await else {
        return false;
    };
    timers
        .iter()
        .all(|t| t.due_at > now || !matches!(t.state.as_str(), "pending" | "running"))
        && !outbox.is_empty()
        && outbox.iter().all(|r| r.state == OutboxState::Sent)
}

/// Drain the burst on a fresh SQLite database and return how many notifications it made.
async fn clean_run() -> usize {
    let s = Setup::new().lease_ms(LEASE_MS);
    s.start_burst(ROUNDS);
    let store = s.store().await;
    let daemon = s.serve();
    wait_for("the clean burst to drain", Duration::from_secs(60), || {
        let st = store.clone();
        async move { drained(&st).await }
    })
    .await;
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
    outbox_len(&store).await.expect("outbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_a_running_daemon_it_reconnects_and_carries_on() {
    let Some((url, _db)) = common::stores::postgres_database().await else {
        return;
    };
    let Some(cluster) = Cluster::local() else {
        common::skip_or_fail(
            "postgres restart test: no local cluster that pg_ctlcluster can manage",
        );
        return;
    };
    // Declared after `_db`, so dropped first: the cluster is up again before the test
    // database is dropped.
    let _up = KeepUp(&cluster);
    let t0 = Instant::now();

    let expected = tokio::spawn(clean_run());

    let s = Setup::new().db_url(url).lease_ms(LEASE_MS);
    s.start_burst(ROUNDS);
    let store = s.store().await;
    let mut daemon = s.serve();
    wait_for("the burst to start", Duration::from_secs(30), || {
        let st = store.clone();
        async move { outbox_len(&st).await.is_some_and(|n| n > 20) }
    })
    .await;

    // Work that falls due while the server is down: the burst itself may be all fired and
    // sent before the stop takes effect, these cannot be. Due 8 s from now: after the
    // stop (which takes about a second) and before the restart (`OUTAGE` after the stop).
    let during_outage = chrono::Utc::now().timestamp_millis() + 8_000;
    store
        .add_timers(
            (0..OUTAGE_TIMERS)
                .map(|i| NewTimer {
                    key: format!("outage/{i}"),
                    round_id: None,
                    task_key: None,
                    kind: yanzhen::core::state::TimerKind::StageOpen,
                    due_at: during_outage,
                    payload: Default::default(),
                })
                .collect(),
        )
        .await
        .expect("timers due during the outage");
    cluster.ctl("stop").expect("stop PostgreSQL");
    let stopped = Instant::now();
    eprintln!("PostgreSQL stopped at {:?}", t0.elapsed());
    tokio::time::sleep(OUTAGE).await;
    assert!(
        daemon.alive(),
        "the daemon exited while PostgreSQL was down: {}",
        daemon.log()
    );
    let restarted_ms = chrono::Utc::now().timestamp_millis();
    if let Err(e) = cluster.ctl("start") {
        // Another client of the shared cluster may have started it already.
        assert!(cluster.ctl("status").is_ok(), "start PostgreSQL: {e}");
        eprintln!("PostgreSQL was started again by someone else: {}", e.trim());
    }
    eprintln!(
        "PostgreSQL started again at {:?} (down {:?})",
        t0.elapsed(),
        stopped.elapsed()
    );

    let expected = expected.await.expect("clean run");
    assert!(expected > 500, "burst too small: {expected}");
    let done = wait_until(Duration::from_secs(60), || {
        let st = store.clone();
        async move { drained(&st).await }
    })
    .await;
    if !done {
        let rows = store.outbox_after(0, i64::MAX).await.unwrap_or_default();
        let unsent: Vec<String> = rows
            .iter()
            .filter(|r| r.state != OutboxState::Sent)
            .take(5)
            .map(|r| format!("{} {} {:?}", r.key, r.state, r.last_error))
            .collect();
        let pending = store.pending_timers(None, 5).await.unwrap_or_default();
        panic!(
            "the daemon did not drain the burst within 60 s of the restart: {} of {} outbox rows unsent (e.g. {unsent:?}), next pending timers {:?}, alive {}\n{}",
            rows.iter().filter(|r| r.state != OutboxState::Sent).count(),
            rows.len(),
            pending
                .iter()
                .map(|t| (&t.key, t.due_at))
                .collect::<Vec<_>>(),
            daemon.alive(),
            daemon.log()
        );
    }
    eprintln!("drained at {:?}", t0.elapsed());
    assert!(
        daemon.alive(),
        "the daemon exited after the restart: {}",
        daemon.log()
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "exit status after SIGTERM: {log}");

    // Work was left when PostgreSQL came back: the timers that fell due during the outage
    // fired after the restart, each once.
    let owed = store
        .timers_with_prefix("outage/")
        .await
        .expect("outage timers");
    assert_eq!(owed.len(), OUTAGE_TIMERS, "outage timers stored");
    for t in &owed {
        assert!(
            t.state == TimerState::Fired && t.fired_at.is_some_and(|f| f >= restarted_ms),
            "timer {} due during the outage: state {}, fired at {:?}, server back at {restarted_ms}",
            t.key,
            t.state,
            t.fired_at
        );
    }

    // No timer was fired without its effects because a read failed during the outage.
    let errors: Vec<String> = store
        .audit_after(0, i64::MAX)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.entry.action == "timer.error")
        .map(|a| format!("{} {}", a.entry.subject, a.entry.detail_json))
        .collect();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(
        errors.is_empty(),
        "timers fired without their effects because of the outage: {errors:?}\n{}",
        problems.join("\n")
    );

    // Every due timer fired exactly once: the same notifications as the clean run, one per
    // timer and address, all delivered.
    let rows = store.outbox_after(0, i64::MAX).await.expect("outbox");
    assert_eq!(
        rows.len(),
        expected,
        "every notification exactly once\n{}",
        problems.join("\n")
    );
    let mut per_timer: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_timer
            .entry(format!(
                "{}|{}",
                r.key.split('#').next().unwrap_or(""),
                r.address
            ))
            .or_default() += 1;
    }
    assert!(
        per_timer.values().all(|n| *n == 1),
        "one message per timer and recipient address"
    );
    // The log shows the database errors, then the recovery: work done after the last error.
    // (With the outage longer than the pool's acquire timeout the daemon's own operations
    // fail; if someone starts the shared cluster early, sqlx's warnings about the killed
    // connections and the slow reconnect are the record.)
    let lines: Vec<&str> = log.lines().collect();
    let outage = |l: &&str| {
        (l.contains("ERROR") && l.contains("database"))
            || l.contains("terminating connection due to administrator command")
            || l.contains("time to acquire exceeded slow threshold")
    };
    let last_error = lines
        .iter()
        .rposition(outage)
        .unwrap_or_else(|| panic!("no database error logged during the outage:\n{log}"));
    assert!(
        lines[last_error + 1..]
            .iter()
            .any(|l| l.contains("timer fired") || l.contains("notification (log channel)")),
        "no work done after the last database error:\n{log}"
    );
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    let notable: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .copied()
        .collect();
    eprintln!(
        "{} warnings and errors in the daemon log, the first:",
        notable.len()
    );
    for l in notable.iter().take(12) {
        eprintln!("  {}", l.chars().take(300).collect::<String>());
    }
    eprintln!(
        "{} notifications, {OUTAGE_TIMERS} timers fell due during the outage; total {:?}",
        rows.len(),
        t0.elapsed()
    );
}
