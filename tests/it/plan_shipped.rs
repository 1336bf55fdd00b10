//! Plans of the shipped workflows: exact dates checked by hand against the seeds, and a
//! snapshot per workflow of its stages, deadlines and one assignee's timers.

use crate::common;
use yanzhen::core::state::AssigneeKind;

use chrono::{NaiveDate, TimeZone};
use std::collections::BTreeMap;
use yanzhen::core::definition::Workflow;
use yanzhen::core::diagnostic::Diagnostics;
use yanzhen::core::plan::{Plan, PlanInput, TimerKind, plan};
use yanzhen::core::timefmt::zh_datetime;

fn load(id: &str) -> Workflow {
    let text = std::fs::read_to_string(common::workflow_path(id)).expect("workflow file");
    let mut d = Diagnostics::new(id);
    let wf = yanzhen::core::yaml::parse::<Workflow>(&text, &mut d).expect("parses");
    assert!(!d.has_errors(), "{:?}", d.items());
    wf
}

fn plan_of(id: &str, start: Option<NaiveDate>, params: &[(&str, &str)]) -> Plan {
    let wf = load(id);
    let dir = common::directory();
    let cal = common::calendar();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let start = start
        .or(wf.example_start.as_ref().map(|s| s.value))
        .expect("a start date");
    let (p, problems) = plan(PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: chrono_tz::Asia::Shanghai,
        start,
        params: &params,
        units: None,
        done: None,
        events: None,
        people: None,
    });
    p.unwrap_or_else(|| panic!("{id} does not plan: {problems:?}"))
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("date")
}

fn due_of(p: &Plan, key: &str) -> String {
    let t = p
        .tasks
        .iter()
        .find(|t| t.key == key)
        .unwrap_or_else(|| panic!("no task {key}"));
    zh_datetime(&t.due.at.expect("fixed deadline"))
}

/// Stages, one line per task id (deadline and how many assignees), and every timer of the
/// first assignee of each task plus stage timers.
fn summary(p: &Plan) -> String {
    let mut out = Vec::new();
    for s in &p.stages {
        let m = |x: &yanzhen::core::plan::Moment| x.at.map(|a| zh_datetime(&a)).unwrap_or_default();
        out.push(format!(
            "stage {}: {} — {}",
            s.id,
            m(&s.opens),
            m(&s.closes)
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &p.tasks {
        *seen.entry(&t.task).or_default() += 1;
    }
    let mut first_keys = Vec::new();
    for (task, n) in &seen {
        let t = p.tasks.iter().find(|t| t.task == *task).expect("task");
        let due = match (&t.due.at, &t.due.event) {
            (Some(a), _) => format!(
                "{}{}",
                zh_datetime(a),
                if t.due.projected { " (projected)" } else { "" }
            ),
            (None, Some(e)) => format!(
                "after event {e} + {}",
                t.due.wait.clone().unwrap_or_default()
            ),
            _ => String::new(),
        };
        out.push(format!("task {task} x{n}: due {due}"));
        first_keys.push(t.key.clone());
    }
    for tm in &p.timers {
        if tm.task.as_ref().is_none_or(|k| first_keys.contains(k)) {
            let who = tm.recipient.as_ref().map(|r| r.id.as_str()).unwrap_or("-");
            out.push(format!(
                "{} {:?} {} -> {}",
                zh_datetime(&tm.at),
                tm.kind,
                tm.key,
                who
            ));
        }
    }
    out.join("\n")
}

#[test]
fn seed_000_community_round_matches_the_2019_dates_of_the_seed() {
    let p = plan_of("community-reserve-selection", Some(d(2019, 7, 1)), &[]);
    let windows: Vec<(String, String, String)> = p
        .stages
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                zh_datetime(&s.opens.at.unwrap()),
                zh_datetime(&s.closes.at.unwrap()),
            )
        })
        .collect();
    // 工作部署 7月1日—7月4日; 组织实施 7月5日—7月18日; 总结 7月19日—7月20日.
    assert_eq!(
        windows,
        vec![
            (
                "deployment".into(),
                "2019年7月1日（星期一）09:00".into(),
                "2019年7月4日（星期四）18:00".into()
            ),
            (
                "implementation".into(),
                "2019年7月5日（星期五）09:00".into(),
                "2019年7月18日（星期四）18:00".into()
            ),
            (
                "summary".into(),
                "2019年7月19日（星期五）09:00".into(),
                "2019年7月20日（星期六）18:00".into()
            ),
        ]
    );
    // 组织推荐 7月12日前, for each of the six communities.
    let nominations: Vec<&str> = p
        .tasks
        .iter()
        .filter(|t| t.task == "nomination")
        .map(|t| t.assignee.id.as_str())
        .collect();
    assert_eq!(
        nominations,
        ["dongguan", "xiguan", "nanmen", "beimen", "fuqian", "xinhe"]
    );
    assert_eq!(
        due_of(&p, "nomination@dongguan"),
        "2019年7月12日（星期五）18:00"
    );
    // 街道考察 7月17日前; 街道研究 7月18日前; 附件2、附件3 7月19日前.
    assert_eq!(
        due_of(&p, "inspection@role:organization_office"),
        "2019年7月17日（星期三）18:00"
    );
    assert_eq!(
        due_of(&p, "decision@role:committee_head"),
        "2019年7月18日（星期四）18:00"
    );
    // The departments' opinions are part of 街道考察 (7月17日前), dated from the round: they
    // are not held until the last community has nominated.
    let opinions = p
        .tasks
        .iter()
        .find(|t| t.key == "department_opinions@jiwei")
        .expect("opinions task");
    assert!(!opinions.due.projected && opinions.after_done.is_none());
    assert_eq!(
        due_of(&p, "department_opinions@jiwei"),
        "2019年7月17日（星期三）18:00"
    );
    assert_eq!(
        due_of(&p, "registration_forms@xinhe"),
        "2019年7月19日（星期五）18:00"
    );
    assert_eq!(
        due_of(&p, "report_to_district@role:organization_office"),
        "2019年7月20日（星期六）18:00"
    );
    // Overdue nomination climbs: +1 working day (Mon 7-15) office, +2 (7-16) head, +4 (7-18) district.
    let chain: Vec<(String, String)> = p
        .timers
        .iter()
        .filter(|t| {
            t.task.as_deref() == Some("nomination@dongguan") && t.kind == TimerKind::Escalation
        })
        .map(|t| (zh_datetime(&t.at), t.recipient.as_ref().unwrap().id.clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (
                "2019年7月15日（星期一）18:00".to_string(),
                "organization_office".to_string()
            ),
            (
                "2019年7月16日（星期二）18:00".to_string(),
                "committee_head".to_string()
            ),
            (
                "2019年7月18日（星期四）18:00".to_string(),
                "district_department".to_string()
            ),
        ]
    );
}

#[test]
fn seed_001_village_round_fans_the_joint_review_out_to_the_twelve_departments() {
    let p = plan_of("village-reserve-selection", Some(d(2025, 3, 3)), &[]);
    let reviewers: Vec<&str> = p
        .tasks
        .iter()
        .filter(|t| t.task == "joint_review")
        .map(|t| t.assignee.name.as_str())
        .collect();
    assert_eq!(
        reviewers,
        [
            "纪委",
            "派出所",
            "国土所",
            "司法所",
            "经管站",
            "审计所",
            "信访办",
            "环保办",
            "计生办",
            "扶贫办",
            "民政所",
            "武装部"
        ]
    );
    // Forms handed over on the afternoon 10 days after the start; review lasts 5 working days.
    assert_eq!(
        due_of(&p, "hand_over_forms@qiaotou"),
        "2025年3月13日（星期四）15:00"
    );
    assert_eq!(
        due_of(&p, "joint_review@jiwei"),
        "2025年3月20日（星期四）15:00"
    );
    let notice = p.stages.iter().find(|s| s.id == "public_notice").unwrap();
    let (o, c) = (notice.opens.at.unwrap(), notice.closes.at.unwrap());
    assert_eq!((c - o).num_days(), 5, "公示 runs notice_days = 5 days");
}

#[test]
fn seed_001_public_notice_length_is_a_parameter() {
    let p = plan_of(
        "village-reserve-selection",
        Some(d(2025, 3, 3)),
        &[("notice_days", "7")],
    );
    let notice = p.stages.iter().find(|s| s.id == "public_notice").unwrap();
    assert_eq!(
        (notice.closes.at.unwrap() - notice.opens.at.unwrap()).num_days(),
        7
    );
}

#[test]
fn working_day_deadline_skips_the_national_day_holiday() {
    // A round starting on 2025-09-30: "joint review" counts 5 working days after the
    // hand-over; the hand-over itself rolls forward out of the 10-01..10-08 break.
    let p = plan_of("village-reserve-selection", Some(d(2025, 9, 22)), &[]);
    // 9-22 + 10 days = 10-02 (holiday) -> forward to 10-09 (first working day).
    assert_eq!(
        due_of(&p, "hand_over_forms@qiaotou"),
        "2025年10月9日（星期四）15:00"
    );
    // 5 working days after Thu 10-09: 10-10, (10-11 Sat is a make-up working day), 10-13, 10-14, 10-15.
    assert_eq!(
        due_of(&p, "joint_review@jiwei"),
        "2025年10月15日（星期三）15:00"
    );
}

#[test]
fn talk_after_assessment_is_projected_from_the_assessment_deadline() {
    let p = plan_of("annual-assessment", None, &[]);
    let assess = p.tasks.iter().find(|t| t.key == "assess@dongguan").unwrap();
    let talk = p
        .tasks
        .iter()
        .find(|t| t.key == "talk_after_assessment@dongguan")
        .unwrap();
    assert!(talk.due.projected);
    assert_eq!(talk.after_done.as_deref(), Some("assess"));
    assert!(talk.due.at.unwrap() > assess.due.at.unwrap());
}

#[test]
fn event_owed_talks_have_no_instant_until_the_event_happens() {
    let p = plan_of("cadre-talks", None, &[]);
    let t = p
        .tasks
        .iter()
        .find(|t| t.key == "talk_promotion@dongguan")
        .unwrap();
    assert_eq!(t.due.at, None);
    assert_eq!(t.due.event.as_deref(), Some("promotion"));
    assert!(
        !p.timers
            .iter()
            .any(|x| x.task.as_deref() == Some("talk_promotion@dongguan"))
    );
}

#[test]
fn branches_option_limits_the_fan_out() {
    let wf = load("community-reserve-selection");
    let (dir, cal) = (common::directory(), common::calendar());
    let only = vec!["xiguan".to_string()];
    let (p, _) = plan(PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: chrono_tz::Asia::Shanghai,
        start: d(2019, 7, 1),
        params: &BTreeMap::new(),
        units: Some(&only),
        done: None,
        events: None,
        people: None,
    });
    let p = p.unwrap();
    assert!(
        p.tasks
            .iter()
            .filter(|t| t.assignee.kind == AssigneeKind::Unit)
            .all(|t| t.assignee.id == "xiguan" || t.task == "department_opinions")
    );
}

/// The id of every shipped workflow, from the workflow folder.
fn shipped_ids() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(common::root().join("workflows"))
        .expect("workflows")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn no_shipped_role_task_escalates_to_its_own_role_and_each_has_a_rung_above_it() {
    for id in shipped_ids() {
        let p = plan_of(&id, None, &[]);
        for t in p
            .tasks
            .iter()
            .filter(|t| t.assignee.kind == AssigneeKind::Role)
        {
            let rungs: Vec<&str> = p
                .timers
                .iter()
                .filter(|x| x.kind == TimerKind::Escalation && x.task.as_deref() == Some(&t.key))
                .filter_map(|x| x.recipient.as_ref().map(|r| r.id.as_str()))
                .collect();
            assert!(
                !rungs.contains(&t.assignee.id.as_str()),
                "{id}: {} escalates to its own role: {rungs:?}",
                t.key
            );
            // Event-owed tasks have no instants until the event; every other one is
            // escalated to somebody when late.
            if t.due.at.is_some() {
                assert!(!rungs.is_empty(), "{id}: {} escalates to nobody", t.key);
            }
        }
    }
}

#[test]
fn every_shipped_workflow_validates_without_errors_or_escalation_warnings() {
    let (dir, cal) = (common::directory(), common::calendar());
    for id in shipped_ids() {
        let path = common::workflow_path(&id);
        let text = std::fs::read_to_string(&path).expect("read");
        let ctx = yanzhen::core::validate::Context {
            directory: &dir,
            calendar: &cal,
            default_tz: chrono_tz::Asia::Shanghai,
            today: common::today(),
        };
        let (wf, d) =
            yanzhen::core::validate::validate_workflow(&path.display().to_string(), &text, ctx);
        assert!(wf.is_some() && !d.has_errors(), "{id}: {:?}", d.items());
        let warned: Vec<_> = d
            .items()
            .iter()
            .filter(|x| x.code.starts_with("escalation"))
            .collect();
        assert!(warned.is_empty(), "{id}: {warned:?}");
    }
}

#[test]
fn seed_001_term_end_assessment_runs_every_two_years_and_ends_each_term_in_december() {
    let wf = load("term-end-assessment");
    let schedule = wf.schedule.as_ref().expect("a schedule");
    let cal = common::calendar();
    let next = |y: i32, m: u32, d: u32| {
        let after = chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let k = yanzhen::core::schedule::next_kickoff(
            &schedule.value,
            chrono_tz::Asia::Shanghai,
            &cal,
            after,
        )
        .expect("computable")
        .expect("a kickoff");
        zh_datetime(&k)
    };
    assert_eq!(next(2023, 1, 1), "2023年11月1日（星期三）09:00");
    assert_eq!(
        next(2023, 11, 2),
        "2025年11月3日（星期一）09:00",
        "two-year terms: nothing in 2024"
    );
    let p = plan_of("term-end-assessment", None, &[]);
    let last = p.stages.last().expect("stages");
    assert_eq!(last.id, "adjustment");
    assert_eq!(
        zh_datetime(&last.closes.at.expect("closes")),
        "2025年12月29日（星期一）18:00",
        "the pool is adjusted before the next term starts in January"
    );
    let talk = p
        .tasks
        .iter()
        .find(|t| t.key == "term_talks@dongguan")
        .expect("talk");
    assert_eq!(talk.after_done.as_deref(), Some("decide_roster"));
}

#[test]
fn health_checkup_is_addressed_to_branch_secretaries_for_themselves_and_their_reserve_cadres() {
    let wf = load("health-checkup");
    assert!(
        wf.title.contains("党组织书记") && wf.title.contains("后备干部"),
        "{}",
        wf.title
    );
    let p = plan_of("health-checkup", None, &[]);
    for task in ["submit_roster", "confirm_attendance"] {
        let t = p.tasks.iter().find(|t| t.task == task).expect("task");
        assert_eq!(
            t.assignee.kind,
            AssigneeKind::Unit,
            "{task} goes to each branch (its secretary)"
        );
        assert!(
            t.title.contains("书记本人") && t.title.contains("后备干部"),
            "{task}: {}",
            t.title
        );
    }
}

macro_rules! snapshot_plan {
    ($name:ident, $id:expr) => {
        #[test]
        fn $name() {
            let p = plan_of($id, None, &[]);
            insta::assert_snapshot!(summary(&p));
        }
    };
}

snapshot_plan!(
    plan_snapshot_community_reserve_selection,
    "community-reserve-selection"
);
snapshot_plan!(
    plan_snapshot_village_reserve_selection,
    "village-reserve-selection"
);
snapshot_plan!(plan_snapshot_annual_assessment, "annual-assessment");
snapshot_plan!(plan_snapshot_health_checkup, "health-checkup");
snapshot_plan!(plan_snapshot_yearly_training, "yearly-training");
snapshot_plan!(plan_snapshot_branch_yearly_cycle, "branch-yearly-cycle");
snapshot_plan!(plan_snapshot_head_goose_evaluation, "head-goose-evaluation");
snapshot_plan!(plan_snapshot_cadre_talks, "cadre-talks");
snapshot_plan!(plan_snapshot_term_end_assessment, "term-end-assessment");
