//! The engine on real stores (a SQLite file, and PostgreSQL when configured) under a
//! virtual clock: rounds, firing, completion, escalation, kickoffs, catch-up, clock jumps,
//! several daemons on one database (serve and simulate agreeing: tests/it/driver.rs).

use crate::common;
use crate::common::{at, date};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use yanzhen::core::state::{MessageKind, RoundStatus, TaskState, TimerState};
use yanzhen::engine::{Engine, StartRound, ms};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

mod faults;
mod waiting;

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
            people: None,
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
