//! The weekly 通报 (#18 item 6): enabled in the config, its timer lives in the timer table
//! (one live row however often it is ensured); when the manual clock passes the weekly
//! instant, the SMTP sink gets one mail per recipient (every branch's contacts and the
//! committee head) with the ranking, a WeCom robot gets the card, and next week's timer is
//! in place.

use super::{Console, at};
use crate::common;
use common::smtp::TestSmtp;
use std::sync::{Arc, Mutex};
use yanzhen::core::directory::{UnitKind, Webhook, WebhookKind};
use yanzhen::core::state::TimerState;

/// Bodies POSTed to a local robot.
async fn robot() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let keep = keep.clone();
        async move {
            keep.lock().expect("lock").push(body);
            r#"{"errcode":0,"errmsg":"ok"}"#
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/cgi-bin/webhook/send?key=test",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn the_weekly_report_fires_once_at_its_instant_mailing_every_recipient_and_posting_the_card()
{
    for (name, store, guard) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let port = smtp.port();
        let (robot_url, posted) = robot().await;
        let hook = robot_url.clone();
        let c: Console = Console::start_with(name, store, guard, move |cat| {
            cat.config.notify = common::smtp::deliver_to(port);
            cat.config.weekly_report.enabled = true;
            if let Some(u) = cat
                .directory
                .units
                .iter_mut()
                .find(|u| u.id.value == "xiguan")
            {
                u.contacts[0].webhooks.push(Webhook {
                    kind: WebhookKind::Wecom,
                    url: hook,
                    secret_env: None,
                });
            }
        })
        .await;
        // Ensured twice (start-up and a reload): one live timer, next Monday 09:00.
        c.engine().ensure_weekly_report().await.expect("ensure");
        c.engine()
            .ensure_weekly_report()
            .await
            .expect("ensure again");
        let timers = c.store.timers_with_prefix("weekly:").await.expect("timers");
        assert_eq!(timers.len(), 1, "{name}: one timer row");
        assert_eq!(
            timers[0].due_at,
            at(2019, 7, 22, 9, 0).timestamp_millis(),
            "{name}"
        );

        let cat = c.engine().catalog();
        let mut want: Vec<String> = cat
            .directory
            .units
            .iter()
            .filter(|u| u.kind == UnitKind::Branch)
            .flat_map(|u| u.contacts.iter().filter_map(|x| x.email.clone()))
            .collect();
        want.extend(
            cat.directory
                .roles
                .iter()
                .filter(|r| r.id.value == "committee_head")
                .flat_map(|r| r.contacts.iter().filter_map(|x| x.email.clone())),
        );
        want.sort();
        assert!(
            want.len() > 3,
            "{name}: branches and the head have addresses"
        );
        let before = smtp.messages().len();
        c.run_until(at(2019, 7, 22, 10, 0)).await;

        let mails: Vec<(String, String)> = smtp.messages()[before..]
            .iter()
            .filter_map(|m| {
                let mail = mailparse::parse_mail(&m.data).ok()?;
                let subject = mail
                    .headers
                    .iter()
                    .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                    .map(|h| h.get_value())
                    .unwrap_or_default();
                subject.contains("工作进度通报").then(|| {
                    let html = mail
                        .subparts
                        .iter()
                        .flat_map(|p| std::iter::once(p).chain(p.subparts.iter()))
                        .find(|p| p.ctype.mimetype == "text/html")
                        .and_then(|p| p.get_body().ok())
                        .unwrap_or_default();
                    (m.to.join(","), html)
                })
            })
            .collect();
        let mut got: Vec<String> = mails.iter().map(|(to, _)| to.clone()).collect();
        got.sort();
        assert_eq!(got, want, "{name}: one mail per recipient");
        let html = &mails[0].1;
        assert!(html.contains("按时完成率排名"), "{name}: {html}");
        for branch in ["东关社区党委", "西关社区党委", "南门社区党支部"] {
            assert!(html.contains(branch), "{name}: {branch} ranked");
        }
        assert!(
            html.contains("bgcolor=\"#8f1d1d\""),
            "{name}: the bar chart"
        );

        let cards: Vec<String> = posted
            .lock()
            .expect("lock")
            .iter()
            .filter(|b| b.contains("工作进度通报"))
            .cloned()
            .collect();
        assert_eq!(cards.len(), 1, "{name}: the robot got the card: {cards:?}");
        let card: serde_json::Value = serde_json::from_str(&cards[0]).expect("json");
        assert_eq!(card["msgtype"], "markdown", "{name}");
        let text = card["markdown"]["content"].as_str().unwrap_or_default();
        assert!(
            text.contains("按时完成率排名") && text.contains("西关社区党委"),
            "{name}: {text}"
        );

        let timers = c.store.timers_with_prefix("weekly:").await.expect("timers");
        let fired = timers
            .iter()
            .filter(|t| t.state == TimerState::Fired)
            .count();
        let pending: Vec<i64> = timers
            .iter()
            .filter(|t| t.state == TimerState::Pending)
            .map(|t| t.due_at)
            .collect();
        assert_eq!(fired, 1, "{name}: fired once");
        assert_eq!(
            pending,
            [at(2019, 7, 29, 9, 0).timestamp_millis()],
            "{name}: next week's"
        );
    }
}
