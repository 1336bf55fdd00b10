use super::*;
use crate::core::directory::Party;
use crate::core::state::{AssigneeKind, TimerKind, TimerState};
use crate::store::{TimerPayload, TimerRow};
use chrono::TimeZone;
use chrono_tz::Asia::Shanghai;

fn rung(due_at: i64, state: TimerState, name: &str) -> TimerRow {
    TimerRow {
        id: due_at,
        key: format!("m1/t@a/escalation/{due_at}"),
        round_id: Some(1),
        task_id: Some(1),
        kind: TimerKind::Escalation,
        due_at,
        payload: TimerPayload {
            recipient: Some(Party {
                kind: AssigneeKind::Role,
                id: name.into(),
                name: name.into(),
            }),
            ..Default::default()
        },
        state,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        fired_at: None,
    }
}

#[test]
fn the_escalation_counts_fired_rungs_names_the_last_reached_and_the_next_pending() {
    let timers = [
        rung(1, TimerState::Fired, "书记"),
        rung(2, TimerState::Cancelled, "旧角色"),
        rung(3, TimerState::Fired, "组织委员"),
        rung(4, TimerState::Pending, "街道党工委"),
        rung(5, TimerState::Pending, "区委组织部"),
    ];
    assert_eq!(
        Escalation::of(&timers),
        Escalation {
            steps: 4,
            fired: 2,
            reached: Some("组织委员".into()),
            next: Some("街道党工委".into()),
            next_at: Some(4),
        }
    );
}

#[test]
fn an_escalation_without_timers_or_names_reports_nothing_reached() {
    assert_eq!(Escalation::of(&[]), Escalation::default());
    let mut nameless = rung(7, TimerState::Pending, "x");
    nameless.payload = TimerPayload::default();
    let e = Escalation::of(&[nameless]);
    assert_eq!((e.next, e.next_at), (Some(String::new()), Some(7)));
}

fn bj(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(2019, m, d, h, 0, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

fn line(
    id: i64,
    round: i64,
    unit: &str,
    stage: &str,
    state: TaskState,
    due: DateTime<Utc>,
) -> TaskLine {
    TaskLine {
        id,
        round_id: round,
        workflow: "后备干部选拔".into(),
        round_start: "2019-07-01".into(),
        stage: stage.into(),
        stage_title: format!("阶段{stage}"),
        title: format!("任务{id}"),
        assignee_kind: AssigneeKind::Unit,
        assignee_id: unit.into(),
        assignee: format!("{unit}党委"),
        secretary: None,
        phone: None,
        state,
        due_at: Some(due.timestamp_millis()),
        completed_at: None,
        provisional: false,
    }
}

#[test]
fn a_filter_keeps_tasks_matching_every_field_given_and_overdue_means_open_and_past_due() {
    let now = bj(7, 15, 10);
    let lines = [
        line(1, 1, "a", "s1", TaskState::Open, bj(7, 12, 18)),
        line(2, 1, "b", "s1", TaskState::Open, bj(7, 20, 18)),
        line(3, 2, "a", "s2", TaskState::Done, bj(7, 1, 18)),
    ];
    let keep = |f: Find| -> Vec<i64> {
        let st = f.task_state().expect("state");
        lines
            .iter()
            .filter(|t| f.matches(t, st, now.timestamp_millis()))
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(keep(Find::default()), [1, 2, 3]);
    let f = |round, stage: Option<&str>, state: Option<&str>, branch: Option<&str>| Find {
        round,
        stage: stage.map(Into::into),
        state: state.map(Into::into),
        branch: branch.map(Into::into),
    };
    assert_eq!(keep(f(None, None, Some("overdue"), None)), [1]);
    assert_eq!(keep(f(None, None, None, Some("a"))), [1, 3]);
    assert_eq!(keep(f(Some(1), Some("s1"), Some("open"), Some("b"))), [2]);
    assert_eq!(keep(f(Some(2), Some("s1"), None, None)), Vec::<i64>::new());
    assert_eq!(
        f(None, None, Some("late"), None).task_state(),
        Err(UnknownState("late".into()))
    );
}

fn from_query(q: &str) -> Result<Find, String> {
    let uri: axum::http::Uri = format!("/x?{q}").parse().map_err(|e| format!("{e}"))?;
    axum::extract::Query::<Find>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| e.body_text())
}

#[test]
fn an_empty_query_value_is_no_filter_and_the_query_string_round_trips() {
    let f: Find = from_query("round=&stage=&state=&branch=").expect("reads");
    assert_eq!(f, Find::default());
    let f: Find = from_query("round=3&branch=%E4%B8%9C").expect("reads");
    assert_eq!(f.round, Some(3));
    let back: Find = from_query(&f.query()).expect("reads back");
    assert_eq!(back, f);
    assert!(from_query("round=x").is_err());
    assert!(from_query("colour=red").is_err());
}

#[test]
fn progress_counts_per_round_and_branch_and_lists_every_task_but_the_cancelled() {
    let now = bj(7, 15, 10);
    let lines = [
        line(1, 1, "a", "s1", TaskState::Open, bj(7, 12, 18)),
        line(2, 1, "a", "s1", TaskState::Done, bj(7, 12, 18)),
        line(3, 1, "b", "s1", TaskState::Waived, bj(7, 12, 18)),
        line(4, 1, "b", "s1", TaskState::Cancelled, bj(7, 12, 18)),
    ];
    let r = progress(&lines, now, Shanghai);
    assert_eq!(
        r.sheets.iter().map(|s| s.name).collect::<Vec<_>>(),
        ["按支部", "按任务"]
    );
    let a = &r.sheets[0].rows[0];
    // total, done, waived, open, overdue, percent
    assert_eq!(
        a[3..],
        [
            Cell::Int(2),
            Cell::Int(1),
            Cell::Int(0),
            Cell::Int(1),
            Cell::Int(1),
            Cell::Int(50)
        ]
    );
    let b = &r.sheets[0].rows[1];
    assert_eq!(
        b[3..],
        [
            Cell::Int(1),
            Cell::Int(0),
            Cell::Int(1),
            Cell::Int(0),
            Cell::Int(0),
            Cell::Int(100)
        ]
    );
    assert_eq!(r.sheets[1].rows.len(), 3);
    // 逾期天数: 07-12 to 07-15 is 3 days.
    assert_eq!(r.sheets[1].rows[0][11], Cell::Int(3));
    assert_eq!(
        r.sheets[1].rows[0][9],
        Cell::Text("2019-07-12 18:00".into())
    );
}

#[test]
fn every_row_is_as_long_as_its_columns_and_json_keys_rows_by_column() {
    let now = bj(7, 15, 10);
    let l = line(1, 1, "a", "s1", TaskState::Open, bj(7, 12, 18));
    for r in [
        tasks(std::slice::from_ref(&l), now, Shanghai),
        progress(std::slice::from_ref(&l), now, Shanghai),
        overdue(&[(l.clone(), Escalation::default())], now, Shanghai),
    ] {
        for s in &r.sheets {
            for row in &s.rows {
                assert_eq!(row.len(), s.columns.len(), "{} {}", r.name, s.name);
            }
        }
        let j = r.to_json();
        assert_eq!(
            j["sheets"][0]["rows"][0].as_object().map(|o| o.len()),
            Some(r.sheets[0].columns.len())
        );
        assert!(!r.to_xlsx().expect("writes").is_empty());
    }
}
