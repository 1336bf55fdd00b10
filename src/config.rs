//! `config/yanzhen.toml`: where the directory, calendar and workflows are, the time zone
//! and the database.

use crate::diagnostic::{Diagnostics, Loc};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The daemon's configuration. Relative paths are resolved against the directory the
/// command runs in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Default IANA time zone for workflows.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Folder of workflow files (`*.yaml`).
    #[serde(default = "default_workflows")]
    pub workflows_dir: PathBuf,
    /// The directory file.
    #[serde(default = "default_directory")]
    pub directory: PathBuf,
    /// Folder of holiday calendar files (`YYYY.json`).
    #[serde(default = "default_calendar")]
    pub calendar_dir: PathBuf,
    /// Database settings.
    #[serde(default)]
    pub database: DatabaseConfig,
}

/// Where state is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...`; `YANZHEN_DATABASE_URL` overrides it.
    #[serde(default = "default_db")]
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: default_db() }
    }
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_workflows() -> PathBuf {
    "workflows".into()
}
fn default_directory() -> PathBuf {
    "config/directory.yaml".into()
}
fn default_calendar() -> PathBuf {
    "config/calendar".into()
}
fn default_db() -> String {
    "sqlite://data/yanzhen.db".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timezone: default_tz(),
            workflows_dir: default_workflows(),
            directory: default_directory(),
            calendar_dir: default_calendar(),
            database: DatabaseConfig::default(),
        }
    }
}

impl Config {
    /// Parse TOML text; problems carry line and column.
    pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<Config> {
        match toml::from_str::<Config>(text) {
            Ok(c) => {
                if c.timezone.parse::<chrono_tz::Tz>().is_err() {
                    diags.error(
                        "invalid-value",
                        locate(text, text.find("timezone").unwrap_or(0)),
                        format!("unknown time zone `{}`", c.timezone),
                        Some("use an IANA name such as `Asia/Shanghai`".into()),
                    );
                    return None;
                }
                Some(c)
            }
            Err(e) => {
                let loc = e.span().map(|s| locate(text, s.start)).unwrap_or_default();
                diags.error(
                    "invalid-config",
                    loc,
                    e.message().to_string(),
                    Some("see the comments in the shipped config/yanzhen.toml".into()),
                );
                None
            }
        }
    }

    /// Read and parse a config file; a missing file yields the defaults.
    pub fn load(path: &Path, diags: &mut Diagnostics) -> Option<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, diags),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Config::default()),
            Err(e) => {
                diags.error("io", Loc::default(), format!("cannot read: {e}"), None);
                None
            }
        }
    }

    /// The default time zone.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

/// Line and column of a byte offset.
pub fn locate(text: &str, offset: usize) -> Loc {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    Loc { line, column: col }
}
