//! What a branch received (#18 item 8): a task's page lists the messages sent about it
//! with their delivery state and text, as a real SMTP server received them, and an
//! administrator's resend goes through the outbox to the same address, audited, refused to
//! a read token and without the CSRF token.

use super::{Console, at, location};
use crate::common;
use common::smtp::{TestSmtp, deliver_to};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use yanzhen::core::state::{OutboxChannel, OutboxState};

/// (recipients, subject) of every message the sink received.
fn received(smtp: &TestSmtp) -> Vec<(String, String)> {
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
            (m.to.join(","), subject)
        })
        .collect()
}

#[tokio::test]
async fn a_task_page_lists_the_messages_sent_for_it_and_an_admin_resends_one_through_the_outbox() {
    for (name, store, guard) in common::stores::stores().await {
        let smtp = TestSmtp::start();
        let port = smtp.port();
        let c: Console = Console::start_with(name, store, guard, move |cat| {
            cat.config.notify = deliver_to(port);
        })
        .await;
        let task = c.task("nomination@xiguan").await;
        let rows = c.store.outbox_for_task(task.id).await.expect("outbox");
        let emails: Vec<_> = rows
            .iter()
            .filter(|r| r.channel == OutboxChannel::Email)
            .collect();
        assert!(
            !emails.is_empty(),
            "{name}: messages were sent about the task"
        );
        let got = received(&smtp);
        for r in &emails {
            assert_eq!(r.state, OutboxState::Sent, "{name}: {}", r.key);
            assert!(
                got.iter().any(|(to, _)| to.contains(&r.address)),
                "{name}: the sink received mail for {}",
                r.address
            );
        }
        // The page shows every row with its text and state.
        let (status, html) = c
            .get(&format!("/console/tasks/{}", task.id), Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::OK);
        for r in &rows {
            assert!(
                html.contains(&format!("data-message=\"{}\"", r.id)),
                "{name}: row {}",
                r.id
            );
        }
        assert!(html.contains("已送达") && html.contains("邮件"), "{name}");
        let first_line = emails[0]
            .body
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert!(
            html.contains(&super::escaped(first_line)),
            "{name}: the rendered text: {first_line}"
        );

        // A read token sees no resend button and its POST is refused.
        let (_, as_reader) = c
            .get(&format!("/console/tasks/{}", task.id), Some(&c.reader))
            .await;
        assert!(!as_reader.contains("class=\"resend\""), "{name}");
        let path = format!(
            "/console/tasks/{}/messages/{}/resend",
            task.id, emails[0].id
        );
        let resp = c.post(&path, Some(&c.reader), &[]).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: read token");
        // Without the CSRF token: refused.
        let resp = c
            .http
            .post(c.url(&path))
            .header(COOKIE, c.cookie(&c.admin).await)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: no csrf");
        assert_eq!(
            c.store
                .outbox_for_task(task.id)
                .await
                .expect("outbox")
                .len(),
            rows.len()
        );

        let before = received(&smtp).len();
        let resp = c.post(&path, Some(&c.admin), &[]).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(
            location(&resp),
            format!("/console/tasks/{}?done=resend", task.id)
        );
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        let entry = audit
            .iter()
            .rfind(|a| a.entry.action == "message.resend")
            .expect("audited");
        assert_eq!(entry.entry.actor, "token:zzb-admin");
        assert_eq!(entry.entry.subject, format!("outbox:{}", emails[0].id));
        let after = c.store.outbox_for_task(task.id).await.expect("outbox");
        assert_eq!(
            after.len(),
            rows.len() + 1,
            "{name}: one copy in the outbox"
        );
        let copy = after.last().expect("copy");
        assert!(copy.key.contains("/resend/"), "{name}");
        assert_eq!(
            (&copy.address, &copy.subject),
            (&emails[0].address, &emails[0].subject)
        );

        // The sender delivers it (past the digest window) to the same address.
        c.run_until(at(2019, 7, 15, 10, 30)).await;
        let got = received(&smtp);
        assert_eq!(got.len(), before + 1, "{name}: one more mail");
        let last = got.last().expect("mail");
        assert!(last.0.contains(&emails[0].address), "{name}: {last:?}");
        let copy = c.store.outbox_for_task(task.id).await.expect("outbox");
        assert_eq!(
            copy.last().map(|r| r.state),
            Some(OutboxState::Sent),
            "{name}"
        );
        let (_, html) = c
            .get(
                &format!("/console/tasks/{}?done=resend", task.id),
                Some(&c.admin),
            )
            .await;
        assert!(html.contains("已重新发送"), "{name}");
    }
}
