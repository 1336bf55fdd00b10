//! The command line's part of tasks per person: the people `yanzhen plan --roster` plans
//! for, and `yanzhen round add-person`.

use super::Format;
use crate::config::Config;
use crate::core::directory::Directory;
use crate::core::plan::PersonRef;
use crate::core::pool::{Ctx, PersonStatus};
use crate::core::roster;
use crate::engine::Engine;
use crate::pool::Pool;
use crate::runtime::daemon::engine;
use chrono::NaiveDate;
use std::path::Path;
use std::process::ExitCode;

/// The people in the pool (在库) listed in a roster file, numbered 1, 2 … in file order
/// (a roster has no pool ids); an error lists every bad row.
pub fn roster_people(
    path: &Path,
    cfg: &Config,
    dir: &Directory,
    today: NaiveDate,
) -> Result<Vec<PersonRef>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let tiers = cfg.pool.tiers();
    let parsed = roster::read(
        &bytes,
        roster::Format::sniff(&bytes),
        Ctx {
            directory: dir,
            tiers: &tiers,
            today,
        },
    );
    if !parsed.problems.is_empty() {
        let lines: Vec<String> = parsed.problems.iter().map(|p| p.to_string()).collect();
        return Err(format!(
            "the roster has bad rows (fix them, or check with `yanzhen pool import --dry-run`):\n  {}",
            lines.join("\n  ")
        ));
    }
    Ok(parsed
        .rows
        .iter()
        .filter(|r| r.person.status == PersonStatus::Active)
        .enumerate()
        .map(|(i, r)| PersonRef {
            id: i as i64 + 1,
            name: r.person.name.clone(),
            unit: r.person.unit.clone(),
            tier: r.person.tier.get(),
        })
        .collect())
}

/// `yanzhen round add-person ROUND PERSON [--dry-run]`.
pub async fn add_person(
    config: &Path,
    today: NaiveDate,
    round: i64,
    person: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let e = engine(config, today, false).await?;
    let found = Pool::new(&e)
        .find(person)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let impact = e.add_person(round, found.id, dry_run, "cli").await?;
    print!("{}", impact.to_table(e.catalog().config.tz()));
    if dry_run {
        println!("(dry run: nothing changed)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `yanzhen pool counts [--year Y]`: every counting rule over the year, who is short; exit
/// status 1 when anybody is.
pub async fn counts(e: &Engine, year: i32, format: Format) -> anyhow::Result<ExitCode> {
    let reports = e.count_reports(year).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Text => {
            let cat = e.catalog();
            let unit_name = |id: &str| {
                cat.directory
                    .unit(id)
                    .map_or_else(|| id.to_string(), |u| u.name.clone())
            };
            if reports.is_empty() {
                println!("已加载的流程没有计数规则（counts）。");
            }
            for r in &reports {
                println!(
                    "{}（{}）：{}年1月1日至{}，每人应不少于{}次；{}人中{}人不足",
                    r.title,
                    r.workflow,
                    r.year,
                    crate::core::timefmt::zh_date(r.until),
                    r.required,
                    r.people,
                    r.short.len()
                );
                for line in r.lines(unit_name) {
                    println!("  - {line}");
                }
            }
        }
    }
    Ok(if reports.iter().any(|r| !r.short.is_empty()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
