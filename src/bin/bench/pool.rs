//! The reserve pool at a city's scale (issue #16 item 7): import a roster of `--people`
//! people (10 per branch) from CSV, check the pool rules over it, start a round with a
//! task per person, and import the same roster again (every row an unchanged person).
//! Figures in docs/benchmarks.md.

use super::{BenchOptions, directory, fresh_store, peak_rss_kib, report};
use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use yanzhen::catalog::{Catalog, LoadedWorkflow, content_hash};
use yanzhen::config::Config;
use yanzhen::core::diagnostic::Diagnostics;
use yanzhen::core::plan::{PlanInput, plan, plan_people};
use yanzhen::core::validate::workflow_tz;
use yanzhen::engine::{Engine, StartRound};
use yanzhen::pool::Pool;
use yanzhen::runtime::clock::SystemClock;

/// One task per person with a deadline and one reminder.
const PER_PERSON: &str = "id: bench-person\ntitle: 基准（每人一项）\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 20}\n    tasks:\n      - id: checkup\n        title: 年度体检\n        assignee: {each: reserve}\n        due: {from: round_start, days: 10}\n        reminders:\n          before: [{days: 1}]\n";

/// People per branch of the synthetic city.
const PER_BRANCH: usize = 10;

fn catalog(
    branches: usize,
    calendar: yanzhen::core::calendar::Calendar,
) -> anyhow::Result<Catalog> {
    let source = PER_PERSON.to_string();
    let mut d = Diagnostics::new("bench-person");
    let wf = yanzhen::core::yaml::parse(&source, &mut d).context("per-person bench workflow")?;
    let mut workflows = std::collections::BTreeMap::new();
    workflows.insert(
        "bench-person".to_string(),
        LoadedWorkflow {
            workflow: wf,
            path: "bench-person.yaml".into(),
            hash: content_hash(&source),
            source,
        },
    );
    Ok(Catalog {
        config: Config::default(),
        directory: directory(branches),
        calendar,
        workflows,
    })
}

/// A roster CSV in the offices' headings: `people` rows over `people / 10` branches, tiers
/// 1–4, births spread over 20 years.
fn roster_csv(people: usize) -> Vec<u8> {
    let mut s = String::from("序号,姓名,性别,出生年月,学历,所在单位,梯队,联系电话\n");
    for i in 0..people {
        s.push_str(&format!(
            "{},人员{i:06},{},{}.{:02},大学本科,b{:06},{},1380000{:04}\n",
            i + 1,
            if i % 2 == 0 { "男" } else { "女" },
            1975 + i % 25,
            1 + i % 12,
            i / PER_BRANCH,
            1 + i % 4,
            i % 10_000
        ));
    }
    s.into_bytes()
}

/// `pool_import`, `pool_check`, `pool_plan`, `pool_reimport` (each run when asked for or when `--only` is
/// not given; the import runs unmeasured when only the others are asked for).
pub async fn pool_benches(
    opts: &BenchOptions,
    tmp: &Path,
    backend: &str,
    calendar: &yanzhen::core::calendar::Calendar,
) -> anyhow::Result<()> {
    let n = opts.people;
    let branches = n.div_ceil(PER_BRANCH).max(1);
    let (store, _) = fresh_store(opts, tmp, &format!("pool{n}")).await?;
    let e = Engine::new(
        store.clone(),
        catalog(branches, calendar.clone())?,
        Arc::new(SystemClock),
        "bench",
    );
    e.register_workflows().await?;
    let pool = Pool::new(&e);
    let csv = roster_csv(n);
    let t = Instant::now();
    let imported = pool
        .import(&csv, false, false, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("import: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    if opts.wants("pool_import") {
        report(
            "pool_import",
            serde_json::json!({"backend": backend, "people": n, "branches": branches, "bytes": csv.len(),
                "added": imported.added, "seconds": secs, "people_per_s": n as f64 / secs,
                "peak_rss_kib": peak_rss_kib()}),
        );
    }
    drop(csv);
    if opts.wants("pool_check") {
        let t = Instant::now();
        let r = pool
            .check(None)
            .await
            .map_err(|e| anyhow::anyhow!("check: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        report(
            "pool_check",
            serde_json::json!({"backend": backend, "people": n, "branches": r.branches.len(),
                "violations": r.violations, "seconds": secs, "peak_rss_kib": peak_rss_kib()}),
        );
    }
    if opts.wants("pool_plan") {
        let t = Instant::now();
        let id = e
            .start_round(StartRound {
                workflow: "bench-person".into(),
                start: chrono::Utc::now().date_naive(),
                params: Default::default(),
                units: None,
                actor: "bench".into(),
            })
            .await?;
        let secs = t.elapsed().as_secs_f64();
        // Before the rows are read back to count them: reading 300,000 rows is the
        // bench's work, not the round start's.
        let peak = peak_rss_kib();
        // The planning alone (pure, no database), as the round start does it: the round
        // without its tasks per person, then 2,000 people at a time. What of the round
        // start's time (and of its write transaction) is planning rather than writing.
        let planning = {
            let people = store.pool_refs().await?;
            let cat = e.catalog();
            let wf = &cat
                .workflows
                .get("bench-person")
                .context("bench workflow")?
                .workflow;
            let params = Default::default();
            let input = PlanInput {
                workflow: wf,
                directory: &cat.directory,
                calendar: &cat.calendar,
                tz: workflow_tz(wf, cat.config.tz()),
                start: chrono::Utc::now().date_naive(),
                params: &params,
                units: None,
                done: None,
                events: None,
                people: Some(&[]),
            };
            let t = Instant::now();
            let (whole, _) = plan(input);
            let mut planned = whole.map_or(0, |p| p.tasks.len());
            for slice in people.chunks(2000) {
                let (p, _) = plan_people(PlanInput {
                    people: Some(slice),
                    ..input
                });
                planned += p.map_or(0, |p| p.tasks.len());
            }
            let secs = t.elapsed().as_secs_f64();
            anyhow::ensure!(planned == people.len(), "planned {planned} tasks");
            secs
        };
        let tasks = store.tasks(id).await?.len();
        let timers = store.pending_timers(Some(id), i64::MAX).await?.len();
        report(
            "pool_plan",
            serde_json::json!({"backend": backend, "people": n, "tasks": tasks, "timers": timers,
                "seconds": secs, "planning_seconds": planning, "peak_rss_kib": peak}),
        );
    }
    if opts.wants("pool_reimport") {
        // The same roster again over the pool it made: every row matches a stored person
        // (read in the import's transaction) and nothing changes.
        let csv = roster_csv(n);
        let t = Instant::now();
        let r = pool
            .import(&csv, false, false, "bench")
            .await
            .map_err(|e| anyhow::anyhow!("import again: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        report(
            "pool_reimport",
            serde_json::json!({"backend": backend, "people": n, "added": r.added,
                "updated": r.updated, "unchanged": r.unchanged, "seconds": secs,
                "peak_rss_kib": peak_rss_kib()}),
        );
    }
    Ok(())
}
