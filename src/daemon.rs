//! The binary's async edge: opening the store, building the engine, `serve` with signal
//! handling, and the commands that act on rounds and tasks.

use crate::catalog::{self, Catalog};
use crate::cli::{Command, Format, RoundCommand, TaskCommand, TokenCommand, WorkflowCommand};
use crate::clock::SystemClock;
use crate::diagnostic::Severity;
use crate::engine::{Engine, StartRound, from_ms};
use crate::store::{self, Store, StoreError};
use crate::timefmt::{provisional_mark, zh_datetime};
use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Load the catalog; config, directory or calendar errors are fatal, invalid workflows are
/// reported and left out.
pub fn load_catalog(config: &Path, today: NaiveDate, daemon: bool) -> anyhow::Result<Catalog> {
    Ok(load_catalog_reporting(config, today, daemon)?.0)
}

/// [`load_catalog`], also returning every diagnostic (the daemon records them as its
/// state at start-up).
fn load_catalog_reporting(
    config: &Path,
    today: NaiveDate,
    daemon: bool,
) -> anyhow::Result<(Catalog, Vec<crate::diagnostic::Diagnostic>)> {
    let (cat, diags) = catalog::load(config, today);
    for d in &diags {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            // Short commands stay quiet about warnings `validate` already shows.
            Severity::Warning if daemon => tracing::warn!("{d}"),
            Severity::Warning => tracing::debug!("{d}"),
        }
    }
    match cat {
        Some(c) => Ok((c, diags)),
        None => bail!("configuration is not valid (see the errors above); run `yanzhen validate`"),
    }
}

/// The engine for commands that only read the database (`status`, `task list`): a broken
/// directory or calendar is reported as a warning and does not stop them (see
/// [`catalog::load_for_reading`]); workflow files are not registered as versions.
async fn read_only_engine(config: &Path, today: NaiveDate) -> anyhow::Result<Arc<Engine>> {
    let (cat, diags) = catalog::load_for_reading(config, today);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    for d in &errors {
        tracing::warn!("{d}");
    }
    let Some(cat) = cat else {
        bail!("configuration is not valid (see the errors above); run `yanzhen validate`")
    };
    if !errors.is_empty() {
        tracing::warn!(
            "the files above have errors; showing what the database holds (run `yanzhen validate`)"
        );
    }
    let store = open_store(&database_url(&cat), false, Duration::from_secs(5)).await?;
    Ok(Arc::new(Engine::new(
        store,
        cat,
        Arc::new(SystemClock),
        owner(),
    )))
}

/// The database URL: `YANZHEN_DATABASE_URL`, else the config file's.
pub fn database_url(cat: &Catalog) -> String {
    std::env::var("YANZHEN_DATABASE_URL").unwrap_or_else(|_| cat.config.database.url.clone())
}

/// Open and migrate the store, retrying while the database is unreachable.
pub async fn open_store(
    url: &str,
    daemon: bool,
    retry_for: Duration,
) -> anyhow::Result<Arc<dyn Store>> {
    open_store_reporting(url, daemon, retry_for, &|_| {}).await
}

/// [`open_store`], telling `report` why the database is not usable yet at every retry
/// (what `/readyz` says while the daemon starts). A database that refuses the URL for good
/// (it does not exist, wrong user or password), a SQLite file in use, a bad URL or a failed
/// migration end the retrying at once.
async fn open_store_reporting(
    url: &str,
    daemon: bool,
    retry_for: Duration,
    report: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Arc<dyn Store>> {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        let res = if daemon {
            store::open(url).await
        } else {
            store::open_shared(url).await
        };
        match res {
            Ok(s) => {
                report("applying database migrations".into());
                s.migrate().await.context("applying database migrations")?;
                return Ok(s);
            }
            Err(
                e @ (StoreError::Locked { .. }
                | StoreError::BadUrl(_)
                | StoreError::Refused(_)
                | StoreError::Migrate(_)),
            ) => return Err(e.into()),
            Err(e) if started.elapsed() < retry_for => {
                tracing::error!(database = %redact(url), error = %e, retry_in_ms = wait.as_millis() as u64, "database unreachable; retrying");
                report(format!(
                    "database {} unreachable: {e}; retrying",
                    redact(url)
                ));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(15));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("database {} unreachable", redact(url)))
                );
            }
        }
    }
}

/// A URL with any password replaced, for logs.
pub fn redact(url: &str) -> String {
    store::redact_url(url)
}

fn owner() -> String {
    format!("{}-{}", this_host(), std::process::id())
}

async fn engine(config: &Path, today: NaiveDate, daemon: bool) -> anyhow::Result<Arc<Engine>> {
    engine_from(load_catalog(config, today, daemon)?, daemon).await
}

async fn engine_from(cat: Catalog, daemon: bool) -> anyhow::Result<Arc<Engine>> {
    let url = database_url(&cat);
    let retry = if daemon {
        Duration::from_secs(u64::MAX / 4)
    } else {
        Duration::from_secs(5)
    };
    let store = open_store(&url, daemon, retry).await?;
    engine_on(store, cat).await
}

/// The engine over an open store (`YANZHEN_LEASE_MS` sets the timer lease).
async fn engine_on(store: Arc<dyn Store>, cat: Catalog) -> anyhow::Result<Arc<Engine>> {
    let mut engine = Engine::new(store, cat, Arc::new(SystemClock), owner());
    if let Some(ms) = std::env::var("YANZHEN_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        engine = engine.with_lease_ms(ms);
    }
    let engine = Arc::new(engine);
    engine.register_workflows().await?;
    Ok(engine)
}

/// Run one of the async commands.
pub async fn run_command(
    config: &Path,
    cmd: Command,
    today: NaiveDate,
) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve => serve(config, today).await,
        Command::Round(RoundCommand::Start {
            workflow,
            start,
            params,
            branches,
            only_listed,
        }) => {
            let e = engine(config, today, false).await?;
            let units = branches.map(|b| e.catalog().directory.round_units(&b, only_listed));
            let id = e
                .start_round(StartRound {
                    workflow,
                    start,
                    params: params.into_iter().collect(),
                    units,
                    actor: "cli".into(),
                })
                .await?;
            let tasks = e.store().tasks(id).await?;
            println!("round {id} started: {} tasks", tasks.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Round(RoundCommand::Migrate { round, to, dry_run }) => {
            let e = engine(config, today, false).await?;
            let r = e
                .store()
                .round(round)
                .await?
                .with_context(|| format!("no round {round}"))?;
            let versions = e.store().workflow_versions(&r.workflow_id).await?;
            let target = match to {
                Some(n) => versions.iter().find(|v| v.version == n).with_context(|| {
                    format!(
                        "workflow `{}` has no version {n} (see `yanzhen workflow versions {}`)",
                        r.workflow_id, r.workflow_id
                    )
                })?,
                None => versions.last().context("no stored versions")?,
            };
            let impact = e
                .reproject(round, Some(target.id), &[], dry_run, "cli", "migrate")
                .await?;
            print!("{}", impact.to_table(e.catalog().config.tz()));
            if dry_run {
                println!("(dry run: nothing changed)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Round(RoundCommand::AddBranch { round, unit }) => {
            let e = engine(config, today, false).await?;
            if e.catalog().directory.unit(&unit).is_none() {
                bail!("no unit `{unit}` in the directory; add it to config/directory.yaml first");
            }
            let impact = e
                .reproject(
                    round,
                    None,
                    std::slice::from_ref(&unit),
                    false,
                    "cli",
                    &format!("add-branch {unit}"),
                )
                .await?;
            print!("{}", impact.to_table(e.catalog().config.tz()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::Versions { id }) => {
            let e = engine(config, today, false).await?;
            let tz = e.catalog().config.tz();
            for v in e.store().workflow_versions(&id).await? {
                println!(
                    "v{:<3} {}  {}",
                    v.version,
                    &v.hash[..12.min(v.hash.len())],
                    zh_datetime(&from_ms(v.created_at).with_timezone(&tz))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workflow(WorkflowCommand::Diff { id, v1, v2 }) => {
            let e = engine(config, today, false).await?;
            let versions = e.store().workflow_versions(&id).await?;
            if versions.len() < 2 && (v1.is_none() || v2.is_none()) {
                bail!(
                    "workflow `{id}` has {} stored version(s); nothing to compare",
                    versions.len()
                );
            }
            let pick =
                |n: Option<i64>, default: usize| -> anyhow::Result<&crate::store::VersionRow> {
                    match n {
                        Some(n) => versions
                            .iter()
                            .find(|v| v.version == n)
                            .with_context(|| format!("no version {n} of `{id}`")),
                        None => versions.get(default).context("no such version"),
                    }
                };
            let (a, b) = (pick(v1, versions.len() - 2)?, pick(v2, versions.len() - 1)?);
            let (pa, pb) = (
                e.plan_source(&a.source, Some(&b.source)).await?,
                e.plan_source(&b.source, Some(&b.source)).await?,
            );
            let changes = crate::reload::diff_plans(&pa, &pb);
            let texts = crate::reload::diff_texts(
                &*e.workflow_of(a.id).await?,
                &*e.workflow_of(b.id).await?,
            );
            println!(
                "{id}: v{} → v{}, dated at {}: {} change(s)",
                a.version,
                b.version,
                pb.start,
                changes.len()
            );
            let tz = e.catalog().config.tz();
            let t = |x: &Option<chrono::DateTime<chrono::Utc>>| {
                x.map(|d| zh_datetime(&d.with_timezone(&tz)))
                    .unwrap_or_else(|| "—".into())
            };
            for c in changes {
                println!(
                    "  {:<8} {:<11} {:<45} {:<10} {} → {}",
                    c.change,
                    c.what,
                    c.key,
                    c.who,
                    t(&c.old),
                    t(&c.new)
                );
            }
            if !texts.is_empty() {
                println!("wording: {} change(s)", texts.len());
                for c in &texts {
                    println!("{}", c.line());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            database,
            branches,
            burst,
            spread,
            pending,
            emails,
            only,
        } => {
            let exe = std::env::current_exe().context("locating the yanzhen binary")?;
            crate::bench::run(crate::bench::BenchOptions {
                database,
                branches,
                burst,
                spread,
                pending,
                emails,
                exe,
                only,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload => reload_command(config, today).await,
        Command::Round(RoundCommand::List) => {
            let e = engine(config, today, false).await?;
            for r in e.store().rounds().await? {
                println!(
                    "{:>4}  {:<30} start {}  {}",
                    r.id, r.workflow_id, r.start_date, r.status
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Task(t) => task_command(config, today, t).await,
        Command::Token(TokenCommand::Create { name, read_only }) => {
            let e = engine(config, today, false).await?;
            let token = crate::access::new_token();
            let now = crate::engine::ms(chrono::Utc::now());
            let rights = if read_only { "read" } else { "admin" };
            e.store()
                .create_token(
                    crate::store::TokenRow {
                        name: name.clone(),
                        hash: crate::access::token_hash(&token),
                        rights: rights.into(),
                        created_at: now,
                        revoked_at: None,
                    },
                    crate::store::AuditEntry {
                        at: now,
                        actor: "cli".into(),
                        action: "token.create".into(),
                        subject: format!("token:{name}"),
                        detail_json: serde_json::json!({"rights": rights}).to_string(),
                    },
                )
                .await
                .with_context(|| format!("creating token `{name}` (does it exist already?)"))?;
            eprintln!("token `{name}` ({rights}) created; it is shown once, store it now:");
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Feed { unit } => {
            let e = engine(config, today, false).await?;
            print!("{}", e.feed(&unit).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { round } => status(config, today, round).await,
        Command::Simulate { scenario, format } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("reading {}", scenario.display()))?;
            let cat = load_catalog(config, today, false)?;
            let (sc, d) = crate::simulate::load(&scenario.display().to_string(), &text, &cat);
            let Some(sc) = sc else {
                crate::cli::report(&d.into_sorted(), Format::Text);
                return Ok(ExitCode::from(1));
            };
            for w in d.items() {
                eprintln!("{w}");
            }
            let tz = cat.config.tz();
            let effects = crate::simulate::run(&sc, cat).await?;
            match format {
                Format::Text => {
                    for e in &effects {
                        println!("{}", e.line(tz));
                    }
                }
                Format::Json => println!("{}", serde_json::to_string_pretty(&effects)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { .. } | Command::Schema | Command::Plan { .. } => {
            bail!("not an async command")
        }
    }
}

async fn task_command(
    config: &Path,
    today: NaiveDate,
    cmd: TaskCommand,
) -> anyhow::Result<ExitCode> {
    let e = if matches!(cmd, TaskCommand::List { .. }) {
        read_only_engine(config, today).await?
    } else {
        engine(config, today, false).await?
    };
    let tz = e.catalog().config.tz();
    let row = match cmd {
        TaskCommand::List { round } => {
            for t in e.store().tasks(round).await? {
                let due = t
                    .due_at
                    .map(|d| {
                        format!(
                            "{}{}",
                            zh_datetime(&from_ms(d).with_timezone(&tz)),
                            provisional_mark(t.provisional)
                        )
                    })
                    .unwrap_or_else(|| "—".into());
                println!(
                    "{:>6}  {:<9} {:<40} {}  截止 {}",
                    t.id, t.state, t.key, t.assignee_name, due
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        TaskCommand::Complete { id, note } => e.complete_task(id, "cli", note).await?,
        TaskCommand::Waive { id, reason } => e.waive_task(id, "cli", Some(reason)).await?,
        TaskCommand::Reopen {
            id,
            reason,
            due,
            in_working_days,
        } => {
            let due = match (due, in_working_days) {
                (Some(d), _) => d,
                (None, Some(n)) => crate::engine::NewDeadline::WorkingDays(n),
                (None, None) => crate::engine::NewDeadline::Default,
            };
            let row = e.reopen_task_due(id, "cli", reason, due).await?;
            let due = row
                .due_at
                .map(|d| zh_datetime(&from_ms(d).with_timezone(&tz)))
                .unwrap_or_else(|| "—".into());
            println!(
                "task {} ({}) is now {}, due {due}",
                row.id, row.key, row.state
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("task {} ({}) is now {}", row.id, row.key, row.state);
    Ok(ExitCode::SUCCESS)
}

async fn status(config: &Path, today: NaiveDate, round: Option<i64>) -> anyhow::Result<ExitCode> {
    let e = read_only_engine(config, today).await?;
    let tz = e.catalog().config.tz();
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| zh_datetime(&t.with_timezone(&tz)))
            .unwrap_or_else(|| "—".into())
    };
    let ids: Vec<i64> = match round {
        Some(r) => vec![r],
        None => e
            .store()
            .rounds()
            .await?
            .into_iter()
            .filter(|r| r.status == "running")
            .map(|r| r.id)
            .collect(),
    };
    if ids.is_empty() {
        println!("no running rounds");
    }
    for id in ids {
        let s = e.status(id).await?;
        println!(
            "round {} {}（{}）start {}  {}",
            s.round.id, s.title, s.round.workflow_id, s.round.start_date, s.round.status
        );
        for st in &s.stages {
            println!(
                "  {:<22} {}{} — {}{}  done {}/{}  overdue {}",
                format!("{} {}", st.id, st.title),
                fmt(st.opens),
                provisional_mark(st.opens_provisional && st.opens.is_some()),
                fmt(st.closes),
                provisional_mark(st.closes_provisional && st.closes.is_some()),
                st.done,
                st.total,
                st.overdue
            );
        }
        if !s.overdue.is_empty() {
            println!("  overdue:");
            for t in &s.overdue {
                println!(
                    "    {:>6} {} {}  截止 {}{}",
                    t.id,
                    t.key,
                    t.assignee_name,
                    fmt(t.due_at.map(from_ms)),
                    provisional_mark(t.provisional)
                );
            }
        }
        if !s.stuck.is_empty() {
            println!("  STUCK (every prerequisite is done, yet still waiting):");
            for t in &s.stuck {
                println!("    {:>6} {} {}", t.id, t.key, t.assignee_name);
            }
        }
        println!("  next:");
        for t in &s.next {
            println!(
                "    {}{}  {:<11} {}",
                fmt(Some(from_ms(t.due_at))),
                provisional_mark(crate::engine::timer_is_provisional(t)),
                t.kind,
                t.key
            );
        }
    }
    print_reload_state(&e).await?;
    for b in e.blocked_kickoffs().await? {
        println!(
            "BLOCKED kickoff: {} scheduled {}: {}{} (blocked since {}; retried {}, or at once when the workflow is loaded)",
            b.workflow,
            fmt(Some(b.scheduled)),
            b.reason_zh,
            b.error.map(|e| format!(" ({e})")).unwrap_or_default(),
            fmt(Some(b.since)),
            fmt(Some(b.retry_at))
        );
    }
    let kickoffs = e.store().timers_with_prefix("kickoff:").await?;
    for k in kickoffs
        .iter()
        .filter(|k| k.state == "pending" && !k.key.contains(":retry:"))
    {
        println!(
            "next kickoff: {}{}  {}",
            fmt(Some(from_ms(k.due_at))),
            provisional_mark(e.kickoff_is_provisional(k)),
            k.key
        );
    }
    let cat = e.catalog();
    if let Some(notice) =
        crate::provisional::missing_file_notice(&cat.calendar, &cat.config.calendar_dir, today)
    {
        println!("calendar: {notice}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The running daemon's reload state (its load at start-up, or its last reload). A state
/// left by a daemon that no longer runs (on this host) is not shown as current.
async fn print_reload_state(e: &Engine) -> anyhow::Result<()> {
    let Some(text) = e
        .store()
        .setting(crate::reload::RELOAD_STATE)
        .await?
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    let Ok(r) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let tz = e.catalog().config.tz();
    let when = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| zh_datetime(&t.with_timezone(&tz)))
            .unwrap_or_else(|| "?".into())
    };
    let owner = r["owner"].as_str().unwrap_or_default();
    if owner.is_empty() {
        return Ok(()); // written by a daemon of an older version: not this one's
    }
    if daemon_alive(owner) == Some(false) {
        println!("daemon {owner} is not running (its reload state is not shown)");
        return Ok(());
    }
    let errors: Vec<&serde_json::Value> = r["diagnostics"]
        .as_array()
        .map(|d| d.iter().filter(|x| x["severity"] == "error").collect())
        .unwrap_or_default();
    println!(
        "daemon {owner}, running since {}",
        when(&r["daemon_started"])
    );
    let what = if r["kind"] == "start" {
        "loaded at start"
    } else {
        "last reload"
    };
    println!(
        "{what}: {} — {}",
        when(&r["at"]),
        if r["applied"] == true {
            "applied"
        } else {
            "REJECTED (running the last good state)"
        }
    );
    for id in r["rejected"].as_array().into_iter().flatten() {
        println!(
            "  rejected workflow file: {} (its previous version keeps running)",
            id.as_str().unwrap_or("?")
        );
    }
    for f in r["not_loaded"].as_array().into_iter().flatten() {
        println!(
            "  workflow file not loaded: {} (fix it; the daemon loads it when it is saved)",
            f.as_str().unwrap_or("?")
        );
    }
    for d in errors {
        // Line 0 means "no position" (an unreadable file): never print `:0:0`.
        let pos = match d["loc"]["line"].as_u64() {
            Some(line) if line > 0 => format!(":{line}:{}", d["loc"]["column"]),
            _ => String::new(),
        };
        println!(
            "  error[{}]: {}{pos}: {}",
            d["code"].as_str().unwrap_or(""),
            d["file"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Whether the daemon named `host-pid` still runs: None when it is on another host (or the
/// name is not of that form) and cannot be checked from here.
fn daemon_alive(owner: &str) -> Option<bool> {
    let (host, pid) = owner.rsplit_once('-')?;
    let pid: i32 = pid.parse().ok()?;
    if host != this_host() || pid <= 0 {
        return None;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    Some(r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn this_host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// The secret that signs branch links: `YANZHEN_LINK_SECRET`, else one generated at first
/// start and kept in the database (so every daemon on a shared database agrees).
async fn link_signer(e: &Engine) -> anyhow::Result<crate::access::LinkSigner> {
    let secret = match std::env::var("YANZHEN_LINK_SECRET") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            e.store()
                .setting_or_insert("link_secret", &crate::access::LinkSigner::random_secret())
                .await?
        }
    };
    Ok(crate::access::LinkSigner::new(secret))
}

/// The setting `yanzhen reload` writes (a fresh token each time) for every daemon on the
/// database to see.
const RELOAD_REQUEST: &str = "reload_request";
/// Prefix of the settings by which each daemon says it took a reload request
/// (`reload_ack:OWNER` = the request's token).
const RELOAD_ACK: &str = "reload_ack:";
/// How often a daemon looks for a reload request.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long `yanzhen reload` waits for daemons to take its request.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// `yanzhen reload`: ask every daemon on the database, and report which took the request.
async fn reload_command(config: &Path, today: NaiveDate) -> anyhow::Result<ExitCode> {
    let cat = load_catalog(config, today, false)?;
    let url = database_url(&cat);
    let store = open_store(&url, false, Duration::from_secs(5)).await?;
    store.delete_settings_with_prefix(RELOAD_ACK).await?;
    let token = format!(
        "{}-{}",
        crate::engine::ms(chrono::Utc::now()),
        std::process::id()
    );
    store.put_setting(RELOAD_REQUEST, &token).await?;
    let started = std::time::Instant::now();
    let mut took: Vec<String> = Vec::new();
    // Every daemon looks within one poll interval; wait that long (plus a margin) after
    // the first answer, or the whole wait when nobody answers.
    while started.elapsed() < RELOAD_WAIT
        && (took.is_empty() || started.elapsed() < RELOAD_POLL * 2)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        took = store
            .settings_with_prefix(RELOAD_ACK)
            .await?
            .into_iter()
            .filter(|(_, v)| *v == token)
            .map(|(k, _)| k[RELOAD_ACK.len()..].to_string())
            .collect();
    }
    if took.is_empty() {
        bail!(
            "no daemon took the reload request within {} s: is `yanzhen serve` running on {}? (it reloads by itself when files change)",
            RELOAD_WAIT.as_secs(),
            redact(&url)
        );
    }
    println!(
        "reload requested; taken by {} daemon(s): {}; see the daemon log or `yanzhen status`",
        took.len(),
        took.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The `[notify]` settings `serve` cannot start with, as diagnostics of the config file
/// (also what `yanzhen validate` reports). `environment` problems (an unset password
/// variable) are errors only when `for_serve`.
pub fn notify_diagnostics(
    config_path: &Path,
    cfg: &crate::config::Config,
    for_serve: bool,
) -> Vec<crate::diagnostic::Diagnostic> {
    let text = std::fs::read_to_string(config_path).unwrap_or_default();
    let mut d = crate::diagnostic::Diagnostics::new(config_path.display().to_string());
    for p in crate::notify::outbox::config_problems(&cfg.notify) {
        let keys: Vec<&str> = p.key.iter().map(String::as_str).collect();
        let loc = crate::config::key_loc(&text, &keys);
        if p.environment && !for_serve {
            d.warning("invalid-config", loc, p.message, Some(p.hint));
        } else {
            d.error("invalid-config", loc, p.message, Some(p.hint));
        }
    }
    if cfg.pid_file.is_some() {
        d.warning(
            "deprecated",
            crate::config::key_loc(&text, &["pid_file"]),
            "pid_file is no longer used",
            Some("remove it: `yanzhen reload` asks every daemon through the database".into()),
        );
    }
    d.into_sorted()
}

async fn serve(config: &Path, today: NaiveDate) -> anyhow::Result<ExitCode> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("yanzhen_timer_lateness_seconds".into()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 60.0],
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
        .ok();
    // Everything that can refuse to start is checked before anything runs, and "serving"
    // is logged only once it all did.
    let (cat, load_diagnostics) = load_catalog_reporting(config, today, true)?;
    let problems = notify_diagnostics(config, &cat.config, true);
    for d in &problems {
        match d.severity {
            Severity::Error => tracing::error!("{d}"),
            Severity::Warning => tracing::warn!("{d}"),
        }
    }
    if problems.iter().any(|d| d.severity == Severity::Error) {
        bail!("the [notify] settings cannot work (see the errors above); run `yanzhen validate`");
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    // The HTTP server comes first, so that /healthz answers (and /readyz says why not
    // ready) while the database is still unreachable.
    let bind = cat.config.http.bind.clone();
    let (http, switch) = if bind.is_empty() {
        (None, None)
    } else {
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind} ([http] bind in the config)"))?;
        let switch = crate::api::Switch::starting("opening the database");
        let mut stop = rx.clone();
        let server = tokio::spawn(crate::api::serve_switch(
            listener,
            switch.clone(),
            async move {
                let _ = stop.wait_for(|v| *v).await;
            },
        ));
        (Some(server), Some(switch))
    };
    let url = database_url(&cat);
    let report = |why: String| {
        if let Some(s) = &switch {
            s.set_reason(why);
        }
    };
    let store =
        open_store_reporting(&url, true, Duration::from_secs(u64::MAX / 4), &report).await?;
    let e = engine_on(store, cat).await?;
    let signer = link_signer(&e).await?;
    e.set_link_signer(signer.clone());
    e.record_start(load_diagnostics).await;
    e.ensure_kickoffs().await?;
    // A holiday file may have been added while no daemon ran.
    e.reproject_kickoffs().await?;
    e.reproject_provisional_rounds().await?;
    e.ensure_calendar_notice().await?;
    let mut outbox =
        crate::notify::outbox::Outbox::new(e.clone(), e.catalog().config.notify.clone())?;
    if let Some(ms) = std::env::var("YANZHEN_DIGEST_WINDOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        outbox = outbox.with_digest_window_ms(ms);
    }
    let outbox = Arc::new(outbox);
    let reload_seen = e.store().setting(RELOAD_REQUEST).await?;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    let sender = tokio::spawn(outbox.run(rx.clone()));
    if let Some(s) = &switch {
        s.ready(Arc::new(crate::api::AppState {
            engine: e.clone(),
            links: signer,
            metrics,
            config_path: config.to_path_buf(),
        }));
    }
    let reloader = tokio::spawn(reload_loop(
        e.clone(),
        config.to_path_buf(),
        reload_seen,
        rx.clone(),
    ));
    tracing::info!(
        backend = e.store().backend(),
        workflows = e.catalog().workflows.len(),
        "yanzhen serving"
    );
    crate::scheduler::run(e.clone(), rx).await;
    let _ = sender.await;
    let _ = reloader.await;
    e.forget_reload_state().await;
    if let Some(h) = http {
        match h.await {
            Ok(Err(err)) => tracing::error!(error = %err, "http server failed"),
            Err(err) => tracing::error!(error = %err, "http server task failed"),
            Ok(Ok(())) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Reload on SIGHUP, when watched files change, and when `yanzhen reload` asks through the
/// database (`seen`: the request already there at start-up), until shutdown.
fn reload_loop(
    e: Arc<Engine>,
    config: std::path::PathBuf,
    mut seen: Option<String>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> {
    // The watcher and the SIGHUP handler are installed before this returns, i.e. before
    // the daemon reports itself started: an edit or a SIGHUP right after start must not be
    // missed (an unhandled SIGHUP would even end the process).
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let cat = e.catalog();
    let mut paths = vec![
        cat.config.workflows_dir.clone(),
        cat.config.calendar_dir.clone(),
    ];
    if let Some(dir) = cat.config.directory.parent() {
        paths.push(if dir.as_os_str().is_empty() {
            ".".into()
        } else {
            dir.to_path_buf()
        });
    }
    let watcher = match crate::reload::watch(&paths, tx) {
        Ok(w) => Some(w),
        Err(err) => {
            tracing::warn!(error = %err, "file watching unavailable; reload with SIGHUP or `yanzhen reload`");
            None
        }
    };
    let mut hup = signal(SignalKind::hangup()).ok();
    async move {
        let _keep_watching = watcher;
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(()) = changed.recv() => {
                    while changed.try_recv().is_ok() {}
                    tracing::info!("files changed; reloading");
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP; reloading");
                }
                _ = poll.tick() => {
                    let asked = match e.store().setting(RELOAD_REQUEST).await {
                        Ok(v) => v,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot read reload requests");
                            continue;
                        }
                    };
                    if asked.is_none() || asked == seen {
                        continue;
                    }
                    seen = asked;
                    let token = seen.clone().unwrap_or_default();
                    let ack = format!("{RELOAD_ACK}{}", e.owner());
                    if let Err(err) = e.store().put_setting(&ack, &token).await {
                        tracing::warn!(error = %err, "cannot acknowledge the reload request");
                    }
                    tracing::info!("reload requested through the database (`yanzhen reload`); reloading");
                }
            }
            e.reload(&config).await;
        }
    }
}
