//! Outside events owe tasks per occurrence (issue #16 item 4, the engine side): the shipped
//! `cadre-talks` workflow on real stores under a virtual clock.

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::core::state::{RoundStatus, TaskState, TimerState};
use yanzhen::engine::event::Occurrence;
use yanzhen::engine::{Engine, StartRound, from_ms};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

async fn talks_round(
    store: Arc<dyn Store>,
    units: Option<Vec<String>>,
) -> (Arc<Engine>, Arc<VirtualClock>, i64) {
    let clock = Arc::new(VirtualClock::new(at(2026, 1, 5, 9)));
    let e = Engine::new(store, common::catalog_with(&[], true), clock.clone(), "a");
    e.register_workflows().await.expect("register");
    let e = Arc::new(e);
    let id = e
        .start_round(StartRound {
            workflow: "cadre-talks".into(),
            start: date(2026, 1, 5),
            params: BTreeMap::new(),
            units,
            actor: "test".into(),
        })
        .await
        .expect("start");
    (e, clock, id)
}

fn occurrence(id: i64, kind: &str, day: NaiveDate) -> Occurrence {
    Occurrence {
        id,
        kind: kind.into(),
        date: day,
        unit: "dongguan".into(),
        person: Some((7, "王小明".into())),
        person_tier: Some(1),
        actor: "token:clerk".into(),
    }
}

#[tokio::test]
async fn three_events_for_one_person_owe_three_talks_dated_in_working_days_from_each() {
    for (name, store, _g) in common::stores::stores().await {
        let (e, _clock, round) = talks_round(store.clone(), None).await;
        let before = store.tasks(round).await.expect("tasks").len();
        let events = [
            occurrence(1, "job_change", date(2026, 3, 2)),
            occurrence(2, "job_change", date(2026, 4, 28)),
            occurrence(3, "hospital_stay", date(2026, 9, 30)),
        ];
        let mut owed = Vec::new();
        for o in &events {
            owed.extend(e.event_occurred(o).await.expect("event"));
        }
        assert_eq!(owed.len(), 3, "{name}: one talk per occurrence");
        let cal = common::calendar();
        let expected = [
            (
                "talk_job_change@dongguan/e1",
                cal.add_working_days(date(2026, 3, 2), 10),
            ),
            (
                "talk_job_change@dongguan/e2",
                cal.add_working_days(date(2026, 4, 28), 10),
            ),
            (
                "visit_hospital@dongguan/e3",
                cal.add_working_days(date(2026, 9, 30), 5),
            ),
        ];
        for (t, (key, due)) in owed.iter().zip(expected) {
            assert_eq!(t.key, key, "{name}");
            assert_eq!(t.state, TaskState::Open, "{name}");
            assert!(t.title.ends_with("（王小明）"), "{name}: {}", t.title);
            let local = from_ms(t.due_at.expect("dated")).with_timezone(&Shanghai);
            assert_eq!(
                local.date_naive(),
                due.expect("working days"),
                "{name}: {key}"
            );
        }
        // 30 September + 5 working days crosses the National Day holidays and counts the
        // make-up working Saturday, 10 October.
        assert_eq!(
            from_ms(owed[2].due_at.unwrap_or_default())
                .with_timezone(&Shanghai)
                .date_naive(),
            date(2026, 10, 13),
            "{name}"
        );
        let timers = store
            .task_timers(&owed.iter().map(|t| t.id).collect::<Vec<_>>())
            .await
            .expect("timers");
        for t in &owed {
            assert!(
                timers
                    .iter()
                    .any(|x| x.task_id == Some(t.id) && x.state == TimerState::Pending),
                "{name}: {} has its reminders",
                t.key
            );
        }
        assert_eq!(
            store.tasks(round).await.expect("tasks").len(),
            before + 3,
            "{name}: the waiting instances stay; only the occurrences are added"
        );
    }
}

#[tokio::test]
async fn recording_the_same_event_again_owes_nothing_more() {
    for (name, store, _g) in common::stores::stores().await {
        let (e, _clock, round) = talks_round(store.clone(), None).await;
        let o = occurrence(5, "promotion", date(2026, 5, 6));
        assert_eq!(
            e.event_occurred(&o).await.expect("event").len(),
            1,
            "{name}"
        );
        assert!(
            e.event_occurred(&o).await.expect("again").is_empty(),
            "{name}"
        );
        let n = store
            .tasks(round)
            .await
            .expect("tasks")
            .iter()
            .filter(|t| t.key.ends_with("/e5"))
            .count();
        assert_eq!(n, 1, "{name}");
    }
}

#[tokio::test]
async fn an_event_of_a_branch_outside_the_round_owes_nothing_there() {
    for (name, store, _g) in common::stores::stores().await {
        let (e, _clock, _round) = talks_round(store.clone(), Some(vec!["xiguan".into()])).await;
        let o = occurrence(1, "setback", date(2026, 3, 2));
        assert!(
            e.event_occurred(&o).await.expect("event").is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_talks_round_finishes_when_its_term_closes_and_its_talks_are_done() {
    for (name, store, _g) in common::stores::stores().await {
        let (e, clock, round) = talks_round(store.clone(), None).await;
        let owed = e
            .event_occurred(&occurrence(1, "doubts", date(2026, 3, 2)))
            .await
            .expect("event");
        let driver = Driver::new(e.clone(), None);
        driver
            .run_until(&clock, at(2026, 3, 3, 10))
            .await
            .expect("run");
        e.complete_task(owed[0].id, "test", None)
            .await
            .expect("complete");
        let r = store.round(round).await.expect("round").expect("exists");
        assert_eq!(
            r.status,
            RoundStatus::Running,
            "{name}: the term is still running; more events may come"
        );
        // Each branch reports its year's talks (the workflow's one dated task).
        for t in store.tasks(round).await.expect("tasks") {
            if t.task == "yearly_talk_count" {
                e.complete_task(t.id, "test", None).await.expect("report");
            }
        }
        let r = store.round(round).await.expect("round").expect("exists");
        assert_eq!(
            r.status,
            RoundStatus::Running,
            "{name}: only tasks waiting for events are left, but the term has not closed"
        );
        // The term is 730 days from 5 January 2026.
        driver
            .run_until(&clock, at(2028, 1, 6, 9))
            .await
            .expect("run");
        let r = store.round(round).await.expect("round").expect("exists");
        assert_eq!(r.status, RoundStatus::Finished, "{name}");
        let tasks = store.tasks(round).await.expect("tasks");
        assert!(
            tasks.iter().all(|t| !t.state.is_owed()),
            "{name}: the instances that waited for events are closed with the round: {:?}",
            tasks
                .iter()
                .filter(|t| t.state.is_owed())
                .map(|t| &t.key)
                .collect::<Vec<_>>()
        );
        assert!(clock.now() >= at(2028, 1, 6, 9));
    }
}

#[tokio::test]
async fn recording_an_event_for_a_person_of_the_pool_owes_the_talk_in_the_running_round() {
    use yanzhen::core::pool::Field;
    use yanzhen::pool::Pool;
    for (name, store, _g) in common::stores::stores().await {
        let (e, _clock, round) = talks_round(store.clone(), None).await;
        let pool = Pool::new(&e);
        let person = pool
            .add(
                &[
                    (Field::Name, "李红梅".into()),
                    (Field::Unit, "nanmen".into()),
                    (Field::Tier, "1".into()),
                    (Field::Birth, "1990.05".into()),
                ],
                "test",
            )
            .await
            .expect("add");
        let recorded = pool
            .record_event(
                &person.id.to_string(),
                "promotion",
                date(2026, 6, 1),
                None,
                "token:clerk",
            )
            .await
            .expect("record");
        assert_eq!(recorded.owed.len(), 1, "{name}");
        let t = &recorded.owed[0];
        assert_eq!(t.round_id, round, "{name}");
        assert_eq!(
            t.key,
            format!("talk_promotion@nanmen/e{}", recorded.event.id),
            "{name}"
        );
        assert_eq!(t.title, "提拔重用谈话（李红梅）", "{name}");
        assert_eq!(t.assignee_id, "nanmen", "{name}");
    }
}
