//! Shared test helpers: the shipped directory and calendar, and a fixed "today".
#![allow(dead_code)]

use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use yanzhen::calendar::Calendar;
use yanzhen::diagnostic::Diagnostics;
use yanzhen::directory::Directory;

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

/// Path of a shipped workflow.
pub fn workflow_path(id: &str) -> PathBuf {
    root().join("workflows").join(format!("{id}.yaml"))
}

/// Read a file relative to the repository root.
pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(p)).expect("read")
}
