//! Links in messages work when they are read: a notice fired long after its task's deadline,
//! and a message that waited in the outbox long after it fired, both carry a link that opens
//! the task page on the real server (port 0); an expired link's page names whom to call.
//! On a SQLite file, and PostgreSQL when `YANZHEN_TEST_POSTGRES_URL` is set.

use crate::common;
use crate::common::at;

use chrono::{DateTime, Duration, Utc};
use common::smtp::TestSmtp;
use reqwest::StatusCode;
use std::sync::Arc;
use yanzhen::access::LinkSigner;
use yanzhen::config::NotifyConfig;
use yanzhen::engine::LINK_VALID_DAYS;
use yanzhen::notify::outbox::Outbox;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::runtime::driver::Driver;
use yanzhen::store::Store;

const SECRET: &str = "links-test";

/// Two tasks of each community due 7-4 18:00; `report` is reminded every 20 days while
/// late, so its second overdue notice fires 40 days after the deadline.
const LATE: &str = r#"id: late-notice
title: 逾期通知
defaults:
  due_at: "18:00"
  opens_at: "09:00"
stages:
  - id: s
    title: 阶段
    closes: {from: round_start, days: 100}
    tasks:
      - id: report
        title: 报送材料
        assignee: {group: communities}
        due: {from: round_start, days: 3}
        reminders:
          overdue: {every: {days: 20}, max: 3}
      - id: forms
        title: 报送表格
        assignee: {group: communities}
        due: {from: round_start, days: 3}
        reminders: {}
"#;

/// The deadline of both tasks.
fn due() -> DateTime<Utc> {
    at(2019, 7, 4, 18, 0)
}

/// The engine and the real HTTP server (branch pages), messages signed with the server's
/// secret and `link_base` pointing at it.
struct Server {
    base: String,
    /// Drives the timers only: messages wait in the outbox until a test sends them.
    timers: Driver,
    /// The app's outbox sender.
    outbox: Arc<Outbox>,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    _server: common::http::Served,
}

impl Server {
    async fn start(store: Arc<dyn Store>, notify: NotifyConfig) -> Server {
        yanzhen::notify::install_tls_provider();
        let (listener, base) = common::http::bind().await;
        let mut cat = common::catalog_with(&[LATE], false);
        cat.config.notify = NotifyConfig {
            link_base: Some(base.clone()),
            ..notify
        };
        let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
        let app = App::build(
            cat,
            store.clone(),
            clock.clone(),
            AppOptions {
                link_secret: Some(SECRET.into()),
                ..AppOptions::new("links")
            },
        )
        .await
        .expect("app");
        let engine = app.engine.clone();
        let server = common::http::serve_on(listener, app.http.clone());
        common::start_round(
            &engine,
            "late-notice",
            common::date(2019, 7, 1),
            &["dongguan"],
        )
        .await;
        Server {
            base,
            timers: Driver::new(engine.clone(), None),
            outbox: app.outbox,
            clock,
            store,
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    /// Fire every timer due up to `t`, instant by instant, as the daemon would.
    async fn fire_until(&self, t: DateTime<Utc>) {
        self.timers.run_until(&self.clock, t).await.expect("fire");
    }

    /// Every link to this server in a text.
    fn links_in(&self, text: &str) -> Vec<String> {
        text.match_indices(&self.base)
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '）' | '，'))
                    .unwrap_or(rest.len());
                rest[..end].to_string()
            })
            .collect()
    }

    async fn get(&self, link: &str) -> (StatusCode, String) {
        let resp = self.http.get(link).send().await.expect("GET");
        let status = resp.status();
        (status, resp.text().await.expect("body"))
    }
}

/// The `exp=` of a signed link.
fn expiry(link: &str) -> i64 {
    link.split(['?', '&'])
        .find_map(|p| p.strip_prefix("exp="))
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no exp in {link}"))
}

#[tokio::test]
async fn a_late_notice_fired_long_after_the_deadline_carries_a_link_that_opens_the_task_page() {
    for (name, store, _g) in common::stores::stores().await {
        let s = Server::start(store, NotifyConfig::default()).await;
        let fired = due() + Duration::days(40);
        s.fire_until(fired + Duration::hours(1)).await;
        let rows = s.store.outbox_after(0, i64::MAX).await.expect("outbox");
        let late = rows
            .iter()
            .find(|r| r.key.contains("report@dongguan/overdue/2"))
            .unwrap_or_else(|| panic!("{name}: the second overdue notice fired"));
        let links = s.links_in(&late.body);
        assert_eq!(links.len(), 1, "{name}: {}", late.body);
        assert!(
            expiry(&links[0]) >= fired.timestamp() + LINK_VALID_DAYS * 86_400,
            "{name}: valid for {LINK_VALID_DAYS} days after it was sent: {}",
            links[0]
        );
        let (status, body) = s.get(&links[0]).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert!(body.contains("报送材料"), "{name}: the task page: {body}");
        // Read on its last valid day, it still opens.
        s.clock
            .set(fired + Duration::days(LINK_VALID_DAYS) - Duration::minutes(1));
        assert_eq!(s.get(&links[0]).await.0, StatusCode::OK, "{name}");
    }
}

#[tokio::test]
async fn a_message_sent_long_after_it_fired_carries_links_valid_for_thirty_days_from_sending() {
    for (name, store, _g) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let notify = common::smtp::deliver_to(smtp.port());
        let s = Server::start(store, notify).await;
        // Both deadline notices fire on time; nothing is sent until 45 days later (the
        // sender was stopped, or held back).
        s.fire_until(due()).await;
        let sent_at = due() + Duration::days(45);
        s.clock.set(sent_at);
        s.outbox.deliver_due().await.expect("deliver");
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "{name}: one digest of the two notices");
        let mail = mailparse::parse_mail(&mails[0].data).expect("mime");
        let text = mail.subparts[0].get_body().expect("text");
        let html = mail.subparts[1].get_body().expect("html");
        let links = s.links_in(&text);
        assert_eq!(links.len(), 2, "{name}: a link per task: {text}");
        for link in &links {
            assert!(
                expiry(link) >= sent_at.timestamp() + LINK_VALID_DAYS * 86_400,
                "{name}: signed again when sent: {link}"
            );
            let (status, body) = s.get(link).await;
            assert_eq!(status, StatusCode::OK, "{name}: {link}: {body}");
            // The HTML part shows the same fresh link (escaped as the template escapes it).
            let sig = link.rsplit_once("sig=").map(|(_, s)| s).expect("sig");
            assert!(html.contains(sig), "{name}: {html}");
        }
    }
}

#[tokio::test]
async fn an_expired_link_page_names_the_office_contact_to_call_instead_of_the_same_link() {
    let (name, store, _g) = common::stores::sqlite().await;
    let s = Server::start(store, NotifyConfig::default()).await;
    let task = s
        .store
        .task_by_key(1, "report@dongguan")
        .await
        .expect("task")
        .expect("exists");
    let signer = LinkSigner::new(SECRET);
    let link = format!(
        "{}{}",
        s.base,
        signer.task_link("dongguan", task.id, s.clock.now().timestamp() - 1)
    );
    let (status, body) = s.get(&link).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
    assert!(body.contains("链接已过期"), "{name}: {body}");
    for who in [
        "街道党工委组织办",
        "马晓燕",
        "0000-1234567",
        "zzb@qingshui.example.gov.cn",
    ] {
        assert!(body.contains(who), "{name}: names {who}: {body}");
    }
    assert!(
        !body.contains("原始链接"),
        "{name}: does not send the reader back to the link that expired: {body}"
    );
}
