//! Fault: PostgreSQL is restarted under a running `yanzhen serve` in the middle of a burst.
//! The daemon must not exit, must reconnect by itself, and must finish the burst with every
//! due timer fired exactly once (the same notifications as a clean run) and every
//! notification delivered; its log shows the database errors and then the recovery.
//!
//! Restarting the cluster disturbs every client of it, so this is its own test binary (cargo
//! runs test binaries one after another) with a single test. Needs
//! `YANZHEN_TEST_POSTGRES_URL` pointing at a local cluster managed by `pg_ctlcluster`, and
//! the rights to restart it (root or the postgres user).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yanzhen::store::Store;

/// Past rounds started before the daemon, so that hundreds of timers are due at once.
const ROUNDS: u32 = 8;

/// How long PostgreSQL stays down after it has stopped: longer than the daemon's pool
/// acquire timeout (10 s), so that the daemon's operations fail (not just wait) and its
/// error paths run, whatever it was doing when the server went away.
const OUTAGE: Duration = Duration::from_secs(12);

/// A temporary config (shipped directory and calendar, one shipped workflow) whose database
/// is a SQLite file or, with `db_url`, a PostgreSQL database. A small copy of the `Setup`
/// in tests/daemon.rs.
struct Setup {
    dir: tempfile::TempDir,
    db_url: Option<String>,
}

impl Setup {
    fn new(db_url: Option<String>) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let wf = dir.path().join("workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        std::fs::copy(
            common::workflow_path("community-reserve-selection"),
            wf.join("community-reserve-selection.yaml"),
        )
        .expect("copy");
        let root = common::root();
        let config = format!(
            "timezone = \"Asia/Shanghai\"\npid_file = \"{}\"\nworkflows_dir = \"{}\"\ndirectory = \"{}\"\ncalendar_dir = \"{}\"\n[database]\nurl = \"sqlite://{}\"\n[http]\nbind = \"127.0.0.1:0\"\n",
            dir.path().join("yanzhen.pid").display(),
            wf.display(),
            root.join("config/directory.yaml").display(),
            root.join("config/calendar").display(),
            dir.path().join("data/y.db").display()
        );
        std::fs::write(dir.path().join("yanzhen.toml"), config).expect("config");
        Setup { dir, db_url }
    }

    fn url(&self) -> String {
        self.db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.path().join("data/y.db").display()))
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yanzhen"));
        c.arg("--config")
            .arg(self.dir.path().join("yanzhen.toml"))
            .args(args)
            .env_remove("YANZHEN_DATABASE_URL");
        if let Some(u) = &self.db_url {
            c.env("YANZHEN_DATABASE_URL", u);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `ROUNDS` past rounds, all of whose timers are due.
    fn start_burst(&self) {
        for d in 1..=ROUNDS {
            self.run(&[
                "round",
                "start",
                "community-reserve-selection",
                "--start",
                &format!("2019-07-{d:02}"),
            ]);
        }
    }

    /// Start `serve` with a 1 s timer lease; its log goes to a file.
    fn serve(&self, name: &str) -> Daemon {
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = self
            .cmd(&["serve"])
            .env("YANZHEN_LEASE_MS", "1000")
            .env("YANZHEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn serve");
        Daemon { child, log }
    }

    async fn store(&self) -> Arc<dyn Store> {
        let s = yanzhen::store::open_shared(&self.url())
            .await
            .expect("open");
        s.migrate().await.expect("migrate");
        s
    }
}

/// A running `yanzhen serve`; killed if the test fails before stopping it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait, and return whether it exited 0, and its log.
    fn stop(mut self) -> (bool, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        (ok, self.log())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

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

async fn wait_for<F, Fut>(what: &str, timeout: Duration, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(wait_until(timeout, f).await, "timed out waiting for {what}");
}

/// Poll `f` until it is true (true) or `timeout` has passed (false).
async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
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
        && outbox.iter().all(|r| r.state == "sent")
}

/// Drain the burst on a fresh SQLite database and return how many notifications it made.
async fn clean_run() -> usize {
    let s = Setup::new(None);
    s.start_burst();
    let store = s.store().await;
    let daemon = s.serve("clean");
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
        eprintln!("postgres restart test skipped: no local cluster that pg_ctlcluster can manage");
        return;
    };
    // Declared after `_db`, so dropped first: the cluster is up again before the test
    // database is dropped.
    let _up = KeepUp(&cluster);
    let t0 = Instant::now();

    let expected = tokio::spawn(clean_run());

    let s = Setup::new(Some(url));
    s.start_burst();
    let store = s.store().await;
    let mut daemon = s.serve("serve");
    wait_for("the burst to start", Duration::from_secs(30), || {
        let st = store.clone();
        async move { outbox_len(&st).await.is_some_and(|n| n > 20) }
    })
    .await;

    cluster.ctl("stop").expect("stop PostgreSQL");
    let stopped = Instant::now();
    eprintln!("PostgreSQL stopped at {:?}", t0.elapsed());
    tokio::time::sleep(OUTAGE).await;
    assert!(
        daemon.alive(),
        "the daemon exited while PostgreSQL was down: {}",
        daemon.log()
    );
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
    let at_restart = outbox_len(&store).await.unwrap_or(0);
    let done = wait_until(Duration::from_secs(60), || {
        let st = store.clone();
        async move { drained(&st).await }
    })
    .await;
    if !done {
        let rows = store.outbox_after(0, i64::MAX).await.unwrap_or_default();
        let unsent: Vec<String> = rows
            .iter()
            .filter(|r| r.state != "sent")
            .take(5)
            .map(|r| format!("{} {} {:?}", r.key, r.state, r.last_error))
            .collect();
        let pending = store.pending_timers(None, 5).await.unwrap_or_default();
        panic!(
            "the daemon did not drain the burst within 60 s of the restart: {} of {} outbox rows unsent (e.g. {unsent:?}), next pending timers {:?}, alive {}\n{}",
            rows.iter().filter(|r| r.state != "sent").count(),
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

    // The restart hit the burst: there was work left when PostgreSQL came back.
    assert!(
        at_restart < expected,
        "the burst was over before the restart ({at_restart}/{expected}); make it larger"
    );

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
        "{} notifications, {} before the restart; total {:?}",
        rows.len(),
        at_restart,
        t0.elapsed()
    );
}
