//! `yanzhen-bench`: measures the real engine, store, scheduler loop and outbox sender on
//! SQLite or PostgreSQL (timings live here, never in tests). See `docs/benchmarks.md`.

#[path = "bench/pool.rs"]
mod pool;
#[path = "bench/uploads.rs"]
mod uploads;

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yanzhen::catalog::{Catalog, LoadedWorkflow, content_hash};
use yanzhen::config::{Config, DeliveryMode, NotifyConfig, SmtpConfig, SmtpSecurity};
use yanzhen::core::diagnostic::{Diagnostics, Sp};
use yanzhen::core::directory::{Contact, Directory, Group, Office, Role, Unit, UnitKind};
use yanzhen::core::state::{MessageKind, OutboxChannel, TimerKind};
use yanzhen::engine::{Engine, StartRound, ms};
use yanzhen::runtime::clock::SystemClock;
use yanzhen::store::{NewNotification, NewTimer, Store, TimerPayload};

/// What to measure.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "yanzhen-bench",
    about = "Measure materialisation, firing, restart, memory and email delivery (docs/benchmarks.md)"
)]
pub struct BenchOptions {
    /// Database URL (default: a fresh SQLite file per measurement in a temp dir).
    #[arg(long)]
    pub database: Option<String>,
    /// Branch counts for materialising a round of 8 tasks per branch.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub branches: Vec<usize>,
    /// Timers due in the same second.
    #[arg(long, default_value_t = 100_000)]
    pub burst: usize,
    /// Timers spread evenly over 10 s (the peers' workload, for ratios).
    #[arg(long, default_value_t = 10_000)]
    pub spread: usize,
    /// Pending timers for the restart and memory measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub pending: usize,
    /// Emails to the loopback SMTP sink, and as many webhook POSTs to the HTTP sink.
    #[arg(long, default_value_t = 2000)]
    pub emails: usize,
    /// Path of the yanzhen binary (for the restart/RSS measurements; default: the `yanzhen`
    /// binary next to this one).
    #[arg(long)]
    pub exe: Option<PathBuf>,
    /// People in the roster of the pool measurements (10 per branch).
    #[arg(long, default_value_t = 100_000)]
    pub people: usize,
    /// Concurrent uploads of the `uploads` measurement.
    #[arg(long, default_value_t = 50)]
    pub uploads: usize,
    /// Size of each upload in MiB.
    #[arg(long, default_value_t = 10)]
    pub upload_mib: usize,
    /// Hand-ins the daemon reads at once (`[http] max_concurrent_uploads`; default: the
    /// config's default); the rest wait for a slot.
    #[arg(long)]
    pub upload_slots: Option<usize>,
    /// Branches of the `archive` measurement's round (one file each).
    #[arg(long, default_value_t = 1000)]
    pub archive_branches: usize,
    /// Size of each archived file in MiB.
    #[arg(long, default_value_t = 1)]
    pub archive_mib: usize,
    /// Run only these measurements (materialise, burst, halfcap, spread, the same three with
    /// `_reminders`, restart, idle, email, webhook, pool_import, pool_check, pool_plan,
    /// pool_reimport, uploads, archive).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

impl BenchOptions {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

/// A JSON line per measurement plus a human line.
fn report(name: &str, v: serde_json::Value) {
    println!("{}", serde_json::json!({"bench": name, "result": v}));
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A directory of `n` branches (log-only contacts, so nothing is sent anywhere).
fn directory(n: usize) -> Directory {
    let contact = |name: &str| Contact {
        name: name.into(),
        title: None,
        email: None,
        phone: None,
        webhooks: vec![],
    };
    Directory::new(
        Office {
            id: "bench".into(),
            name: "基准测试街道".into(),
        },
        vec![Role {
            id: Sp::bare("organization_office".into()),
            title: "组织办".into(),
            contacts: vec![contact("组织办")],
        }],
        (0..n)
            .map(|i| Unit {
                id: Sp::bare(format!("b{i:06}")),
                name: format!("第{i}社区"),
                kind: UnitKind::Branch,
                contacts: vec![contact("书记")],
            })
            .collect(),
        vec![Group {
            id: Sp::bare("branches".into()),
            title: "全体".into(),
            kind: Some(UnitKind::Branch),
            members: None,
        }],
    )
}

/// A round of 8 tasks per branch, each with a deadline and one reminder.
const WORKFLOW: &str = "id: bench\ntitle: 基准\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 20}\n    tasks:\n";

fn workflow_source() -> String {
    let mut s = WORKFLOW.to_string();
    for i in 1..=8 {
        s.push_str(&format!(
            "      - id: t{i}\n        title: 任务{i}\n        assignee: {{group: branches}}\n        due: {{from: round_start, days: {}}}\n        reminders:\n          before: [{{days: 1}}]\n",
            4 + i
        ));
    }
    s
}

fn catalog(n: usize, calendar: yanzhen::core::calendar::Calendar) -> anyhow::Result<Catalog> {
    let source = workflow_source();
    let mut d = Diagnostics::new("bench");
    let wf = yanzhen::core::yaml::parse(&source, &mut d).context("bench workflow")?;
    let mut workflows = std::collections::BTreeMap::new();
    workflows.insert(
        "bench".to_string(),
        LoadedWorkflow {
            workflow: wf,
            path: "bench.yaml".into(),
            hash: content_hash(&source),
            source,
        },
    );
    Ok(Catalog {
        config: Config::default(),
        directory: directory(n),
        calendar,
        workflows,
    })
}

async fn fresh_store(
    opts: &BenchOptions,
    dir: &Path,
    name: &str,
) -> anyhow::Result<(Arc<dyn Store>, String)> {
    let url = match &opts.database {
        Some(u) if u.starts_with("postgres") => {
            // A fresh database per measurement on the same server.
            use sqlx::Connection as _;
            let db = format!("yz_bench_{name}_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(u).await?;
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await?;
            with_database(u, &db)
        }
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
    };
    let store = yanzhen::store::open(&url).await?;
    store.migrate().await?;
    Ok((store, url))
}

/// `url` with its database name replaced by `db`, keeping the query
/// (`?host=/var/run/postgresql` for a Unix socket).
fn with_database(url: &str, db: &str) -> String {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Run every benchmark and print the results.
async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    yanzhen::notify::install_tls_provider();
    let tmp = tempfile_dir()?;
    let calendar = yanzhen::core::calendar::Calendar::load_dir(Path::new("config/calendar"))
        .map_err(|e| anyhow::anyhow!("config/calendar: {e:?}"))?;
    let backend = if opts
        .database
        .as_deref()
        .is_some_and(|d| d.starts_with("postgres"))
    {
        "postgres"
    } else {
        "sqlite"
    };
    println!("# yanzhen bench on {backend}");
    // First, so that the peak RSS they report is theirs.
    if ["pool_import", "pool_check", "pool_plan", "pool_reimport"]
        .iter()
        .any(|m| opts.wants(m))
    {
        pool::pool_benches(&opts, &tmp, backend, &calendar).await?;
    }

    for &n in opts.branches.iter().filter(|_| opts.wants("materialise")) {
        let (store, _) = fresh_store(&opts, &tmp, &format!("mat{n}")).await?;
        let e = Engine::new(
            store.clone(),
            catalog(n, calendar.clone())?,
            Arc::new(SystemClock),
            "bench",
        );
        e.register_workflows().await?;
        let t = Instant::now();
        let id = start_bench_round(&e).await?;
        let secs = t.elapsed().as_secs_f64();
        let tasks = n * 8;
        let timers = store.pending_timers(Some(id), i64::MAX).await?.len();
        report(
            "materialise",
            serde_json::json!({"backend": backend, "branches": n, "tasks": tasks, "timers": timers, "seconds": secs,
            "tasks_per_s": tasks as f64 / secs, "timers_per_s": timers as f64 / secs}),
        );
    }

    let ten = Some(Duration::from_secs(10));
    let (b, s) = (opts.burst, opts.spread);
    for load in [Load::Plain, Load::Reminders] {
        let suffix = if load == Load::Plain {
            ""
        } else {
            "_reminders"
        };
        let wants = |m: &str| opts.wants(&format!("{m}{suffix}"));
        let name = |m: &str| format!("{m}{suffix}");
        if wants("burst") || wants("halfcap") {
            let capacity = burst(
                &opts,
                &tmp,
                &name("burst"),
                backend,
                b,
                None,
                load,
                &calendar,
            )
            .await?;
            if wants("halfcap") {
                // Half capacity: timers spread over 10 s at half the measured rate.
                let half = ((capacity / 2.0) * 10.0).max(10.0) as usize;
                burst(
                    &opts,
                    &tmp,
                    &name("halfcap"),
                    backend,
                    half,
                    ten,
                    load,
                    &calendar,
                )
                .await?;
            }
        }
        if wants("spread") {
            burst(
                &opts,
                &tmp,
                &name("spread"),
                backend,
                s,
                ten,
                load,
                &calendar,
            )
            .await?;
        }
    }
    if opts.wants("restart") {
        restart(&opts, &tmp, backend, opts.pending).await?;
    }
    if opts.wants("idle") {
        restart(&opts, &tmp, backend, 0).await?;
    }
    // Both are the process's peak when run alone (`--only uploads`, `--only archive`).
    if opts.wants("uploads") {
        let size = opts.upload_mib << 20;
        uploads::uploads(&opts, &tmp, backend, opts.uploads, size, &calendar).await?;
    }
    if opts.wants("archive") {
        let (n, size) = (opts.archive_branches, opts.archive_mib << 20);
        uploads::archive(&opts, &tmp, backend, n, size, &calendar).await?;
    }
    if opts.wants("email") || opts.wants("webhook") {
        deliveries_per_channel(&opts, &tmp, backend, calendar).await?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    drop_bench_databases(&opts).await;
    Ok(())
}

/// Drop the Postgres databases this run created (the 100k-branch round alone is ~1 GB).
async fn drop_bench_databases(opts: &BenchOptions) {
    use sqlx::Connection as _;
    let Some(u) = opts
        .database
        .as_deref()
        .filter(|u| u.starts_with("postgres"))
    else {
        return;
    };
    let Ok(mut admin) = sqlx::PgConnection::connect(u).await else {
        return;
    };
    let pattern = format!("yz\\_bench\\_%\\_{}", std::process::id());
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for db in names {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("yanzhen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A stage-open timer `{prefix}/{i}` (fires with an audit entry only).
fn plain_timer(prefix: &str, i: usize, due_at: i64) -> NewTimer {
    NewTimer {
        key: format!("{prefix}/{i}"),
        round_id: None,
        task_key: None,
        kind: TimerKind::StageOpen,
        due_at,
        payload: TimerPayload::default(),
    }
}

/// Insert timers in transactions of 20,000.
async fn add_timers(
    store: &Arc<dyn Store>,
    timers: impl Iterator<Item = NewTimer>,
) -> anyhow::Result<usize> {
    let mut batch = Vec::with_capacity(20_000);
    let mut n = 0;
    for t in timers {
        batch.push(t);
        if batch.len() == 20_000 {
            n += store.add_timers(std::mem::take(&mut batch)).await? as usize;
        }
    }
    n += store.add_timers(batch).await? as usize;
    Ok(n)
}

/// What the timers of a firing measurement do when they fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Stage-open timers: an audit entry each, no reads (the engine's own cost).
    Plain,
    /// Task reminders of a real round: the task and round are read, the reminder is
    /// rendered from its templates and an outbox row is written (what a branch receives).
    Reminders,
}

/// `count` timers due at one instant (or spread over `spread`), fired by the real loop.
/// Returns the throughput in timers per second.
///
/// As in the peers' harness (`benches/peers`), the first timer is due at a whole second at
/// least 2 s after the timers are written, and timer `i` of `count` at
/// `T0 + spread · i/(count−1)`.
#[allow(clippy::too_many_arguments)]
async fn burst(
    opts: &BenchOptions,
    tmp: &Path,
    name: &str,
    backend: &str,
    count: usize,
    spread: Option<Duration>,
    load: Load,
    calendar: &yanzhen::core::calendar::Calendar,
) -> anyhow::Result<f64> {
    let (store, _) = fresh_store(opts, tmp, name).await?;
    let branches = match load {
        Load::Plain => 1,
        Load::Reminders => count.div_ceil(8),
    };
    let e = Arc::new(Engine::new(
        store.clone(),
        catalog(branches, calendar.clone())?,
        Arc::new(SystemClock),
        "bench",
    ));
    let reminders = match load {
        Load::Plain => Vec::new(),
        Load::Reminders => reminder_timers(&e, count).await?,
    };
    // Inserting takes ~20 µs a plain timer and ~100 µs a reminder (its task is looked up)
    // on SQLite, several times that over a Postgres connection. The lead only delays T0;
    // the loop starts after the writes, so it does not change what is measured.
    let per_timer_us = match (load, backend) {
        (Load::Plain, "sqlite") => 20,
        (Load::Reminders, "sqlite") => 100,
        (Load::Plain, _) => 100,
        (Load::Reminders, _) => 500,
    };
    let lead = ms(chrono::Utc::now()) + 2000 + (count as i64 * per_timer_us / 1000);
    let t0 = (lead + 999) / 1000 * 1000;
    let span = spread.map_or(0, |d| d.as_millis() as i64);
    let due = |i: usize| {
        t0 + if count > 1 {
            span * i as i64 / (count as i64 - 1)
        } else {
            0
        }
    };
    match load {
        Load::Plain => add_timers(&store, (0..count).map(|i| plain_timer(name, i, due(i)))).await?,
        Load::Reminders => {
            let timers = reminders.into_iter().enumerate().map(|(i, t)| NewTimer {
                key: format!("{name}/{i}"),
                due_at: due(i),
                ..t
            });
            add_timers(&store, timers).await?
        }
    };
    if ms(chrono::Utc::now()) > t0 {
        anyhow::bail!(
            "{name}: writing the timers took longer than the lead time ({} µs a timer); \
             raise `per_timer_us` for this backend",
            per_timer_us
        );
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let lp = tokio::spawn(yanzhen::runtime::scheduler::run(e.clone(), rx));
    // Done when nothing is claimable before the round's own (days away) timers.
    let horizon = t0 + span + 3_600_000;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if store.next_due_at().await?.is_none_or(|n| n > horizon) {
            break;
        }
    }
    let _ = tx.send(true);
    let _ = lp.await;
    let rows = store.timers_with_prefix(&format!("{name}/")).await?;
    let mut late: Vec<i64> = rows
        .iter()
        .filter_map(|t| t.fired_at.map(|f| f - t.due_at))
        .collect();
    late.sort_unstable();
    let last = rows.iter().filter_map(|t| t.fired_at).max().unwrap_or(t0);
    let drain = ((last - t0).max(1)) as f64 / 1000.0;
    let rate = if spread.is_some() {
        count as f64 / (span as f64 / 1000.0).max(0.001)
    } else {
        count as f64 / drain
    };
    report(
        name,
        serde_json::json!({"backend": backend, "load": format!("{load:?}").to_lowercase(), "timers": count, "fired": late.len(), "drain_s": drain, "fires_per_s": rate,
        "lateness_ms": {"p50": percentile(&late, 0.5), "p99": percentile(&late, 0.99), "max": late.last().copied().unwrap_or(0)},
        // The whole process's peak: only this measurement's when run alone (`--only`).
        "peak_rss_kib": peak_rss_kib()}),
    );
    Ok(rate)
}

/// Start the bench workflow's round today.
async fn start_bench_round(e: &Engine) -> anyhow::Result<i64> {
    Ok(e.start_round(StartRound {
        workflow: "bench".into(),
        start: chrono::Utc::now().date_naive(),
        params: Default::default(),
        units: None,
        actor: "bench".into(),
    })
    .await?)
}

/// `count` reminder timers copied from the pending reminders of a freshly started round
/// (key and due instant to be set by the caller).
async fn reminder_timers(e: &Engine, count: usize) -> anyhow::Result<Vec<NewTimer>> {
    e.register_workflows().await?;
    let id = start_bench_round(e).await?;
    let store = e.store();
    let keys: std::collections::HashMap<i64, String> = store
        .tasks(id)
        .await?
        .into_iter()
        .map(|t| (t.id, t.key))
        .collect();
    let timers: Vec<NewTimer> = store
        .pending_timers(Some(id), i64::MAX)
        .await?
        .into_iter()
        .filter(|t| t.kind == TimerKind::Reminder)
        .take(count)
        .map(|t| NewTimer {
            key: String::new(),
            round_id: Some(id),
            task_key: t.task_id.and_then(|i| keys.get(&i).cloned()),
            kind: t.kind,
            due_at: 0,
            payload: t.payload,
        })
        .collect();
    if timers.len() < count {
        anyhow::bail!(
            "the bench round has {} reminders, not {count}",
            timers.len()
        );
    }
    Ok(timers)
}

/// VmHWM of this process.
fn peak_rss_kib() -> Option<u64> {
    status_kib("self", "VmHWM:")
}

fn rss_kb(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmRSS:")
}

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Start the real daemon on a database with `pending` timers; time to ready and its RSS.
async fn restart(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    pending: usize,
) -> anyhow::Result<()> {
    let name = format!("restart{pending}");
    let (store, url) = fresh_store(opts, tmp, &name).await?;
    let far = ms(chrono::Utc::now()) + 86_400_000 * 30;
    add_timers(
        &store,
        (0..pending).map(|i| plain_timer(&name, i, far + i as i64)),
    )
    .await?;
    drop(store); // releases the SQLite lock for the daemon
    let cfg = tmp.join(format!("{name}.toml"));
    let root = std::env::current_dir()?;
    std::fs::write(
        &cfg,
        format!(
            "workflows_dir = \"{}\"\ndirectory = \"{}\"\ncalendar_dir = \"{}\"\n[database]\nurl = \"{url}\"\n[http]\nbind = \"\"\n",
            tmp.join("no-workflows").display(),
            root.join("config/directory.yaml").display(),
            root.join("config/calendar").display()
        ),
    )?;
    std::fs::create_dir_all(tmp.join("no-workflows"))?;
    let log = tmp.join(format!("{name}.log"));
    let t = Instant::now();
    let exe = opts.exe.clone().context("the yanzhen binary's path")?;
    let mut child = std::process::Command::new(&exe)
        .args(["--config", cfg.to_str().unwrap_or_default(), "serve"])
        .env("YANZHEN_LOG", "info")
        .env_remove("YANZHEN_DATABASE_URL")
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let ready = loop {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("scheduler started")
        {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the daemon did not report ready within 120 s with {pending} pending timers; see {}",
                log.display()
            );
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the daemon exited ({status}) before it was ready; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // settle, then read the resident size
    let rss = rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let label = if pending == 0 { "idle" } else { "restart" };
    report(
        label,
        serde_json::json!({"backend": backend, "pending_timers": pending, "ready_s": ready.as_secs_f64(), "rss_mb": rss.map(|k| k as f64 / 1024.0)}),
    );
    Ok(())
}

/// A loopback SMTP sink that accepts everything and counts messages.
async fn sink() -> anyhow::Result<(u16, Arc<std::sync::atomic::AtomicUsize>)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                // Without it, Nagle's algorithm and delayed ACKs add ~40 ms per reply.
                let _ = stream.set_nodelay(true);
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink\r\n").await;
                let mut data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if data {
                        if line == "." {
                            data = false;
                            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            b"250 ok\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                            Some("EHLO") => b"250-sink\r\n250 8BITMIME\r\n",
                            Some("DATA") => {
                                data = true;
                                b"354 go\r\n"
                            }
                            Some("QUIT") => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok((port, count))
}

/// A loopback HTTP sink that answers 200 to every POST and counts them.
async fn http_sink() -> anyhow::Result<(u16, Arc<std::sync::atomic::AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, count))
}

/// Deliveries through the real outbox sender: emails to the SMTP sink, webhook POSTs to the
/// HTTP sink, each without and with a rate limit.
async fn deliveries_per_channel(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    calendar: yanzhen::core::calendar::Calendar,
) -> anyhow::Result<()> {
    for channel in ["email", "webhook"] {
        if !opts.wants(channel) {
            continue;
        }
        for limit in [None, Some(1200u32)] {
            deliveries(opts, tmp, backend, &calendar, channel, limit).await?;
        }
    }
    Ok(())
}

async fn deliveries(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    calendar: &yanzhen::core::calendar::Calendar,
    channel: &str,
    limit: Option<u32>,
) -> anyhow::Result<()> {
    let name = match limit {
        Some(_) => format!("{channel}_rate_limited"),
        None => channel.to_string(),
    };
    let (store, _) = fresh_store(opts, tmp, &name.replace('_', "")).await?;
    let (smtp_port, smtp_received) = sink().await?;
    let (http_port, http_received) = http_sink().await?;
    let received = if channel == "email" {
        smtp_received
    } else {
        http_received
    };
    let mut notify = NotifyConfig {
        mode: DeliveryMode::Deliver,
        from: "bench <bench@example.gov.cn>".into(),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(smtp_port),
            security: SmtpSecurity::None,
            username: None,
            password_env: None,
            timeout_seconds: 30,
            pool_size: 4,
        }),
        ..NotifyConfig::default()
    };
    if let Some(l) = limit {
        notify.rate_limits.insert(channel.into(), l);
    }
    let mut cat = catalog(1, calendar.clone())?;
    cat.config.notify = notify.clone();
    let e = Arc::new(Engine::new(
        store.clone(),
        cat,
        Arc::new(SystemClock),
        "bench",
    ));
    let count = if limit.is_some() { 1400 } else { opts.emails };
    // Enqueue through a fired timer, as the engine does; distinct recipients, no digests.
    store
        .add_timers(vec![NewTimer {
            key: "mail".into(),
            round_id: None,
            task_key: None,
            kind: TimerKind::StageOpen,
            due_at: 0,
            payload: TimerPayload::default(),
        }])
        .await?;
    let claimed = store
        .claim_due_timers(ms(chrono::Utc::now()), "bench", 60_000, 1)
        .await?
        .timers;
    let channel_kind: OutboxChannel = channel
        .parse()
        .with_context(|| format!("unknown channel `{channel}`"))?;
    let now = ms(chrono::Utc::now());
    let notes = (0..count)
        .map(|i| NewNotification {
            key: format!("mail/{i}"),
            round_id: None,
            task_id: None,
            kind: MessageKind::Kickoff,
            channel: channel_kind,
            address: match channel {
                "email" => format!("b{i}@example.gov.cn"),
                _ => format!("http://127.0.0.1:{http_port}/hook?b={i}"),
            },
            recipient_json: "{\"party\":{\"kind\":\"unit\",\"id\":\"b\",\"name\":\"某社区\"}}"
                .into(),
            subject: "【提醒】基准测试".into(),
            body: "正文".into(),
            html: "<p>正文</p>".into(),
            item_json: "{}".into(),
            not_before: now,
            created_at: now,
        })
        .collect();
    store
        .fire_timer(
            claimed[0].id,
            "bench",
            now,
            yanzhen::store::FireEffects {
                notifications: notes,
                ..Default::default()
            },
        )
        .await?;
    let outbox = yanzhen::notify::outbox::Outbox::new(e.clone(), notify)?;
    let t = Instant::now();
    // A pass ends when the shared budget runs out; the next one starts when it refills.
    loop {
        outbox.deliver_due().await?;
        let Some(next) = outbox.next_send_at().await? else {
            break;
        };
        if store.counts(ms(chrono::Utc::now())).await?.outbox_pending == 0 {
            break;
        }
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let got = received.load(std::sync::atomic::Ordering::Relaxed);
    let mut v = serde_json::json!({"backend": backend, "channel": channel, "sent": count, "received": got, "seconds": secs, "per_s": got as f64 / secs});
    if channel == "email" {
        v["pool_size"] = 4.into();
    }
    if let Some(l) = limit {
        // The shared budget allows a burst of one minute's quota, then the steady rate.
        let steady = (count as f64 - l as f64).max(0.0);
        v["rate_limit_per_min"] = l.into();
        v["expected_min_seconds"] = (steady / (l as f64 / 60.0)).into();
        v["observed_steady_per_min"] = (steady / (secs.max(0.001)) * 60.0).into();
    }
    report(&name, v);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use clap::Parser as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("YANZHEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut opts = BenchOptions::parse();
    if opts.exe.is_none() {
        let me = std::env::current_exe().context("locating the yanzhen-bench binary")?;
        opts.exe = Some(me.with_file_name(format!("yanzhen{}", std::env::consts::EXE_SUFFIX)));
    }
    run(opts).await
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn bench_database_url_replaces_the_name_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/test", "yz_b"),
            "postgres://u@127.0.0.1:5432/yz_b"
        );
        assert_eq!(
            with_database("postgres://u@/test?host=/var/run/postgresql", "yz_b"),
            "postgres://u@/yz_b?host=/var/run/postgresql"
        );
    }
}
