//! Branch pages behind signed links.

use super::*;

#[tokio::test]
async fn a_signed_task_link_completes_its_own_task_as_link_unit() {
    for c in consoles().await {
        let name = c.name;
        let t = c.task("nomination@xiguan").await;
        let link = c.signer().task_link("xiguan", t.id, c.now_secs() + 3600);
        let (status, body) = c.get(&link, None).await;
        assert_eq!(status, StatusCode::OK, "{name}: the confirmation page");
        assert!(
            body.contains("标记完成") && body.contains("组织推荐"),
            "{name}"
        );
        assert_eq!(
            c.snapshot(t.id).await.0,
            TaskState::Open,
            "{name}: GET changes nothing"
        );
        let resp = c.post(&link, None, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("谢谢，已标记完成") && body.contains("西关社区党委"),
            "{name}: {body}"
        );
        assert_eq!(c.snapshot(t.id).await.0, TaskState::Done, "{name}");
        let audit = c.store.audit_after(0, i64::MAX).await.expect("audit");
        assert!(
            audit
                .iter()
                .any(|a| a.entry.action == "task.complete" && a.entry.actor == "link:xiguan"),
            "{name}: audit actor link:xiguan"
        );
        // A second press is answered, not a crash, and changes nothing.
        let before = c.snapshot(t.id).await;
        let resp = c.post(&link, None, &[]).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        assert!(
            resp.text().await.expect("body").contains("已经标记完成"),
            "{name}"
        );
        assert_eq!(c.snapshot(t.id).await, before, "{name}");
    }
}

/// The signature of `link` with `from` replaced by `to` in its path.
fn moved(link: &str, from: &str, to: &str) -> String {
    let (path, query) = link.split_once('?').expect("query");
    format!("{}?{query}", path.replace(from, to))
}

async fn assert_refused(c: &Console, link: &str, task: i64, what: &str, wording: &str) {
    let name = c.name;
    let before = c.snapshot(task).await;
    let (status, body) = c.get(link, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{name}: GET {what}");
    assert!(body.contains(wording), "{name}: {what}: {body}");
    let resp = c.post(link, None, &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: POST {what}");
    let body = resp.text().await.expect("body");
    assert!(
        body.contains(wording) && body.contains("没有做任何更改"),
        "{name}: {what}: {body}"
    );
    assert_eq!(
        c.snapshot(task).await,
        before,
        "{name}: {what} changed nothing"
    );
}

#[tokio::test]
async fn a_task_signature_used_on_another_task_or_another_branch_is_refused() {
    for c in consoles().await {
        let x = c.task("nomination@xiguan").await;
        let x2 = c.task("deployment_meeting@xiguan").await;
        let n = c.task("nomination@nanmen").await;
        let link = c.signer().task_link("xiguan", x.id, c.now_secs() + 3600);
        let other_task = moved(&link, &format!("/t/{}", x.id), &format!("/t/{}", x2.id));
        assert_refused(&c, &other_task, x2.id, "another task", "链接无效").await;
        let other_branch = moved(&link, "/b/xiguan/", "/b/nanmen/");
        assert_refused(&c, &other_branch, x.id, "another branch", "链接无效").await;
        // Another branch's task under this branch's name: signed for xiguan, but not xiguan's task.
        let foreign = c.signer().task_link("xiguan", n.id, c.now_secs() + 3600);
        assert_refused(&c, &foreign, n.id, "a task of another branch", "链接无效").await;
        assert_eq!(c.snapshot(x.id).await.0, TaskState::Open, "{}", c.name);
    }
}

#[tokio::test]
async fn an_altered_or_missing_signature_is_refused() {
    for c in consoles().await {
        let x = c.task("nomination@xiguan").await;
        let link = c.signer().task_link("xiguan", x.id, c.now_secs() + 3600);
        let (head, sig) = link.rsplit_once("sig=").expect("sig");
        let flipped: String = sig
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                if i == 0 {
                    if ch == 'a' { 'b' } else { 'a' }
                } else {
                    ch
                }
            })
            .collect();
        assert_refused(
            &c,
            &format!("{head}sig={flipped}"),
            x.id,
            "altered signature",
            "链接无效",
        )
        .await;
        let later = link.replace("exp=", "exp=1");
        assert_refused(&c, &later, x.id, "moved expiry", "链接无效").await;
        assert_refused(
            &c,
            &format!("/b/xiguan/t/{}", x.id),
            x.id,
            "no signature",
            "链接无效",
        )
        .await;
        assert_refused(
            &c,
            &format!("{head}sig=zz"),
            x.id,
            "malformed signature",
            "链接无效",
        )
        .await;
        let other_secret =
            LinkSigner::new("another").task_link("xiguan", x.id, c.now_secs() + 3600);
        assert_refused(
            &c,
            &other_secret,
            x.id,
            "another daemon's secret",
            "链接无效",
        )
        .await;
    }
}

#[tokio::test]
async fn an_expired_link_is_refused_with_the_expired_wording() {
    for c in consoles().await {
        let x = c.task("nomination@xiguan").await;
        let link = c.signer().task_link("xiguan", x.id, c.now_secs() + 3600);
        let unit = c.signer().unit_link("xiguan", c.now_secs() + 3600);
        let (status, _) = c.get(&link, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: valid before it expires",
            c.name
        );
        c.clock.advance(chrono::Duration::hours(2));
        assert_refused(&c, &link, x.id, "expired task link", "链接已过期").await;
        let (status, body) = c.get(&unit, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}", c.name);
        assert!(
            body.contains("链接已过期") && !body.contains("链接无效"),
            "{}: {body}",
            c.name
        );
        assert!(body.contains("data-reason=\"expired\""), "{}", c.name);
    }
}

#[tokio::test]
async fn a_unit_page_signature_does_not_complete_a_task_and_a_task_signature_does_not_open_the_unit_page()
 {
    for c in consoles().await {
        let name = c.name;
        let x = c.task("nomination@xiguan").await;
        let exp = c.now_secs() + 3600;
        let unit_query = c.signer().query(
            &Grant::Unit {
                unit: "xiguan".into(),
            },
            exp,
        );
        assert_refused(
            &c,
            &format!("/b/xiguan/t/{}?{unit_query}", x.id),
            x.id,
            "unit signature on a task",
            "链接无效",
        )
        .await;
        let task_query = c.signer().query(
            &Grant::Task {
                unit: "xiguan".into(),
                task: x.id,
            },
            exp,
        );
        for path in ["/b/xiguan", "/b/xiguan/feed.ics"] {
            let (status, body) = c.get(&format!("{path}?{task_query}"), None).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{name}: task signature on {path}"
            );
            assert!(body.contains("链接无效"), "{name}");
        }
        let (status, _) = c.get(&format!("/b/nanmen?{unit_query}"), None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{name}: xiguan's page signature on nanmen"
        );
    }
}

#[tokio::test]
async fn the_branch_page_lists_its_open_tasks_with_signed_done_buttons_and_the_feed_is_text_calendar()
 {
    for c in consoles().await {
        let name = c.name;
        let exp = c.now_secs() + 86_400;
        let page = c.signer().unit_link("xiguan", exp);
        let (status, body) = c.get(&page, None).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(body.contains("西关社区党委：待办事项"), "{name}");
        let x = c.task("nomination@xiguan").await;
        let d = c.task("nomination@dongguan").await;
        assert!(body.contains(&format!("data-task=\"{}\"", x.id)), "{name}");
        assert!(
            !body.contains(&format!("data-task=\"{}\"", d.id)),
            "{name}: only its own tasks"
        );
        assert!(
            !body.contains("轮次</a>"),
            "{name}: no console navigation for branches"
        );
        // Each button posts to the task's own signed link, which works.
        let action = c.signer().task_link("xiguan", x.id, exp);
        assert!(
            body.contains(&format!("action=\"{}\"", escaped(&action))),
            "{name}: {body}"
        );
        let resp = c.post(&action, None, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(c.snapshot(x.id).await.0, TaskState::Done, "{name}");
        let (_, body) = c.get(&page, None).await;
        assert!(
            !body.contains(&format!("data-task=\"{}\"", x.id)),
            "{name}: done tasks leave the list"
        );

        // The feed's link is signed for the feed only.
        let feed = c.signer().feed_link("xiguan", exp);
        assert!(
            body.contains(&escaped(&feed)),
            "{name}: the page links its feed"
        );
        let resp = c.http.get(c.url(&feed)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        assert_eq!(
            resp.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/calendar; charset=utf-8"),
            "{name}"
        );
        let ics = resp.text().await.expect("body");
        assert!(
            ics.starts_with("BEGIN:VCALENDAR") && ics.contains("组织推荐"),
            "{name}: {ics}"
        );
        let (status, _) = c.get(&c.signer().unit_link("nowhere", exp), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{name}: a signed link to an unknown unit"
        );
    }
}
