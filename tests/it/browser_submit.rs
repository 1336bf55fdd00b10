//! A branch hands in on a phone-sized window (390 px) in a real headless Chromium: the task
//! page fits without horizontal scrolling, the nominees are typed and a PDF is chosen, the
//! upload (with its progress bar) moves the task to 已提交; the office signs in, sees the
//! file on the console's task page and returns it with a reason; the branch's page then
//! shows the return and its reason, and the form again.
//!
//! Without `/usr/bin/chromium` the test says `skipped: …` and passes, or fails under
//! `CI=true` (`.ci/run` installs Chromium).

use crate::common;

use common::browser::{chromium_or_skip, launch, sign_in};
use common::{at, date};
use headless_chrome::Tab;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yanzhen::core::state::TaskState;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};

const WORKFLOW: &str = r#"id: nominate
title: 推荐后备干部
defaults:
  due_at: "18:00"
stages:
  - id: s
    title: 组织推荐
    closes: {from: round_start, days: 60}
    tasks:
      - id: nomination
        title: 组织推荐：确定推荐人选并报送附件1
        assignee: {group: communities}
        due: {from: round_start, days: 10}
        submit:
          fields:
            - {id: candidates, label: 推荐人选（每行一人）, type: people, min: 2}
          files:
            - {id: form1, label: 附件1 社区后备干部推荐表（盖章扫描件）, kinds: [docx, pdf], max_mb: 5}
          forms: [templates/forms/附件1-推荐表.docx]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_hands_in_a_file_on_a_phone_and_the_office_returns_it() {
    if !chromium_or_skip() {
        return;
    }
    yanzhen::notify::install_tls_provider();
    let (_, store, _guard) = common::stores::sqlite().await;
    let files = tempfile::tempdir().expect("files");
    let mut cat = common::catalog_with(&[WORKFLOW], false);
    cat.config.files.root = files.path().to_path_buf();
    let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 9, 0)));
    let app = App::build(
        cat,
        store.clone(),
        clock.clone(),
        AppOptions {
            link_secret: Some("browser-submit".into()),
            ..AppOptions::new("browser-submit")
        },
    )
    .await
    .expect("app");
    common::start_round(&app.engine, "nominate", date(2019, 7, 1), &["dongguan"]).await;
    let task = store
        .task_by_key(1, "nomination@dongguan")
        .await
        .expect("read")
        .expect("task");
    let token = common::http::admin_token(store.as_ref()).await;
    let link = app
        .http
        .links
        .task_link("dongguan", task.id, clock.now().timestamp() + 86_400);
    let server = common::http::serve(app.http.clone()).await;
    let base = server.base.clone();
    let upload = files.path().join("推荐表.pdf");
    let mut pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\n".to_vec();
    pdf.extend(std::iter::repeat_n(b'x', 200_000));
    pdf.extend_from_slice(b"\n%%EOF\n");
    std::fs::write(&upload, &pdf).expect("pdf");
    let profile = tempfile::tempdir().expect("profile");
    let (profile_path, task_id) = (profile.path().to_path_buf(), task.id);
    let outcome = common::browser::session(move || {
        browse(&base, &link, &token, task_id, &upload, &profile_path)
    })
    .await;
    server.stop().await;
    if let Err(e) = outcome {
        panic!("browser session failed: {e:#}");
    }
    let row = store.task(task.id).await.expect("read").expect("task");
    assert_eq!(row.state, TaskState::Open, "returned: open again");
    let subs = store.task_submissions(task.id).await.expect("subs");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].reason.as_deref(), Some("推荐表未盖章"));
    assert_eq!(subs[0].files[0].size, pdf.len() as u64);
    assert_eq!(subs[0].actor, "link:dongguan");
}

fn ensure_no_horizontal_overflow(tab: &Tab, what: &str) -> anyhow::Result<()> {
    let wide = tab
        .evaluate(
            "document.documentElement.scrollWidth > window.innerWidth",
            false,
        )?
        .value;
    anyhow::ensure!(
        wide == Some(serde_json::Value::Bool(false)),
        "{what}: the page is wider than the 390 px window"
    );
    Ok(())
}

fn wait_for_text(tab: &Tab, selector: &str, text: &str) -> anyhow::Result<String> {
    for _ in 0..100 {
        if let Ok(el) = tab.find_element(selector)
            && let Ok(t) = el.get_inner_text()
            && t.contains(text)
        {
            return Ok(t);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("`{selector}` never said `{text}`")
}

fn browse(
    base: &str,
    link: &str,
    token: &str,
    task: i64,
    upload: &Path,
    profile: &Path,
) -> anyhow::Result<()> {
    let (_browser, tab) = launch(profile, (390, 844))?;
    let url = |p: &str| format!("{base}{p}");

    // 1. The branch's task page on a phone: what is asked, the blank form, the hand-in form.
    tab.navigate_to(&url(link))?.wait_until_navigated()?;
    tab.wait_for_element("#hand-in-form")?;
    tab.find_element("a.form-download")?;
    ensure_no_horizontal_overflow(&tab, "task page")?;
    tab.find_element("textarea[name=\"f.candidates\"]")?
        .click()?;
    tab.type_str("张三")?;
    tab.press_key("Enter")?;
    tab.type_str("李四")?;
    let path = upload.to_str().ok_or_else(|| anyhow::anyhow!("path"))?;
    tab.find_element("input[name=\"file.form1\"]")?
        .set_input_files(&[path])?;
    tab.find_element("#hand-in-submit")?.click()?;
    // The script uploads with progress and shows the answer.
    wait_for_text(&tab, "h1", "已提交")?;
    ensure_no_horizontal_overflow(&tab, "answer page")?;

    // 2. The office signs in and returns it from the task page.
    tab.navigate_to(&url("/console/login"))?
        .wait_until_navigated()?;
    sign_in(&tab, token)?;
    tab.wait_for_element("nav")?;
    std::thread::sleep(Duration::from_millis(300));
    tab.navigate_to(&url(&format!("/console/tasks/{task}")))?
        .wait_until_navigated()?;
    let section = wait_for_text(&tab, "#hand-in", "推荐表.pdf")?;
    anyhow::ensure!(
        section.contains("张三"),
        "the nominees are shown: {section}"
    );
    tab.find_element("#return-reason")?.click()?;
    tab.type_str("推荐表未盖章")?;
    tab.find_element("#return")?.click()?;
    wait_for_text(&tab, "#flash", "已退回")?;

    // 3. The branch sees the return, its reason, and the form again.
    tab.navigate_to(&url(link))?.wait_until_navigated()?;
    let page = wait_for_text(&tab, "#hand-in", "已退回")?;
    anyhow::ensure!(page.contains("推荐表未盖章"), "the reason is shown: {page}");
    tab.wait_for_element("#hand-in-form")?;
    ensure_no_horizontal_overflow(&tab, "returned page")?;
    Ok(())
}
