//! The commands that act on the database (`round`, `task`, `status`, `reload`, `token`,
//! `workflow`, `feed`, `simulate`) and `serve`, on top of [`crate::runtime::daemon`].

use super::{
    Command, Format, LinkCommand, RoundCommand, TaskCommand, TokenCommand, WorkflowCommand,
};
use crate::core::timefmt::{provisional_mark, zh_datetime};
use crate::engine::{Engine, StartRound, from_ms};
use crate::runtime::daemon::{
    RELOAD_ACK, RELOAD_POLL, RELOAD_REQUEST, RELOAD_WAIT, database_url, engine, load_catalog,
    open_store, read_only_engine, redact, serve, this_host,
};
use anyhow::{Context as _, bail};
use chrono::NaiveDate;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Run one of the async commands.
pub async fn run_command(
    config: &Path,
    cmd: Command,
    today: NaiveDate,
) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve => serve(config, today).await,
        Command::Pool(c) => super::pool::pool_command(config, *c, today).await,
        Command::Event(c) => super::pool::event_command(config, c, today).await,
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
        Command::Round(RoundCommand::AddPerson {
            round,
            person,
            dry_run,
        }) => super::person::add_person(config, today, round, &person, dry_run).await,
        Command::Round(RoundCommand::Archive { round, out }) => {
            let e = engine(config, today, false).await?;
            let files = crate::files::Files::open(&e.catalog().config.files, Path::new("."))?;
            let out = out.unwrap_or_else(|| std::path::PathBuf::from(format!("round-{round}.zip")));
            let tz = e.catalog().config.tz();
            let a =
                crate::archive::write_round_archive(e.store().as_ref(), &files, round, tz, &out)
                    .await?;
            e.store()
                .append_audit(crate::store::AuditEntry {
                    at: e.clock().now().timestamp_millis(),
                    actor: "cli".into(),
                    action: "round.archive".into(),
                    subject: format!("round:{round}"),
                    detail_json: serde_json::json!({"out": out.display().to_string(), "files": a.files, "bytes": a.bytes, "rows": a.rows}).to_string(),
                })
                .await?;
            println!(
                "{}: {} file(s), {} bytes, {} summary row(s)",
                out.display(),
                a.files,
                a.bytes,
                a.rows
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Round(RoundCommand::DeleteFiles { round, yes }) => {
            let e = engine(config, today, false).await?;
            let files = crate::files::Files::open(&e.catalog().config.files, Path::new("."))?;
            let plan = crate::files::round_files(e.store().as_ref(), round).await?;
            let bytes: u64 = plan.iter().map(|f| f.size).sum();
            if !yes {
                println!(
                    "round {round}: {} file(s), {bytes} bytes would be deleted; run again with --yes",
                    plan.len()
                );
                return Ok(ExitCode::from(2));
            }
            let n = crate::files::delete_round_files(
                e.store().as_ref(),
                &files,
                round,
                "cli",
                e.clock().now(),
            )
            .await?;
            println!(
                "round {round}: {n} file(s) deleted ({bytes} bytes); recorded in the audit log"
            );
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
            let changes = crate::engine::reproject::diff_plans(&pa, &pb);
            let texts = crate::engine::reproject::diff_texts(
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
        Command::Token(t) => token_command(config, today, t).await,
        Command::Link(l) => link_command(config, today, l).await,
        Command::Feed { unit } => {
            let e = engine(config, today, false).await?;
            print!("{}", crate::notify::ics::unit_feed(&e, &unit).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { round } => status(config, today, round).await,
        Command::Simulate { scenario, format } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("reading {}", scenario.display()))?;
            let cat = load_catalog(config, today, false)?;
            let (sc, d) =
                crate::runtime::simulate::load(&scenario.display().to_string(), &text, &cat);
            let Some(sc) = sc else {
                crate::cli::report(&d.into_sorted(), Format::Text);
                return Ok(ExitCode::from(1));
            };
            for w in d.items() {
                eprintln!("{w}");
            }
            let tz = cat.config.tz();
            let effects = crate::runtime::simulate::run(&sc, cat).await?;
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
                    t.id,
                    t.state.as_str(),
                    t.key,
                    t.assignee_name,
                    due
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
            .filter(|r| r.status == crate::core::state::RoundStatus::Running)
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
                t.kind.as_str(),
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
    for k in kickoffs.iter().filter(|k| {
        k.state == crate::core::state::TimerState::Pending && !k.key.contains(":retry:")
    }) {
        println!(
            "next kickoff: {}{}  {}",
            fmt(Some(from_ms(k.due_at))),
            provisional_mark(e.kickoff_is_provisional(k)),
            k.key
        );
    }
    let cat = e.catalog();
    if let Some(notice) = crate::engine::provisional::missing_file_notice(
        &cat.calendar,
        &cat.config.calendar_dir,
        today,
    ) {
        println!("calendar: {notice}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The running daemon's reload state (its load at start-up, or its last reload). A state
/// left by a daemon that no longer runs (on this host) is not shown as current.
async fn print_reload_state(e: &Engine) -> anyhow::Result<()> {
    let Some(text) = e
        .store()
        .setting(crate::runtime::reload::RELOAD_STATE)
        .await?
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    let r = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(r) => r,
        Err(e) => {
            println!("reload state: stored setting does not parse ({e}): {text}");
            return Ok(());
        }
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

/// `yanzhen token create | list | revoke`.
async fn token_command(
    config: &Path,
    today: NaiveDate,
    cmd: TokenCommand,
) -> anyhow::Result<ExitCode> {
    let e = engine(config, today, false).await?;
    let now = chrono::Utc::now();
    let now_ms = crate::engine::ms(now);
    let tz = e.catalog().config.tz();
    let when = |ms: Option<i64>| {
        ms.map(|m| zh_datetime(&from_ms(m).with_timezone(&tz)))
            .unwrap_or_else(|| "-".into())
    };
    match cmd {
        TokenCommand::Create {
            name,
            read_only,
            expires,
            days,
        } => {
            crate::access::check_token_name(&name)?;
            let rights = if read_only {
                crate::core::state::Rights::Read
            } else {
                crate::core::state::Rights::Admin
            };
            let expires_at = match (expires, days) {
                // Accepted through that whole day in the office's time zone.
                (Some(d), _) => {
                    let next = d
                        .succ_opt()
                        .and_then(|n| n.and_hms_opt(0, 0, 0))
                        .context("expiry date out of range")?;
                    let at = chrono::TimeZone::from_local_datetime(&tz, &next)
                        .earliest()
                        .context("expiry date does not exist in the office's time zone")?;
                    Some(crate::engine::ms(at.with_timezone(&chrono::Utc)))
                }
                (None, Some(n)) => Some(now_ms.saturating_add(i64::from(n) * 86_400_000)),
                (None, None) => None,
            };
            if expires_at.is_some_and(|x| x <= now_ms) {
                bail!("the expiry must be in the future");
            }
            let token = crate::access::create_token(
                e.store().as_ref(),
                &name,
                rights,
                expires_at,
                "cli",
                now_ms,
            )
            .await?;
            let until = expires_at
                .map(|x| format!(", accepted until {}", when(Some(x))))
                .unwrap_or_default();
            eprintln!("token `{name}` ({rights}{until}) created; it is shown once, store it now:");
            println!("{token}");
        }
        TokenCommand::List => {
            let tokens = e.store().tokens().await?;
            if tokens.is_empty() {
                eprintln!("no tokens; create one with `yanzhen token create NAME`");
            }
            println!("NAME\tRIGHTS\tCREATED\tEXPIRES\tREVOKED\tLAST USED\tSTATE");
            for t in tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expired(now_ms) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.name,
                    t.rights,
                    when(Some(t.created_at)),
                    when(t.expires_at),
                    when(t.revoked_at),
                    when(t.last_used_at),
                    state
                );
            }
        }
        TokenCommand::Revoke { name } => {
            if !crate::access::revoke_token(e.store().as_ref(), &name, "cli", now_ms).await? {
                bail!("no active token named `{name}` (see `yanzhen token list`)");
            }
            eprintln!("token `{name}` revoked; its console sessions have ended");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `yanzhen link task | unit | feed`: a signed link, audited as `link.mint` by `cli`.
async fn link_command(
    config: &Path,
    today: NaiveDate,
    cmd: LinkCommand,
) -> anyhow::Result<ExitCode> {
    use crate::access::{Grant, LinkSigner};
    let e = engine(config, today, false).await?;
    let Some(base) = e.catalog().config.notify.link_base.clone() else {
        bail!(
            "`notify.link_base` is not set in the config: links need the address branches reach the server at"
        );
    };
    let secret = match std::env::var("YANZHEN_LINK_SECRET").ok().filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => e.store().setting("link_secret").await?.context(
            "no link secret yet: start `yanzhen serve` once (it makes one), or set YANZHEN_LINK_SECRET",
        )?,
    };
    let (grant, days) = match cmd {
        LinkCommand::Task { id, days } => {
            let task = e
                .store()
                .task(id)
                .await?
                .with_context(|| format!("no task {id}"))?;
            if task.assignee_kind != crate::core::state::AssigneeKind::Unit {
                bail!("task {id} is assigned to a role, not a unit: it has no branch link");
            }
            (
                Grant::Task {
                    unit: task.assignee_id,
                    task: id,
                },
                days,
            )
        }
        LinkCommand::Unit { unit, days } => (Grant::Unit { unit }, days),
        LinkCommand::Feed { unit, days } => (Grant::Feed { unit }, days),
    };
    if e.catalog().directory.unit(grant.unit()).is_none() {
        bail!("no unit `{}` in the directory", grant.unit());
    }
    let now = chrono::Utc::now();
    let expires = now.timestamp() + i64::from(days.max(1)) * 86_400;
    e.store()
        .append_audit(crate::store::AuditEntry {
            at: crate::engine::ms(now),
            actor: "cli".into(),
            action: "link.mint".into(),
            subject: grant.scope(),
            detail_json: serde_json::json!({"unit": grant.unit(), "scope": grant.scope(), "expires": expires})
                .to_string(),
        })
        .await?;
    let path = LinkSigner::new(secret).link(&grant, expires);
    println!("{}{path}", base.trim_end_matches('/'));
    Ok(ExitCode::SUCCESS)
}
