//! Editing while running: migrating a round to a new workflow version (dry run and apply),
//! calendar corrections and directory changes re-projecting pending deadlines, and the real
//! daemon reloading edited files (a valid edit applies, an invalid one is rejected whole).

use crate::common;
use yanzhen::core::state::{TaskState, TimerKind, TimerState};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::catalog::{Catalog, LoadedWorkflow, content_hash};
use yanzhen::engine::{Engine, StartRound, ms};
use yanzhen::runtime::clock::VirtualClock;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn with_source(mut cat: Catalog, id: &str, source: &str) -> Catalog {
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("edited");
    let wf = yanzhen::core::yaml::parse(source, &mut d).expect("parses");
    let path = cat
        .workflows
        .get(id)
        .map(|w| w.path.clone())
        .unwrap_or_default();
    cat.workflows.insert(
        id.into(),
        LoadedWorkflow {
            workflow: wf,
            path,
            hash: content_hash(source),
            source: source.into(),
        },
    );
    cat
}

async fn start(e: &Engine, wf: &str, d: NaiveDate, units: &[&str]) -> i64 {
    e.start_round(StartRound {
        workflow: wf.into(),
        start: d,
        params: BTreeMap::new(),
        units: Some(units.iter().map(|u| u.to_string()).collect()),
        actor: "test".into(),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn migrating_a_round_to_a_new_version_shows_the_impact_then_applies_it_atomically() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "m",
        );
        e.register_workflows().await.unwrap();
        let id = start(
            &e,
            "community-reserve-selection",
            NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
            &["dongguan"],
        )
        .await;
        clock.set(at(2019, 7, 3, 10, 0));
        let done = store
            .task_by_key(id, "deployment_meeting@dongguan")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(done.id, "test", None).await.unwrap();

        // v2: nomination a day later, the summary forms dropped, a new 1-day reminder on
        // inspection (which waits for the nominations: it has no timers to move yet and gets
        // v2's when it becomes owed).
        let v1 =
            std::fs::read_to_string(common::workflow_path("community-reserve-selection")).unwrap();
        // The summary forms task is dropped whole (with its `submit:` block).
        let forms_task = {
            let from = v1
                .find("      - id: registration_forms\n")
                .expect("forms task");
            let to = from
                + v1[from..]
                    .find("      - id: report_to_district\n")
                    .expect("next task");
            v1[from..to].to_string()
        };
        let v2 = v1
            .replace("due: {from: round_start, days: 11}     # 7月12日前", "due: {from: round_start, days: 12}")
            .replace(&forms_task, "")
            .replace(
                "        due: {from: round_start, days: 16}     # 7月17日前\n",
                "        due: {from: round_start, days: 16}\n        reminders:\n          before: [{days: 1}]\n",
            );
        assert_ne!(v1, v2);
        e.set_catalog(with_source(
            common::catalog_with(&[], true),
            "community-reserve-selection",
            &v2,
        ))
        .await
        .unwrap();
        let versions = store
            .workflow_versions("community-reserve-selection")
            .await
            .unwrap();
        assert_eq!(versions.len(), 2, "{name}");

        let before = store.pending_timers(Some(id), 10_000).await.unwrap();
        let dry = e
            .reproject(id, Some(versions[1].id), &[], true, "test", "migrate")
            .await
            .unwrap();
        assert_eq!(
            store.pending_timers(Some(id), 10_000).await.unwrap(),
            before,
            "{name}: a dry run changes nothing"
        );
        insta::assert_snapshot!("migrate_dry_run", dry.to_table(Shanghai));

        let applied = e
            .reproject(id, Some(versions[1].id), &[], false, "test", "migrate")
            .await
            .unwrap();
        assert_eq!(
            applied.changes, dry.changes,
            "{name}: applying does what the dry run showed"
        );
        let round = store.round(id).await.unwrap().unwrap();
        assert_eq!(
            round.version_id, versions[1].id,
            "{name}: the round is pinned to v2"
        );
        let nom = store
            .task_by_key(id, "nomination@dongguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nom.due_at, Some(ms(at(2019, 7, 13, 18, 0))), "{name}");
        let forms = store
            .task_by_key(id, "registration_forms@dongguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            forms.state,
            TaskState::Cancelled,
            "{name}: a vanished task is cancelled, not deleted"
        );
        assert_eq!(
            store.task(done.id).await.unwrap().unwrap().state,
            TaskState::Done,
            "{name}: completed work is never rewritten"
        );
        let audit = store.audit_after(0, 10_000).await.unwrap();
        assert!(
            audit.iter().any(|a| a.entry.action == "round.migrate"),
            "{name}"
        );
        assert!(
            audit.iter().any(|a| a.entry.action == "round.reproject"
                && a.entry.detail_json.contains("nomination@dongguan")
                && a.entry.detail_json.contains("\"old\"")),
            "{name}: old and new instants are audited"
        );
        // Running it again finds nothing left to change.
        assert!(
            e.reproject(id, Some(versions[1].id), &[], true, "test", "migrate")
                .await
                .unwrap()
                .changes
                .is_empty(),
            "{name}"
        );
    }
}

const WORKING_DAYS: &str = r#"id: five-working-days
title: 五个工作日
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 20}
    tasks:
      - id: report
        title: 报送材料
        assignee: {role: organization_office}
        due: {from: round_start, working_days: 5}
        reminders:
          before: [{working_days: 1}]
"#;

fn calendar_with_extra_holiday(date: &str) -> yanzhen::core::calendar::Calendar {
    let dir = common::root().join("config/calendar");
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    for (n, t) in texts.iter_mut() {
        if n == "2025.json" {
            *t = t.replacen("\"days\": [", &format!("\"days\": [\n    {{\"name\": \"更正\", \"date\": \"{date}\", \"isOffDay\": true}},"), 1);
        }
    }
    yanzhen::core::calendar::Calendar::from_sources(
        texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
    )
    .expect("corrected calendar")
}

#[tokio::test]
async fn a_calendar_correction_moves_a_pending_working_day_deadline_and_audits_both_instants() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[WORKING_DAYS], false),
            clock,
            "c",
        );
        e.register_workflows().await.unwrap();
        let id = start(
            &e,
            "five-working-days",
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            &[],
        )
        .await;
        let task = store
            .task_by_key(id, "report@role:organization_office")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            task.due_at,
            Some(ms(at(2025, 3, 10, 18, 0))),
            "{name}: Mon 3-3 + 5 working days"
        );
        // The notice is corrected: Wed 3-5 becomes a day off.
        let mut cat = common::catalog_with(&[WORKING_DAYS], false);
        cat.calendar = calendar_with_extra_holiday("2025-03-05");
        e.set_catalog(cat).await.unwrap();
        let impact = e
            .reproject(id, None, &[], false, "daemon", "reload")
            .await
            .unwrap();
        let kinds: Vec<(&str, &str)> = impact
            .changes
            .iter()
            .map(|c| (c.change, c.what.as_str()))
            .collect();
        assert!(
            kinds.contains(&("moved", "task"))
                && kinds.contains(&("moved", "deadline"))
                && kinds.contains(&("moved", "reminder")),
            "{name}: {kinds:?}"
        );
        let task = store.task(task.id).await.unwrap().unwrap();
        assert_eq!(
            task.due_at,
            Some(ms(at(2025, 3, 11, 18, 0))),
            "{name}: one working day later"
        );
        let pending = store.pending_timers(Some(id), 100).await.unwrap();
        let deadline = pending
            .iter()
            .find(|t| t.kind == TimerKind::Deadline)
            .unwrap();
        assert_eq!(deadline.due_at, ms(at(2025, 3, 11, 18, 0)), "{name}");
        assert_eq!(
            pending
                .iter()
                .filter(|t| t.kind == TimerKind::Deadline)
                .count(),
            1,
            "{name}: the old deadline timer is cancelled"
        );
        let audit = store.audit_after(0, 1000).await.unwrap();
        let moved = audit
            .iter()
            .find(|a| {
                a.entry.action == "round.reproject"
                    && a.entry.detail_json.contains("\"what\":\"task\"")
            })
            .unwrap();
        assert!(
            moved.entry.detail_json.contains("2025-03-10T10:00:00Z")
                && moved.entry.detail_json.contains("2025-03-11T10:00:00Z"),
            "{name}: {}",
            moved.entry.detail_json
        );
    }
}

#[tokio::test]
async fn a_branch_added_to_a_running_round_gets_its_tasks_and_a_removed_one_is_cancelled_with_history()
 {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "b",
        );
        e.register_workflows().await.unwrap();
        let id = start(
            &e,
            "community-reserve-selection",
            NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
            &["dongguan", "xiguan"],
        )
        .await;
        clock.set(at(2019, 7, 2, 12, 0));
        // A new community joins the directory and is added to the round.
        let mut cat = common::catalog_with(&[], true);
        let mut unit = cat
            .directory
            .units
            .iter()
            .find(|u| u.id.value == "xinhe")
            .unwrap()
            .clone();
        unit.id.value = "qingnian".into();
        unit.name = "青年社区党委".into();
        cat.directory.units.push(unit);
        for g in cat
            .directory
            .groups
            .iter_mut()
            .filter(|g| g.id.value == "communities")
        {
            g.members
                .as_mut()
                .unwrap()
                .push(yanzhen::core::diagnostic::Sp::bare("qingnian".to_string()));
        }
        e.set_catalog(cat.clone()).await.unwrap();
        let impact = e
            .reproject(
                id,
                None,
                &["qingnian".to_string()],
                false,
                "cli",
                "add-branch qingnian",
            )
            .await
            .unwrap();
        assert!(
            impact.changes.iter().all(|c| c.change == "appears"),
            "{name}: {:?}",
            impact.changes
        );
        let t = store
            .task_by_key(id, "nomination@qingnian")
            .await
            .unwrap()
            .expect("added");
        assert_eq!(
            (t.state.as_str(), t.due_at),
            ("open", Some(ms(at(2019, 7, 12, 18, 0)))),
            "{name}"
        );
        assert!(
            store
                .pending_timers(Some(id), 10_000)
                .await
                .unwrap()
                .iter()
                .any(|x| x.task_id == Some(t.id) && x.kind == TimerKind::Reminder),
            "{name}"
        );
        // xiguan leaves the directory.
        cat.directory.units.retain(|u| u.id.value != "xiguan");
        for g in cat
            .directory
            .groups
            .iter_mut()
            .filter(|g| g.id.value == "communities")
        {
            g.members.as_mut().unwrap().retain(|m| m.value != "xiguan");
        }
        e.set_catalog(cat).await.unwrap();
        e.reproject(id, None, &[], false, "daemon", "reload")
            .await
            .unwrap();
        let gone = store
            .task_by_key(id, "nomination@xiguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.state, TaskState::Cancelled, "{name}");
        assert!(
            !store
                .pending_timers(Some(id), 10_000)
                .await
                .unwrap()
                .iter()
                .any(|x| x.task_id == Some(gone.id)),
            "{name}: its timers are cancelled"
        );
        let history = store.task_history(gone.id).await.unwrap();
        assert_eq!(
            history
                .last()
                .map(|h| (h.from_state.as_str(), h.to_state.as_str())),
            Some(("open", "cancelled")),
            "{name}: history stays"
        );
        assert!(
            store
                .timers_with_prefix(&format!(
                    "{}/nomination@xiguan/",
                    store.round(id).await.unwrap().unwrap().tag
                ))
                .await
                .unwrap()
                .iter()
                .all(|t| t.state == TimerState::Cancelled || t.state == TimerState::Fired),
            "{name}: cancelled, not deleted"
        );
    }
}

#[tokio::test]
async fn migrate_reports_title_description_and_template_changes_and_renames_owed_tasks() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "w",
        );
        e.register_workflows().await.unwrap();
        let id = start(
            &e,
            "community-reserve-selection",
            NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
            &["dongguan", "xiguan"],
        )
        .await;
        let done = store
            .task_by_key(id, "nomination@xiguan")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(done.id, "test", None).await.unwrap();
        // v2 changes only wording: a title, a description, and a reminder template.
        let v1 =
            std::fs::read_to_string(common::workflow_path("community-reserve-selection")).unwrap();
        let v2 = v1
            .replace(
                "title: 组织推荐：确定推荐人选并公示，报送附件1",
                "title: 组织推荐：确定推荐人选并公示",
            )
            .replace("在街道考察截止前全部反馈考察工作组。", "尽快反馈。")
            + "templates:\n  reminder:\n    subject: 【提醒】{{ task.title }}\n    text: 请于{{ deadline }}前完成。\n";
        e.set_catalog(with_source(
            common::catalog_with(&[], true),
            "community-reserve-selection",
            &v2,
        ))
        .await
        .unwrap();
        let versions = store
            .workflow_versions("community-reserve-selection")
            .await
            .unwrap();
        let dry = e
            .reproject(id, Some(versions[1].id), &[], true, "test", "migrate")
            .await
            .unwrap();
        assert!(
            dry.changes.is_empty(),
            "{name}: no date moves: {:?}",
            dry.changes
        );
        let texts: Vec<(&str, &str, &str)> = dry
            .texts
            .iter()
            .map(|c| (c.change, c.what, c.key.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("changed", "description", "task:department_opinions"),
                ("changed", "title", "task:nomination"),
                ("appears", "template", "templates.reminder.subject"),
                ("appears", "template", "templates.reminder.text"),
            ],
            "{name}"
        );
        let table = dry.to_table(Shanghai);
        assert!(
            table.contains("wording: 4 change(s)")
                && table.contains(
                    "「组织推荐：确定推荐人选并公示，报送附件1」 → 「组织推荐：确定推荐人选并公示」"
                ),
            "{name}: {table}"
        );
        e.reproject(id, Some(versions[1].id), &[], false, "test", "migrate")
            .await
            .unwrap();
        let title = |key: &'static str| {
            let store = store.clone();
            async move { store.task_by_key(id, key).await.unwrap().unwrap().title }
        };
        assert_eq!(
            title("nomination@dongguan").await,
            "组织推荐：确定推荐人选并公示",
            "{name}: an owed task takes the new title"
        );
        assert_eq!(
            title("nomination@xiguan").await,
            "组织推荐：确定推荐人选并公示，报送附件1",
            "{name}: a done task keeps the title it was done under"
        );
    }
}
