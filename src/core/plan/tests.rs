use super::*;
use crate::core::diagnostic::Diagnostics;

/// A task per assignee kind, under the shipped three-rung default chain.
const CHAIN: &str = r#"id: chain
title: 上报链
defaults:
  escalation:
    - after: {working_days: 1}
      to: organization_office
    - after: {working_days: 2}
      to: committee_head
    - after: {working_days: 4}
      to: district_department
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 10}
    tasks:
      - id: by_branch
        title: 支部的工作
        assignee: {group: branches}
        due: {from: stage_close}
      - id: by_office
        title: 组织办的工作
        assignee: {role: organization_office}
        due: {from: stage_close}
      - id: by_head
        title: 书记的工作
        assignee: {role: committee_head}
        due: {from: stage_close}
      - id: by_district
        title: 区委组织部的工作
        assignee: {role: district_department}
        due: {from: stage_close}
      - id: by_district_explicit
        title: 区委组织部的另一项工作
        assignee: {role: district_department}
        due: {from: stage_close}
        escalation: []
"#;

fn planned(text: &str) -> (Plan, Vec<Problem>) {
    let mut d = Diagnostics::new("chain.yaml");
    let wf: Workflow = crate::core::yaml::parse(text, &mut d).expect("workflow parses");
    let mut dd = Diagnostics::new("directory.yaml");
    let dir = Directory::parse(include_str!("../../../config/directory.yaml"), &mut dd)
        .expect("shipped directory");
    let cal = Calendar::from_sources([(
        "2019.json",
        include_str!("../../../config/calendar/2019.json"),
    )])
    .expect("calendar");
    let (p, problems) = plan(PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: chrono_tz::Asia::Shanghai,
        start: NaiveDate::from_ymd_opt(2019, 7, 1).expect("date"),
        params: &BTreeMap::new(),
        units: Some(&["dongguan".to_string()]),
        done: None,
        events: None,
        people: None,
    });
    (p.expect("plans"), problems)
}

fn rungs(p: &Plan, task: &str) -> Vec<(String, String)> {
    p.timers
        .iter()
        .filter(|t| t.kind == TimerKind::Escalation && t.task.as_deref() == Some(task))
        .map(|t| {
            let key = t.key.rsplit('/').next().unwrap_or_default().to_string();
            (
                key,
                t.recipient
                    .as_ref()
                    .map(|r| r.id.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_role_task_never_escalates_to_its_own_role_and_starts_at_the_rung_above_it() {
    let (p, _) = planned(CHAIN);
    let r = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        rungs(&p, "by_branch@dongguan"),
        [
            r("0", "organization_office"),
            r("1", "committee_head"),
            r("2", "district_department")
        ],
        "a branch's task climbs the whole chain"
    );
    assert_eq!(
        rungs(&p, "by_office@role:organization_office"),
        [r("1", "committee_head"), r("2", "district_department")],
        "组织办 is not told that 组织办 is late; rung keys keep their positions"
    );
    assert_eq!(
        rungs(&p, "by_head@role:committee_head"),
        [r("2", "district_department")],
        "the rungs below the assignee are skipped too"
    );
    assert!(rungs(&p, "by_district@role:district_department").is_empty());
}

#[test]
fn a_chain_that_collapses_onto_the_assignee_is_a_warning_unless_it_is_turned_off() {
    let (_, problems) = planned(CHAIN);
    let warned: Vec<&str> = problems
        .iter()
        .filter(|p| p.code == "escalation-to-assignee")
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(warned.len(), 1, "{problems:?}");
    assert!(warned[0].contains("`by_district`"), "{}", warned[0]);
    assert!(
        problems
            .iter()
            .all(|p| p.severity == Severity::Warning || p.code != "escalation-to-assignee")
    );
}

/// A per-unit task, a per-person task of tiers 1–2 to the branch and one of every tier to
/// a role, each with a reminder and the default chain.
const PER_PERSON: &str = r#"id: people
title: 每人
defaults:
  escalation:
    - after: {working_days: 1}
      to: organization_office
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 20}
    tasks:
      - id: summary
        title: 支部汇总
        assignee: {group: branches}
        due: {from: round_start, days: 15}
      - id: checkup
        title: 体检
        assignee: {each: reserve, tier: [1, 2]}
        due: {from: round_start, days: 10}
        reminders:
          before: [{days: 1}]
      - id: talk
        title: 谈话
        assignee: {each: reserve, to: {role: organization_office}}
        due: {from: round_start, days: 12}
"#;

#[test]
fn a_round_planned_slice_by_slice_of_its_people_is_the_round_planned_at_once() {
    let mut d = Diagnostics::new("people.yaml");
    let wf: Workflow = crate::core::yaml::parse(PER_PERSON, &mut d).expect("workflow parses");
    let mut dd = Diagnostics::new("directory.yaml");
    let dir = Directory::parse(include_str!("../../../config/directory.yaml"), &mut dd)
        .expect("shipped directory");
    let cal = Calendar::from_sources([(
        "2019.json",
        include_str!("../../../config/calendar/2019.json"),
    )])
    .expect("calendar");
    let units = ["dongguan", "xiguan", "nanmen", "nowhere"];
    // Tiers 3 and 4 only in the last slice, and a person of a unit the directory lacks.
    let people: Vec<PersonRef> = (0..30)
        .map(|i| PersonRef {
            id: i,
            name: format!("人员{i}"),
            unit: units[i as usize % units.len()].to_string(),
            tier: if i < 20 {
                1 + (i % 2) as u8
            } else {
                3 + (i % 2) as u8
            },
        })
        .collect();
    let params = BTreeMap::new();
    let base = PlanInput {
        workflow: &wf,
        directory: &dir,
        calendar: &cal,
        tz: chrono_tz::Asia::Shanghai,
        start: NaiveDate::from_ymd_opt(2019, 7, 1).expect("date"),
        params: &params,
        units: None,
        done: None,
        events: None,
        people: None,
    };
    let row = |t: &PlannedTask| {
        (
            t.key.clone(),
            t.title.clone(),
            t.due.at,
            t.person.as_ref().map(|p| p.id),
        )
    };
    let timer = |t: &PlannedTimer| (t.key.clone(), t.at, t.task.clone());

    let (whole, _) = plan(PlanInput {
        people: Some(&people),
        ..base
    });
    let whole = whole.expect("plans");
    let (units_part, _) = plan(PlanInput {
        people: Some(&[]),
        ..base
    });
    let units_part = units_part.expect("plans");
    let mut tasks: Vec<_> = units_part.tasks.iter().map(row).collect();
    let mut timers: Vec<_> = units_part.timers.iter().map(timer).collect();
    for slice in people.chunks(7) {
        let (p, _) = plan_people(PlanInput {
            people: Some(slice),
            ..base
        });
        let p = p.expect("plans");
        assert!(
            p.tasks.iter().all(|t| t.person.is_some()),
            "a slice has only tasks per person"
        );
        tasks.extend(p.tasks.iter().map(row));
        timers.extend(p.timers.iter().map(timer));
    }
    let mut want_tasks: Vec<_> = whole.tasks.iter().map(row).collect();
    let mut want_timers: Vec<_> = whole.timers.iter().map(timer).collect();
    for v in [&mut tasks, &mut want_tasks] {
        v.sort();
    }
    for v in [&mut timers, &mut want_timers] {
        v.sort();
    }
    assert!(
        want_tasks.iter().any(|t| t.3.is_some()),
        "people have tasks"
    );
    assert_eq!(tasks, want_tasks);
    assert_eq!(timers, want_timers);

    let present = each_tasks_present(&wf, &dir, &people);
    let mut present: Vec<&str> = present.iter().map(String::as_str).collect();
    present.sort_unstable();
    assert_eq!(present, ["checkup", "talk"]);
    // Only tiers 3 and 4: nobody gets the check-up.
    let few = each_tasks_present(&wf, &dir, &people[20..]);
    assert_eq!(few.into_iter().collect::<Vec<_>>(), ["talk"]);
}
