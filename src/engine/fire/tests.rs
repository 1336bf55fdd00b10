//! The firing core on hand-built reads: no database, no clock.

use super::*;
use crate::core::state::{RoundStatus, TimerState};
use chrono::TimeZone;

fn catalog() -> Catalog {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
    let (cat, diags) = crate::catalog::load(std::path::Path::new("config/yanzhen.toml"), today);
    cat.unwrap_or_else(|| panic!("the shipped config loads: {diags:?}"))
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn dongguan() -> Party {
    Party {
        kind: AssigneeKind::Unit,
        id: "dongguan".into(),
        name: "东关社区党委".into(),
    }
}

fn task(state: TaskState, due: DateTime<Utc>) -> TaskRow {
    TaskRow {
        id: 7,
        round_id: 3,
        key: "assess@dongguan".into(),
        task: "assess".into(),
        stage: "assessment".into(),
        title: "对本支部后备干部进行年度考核和评议".into(),
        assignee_kind: AssigneeKind::Unit,
        assignee_id: "dongguan".into(),
        assignee_name: "东关社区党委".into(),
        due_at: Some(ms(due)),
        state,
        completed_at: None,
        updated_at: 0,
        provisional: false,
        person: None,
    }
}

fn timer(id: i64, kind: TimerKind, due: DateTime<Utc>) -> TimerRow {
    TimerRow {
        id,
        key: format!("r1/assess@dongguan/{kind}:{id}"),
        round_id: Some(3),
        task_id: Some(7),
        kind,
        due_at: ms(due),
        payload: TimerPayload {
            recipient: Some(dongguan()),
            task: Some("assess@dongguan".into()),
            ..TimerPayload::default()
        },
        state: TimerState::Running,
        attempts: 1,
        lease_owner: None,
        lease_until: None,
        fired_at: None,
    }
}

/// The reads of a batch about task 7 of round 3 (annual-assessment, version 1).
fn reads(cat: &Catalog, task: TaskRow) -> Reads {
    let wf = cat
        .workflows
        .get("annual-assessment")
        .map(|w| Arc::new(w.workflow.clone()));
    Reads {
        tasks: HashMap::from([(task.id, task)]),
        rounds: HashMap::from([(
            3,
            Some(RoundRow {
                id: 3,
                tag: "r1".into(),
                workflow_id: "annual-assessment".into(),
                version_id: 1,
                start_date: "2026-12-01".into(),
                params: BTreeMap::new(),
                units: None,
                status: RoundStatus::Running,
                created_at: ms(at(2026, 12, 1, 9)),
                kickoff_key: None,
            }),
        )]),
        workflows: HashMap::from([(1, wf)]),
        ..Reads::default()
    }
}

struct Fixture {
    cat: Catalog,
    versions: HashMap<String, i64>,
    renderer: Renderer,
    links: LinkSigner,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            cat: catalog(),
            versions: HashMap::from([("annual-assessment".to_string(), 1)]),
            renderer: Renderer::new(),
            links: LinkSigner::new("test secret"),
        }
    }

    fn cx(&self, now: DateTime<Utc>) -> Ctx<'_> {
        Ctx {
            catalog: &self.cat,
            versions: &self.versions,
            renderer: &self.renderer,
            links: Some(&self.links),
            now,
        }
    }
}

fn actions(fx: &FireEffects) -> Vec<String> {
    fx.audit
        .iter()
        .map(|a| format!("{} {}", a.action, a.detail_json))
        .collect()
}

#[test]
fn reminder_of_an_open_task_is_an_email_to_the_branch_with_a_signed_link() {
    let f = Fixture::new();
    let now = at(2026, 12, 15, 9);
    let r = reads(&f.cat, task(TaskState::Open, at(2026, 12, 18, 18)));
    let fx = effects(&f.cx(now), &r, &timer(1, TimerKind::Reminder, now)).expect("effects");
    assert_eq!(fx.notifications.len(), 1, "{:?}", fx.notifications);
    let n = &fx.notifications[0];
    assert_eq!(n.channel, OutboxChannel::Email);
    assert_eq!(n.address, "dongguan@qingshui.example.gov.cn");
    assert_eq!(n.kind, MessageKind::Reminder);
    assert_eq!((n.task_id, n.round_id), (Some(7), Some(3)));
    assert!(n.body.contains("2026年12月18日"), "{}", n.body);
    assert!(
        n.body.contains("http://127.0.0.1:8080/b/dongguan/t/7?"),
        "the message carries the signed task link: {}",
        n.body
    );
    assert!(fx.timers.is_empty() && fx.round.is_none());
}

#[test]
fn reminder_of_a_finished_task_sends_nothing_and_says_why() {
    let f = Fixture::new();
    let now = at(2026, 12, 15, 9);
    let r = reads(&f.cat, task(TaskState::Done, at(2026, 12, 18, 18)));
    let fx = effects(&f.cx(now), &r, &timer(1, TimerKind::Reminder, now)).expect("effects");
    assert!(fx.notifications.is_empty());
    assert_eq!(actions(&fx), [r#"timer.skipped {"reason":"task is done"}"#]);
}

#[test]
fn due_today_notice_fired_after_its_day_is_skipped() {
    let f = Fixture::new();
    let due = at(2026, 12, 18, 18);
    let now = at(2026, 12, 21, 9);
    let r = reads(&f.cat, task(TaskState::Open, due));
    let fx = effects(&f.cx(now), &r, &timer(1, TimerKind::Deadline, due)).expect("effects");
    assert!(fx.notifications.is_empty());
    assert!(actions(&fx)[0].contains("the deadline's day has passed"));
}

#[test]
fn late_overdue_reminder_with_a_later_one_due_is_skipped_and_the_later_one_sends() {
    let f = Fixture::new();
    let due = at(2026, 12, 18, 18);
    let now = at(2026, 12, 28, 9);
    let mut r = reads(&f.cat, task(TaskState::Open, due));
    let early = timer(1, TimerKind::Overdue, at(2026, 12, 22, 9));
    let later = timer(2, TimerKind::Overdue, at(2026, 12, 24, 9));
    r.siblings.insert(7, vec![early.clone(), later.clone()]);
    let cx = f.cx(now);
    let fx = effects(&cx, &r, &early).expect("effects");
    assert!(fx.notifications.is_empty());
    assert!(actions(&fx)[0].contains("a later one is due as well"));
    let fx = effects(&cx, &r, &later).expect("effects");
    assert_eq!(fx.notifications.len(), 1);
    assert_eq!(fx.notifications[0].kind, MessageKind::Overdue);
}

#[test]
fn escalation_goes_to_the_role_and_is_audited_on_the_task() {
    let f = Fixture::new();
    let now = at(2026, 12, 21, 9);
    let r = reads(&f.cat, task(TaskState::Open, at(2026, 12, 18, 18)));
    let mut t = timer(1, TimerKind::Escalation, now);
    t.payload.recipient = Some(f.cat.directory.role_party("organization_office"));
    let fx = effects(&f.cx(now), &r, &t).expect("effects");
    assert_eq!(fx.notifications.len(), 1);
    assert_eq!(fx.notifications[0].address, "zzb@qingshui.example.gov.cn");
    assert_eq!(fx.notifications[0].kind, MessageKind::Escalation);
    assert!(actions(&fx)[0].starts_with("task.escalated"));
}

#[test]
fn a_round_the_shell_did_not_read_is_an_error_not_a_default() {
    let f = Fixture::new();
    let now = at(2026, 12, 15, 9);
    let mut r = reads(&f.cat, task(TaskState::Open, at(2026, 12, 18, 18)));
    r.rounds.clear();
    let e = effects(&f.cx(now), &r, &timer(1, TimerKind::Reminder, now))
        .expect_err("a missing read must not be treated as a missing round");
    assert!(e.to_string().contains("round 3"), "{e}");
}

#[test]
fn a_stored_version_that_does_not_parse_sends_with_the_built_in_templates() {
    let f = Fixture::new();
    let now = at(2026, 12, 15, 9);
    let mut r = reads(&f.cat, task(TaskState::Open, at(2026, 12, 18, 18)));
    r.workflows.insert(1, None);
    let fx = effects(&f.cx(now), &r, &timer(1, TimerKind::Reminder, now)).expect("effects");
    assert_eq!(fx.notifications.len(), 1);
}

fn kickoff_at(due: DateTime<Utc>) -> TimerRow {
    let k = kickoff_timer("annual-assessment", due);
    TimerRow {
        id: 9,
        key: k.key,
        round_id: None,
        task_id: None,
        kind: TimerKind::Kickoff,
        due_at: k.due_at,
        payload: k.payload,
        state: TimerState::Running,
        attempts: 1,
        lease_owner: None,
        lease_until: None,
        fired_at: None,
    }
}

#[test]
fn kickoff_starts_its_round_tells_each_branch_and_schedules_next_year() {
    let f = Fixture::new();
    let due = at(2026, 12, 1, 9);
    let fx = effects(&f.cx(due), &Reads::default(), &kickoff_at(due)).expect("effects");
    let (round, tasks, _) = fx.round.as_ref().expect("a round");
    assert_eq!(round.workflow_id, "annual-assessment");
    assert_eq!(
        (round.version_id, round.start_date.as_str()),
        (1, "2026-12-01")
    );
    let branches = f
        .cat
        .directory
        .units
        .iter()
        .filter(|u| u.kind == crate::core::directory::UnitKind::Branch)
        .count();
    assert!(tasks.len() >= branches, "{} tasks", tasks.len());
    assert!(
        fx.notifications
            .iter()
            .all(|n| n.kind == MessageKind::Kickoff)
    );
    assert!(fx.notifications.len() >= branches);
    assert_eq!(fx.timers.len(), 1, "the next kickoff");
    assert_eq!(fx.timers[0].due_at, ms(at(2027, 12, 1, 9)));
}

#[test]
fn kickoff_of_a_workflow_not_loaded_waits_retries_and_tells_the_office_once() {
    let mut f = Fixture::new();
    f.versions.clear();
    let due = at(2026, 12, 1, 9);
    let fx = effects(&f.cx(due), &Reads::default(), &kickoff_at(due)).expect("effects");
    assert!(fx.round.is_none());
    assert_eq!(fx.timers.len(), 1);
    let retry = &fx.timers[0];
    assert!(retry.key.contains(":retry:"), "{}", retry.key);
    assert_eq!(retry.due_at, ms(due) + KICKOFF_RETRY_MS);
    assert_eq!(retry.payload.scheduled_ms, Some(ms(due)));
    assert_eq!(fx.notifications.len(), 1);
    assert_eq!(fx.notifications[0].kind, MessageKind::KickoffBlocked);
    // Retried for the same reason: no second notice.
    let mut again = kickoff_at(due);
    again.payload = retry.payload.clone();
    again.due_at = retry.due_at;
    let later = from_ms(retry.due_at);
    let fx = effects(&f.cx(later), &Reads::default(), &again).expect("effects");
    assert!(fx.notifications.is_empty());
    assert_eq!(fx.timers[0].payload.scheduled_ms, Some(ms(due)));
}

#[test]
fn needs_reads_siblings_only_of_late_chain_timers() {
    let now = at(2026, 12, 28, 9);
    let on_time = timer(1, TimerKind::Overdue, now);
    let late = TimerRow {
        task_id: Some(8),
        ..timer(2, TimerKind::Escalation, at(2026, 12, 22, 9))
    };
    let mut catch_up = timer(3, TimerKind::CatchUp, now);
    catch_up.task_id = None;
    catch_up.round_id = Some(4);
    let n = needs(&[on_time, late, catch_up], now);
    assert_eq!(n.tasks, [7, 8]);
    assert_eq!(n.siblings, [8]);
    assert_eq!(n.rounds, [3, 4]);
    assert_eq!(n.round_tasks, [4]);
}
