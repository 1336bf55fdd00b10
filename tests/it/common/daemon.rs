//! The one harness for config files and the daemon: [`Setup`] writes a config in a temporary
//! folder (shipped directory and calendar, one or every shipped workflow, a SQLite file or a
//! PostgreSQL database), loads its catalog for in-process tests and runs the real `yanzhen`
//! binary against it; [`Daemon`] is a running `yanzhen serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use yanzhen::store::Store;

/// The shipped workflow every [`Setup`] holds.
pub const WORKFLOW: &str = "community-reserve-selection";

/// A config in a temp dir: shipped directory and calendar, the shipped workflow
/// [`WORKFLOW`], a fresh SQLite database at `data/y.db` (not created until something opens
/// it) unless [`Setup::db_url`] points it elsewhere.
pub struct Setup {
    dir: tempfile::TempDir,
    /// A PostgreSQL URL overriding the config's SQLite file (`YANZHEN_DATABASE_URL`).
    db_url: Option<String>,
    /// `YANZHEN_LEASE_MS` for every daemon [`Setup::serve`] starts.
    lease_ms: Option<u32>,
    /// How many daemons have been started (names their log files).
    served: AtomicUsize,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let wf = dir.path().join("workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        std::fs::copy(
            super::workflow_path(WORKFLOW),
            wf.join(format!("{WORKFLOW}.yaml")),
        )
        .expect("copy");
        let root = super::root();
        let config = format!(
            "timezone = \"Asia/Shanghai\"\nworkflows_dir = \"{}\"\ndirectory = \"{}\"\ncalendar_dir = \"{}\"\n[database]\nurl = \"sqlite://{}\"\n[http]\nbind = \"127.0.0.1:0\"\n",
            wf.display(),
            root.join("config/directory.yaml").display(),
            root.join("config/calendar").display(),
            dir.path().join("data/y.db").display()
        );
        std::fs::write(dir.path().join("yanzhen.toml"), config).expect("config");
        Setup {
            dir,
            db_url: None,
            lease_ms: None,
            served: AtomicUsize::new(0),
        }
    }

    /// Copies of every shipped workflow in `workflows/` (the console's editor may write
    /// there, never into the repository).
    pub fn with_shipped_workflows(self) -> Setup {
        let wf = self.workflows();
        for e in std::fs::read_dir(super::root().join("workflows")).expect("workflows") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, wf.join(p.file_name().expect("name"))).expect("copy");
        }
        self
    }

    /// Only this workflow file in `workflows/`, instead of [`WORKFLOW`].
    pub fn only_workflow(self, file: &str, text: &str) -> Setup {
        let wf = self.workflows();
        std::fs::remove_dir_all(&wf).expect("rm workflows");
        std::fs::create_dir_all(&wf).expect("mkdir");
        std::fs::write(wf.join(file), text).expect("write workflow");
        self
    }

    /// A copy of the shipped calendar in `calendar/`, used instead of the shipped folder
    /// (a test may add or remove year files).
    pub fn with_own_calendar(self) -> Setup {
        let shipped = super::root().join("config/calendar");
        let own = self.calendar_dir();
        std::fs::create_dir_all(&own).expect("mkdir");
        for e in std::fs::read_dir(&shipped).expect("calendar") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, own.join(p.file_name().expect("name"))).expect("copy");
        }
        let path = self.config();
        let text = std::fs::read_to_string(&path).expect("config");
        let line = |dir: &Path| format!("calendar_dir = \"{}\"\n", dir.display());
        assert!(text.contains(&line(&shipped)), "{text}");
        std::fs::write(path, text.replace(&line(&shipped), &line(&own))).expect("config");
        self
    }

    /// The folder of a calendar of its own ([`Setup::with_own_calendar`]).
    pub fn calendar_dir(&self) -> PathBuf {
        self.path().join("calendar")
    }

    /// The catalog of this config as the daemon loads it on `today`; the test fails if the
    /// config, directory or calendar does not load.
    pub fn catalog(&self, today: chrono::NaiveDate) -> yanzhen::catalog::Catalog {
        let (cat, diags) = yanzhen::catalog::load(&self.config(), today);
        cat.unwrap_or_else(|| panic!("catalog of {}: {diags:?}", self.config().display()))
    }

    /// The folder of the workflow files.
    pub fn workflows(&self) -> PathBuf {
        self.path().join("workflows")
    }

    /// Use this PostgreSQL database instead of the SQLite file.
    pub fn db_url(mut self, url: impl Into<String>) -> Setup {
        self.db_url = Some(url.into());
        self
    }

    /// Give every daemon started from now on this timer lease (`YANZHEN_LEASE_MS`).
    pub fn lease_ms(mut self, ms: u32) -> Setup {
        self.lease_ms = Some(ms);
        self
    }

    /// Append TOML (e.g. a `[notify]` section) to the config.
    pub fn with_config(self, toml: &str) -> Setup {
        let path = self.config();
        let mut text = std::fs::read_to_string(&path).expect("config");
        text.push_str(toml);
        std::fs::write(path, text).expect("config");
        self
    }

    /// The temporary directory holding the config, `workflows/`, `data/` and the logs.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("yanzhen.toml")
    }

    /// The folder of the SQLite database.
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The database URL the commands use.
    pub fn url(&self) -> String {
        self.db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data().join("y.db").display()))
    }

    /// `yanzhen --config CONFIG ARGS`, with `YANZHEN_DATABASE_URL` set exactly when
    /// [`Setup::db_url`] was given.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yanzhen"));
        c.arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("YANZHEN_DATABASE_URL");
        if let Some(u) = &self.db_url {
            c.env("YANZHEN_DATABASE_URL", u);
        }
        c
    }

    /// Run a command that must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `round start` of [`WORKFLOW`] on 2019-07-DAY (in the past: its past instants are
    /// skipped and its catch-up messages are due at once), whether it succeeds or not.
    pub fn round_start(&self, day: u32) -> Output {
        self.cmd(&round_start_args(&day_of_july(day)))
            .output()
            .expect("run")
    }

    /// Start `rounds` past rounds (each must succeed) and make every pending timer due now,
    /// so that hundreds of timers are due at once. (A round started in the past only
    /// records its past instants and sends one catch-up message per assignee; moving the
    /// timers to now gives the burst of a daemon that must fire them all in the same second.)
    pub fn start_burst(&self, rounds: u32) {
        for d in 1..=rounds {
            self.run(&round_start_args(&day_of_july(d)));
        }
        self.make_due_now().expect("make the burst due");
    }

    /// Move every pending timer except kickoffs to now: a round started in the past skips
    /// its past instants (decision 20), so tests that need a burst make them due instead.
    pub fn make_due_now(&self) -> Result<(), String> {
        let url = self.url();
        let now = chrono::Utc::now().timestamp_millis();
        // Its own thread and runtime: this helper is called from sync and async tests.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                let sql =
                    "UPDATE timers SET due_at = $1 WHERE state = 'pending' AND kind <> 'kickoff'";
                if url.starts_with("sqlite:") {
                    let mut c = sqlx::SqliteConnection::connect(&url)
                        .await
                        .map_err(|e| e.to_string())?;
                    sqlx::query(sql)
                        .bind(now)
                        .execute(&mut c)
                        .await
                        .map_err(|e| e.to_string())?;
                    c.close().await.map_err(|e| e.to_string())
                } else {
                    let mut c = sqlx::PgConnection::connect(&url)
                        .await
                        .map_err(|e| e.to_string())?;
                    sqlx::query(sql)
                        .bind(now)
                        .execute(&mut c)
                        .await
                        .map_err(|e| e.to_string())?;
                    c.close().await.map_err(|e| e.to_string())
                }
            })
        })
        .join()
        .map_err(|_| "the update thread panicked".to_string())?
    }

    /// Start `serve` (`YANZHEN_LOG=info`, no digest wait, the [`Setup::lease_ms`] if any);
    /// its log goes to a file of its own (a pipe nobody reads would fill and block it).
    pub fn serve(&self) -> Daemon {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let log = self.path().join(format!("serve-{n}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let mut c = self.cmd(&["serve"]);
        if let Some(ms) = self.lease_ms {
            c.env("YANZHEN_LEASE_MS", ms.to_string());
        }
        // Digests go as soon as their rows are due (no 15-minute wait for companions),
        // as tests of past rounds expect; tests/it/notify.rs covers the wait.
        let child = c
            .env("YANZHEN_DIGEST_WINDOW_MS", "0")
            .env("YANZHEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn serve");
        Daemon { child, log }
    }

    /// The database, opened and migrated.
    pub async fn store(&self) -> Arc<dyn Store> {
        let s = yanzhen::store::open_shared(&self.url())
            .await
            .expect("open");
        s.migrate().await.expect("migrate");
        s
    }
}

/// A [`Setup`] on SQLite and, when PostgreSQL is configured, one on a fresh Postgres
/// database (with the guard that drops it): `(backend, setup, guard)`. With `shipped`, each
/// holds every shipped workflow.
pub async fn setups(shipped: bool) -> Vec<(&'static str, Setup, Option<super::stores::Guard>)> {
    let new = || {
        let s = Setup::new();
        if shipped {
            s.with_shipped_workflows()
        } else {
            s
        }
    };
    let mut out = vec![("sqlite", new(), None)];
    if let Some((url, guard)) = super::stores::postgres_database().await {
        out.push(("postgres", new().db_url(url), Some(guard)));
    }
    out
}

fn day_of_july(day: u32) -> String {
    format!("2019-07-{day:02}")
}

fn round_start_args(date: &str) -> [&str; 5] {
    ["round", "start", WORKFLOW, "--start", date]
}

/// A running `yanzhen serve`; killed if the test fails before stopping it.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until its log contains `needle`; false if it does not within `timeout`.
    pub async fn log_shows(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            let log = self.log();
            async move { log.contains(needle) }
        })
        .await
    }

    /// Kill it with SIGKILL (no chance to release anything) and reap it.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Ask it to stop (SIGTERM), wait, and return whether it exited 0, and its log.
    pub fn stop(mut self) -> (bool, String) {
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

/// Poll `f` until it is true (true) or `timeout` has passed (false).
pub async fn wait_until<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// [`wait_until`], failing the test on a time-out.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    assert!(wait_until(timeout, f).await, "timed out waiting for {what}");
}
