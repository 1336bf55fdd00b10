//! The filter form and an export in a real headless Chromium (#18 items 3 and 4): sign in,
//! choose a branch and "逾期" on the task list, see only those tasks, and download the
//! export the page offers with the browser's own session; the workbook opens with calamine
//! and its rows are the tasks the database holds.

use super::{Console, consoles};
use crate::common;
use calamine::Reader as _;
use common::browser::{chromium_or_skip, launch, sign_in};
use headless_chrome::protocol::cdp::Browser::{
    SetDownloadBehavior, SetDownloadBehaviorBehaviorOption,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use yanzhen::core::state::TaskState;
use yanzhen::runtime::clock::Clock as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_task_filter_shows_one_branchs_overdue_tasks_and_its_export_downloads() {
    if !chromium_or_skip() {
        return;
    }
    let mut all = consoles().await;
    let c: Console = all.remove(0);
    drop(all);
    let now = c.clock.now().timestamp_millis();
    let want: BTreeSet<i64> = c
        .store
        .tasks(c.round)
        .await
        .expect("tasks")
        .iter()
        .filter(|t| {
            t.assignee_id == "xiguan"
                && t.state == TaskState::Open
                && t.due_at.is_some_and(|d| d < now)
        })
        .map(|t| t.id)
        .collect();
    assert!(!want.is_empty(), "xiguan has overdue tasks");
    let base = c.base.clone();
    let token = c.admin.clone();
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_path = profile.path().to_path_buf();
    let outcome = common::browser::session(move || browse(&base, &token, &profile_path)).await;
    let (shown, file_name, bytes) = match outcome {
        Ok(x) => x,
        Err(e) => panic!("browser session failed: {e:#}"),
    };
    assert_eq!(
        shown, want,
        "the filtered list shows xiguan's overdue tasks"
    );
    assert!(
        file_name.starts_with("tasks-") && file_name.ends_with(".xlsx"),
        "the download is named tasks-DATE.xlsx: {file_name}"
    );
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).expect("xlsx opens");
    let range = book.worksheet_range("任务清单").expect("sheet 任务清单");
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|d| d.to_string()).collect())
        .collect();
    let headings: Vec<String> = yanzhen::report::TASK_COLUMNS
        .iter()
        .map(|c| c.heading.to_string())
        .collect();
    assert_eq!(rows[0], headings);
    assert_eq!(rows.len() - 1, want.len(), "one row per task shown");
    assert!(rows[1..].iter().all(|r| r[5] == "西关社区党委"), "{rows:?}");
}

/// Sign in, filter, read the rows and download the export: (task ids shown, the
/// downloaded file's name, its bytes).
fn browse(
    base: &str,
    token: &str,
    profile: &Path,
) -> anyhow::Result<(BTreeSet<i64>, String, Vec<u8>)> {
    let (_browser, tab) = launch(profile, (1280, 1000))?;
    tab.navigate_to(&format!("{base}/console/tasks"))?
        .wait_until_navigated()?;
    sign_in(&tab, token)?;
    tab.wait_for_element("form.filters")?;
    if !tab.get_url().contains("/console/tasks") {
        tab.navigate_to(&format!("{base}/console/tasks"))?
            .wait_until_navigated()?;
        tab.wait_for_element("form.filters")?;
    }
    // Choose as a clerk would: the branch, then the state, then 筛选.
    tab.evaluate(
        "document.querySelector('select[name=branch]').value = 'xiguan';\
         document.querySelector('select[name=state]').value = 'overdue'; true",
        false,
    )?;
    tab.find_element("form.filters button[type=submit]")?
        .click()?;
    tab.wait_until_navigated()?;
    tab.wait_for_element("#task-count")?;
    anyhow::ensure!(
        tab.get_url().contains("branch=xiguan") && tab.get_url().contains("state=overdue"),
        "the form did not submit the filter: {}",
        tab.get_url()
    );
    let ids = tab
        .evaluate(
            "JSON.stringify([...document.querySelectorAll('tr.task')].map(r => Number(r.dataset.task)))",
            false,
        )?
        .value
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let shown: BTreeSet<i64> = serde_json::from_str::<Vec<i64>>(&ids)?
        .into_iter()
        .collect();
    // Downloads go to a folder of the test's (the page's CSP allows no fetch from a script,
    // so the export is downloaded as a click on its link would).
    let downloads = profile.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    tab.call_method(SetDownloadBehavior {
        behavior: SetDownloadBehaviorBehaviorOption::Allow,
        browser_context_id: None,
        download_path: Some(downloads.to_string_lossy().into_owned()),
        events_enabled: None,
    })?;
    let href = tab
        .find_element("form.filters a.export")?
        .get_attribute_value("href")?
        .unwrap_or_default();
    anyhow::ensure!(
        href.contains("branch=xiguan") && href.contains("state=overdue"),
        "the export link does not carry the filter: {href}"
    );
    tab.find_element("form.filters a.export")?.click()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let file = loop {
        let done = std::fs::read_dir(&downloads)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "xlsx"));
        if let Some(f) = done {
            break f;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no download arrived");
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(&file)?;
    Ok((shown, name, bytes))
}
