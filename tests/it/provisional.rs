//! The calendar cliff: a year without a holiday file is planned on the provisional calendar
//! (weekends and statutory holidays), every instant that rests on it is marked, adding the
//! file re-projects pending instants and clears the marks, and the office is told weekly
//! where to put the file.

use crate::common;
use crate::common::{at, date};
use yanzhen::core::state::{MessageKind, TimerKind, TimerState};

use chrono::{NaiveDate, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::core::calendar::Calendar;
use yanzhen::engine::{Engine, StartRound, ms, timer_is_provisional};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::Store;

/// A branch task due 20 working days after the round starts, reminded 2 working days before.
const WINTER: &str = "id: winter\ntitle: 冬季谈心谈话\nexample_start: 2025-12-01\nstages:\n  - id: talks\n    title: 谈话阶段\n    closes: {from: round_start, working_days: 20}\n    tasks:\n      - id: talk\n        title: 谈心谈话\n        assignee: {group: branches}\n        due: {from: round_start, working_days: 20}\n        reminders:\n          before: [{working_days: 2}]\n";

/// The shipped calendar files plus `extra` (file name, text).
fn calendar_plus(extra: &[(&str, &str)]) -> Calendar {
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
    texts.extend(extra.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    Calendar::from_sources(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap()
}

/// A 2027 notice: New Year's Day off, and Saturday 2027-01-09 a make-up working day.
const Y2027: &str = r#"{"year": 2027, "papers": ["https://www.gov.cn/test"], "days": [
  {"name": "元旦", "date": "2027-01-01", "isOffDay": true},
  {"name": "元旦", "date": "2027-01-09", "isOffDay": false}
]}"#;

async fn start(e: &Engine, wf: &str, d: NaiveDate, units: Option<&[&str]>) -> i64 {
    e.start_round(StartRound {
        workflow: wf.into(),
        start: d,
        params: BTreeMap::new(),
        units: units.map(|u| u.iter().map(|x| x.to_string()).collect()),
        actor: "test".into(),
    })
    .await
    .unwrap()
}

async fn engine(store: Arc<dyn Store>, clock: Arc<VirtualClock>, texts: &[&str]) -> Engine {
    let e = Engine::new(store, common::catalog_with(texts, false), clock, "p").with_lease_ms(5_000);
    e.register_workflows().await.unwrap();
    e
}

#[tokio::test]
async fn a_2027_round_is_planned_provisionally_and_reprojected_when_the_2027_file_with_a_make_up_day_is_added()
 {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 12, 14, 8, 0)));
        let e = engine(store.clone(), clock.clone(), &[WINTER]).await;
        // Mon 2026-12-14 + 20 working days: Dec 15..31 are 13, Fri 2027-01-01 is New Year's
        // Day on the provisional calendar, then Jan 4..8 (18), 11 (19), Tue 01-12 (20).
        let id = start(&e, "winter", date(2026, 12, 14), Some(&["dongguan"])).await;
        let task = store
            .task_by_key(id, "talk@dongguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.due_at, Some(ms(at(2027, 1, 12, 18, 0))), "{name}");
        assert!(task.provisional, "{name}: the deadline rests on 2027");
        let pending = store.pending_timers(Some(id), 100).await.unwrap();
        let by_kind = |kind: TimerKind| {
            pending
                .iter()
                .find(|t| t.kind == kind)
                .unwrap_or_else(|| panic!("{name}: no {kind} timer in {pending:?}"))
                .clone()
        };
        let (deadline, reminder, opens) = (
            by_kind(TimerKind::Deadline),
            by_kind(TimerKind::Reminder),
            by_kind(TimerKind::StageOpen),
        );
        assert!(timer_is_provisional(&deadline), "{name}");
        // Jan 12 - 2 working days = Fri Jan 8, counted over Jan 11 (a 2027 day).
        assert_eq!(reminder.due_at, ms(at(2027, 1, 8, 18, 0)), "{name}");
        assert!(timer_is_provisional(&reminder), "{name}");
        assert!(
            !timer_is_provisional(&opens),
            "{name}: the round's own start needs no 2027 day"
        );

        // The 2027 notice is published with Saturday Jan 9 as a make-up working day.
        clock.set(at(2026, 12, 15, 10, 0));
        let mut cat = common::catalog_with(&[WINTER], false);
        cat.calendar = calendar_plus(&[("2027.json", Y2027)]);
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
                && kinds.contains(&("confirmed", "reminder")),
            "{name}: {kinds:?}"
        );
        // ... Jan 8 (18), Sat Jan 9 (19, worked), Mon Jan 11 (20).
        let task = store.task(task.id).await.unwrap().unwrap();
        assert_eq!(
            task.due_at,
            Some(ms(at(2027, 1, 11, 18, 0))),
            "{name}: one day earlier"
        );
        assert!(!task.provisional, "{name}: the mark is gone");
        let pending = store.pending_timers(Some(id), 100).await.unwrap();
        assert!(
            pending.iter().all(|t| !timer_is_provisional(t)),
            "{name}: no pending timer is marked any more: {pending:?}"
        );
        let deadlines: Vec<_> = pending
            .iter()
            .filter(|t| t.kind == TimerKind::Deadline)
            .collect();
        assert_eq!(deadlines.len(), 1, "{name}: the old deadline is cancelled");
        assert_eq!(deadlines[0].due_at, ms(at(2027, 1, 11, 18, 0)), "{name}");
        let reminders: Vec<_> = pending
            .iter()
            .filter(|t| t.kind == TimerKind::Reminder)
            .collect();
        assert_eq!(reminders.len(), 1, "{name}");
        assert_eq!(
            reminders[0].due_at,
            ms(at(2027, 1, 8, 18, 0)),
            "{name}: same instant, now confirmed"
        );
        // Audited with the old and the new instants.
        let audit = store.audit_after(0, 1000).await.unwrap();
        let moved = audit
            .iter()
            .find(|a| {
                a.entry.action == "round.reproject"
                    && a.entry.detail_json.contains("\"what\":\"task\"")
            })
            .unwrap_or_else(|| panic!("{name}: no task re-projection audited"));
        assert!(
            moved.entry.detail_json.contains("2027-01-12T10:00:00Z")
                && moved.entry.detail_json.contains("2027-01-11T10:00:00Z"),
            "{name}: {}",
            moved.entry.detail_json
        );
        assert!(
            audit.iter().any(|a| a.entry.action == "round.reproject"
                && a.entry.detail_json.contains("\"change\":\"confirmed\"")),
            "{name}"
        );
        // A second reload changes nothing.
        let again = e
            .reproject(id, None, &[], false, "daemon", "reload")
            .await
            .unwrap();
        assert!(again.changes.is_empty(), "{name}: {:?}", again.changes);
    }
}

#[test]
fn the_plan_marks_exactly_the_instants_counted_over_2027_in_text_and_json() {
    let text = std::fs::read_to_string(common::workflow_path("annual-assessment")).unwrap();
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("annual-assessment");
    let wf: yanzhen::core::definition::Workflow =
        yanzhen::core::yaml::parse(&text, &mut d).unwrap();
    let (dir, cal) = (common::directory(), common::calendar());
    let (plan, problems) = yanzhen::core::plan::plan(yanzhen::core::plan::PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: Shanghai,
        start: date(2026, 12, 1),
        params: &BTreeMap::new(),
        units: None,
        done: None,
        events: None,
        people: None,
    });
    let plan = plan.unwrap_or_else(|| panic!("the 2026-12-01 round plans: {problems:?}"));
    assert!(
        problems
            .iter()
            .all(|p| p.severity == yanzhen::core::diagnostic::Severity::Warning),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.code == "calendar-provisional"));
    assert_eq!(plan.provisional_year, Some(2027));
    let stage = |id: &str| plan.stages.iter().find(|s| s.id == id).unwrap();
    // Tue 12-01 + 15 working days = Tue 12-22: inside 2026.
    assert!(!stage("assessment").closes.provisional);
    // 12-22 + 15 working days crosses Fri 2027-01-01: Wed 2027-01-13, provisional.
    let filing = stage("filing");
    assert!(!filing.opens.provisional);
    assert!(filing.closes.provisional);
    assert_eq!(
        filing.closes.at.unwrap().with_timezone(&Utc),
        at(2027, 1, 13, 18, 0)
    );
    let task = |key: &str| plan.tasks.iter().find(|t| t.key == key).unwrap();
    // 12-22 + 5 working days = Tue 12-29: no 2027 day looked at.
    let compile = task("compile_and_file@role:organization_office");
    assert!(!compile.due.provisional);
    let timers: Vec<_> = plan
        .timers
        .iter()
        .filter(|t| t.task.as_deref() == Some("compile_and_file@role:organization_office"))
        .map(|t| (t.key.rsplit('@').next().unwrap().to_string(), t.provisional))
        .collect();
    // Overdue every 2 working days from 12-29: Thu 12-31 (2026 only), then over New
    // Year's Day: 2027-01-05 and 01-07. The rung 2 working days after 12-29 is 12-31.
    for (key, provisional) in [
        ("role:organization_office/overdue/1", false),
        ("role:organization_office/overdue/2", true),
        ("role:organization_office/overdue/3", true),
        ("role:organization_office/escalation/0", false),
    ] {
        assert!(
            timers.contains(&(key.to_string(), provisional)),
            "{key}: {timers:?}"
        );
    }
    let table = plan.to_table();
    assert!(
        table.contains("2027年1月13日（星期三）18:00（暂按预计日历）"),
        "{table}"
    );
    assert!(table.contains("2026年12月22日（星期二）18:00 —"), "{table}");
    assert!(
        table.contains("注：标“暂按预计日历”的时间涉及2027年"),
        "{table}"
    );
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["provisional_year"], 2027);
    let filing_json = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "filing")
        .unwrap();
    assert_eq!(filing_json["closes"]["provisional"], true);
    assert!(filing_json["opens"].get("provisional").is_none());
}

#[tokio::test]
async fn the_shipped_year_end_assessment_kickoff_on_2026_12_01_starts_its_round_and_2027_kickoffs_are_scheduled()
 {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 11, 20, 12, 0)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "k",
        )
        .with_lease_ms(5_000);
        e.register_workflows().await.unwrap();
        e.ensure_kickoffs().await.unwrap();
        let pending = |prefix: &'static str| {
            let store = store.clone();
            async move {
                store
                    .timers_with_prefix(prefix)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|t| t.state == TimerState::Pending)
                    .collect::<Vec<_>>()
            }
        };
        // The January and March 2027 kickoffs are scheduled, on the provisional calendar:
        // Fri 01-01 is New Year's Day, so the first working day is Mon 01-04.
        let january = pending("kickoff:branch-yearly-cycle:").await;
        assert_eq!(january.len(), 1, "{name}");
        assert_eq!(january[0].due_at, ms(at(2027, 1, 4, 9, 0)), "{name}");
        assert!(e.kickoff_is_provisional(&january[0]), "{name}");
        let march = pending("kickoff:health-checkup:").await;
        assert_eq!(march.len(), 1, "{name}");
        assert_eq!(march[0].due_at, ms(at(2027, 3, 1, 9, 0)), "{name}");
        // A fixed-date kickoff does not depend on the calendar.
        let june = pending("kickoff:yearly-training:").await;
        assert!(!e.kickoff_is_provisional(&june[0]), "{name}");

        clock.set(at(2026, 12, 1, 9, 0));
        e.fire_due().await.unwrap();
        let rounds: Vec<_> = store
            .rounds()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.workflow_id == "annual-assessment")
            .collect();
        assert_eq!(rounds.len(), 1, "{name}: the year-end round started");
        assert_eq!(rounds[0].start_date, "2026-12-01", "{name}");
        let audit = store.audit_after(0, 10_000).await.unwrap();
        assert!(
            !audit.iter().any(|a| a.entry.action == "kickoff.failed"),
            "{name}: no hourly retry"
        );
        let status = e.status(rounds[0].id).await.unwrap();
        let filing = status.stages.iter().find(|s| s.id == "filing").unwrap();
        assert!(
            filing.closes_provisional && !filing.opens_provisional,
            "{name}"
        );

        // The 2027 notice makes Mon 01-04 a day off too: the January kickoff moves to
        // Tue 01-05, audited with both instants.
        let y2027 = r#"{"year": 2027, "papers": [], "days": [
  {"name": "元旦", "date": "2027-01-01", "isOffDay": true},
  {"name": "元旦", "date": "2027-01-04", "isOffDay": true}
]}"#;
        let mut cat = common::catalog_with(&[], true);
        cat.calendar = calendar_plus(&[("2027.json", y2027)]);
        e.set_catalog(cat).await.unwrap();
        let january = pending("kickoff:branch-yearly-cycle:").await;
        assert_eq!(january.len(), 1, "{name}: {january:?}");
        assert_eq!(january[0].due_at, ms(at(2027, 1, 5, 9, 0)), "{name}");
        assert!(!e.kickoff_is_provisional(&january[0]), "{name}");
        let march = pending("kickoff:health-checkup:").await;
        assert_eq!(
            march[0].due_at,
            ms(at(2027, 3, 1, 9, 0)),
            "{name}: unchanged"
        );
        let moved: Vec<_> = store
            .audit_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.entry.action == "kickoff.reproject")
            .collect();
        assert_eq!(moved.len(), 1, "{name}: {moved:?}");
        assert!(
            moved[0].entry.detail_json.contains("2027-01-04T01:00:00Z")
                && moved[0].entry.detail_json.contains("2027-01-05T01:00:00Z"),
            "{name}: {}",
            moved[0].entry.detail_json
        );
    }
}

#[tokio::test]
async fn from_1_november_the_office_is_told_once_a_week_where_to_put_next_years_file_even_by_two_daemons()
 {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 10, 20, 12, 0)));
        let e1 = engine(store.clone(), clock.clone(), &[]).await;
        let e2 = engine(store.clone(), clock.clone(), &[]).await;
        for e in [&e1, &e2] {
            e.set_catalog(common::catalog_with(&[], false))
                .await
                .unwrap();
        }
        let notices = || {
            let store = store.clone();
            async move { store.timers_with_prefix("calendar:2027:").await.unwrap() }
        };
        let t = notices().await;
        assert_eq!(t.len(), 1, "{name}: two daemons write one timer: {t:?}");
        assert_eq!(
            t[0].due_at,
            ms(at(2026, 11, 1, 9, 0)),
            "{name}: written ahead for 1 November"
        );
        let messages = || {
            let store = store.clone();
            async move {
                store
                    .outbox_after(0, i64::MAX)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|r| r.kind == MessageKind::CalendarMissing)
                    .collect::<Vec<_>>()
            }
        };
        // Nothing before 1 November.
        clock.set(at(2026, 10, 31, 23, 0));
        e1.fire_due().await.unwrap();
        assert!(messages().await.is_empty(), "{name}");
        // Both daemons fire what is due at once: one message.
        clock.set(at(2026, 11, 1, 9, 0));
        let (a, b) = tokio::join!(e1.fire_due(), e2.fire_due());
        a.unwrap();
        b.unwrap();
        let m = messages().await;
        assert_eq!(m.len(), 1, "{name}: {m:?}");
        assert_eq!(m[0].address, "zzb@qingshui.example.gov.cn", "{name}");
        assert!(
            m[0].subject.contains("2027年节假日安排文件尚未添加"),
            "{name}"
        );
        for needle in [
            "config/calendar/2027.json",
            "holiday-cn",
            "isOffDay",
            "暂按预计日历",
        ] {
            assert!(
                m[0].body.contains(needle),
                "{name}: {needle}: {}",
                m[0].body
            );
        }
        // A restart in between writes nothing new; the next week's notice is pending.
        e2.set_catalog(common::catalog_with(&[], false))
            .await
            .unwrap();
        let pending: Vec<_> = notices()
            .await
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(pending.len(), 1, "{name}");
        assert_eq!(pending[0].due_at, ms(at(2026, 11, 8, 9, 0)), "{name}");
        clock.set(at(2026, 11, 5, 9, 0));
        e1.fire_due().await.unwrap();
        assert_eq!(messages().await.len(), 1, "{name}: once a week");
        clock.set(at(2026, 11, 8, 9, 0));
        e2.fire_due().await.unwrap();
        assert_eq!(messages().await.len(), 2, "{name}: the second week");

        // The file is added: the next notice stops, and nothing new is written.
        let mut cat = common::catalog_with(&[], false);
        cat.calendar = calendar_plus(&[("2027.json", Y2027)]);
        e1.set_catalog(cat.clone()).await.unwrap();
        e2.set_catalog(cat).await.unwrap();
        clock.set(at(2026, 11, 22, 9, 0));
        e1.fire_due().await.unwrap();
        assert_eq!(
            messages().await.len(),
            2,
            "{name}: no message once the file is there"
        );
        assert!(
            notices()
                .await
                .iter()
                .all(|t| t.state != TimerState::Pending),
            "{name}: the series ends"
        );
        let audit = store.audit_after(0, 10_000).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.entry.action == "calendar.notice.stopped"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn messages_and_the_ics_feed_mark_a_provisional_deadline() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 12, 14, 8, 0)));
        let e = engine(store.clone(), clock.clone(), &[WINTER]).await;
        start(&e, "winter", date(2026, 12, 14), Some(&["dongguan"])).await;
        // The reminder on Fri 2027-01-08 names the provisional deadline.
        clock.set(at(2027, 1, 8, 18, 0));
        e.fire_due().await.unwrap();
        let rows = store.outbox_after(0, i64::MAX).await.unwrap();
        let reminder = rows
            .iter()
            .find(|r| r.kind == MessageKind::Reminder)
            .unwrap_or_else(|| panic!("{name}: no reminder in {rows:?}"));
        assert!(
            reminder
                .body
                .contains("2027年1月12日（星期二）18:00（暂按预计日历）截止"),
            "{name}: {}",
            reminder.body
        );
        assert!(
            reminder.subject.contains("（暂按预计日历）"),
            "{name}: {}",
            reminder.subject
        );
        let feed = yanzhen::notify::ics::unit_feed(&e, "dongguan")
            .await
            .unwrap()
            .replace("\r\n ", "");
        assert!(
            feed.contains("SUMMARY:（预计）截止：谈心谈话"),
            "{name}: {feed}"
        );
        assert!(feed.contains("暂按预计日历"), "{name}: {feed}");
    }
}

#[test]
fn the_plan_status_and_task_list_commands_print_the_mark() {
    let plan = std::process::Command::new(env!("CARGO_BIN_EXE_yanzhen"))
        .args(["plan", "annual-assessment", "--start", "2026-12-01"])
        .current_dir(common::root())
        .env("YANZHEN_LOG", "warn")
        .output()
        .unwrap();
    assert!(plan.status.success(), "{plan:?}");
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("2027年1月13日（星期三）18:00（暂按预计日历）"),
        "{out}"
    );
    let err = String::from_utf8_lossy(&plan.stderr);
    assert!(err.contains("warning[calendar-provisional]"), "{err}");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_yanzhen"))
        .args([
            "plan",
            "annual-assessment",
            "--start",
            "2026-12-01",
            "--format",
            "json",
        ])
        .current_dir(common::root())
        .env("YANZHEN_LOG", "warn")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["provisional_year"], 2027);

    let s = common::daemon::Setup::new();
    std::fs::write(s.path().join("workflows/winter.yaml"), WINTER).unwrap();
    s.run(&[
        "round",
        "start",
        "winter",
        "--start",
        "2026-12-14",
        "--branches",
        "dongguan",
    ]);
    let list = String::from_utf8_lossy(&s.run(&["task", "list", "1"]).stdout).to_string();
    assert!(
        list.contains("截止 2027年1月12日（星期二）18:00（暂按预计日历）"),
        "{list}"
    );
    let status = String::from_utf8_lossy(&s.run(&["status", "1"]).stdout).to_string();
    assert!(
        status.contains("— 2027年1月12日（星期二）18:00（暂按预计日历）"),
        "the stage's closing: {status}"
    );
    // The missing-file line depends on today's date: from 1 November 2026 on, as long as
    // config/calendar has no 2027.json.
    let today = Utc::now().with_timezone(&Shanghai).date_naive();
    if let Some(year) = common::calendar().wanted_year(today) {
        assert!(
            status.contains(&format!("calendar: {year}年节假日安排文件尚未添加")),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_daemon_starting_after_the_file_was_added_reprojects_rounds_that_still_carry_marks() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 12, 14, 8, 0)));
        let e = engine(store.clone(), clock.clone(), &[WINTER]).await;
        let id = start(&e, "winter", date(2026, 12, 14), Some(&["dongguan"])).await;
        drop(e);
        // The 2027 file was added while no daemon ran; the next one starts with it.
        clock.set(at(2026, 12, 16, 8, 0));
        let mut cat = common::catalog_with(&[WINTER], false);
        cat.calendar = calendar_plus(&[("2027.json", Y2027)]);
        let e = Engine::new(store.clone(), cat, clock.clone(), "q");
        e.register_workflows().await.unwrap();
        assert_eq!(e.reproject_provisional_rounds().await.unwrap(), 1, "{name}");
        let task = store
            .task_by_key(id, "talk@dongguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.due_at, Some(ms(at(2027, 1, 11, 18, 0))), "{name}");
        assert!(!task.provisional, "{name}");
        assert_eq!(
            e.reproject_provisional_rounds().await.unwrap(),
            0,
            "{name}: nothing is marked any more"
        );
    }
}

#[tokio::test]
async fn saving_the_2027_file_in_the_calendar_folder_and_reloading_moves_the_marked_deadline() {
    for (name, store, _g) in common::stores::stores().await {
        let setup = common::daemon::Setup::new()
            .only_workflow("winter.yaml", WINTER)
            .with_own_calendar();
        let (cal_dir, config) = (setup.calendar_dir(), setup.config());
        let (cat, diags) = yanzhen::catalog::load(&config, date(2026, 12, 14));
        assert!(
            diags.iter().any(
                |d| d.code == "calendar-file-missing" && d.file.ends_with("calendar/2027.json")
            ),
            "{name}: the catalog warns: {diags:?}"
        );
        let clock = Arc::new(VirtualClock::new(at(2026, 12, 14, 8, 0)));
        let e = Engine::new(store.clone(), cat.unwrap(), clock.clone(), "r");
        e.register_workflows().await.unwrap();
        let id = start(&e, "winter", date(2026, 12, 14), Some(&["dongguan"])).await;
        std::fs::write(cal_dir.join("2027.json"), Y2027).unwrap();
        clock.set(at(2026, 12, 15, 9, 0));
        let report = e.reload(&config).await;
        assert!(report.applied, "{name}: {:?}", report.diagnostics);
        assert!(
            !report
                .diagnostics
                .iter()
                .any(|d| d.code == "calendar-file-missing"),
            "{name}: the warning is gone"
        );
        assert_eq!(report.reprojected.len(), 1, "{name}");
        let task = store
            .task_by_key(id, "talk@dongguan")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.due_at, Some(ms(at(2027, 1, 11, 18, 0))), "{name}");
        assert!(!task.provisional, "{name}");
    }
}

#[test]
fn validate_warns_about_a_provisional_next_kickoff_and_from_1_november_about_the_missing_file() {
    let (dir, cal) = (common::directory(), common::calendar());
    let text = std::fs::read_to_string(common::workflow_path("branch-yearly-cycle")).unwrap();
    let ctx = yanzhen::core::validate::Context {
        directory: &dir,
        calendar: &cal,
        default_tz: Shanghai,
        today: date(2026, 11, 20),
    };
    let (wf, d) =
        yanzhen::core::validate::validate_workflow("branch-yearly-cycle.yaml", &text, ctx);
    assert!(wf.is_some(), "a warning, not an error: {:?}", d.items());
    let all = d.into_sorted();
    let kickoff = all
        .iter()
        .find(|x| x.code == "calendar-provisional" && x.message.starts_with("the next kickoff"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        kickoff.message.contains("2027年1月4日（星期一）"),
        "{}",
        kickoff.message
    );
    assert!(
        !all.iter()
            .any(|x| x.message.contains("cannot be planned yet")),
        "{all:?}"
    );
    let config = yanzhen::config::Config::default();
    assert!(yanzhen::catalog::calendar_diagnostics(&config, &cal, date(2026, 10, 31)).is_empty());
    let missing = yanzhen::catalog::calendar_diagnostics(&config, &cal, date(2026, 11, 1));
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].code, "calendar-file-missing");
    assert_eq!(
        missing[0].severity,
        yanzhen::core::diagnostic::Severity::Warning
    );
    assert!(missing[0].file.ends_with("2027.json"), "{:?}", missing[0]);
}
