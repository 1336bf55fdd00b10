//! What the fuzz targets run, one function per target.
//!
//! `tests/fuzz_regressions.rs` includes this very file (`#[path]`), so every saved crash
//! and seed goes through exactly the code the fuzzer drove. The contract of all three: no
//! panic and no endless loop, whatever the bytes.

use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;
use yanzhen::core::calendar::{Calendar, CalendarFileError};
use yanzhen::core::definition::Workflow;
use yanzhen::core::diagnostic::Diagnostics;
use yanzhen::core::directory::Directory;
use yanzhen::core::plan::{PlanInput, plan};
use yanzhen::core::validate::{Context, validate_workflow, workflow_tz};

/// The repository root: the crate that compiles this file is either the main crate or
/// `fuzz/` inside it.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("config/directory.yaml").is_file() {
        here
    } else {
        here.parent().map(PathBuf::from).unwrap_or(here)
    }
}

/// The shipped directory and holiday calendar, loaded once.
struct Shipped {
    directory: Directory,
    calendar: Calendar,
}

static SHIPPED: LazyLock<Shipped> = LazyLock::new(|| {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config/directory.yaml"))
        .expect("read config/directory.yaml");
    let mut d = Diagnostics::new("config/directory.yaml");
    let directory = Directory::parse(&text, &mut d).expect("shipped directory parses");
    assert!(!d.has_errors(), "shipped directory: {:?}", d.items());
    let calendar = Calendar::load_dir(&root.join("config/calendar")).expect("shipped calendar");
    Shipped {
        directory,
        calendar,
    }
});

/// "Today" for validation: fixed, so a crash replays the same way on any day.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 10).expect("date")
}

/// The round start used for the extra plan of a valid workflow.
pub fn plan_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).expect("date")
}

/// The validation context: shipped directory and calendar, Asia/Shanghai, [`today`].
pub fn context() -> Context<'static> {
    let s: &'static Shipped = &SHIPPED;
    Context {
        directory: &s.directory,
        calendar: &s.calendar,
        default_tz: chrono_tz::Asia::Shanghai,
        today: today(),
    }
}

/// Target `workflow`: bytes (lossy UTF-8) → validate; a workflow that validates is also
/// planned from [`plan_start`] with no parameters, as `yanzhen plan --start` would.
pub fn workflow(data: &[u8]) -> (Option<Workflow>, Diagnostics) {
    let text = String::from_utf8_lossy(data);
    let ctx = context();
    let (wf, d) = validate_workflow("fuzz.yaml", &text, ctx);
    if let Some(wf) = &wf {
        let params = BTreeMap::new();
        let _ = plan(PlanInput {
            workflow: wf,
            directory: ctx.directory,
            calendar: ctx.calendar,
            tz: workflow_tz(wf, ctx.default_tz),
            start: plan_start(),
            params: &params,
            units: None,
            done: None,
            events: None,
            people: None,
        });
    }
    (wf, d)
}

/// Target `directory`: bytes (lossy UTF-8) → `Directory::parse`.
pub fn directory(data: &[u8]) -> (Option<Directory>, Diagnostics) {
    let text = String::from_utf8_lossy(data);
    let mut d = Diagnostics::new("fuzz-directory.yaml");
    let dir = Directory::parse(&text, &mut d);
    (dir, d)
}

/// Target `calendar`: bytes (lossy UTF-8) → one year file `2025.json`; a calendar that
/// loads is also asked the working-day questions the planner asks.
pub fn calendar(data: &[u8]) -> Result<Calendar, Vec<CalendarFileError>> {
    let text = String::from_utf8_lossy(data);
    let cal = Calendar::from_sources([("2025.json", text.as_ref())])?;
    let jan1 = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
    let dec31 = NaiveDate::from_ymd_opt(2025, 12, 31).expect("date");
    for n in [-400, -1, 0, 1, 400] {
        let _ = cal.add_working_days(jan1, n);
        let _ = cal.add_working_days(dec31, n);
    }
    let _ = cal.working_days_between(jan1, dec31);
    let _ = cal.working_days_between(dec31, jan1);
    for month in 0..=13 {
        let _ = cal.first_working_day_of_month(2025, month);
        let _ = cal.last_working_day_of_month(2025, month);
    }
    Ok(cal)
}
