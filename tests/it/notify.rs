//! Notifications end to end: timers fire into the outbox, the outbox sender delivers to a
//! real SMTP server on loopback (and a local webhook receiver), merging a recipient's
//! reminders and escalations of the same hour (the first waits up to the digest window,
//! 15 minutes by default, for companions), retrying transient failures with the same
//! Message-ID, and dead-lettering permanent ones with a notice to the office.

use crate::common;
use crate::common::at;
use yanzhen::core::state::{MessageKind, OutboxState};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Asia::Shanghai;
use common::smtp::{Received, TestSmtp};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use yanzhen::catalog::Catalog;
use yanzhen::config::{DeliveryMode, NotifyConfig};
use yanzhen::engine::{Engine, StartRound};
use yanzhen::notify::outbox::Outbox;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

fn deliver_to(port: u16) -> NotifyConfig {
    let mut cfg = common::smtp::deliver_to(port);
    cfg.retry.max_attempts = 3;
    cfg.retry.min_delay_seconds = 60;
    cfg.retry.max_delay_seconds = 600;
    cfg
}

struct Rig {
    engine: Arc<Engine>,
    outbox: Arc<Outbox>,
    driver: Driver,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
}

async fn rig(
    store: Arc<dyn Store>,
    mut cat: Catalog,
    notify: NotifyConfig,
    start: DateTime<Utc>,
) -> Rig {
    yanzhen::notify::install_tls_provider();
    cat.config.notify = notify;
    let clock = Arc::new(VirtualClock::new(start));
    let app = App::build(cat, store.clone(), clock.clone(), AppOptions::new("n"))
        .await
        .expect("app");
    Rig {
        engine: app.engine,
        outbox: app.outbox,
        driver: app.driver,
        clock,
        store,
    }
}

impl Rig {
    async fn start(&self, workflow: &str, d: NaiveDate, units: &[&str]) -> i64 {
        self.engine
            .start_round(StartRound {
                workflow: workflow.into(),
                start: d,
                params: BTreeMap::new(),
                units: Some(units.iter().map(|u| u.to_string()).collect()),
                actor: "test".into(),
            })
            .await
            .unwrap()
    }

    /// Advance instant by instant to `t` through the app's driver: timers fire and the
    /// outbox delivers at every instant either has something due.
    async fn run_until(&self, t: DateTime<Utc>) {
        self.driver.run_until(&self.clock, t).await.unwrap();
    }
}

fn header(r: &Received, name: &str) -> String {
    let parsed = mailparse::parse_mail(&r.data).expect("parse");
    parsed
        .headers
        .iter()
        .find(|h| h.get_key().eq_ignore_ascii_case(name))
        .map(|h| h.get_value())
        .unwrap_or_default()
}

fn text_part(r: &Received) -> String {
    let parsed = mailparse::parse_mail(&r.data).expect("parse");
    parsed
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .and_then(|p| p.get_body().ok())
        .unwrap_or_default()
}

const TWO_TASKS: &str = r#"id: two-tasks
title: 两项工作
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 5}
    tasks:
      - id: a
        title: 报送名册
        assignee: {group: branches}
        due: {from: stage_close}
        reminders:
          before: [{days: 1}]
      - id: b
        title: 报送总结
        assignee: {group: branches}
        due: {from: stage_close}
        reminders:
          before: [{days: 1}]
"#;

#[tokio::test]
async fn reminders_for_one_recipient_in_the_same_hour_go_out_as_one_digest() {
    let smtp = TestSmtp::start();
    for (name, store, _g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let r = rig(
            store,
            common::catalog_with(&[TWO_TASKS], false),
            deliver_to(smtp.port()),
            at(2025, 3, 3, 0, 0),
        )
        .await;
        r.start(
            "two-tasks",
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            &["dongguan"],
        )
        .await;
        // Reminders at 3-7 18:00 for both tasks; the digest leaves after its 15-minute wait.
        r.run_until(at(2025, 3, 7, 18, 30)).await;
        let got: Vec<Received> = smtp.messages().into_iter().skip(before).collect();
        assert_eq!(got.len(), 1, "{name}: one message, not two");
        assert_eq!(
            got[0].to,
            vec!["dongguan@qingshui.example.gov.cn".to_string()]
        );
        assert_eq!(
            header(&got[0], "Subject"),
            "【工作提醒】您有2项工作需要办理",
            "{name}"
        );
        let text = text_part(&got[0]);
        assert!(
            text.contains("「报送名册」")
                && text.contains("「报送总结」")
                && text.contains("还剩1天"),
            "{name}: {text}"
        );
        let rows = r.store.outbox_after(0, 100).await.unwrap();
        assert_eq!(rows.len(), 2, "{name}");
        assert!(
            rows.iter()
                .all(|o| o.state == OutboxState::Sent && o.message_id == rows[0].message_id),
            "{name}: both rows share the digest's Message-ID"
        );
    }
}

#[tokio::test]
async fn a_message_whose_stored_recipient_does_not_parse_is_dead_lettered_with_the_reason_not_guessed()
 {
    let smtp = TestSmtp::start();
    for (name, store, g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let r = rig(
            store,
            common::catalog_with(&[TWO_TASKS], false),
            deliver_to(smtp.port()),
            at(2025, 3, 3, 0, 0),
        )
        .await;
        r.start(
            "two-tasks",
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            &["dongguan"],
        )
        .await;
        // The two reminders of 3-7 18:00 are enqueued; the digest would leave at 18:15.
        r.clock.set(at(2025, 3, 7, 18, 0));
        r.engine.fire_due().await.unwrap();
        let rows = r.store.outbox_after(0, 100).await.unwrap();
        assert_eq!(rows.len(), 2, "{name}");
        common::stores::write_raw(
            &g,
            "outbox",
            "recipient_json",
            rows[0].id,
            "'{\"party\": 7}'",
        )
        .await;
        r.run_until(at(2025, 3, 7, 18, 30)).await;
        assert_eq!(
            smtp.messages().len(),
            before,
            "{name}: nothing sent to a guessed recipient"
        );
        let rows = r.store.outbox_after(0, 100).await.unwrap();
        assert!(
            rows.iter().all(|o| o.state == OutboxState::Dead),
            "{name}: {rows:?}"
        );
        let why = rows[0].last_error.clone().unwrap_or_default();
        assert!(
            why.starts_with(&format!(
                "row {} of table `outbox` has recipient_json `{{\"party\": 7}}`, which does not parse",
                rows[0].id
            )),
            "{name}: {why}"
        );
    }
}

#[tokio::test]
async fn escalations_reaching_the_office_in_the_same_hour_are_one_message_listing_every_item() {
    let smtp = TestSmtp::start();
    let (_, store, _g) = common::stores::sqlite().await;
    let r = rig(
        store,
        common::catalog_with(&[], true),
        deliver_to(smtp.port()),
        at(2019, 7, 1, 0, 0),
    )
    .await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan", "xiguan", "nanmen"],
    )
    .await;
    r.run_until(at(2019, 7, 15, 18, 30)).await;
    let to_office: Vec<Received> = smtp
        .messages()
        .into_iter()
        .filter(|m| {
            m.to.contains(&"zzb@qingshui.example.gov.cn".to_string())
                && header(m, "X-Yanzhen-Kind") == "escalation"
        })
        .collect();
    let nomination = to_office
        .iter()
        .find(|m| text_part(m).contains("组织推荐"))
        .expect("nomination escalation");
    assert_eq!(
        header(nomination, "Subject"),
        "【逾期上报】3项工作逾期未完成"
    );
    let text = text_part(nomination);
    for branch in ["东关社区党委", "西关社区党委", "南门社区党支部"] {
        assert!(text.contains(branch), "{branch} missing: {text}");
    }
}

#[tokio::test]
async fn smtp_down_then_up_delivers_every_message_once_with_its_first_message_id() {
    for (name, store, _g) in common::stores::stores().await {
        // A fresh port per backend: the test server of an earlier iteration keeps running.
        let port = common::smtp::free_port();
        let r = rig(
            store,
            common::catalog_with(&[], true),
            deliver_to(port),
            at(2019, 7, 1, 0, 0),
        )
        .await;
        r.start(
            "community-reserve-selection",
            NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
            &["dongguan", "xiguan"],
        )
        .await;
        r.clock.set(at(2019, 7, 2, 18, 0)); // two-day reminders of the deployment meeting
        r.engine.fire_due().await.unwrap();
        r.clock.set(at(2019, 7, 2, 18, 15)); // the end of their digest wait
        r.outbox.deliver_due().await.unwrap(); // nobody listening
        let rows = r.store.outbox_after(0, 100).await.unwrap();
        assert_eq!(rows.len(), 2, "{name}");
        assert!(
            rows.iter().all(|o| o.state == OutboxState::Pending
                && o.attempts == 1
                && o.next_attempt_at.is_some()),
            "{name}: {rows:?}"
        );
        assert!(
            rows.iter()
                .all(|o| o.last_error.as_deref().unwrap_or("").contains("transient")),
            "{name}"
        );
        let first_ids: HashSet<String> = rows.iter().filter_map(|o| o.message_id.clone()).collect();
        assert_eq!(first_ids.len(), 2, "{name}");

        let smtp = TestSmtp::start_on(port);
        r.clock.set(at(2019, 7, 2, 19, 0)); // past the backoff
        r.outbox.deliver_due().await.unwrap();
        r.outbox.deliver_due().await.unwrap(); // a second pass finds nothing to resend
        let got = smtp.messages();
        assert_eq!(got.len(), 2, "{name}: each message delivered once");
        let received_ids: HashSet<String> = got
            .iter()
            .map(|m| header(m, "Message-ID").trim_matches(['<', '>']).to_string())
            .collect();
        assert_eq!(
            received_ids, first_ids,
            "{name}: the Message-ID fixed at the first attempt"
        );
        let rows = r.store.outbox_after(0, 100).await.unwrap();
        assert!(
            rows.iter()
                .all(|o| o.state == OutboxState::Sent && o.attempts == 2),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_and_the_office_is_told() {
    let smtp = TestSmtp::start();
    let (_, store, _g) = common::stores::sqlite().await;
    let mut cat = common::catalog_with(&[], true);
    for u in cat
        .directory
        .units
        .iter_mut()
        .filter(|u| u.id.value == "dongguan")
    {
        u.contacts[0].email = Some("这不是邮箱".into());
    }
    let r = rig(store, cat, deliver_to(smtp.port()), at(2019, 7, 1, 0, 0)).await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan"],
    )
    .await;
    r.run_until(at(2019, 7, 2, 18, 30)).await;
    let rows = r.store.outbox_after(0, 100).await.unwrap();
    let failed = rows
        .iter()
        .find(|o| o.kind == MessageKind::Reminder)
        .expect("reminder row");
    assert_eq!(failed.state, OutboxState::Dead);
    assert_eq!(failed.attempts, 1, "no retry of a permanent failure");
    let notice = rows
        .iter()
        .find(|o| o.kind == MessageKind::DeadLetter)
        .expect("dead-letter notice");
    assert_eq!(notice.address, "zzb@qingshui.example.gov.cn");
    assert_eq!(notice.state, OutboxState::Sent);
    let got = smtp.messages();
    assert!(
        header(&got[0], "Subject").starts_with("【投递失败】"),
        "{}",
        header(&got[0], "Subject")
    );
    let text = text_part(&got[0]);
    assert!(text.contains("这不是邮箱"), "{text}");
    assert!(
        text.contains("投递被拒绝（永久性错误）") && !text.contains("多次"),
        "one permanent rejection is not \"many failed attempts\": {text}"
    );
}

#[tokio::test]
async fn transient_failures_stop_after_max_attempts_and_a_failed_notice_raises_no_further_notice() {
    let smtp = TestSmtp::start();
    smtp.set_reply(Some(451));
    let (_, store, _g) = common::stores::sqlite().await;
    let r = rig(
        store,
        common::catalog_with(&[], true),
        deliver_to(smtp.port()),
        at(2019, 7, 1, 0, 0),
    )
    .await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan"],
    )
    .await;
    r.clock.set(at(2019, 7, 2, 18, 0));
    r.engine.fire_due().await.unwrap();
    for hour in 0..8 {
        r.clock
            .set(at(2019, 7, 2, 18, 0) + chrono::Duration::hours(hour));
        r.outbox.deliver_due().await.unwrap();
    }
    let rows = r.store.outbox_after(0, 100).await.unwrap();
    let reminder = rows
        .iter()
        .find(|o| o.kind == MessageKind::Reminder)
        .unwrap();
    assert_eq!((reminder.state.as_str(), reminder.attempts), ("dead", 3));
    let notices: Vec<_> = rows
        .iter()
        .filter(|o| o.kind == MessageKind::DeadLetter)
        .collect();
    assert_eq!(notices.len(), 1, "one notice to the office");
    assert_eq!(
        notices[0].state,
        OutboxState::Dead,
        "it failed too (451 for everyone) ..."
    );
    assert_eq!(rows.len(), 2, "... and raised no notice of its own");
    assert!(
        notices[0].body.contains("经3次投递均未成功"),
        "{}",
        notices[0].body
    );
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_send_claimed_by_a_crashed_sender_is_resent_with_the_same_message_id() {
    let smtp = TestSmtp::start();
    for (name, store, _g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let r = rig(
            store.clone(),
            common::catalog_with(&[], true),
            deliver_to(smtp.port()),
            at(2019, 7, 1, 0, 0),
        )
        .await;
        r.start(
            "community-reserve-selection",
            NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
            &["xiguan"],
        )
        .await;
        r.clock.set(at(2019, 7, 2, 18, 0));
        r.engine.fire_due().await.unwrap();
        // A sender claims the row, fixes its Message-ID and dies mid-send.
        let now = yanzhen::engine::ms(r.clock.now());
        let claimed = store
            .claim_outbox(&yanzhen::store::OutboxClaim {
                now,
                owner: "crashed".into(),
                lease_ms: 60_000,
                hold: yanzhen::store::DigestHold::new(0, 0),
                max_messages: 10,
                per_minute: Default::default(),
            })
            .await
            .unwrap()
            .messages;
        assert_eq!(claimed.len(), 1, "{name}");
        assert!(
            store
                .begin_attempt(
                    &[claimed[0][0].id],
                    "crashed",
                    now + 60_000,
                    "fixed-before-crash@yanzhen"
                )
                .await
                .unwrap()
        );
        r.outbox.deliver_due().await.unwrap();
        assert_eq!(
            smtp.messages().len(),
            before,
            "{name}: the claim is still live"
        );
        r.clock.set(at(2019, 7, 2, 18, 2)); // lease expired
        r.outbox.deliver_due().await.unwrap();
        let got: Vec<Received> = smtp.messages().into_iter().skip(before).collect();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(
            header(&got[0], "Message-ID"),
            "<fixed-before-crash@yanzhen>",
            "{name}"
        );
        let row = &store.outbox_after(0, 10).await.unwrap()[0];
        assert_eq!(
            (row.state.as_str(), row.attempts),
            ("sent", 2),
            "{name}: the crashed send and the repeat; the claims are not counted"
        );
    }
}

#[tokio::test]
async fn log_mode_marks_messages_sent_without_contacting_anyone() {
    let (_, store, _g) = common::stores::sqlite().await;
    let r = rig(
        store,
        common::catalog_with(&[], true),
        NotifyConfig::default(),
        at(2019, 7, 1, 0, 0),
    )
    .await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan"],
    )
    .await;
    r.run_until(at(2019, 7, 2, 18, 30)).await;
    let rows = r.store.outbox_after(0, 100).await.unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|o| o.state == OutboxState::Sent),
        "{rows:?}"
    );
}

#[test]
fn deliver_mode_without_an_smtp_server_is_refused_at_start_up() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, store, _g) = common::stores::sqlite().await;
        let cfg = NotifyConfig {
            mode: DeliveryMode::Deliver,
            ..NotifyConfig::default()
        };
        let mut cat = common::catalog_with(&[], false);
        cat.config.notify = cfg.clone();
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let engine = Arc::new(Engine::new(store, cat, clock, "n"));
        let err = Outbox::new(engine, cfg).unwrap_err();
        assert!(err.to_string().contains("[notify.smtp]"), "{err}");
    });
}

#[tokio::test]
async fn the_per_channel_rate_limit_holds_back_the_message_over_the_limit() {
    let smtp = TestSmtp::start();
    let (_, store, _g) = common::stores::sqlite().await;
    let mut cfg = deliver_to(smtp.port());
    cfg.rate_limits.insert("email".into(), 1); // one per minute
    let r = rig(
        store,
        common::catalog_with(&[], true),
        cfg,
        at(2019, 7, 1, 0, 0),
    )
    .await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan", "xiguan"],
    )
    .await;
    r.clock.set(at(2019, 7, 2, 18, 0));
    r.engine.fire_due().await.unwrap(); // two reminders, two recipients: two messages
    r.clock.set(at(2019, 7, 2, 18, 15));
    // The second message must wait a minute for the budget; give the pass one second.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), r.outbox.deliver_due()).await;
    assert_eq!(
        smtp.messages().len(),
        1,
        "only the first message went out within the limit"
    );
    let rows = r.store.outbox_after(0, 100).await.unwrap();
    let waiting: Vec<_> = rows
        .iter()
        .filter(|o| o.state != OutboxState::Sent)
        .collect();
    assert_eq!(waiting.len(), 1, "{rows:?}");
    assert_eq!(
        (waiting[0].state.as_str(), waiting[0].attempts),
        ("pending", 0),
        "what the budget does not allow now is not claimed (no lease to run out)"
    );
    assert_eq!(
        r.outbox.next_send_at().await.unwrap(),
        Some(at(2019, 7, 2, 18, 16)),
        "the sender wakes when the budget refills"
    );
    r.clock.set(at(2019, 7, 2, 18, 16));
    r.outbox.deliver_due().await.unwrap();
    assert_eq!(smtp.messages().len(), 2);
}

/// A directory of `n` branches, each with its own email address.
fn branches_directory(n: usize) -> String {
    let mut d = String::from(
        "office:\n  id: bench\n  name: 测试街道党工委\nroles:\n  - id: organization_office\n    title: 组织办\n    contacts:\n      - name: 组织办\n        email: zzb@example.gov.cn\nunits:\n",
    );
    for i in 0..n {
        d.push_str(&format!(
            "  - id: b{i:03}\n    name: 第{i}社区党支部\n    kind: branch\n    contacts:\n      - name: 书记{i}\n        email: b{i:03}@example.gov.cn\n"
        ));
    }
    d.push_str("groups:\n  - id: branches\n    title: 全体党组织\n    kind: branch\n");
    d
}

/// A catalog of the shipped calendar, this directory and these workflows.
fn catalog_of(directory: &str, workflows: &[&str]) -> Catalog {
    use yanzhen::catalog::{LoadedWorkflow, content_hash};
    use yanzhen::core::validate::{Context, validate_workflow};
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("directory.yaml");
    let directory =
        yanzhen::core::directory::Directory::parse(directory, &mut d).expect("directory");
    assert!(!d.has_errors(), "{:?}", d.items());
    let calendar = common::calendar();
    let config = yanzhen::config::Config::default();
    let mut loaded = std::collections::BTreeMap::new();
    for (i, text) in workflows.iter().enumerate() {
        let ctx = Context {
            directory: &directory,
            calendar: &calendar,
            default_tz: config.tz(),
            today: common::today(),
        };
        let (wf, d) = validate_workflow(&format!("w{i}.yaml"), text, ctx);
        let wf = wf.unwrap_or_else(|| panic!("invalid: {:?}", d.items()));
        loaded.insert(
            wf.id.value.clone(),
            LoadedWorkflow {
                workflow: wf,
                path: format!("w{i}.yaml").into(),
                hash: content_hash(text),
                source: text.to_string(),
            },
        );
    }
    Catalog {
        config,
        directory,
        calendar,
        workflows: loaded,
    }
}

#[tokio::test]
async fn five_hundred_branches_with_two_tasks_due_at_once_get_five_hundred_digests() {
    let smtp = TestSmtp::start();
    for (name, store, _g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let mut cfg = deliver_to(smtp.port());
        if let Some(smtp) = cfg.smtp.as_mut() {
            smtp.pool_size = 8; // 500 mails in a few seconds
        }
        let r = rig(
            store,
            catalog_of(&branches_directory(500), &[TWO_TASKS]),
            cfg,
            at(2025, 3, 3, 0, 0),
        )
        .await;
        r.engine
            .start_round(StartRound {
                workflow: "two-tasks".into(),
                start: NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
                params: BTreeMap::new(),
                units: None,
                actor: "test".into(),
            })
            .await
            .unwrap();
        r.run_until(at(2025, 3, 7, 18, 30)).await; // 1,000 reminders at 18:00
        let rows = r.store.outbox_after(0, 10_000).await.unwrap();
        assert_eq!(rows.len(), 1000, "{name}");
        let got: Vec<Received> = smtp.messages().into_iter().skip(before).collect();
        assert_eq!(got.len(), 500, "{name}: one digest per branch");
        let recipients: HashSet<&String> = got.iter().flat_map(|m| &m.to).collect();
        assert_eq!(recipients.len(), 500, "{name}");
        assert!(
            got.iter()
                .all(|m| header(m, "Subject") == "【工作提醒】您有2项工作需要办理"),
            "{name}"
        );
        let ids: HashSet<&Option<String>> = rows.iter().map(|o| &o.message_id).collect();
        assert_eq!(ids.len(), 500, "{name}: two rows share each Message-ID");
    }
}

/// Two tasks of one branch with deadlines `first` and `second` (HH:MM) on the same day,
/// reminded a day before: two reminders `second − first` apart.
fn two_deadlines(first: &str, second: &str) -> String {
    format!(
        r#"id: two-deadlines
title: 两项工作
stages:
  - id: s
    title: 阶段
    closes: {{from: round_start, days: 5}}
    tasks:
      - id: a
        title: 报送名册
        assignee: {{group: branches}}
        due: {{from: round_start, days: 5, at: "{first}"}}
        reminders:
          before: [{{days: 1}}]
      - id: b
        title: 报送总结
        assignee: {{group: branches}}
        due: {{from: round_start, days: 5, at: "{second}"}}
        reminders:
          before: [{{days: 1}}]
"#
    )
}

/// Sent rows: (subject of the message the row went in, local send time HH:MM).
async fn sent_rows(store: &Arc<dyn Store>) -> Vec<(Option<String>, String)> {
    store
        .outbox_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.kind == MessageKind::Reminder)
        .map(|o| {
            (
                o.message_id,
                yanzhen::engine::from_ms(o.sent_at.expect("sent"))
                    .with_timezone(&Shanghai)
                    .format("%H:%M")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_reminders_ten_minutes_apart_in_one_hour_go_out_as_one_digest() {
    let smtp = TestSmtp::start();
    for (name, store, _g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let wf = two_deadlines("18:00", "18:10");
        let r = rig(
            store,
            catalog_of(&branches_directory(1), &[&wf]),
            deliver_to(smtp.port()),
            at(2025, 3, 3, 0, 0),
        )
        .await;
        r.start(
            "two-deadlines",
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            &["b000"],
        )
        .await;
        r.run_until(at(2025, 3, 7, 19, 0)).await; // reminders 3-7 18:00 and 18:10
        let got: Vec<Received> = smtp.messages().into_iter().skip(before).collect();
        assert_eq!(got.len(), 1, "{name}: one message, not two");
        let text = text_part(&got[0]);
        assert!(
            text.contains("「报送名册」") && text.contains("「报送总结」"),
            "{name}: {text}"
        );
        let sent = sent_rows(&r.store).await;
        assert_eq!(sent.len(), 2, "{name}");
        assert!(sent[0].0.is_some() && sent[0].0 == sent[1].0, "{name}");
        assert_eq!(
            sent[0].1, "18:15",
            "{name}: the first reminder waited its 15 minutes, no longer"
        );
    }
}

#[tokio::test]
async fn a_digest_never_waits_past_the_end_of_its_hour_and_hours_are_not_merged() {
    let smtp = TestSmtp::start();
    for (name, store, _g) in common::stores::stores().await {
        let before = smtp.messages().len();
        let wf = two_deadlines("18:50", "19:05");
        let r = rig(
            store,
            catalog_of(&branches_directory(1), &[&wf]),
            deliver_to(smtp.port()),
            at(2025, 3, 3, 0, 0),
        )
        .await;
        r.start(
            "two-deadlines",
            NaiveDate::from_ymd_opt(2025, 3, 3).unwrap(),
            &["b000"],
        )
        .await;
        r.run_until(at(2025, 3, 7, 20, 0)).await;
        let got: Vec<Received> = smtp.messages().into_iter().skip(before).collect();
        assert_eq!(got.len(), 2, "{name}: one message per clock hour");
        let sent = sent_rows(&r.store).await;
        let times: Vec<&str> = sent.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            times,
            ["19:00", "19:20"],
            "{name}: 18:50 waits only until its hour ends; 19:05 waits its 15 minutes"
        );
    }
}

#[tokio::test]
async fn retries_never_wait_longer_than_max_delay_seconds_jitter_included() {
    let smtp = TestSmtp::start();
    smtp.set_reply(Some(451));
    let (_, store, _g) = common::stores::sqlite().await;
    let mut cfg = deliver_to(smtp.port());
    cfg.retry.max_attempts = 12;
    cfg.retry.min_delay_seconds = 60;
    cfg.retry.max_delay_seconds = 600;
    let r = rig(
        store,
        common::catalog_with(&[], true),
        cfg,
        at(2019, 7, 1, 0, 0),
    )
    .await;
    r.start(
        "community-reserve-selection",
        NaiveDate::from_ymd_opt(2019, 7, 1).unwrap(),
        &["dongguan"],
    )
    .await;
    r.clock.set(at(2019, 7, 2, 18, 0));
    r.engine.fire_due().await.unwrap();
    r.clock.set(at(2019, 7, 2, 18, 15));
    let mut delays = Vec::new();
    loop {
        r.outbox.deliver_due().await.unwrap();
        let row = r
            .store
            .outbox_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.kind == MessageKind::Reminder)
            .unwrap();
        if row.state == OutboxState::Dead {
            assert_eq!(row.attempts, 12);
            break;
        }
        let next = row.next_attempt_at.expect("a retry instant");
        delays.push((next - yanzhen::engine::ms(r.clock.now())) / 1000);
        r.clock.set(yanzhen::engine::from_ms(next));
    }
    assert_eq!(delays.len(), 11, "{delays:?}");
    assert!(
        delays.iter().all(|d| (60..=600).contains(d)),
        "every retry within [min_delay, max_delay]: {delays:?}"
    );
    assert!(
        delays[6..].iter().all(|d| *d >= 300),
        "at the ceiling the jitter spreads below it, not above: {delays:?}"
    );
}
