//! The calendar cliff: a year without a holiday file is planned on the provisional calendar
//! (weekends and statutory holidays), every instant that rests on it is marked, adding the
//! file re-projects pending instants and clears the marks, and the office is told weekly
//! where to put the file.

mod common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::calendar::Calendar;
use yanzhen::clock::VirtualClock;
use yanzhen::engine::{Engine, StartRound, ms, timer_is_provisional};
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
        let by_kind = |kind: &str| {
            pending
                .iter()
                .find(|t| t.kind == kind)
                .unwrap_or_else(|| panic!("{name}: no {kind} timer in {pending:?}"))
                .clone()
        };
        let (deadline, reminder, opens) = (
            by_kind("deadline"),
            by_kind("reminder"),
            by_kind("stage_open"),
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
        let deadlines: Vec<_> = pending.iter().filter(|t| t.kind == "deadline").collect();
        assert_eq!(deadlines.len(), 1, "{name}: the old deadline is cancelled");
        assert_eq!(deadlines[0].due_at, ms(at(2027, 1, 11, 18, 0)), "{name}");
        let reminders: Vec<_> = pending.iter().filter(|t| t.kind == "reminder").collect();
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
