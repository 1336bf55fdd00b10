//! `yanzhen pool ...` (the reserve pool: list, show, add, edit, remove, import, export) and
//! `yanzhen event ...` (record and list events about people), over [`crate::pool::Pool`].

use super::Format;
use crate::core::pool::{Field, Tier};
use crate::pool::{Pool, PoolError};
use crate::runtime::daemon::engine;
use crate::store::{EventFilter, PeopleFilter};
use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Pool commands.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// List the people in the pool (by unit, tier and name).
    List {
        /// Only this unit (id or name).
        #[arg(long)]
        unit: Option<String>,
        /// Only this tier (1 to 4).
        #[arg(long)]
        tier: Option<u8>,
        /// Removed people (调整出库) too.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// One person's record and the history of its edits.
    Show {
        /// Person id.
        id: i64,
    },
    /// Add a person (name, unit, tier and birth are required).
    Add(PersonArgs),
    /// Change fields of a person; an empty value clears an optional field.
    Edit {
        /// Person id.
        id: i64,
        /// The fields to change.
        #[command(flatten)]
        fields: PersonArgs,
    },
    /// 调整出库: take a person out of the pool.
    Remove {
        /// Person id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// When, YYYY-MM-DD (default today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Import a roster (.xlsx or .csv with the offices' Chinese headings).
    Import {
        /// The file.
        file: PathBuf,
        /// Import the good rows and list the bad ones instead of importing nothing.
        #[arg(long)]
        skip_bad: bool,
        /// Check and count only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// 库况检查: check every branch against the seeds' rules in `[pool.rules]`; exit status 1
    /// when any rule is broken.
    Check {
        /// The check date, YYYY-MM-DD (ages are computed on it; default today).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The counting rules (`counts:` of the loaded workflows, e.g. talks at least twice a
    /// year): who in the pool is short in a year; exit status 1 when anybody is.
    Counts {
        /// The year (default this year).
        #[arg(long)]
        year: Option<i32>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Export the pool as .xlsx: a summary sheet and one sheet per branch.
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// Assessment results (考核等次) by year, branch and name.
    Results {
        /// Only this year.
        #[arg(long)]
        year: Option<i32>,
        /// Only this unit (id or name).
        #[arg(long)]
        unit: Option<String>,
        /// Only the 优先使用 list (the ratings the workflow's `priority` names).
        #[arg(long)]
        priority: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// A person's fields as flags.
#[derive(Debug, Args, Default)]
pub struct PersonArgs {
    /// 姓名.
    #[arg(long)]
    name: Option<String>,
    /// 所在单位: a unit id or name of the directory.
    #[arg(long)]
    unit: Option<String>,
    /// 梯队: 1 to 4 or the office's name.
    #[arg(long)]
    tier: Option<String>,
    /// 正职 or 副职.
    #[arg(long)]
    post_track: Option<String>,
    /// 现任职务.
    #[arg(long)]
    current_post: Option<String>,
    /// 男 or 女.
    #[arg(long)]
    gender: Option<String>,
    /// 出生年月: 1990.05, 1990-05-01 …
    #[arg(long)]
    birth: Option<String>,
    /// 学历.
    #[arg(long)]
    education: Option<String>,
    /// 入库时间 (default today).
    #[arg(long)]
    joined_at: Option<String>,
    /// 任期开始 (default the day joined).
    #[arg(long)]
    term_start: Option<String>,
    /// 任期结束 (default two years after the start).
    #[arg(long)]
    term_end: Option<String>,
    /// 引路人.
    #[arg(long)]
    mentor: Option<String>,
    /// 联系电话.
    #[arg(long)]
    phone: Option<String>,
    /// 电子邮箱.
    #[arg(long)]
    email: Option<String>,
    /// 备注.
    #[arg(long)]
    note: Option<String>,
}

impl PersonArgs {
    fn fields(self) -> Vec<(Field, String)> {
        [
            (Field::Name, self.name),
            (Field::Unit, self.unit),
            (Field::Tier, self.tier),
            (Field::PostTrack, self.post_track),
            (Field::CurrentPost, self.current_post),
            (Field::Gender, self.gender),
            (Field::Birth, self.birth),
            (Field::Education, self.education),
            (Field::JoinedAt, self.joined_at),
            (Field::TermStart, self.term_start),
            (Field::TermEnd, self.term_end),
            (Field::Mentor, self.mentor),
            (Field::Phone, self.phone),
            (Field::Email, self.email),
            (Field::Note, self.note),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v)))
        .collect()
    }
}

/// Event commands.
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Record an event about a person (a kind a loaded workflow declares, by id or title).
    Record {
        /// Person id, or a name only one person has.
        person: String,
        /// Event kind, e.g. `job_change` or 调整岗位.
        kind: String,
        /// When it happened, YYYY-MM-DD.
        #[arg(long)]
        date: NaiveDate,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// List recorded events.
    List {
        /// Of one person (id or unique name).
        #[arg(long)]
        person: Option<String>,
        /// Of one kind.
        #[arg(long)]
        kind: Option<String>,
        /// In one year.
        #[arg(long)]
        year: Option<i32>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// A pool failure as the CLI reports it: every refused field or bad row on its own line.
fn fail(e: PoolError) -> anyhow::Error {
    match e {
        PoolError::Invalid(errors) => {
            for (f, r) in &errors {
                eprintln!(
                    "error: {} (--{}): {}",
                    f.heading(),
                    f.key().replace('_', "-"),
                    r
                );
            }
            anyhow::anyhow!("{} field(s) refused; nothing changed", errors.len())
        }
        PoolError::BadRoster(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::anyhow!(
                "{} problem(s) in the roster; nothing was imported (--skip-bad imports the good rows)",
                problems.len()
            )
        }
        other => other.into(),
    }
}

/// Run a pool command.
pub async fn pool_command(
    config: &Path,
    cmd: PoolCommand,
    today: NaiveDate,
) -> anyhow::Result<ExitCode> {
    let e = engine(config, today, false).await?;
    let pool = Pool::new(&e);
    let dir = &pool.catalog().directory;
    match cmd {
        PoolCommand::Results {
            year,
            unit,
            priority,
            format,
        } => {
            let unit = match unit {
                Some(u) => Some(
                    crate::core::pool::unit_id(dir, &u)
                        .with_context(|| format!("no unit `{u}` in the directory"))?,
                ),
                None => None,
            };
            let rows = e
                .store()
                .results(&crate::store::ResultFilter {
                    year,
                    unit,
                    person: None,
                    priority_only: priority,
                })
                .await?;
            match format {
                Format::Json => {
                    let list: Vec<_> = rows.iter().map(crate::api::results::result_json).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    for r in &rows {
                        let unit = dir
                            .unit(&r.unit)
                            .map_or(r.unit.as_str(), |u| u.name.as_str());
                        let mark = if r.failing != 0 {
                            "  不合格"
                        } else if r.priority != 0 {
                            "  优先使用"
                        } else {
                            ""
                        };
                        println!(
                            "{}  {:>5}  {}  {}  {}{mark}",
                            r.year, r.person_id, r.name, unit, r.rating
                        );
                    }
                    eprintln!("{} result(s)", rows.len());
                }
            }
        }
        PoolCommand::List {
            unit,
            tier,
            all,
            format,
        } => {
            let unit = match unit {
                Some(u) => Some(
                    crate::core::pool::unit_id(dir, &u)
                        .with_context(|| format!("no unit `{u}` in the directory"))?,
                ),
                None => None,
            };
            let tier = tier
                .map(Tier::try_from)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let rows = pool
                .list(&PeopleFilter {
                    unit,
                    tier,
                    include_removed: all,
                })
                .await
                .map_err(fail)?;
            match format {
                Format::Json => {
                    let list: Vec<_> = rows.iter().map(|r| pool.person_json(r)).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    for r in &rows {
                        let p = &r.person;
                        println!(
                            "{:>5}  {}  {}  {}  {}  {}  任期至 {}{}",
                            r.id,
                            p.name,
                            p.text(Field::Unit, dir, pool.tiers()),
                            pool.tiers().name(p.tier),
                            p.post_track.map(|t| t.zh()).unwrap_or("-"),
                            p.current_post.as_deref().unwrap_or("-"),
                            p.text(Field::TermEnd, dir, pool.tiers()),
                            if p.status == crate::core::pool::PersonStatus::Removed {
                                "  （调整出库）"
                            } else {
                                ""
                            }
                        );
                    }
                    eprintln!("{} person(s)", rows.len());
                }
            }
        }
        PoolCommand::Check { date, format } => {
            let report = pool.check(date).await.map_err(fail)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Text => print!("{}", report.to_zh()),
            }
            if !report.ok() {
                return Ok(ExitCode::from(1));
            }
        }
        PoolCommand::Counts { year, format } => {
            return super::person::counts(
                &e,
                year.unwrap_or_else(|| chrono::Datelike::year(&today)),
                format,
            )
            .await;
        }
        PoolCommand::Show { id } => {
            let r = pool.get(id).await.map_err(fail)?;
            println!("id: {}", r.id);
            for f in Field::all() {
                let v = r.person.text(*f, dir, pool.tiers());
                if !v.is_empty() {
                    println!("{}: {v}", f.heading());
                }
            }
            let history = e.store().person_audit(id).await?;
            if !history.is_empty() {
                println!("\n历史:");
                let tz = pool.catalog().config.tz();
                for a in history {
                    println!(
                        "  {}  {}  {}  {}",
                        crate::core::timefmt::zh_datetime(
                            &crate::engine::from_ms(a.entry.at).with_timezone(&tz)
                        ),
                        a.entry.action,
                        a.entry.actor,
                        a.entry.detail_json
                    );
                }
            }
        }
        PoolCommand::Add(args) => {
            let r = pool.add(&args.fields(), "cli").await.map_err(fail)?;
            println!("person {} added: {}", r.id, r.person.name);
        }
        PoolCommand::Edit { id, fields } => {
            let fields = fields.fields();
            if fields.is_empty() {
                anyhow::bail!("nothing to change: give at least one --field value");
            }
            let r = pool.edit(id, &fields, "cli").await.map_err(fail)?;
            println!("person {} updated: {}", r.id, r.person.name);
        }
        PoolCommand::Remove { id, reason, date } => {
            let r = pool.remove(id, &reason, date, "cli").await.map_err(fail)?;
            println!("person {} removed (调整出库): {}", r.id, r.person.name);
        }
        PoolCommand::Import {
            file,
            skip_bad,
            dry_run,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let report = pool
                .import(&bytes, skip_bad, dry_run, "cli")
                .await
                .map_err(fail)?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for p in &report.skipped {
                eprintln!("skipped: {p}");
            }
            println!(
                "{}{} added, {} updated, {} unchanged, {} bad row(s) skipped",
                if dry_run {
                    "(dry run: nothing changed) "
                } else {
                    ""
                },
                report.added,
                report.updated,
                report.unchanged,
                report
                    .skipped
                    .iter()
                    .filter_map(|p| p.row.map(|r| (p.sheet.clone(), r)))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
        }
        PoolCommand::Export { file } => {
            let bytes = pool.export().await.map_err(fail)?;
            std::fs::write(&file, bytes)
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!("written: {}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run an event command.
pub async fn event_command(
    config: &Path,
    cmd: EventCommand,
    today: NaiveDate,
) -> anyhow::Result<ExitCode> {
    let e = engine(config, today, false).await?;
    let pool = Pool::new(&e);
    match cmd {
        EventCommand::Record {
            person,
            kind,
            date,
            note,
        } => {
            let recorded = pool
                .record_event(&person, &kind, date, note, "cli")
                .await
                .map_err(fail)?;
            let ev = &recorded.event;
            println!(
                "event {} recorded: person {} {} on {}",
                ev.id,
                ev.person_id,
                pool.kind_title(&ev.kind),
                ev.date
            );
            for t in &recorded.owed {
                println!(
                    "owes task {} in round {}: {} (due {})",
                    t.id,
                    t.round_id,
                    t.title,
                    t.due_at
                        .map(|d| crate::engine::from_ms(d).to_rfc3339())
                        .unwrap_or_default()
                );
            }
        }
        EventCommand::List {
            person,
            kind,
            year,
            format,
        } => {
            let person = match person {
                Some(p) => Some(pool.find(&p).await.map_err(fail)?.id),
                None => None,
            };
            let kind = kind
                .map(|k| pool.event_kind(&k))
                .transpose()
                .map_err(fail)?;
            let events = pool
                .events(&EventFilter { person, kind, year })
                .await
                .map_err(fail)?;
            match format {
                Format::Json => {
                    let list: Vec<_> = events.iter().map(|e| pool.event_json(e)).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    for ev in &events {
                        println!(
                            "{:>5}  {}  person {}  {}  {}",
                            ev.id,
                            ev.date,
                            ev.person_id,
                            pool.kind_title(&ev.kind),
                            ev.note.as_deref().unwrap_or("")
                        );
                    }
                    eprintln!("{} event(s)", events.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
