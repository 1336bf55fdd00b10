//! The workflow editor, the workflows page and the provisional-calendar banner.

use super::*;

/// The version a draft of the file at `path` is based on, as the editor's form carries it.
fn base_of(path: &std::path::Path) -> String {
    yanzhen::catalog::content_hash(&std::fs::read_to_string(path).expect("read"))
}

const MISSPELT: &str = "id: yearly-training\ntitle: 年度培训\nstages:\n  - id: s\n    titel: 培训\n    opens: {from: round_start}\n    closes: {from: round_start, days: 3}\n    tasks: []\n";

#[tokio::test]
async fn the_editor_rejects_an_invalid_draft_with_positioned_diagnostics_and_leaves_the_file_alone()
{
    for c in consoles().await {
        let name = c.name;
        let path: PathBuf = c.setup.path().join("workflows/yearly-training.yaml");
        let original = std::fs::read_to_string(&path).expect("read");
        let (status, body) = c
            .get("/console/workflows/yearly-training/edit", Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("<textarea class=\"source\" name=\"source\""),
            "{name}"
        );
        assert!(
            body.contains("id: yearly-training"),
            "{name}: the file's text"
        );
        for action in ["preview", "save"] {
            let resp = c
                .post(
                    &format!("/console/workflows/yearly-training/{action}"),
                    Some(&c.admin),
                    &[("source", MISSPELT), ("base", &base_of(&path))],
                )
                .await;
            let status = resp.status();
            let body = resp.text().await.expect("body");
            assert!(
                body.contains("class=\"diagnostic error\" data-line=\"5\""),
                "{name}: {action}: the misspelt key is marked: {body}"
            );
            assert!(
                body.contains("<span class=\"pos\">5:5</span>"),
                "{name}: {action}: line:column"
            );
            assert!(
                body.contains("titel") && body.contains("title"),
                "{name}: {action}: did you mean"
            );
            assert!(
                !body.contains("id=\"plan\""),
                "{name}: no plan for an invalid draft"
            );
            if action == "save" {
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
                assert!(body.contains("没有保存"), "{name}");
            }
        }
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            original,
            "{name}: file unchanged"
        );
        // Another workflow's id in this file is refused too.
        let renamed = original.replace("id: yearly-training", "id: something-else");
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[("source", &renamed), ("base", &base_of(&path))],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(
            resp.text().await.expect("body").contains("id-mismatch"),
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            original,
            "{name}"
        );
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        assert!(
            !audit.iter().any(|a| a.entry.action == "workflow.save"),
            "{name}"
        );
        // No path tricks through the id.
        let (status, _) = c
            .get("/console/workflows/..%2Fetc/edit", Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
    }
}

#[tokio::test]
async fn the_editor_previews_a_plan_and_saves_a_valid_draft_then_reloads_the_catalog() {
    for c in consoles().await {
        let name = c.name;
        let path: PathBuf = c.setup.path().join("workflows/yearly-training.yaml");
        let original = std::fs::read_to_string(&path).expect("read");
        let title = original
            .lines()
            .find_map(|l| l.strip_prefix("title: "))
            .expect("title line")
            .to_string();
        let edited =
            original.replacen(&format!("title: {title}"), "title: 年度集中培训（修订）", 1);
        let versions_before = c
            .store
            .workflow_versions("yearly-training")
            .await
            .expect("versions")
            .len();

        let resp = c
            .post(
                "/console/workflows/yearly-training/preview",
                Some(&c.admin),
                &[("source", &edited)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("校验通过") && body.contains("<pre class=\"plan\" id=\"plan\">"),
            "{name}: {body}"
        );
        assert!(
            body.contains("年度集中培训（修订）（yearly-training）"),
            "{name}: the plan table"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            original,
            "{name}: preview writes nothing"
        );

        // A browser sends CRLF; the file keeps LF.
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[
                    ("source", &edited.replace('\n', "\r\n")),
                    ("base", &base_of(&path)),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(
            location(&resp),
            "/console/workflows?saved=yearly-training",
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            edited,
            "{name}: file written"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: no temp file left");
        assert_eq!(
            c.engine()
                .catalog()
                .workflows
                .get("yearly-training")
                .map(|w| w.workflow.title.clone()),
            Some("年度集中培训（修订）".to_string()),
            "{name}: catalog reloaded"
        );
        let versions = c
            .store
            .workflow_versions("yearly-training")
            .await
            .expect("versions");
        assert_eq!(
            versions.len(),
            versions_before + 1,
            "{name}: a new version is registered"
        );
        let (status, body) = c.get(&location(&resp), Some(&c.admin)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("年度集中培训（修订）") && body.contains("已保存工作流"),
            "{name}"
        );
        assert!(
            body.contains(&format!("v{}", versions_before + 1)),
            "{name}: the new version is listed"
        );
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        let save = audit
            .iter()
            .find(|a| a.entry.action == "workflow.save")
            .unwrap_or_else(|| panic!("{name}: no workflow.save audit"));
        assert_eq!(save.entry.actor, "token:zzb-admin", "{name}");
        assert_eq!(save.entry.subject, "workflow:yearly-training", "{name}");

        // A new workflow: the skeleton validates and saves as <dir>/<id>.yaml.
        let resp = c
            .http
            .get(c.url("/console/workflows/new?id=pilot-training"))
            .header(COOKIE, c.cookie(&c.admin).await)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            location(&resp),
            "/console/workflows/pilot-training/edit",
            "{name}"
        );
        let (status, body) = c
            .get("/console/workflows/pilot-training/edit", Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let skeleton = body
            .split("spellcheck=\"false\" wrap=\"off\">")
            .nth(1)
            .and_then(|s| s.split("</textarea>").next())
            .expect("textarea")
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let resp = c
            .post(
                "/console/workflows/pilot-training/save",
                Some(&c.admin),
                &[("source", &skeleton)],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "{name}: {}",
            resp.text().await.unwrap_or_default()
        );
        assert!(
            c.setup
                .path()
                .join("workflows/pilot-training.yaml")
                .is_file(),
            "{name}"
        );
        assert!(
            c.engine()
                .catalog()
                .workflows
                .contains_key("pilot-training"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_workflows_page_lists_versions_and_the_files_that_fail_validation() {
    for c in consoles().await {
        let name = c.name;
        std::fs::write(
            c.setup.path().join("workflows/broken.yaml"),
            MISSPELT.replace("yearly-training", "broken"),
        )
        .expect("write");
        let (status, body) = c.get("/console/workflows", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            body.contains("data-workflow=\"community-reserve-selection\""),
            "{name}"
        );
        assert!(
            body.contains("街道社区后备干部选拔培养") && body.contains("v1"),
            "{name}"
        );
        assert!(body.contains("有效"), "{name}");
        let broken = body
            .split("class=\"group invalid-file\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no invalid file: {body}"));
        assert!(
            broken.contains("broken.yaml") && broken.contains("diagnostic error"),
            "{name}"
        );
        assert!(broken.contains("5:5"), "{name}: positions");
        assert!(
            !body.contains("/console/workflows/broken/edit"),
            "{name}: no edit link for a read token"
        );
        let (_, body) = c.get("/console/workflows", Some(&c.admin)).await;
        assert!(
            body.contains("/console/workflows/broken/edit"),
            "{name}: admins can fix it in the editor"
        );
    }
}

#[tokio::test]
async fn a_save_under_a_broken_config_keeps_the_running_catalog_and_says_why() {
    for c in consoles().await {
        let name = c.name;
        let config = c.setup.path().join("yanzhen.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(&config, format!("{text}unknown_setting = 1\n")).expect("break config");
        let path = c.setup.path().join("workflows/yearly-training.yaml");
        let original = std::fs::read_to_string(&path).expect("read");
        let edited = original.replacen("title: 年度集中培训", "title: 年度集中培训（二）", 1);
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[("source", &edited), ("base", &base_of(&path))],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("已保存，但未能生效") && body.contains("重新加载失败"),
            "{name}: {body}"
        );
        assert!(
            body.contains("unknown_setting"),
            "{name}: the config error is shown"
        );
        assert_eq!(
            c.engine()
                .catalog()
                .workflows
                .get("yearly-training")
                .map(|w| w.workflow.title.clone()),
            Some("年度集中培训".to_string()),
            "{name}: the running catalog is kept"
        );
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        let save = audit
            .iter()
            .find(|a| a.entry.action == "workflow.save")
            .unwrap_or_else(|| panic!("{name}: the write is audited"));
        assert!(
            save.entry.detail_json.contains("\"reloaded\":false"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_round_on_the_provisional_calendar_is_marked_and_the_office_is_shown_where_to_put_next_years_file()
 {
    for c in consoles().await {
        let name = c.name;
        // 2026-11-20: the 2027 holiday notice is not in config/calendar yet.
        c.clock.set(at(2026, 11, 20, 10, 0));
        let id = c
            .engine()
            .start_round(StartRound {
                workflow: "annual-assessment".into(),
                start: date(2026, 12, 14),
                params: BTreeMap::new(),
                units: Some(vec!["dongguan".into()]),
                actor: "test".into(),
            })
            .await
            .expect("a round reaching into 2027 starts");
        c.engine().ensure_kickoffs().await.expect("kickoffs");
        let (status, body) = c
            .get(&format!("/console/rounds/{id}"), Some(&c.reader))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(body.contains("id=\"calendar-notice\""), "{name}: banner");
        assert!(body.contains("2027年节假日安排文件尚未添加"), "{name}");
        assert!(
            body.contains(&escaped("config/calendar/2027.json")),
            "{name}: where the file goes"
        );
        // Mon 12-14 + 15 working days crosses Fri 2027-01-01: Tue 01-05, provisional.
        assert!(
            body.contains("2027年1月5日（星期二）18:00（暂按预计日历）"),
            "{name}: the marked deadline: {body}"
        );
        let svg = body
            .split("<svg class=\"gantt\"")
            .nth(1)
            .and_then(|s| s.split("</svg>").next())
            .unwrap_or_else(|| panic!("{name}: no Gantt svg"));
        assert!(
            svg.contains("provisional\" points="),
            "{name}: a dashed diamond"
        );
        assert!(svg.contains("（休息日，暂按预计日历）"), "{name}");
        assert!(
            body.contains("暂按预计日历（该年节假日安排尚未发布）"),
            "{name}: legend"
        );
        // The pending January kickoff (first working day of 2027) is marked too.
        let (_, rounds) = c.get("/console", Some(&c.reader)).await;
        assert!(
            rounds.contains("2027年1月4日（星期一）09:00（暂按预计日历）"),
            "{name}: {rounds}"
        );
        // Branches see the mark but not the office's banner.
        let page = c.signer().unit_link("dongguan", c.now_secs() + 86_400);
        let (status, branch) = c.get(&page, None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(!branch.contains("calendar-notice"), "{name}");
        assert!(
            branch.contains("2027年1月5日（星期二）18:00（暂按预计日历）"),
            "{name}: {branch}"
        );
    }
}

#[tokio::test]
async fn reopening_in_the_console_takes_the_new_deadline_from_the_form() {
    for c in consoles().await {
        let name = c.name;
        let t = c.task("nomination@xiguan").await;
        let post = |action: &'static str, form: Vec<(&'static str, &'static str)>| {
            let c = &c;
            async move {
                c.post(
                    &format!("/console/tasks/{}/{action}", t.id),
                    Some(&c.admin),
                    &form,
                )
                .await
            }
        };
        post("complete", vec![]).await;
        let (status, page) = c
            .get(&format!("/console/tasks/{}", t.id), Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(
            page.contains("name=\"due\"") && page.contains("name=\"in_working_days\""),
            "{name}"
        );
        let resp = post(
            "reopen",
            vec![
                ("note", "材料不全"),
                ("due", "2019-07-22"),
                ("in_working_days", ""),
            ],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        let row = c.store.task(t.id).await.expect("task").expect("exists");
        assert_eq!(row.state, TaskState::Open, "{name}");
        assert_eq!(
            row.due_at,
            Some(at(2019, 7, 22, 18, 0).timestamp_millis()),
            "{name}: the form's date at the task's time of day"
        );
        post("complete", vec![]).await;
        let resp = post(
            "reopen",
            vec![("note", ""), ("due", "2019-06-30"), ("in_working_days", "")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("新截止时间不可用") && body.contains("not in the future"),
            "{name}: {body}"
        );
        assert_eq!(c.snapshot(t.id).await.0, TaskState::Done, "{name}");
    }
}

/// The version in the editor form's hidden `base` field.
fn form_base(body: &str) -> String {
    body.split("name=\"base\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no base field: {body}"))
        .to_string()
}

#[tokio::test]
async fn a_save_over_someone_elses_newer_version_is_refused_with_409_showing_both_versions() {
    for c in consoles().await {
        let name = c.name;
        let path: PathBuf = c.setup.path().join("workflows/yearly-training.yaml");
        let original = std::fs::read_to_string(&path).expect("read");
        // Two clerks open the editor on the same version.
        let (_, page) = c
            .get("/console/workflows/yearly-training/edit", Some(&c.admin))
            .await;
        let opened = form_base(&page);
        assert_eq!(
            opened,
            base_of(&path),
            "{name}: the form carries the file's version"
        );
        let theirs = original.replacen("title: 年度集中培训", "title: 甲改的标题", 1);
        let mine = original.replacen("title: 年度集中培训", "title: 乙改的标题", 1);
        assert!(
            theirs != original && mine != original,
            "{name}: the edits apply"
        );
        // The first save wins.
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[("source", &theirs), ("base", &opened)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        let audits = |all: Vec<yanzhen::store::AuditRow>| {
            all.iter()
                .filter(|a| a.entry.action == "workflow.save")
                .count()
        };
        let saves = audits(c.store.audit_after(0, i64::MAX).await.expect("audit"));
        // The second, based on the version the first replaced, is refused.
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[("source", &mine), ("base", &opened)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        let body = resp.text().await.expect("body");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            theirs,
            "{name}: the newer version stays"
        );
        let section = |id: &str| {
            body.split(&format!("id=\"{id}\">"))
                .nth(1)
                .and_then(|s| s.split("</pre>").next())
                .unwrap_or_else(|| panic!("{name}: no #{id}: {body}"))
                .to_string()
        };
        assert!(
            section("theirs").contains("甲改的标题") && !section("theirs").contains("乙改的标题"),
            "{name}: the current version is shown"
        );
        assert!(
            section("mine").contains("乙改的标题"),
            "{name}: the draft is shown"
        );
        assert!(
            section("mine").contains("<span class=\"changed\">title: 乙改的标题</span>"),
            "{name}: the differing line is marked"
        );
        assert!(body.contains("没有保存"), "{name}: says why");
        assert_eq!(
            audits(c.store.audit_after(0, i64::MAX).await.expect("audit")),
            saves,
            "{name}: nothing recorded for the refused save"
        );
        // The page now carries the current version: saving again replaces it knowingly.
        let now_base = form_base(&body);
        assert_eq!(now_base, base_of(&path), "{name}");
        let resp = c
            .post(
                "/console/workflows/yearly-training/save",
                Some(&c.admin),
                &[("source", &mine), ("base", &now_base)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            mine,
            "{name}"
        );

        // A new workflow whose file someone else created meanwhile is refused the same way.
        let created = c.setup.path().join("workflows/late-comer.yaml");
        std::fs::write(&created, original.replace("yearly-training", "late-comer")).expect("write");
        let resp = c
            .post(
                "/console/workflows/late-comer/save",
                Some(&c.admin),
                &[
                    ("source", &mine.replace("yearly-training", "late-comer")),
                    ("base", ""),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
    }
}

#[tokio::test]
async fn the_editor_previews_from_the_picked_date_as_a_gantt_chart_with_line_numbers() {
    for c in consoles().await {
        let name = c.name;
        let path: PathBuf = c.setup.path().join("workflows/yearly-training.yaml");
        let source = std::fs::read_to_string(&path).expect("read");
        let (_, page) = c
            .get("/console/workflows/yearly-training/edit", Some(&c.admin))
            .await;
        let gutter = page
            .split("id=\"gutter\" aria-hidden=\"true\">")
            .nth(1)
            .and_then(|s| s.split("</pre>").next())
            .expect("gutter");
        assert_eq!(
            gutter.lines().count(),
            source.lines().count(),
            "{name}: one number per line"
        );
        let resp = c
            .post(
                "/console/workflows/yearly-training/preview",
                Some(&c.admin),
                &[("source", &source), ("start", "2024-03-04")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("计划预览（起始 2024年3月4日"),
            "{name}: planned from the picked date: {body}"
        );
        assert!(
            body.contains("name=\"start\" id=\"start\" value=\"2024-03-04\""),
            "{name}: the picker keeps the date"
        );
        assert!(
            body.contains("<svg class=\"gantt\""),
            "{name}: a Gantt chart"
        );
        assert!(
            body.contains("id=\"gantt-details\"") && body.contains("2024年3月"),
            "{name}: the chart's details in words"
        );
    }
}
