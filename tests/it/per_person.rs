//! Tasks per person (issue #16 item 3): `assignee: {each: reserve, tier: […]}` makes one task
//! per person in the pool at round start, routed to the person's branch (or to a role), with
//! the person in the messages; `add_person` adds one mid-round. Real stores (SQLite and
//! PostgreSQL), a real SMTP server, time under a virtual clock.

use crate::common;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use common::smtp::TestSmtp;
use std::collections::BTreeMap;
use std::sync::Arc;
use yanzhen::core::diagnostic::Severity;
use yanzhen::core::pool::Field;
use yanzhen::core::state::{AssigneeKind, TaskState};
use yanzhen::core::validate::{Context, validate_workflow};
use yanzhen::engine::{Engine, StartRound};
use yanzhen::pool::Pool;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;

/// A yearly health check-up per reserve of tiers 1 and 2 (seed 003/004), due from the
/// round's start; its reminder names the person.
const CHECKUP: &str = r#"id: checkup
title: 后备干部年度体检
example_start: 2026-03-02
stages:
  - id: run
    title: 组织体检
    closes: {from: round_start, days: 30}
    tasks:
      - id: checkup
        title: 组织体检
        assignee: {each: reserve, tier: [1, 2]}
        due: {from: round_start, days: 10}
        reminders:
          before: [{days: 2}]
        escalation: []
        templates:
          reminder:
            subject: "【提醒】{{ person.name }}的年度体检"
            text: "{{ recipient.name }}：请于{{ deadline }}前安排{{ person.name }}（{{ person.unit }}，第{{ person.tier }}梯队）完成体检。"
      - id: talk
        title: 年度谈话
        assignee: {each: reserve, to: {role: organization_office}}
        due: {from: round_start, days: 20}
        escalation: []
"#;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
}

/// Add a person to the pool; returns the id.
async fn add(pool: &Pool<'_>, name: &str, unit: &str, tier: u8) -> i64 {
    pool.add(
        &[
            (Field::Name, name.into()),
            (Field::Unit, unit.into()),
            (Field::Tier, tier.to_string()),
            (Field::Birth, "1990.05".into()),
        ],
        "test",
    )
    .await
    .expect("add")
    .id
}

async fn start_checkup(e: &Engine) -> i64 {
    e.start_round(StartRound {
        workflow: "checkup".into(),
        start: start(),
        params: BTreeMap::new(),
        units: None,
        actor: "test".into(),
    })
    .await
    .expect("start")
}

/// (recipient address, subject, text) of every mail the server got.
fn mails(smtp: &TestSmtp) -> Vec<(String, String, String)> {
    smtp.messages()
        .iter()
        .map(|m| {
            let mail = mailparse::parse_mail(&m.data).expect("mail");
            let subject = mail
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            let text = mail
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .unwrap_or(&mail)
                .get_body()
                .unwrap_or_default();
            (m.to.join(","), subject, text)
        })
        .collect()
}

#[tokio::test]
async fn a_per_person_workflow_makes_one_task_per_person_of_the_listed_tiers_and_reminds_their_branches()
 {
    for (name, store, _g) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let mut cat = common::catalog_with(&[CHECKUP], false);
        cat.config.notify = common::smtp::deliver_to(smtp.port());
        let clock = Arc::new(VirtualClock::new(at(2026, 3, 2, 8)));
        let app = App::build(cat, store.clone(), clock.clone(), AppOptions::new("t"))
            .await
            .expect("app");
        let pool = Pool::new(&app.engine);
        let zhou = add(&pool, "周晓明", "dongguan", 1).await;
        let wu = add(&pool, "吴丽", "nanmen", 2).await;
        let zheng = add(&pool, "郑涛", "xiguan", 3).await;
        let gone = add(&pool, "钱峰", "beimen", 1).await;
        pool.remove(gone, "考核不称职", None, "test")
            .await
            .expect("remove");
        let round = start_checkup(&app.engine).await;

        let tasks = store.tasks(round).await.expect("tasks");
        let mut checkups: Vec<(String, String, i64)> = tasks
            .iter()
            .filter(|t| t.task == "checkup")
            .map(|t| {
                let p = t.person.as_ref().expect("a person's task names the person");
                (t.key.clone(), t.title.clone(), p.id)
            })
            .collect();
        checkups.sort();
        assert_eq!(
            checkups,
            vec![
                (
                    format!("checkup@dongguan/p{zhou}"),
                    "组织体检（周晓明）".to_string(),
                    zhou
                ),
                (
                    format!("checkup@nanmen/p{wu}"),
                    "组织体检（吴丽）".to_string(),
                    wu
                ),
            ],
            "{name}: tiers 1 and 2 only, people in the pool only"
        );
        // Without a tier filter, every person in the pool; routed to the office.
        let mut talks: Vec<(String, AssigneeKind, String)> = tasks
            .iter()
            .filter(|t| t.task == "talk")
            .map(|t| (t.key.clone(), t.assignee_kind, t.assignee_id.clone()))
            .collect();
        talks.sort();
        let office = |id: i64| {
            (
                format!("talk@role:organization_office/p{id}"),
                AssigneeKind::Role,
                "organization_office".to_string(),
            )
        };
        let mut expected = vec![office(zhou), office(wu), office(zheng)];
        expected.sort();
        assert_eq!(talks, expected, "{name}");

        // Reminders two days before the deadline (12 March): one per branch, naming its
        // person; nothing to the branch whose reserve is of tier 3.
        app.driver
            .run_until(&clock, at(2026, 3, 11, 12))
            .await
            .expect("run");
        let got = mails(&smtp);
        let reminders: Vec<&(String, String, String)> = got
            .iter()
            .filter(|(_, s, _)| s.starts_with("【提醒】"))
            .collect();
        assert_eq!(reminders.len(), 2, "{name}: {got:#?}");
        let to = |addr: &str| {
            reminders
                .iter()
                .find(|(a, _, _)| a == addr)
                .unwrap_or_else(|| panic!("{name}: no reminder to {addr}: {got:#?}"))
        };
        let (_, subject, text) = to("dongguan@qingshui.example.gov.cn");
        assert_eq!(subject, "【提醒】周晓明的年度体检", "{name}");
        assert!(
            text.contains("周晓明（东关社区党委，第1梯队）"),
            "{name}: {text}"
        );
        let (_, subject, _) = to("nanmen@qingshui.example.gov.cn");
        assert_eq!(subject, "【提醒】吴丽的年度体检", "{name}");
        assert!(
            got.iter().all(|(a, _, _)| !a.starts_with("xiguan@")),
            "{name}: {got:#?}"
        );
    }
}

#[tokio::test]
async fn a_person_added_mid_round_gets_the_tasks_their_tier_qualifies_for_and_a_reload_keeps_everyone()
 {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 3, 2, 8)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[CHECKUP], false),
            clock.clone(),
            "a",
        );
        e.register_workflows().await.expect("register");
        let pool = Pool::new(&e);
        let zhou = add(&pool, "周晓明", "dongguan", 1).await;
        let round = start_checkup(&e).await;
        let before = store.tasks(round).await.expect("tasks").len();
        assert_eq!(before, 2, "{name}: a check-up and a talk for 周晓明");

        clock.set(at(2026, 3, 4, 10));
        let new = add(&pool, "孙悦", "xiguan", 2).await;
        let impact = e.add_person(round, new, false, "cli").await.expect("add");
        let mut appeared: Vec<&str> = impact
            .changes
            .iter()
            .filter(|c| c.what == "task" && c.change == "appears")
            .map(|c| c.key.as_str())
            .collect();
        appeared.sort();
        let checkup_key = format!("checkup@xiguan/p{new}");
        let talk_key = format!("talk@role:organization_office/p{new}");
        assert_eq!(
            appeared,
            vec![checkup_key.as_str(), talk_key.as_str()],
            "{name}"
        );
        let t = store
            .task_by_key(round, &checkup_key)
            .await
            .expect("read")
            .expect("the check-up task for 孙悦");
        assert_eq!(t.state, TaskState::Open, "{name}");
        assert_eq!(t.person.as_ref().map(|p| p.id), Some(new), "{name}");
        assert!(
            !store.task_timers(&[t.id]).await.expect("timers").is_empty(),
            "{name}: the added task has its reminder and deadline"
        );

        // Tier 4 qualifies for the talk only.
        let far = add(&pool, "冯凯", "beimen", 4).await;
        let impact = e.add_person(round, far, false, "cli").await.expect("add");
        let keys: Vec<&str> = impact
            .changes
            .iter()
            .filter(|c| c.what == "task")
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(
            keys,
            vec![format!("talk@role:organization_office/p{far}").as_str()],
            "{name}"
        );

        // A re-projection (what a reload does) keeps every person's tasks.
        let impact = e
            .reproject(round, None, &[], false, "reload", "reload")
            .await
            .expect("reproject");
        assert!(
            impact.changes.iter().all(|c| c.change != "vanishes"),
            "{name}: {:?}",
            impact.changes
        );
        let owed = store
            .tasks(round)
            .await
            .expect("tasks")
            .into_iter()
            .filter(|t| t.state.is_owed())
            .count();
        assert_eq!(owed, before + 3, "{name}");

        // Adding someone twice changes nothing; someone out of the pool is refused.
        let again = e
            .add_person(round, zhou, false, "cli")
            .await
            .expect("again");
        assert!(again.changes.is_empty(), "{name}: {:?}", again.changes);
        pool.remove(far, "调任", None, "test")
            .await
            .expect("remove");
        let err = e
            .add_person(round, far, false, "cli")
            .await
            .expect_err("removed people get no tasks");
        assert!(
            err.to_string().contains("no longer in the pool"),
            "{name}: {err}"
        );
    }
}

fn validate(yaml: &str) -> String {
    let dir = common::directory();
    let cal = common::calendar();
    let ctx = Context {
        directory: &dir,
        calendar: &cal,
        default_tz: Shanghai,
        today: common::today(),
    };
    let (wf, d) = validate_workflow("wf.yaml", yaml, ctx);
    let all = d.into_sorted();
    assert!(all.iter().any(|d| d.severity == Severity::Error));
    assert!(wf.is_none());
    all.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_each_assignees_are_reported_with_their_positions() {
    let tasks = [
        "{each: reserves}",
        "{each: reserve, tier: [1, 5]}",
        "{each: reserve, group: branches}",
        "{group: branches, tier: [1]}",
        "{each: reserve, to: {role: organisation_office}}",
        "{each: reserve, teir: [1]}",
    ];
    let mut yaml = String::from(
        "id: t\ntitle: 测试\nexample_start: 2025-03-03\nstages:\n  - id: s1\n    title: 阶段一\n    closes: {from: round_start, days: 5}\n    tasks:\n",
    );
    for (i, a) in tasks.iter().enumerate() {
        yaml.push_str(&format!(
            "      - id: t{i}\n        title: 任务{i}\n        assignee: {a}\n        due: {{from: stage_close}}\n"
        ));
    }
    insta::assert_snapshot!(validate(&yaml));
}

#[test]
fn plan_lists_the_tasks_per_person_of_a_roster_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let wf = dir.path().join("checkup.yaml");
    std::fs::write(&wf, CHECKUP).expect("write");
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "姓名,所在单位,梯队,出生年月\n周晓明,东关社区党委,1,1988.03\n郑涛,西关社区党委,3,1990.01\n吴丽,nanmen,第二梯队,1992年5月\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yanzhen"))
        .current_dir(common::root())
        .env("YANZHEN_LOG", "warn")
        .args(["plan"])
        .arg(&wf)
        .arg("--roster")
        .arg(&roster)
        .args(["--format", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let keys: Vec<(&str, &str)> = plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default(),
                t["person"]["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("checkup@dongguan/p1", "周晓明"),
            ("checkup@nanmen/p3", "吴丽"),
            ("talk@role:organization_office/p1", "周晓明"),
            ("talk@role:organization_office/p2", "郑涛"),
            ("talk@role:organization_office/p3", "吴丽"),
        ]
    );
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test]
async fn the_talk_count_lists_a_person_with_one_talk_when_two_are_required_and_not_one_with_two() {
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 1, 5, 9)));
        let e = Engine::new(
            store.clone(),
            common::catalog_with(&[], true),
            clock.clone(),
            "a",
        );
        e.register_workflows().await.expect("register");
        e.start_round(StartRound {
            workflow: "cadre-talks".into(),
            start: date(2026, 1, 5),
            params: BTreeMap::new(),
            units: None,
            actor: "test".into(),
        })
        .await
        .expect("start");
        let pool = Pool::new(&e);
        let one = add(&pool, "周晓明", "dongguan", 1).await;
        let two = add(&pool, "吴丽", "nanmen", 2).await;
        let none = add(&pool, "郑涛", "xiguan", 3).await;
        let record = |who: i64, kind: &'static str, day: NaiveDate| {
            let pool = &pool;
            async move {
                pool.record_event(&who.to_string(), kind, day, None, "test")
                    .await
                    .expect("record")
            }
        };
        record(one, "routine_talk", date(2026, 3, 2)).await;
        // After the check day (20 December): not counted for 2026.
        record(one, "routine_talk", date(2026, 12, 28)).await;
        record(two, "routine_talk", date(2026, 4, 1)).await;
        // A talk owed by a job change counts once it is done (and names its person).
        clock.set(at(2026, 5, 6, 9));
        let owed = record(two, "job_change", date(2026, 5, 6)).await.owed;
        assert_eq!(owed.len(), 1, "{name}");
        assert_eq!(
            owed[0].person.as_ref().map(|p| p.id),
            Some(two),
            "{name}: the owed talk names its person"
        );
        clock.set(at(2026, 5, 8, 15));
        e.complete_task(owed[0].id, "test", None)
            .await
            .expect("complete");
        // A talk owed but not done does not count.
        let open = record(one, "promotion", date(2026, 6, 1)).await.owed;
        assert_eq!(open.len(), 1, "{name}");

        let reports = e.count_reports(2026).await.expect("counts");
        let r = reports
            .iter()
            .find(|r| r.workflow == "cadre-talks" && r.id == "talks_per_year")
            .expect("the shipped talk count");
        assert_eq!(r.required, 2, "{name}");
        assert_eq!(r.until, date(2026, 12, 20), "{name}");
        let short: Vec<(i64, u32)> = r.short.iter().map(|s| (s.person.id, s.count)).collect();
        assert_eq!(short, vec![(one, 1), (none, 0)], "{name}");
        let lines = r.lines(|u| u.to_string());
        assert_eq!(
            lines[0], "周晓明（dongguan）：2026年谈心谈话共1次，应不少于2次",
            "{name}"
        );
    }
}

#[test]
fn bad_counting_rules_are_reported_with_their_positions() {
    let yaml = r#"id: t
title: 测试
example_start: 2025-03-03
events:
  - id: talk
    title: 谈话
counts:
  - id: c1
    title: 谈话
    tasks: [per_branch, nosuch]
    events: [tlak]
    min_per_year: 0
    check_on: {month: 2, day: 30}
stages:
  - id: s1
    title: 阶段一
    closes: {from: round_start, days: 5}
    tasks:
      - id: per_branch
        title: 任务A
        assignee: {group: branches}
        due: {from: stage_close}
"#;
    insta::assert_snapshot!(validate(yaml));
}

#[tokio::test]
async fn a_scheduled_kickoff_makes_the_tasks_per_person_of_the_people_in_the_pool_that_day() {
    const YEARLY: &str = r#"id: yearly-checkup
title: 年度体检（每人）
schedule:
  yearly: {month: 3, day: 2, at: "09:00"}
stages:
  - id: run
    title: 组织体检
    closes: {from: round_start, days: 30}
    tasks:
      - id: checkup
        title: 组织体检
        assignee: {each: reserve}
        due: {from: round_start, days: 10}
        escalation: []
"#;
    for (name, store, _g) in common::stores::stores().await {
        let clock = Arc::new(VirtualClock::new(at(2026, 2, 20, 9)));
        let app = App::build(
            common::catalog_with(&[YEARLY], false),
            store.clone(),
            clock.clone(),
            AppOptions::new("t"),
        )
        .await
        .expect("app");
        app.engine.ensure_kickoffs().await.expect("kickoffs");
        let pool = Pool::new(&app.engine);
        let zhou = add(&pool, "周晓明", "dongguan", 1).await;
        let wu = add(&pool, "吴丽", "nanmen", 4).await;
        app.driver
            .run_until(&clock, at(2026, 3, 2, 10))
            .await
            .expect("run");
        let rounds = store.rounds().await.expect("rounds");
        let round = rounds
            .iter()
            .find(|r| r.workflow_id == "yearly-checkup")
            .unwrap_or_else(|| panic!("{name}: the kickoff started a round"));
        let mut keys: Vec<String> = store
            .tasks(round.id)
            .await
            .expect("tasks")
            .into_iter()
            .map(|t| t.key)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                format!("checkup@dongguan/p{zhou}"),
                format!("checkup@nanmen/p{wu}")
            ],
            "{name}"
        );
    }
}

/// A roster of `n` reserves of 东关 (tier 1), named in id order.
fn big_roster(n: usize) -> String {
    let mut s = String::from("姓名,所在单位,梯队,出生年月\n");
    for i in 0..n {
        s.push_str(&format!("人员{i:05},dongguan,1,1990.{:02}\n", 1 + i % 12));
    }
    s
}

/// Statements making the insert of a task for person `id` fail, and undoing that.
fn failing_task_insert(sqlite: bool, id: i64) -> (Vec<String>, Vec<String>) {
    if sqlite {
        (
            vec![format!(
                "CREATE TRIGGER boom BEFORE INSERT ON tasks WHEN NEW.person_id = {id} \
                 BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )],
            vec!["DROP TRIGGER boom".into()],
        )
    } else {
        (
            vec![
                format!(
                    "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                     IF NEW.person_id = {id} THEN RAISE EXCEPTION 'boom'; END IF; \
                     RETURN NEW; END $$"
                ),
                "CREATE TRIGGER boom BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION boom()"
                    .into(),
            ],
            vec!["DROP TRIGGER boom ON tasks".into()],
        )
    }
}

#[tokio::test]
async fn a_round_start_whose_second_slice_of_people_fails_to_write_leaves_no_round_tasks_or_timers()
{
    for (name, store, guard) in common::stores::stores().await {
        let cat = common::catalog_with(&[CHECKUP], false);
        let clock = Arc::new(VirtualClock::new(at(2026, 3, 2, 8)));
        let e = Engine::new(store.clone(), cat, clock, "t");
        e.register_workflows().await.expect("register");
        let pool = Pool::new(&e);
        // More people than one slice (2,000): the round is written in two.
        let n = 2500;
        let r = pool
            .import(big_roster(n).as_bytes(), false, false, "test")
            .await
            .expect("import");
        assert_eq!(r.added, n, "{name}");
        let people = store.people(&Default::default()).await.expect("people");
        let last = people.iter().map(|p| p.id).max().expect("people");
        // The last person in pool order is in the second slice.
        assert_eq!(people.last().map(|p| p.id), Some(last), "{name}");

        let (fail, undo) = failing_task_insert(common::stores::is_sqlite(&guard), last);
        common::stores::execute_raw(&guard, &fail).await;
        let err = e
            .start_round(StartRound {
                workflow: "checkup".into(),
                start: start(),
                params: BTreeMap::new(),
                units: None,
                actor: "test".into(),
            })
            .await
            .expect_err("the second slice cannot be written");
        assert!(err.to_string().contains("boom"), "{name}: {err}");
        assert!(
            store.rounds().await.expect("rounds").is_empty(),
            "{name}: no round"
        );
        assert!(
            store
                .pending_timers(None, i64::MAX)
                .await
                .expect("timers")
                .iter()
                .all(|t| t.round_id.is_none()),
            "{name}: no timer of a round"
        );

        // Without the fault the same start writes every slice.
        common::stores::execute_raw(&guard, &undo).await;
        let round = start_checkup(&e).await;
        let tasks = store.tasks(round).await.expect("tasks");
        let count = |task: &str| tasks.iter().filter(|t| t.task == task).count();
        assert_eq!((count("checkup"), count("talk")), (n, n), "{name}");
        let mut ids: Vec<i64> = tasks
            .iter()
            .filter(|t| t.task == "talk")
            .filter_map(|t| t.person.as_ref().map(|p| p.id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{name}: one talk per person");
        let timers = store
            .pending_timers(Some(round), i64::MAX)
            .await
            .expect("timers");
        let reminders = timers
            .iter()
            .filter(|t| t.kind == yanzhen::core::state::TimerKind::Reminder)
            .count();
        assert_eq!(reminders, n, "{name}: a reminder per check-up");
    }
}
