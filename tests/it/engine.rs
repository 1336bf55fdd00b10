//! The engine on real stores (a SQLite file, and PostgreSQL when configured) under a
//! virtual clock: rounds, firing, completion, escalation, kickoffs, catch-up, clock jumps,
//! several daemons on one database (serve and simulate agreeing: tests/it/driver.rs).

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use yanzhen::core::state::{MessageKind, RoundStatus, TaskState, TimerState};
use yanzhen::engine::{Engine, StartRound, ms};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

async fn engine_on(
    store: Arc<dyn Store>,
    cat: yanzhen::catalog::Catalog,
    clock: Arc<VirtualClock>,
    owner: &str,
) -> Arc<Engine> {
    let e = Engine::new(store, cat, clock, owner).with_lease_ms(5_000);
    e.register_workflows().await.expect("register");
    Arc::new(e)
}

fn start(workflow: &str, d: NaiveDate, units: Option<Vec<&str>>) -> StartRound {
    StartRound {
        workflow: workflow.into(),
        start: d,
        params: BTreeMap::new(),
        units: units.map(|u| u.into_iter().map(String::from).collect()),
        actor: "test".into(),
    }
}

/// The shared driver over the timers only: the outbox rows stay as the engine wrote them.
fn timers(e: &Arc<Engine>) -> Driver {
    Driver::new(e.clone(), None)
}

async fn outbox(store: &Arc<dyn Store>) -> Vec<yanzhen::store::OutboxRow> {
    store.outbox_after(0, i64::MAX).await.expect("outbox")
}

#[tokio::test]
async fn round_start_writes_every_task_and_timer_of_the_plan() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(store.clone(), common::catalog_with(&[], true), clock, "a").await;
        let id = e
            .start_round(start("community-reserve-selection", date(2019, 7, 1), None))
            .await
            .expect("start");
        let tasks = store.tasks(id).await.expect("tasks");
        assert_eq!(tasks.len(), 26, "{name}");
        let waiting: Vec<&str> = tasks
            .iter()
            .filter(|t| t.state == TaskState::Waiting)
            .map(|t| t.task.as_str())
            .collect();
        assert_eq!(
            waiting,
            ["inspection", "decision", "report_to_district", "archive"],
            "{name}: tasks counted from a completion, or with `after:`, wait"
        );
        let pending = store
            .pending_timers(Some(id), 10_000)
            .await
            .expect("timers");
        // Every timer of the plan, except those of the waiting tasks: they are created
        // only when their tasks become owed.
        let cat = common::catalog_with(&[], true);
        let (p, _) = yanzhen::core::plan::plan(yanzhen::core::plan::PlanInput {
            workflow: &cat.workflows["community-reserve-selection"].workflow,
            directory: &cat.directory,
            calendar: &cat.calendar,
            tz: Shanghai,
            start: date(2019, 7, 1),
            params: &BTreeMap::new(),
            units: None,
            done: None,
            events: None,
        });
        let p = p.expect("plans");
        let waiting_keys: HashSet<&str> = tasks
            .iter()
            .filter(|t| t.state == TaskState::Waiting)
            .map(|t| t.key.as_str())
            .collect();
        let expected = p
            .timers
            .iter()
            .filter(|t| t.task.as_deref().is_none_or(|k| !waiting_keys.contains(k)))
            .count();
        assert_eq!(pending.len(), expected, "{name}");
        assert!(expected < p.timers.len(), "{name}");
        assert!(pending.iter().all(|t| t.round_id == Some(id)), "{name}");
        let waiting_ids: HashSet<i64> = tasks
            .iter()
            .filter(|t| t.state == TaskState::Waiting)
            .map(|t| t.id)
            .collect();
        assert!(
            pending
                .iter()
                .all(|t| t.task_id.is_none_or(|i| !waiting_ids.contains(&i))),
            "{name}: a waiting task has no timers"
        );
    }
}

#[tokio::test]
async fn reminders_fire_at_their_instant_and_completion_stops_the_rest() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "community-reserve-selection",
                date(2019, 7, 1),
                Some(vec!["dongguan", "xiguan"]),
            ))
            .await
            .unwrap();
        // Nomination is due 7-12 18:00; the 2-day reminder fires 7-10 18:00.
        clock.set(at(2019, 7, 10, 17, 59));
        e.fire_due().await.unwrap();
        let before = outbox(&store)
            .await
            .into_iter()
            .filter(|o| o.subject.contains("组织推荐"))
            .count();
        assert_eq!(before, 0, "{name}: nothing before its instant");
        clock.set(at(2019, 7, 10, 18, 0));
        e.fire_due().await.unwrap();
        let reminders: Vec<_> = outbox(&store)
            .await
            .into_iter()
            .filter(|o| o.subject.contains("组织推荐") && o.kind == MessageKind::Reminder)
            .collect();
        assert_eq!(reminders.len(), 2, "{name}: one per branch");
        assert!(
            reminders
                .iter()
                .all(|r| r.created_at == ms(at(2019, 7, 10, 18, 0)))
        );
        // dongguan completes; xiguan does not.
        let t = store
            .task_by_key(id, "nomination@dongguan")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(t.id, "test", None).await.unwrap();
        timers(&e)
            .run_until(&clock, at(2019, 7, 25, 0, 0))
            .await
            .unwrap();
        let all = outbox(&store).await;
        let nom = |unit: &str| {
            all.iter()
                .filter(|o| o.subject.contains("组织推荐") && o.address.starts_with(unit))
                .count()
        };
        assert_eq!(
            nom("dongguan"),
            1,
            "{name}: only the reminder before completion reached dongguan"
        );
        // xiguan: 2 reminders (2 days, 4 hours), deadline, 3 overdue = 6; escalations go to roles.
        let xs: Vec<(String, i64)> = all
            .iter()
            .filter(|o| o.subject.contains("组织推荐") && o.address.starts_with("xiguan"))
            .map(|o| (o.kind.to_string(), o.created_at))
            .collect();
        assert_eq!(nom("xiguan"), 6, "{name}: {xs:?}");
        let escalated: Vec<&str> = all
            .iter()
            .filter(|o| {
                o.kind == MessageKind::Escalation
                    && o.subject.contains("西关")
                    && o.subject.contains("组织推荐")
            })
            .map(|o| o.address.as_str())
            .collect();
        assert_eq!(
            escalated,
            [
                "zzb@qingshui.example.gov.cn",
                "shuji@qingshui.example.gov.cn",
                "zzk@qu.example.gov.cn"
            ],
            "{name}: each rung once, in order"
        );
        assert!(
            !all.iter().any(|o| o.kind == MessageKind::Escalation
                && o.subject.contains("东关")
                && o.subject.contains("组织推荐")),
            "{name}"
        );
    }
}

/// Seed 000's nomination with the departments' opinions counted from its completion (the
/// shipped workflow dates the opinions from the round instead).
const JOIN: &str = r#"id: join
title: 推荐后征求部门意见
defaults:
  due_at: "18:00"
stages:
  - id: implementation
    title: 组织实施
    closes: {from: round_start, days: 17}
    tasks:
      - id: nomination
        title: 组织推荐
        assignee: {group: communities}
        due: {from: round_start, days: 11}
      - id: department_opinions
        title: 反馈推荐人选的部门意见
        assignee: {group: seed000_reviewers}
        after: [nomination]
        due: {from: {done: nomination}, working_days: 2}
"#;

#[tokio::test]
async fn completing_all_nominations_makes_the_department_opinions_owed_from_that_moment() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[JOIN], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "join",
                date(2019, 7, 1),
                Some(vec!["dongguan", "xiguan", "jiwei"]),
            ))
            .await
            .unwrap();
        clock.set(at(2019, 7, 8, 10, 0));
        let a = store
            .task_by_key(id, "nomination@dongguan")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(a.id, "test", None).await.unwrap();
        let op = store
            .task_by_key(id, "department_opinions@jiwei")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            op.state,
            TaskState::Waiting,
            "{name}: xiguan has not nominated yet"
        );
        clock.set(at(2019, 7, 9, 16, 30));
        let b = store
            .task_by_key(id, "nomination@xiguan")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(b.id, "test", None).await.unwrap();
        let op = store
            .task_by_key(id, "department_opinions@jiwei")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(op.state, TaskState::Open, "{name}");
        // Two working days after Tue 7-9 16:30 is Thu 7-11, at the default 18:00.
        assert_eq!(op.due_at, Some(ms(at(2019, 7, 11, 18, 0))), "{name}");
        let history = store.task_history(b.id).await.unwrap();
        assert_eq!(
            history.last().map(|h| h.to_state.as_str()),
            Some("done"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn waiving_an_overdue_task_stops_its_escalation() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start(
                "community-reserve-selection",
                date(2019, 7, 1),
                Some(vec!["xiguan"]),
            ))
            .await
            .unwrap();
        clock.set(at(2019, 7, 15, 18, 0)); // first rung of nomination
        e.fire_due().await.unwrap();
        let t = store
            .task_by_key(id, "nomination@xiguan")
            .await
            .unwrap()
            .unwrap();
        e.waive_task(t.id, "test", Some("人选调整".into()))
            .await
            .unwrap();
        clock.set(at(2019, 7, 31, 0, 0));
        e.fire_due().await.unwrap();
        let rungs = outbox(&store)
            .await
            .into_iter()
            .filter(|o| o.kind == MessageKind::Escalation && o.subject.contains("组织推荐"))
            .count();
        assert_eq!(rungs, 1, "{name}: only the rung before the waiver");
        let err = e.complete_task(t.id, "test", None).await.unwrap_err();
        assert!(err.to_string().contains("is waived"), "{name}: {err}");
    }
}

const YEARLY: &str = r#"id: yearly-notice
title: 年度通知
schedule:
  yearly: {month: 3, day: 1, at: "09:00"}
stages:
  - id: only
    title: 唯一阶段
    closes: {from: round_start, days: 10}
    tasks:
      - id: reply
        title: 回复
        assignee: {role: organization_office}
        due: {from: stage_close}
"#;

async fn rounds_of(store: &Arc<dyn Store>, wf: &str) -> Vec<yanzhen::store::RoundRow> {
    store
        .rounds()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.workflow_id == wf)
        .collect()
}

#[tokio::test]
async fn a_kickoff_missed_while_down_fires_once_at_start_up_and_never_twice() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 2, 20, 12, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[YEARLY], false),
            clock.clone(),
            "a",
        )
        .await;
        e.ensure_kickoffs().await.unwrap();
        drop(e); // the daemon goes down before 3-1 ...
        clock.set(at(2025, 3, 10, 8, 0)); // ... and comes back nine days later
        for owner in ["b", "c"] {
            let e = engine_on(
                store.clone(),
                common::catalog_with(&[YEARLY], false),
                clock.clone(),
                owner,
            )
            .await;
            e.ensure_kickoffs().await.unwrap();
            e.fire_due().await.unwrap();
        }
        let rounds = rounds_of(&store, "yearly-notice").await;
        assert_eq!(rounds.len(), 1, "{name}: fired once");
        assert_eq!(
            rounds[0].start_date, "2025-03-01",
            "{name}: the round keeps its scheduled date"
        );
        let next: Vec<_> = store
            .timers_with_prefix("kickoff:yearly-notice:")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(next.len(), 1, "{name}");
        assert_eq!(
            next[0].due_at,
            ms(at(2026, 3, 1, 9, 0)),
            "{name}: next year's kickoff is queued"
        );
    }
}

#[tokio::test]
async fn a_missed_kickoff_with_misfire_skip_starts_no_round_but_queues_the_next() {
    let skip = YEARLY.replace(
        "  yearly: {month: 3, day: 1, at: \"09:00\"}\n",
        "  yearly: {month: 3, day: 1, at: \"09:00\"}\n  misfire: skip\n",
    );
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 2, 20, 12, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[&skip], false),
            clock.clone(),
            "a",
        )
        .await;
        e.ensure_kickoffs().await.unwrap();
        clock.set(at(2025, 3, 3, 8, 0));
        e.fire_due().await.unwrap();
        assert!(
            rounds_of(&store, "yearly-notice").await.is_empty(),
            "{name}"
        );
        let pending: Vec<_> = store
            .timers_with_prefix("kickoff:yearly-notice:")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(pending.len(), 1, "{name}");
        // On time, the same policy does start the round.
        clock.set(at(2026, 3, 1, 9, 0));
        e.fire_due().await.unwrap();
        assert_eq!(rounds_of(&store, "yearly-notice").await.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn clock_jumping_forward_fires_what_became_due_once_and_back_fires_nothing_twice() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start("community-reserve-selection", date(2019, 7, 1), None))
            .await
            .unwrap();
        clock.set(at(2019, 7, 13, 0, 0));
        let first = e.fire_due().await.unwrap().len();
        assert!(first > 0, "{name}");
        let sent = outbox(&store).await.len();
        let keys: HashSet<String> = outbox(&store).await.into_iter().map(|o| o.key).collect();
        assert_eq!(keys.len(), sent, "{name}: no duplicate notifications");
        clock.set(at(2019, 7, 5, 0, 0)); // back eight days
        assert_eq!(e.fire_due().await.unwrap().len(), 0, "{name}");
        clock.set(at(2019, 7, 13, 0, 0)); // and forward again to where we were
        assert_eq!(
            e.fire_due().await.unwrap().len(),
            0,
            "{name}: nothing fires twice"
        );
        assert_eq!(outbox(&store).await.len(), sent, "{name}");
        // Every timer due by then fired exactly once.
        let pending = store.pending_timers(Some(id), 10_000).await.unwrap();
        assert!(
            pending.iter().all(|t| t.due_at > ms(at(2019, 7, 13, 0, 0))),
            "{name}"
        );
    }
}

#[tokio::test]
async fn three_daemons_on_one_database_fire_each_timer_once() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let cat = common::catalog_with(&[], true);
        let setup = engine_on(store.clone(), cat.clone(), clock.clone(), "setup").await;
        for d in [1, 2, 3] {
            setup
                .start_round(start("community-reserve-selection", date(2019, 7, d), None))
                .await
                .unwrap();
        }
        let due = store.pending_timers(None, 100_000).await.unwrap().len();
        clock.set(at(2019, 8, 31, 0, 0)); // a burst: everything is due at once
        let mut handles = Vec::new();
        for owner in ["d1", "d2", "d3"] {
            let e = engine_on(store.clone(), cat.clone(), clock.clone(), owner).await;
            handles.push(tokio::spawn(
                async move { e.fire_due().await.map(|f| f.len()) },
            ));
        }
        let mut fired = 0;
        for h in handles {
            fired += h.await.unwrap().unwrap();
        }
        assert_eq!(
            fired, due,
            "{name}: each due timer fired by exactly one daemon"
        );
        assert!(
            store.pending_timers(None, 10).await.unwrap().is_empty(),
            "{name}"
        );
        let rows = outbox(&store).await;
        let keys: HashSet<&str> = rows.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys.len(), rows.len(), "{name}");
    }
}

#[tokio::test]
async fn an_expired_claim_of_a_crashed_daemon_is_fired_by_another() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let cat = common::catalog_with(&[], true);
        let a = engine_on(store.clone(), cat.clone(), clock.clone(), "crashed").await;
        a.start_round(start(
            "community-reserve-selection",
            date(2019, 7, 1),
            Some(vec!["dongguan"]),
        ))
        .await
        .unwrap();
        clock.set(at(2019, 7, 2, 0, 0));
        // "crashed" claims but never fires (as if killed right after the claim).
        let claimed = store
            .claim_due_timers(ms(clock.now()), "crashed", 5_000, 100)
            .await
            .unwrap()
            .timers;
        assert!(!claimed.is_empty(), "{name}");
        let b = engine_on(store.clone(), cat.clone(), clock.clone(), "survivor").await;
        assert_eq!(
            b.fire_due().await.unwrap().len(),
            0,
            "{name}: the claim is still live"
        );
        clock.set(at(2019, 7, 2, 0, 0) + chrono::Duration::seconds(6));
        let fired = b.fire_due().await.unwrap();
        assert_eq!(
            fired.len(),
            claimed.len(),
            "{name}: picked up after the lease expired"
        );
        assert!(fired.iter().all(|f| f.timer.attempts == 2), "{name}");
    }
}

#[tokio::test]
async fn pending_timers_survive_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("y.db").display());
    let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
    let id = {
        let store = yanzhen::store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let e = engine_on(
            store,
            common::catalog_with(&[], true),
            clock.clone(),
            "first",
        )
        .await;
        e.start_round(start(
            "community-reserve-selection",
            date(2019, 7, 1),
            Some(vec!["beimen"]),
        ))
        .await
        .unwrap()
    }; // store dropped: the daemon stops, releasing the file lock
    let store = yanzhen::store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let e = engine_on(
        store.clone(),
        common::catalog_with(&[], true),
        clock.clone(),
        "second",
    )
    .await;
    clock.set(at(2019, 7, 10, 18, 0));
    e.fire_due().await.unwrap();
    let got: Vec<String> = outbox(&store)
        .await
        .into_iter()
        .filter(|o| o.address.starts_with("beimen"))
        .map(|o| o.kind.to_string())
        .collect();
    assert!(got.contains(&"reminder".to_string()), "{got:?}");
    assert_eq!(
        store.round(id).await.unwrap().unwrap().status,
        RoundStatus::Running
    );
}

#[tokio::test]
async fn a_round_finishes_when_every_task_is_done_or_waived_and_reopening_revives_it() {
    const TINY: &str = "id: tiny\ntitle: 小\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 2}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {role: organization_office}\n        due: {from: stage_close}\n      - id: b\n        title: 乙\n        assignee: {role: committee_head}\n        due: {from: stage_close}\n";
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2025, 3, 3, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[TINY], false),
            clock.clone(),
            "a",
        )
        .await;
        let id = e
            .start_round(start("tiny", date(2025, 3, 3), None))
            .await
            .unwrap();
        let a = store
            .task_by_key(id, "a@role:organization_office")
            .await
            .unwrap()
            .unwrap();
        let b = store
            .task_by_key(id, "b@role:committee_head")
            .await
            .unwrap()
            .unwrap();
        e.complete_task(a.id, "test", None).await.unwrap();
        assert_eq!(
            store.round(id).await.unwrap().unwrap().status,
            RoundStatus::Running,
            "{name}"
        );
        e.waive_task(b.id, "test", Some("不适用".into()))
            .await
            .unwrap();
        assert_eq!(
            store.round(id).await.unwrap().unwrap().status,
            RoundStatus::Finished,
            "{name}"
        );
        clock.set(at(2025, 3, 4, 0, 0));
        e.reopen_task(a.id, "test", Some("材料不全".into()))
            .await
            .unwrap();
        assert_eq!(
            store.round(id).await.unwrap().unwrap().status,
            RoundStatus::Running,
            "{name}"
        );
        // The reopened task is reminded again: its deadline timer exists under a new key.
        let pending = store.pending_timers(Some(id), 100).await.unwrap();
        assert!(
            pending.iter().any(|t| t
                .key
                .ends_with("a@role:organization_office/deadline~reopen1")),
            "{name}: {pending:?}"
        );
    }
}

#[tokio::test]
async fn a_kickoff_that_cannot_be_planned_yet_is_retried_not_lost() {
    // Planning this round needs working days of 2028: more than one year past the last
    // holiday file (2026), so not even the provisional calendar answers until the
    // administrator adds the 2027 notice.
    const DECEMBER: &str = "id: december\ntitle: 年末\nschedule:\n  yearly: {month: 12, day: 1, at: \"09:00\"}\nexample_start: 2025-12-01\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, working_days: 300}\n    tasks:\n      - id: a\n        title: 甲\n        assignee: {role: organization_office}\n        due: {from: stage_close}\n";
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 11, 20, 12, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[DECEMBER], false),
            clock.clone(),
            "a",
        )
        .await;
        e.ensure_kickoffs().await.unwrap();
        clock.set(at(2026, 12, 1, 9, 0));
        e.fire_due().await.unwrap();
        assert!(rounds_of(&store, "december").await.is_empty(), "{name}");
        let pending: Vec<_> = store
            .timers_with_prefix("kickoff:december:")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(pending.len(), 1, "{name}: only the retry is pending");
        assert!(pending[0].key.contains(":retry:"), "{name}");
        let audit = store.audit_after(0, 1000).await.unwrap();
        assert!(audit.iter().any(|a| a.entry.action == "kickoff.failed" && a.entry.detail_json.contains("2028")), "{name}");

        // The 2027 notice is added (a file with no holidays is enough for the test).
        let mut cat = common::catalog_with(&[DECEMBER], false);
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
        texts.push((
            "2027.json".into(),
            "{\"year\": 2027, \"papers\": [], \"days\": []}".into(),
        ));
        cat.calendar = yanzhen::core::calendar::Calendar::from_sources(
            texts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        )
        .unwrap();
        e.set_catalog(cat).await.unwrap();
        clock.set(at(2026, 12, 1, 10, 0));
        e.fire_due().await.unwrap();
        let rounds = rounds_of(&store, "december").await;
        assert_eq!(
            rounds.len(),
            1,
            "{name}: the owed round starts on the retry"
        );
        assert_eq!(
            rounds[0].start_date, "2026-12-01",
            "{name}: with its scheduled date"
        );
        let next: Vec<_> = store
            .timers_with_prefix("kickoff:december:")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.state == TimerState::Pending)
            .collect();
        assert_eq!(next.len(), 1, "{name}");
        assert_eq!(next[0].due_at, ms(at(2027, 12, 1, 9, 0)), "{name}");
    }
}

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

/// A round of the shipped workflow and two of its reminders due at the same instant (for
/// different assignees), the first instant at which two are.
async fn two_reminders_due_together(
    e: &Engine,
    store: &Arc<dyn Store>,
) -> (i64, yanzhen::store::TimerRow, yanzhen::store::TimerRow) {
    let id = e
        .start_round(start("community-reserve-selection", date(2019, 7, 1), None))
        .await
        .expect("start");
    let pending = store
        .pending_timers(Some(id), 10_000)
        .await
        .expect("timers");
    let mut by_due: BTreeMap<i64, Vec<yanzhen::store::TimerRow>> = BTreeMap::new();
    for t in pending
        .into_iter()
        .filter(|t| t.kind == yanzhen::core::state::TimerKind::Reminder)
    {
        by_due.entry(t.due_at).or_default().push(t);
    }
    let mut pair = by_due
        .into_values()
        .find(|ts| ts.len() >= 2)
        .expect("two reminders due together");
    let second = pair.swap_remove(1);
    (id, pair.swap_remove(0), second)
}

/// The `timer.error` entries, by subject (the timer key), with their error text.
async fn timer_errors(store: &Arc<dyn Store>) -> Vec<(String, String)> {
    store
        .audit_after(0, i64::MAX)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.entry.action == "timer.error")
        .map(|a| {
            let d: serde_json::Value = serde_json::from_str(&a.entry.detail_json).expect("json");
            (
                a.entry.subject,
                d["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Whether a timer's notifications were enqueued.
async fn told(store: &Arc<dyn Store>, timer_key: &str) -> bool {
    outbox(store)
        .await
        .iter()
        .any(|o| o.key.starts_with(&format!("{timer_key}#")))
}

#[tokio::test]
async fn a_timer_whose_payload_does_not_parse_fires_with_an_error_naming_the_row_and_the_rest_fire()
{
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (_, bad, good) = two_reminders_due_together(&e, &store).await;
        common::stores::write_raw(&g, "timers", "payload_json", bad.id, "'{\"recipient\": 5}'")
            .await;
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            told(&store, &good.key).await,
            "{name}: the other reminder goes out"
        );
        assert!(
            !told(&store, &bad.key).await,
            "{name}: nothing is guessed for the bad one"
        );
        let errors = timer_errors(&store).await;
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(errors[0].0, bad.key, "{name}");
        let want = format!(
            "row {} of table `timers` has payload_json `{{\"recipient\": 5}}`",
            bad.id
        );
        assert!(errors[0].1.starts_with(&want), "{name}: {}", errors[0].1);
        assert!(
            e.fire_due().await.expect("again").is_empty(),
            "{name}: fired once, not retried"
        );
    }
}

#[tokio::test]
async fn a_timer_whose_task_row_does_not_parse_fails_alone_with_an_error_naming_the_row() {
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (_, bad, good) = two_reminders_due_together(&e, &store).await;
        let task = bad.task_id.expect("a task timer");
        common::stores::write_raw(&g, "tasks", "assignee_kind", task, "'unti'").await;
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            told(&store, &good.key).await,
            "{name}: the other reminder goes out"
        );
        assert!(!told(&store, &bad.key).await, "{name}");
        let errors = timer_errors(&store).await;
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        assert_eq!(
            errors[0],
            (
                bad.key.clone(),
                format!(
                    "row {task} of table `tasks` has assignee_kind `unti`, which is not an assignee kind"
                )
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_round_whose_parameters_do_not_parse_is_reported_not_planned_with_none() {
    for (name, store, g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let e = engine_on(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        )
        .await;
        let (id, bad, good) = two_reminders_due_together(&e, &store).await;
        common::stores::write_raw(&g, "rounds", "params_json", id, "'{\"year\": 2019'").await;
        let err = e
            .status(id)
            .await
            .expect_err("status re-plans the round")
            .to_string();
        assert!(
            err.starts_with(&format!("row {id} of table `rounds` has params_json `{{\"year\": 2019`, which does not parse")),
            "{name}: {err}"
        );
        let err = e
            .reproject(id, None, &[], true, "test", "dry run")
            .await
            .expect_err("re-projection re-plans it too")
            .to_string();
        assert!(
            err.contains("table `rounds` has params_json"),
            "{name}: {err}"
        );
        // Its timers need the round (templates, parameters): they fire with the error.
        clock.set(yanzhen::engine::from_ms(bad.due_at));
        e.fire_due().await.expect("the batch fires");
        assert!(
            outbox(&store).await.is_empty(),
            "{name}: nothing planned with no parameters"
        );
        let errors = timer_errors(&store).await;
        let keys: HashSet<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            keys.contains(bad.key.as_str()) && keys.contains(good.key.as_str()),
            "{name}: {keys:?}"
        );
        assert!(
            errors
                .iter()
                .all(|(_, err)| err.contains("table `rounds` has params_json")),
            "{name}: {errors:?}"
        );
    }
}
