//! The round archive (归档): one zip with a folder per branch holding the files it handed
//! in, named by task, and a summary workbook (`汇总.xlsx`: per branch and task, the state,
//! when handed in, when accepted, how often returned). Each file is copied from the file
//! store chunk by chunk into a zip written to disk, so a large round never sits in memory.

use crate::core::state::{AssigneeKind, TaskState};
use crate::files::{Files, FilesError};
use crate::store::{Outcome, Store, StoreError, SubmissionRow};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the round.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a file.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Writing the zip.
    #[error("writing the archive: {0}")]
    Write(String),
    /// No such round.
    #[error("no round {0}")]
    NoRound(i64),
}

fn write_err(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Write(e.to_string())
}

/// What went into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Files copied.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Summary rows (branch tasks).
    pub rows: usize,
}

/// A path segment safe in a zip on Windows too.
fn segment(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if "/\\:*?\"<>|".contains(c) || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    t.trim().trim_matches('.').to_string()
}

/// Write the archive of `round` to `out`.
pub async fn write_round_archive(
    store: &dyn Store,
    files: &Files,
    round: i64,
    tz: chrono_tz::Tz,
    out: &Path,
) -> Result<Archived, ArchiveError> {
    store
        .round(round)
        .await?
        .ok_or(ArchiveError::NoRound(round))?;
    let tasks = store.tasks(round).await?;
    let subs = store.round_submissions(round).await?;
    let mut by_task: BTreeMap<i64, Vec<&SubmissionRow>> = BTreeMap::new();
    for s in &subs {
        by_task.entry(s.task_id).or_default().push(s);
    }
    let file = std::fs::File::create(out).map_err(write_err)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let at = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let mut done = Archived {
        files: 0,
        bytes: 0,
        rows: 0,
    };
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let heads = [
        "单位",
        "任务",
        "状态",
        "提交时间",
        "通过时间",
        "退回次数",
        "文件数",
    ];
    for (c, h) in heads.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).map_err(write_err)?;
    }
    let branch_tasks = tasks
        .iter()
        .filter(|t| t.assignee_kind == AssigneeKind::Unit && t.state != TaskState::Cancelled);
    for t in branch_tasks {
        let mine = by_task.get(&t.id).cloned().unwrap_or_default();
        let returned = mine
            .iter()
            .filter(|s| s.outcome == Some(Outcome::Returned))
            .count();
        let last = mine.last();
        let accepted = mine
            .iter()
            .find(|s| s.outcome == Some(Outcome::Accepted))
            .and_then(|s| s.decided_at);
        let folder = segment(&t.assignee_name);
        if let Some(s) = last {
            for (n, f) in s.files.iter().enumerate() {
                let name = format!(
                    "{folder}/{}-{}-{}",
                    segment(&t.title),
                    n + 1,
                    segment(&f.name)
                );
                zip.start_file(name, opts).map_err(write_err)?;
                let mut stream = Box::pin(files.get(&f.hash).await?);
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(FilesError::from)?;
                    zip.write_all(&chunk).map_err(write_err)?;
                    done.bytes += chunk.len() as u64;
                }
                done.files += 1;
            }
        }
        done.rows += 1;
        let r = done.rows as u32;
        let cells = [
            t.assignee_name.clone(),
            t.title.clone(),
            t.state.zh().to_string(),
            at(last.map(|s| s.at)),
            at(accepted),
        ];
        for (c, v) in cells.iter().enumerate() {
            sheet.write_string(r, c as u16, v).map_err(write_err)?;
        }
        sheet
            .write_number(r, 5, returned as f64)
            .map_err(write_err)?;
        let count = last.map_or(0, |s| s.files.len());
        sheet.write_number(r, 6, count as f64).map_err(write_err)?;
    }
    let summary = book.save_to_buffer().map_err(write_err)?;
    zip.start_file("汇总.xlsx", opts).map_err(write_err)?;
    zip.write_all(&summary).map_err(write_err)?;
    zip.finish()
        .map_err(write_err)?
        .flush()
        .map_err(write_err)?;
    Ok(done)
}
