//! The catalog: config, directory, calendar and every workflow file, loaded and checked
//! together. This is the I/O edge around the pure loaders; it returns the value and *all*
//! diagnostics, so a caller (CLI, daemon reload) can keep its last good catalog.

use crate::config::Config;
use crate::core::calendar::Calendar;
use crate::core::definition::Workflow;
use crate::core::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::core::directory::Directory;
use crate::core::validate::{Context, validate_workflow};
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A warning for every blank form a workflow offers that is not there (paths are taken
/// from the working folder, as the config's paths are): the branch page would offer a
/// download that fails.
fn missing_forms(file: &str, wf: &Workflow) -> Vec<Diagnostic> {
    wf.tasks()
        .filter_map(|(_, t)| t.submit.as_ref())
        .flat_map(|s| s.value.forms.iter())
        .filter(|f| !Path::new(&f.value).is_file())
        .map(|f| Diagnostic {
            severity: crate::core::diagnostic::Severity::Warning,
            code: "submit-form-missing",
            file: file.to_string(),
            loc: f.loc,
            message: format!("blank form `{}` does not exist", f.value),
            hint: Some(
                "put the file there, or correct the path (from the folder yanzhen runs in)".into(),
            ),
        })
        .collect()
}

/// A workflow as loaded from a file.
#[derive(Debug, Clone)]
pub struct LoadedWorkflow {
    /// The parsed workflow.
    pub workflow: Workflow,
    /// The file it came from.
    pub path: PathBuf,
    /// Its exact text.
    pub source: String,
    /// SHA-256 of the text, hex.
    pub hash: String,
}

/// Everything the daemon runs from.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The configuration.
    pub config: Config,
    /// The directory.
    pub directory: Directory,
    /// The holiday calendar.
    pub calendar: Calendar,
    /// Valid workflows by id.
    pub workflows: BTreeMap<String, LoadedWorkflow>,
}

/// SHA-256 of a text, hex.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Load the config and what it points to except workflows.
pub fn load_base(config_path: &Path) -> (Option<(Config, Directory, Calendar)>, Vec<Diagnostic>) {
    let mut all = Vec::new();
    let mut cd = Diagnostics::new(config_path.display().to_string());
    let config = Config::load(config_path, &mut cd);
    all.extend(cd.into_sorted());
    let Some(config) = config else {
        return (None, all);
    };
    let mut dd = Diagnostics::new(config.directory.display().to_string());
    let directory = match std::fs::read_to_string(&config.directory) {
        Ok(text) => Directory::parse(&text, &mut dd),
        Err(e) => {
            dd.error(
                "io",
                Loc::default(),
                format!("cannot read the directory file: {e}"),
                Some("set `directory` in config/yanzhen.toml".into()),
            );
            None
        }
    };
    let dir_ok = !dd.has_errors();
    all.extend(dd.into_sorted());
    let calendar = match Calendar::load_dir(&config.calendar_dir) {
        Ok(c) => Some(c),
        Err(errs) => {
            for e in errs {
                all.push(Diagnostic {
                    severity: crate::core::diagnostic::Severity::Error,
                    code: "calendar-file",
                    file: e.file.clone(),
                    loc: Loc {
                        line: e.line as u64,
                        column: e.column as u64,
                    },
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                });
            }
            None
        }
    };
    match (directory, calendar) {
        (Some(d), Some(c)) if dir_ok => (Some((config, d, c)), all),
        _ => (None, all),
    }
}

/// A warning when the holiday file the office should add by now is missing (from 1
/// November next year's, and the current year's all year): until it is added, dates in that
/// year are planned on the provisional calendar.
pub fn calendar_diagnostics(
    config: &Config,
    calendar: &Calendar,
    today: NaiveDate,
) -> Vec<Diagnostic> {
    let Some(year) = calendar.wanted_year(today) else {
        return Vec::new();
    };
    let file = config.calendar_dir.join(format!("{year}.json"));
    vec![Diagnostic {
        severity: crate::core::diagnostic::Severity::Warning,
        code: "calendar-file-missing",
        file: file.display().to_string(),
        loc: Loc::default(),
        message: format!(
            "no holiday file for {year} yet: dates in {year} are planned on a provisional calendar (weekends and statutory holidays, no bridge days or make-up working days) and marked 暂按预计日历"
        ),
        hint: Some(format!(
            "when the State Council notice for {year} is out, save it as {} in the holiday-cn layout ({{\"year\": {year}, \"papers\": [...], \"days\": [{{\"name\": ..., \"date\": \"{year}-MM-DD\", \"isOffDay\": true}}]}}); running rounds are re-projected onto it",
            file.display()
        )),
    }]
}

/// Every `*.yaml`/`*.yml` file under `paths` (files as given, folders one level deep), sorted.
pub fn workflow_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| io_diag(p, e))?;
            for e in entries {
                let path = e.map_err(|e| io_diag(p, e))?.path();
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml") {
                    out.push(path);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

fn io_diag(p: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: crate::core::diagnostic::Severity::Error,
        code: "io",
        file: p.display().to_string(),
        loc: Loc::default(),
        message: format!("cannot read: {e}"),
        hint: Some("check that the path exists, is readable and holds UTF-8 text".into()),
    }
}

/// Load and validate workflow files against a directory and calendar. Returns the valid
/// ones and all diagnostics (including duplicate workflow ids across files).
pub fn load_workflows(
    files: &[PathBuf],
    config: &Config,
    directory: &Directory,
    calendar: &Calendar,
    today: NaiveDate,
) -> (BTreeMap<String, LoadedWorkflow>, Vec<Diagnostic>) {
    let ctx = Context {
        directory,
        calendar,
        default_tz: config.tz(),
        today,
    };
    let mut out: BTreeMap<String, LoadedWorkflow> = BTreeMap::new();
    let mut diags = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                diags.push(io_diag(f, e));
                continue;
            }
        };
        let (wf, d) = validate_workflow(&name, &text, ctx);
        diags.extend(d.into_sorted());
        if let Some(wf) = &wf {
            diags.extend(missing_forms(&name, wf));
        }
        if let Some(wf) = wf {
            let id = wf.id.value.clone();
            if let Some(prev) = out.get(&id) {
                diags.push(Diagnostic {
                    severity: crate::core::diagnostic::Severity::Error,
                    code: "duplicate-id",
                    file: name.clone(),
                    loc: wf.id.loc,
                    message: format!("workflow id `{id}` is also used by {}", prev.path.display()),
                    hint: Some("every workflow file needs its own id".into()),
                });
                continue;
            }
            out.insert(
                id,
                LoadedWorkflow {
                    workflow: wf,
                    path: f.clone(),
                    hash: content_hash(&text),
                    source: text,
                },
            );
        }
    }
    (out, diags)
}

/// Load everything from a config file. The catalog is None when the config, directory or
/// calendar are broken; invalid workflows are left out and reported.
pub fn load(config_path: &Path, today: NaiveDate) -> (Option<Catalog>, Vec<Diagnostic>) {
    let (base, mut diags) = load_base(config_path);
    let Some((config, directory, calendar)) = base else {
        return (None, diags);
    };
    diags.extend(calendar_diagnostics(&config, &calendar, today));
    let files = match workflow_files(std::slice::from_ref(&config.workflows_dir)) {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return (None, diags);
        }
    };
    let (workflows, wd) = load_workflows(&files, &config, &directory, &calendar, today);
    diags.extend(wd);
    (
        Some(Catalog {
            config,
            directory,
            calendar,
            workflows,
        }),
        diags,
    )
}

/// What commands that only read the database (`status`, `task list`) run from: the full
/// catalog when everything loads; otherwise the config with the directory and calendar as far
/// as they load (an empty directory or calendar when they do not) and no workflows, so a
/// broken `directory.yaml` does not hide the state of running rounds. None only when the
/// config itself is broken: it names the database. The diagnostics are returned either way.
pub fn load_for_reading(
    config_path: &Path,
    today: NaiveDate,
) -> (Option<Catalog>, Vec<Diagnostic>) {
    let (full, diags) = load(config_path, today);
    if let Some(c) = full {
        return (Some(c), diags);
    }
    let Some(config) = Config::load(config_path, &mut Diagnostics::new("")) else {
        return (None, diags);
    };
    let directory = std::fs::read_to_string(&config.directory)
        .ok()
        .and_then(|text| Directory::parse(&text, &mut Diagnostics::new("")))
        .unwrap_or_else(|| {
            let office = crate::core::directory::Office {
                id: String::new(),
                name: String::new(),
            };
            Directory::new(office, Vec::new(), Vec::new(), Vec::new())
        });
    let calendar = Calendar::load_dir(&config.calendar_dir).unwrap_or_default();
    let catalog = Catalog {
        config,
        directory,
        calendar,
        workflows: BTreeMap::new(),
    };
    (Some(catalog), diags)
}
