//! Tasks that wait (after:, joins), early and late rounds, catch-up, reopening.

use super::*;

/// Task `c` may start only after `a` (every community) and `b` (the office); its deadline is
/// a fixed date.
const AFTER: &str = "id: after-test\ntitle: 顺序测试\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 20}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {group: communities}\n        due: {from: round_start, days: 5}\n      - id: b\n        title: 乙\n        assignee: {role: organization_office}\n        due: {from: round_start, days: 5}\n      - id: c\n        title: 丙\n        assignee: {role: committee_head}\n        after: [a, b]\n        due: {from: round_start, days: 10}\n        reminders: {before: [{days: 2}]}\n";

async fn task_id(store: &Arc<dyn Store>, round: i64, key: &str) -> i64 {
    store
        .task_by_key(round, key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no task {key}"))
        .id
}

#[tokio::test]
async fn a_task_with_after_waits_and_is_not_reminded_until_its_prerequisites_are_done() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[AFTER], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "after-test",
                date(2025, 3, 3),
                Some(vec!["dongguan", "xiguan"]),
            ))
            .await
            .unwrap();
        let c = store
            .task_by_key(id, "c@role:committee_head")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.state,
            TaskState::Waiting,
            "{name}: a and b are outstanding"
        );
        assert_eq!(
            c.due_at,
            Some(ms(at(2025, 3, 13, 18, 0))),
            "{name}: its fixed deadline is kept while it waits"
        );
        // Its reminder (3-11 18:00) passes while a and b are outstanding.
        timers(&e)
            .run_until(&clock, at(2025, 3, 12, 10, 0))
            .await
            .unwrap();
        let told_c = |rows: &[yanzhen::store::OutboxRow]| {
            rows.iter()
                .filter(|o| o.subject.contains("丙"))
                .map(|o| o.kind)
                .collect::<Vec<_>>()
        };
        assert!(told_c(&outbox(&store).await).is_empty(), "{name}");
        for key in ["a@dongguan", "a@xiguan"] {
            e.complete_task(task_id(&store, id, key).await, "test", None)
                .await
                .unwrap();
            let c = store.task(c.id).await.unwrap().unwrap();
            assert_eq!(c.state, TaskState::Waiting, "{name}: b is outstanding");
        }
        e.complete_task(
            task_id(&store, id, "b@role:organization_office").await,
            "test",
            None,
        )
        .await
        .unwrap();
        let c = store.task(c.id).await.unwrap().unwrap();
        assert_eq!(c.state, TaskState::Open, "{name}");
        assert_eq!(c.due_at, Some(ms(at(2025, 3, 13, 18, 0))), "{name}");
        timers(&e)
            .run_until(&clock, at(2025, 3, 13, 19, 0))
            .await
            .unwrap();
        assert_eq!(
            told_c(&outbox(&store).await),
            [MessageKind::DueToday],
            "{name}: its deadline notice, not the reminder that passed while it waited"
        );
    }
}

/// `b` counts from the completion of `a`, and lives in a later stage.
const EARLY: &str = "id: early\ntitle: 提前完成\nstages:\n  - id: s1\n    title: 上报\n    closes: {from: round_start, days: 5}\n    tasks:\n      - id: a\n        title: 上报\n        assignee: {group: communities}\n        due: {from: stage_close}\n        reminders: {before: [{days: 2}]}\n  - id: s2\n    title: 汇总\n    duration: {days: 5}\n    tasks:\n      - id: b\n        title: 汇总\n        assignee: {role: organization_office}\n        after: [a]\n        due: {from: {done: a}, days: 2}\n";

#[tokio::test]
async fn a_branch_may_complete_a_task_before_its_round_starts_and_is_not_reminded_of_it() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 2, 20, 10, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[EARLY], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start("early", date(2025, 3, 10), Some(vec!["dongguan"])))
            .await
            .unwrap();
        let done = e
            .complete_task(
                task_id(&store, id, "a@dongguan").await,
                "link:dongguan",
                None,
            )
            .await
            .unwrap_or_else(|err| panic!("{name}: early completion refused: {err}"));
        assert_eq!(done.state, TaskState::Done, "{name}");
        let b = store
            .task_by_key(id, "b@role:organization_office")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.state, TaskState::Open, "{name}");
        // Not due before its stage opens (3-15 18:00): two days counted from the opening.
        assert_eq!(b.due_at, Some(ms(at(2025, 3, 17, 18, 0))), "{name}");
        timers(&e)
            .run_until(&clock, at(2025, 3, 31, 0, 0))
            .await
            .unwrap();
        let about_a: Vec<String> = outbox(&store)
            .await
            .into_iter()
            .filter(|o| o.subject.contains("上报"))
            .map(|o| o.kind.to_string())
            .collect();
        assert!(about_a.is_empty(), "{name}: {about_a:?}");
    }
}

/// Communities owe `a` (3 days) and `b` (5 days); the office owes `c` (40 days). Reminders
/// two days before, three daily overdue reminders, two escalation rungs.
const LATE: &str = "id: late\ntitle: 补发测试\ndefaults:\n  reminders:\n    before: [{days: 2}]\n    overdue: {every: {days: 1}, max: 3}\n  escalation:\n    - after: {days: 1}\n      to: committee_head\n    - after: {days: 2}\n      to: district_department\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 45}\n    tasks:\n      - id: a\n        title: 甲项\n        assignee: {group: communities}\n        due: {from: round_start, days: 3}\n      - id: b\n        title: 乙项\n        assignee: {group: communities}\n        due: {from: round_start, days: 5}\n      - id: c\n        title: 丙项\n        assignee: {role: organization_office}\n        due: {from: round_start, days: 40}\n";

#[tokio::test]
async fn a_round_started_in_the_past_sends_no_old_due_today_and_one_catch_up_per_assignee() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 20, 10, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[LATE], false),
            clock.clone(),
            "a",
        )
        .await;
        e.start_round(start(
            "late",
            date(2025, 3, 3),
            Some(vec!["dongguan", "xiguan"]),
        ))
        .await
        .unwrap();
        e.fire_due().await.unwrap();
        let rows = outbox(&store).await;
        let kinds: Vec<&str> = rows.iter().map(|o| o.kind.as_str()).collect();
        assert!(
            !kinds
                .iter()
                .any(|k| ["due_today", "overdue", "escalation", "reminder"].contains(k)),
            "{name}: no burst for instants before the start: {kinds:?}"
        );
        let catch_up: Vec<&yanzhen::store::OutboxRow> = rows
            .iter()
            .filter(|o| o.kind == MessageKind::CatchUp)
            .collect();
        let mut who: Vec<&str> = catch_up
            .iter()
            .map(|o| o.address.split('@').next().unwrap_or(""))
            .collect();
        who.sort();
        assert_eq!(
            who,
            ["dongguan", "xiguan"],
            "{name}: one per assignee with overdue work"
        );
        for o in &catch_up {
            assert!(o.subject.contains("补发"), "{name}: {}", o.subject);
            assert!(
                o.body.contains("甲项") && o.body.contains("乙项"),
                "{name}: {}",
                o.body
            );
            assert!(!o.body.contains("丙项"), "{name}");
        }
        let audit = store.audit_after(0, 10_000).await.unwrap();
        assert!(
            audit.iter().any(|a| a.entry.action == "timer.skipped"
                && a.entry.subject.ends_with("a@dongguan/deadline")),
            "{name}: the skipped instants are audited"
        );
        // The office's task, due in the future, runs as planned.
        timers(&e)
            .run_until(&clock, at(2025, 4, 12, 19, 0))
            .await
            .unwrap();
        let c: Vec<String> = outbox(&store)
            .await
            .into_iter()
            .filter(|o| o.subject.contains("丙项"))
            .map(|o| o.kind.to_string())
            .collect();
        assert_eq!(c, ["reminder", "due_today"], "{name}");
    }
}

#[tokio::test]
async fn after_downtime_a_late_task_gets_one_overdue_notice_and_only_its_highest_due_rung() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[LATE], false),
            clock.clone(),
            "a",
        )
        .await;
        e.start_round(start("late", date(2025, 3, 3), Some(vec!["dongguan"])))
            .await
            .unwrap();
        timers(&e)
            .run_until(&clock, at(2025, 3, 4, 12, 0))
            .await
            .unwrap();
        // The daemon is down from 3-4 until 3-20: a's deadline (3-6), its three overdue
        // reminders and both rungs all passed, and b's too.
        clock.set(at(2025, 3, 20, 10, 0));
        e.fire_due().await.unwrap();
        let rows = outbox(&store).await;
        for task in ["甲项", "乙项"] {
            let mut kinds: Vec<(String, String)> = rows
                .iter()
                .filter(|o| o.subject.contains(task) && o.created_at == ms(clock.now()))
                .map(|o| (o.kind.to_string(), o.address.clone()))
                .collect();
            kinds.sort();
            assert_eq!(
                kinds,
                [
                    (
                        "escalation".to_string(),
                        "zzk@qu.example.gov.cn".to_string()
                    ),
                    (
                        "overdue".to_string(),
                        "dongguan@qingshui.example.gov.cn".to_string()
                    ),
                ],
                "{name}: {task}"
            );
        }
        let audit = store.audit_after(0, 10_000).await.unwrap();
        assert!(
            audit.iter().any(|a| a.entry.action == "timer.skipped"
                && a.entry.subject.ends_with("a@dongguan/escalation/0")),
            "{name}: the lower rung is audited as skipped"
        );
    }
}

#[tokio::test]
async fn reopening_after_the_deadline_sets_a_new_deadline_and_reminds_from_it() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[LATE], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start("late", date(2025, 3, 3), Some(vec!["dongguan"])))
            .await
            .unwrap();
        let a = task_id(&store, id, "a@dongguan").await;
        clock.set(at(2025, 3, 4, 9, 0));
        e.complete_task(a, "test", None).await.unwrap();
        timers(&e)
            .run_until(&clock, at(2025, 3, 20, 10, 0))
            .await
            .unwrap(); // Thursday
        let before = outbox(&store).await.len();
        e.reopen_task(a, "test", Some("材料不全".into()))
            .await
            .unwrap();
        e.fire_due().await.unwrap();
        let burst: Vec<String> = outbox(&store).await[before..]
            .iter()
            .map(|o| format!("{} {}", o.kind, o.subject))
            .collect();
        assert!(
            burst.is_empty(),
            "{name}: nothing fires for the old deadline: {burst:?}"
        );
        let row = store.task(a).await.unwrap().unwrap();
        // Default: five working days from now, at the task's time of day.
        assert_eq!(row.due_at, Some(ms(at(2025, 3, 27, 18, 0))), "{name}");
        timers(&e)
            .run_until(&clock, at(2025, 3, 27, 19, 0))
            .await
            .unwrap();
        let after: Vec<String> = outbox(&store).await[before..]
            .iter()
            .filter(|o| o.subject.contains("甲项"))
            .map(|o| o.kind.to_string())
            .collect();
        assert_eq!(after, ["reminder", "due_today"], "{name}");
    }
}

/// `collect` counts from the completion of every community's `report`.
const COLLECT_JOIN: &str = "id: join\ntitle: 汇总测试\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 10}\n    tasks:\n      - id: report\n        title: 上报材料\n        assignee: {group: communities}\n        due: {from: stage_close}\n      - id: collect\n        title: 汇总材料\n        assignee: {role: organization_office}\n        after: [report]\n        due: {from: {done: report}, days: 2}\n";

#[tokio::test]
async fn waiving_the_last_outstanding_prerequisite_releases_the_join() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[COLLECT_JOIN], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "join",
                date(2025, 3, 3),
                Some(vec!["dongguan", "xiguan"]),
            ))
            .await
            .unwrap();
        clock.set(at(2025, 3, 4, 10, 0));
        e.complete_task(task_id(&store, id, "report@dongguan").await, "test", None)
            .await
            .unwrap();
        clock.set(at(2025, 3, 5, 10, 0));
        e.waive_task(
            task_id(&store, id, "report@xiguan").await,
            "test",
            Some("本轮不参加".into()),
        )
        .await
        .unwrap();
        let c = store
            .task_by_key(id, "collect@role:organization_office")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.state, TaskState::Open, "{name}");
        assert_eq!(
            c.due_at,
            Some(ms(at(2025, 3, 7, 18, 0))),
            "{name}: two days after the waiver"
        );
    }
}

/// A state change written past the engine (as an older daemon, or a bug, might have left
/// it): the task is done but nothing activated its dependent.
fn raw_complete(task_id: i64, at: DateTime<Utc>) -> yanzhen::store::Transition {
    yanzhen::store::Transition {
        task_id,
        from: vec![TaskState::Open],
        to: TaskState::Done,
        at: ms(at),
        actor: "test".into(),
        note: None,
        action: "complete".into(),
        cancel_timers: true,
        new_timers: vec![],
        activate: vec![],
        set_due: None,
        submission: None,
        audit: yanzhen::store::AuditEntry {
            at: ms(at),
            actor: "test".into(),
            action: "task.complete".into(),
            subject: format!("task:{task_id}"),
            detail_json: "{}".into(),
        },
    }
}

#[tokio::test]
async fn status_reports_a_task_that_still_waits_although_its_prerequisites_are_done() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 4, 10, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[COLLECT_JOIN], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "join",
                date(2025, 3, 3),
                Some(vec!["dongguan", "xiguan"]),
            ))
            .await
            .unwrap();
        assert!(e.status(id).await.unwrap().stuck.is_empty(), "{name}");
        for key in ["report@dongguan", "report@xiguan"] {
            store
                .transition(raw_complete(task_id(&store, id, key).await, clock.now()))
                .await
                .unwrap();
        }
        let stuck: Vec<String> = e
            .status(id)
            .await
            .unwrap()
            .stuck
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(stuck, ["collect@role:organization_office"], "{name}");
    }
}

/// Each community's `d` follows its own `a`.
const PAIRED: &str = "id: paired\ntitle: 配对\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 20}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {group: communities}\n        due: {from: round_start, days: 5}\n      - id: d\n        title: 丁\n        assignee: {group: communities}\n        after: [a]\n        due: {from: round_start, days: 10}\n        reminders: {before: [{days: 2}]}\n";

#[tokio::test]
async fn a_branch_added_to_a_round_waits_for_its_own_prerequisite_like_the_others() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[PAIRED], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start("paired", date(2025, 3, 3), Some(vec!["dongguan"])))
            .await
            .unwrap();
        e.complete_task(task_id(&store, id, "a@dongguan").await, "test", None)
            .await
            .unwrap();
        let d = store.task_by_key(id, "d@dongguan").await.unwrap().unwrap();
        assert_eq!(d.state, TaskState::Open, "{name}: its own a is done");
        e.reproject(id, None, &["xiguan".to_string()], false, "test", "add")
            .await
            .unwrap();
        let d = store.task_by_key(id, "d@xiguan").await.unwrap().unwrap();
        assert_eq!(d.state, TaskState::Waiting, "{name}: xiguan's a is open");
        assert_eq!(d.due_at, Some(ms(at(2025, 3, 13, 18, 0))), "{name}");
        let timers = store.task_timers(&[d.id]).await.unwrap();
        assert!(
            timers.is_empty(),
            "{name}: no reminders while it waits: {timers:?}"
        );
        e.complete_task(task_id(&store, id, "a@xiguan").await, "test", None)
            .await
            .unwrap();
        let d = store.task(d.id).await.unwrap().unwrap();
        assert_eq!(d.state, TaskState::Open, "{name}");
        assert!(
            !store.task_timers(&[d.id]).await.unwrap().is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn cancelled_tasks_are_left_out_of_the_stage_totals() {
    const TWO: &str = "id: two\ntitle: 二\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 5}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {group: communities}\n        due: {from: stage_close}\n";
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[TWO], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "two",
                date(2025, 3, 3),
                Some(vec!["dongguan", "xiguan"]),
            ))
            .await
            .unwrap();
        let dongguan = store.task_by_key(id, "a@dongguan").await.unwrap().unwrap();
        e.complete_task(dongguan.id, "test", None).await.unwrap();
        // xiguan leaves the directory: the re-projection cancels its task.
        let mut cat = common::catalog_with(&[TWO], false);
        cat.directory.units.retain(|u| u.id.value != "xiguan");
        for g in cat.directory.groups.iter_mut() {
            if let Some(m) = g.members.as_mut() {
                m.retain(|m| m.value != "xiguan");
            }
        }
        e.set_catalog(cat).await.unwrap();
        e.reproject(id, None, &[], false, "test", "reload")
            .await
            .unwrap();
        let xiguan = store.task_by_key(id, "a@xiguan").await.unwrap().unwrap();
        assert_eq!(xiguan.state, TaskState::Cancelled, "{name}");
        let s = e.status(id).await.unwrap();
        assert_eq!(
            (s.stages[0].done, s.stages[0].total),
            (1, 1),
            "{name}: the cancelled task is not owed, so the stage is complete"
        );
    }
}

#[tokio::test]
async fn a_round_for_unknown_unit_ids_is_refused_with_a_hint() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let err = e
            .start_round(start(
                "community-reserve-selection",
                date(2019, 7, 1),
                Some(vec!["dongguan", "dongguang"]),
            ))
            .await
            .expect_err("unknown unit");
        let text = err.to_string();
        assert!(
            text.contains("no unit `dongguang`") && text.contains("did you mean `dongguan`?"),
            "{name}: {text}"
        );
        assert!(store.rounds().await.unwrap().is_empty(), "{name}");
    }
}

// ---------- stored data that does not parse ----------
