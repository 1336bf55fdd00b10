//! Shared test helpers: the shipped directory and calendar, a fixed "today", and (in
//! [`daemon`]) the real binary in a temporary config.
#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod http;
pub mod office;
pub mod session;
pub mod site;
pub mod smtp;
pub mod stores;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use std::path::{Path, PathBuf};
use yanzhen::core::calendar::Calendar;
use yanzhen::core::diagnostic::Diagnostics;
use yanzhen::core::directory::Directory;

/// A test cannot run because something it needs is missing (`why` says what): under
/// `CI=true` that fails the test, since a CI run must exercise everything; elsewhere it
/// prints `skipped: WHY` (straight to stderr, which the harness does not capture) and the
/// caller returns.
pub fn skip_or_fail(why: &str) {
    if ci() {
        panic!("CI=true and a test dependency is missing: {why}");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {why}");
}

/// Whether this is a CI run (`CI=true`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped sample directory.
pub fn directory() -> Directory {
    let text = std::fs::read_to_string(root().join("config/directory.yaml")).expect("directory");
    let mut d = Diagnostics::new("config/directory.yaml");
    let dir = Directory::parse(&text, &mut d).expect("shipped directory parses");
    assert!(!d.has_errors(), "{:?}", d.items());
    dir
}

/// The shipped holiday calendar.
pub fn calendar() -> Calendar {
    Calendar::load_dir(&root().join("config/calendar")).expect("shipped calendar loads")
}

/// A fixed "today" so validation output does not depend on the clock.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 10).expect("date")
}

/// An instant given in Beijing time (the office's).
pub fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid local time")
        .with_timezone(&Utc)
}

/// A calendar date.
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

/// Start a round of `workflow` on `start` for `units`, with default parameters, as `test`:
/// its id.
pub async fn start_round(
    engine: &yanzhen::engine::Engine,
    workflow: &str,
    start: NaiveDate,
    units: &[&str],
) -> i64 {
    engine
        .start_round(yanzhen::engine::StartRound {
            workflow: workflow.into(),
            start,
            params: Default::default(),
            units: Some(units.iter().map(|u| u.to_string()).collect()),
            actor: "test".into(),
        })
        .await
        .expect("start round")
}

/// Path of a shipped workflow.
pub fn workflow_path(id: &str) -> PathBuf {
    root().join("workflows").join(format!("{id}.yaml"))
}

/// Read a file relative to the repository root.
pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(p)).expect("read")
}

/// A catalog of the shipped config, directory and calendar with the given workflow texts
/// (each must validate) plus, if `shipped` is true, every shipped workflow.
pub fn catalog_with(texts: &[&str], shipped: bool) -> yanzhen::catalog::Catalog {
    use yanzhen::catalog::{Catalog, LoadedWorkflow, content_hash};
    use yanzhen::core::validate::{Context, validate_workflow};
    let directory = directory();
    let calendar = calendar();
    let config = yanzhen::config::Config::default();
    let mut workflows = std::collections::BTreeMap::new();
    let mut sources: Vec<(PathBuf, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (PathBuf::from(format!("test-{i}.yaml")), t.to_string()))
        .collect();
    if shipped {
        for e in std::fs::read_dir(root().join("workflows")).expect("workflows") {
            let p = e.expect("entry").path();
            sources.push((p.clone(), std::fs::read_to_string(&p).expect("read")));
        }
    }
    for (path, text) in sources {
        let ctx = Context {
            directory: &directory,
            calendar: &calendar,
            default_tz: config.tz(),
            today: today(),
        };
        let (wf, d) = validate_workflow(&path.display().to_string(), &text, ctx);
        let wf = wf.unwrap_or_else(|| panic!("{} invalid: {:?}", path.display(), d.items()));
        workflows.insert(
            wf.id.value.clone(),
            LoadedWorkflow {
                workflow: wf,
                path,
                hash: content_hash(&text),
                source: text,
            },
        );
    }
    Catalog {
        config,
        directory,
        calendar,
        workflows,
    }
}
