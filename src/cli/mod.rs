//! The command line: `validate`, `schema`, `plan`.
//!
//! The clock is read here (the edge) and passed into the pure core.

mod commands;
mod person;
mod pool;

pub use pool::{EventCommand, PersonArgs, PoolCommand};

use crate::catalog;
use crate::core::diagnostic::{Diagnostic, Severity};
use crate::core::plan::{PlanInput, plan};
use crate::core::validate::{Context, default_start, workflow_tz};
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// yanzhen (雁阵): schedules, reminds and escalates reserve-cadre selection rounds.
#[derive(Debug, Parser)]
#[command(name = "yanzhen", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/yanzhen.toml",
        env = "YANZHEN_CONFIG"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files (default: the configured folder), the directory and the calendar.
    Validate {
        /// Workflow files or folders.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON schema of workflow files.
    Schema,
    /// Show the whole dated timeline of a round without running it.
    Plan {
        /// Workflow id (from the configured folder) or path to a workflow file.
        workflow: String,
        /// Round start date YYYY-MM-DD (default: the workflow's example_start or next kickoff).
        #[arg(long)]
        start: Option<NaiveDate>,
        /// Parameter value, `name=value`; repeatable.
        #[arg(long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Only these branches take part (comma-separated unit ids); every department and
        /// role still gets its tasks unless `--only-listed`.
        #[arg(long, value_delimiter = ',')]
        branches: Option<Vec<String>>,
        /// With `--branches`: leave out the departments not listed too.
        #[arg(long, requires = "branches")]
        only_listed: bool,
        /// A roster (.xlsx or .csv, the pool's import format) whose people in the pool get
        /// the tasks made per person (`assignee: {each: reserve}`); they are numbered
        /// p1, p2 … in file order. Without it such tasks are not listed.
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the daemon: scheduler loop over the configured database until SIGINT/SIGTERM.
    Serve,
    /// Start and list rounds.
    #[command(subcommand)]
    Round(RoundCommand),
    /// List, complete, waive and reopen tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Progress per stage, overdue tasks and what fires next (all running rounds, or one).
    Status {
        /// Round id.
        round: Option<i64>,
    },
    /// API/console tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Make a signed branch link (audited as `link.mint` by `cli`); needs `notify.link_base`
    /// and the daemon's link secret (in the database after its first start, or
    /// `YANZHEN_LINK_SECRET`).
    #[command(subcommand)]
    Link(LinkCommand),
    /// Workflow versions and their differences.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Ask every daemon on the database to reload config, directory, calendar and workflows
    /// (through the database; reports which daemons took the request).
    Reload,
    /// Print a unit's deadlines as an iCalendar (.ics) feed.
    Feed {
        /// Unit id (a branch or department in the directory).
        unit: String,
    },
    /// The reserve pool (后备干部库): people, roster import and export.
    #[command(subcommand)]
    Pool(Box<PoolCommand>),
    /// Events about people (a job change, an assessment …) that workflows declare.
    #[command(subcommand)]
    Event(EventCommand),
    /// Run a round from date A to date B under a virtual clock and print every effect.
    Simulate {
        /// Scenario file (YAML).
        scenario: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Round commands.
#[derive(Debug, Subcommand)]
pub enum RoundCommand {
    /// Start a round now: its tasks and timers are written in one transaction.
    Start {
        /// Workflow id.
        workflow: String,
        /// Start date YYYY-MM-DD.
        #[arg(long)]
        start: NaiveDate,
        /// Parameter value, `name=value`; repeatable.
        #[arg(long = "param", value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// Only these branches take part (comma-separated unit ids); every department and
        /// role still gets its tasks unless `--only-listed`.
        #[arg(long, value_delimiter = ',')]
        branches: Option<Vec<String>>,
        /// With `--branches`: leave out the departments not listed too.
        #[arg(long, requires = "branches")]
        only_listed: bool,
    },
    /// List rounds.
    List,
    /// Move a running round to another version of its workflow: what moves, appears or
    /// vanishes per assignee, and which titles, descriptions and templates change; applied
    /// atomically without `--dry-run`.
    Migrate {
        /// Round id.
        round: i64,
        /// Target version number (see `yanzhen workflow versions ID`); default the newest.
        #[arg(long)]
        to: Option<i64>,
        /// Only show the impact.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add a unit of the directory to a running round: it gets its tasks and timers.
    AddBranch {
        /// Round id.
        round: i64,
        /// Unit id.
        unit: String,
    },
    /// Add a person of the pool to a running round: they get the round's tasks made per
    /// person (`assignee: {each: reserve}`) that their tier and branch qualify for.
    AddPerson {
        /// Round id.
        round: i64,
        /// Person id, or a name only one person in the pool has.
        person: String,
        /// Only show what would be added.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the round's archive: a zip with a folder per branch (its files, named by
    /// task) and `汇总.xlsx`. Audited (`round.archive`).
    Archive {
        /// Round id.
        round: i64,
        /// Where to write it (default `round-ROUND.zip`).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Delete the files branches handed in for a round (from `[files]`); the submissions'
    /// records stay. Without `--yes` only says what would go. Audited (`round.delete_files`).
    DeleteFiles {
        /// Round id.
        round: i64,
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

/// Link commands: what the link grants.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// One task's page and marking it done.
    Task {
        /// Task id.
        id: i64,
        /// Days the link is valid.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// A unit's page (its open tasks and their links).
    Unit {
        /// Unit id.
        unit: String,
        /// Days the link is valid.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// A unit's calendar feed, read only (for calendar subscriptions).
    Feed {
        /// Unit id.
        unit: String,
        /// Days the link is valid.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (printed once; only its hash is kept).
    Create {
        /// Token name (who holds it), e.g. `zzb-ma`.
        name: String,
        /// A token that may only read.
        #[arg(long)]
        read_only: bool,
        /// Last day the token is accepted (YYYY-MM-DD, in the office's time zone).
        #[arg(long, value_name = "DATE", conflicts_with = "days")]
        expires: Option<NaiveDate>,
        /// Days from now the token is accepted.
        #[arg(long, value_name = "N")]
        days: Option<u32>,
    },
    /// List tokens: name, rights, created, expires, revoked, last used.
    List,
    /// Revoke a token; the console sessions signed in with it end at once.
    Revoke {
        /// Token name.
        name: String,
    },
}

/// Workflow commands.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Stored versions of a workflow.
    Versions {
        /// Workflow id.
        id: String,
    },
    /// What changed between two versions (default: the two newest): stages, deadlines,
    /// reminders and escalation chains, as dated at the newer version's example start, and
    /// titles, descriptions and message templates.
    Diff {
        /// Workflow id.
        id: String,
        /// Older version number.
        v1: Option<i64>,
        /// Newer version number.
        v2: Option<i64>,
    },
}

/// Task commands.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List the tasks of a round.
    List {
        /// Round id.
        round: i64,
    },
    /// Mark a task done: reminders and escalations stop; tasks waiting on it start.
    Complete {
        /// Task id.
        id: i64,
        /// Note for the history.
        #[arg(long)]
        note: Option<String>,
    },
    /// Excuse a task.
    Waive {
        /// Task id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Reopen a done or waived task with a new deadline (default: the workflow's
    /// `defaults.reopen_working_days`, 5, working days from today); its reminders and
    /// escalations are planned again from it.
    Reopen {
        /// Task id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// New deadline, YYYY-MM-DD (at the task's time of day) or YYYY-MM-DDTHH:MM.
        #[arg(long, value_parser = parse_deadline, conflicts_with = "in_working_days")]
        due: Option<crate::engine::NewDeadline>,
        /// New deadline: this many working days from today.
        #[arg(long = "in", value_name = "N")]
        in_working_days: Option<u32>,
    },
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

fn parse_deadline(s: &str) -> Result<crate::engine::NewDeadline, String> {
    crate::engine::NewDeadline::parse_date(s)
        .ok_or_else(|| format!("`{s}` is not YYYY-MM-DD or YYYY-MM-DDTHH:MM"))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not name=value")),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = std::env::var("YANZHEN_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("YANZHEN_LOG").unwrap_or_else(|_| {
                // The daemon narrates what it does; one-shot commands print their result only.
                if matches!(cli.command, Command::Serve) {
                    "info"
                } else {
                    "warn"
                }
                .into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // JSON lines for log collectors; the human format otherwise.
    if json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    // "Today" is a date in the office's time zone; the core never reads the clock itself.
    let tz = crate::config::Config::load(
        &cli.config,
        &mut crate::core::diagnostic::Diagnostics::new(""),
    )
    .map(|c| c.tz())
    .unwrap_or(chrono_tz::Asia::Shanghai);
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    match cli.command {
        Command::Schema => {
            println!("{}", schema_json());
            ExitCode::SUCCESS
        }
        Command::Validate { paths, format } => validate(&cli.config, &paths, format, today),
        Command::Plan {
            workflow,
            start,
            params,
            branches,
            only_listed,
            roster,
            format,
        } => plan_cmd(
            &cli.config,
            &workflow,
            start,
            params,
            branches.map(|b| (b, only_listed)),
            roster.as_deref(),
            format,
            today,
        ),
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(commands::run_command(&cli.config, other, today)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// The JSON schema of workflow files, pretty-printed.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(crate::core::definition::Workflow);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

pub(crate) fn report(diags: &[Diagnostic], format: Format) {
    match format {
        Format::Text => {
            for d in diags {
                eprintln!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            let warnings = diags.len() - errors;
            eprintln!("{errors} error(s), {warnings} warning(s)");
        }
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(diags).unwrap_or_default()
            );
        }
    }
}

fn validate(
    config: &std::path::Path,
    paths: &[PathBuf],
    format: Format,
    today: NaiveDate,
) -> ExitCode {
    let (base, mut diags) = catalog::load_base(config);
    if let Some((cfg, dir, cal)) = base {
        diags.extend(catalog::calendar_diagnostics(&cfg, &cal, today));
        // What `serve` would refuse in [notify] is an error here too.
        diags.extend(crate::runtime::daemon::notify_diagnostics(
            config, &cfg, false,
        ));
        let paths = if paths.is_empty() {
            vec![cfg.workflows_dir.clone()]
        } else {
            paths.to_vec()
        };
        match catalog::workflow_files(&paths) {
            Ok(files) => {
                let (wfs, d) = catalog::load_workflows(&files, &cfg, &dir, &cal, today);
                diags.extend(d);
                if format == Format::Text {
                    for w in wfs.values() {
                        eprintln!("ok: {} ({})", w.path.display(), w.workflow.id.value);
                    }
                }
            }
            Err(d) => diags.push(d),
        }
    }
    report(&diags, format);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_cmd(
    config: &std::path::Path,
    workflow: &str,
    start: Option<NaiveDate>,
    params: Vec<(String, String)>,
    branches: Option<(Vec<String>, bool)>,
    roster: Option<&std::path::Path>,
    format: Format,
    today: NaiveDate,
) -> ExitCode {
    let (base, mut diags) = catalog::load_base(config);
    let Some((cfg, dir, cal)) = base else {
        report(&diags, Format::Text);
        return ExitCode::from(1);
    };
    let as_path = PathBuf::from(workflow);
    let files = if as_path.is_file() {
        vec![as_path]
    } else {
        catalog::workflow_files(std::slice::from_ref(&cfg.workflows_dir)).unwrap_or_default()
    };
    let (wfs, d) = catalog::load_workflows(&files, &cfg, &dir, &cal, today);
    let loaded = wfs
        .values()
        .find(|w| w.workflow.id.value == workflow || w.path == std::path::Path::new(workflow));
    let Some(loaded) = loaded else {
        diags.extend(d);
        let ids: Vec<&str> = wfs.keys().map(String::as_str).collect();
        if diags.iter().any(|d| d.severity == Severity::Error) {
            report(&diags, Format::Text);
        }
        eprintln!(
            "error: no valid workflow `{workflow}`; {}",
            crate::core::diagnostic::suggest(workflow, ids.iter().copied())
        );
        return ExitCode::from(1);
    };
    let wf = &loaded.workflow;
    let ctx = Context {
        directory: &dir,
        calendar: &cal,
        default_tz: cfg.tz(),
        today,
    };
    let start = start.unwrap_or_else(|| default_start(wf, ctx));
    let params: BTreeMap<String, String> = params.into_iter().collect();
    let units = match branches {
        Some((listed, only_listed)) => {
            let unknown = dir.unknown_units(&listed);
            for (id, hint) in &unknown {
                eprintln!("error: --branches: no unit `{id}` in the directory\n  hint: {hint}");
            }
            if !unknown.is_empty() {
                return ExitCode::from(1);
            }
            Some(dir.round_units(&listed, only_listed))
        }
        None => None,
    };
    let people = match roster {
        Some(path) => match crate::cli::person::roster_people(path, &cfg, &dir, today) {
            Ok(mut people) => {
                if let Some(only) = &units {
                    people.retain(|p| only.contains(&p.unit));
                }
                Some(people)
            }
            Err(e) => {
                eprintln!("error: --roster {}: {e}", path.display());
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let (plan, problems) = plan(PlanInput {
        workflow: wf,
        directory: &dir,
        calendar: &cal,
        tz: workflow_tz(wf, cfg.tz()),
        start,
        params: &params,
        units: units.as_deref(),
        done: None,
        events: None,
        people: people.as_deref(),
    });
    let mut pd = crate::core::diagnostic::Diagnostics::new(loaded.path.display().to_string());
    for p in problems {
        match p.severity {
            Severity::Error => pd.error(p.code, p.loc, p.message, p.hint),
            Severity::Warning => pd.warning(p.code, p.loc, p.message, p.hint),
        }
    }
    let pd = pd.into_sorted();
    for d in &pd {
        eprintln!("{d}");
    }
    match plan {
        Some(plan) => {
            match format {
                Format::Text => print!("{}", plan.to_table()),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                ),
            }
            ExitCode::SUCCESS
        }
        None => ExitCode::from(1),
    }
}
