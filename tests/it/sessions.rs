//! Issue 15's remaining holes, closed, on the real server (`api::serve` on port 0) over
//! both backends: read-only sessions hold no links and every minted link is audited;
//! links carry their scope (a feed URL cannot complete anything); the console signs in to
//! server-side sessions that end at sign-out, after idling and at once when the token is
//! revoked; sign-in attempts are rate-limited and audited; every console form carries the
//! session's CSRF token; tokens expire and have one clear duplicate-name error; a branch
//! confirms before marking done and may undo for a few minutes.

use crate::common;
use crate::common::session::{csrf, session_pair, sign_in};
use crate::common::site::Site;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use yanzhen::access::{LinkSigner, create_token, revoke_token};
use yanzhen::config::HttpConfig;
use yanzhen::core::state::{Rights, TaskState};
use yanzhen::runtime::clock::Clock;
use yanzhen::store::{AuditRow, StoreError, TaskRow};

const SECRET: &str = "sessions-test";

/// A site on `store` with `[http]` as `http`, links signed with [`SECRET`].
async fn site_on(
    name: &'static str,
    store: std::sync::Arc<dyn yanzhen::store::Store>,
    guard: common::stores::Guard,
    http: HttpConfig,
) -> Site {
    common::site::site_on(name, store, guard, http, SECRET, "sessions").await
}

/// One site per backend under test.
async fn sites(http: HttpConfig) -> Vec<Site> {
    let mut out = Vec::new();
    for (name, store, guard) in common::stores::stores().await {
        out.push(site_on(name, store, guard, http.clone()).await);
    }
    out
}

impl Site {
    async fn audit(&self, action: &str) -> Vec<AuditRow> {
        self.store
            .audit_after(0, i64::MAX)
            .await
            .expect("audit")
            .into_iter()
            .filter(|a| a.entry.action == action)
            .collect()
    }

    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("GET")
    }

    /// POST the sign-in form with `token`, as the console's sign-in page does.
    async fn login(&self, token: &str) -> reqwest::Response {
        common::session::post_form(
            &self.http,
            &self.url("/console/login"),
            None,
            &[("token", token)],
        )
        .await
    }

    /// A console form post from the console's own page (no Origin headers: same-origin
    /// as far as the server can tell) with a session cookie and this body.
    async fn form(&self, path: &str, cookie: &str, body: String) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header(COOKIE, cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    async fn branch_post(&self, path: &str) -> reqwest::Response {
        self.http.post(self.url(path)).send().await.expect("POST")
    }
}

/// Text as the pages' templates escape it.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('/', "&#x2f;")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_read_only_session_sees_no_branch_links_and_an_admin_mint_is_audited() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let task = s.task("nomination@dongguan").await;
        let reader = sign_in(&s.base, &s.reader).await;
        for page in [
            format!("/console/tasks/{}", task.id),
            "/console/overdue".to_string(),
            format!("/console/rounds/{}", s.round),
        ] {
            let resp = s.get(&page, &reader).await;
            assert_eq!(resp.status(), StatusCode::OK, "{name}: {page}");
            let body = resp.text().await.expect("body");
            for link in ["/b/", &escaped("/b/")] {
                assert!(!body.contains(link), "{name}: {page} shows a link: {body}");
            }
            assert!(!body.contains("分支完成链接"), "{name}: {page}");
        }
        assert!(
            s.audit("link.mint").await.is_empty(),
            "{name}: nothing minted for the reader"
        );
        // The reader's forged change fails, CSRF token and all.
        let resp = s
            .form(
                &format!("/console/tasks/{}/complete", task.id),
                &reader,
                format!("csrf={}", csrf(SECRET, &reader)),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(s.state_of(task.id).await, TaskState::Open, "{name}");

        let admin = sign_in(&s.base, &s.admin).await;
        let body = s
            .get(&format!("/console/tasks/{}", task.id), &admin)
            .await
            .text()
            .await
            .expect("body");
        assert!(
            body.contains(&escaped(&format!("/b/dongguan/t/{}?exp=", task.id))),
            "{name}: the admin gets the task's link"
        );
        let minted = s.audit("link.mint").await;
        assert_eq!(minted.len(), 1, "{name}: one link shown, one audit row");
        let m = &minted[0].entry;
        assert_eq!(m.actor, "token:zzb-admin", "{name}");
        assert_eq!(m.subject, format!("task:{}", task.id), "{name}");
        let detail: serde_json::Value = serde_json::from_str(&m.detail_json).expect("json");
        assert_eq!(detail["unit"], "dongguan", "{name}");
        assert_eq!(detail["scope"], format!("task:{}", task.id), "{name}");
        assert!(detail["expires"].is_i64(), "{name}: {detail}");
    }
}

#[tokio::test]
async fn a_feed_url_can_read_the_feed_only_and_carries_no_completion_links() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let task = s.task("nomination@dongguan").await;
        let exp = s.expires();
        let feed = s.signer().feed_link("dongguan", exp);
        let resp = s.http.get(s.url(&feed)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let ics = resp.text().await.expect("ics");
        assert!(ics.starts_with("BEGIN:VCALENDAR"), "{name}: {ics}");
        assert!(
            !ics.contains("/b/"),
            "{name}: the feed carries a link: {ics}"
        );
        assert!(
            !ics.contains("sig="),
            "{name}: the feed carries a signature"
        );

        // The feed's signature on the task's address: no completion.
        let (_, query) = feed.split_once('?').expect("query");
        let forged = format!("/b/dongguan/t/{}?{query}", task.id);
        let resp = s.branch_post(&forged).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}");
        assert_eq!(s.state_of(task.id).await, TaskState::Open, "{name}");
        // Nor the unit page (which would hand out the task links).
        let resp = s
            .http
            .get(s.url(&format!("/b/dongguan?{query}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}");

        // The unit page links its feed with the feed's own signature.
        let unit = s.signer().unit_link("dongguan", exp);
        let page = s.http.get(s.url(&unit)).send().await.expect("GET");
        let body = page.text().await.expect("body");
        assert!(
            body.contains(&escaped(&feed)),
            "{name}: the page links the feed-scoped URL"
        );
        // A feed URL made before scopes (a unit-page signature) still reads the feed.
        let old = unit.replace("/b/dongguan?", "/b/dongguan/feed.ics?");
        let resp = s.http.get(s.url(&old)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{name}: an old feed URL");
    }
}

#[tokio::test]
async fn a_task_link_cannot_act_on_another_task_of_the_same_unit() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let mine = s.task("nomination@dongguan").await;
        let link = s.signer().task_link("dongguan", mine.id, s.expires());
        let others: Vec<TaskRow> = s
            .store
            .tasks(s.round)
            .await
            .expect("tasks")
            .into_iter()
            .filter(|t| t.assignee_id == "dongguan" && t.id != mine.id)
            .collect();
        assert!(!others.is_empty(), "{name}: the unit has other tasks");
        for other in others {
            let forged = link.replace(&format!("/t/{}?", mine.id), &format!("/t/{}?", other.id));
            let before = s.state_of(other.id).await;
            let resp = s.branch_post(&forged).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {forged}");
            let resp = s.branch_post(&forged.replace('?', "/undo?")).await;
            assert_eq!(
                resp.status(),
                StatusCode::FORBIDDEN,
                "{name}: undo {forged}"
            );
            assert_eq!(s.state_of(other.id).await, before, "{name}");
        }
    }
}

#[tokio::test]
async fn the_session_cookie_holds_no_token_and_ends_at_once_when_the_token_is_revoked() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let resp = s.login(&s.admin).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        let set: Vec<String> = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let session = set
            .iter()
            .find(|c| c.starts_with("yz_session="))
            .unwrap_or_else(|| panic!("{name}: no session cookie in {set:?}"));
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(session.contains(attr), "{name}: {attr} in {session}");
        }
        assert!(!session.contains("Secure"), "{name}: plain http, no Secure");
        for c in &set {
            assert!(
                !c.contains(&s.admin),
                "{name}: a cookie holds the token: {c}"
            );
        }
        let pair = session_pair(&resp).expect("pair");
        let sign_ins = s.audit("console.sign_in").await;
        assert_eq!(sign_ins.len(), 1, "{name}");
        assert_eq!(sign_ins[0].entry.actor, "token:zzb-admin", "{name}");
        assert!(
            sign_ins[0].entry.detail_json.contains("127.0.0.1"),
            "{name}: the address is recorded"
        );
        assert!(
            !sign_ins[0].entry.detail_json.contains(&s.admin),
            "{name}: the token is never recorded"
        );

        let resp = s.get("/console", &pair).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let resp = s.get("/api/rounds", &pair).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{name}: reads rest on the session"
        );

        // Revoking the token ends the session on the very next request.
        let now = s.clock.now().timestamp_millis();
        assert!(
            revoke_token(s.store.as_ref(), "zzb-admin", "test", now)
                .await
                .expect("revoke"),
            "{name}"
        );
        let resp = s.get("/console", &pair).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(location(&resp), "/console/login", "{name}");
        let resp = s.get("/api/rounds", &pair).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}");
        let resp = s
            .http
            .get(s.url("/api/rounds"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{name}: the token too"
        );
    }
}

#[tokio::test]
async fn a_session_ends_at_sign_out_and_after_its_idle_time() {
    let http = HttpConfig {
        session_idle_minutes: 30,
        ..HttpConfig::default()
    };
    for s in sites(http).await {
        let name = s.name;
        let a = sign_in(&s.base, &s.admin).await;
        let resp = s
            .form("/console/logout", &a, format!("csrf={}", csrf(SECRET, &a)))
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(s.audit("console.sign_out").await.len(), 1, "{name}");
        // The old cookie, replayed, opens nothing: the session is gone on the server.
        let resp = s.get("/console", &a).await;
        assert_eq!(location(&resp), "/console/login", "{name}: after sign-out");

        let b = sign_in(&s.base, &s.admin).await;
        s.clock.advance(chrono::Duration::minutes(20));
        assert_eq!(
            s.get("/console", &b).await.status(),
            StatusCode::OK,
            "{name}"
        );
        // Used 20 minutes in: it lasts 30 minutes from then, not from the sign-in.
        s.clock.advance(chrono::Duration::minutes(20));
        assert_eq!(
            s.get("/console", &b).await.status(),
            StatusCode::OK,
            "{name}"
        );
        s.clock.advance(chrono::Duration::minutes(31));
        let resp = s.get("/console", &b).await;
        assert_eq!(location(&resp), "/console/login", "{name}: idle too long");
    }
}

#[tokio::test]
async fn sign_in_attempts_get_429_after_the_burst_and_each_is_audited() {
    let http = HttpConfig {
        login_burst: 3,
        login_attempts_per_minute: 1,
        ..HttpConfig::default()
    };
    for s in sites(http).await {
        let name = s.name;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let resp = s.login("yz_guessed").await;
            statuses.push(resp.status());
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                assert!(resp.headers().contains_key("retry-after"), "{name}");
            }
        }
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{name}"
        );
        // Even the right token waits now.
        let resp = s.login(&s.admin).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        let refused = s.audit("console.sign_in_refused").await;
        assert_eq!(refused.len(), 3, "{name}: the attempts that were read");
        for r in &refused {
            assert_eq!(r.entry.actor, "address:127.0.0.1", "{name}");
            assert!(r.entry.detail_json.contains("unknown"), "{name}");
            assert!(!r.entry.detail_json.contains("yz_guessed"), "{name}");
        }
    }
}

#[tokio::test]
async fn a_console_form_without_its_sessions_csrf_token_is_refused_and_with_it_works() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let task = s.task("nomination@dongguan").await;
        let a = sign_in(&s.base, &s.admin).await;
        let other = sign_in(&s.base, &s.admin).await;
        let page = s
            .get(&format!("/console/tasks/{}", task.id), &a)
            .await
            .text()
            .await
            .expect("body");
        let token = csrf(SECRET, &a);
        assert!(
            page.contains(&format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{token}\">"
            )),
            "{name}: the forms carry the session's token"
        );
        let complete = format!("/console/tasks/{}/complete", task.id);
        for body in [
            "note=forged".to_string(),
            "note=forged&csrf=".to_string(),
            format!("note=forged&csrf={}", csrf(SECRET, &other)),
            format!("note=forged&csrf={}", csrf("another-secret", &a)),
        ] {
            let resp = s.form(&complete, &a, body.clone()).await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {body}");
            let html = resp.text().await.expect("body");
            assert!(html.contains("已拒绝未经验证的提交"), "{name}: {html}");
            assert_eq!(s.state_of(task.id).await, TaskState::Open, "{name}");
        }
        // An Authorization header that is not a Bearer token does not excuse the cookie.
        let resp = s
            .http
            .post(s.url(&complete))
            .header(COOKIE, &a)
            .header("Authorization", "Basic eDp5")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("note=forged")
            .send()
            .await
            .expect("POST");
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{name}: Basic + cookie"
        );
        assert_eq!(s.state_of(task.id).await, TaskState::Open, "{name}");
        // A text/plain body (what a cross-site form may send) reaches no handler.
        let resp = s
            .http
            .post(s.url(&complete))
            .header(COOKIE, &a)
            .header(CONTENT_TYPE, "text/plain")
            .body(format!("csrf={token}"))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}");
        let resp = s
            .form(
                &complete,
                &a,
                format!("note=%E5%B7%B2%E6%8A%A5&csrf={token}"),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        assert_eq!(s.state_of(task.id).await, TaskState::Done, "{name}");
    }
}

#[tokio::test]
async fn tokens_expire_and_a_duplicate_name_gets_one_clear_error() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let now = s.clock.now().timestamp_millis();
        let err = create_token(s.store.as_ref(), "viewer", Rights::Read, None, "test", now)
            .await
            .expect_err("a duplicate name");
        assert!(matches!(err, StoreError::Exists(_)), "{name}: {err:?}");
        assert_eq!(
            err.to_string(),
            "a token named `viewer` already exists; revoke it or choose another name",
            "{name}"
        );
        // Once revoked, the name may be used again, by a new token.
        assert!(
            revoke_token(s.store.as_ref(), "viewer", "test", now)
                .await
                .expect("revoke")
        );
        assert!(
            !revoke_token(s.store.as_ref(), "viewer", "test", now)
                .await
                .expect("revoke"),
            "{name}: revoking twice"
        );
        let again = create_token(s.store.as_ref(), "viewer", Rights::Read, None, "test", now)
            .await
            .expect("the name of a revoked token");
        let resp = s
            .http
            .get(s.url("/api/rounds"))
            .bearer_auth(&s.reader)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "{name}: the old one"
        );
        let resp = s
            .http
            .get(s.url("/api/rounds"))
            .bearer_auth(&again)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{name}: the new one");

        let short = create_token(
            s.store.as_ref(),
            "temp",
            Rights::Admin,
            Some(now + 3_600_000),
            "test",
            now,
        )
        .await
        .expect("token");
        let get = |t: String| {
            let req = s.http.get(s.url("/api/rounds")).bearer_auth(t);
            async move { req.send().await.expect("GET").status() }
        };
        assert_eq!(get(short.clone()).await, StatusCode::OK, "{name}");
        let listed = s.store.tokens().await.expect("tokens");
        let temp = listed.iter().find(|t| t.name == "temp").expect("listed");
        assert_eq!(temp.expires_at, Some(now + 3_600_000), "{name}");
        assert!(temp.last_used_at.is_some(), "{name}: its use is recorded");
        s.clock.advance(chrono::Duration::hours(2));
        assert_eq!(get(short.clone()).await, StatusCode::UNAUTHORIZED, "{name}");
        let resp = s.login(&short).await;
        assert!(
            session_pair(&resp).is_none(),
            "{name}: no session for an expired token"
        );
    }
}

#[tokio::test]
async fn a_branch_confirms_before_marking_done_and_may_undo_within_the_window() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let task = s.task("nomination@dongguan").await;
        let link = s.signer().task_link("dongguan", task.id, s.expires());
        let page = s
            .http
            .get(s.url(&link))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        // The button opens a confirmation holding the real form (no script needed).
        let details = page.find("<details").expect("a confirmation step");
        let form = page
            .find("id=\"mark-done\"")
            .expect("the confirming button");
        assert!(
            details < form,
            "{name}: the form is inside the confirmation"
        );

        let resp = s.branch_post(&link).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let done = resp.text().await.expect("body");
        assert!(done.contains("id=\"undo\""), "{name}: {done}");
        assert_eq!(s.state_of(task.id).await, TaskState::Done, "{name}");

        s.clock.advance(chrono::Duration::minutes(5));
        let undo = link.replacen('?', "/undo?", 1);
        let resp = s.branch_post(&undo).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let back = s.store.task(task.id).await.expect("task").expect("exists");
        assert_eq!(back.state, TaskState::Open, "{name}");
        assert_eq!(back.due_at, task.due_at, "{name}: the same deadline");
        let undone = s.audit("task.undo").await;
        assert_eq!(undone.len(), 1, "{name}");
        assert_eq!(undone[0].entry.actor, "link:dongguan", "{name}");
        assert_eq!(
            undone[0].entry.subject,
            format!("task:{}", task.id),
            "{name}"
        );

        // Past the window the "done" stays.
        assert_eq!(
            s.branch_post(&link).await.status(),
            StatusCode::OK,
            "{name}"
        );
        s.clock.advance(chrono::Duration::minutes(11));
        let resp = s.branch_post(&undo).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        assert_eq!(s.state_of(task.id).await, TaskState::Done, "{name}");
        assert_eq!(s.audit("task.undo").await.len(), 1, "{name}");
        // A "done" the office marked is not the branch's to undo.
        let other = s.task("nomination@xiguan").await;
        let xlink = s.signer().task_link("xiguan", other.id, s.expires());
        let api = s
            .http
            .post(s.url(&format!("/api/tasks/{}/complete", other.id)))
            .bearer_auth(&s.admin)
            .send()
            .await
            .expect("POST");
        assert_eq!(api.status(), StatusCode::OK, "{name}");
        let resp = s.branch_post(&xlink.replacen('?', "/undo?", 1)).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        assert_eq!(s.state_of(other.id).await, TaskState::Done, "{name}");
    }
}

#[tokio::test]
async fn administrators_list_create_and_revoke_tokens_in_the_console_and_the_api() {
    for s in sites(HttpConfig::default()).await {
        let name = s.name;
        let reader = sign_in(&s.base, &s.reader).await;
        let resp = s.get("/console/tokens", &reader).await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{name}: readers see no tokens"
        );
        let admin = sign_in(&s.base, &s.admin).await;
        let token = csrf(SECRET, &admin);
        let page = s
            .get("/console/tokens", &admin)
            .await
            .text()
            .await
            .expect("body");
        for t in ["zzb-admin", "viewer"] {
            assert!(page.contains(&format!("data-token=\"{t}\"")), "{name}: {t}");
        }
        // Created in the console: shown once, works at once.
        let resp = s
            .form(
                "/console/tokens",
                &admin,
                format!("csrf={token}&name=ops&read_only=1&days=30"),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let page = resp.text().await.expect("body");
        let shown = page
            .split("id=\"token-value\"")
            .next()
            .and_then(|p| p.rsplit("value=\"").next())
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_string();
        assert!(
            shown.starts_with("yz_"),
            "{name}: the new token is shown: {page}"
        );
        let ops = s.store.tokens().await.expect("tokens");
        let ops = ops.iter().find(|t| t.name == "ops").expect("stored");
        assert_eq!(ops.rights, Rights::Read, "{name}");
        assert!(ops.expires_at.is_some(), "{name}");
        let resp = s
            .http
            .get(s.url("/api/rounds"))
            .bearer_auth(&shown)
            .send()
            .await;
        assert_eq!(resp.expect("GET").status(), StatusCode::OK, "{name}");
        let resp = s
            .form("/console/tokens", &admin, format!("csrf={token}&name=ops"))
            .await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}: a duplicate");
        assert!(
            resp.text()
                .await
                .expect("body")
                .contains("已有名为「ops」的令牌")
        );
        let resp = s
            .form(
                "/console/tokens/ops/revoke",
                &admin,
                format!("csrf={token}"),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{name}");
        let resp = s
            .http
            .get(s.url("/api/rounds"))
            .bearer_auth(&shown)
            .send()
            .await;
        assert_eq!(
            resp.expect("GET").status(),
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
        let revokes = s.audit("token.revoke").await;
        assert_eq!(revokes.len(), 1, "{name}");
        assert_eq!(revokes[0].entry.actor, "token:zzb-admin", "{name}");

        // The same through the API, for administrators only.
        let resp = s
            .http
            .get(s.url("/api/tokens"))
            .bearer_auth(&s.reader)
            .send()
            .await;
        assert_eq!(resp.expect("GET").status(), StatusCode::FORBIDDEN, "{name}");
        let list: serde_json::Value = s
            .http
            .get(s.url("/api/tokens"))
            .bearer_auth(&s.admin)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert!(
            list.as_array()
                .is_some_and(|a| a.iter().any(|t| t["name"] == "ops" && t["active"] == false)),
            "{name}: {list}"
        );
        assert!(
            !list.to_string().contains("yz_"),
            "{name}: no token in the list"
        );
        let create = |body: serde_json::Value| {
            let req = s
                .http
                .post(s.url("/api/tokens"))
                .bearer_auth(&s.admin)
                .json(&body);
            async move { req.send().await.expect("POST") }
        };
        let resp = create(serde_json::json!({"name": "bot", "days": 7})).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{name}");
        let made: serde_json::Value = resp.json().await.expect("json");
        assert!(made["token"].as_str().is_some_and(|t| t.starts_with("yz_")));
        let resp = create(serde_json::json!({"name": "bot"})).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{name}");
        let err: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(err["error"]["code"], "exists", "{name}");
        let resp = create(serde_json::json!({"name": "a b"})).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let revoke = || {
            let req = s
                .http
                .post(s.url("/api/tokens/bot/revoke"))
                .bearer_auth(&s.admin);
            async move { req.send().await.expect("POST").status() }
        };
        assert_eq!(revoke().await, StatusCode::OK, "{name}");
        assert_eq!(revoke().await, StatusCode::NOT_FOUND, "{name}");
    }
}

#[tokio::test]
async fn the_token_commands_create_list_and_revoke_with_one_clear_error_for_a_duplicate() {
    let mut setups = vec![("sqlite", common::daemon::Setup::new())];
    let mut _guards = Vec::new();
    if let Some((url, guard)) = common::stores::postgres_database().await {
        setups.push(("postgres", common::daemon::Setup::new().db_url(url)));
        _guards.push(guard);
    }
    for (name, s) in setups {
        let out = s.run(&["token", "create", "zzb-ma", "--days", "30"]);
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(token.starts_with("yz_"), "{name}: {token}");
        let out = s.cmd(&["token", "create", "zzb-ma"]).output().expect("run");
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        let message = "a token named `zzb-ma` already exists; revoke it or choose another name";
        assert_eq!(err.matches(message).count(), 1, "{name}: said once: {err}");
        assert!(
            !err.contains("UNIQUE") && !err.contains("duplicate key"),
            "{name}: {err}"
        );
        s.run(&[
            "token",
            "create",
            "viewer",
            "--read-only",
            "--expires",
            "2099-12-31",
        ]);
        let out = s.run(&["token", "list"]);
        let list = String::from_utf8_lossy(&out.stdout);
        let line = |t: &str| {
            list.lines()
                .find(|l| l.starts_with(&format!("{t}\t")))
                .unwrap_or_else(|| panic!("{name}: {t} not listed: {list}"))
                .to_string()
        };
        assert!(line("zzb-ma").contains("admin") && line("zzb-ma").ends_with("active"));
        assert!(line("viewer").contains("read") && line("viewer").contains("2100年1月1日"));
        assert!(!list.contains(&token), "{name}: the list shows no token");
        s.run(&["token", "revoke", "zzb-ma"]);
        let out = s.run(&["token", "list"]);
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(
            list.lines()
                .any(|l| l.starts_with("zzb-ma\t") && l.ends_with("revoked")),
            "{name}: {list}"
        );
        let out = s.cmd(&["token", "revoke", "zzb-ma"]).output().expect("run");
        assert!(!out.status.success(), "{name}: revoking twice");
        let store = s.store().await;
        let revoked = store
            .token_by_hash(&yanzhen::access::token_hash(&token))
            .await;
        assert!(
            revoked.expect("read").is_none(),
            "{name}: the token no longer opens anything"
        );
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https_as_configured_or_told_by_a_trusted_proxy() {
    let cookie_of = |resp: &reqwest::Response| {
        resp.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("yz_session="))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let (_, store, guard) = common::stores::sqlite().await;
    let trusted = HttpConfig {
        trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
        ..HttpConfig::default()
    };
    let s = site_on("sqlite", store, guard, trusted).await;
    let sign_in_with = |proto: Option<&'static str>| {
        let mut req = s
            .http
            .post(s.url("/console/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={}", s.admin));
        if let Some(p) = proto {
            req = req.header("X-Forwarded-Proto", p);
        }
        async move { req.send().await.expect("POST") }
    };
    let behind = cookie_of(&sign_in_with(Some("https")).await);
    assert!(behind.contains("; Secure"), "{behind}");
    let plain = cookie_of(&sign_in_with(Some("http")).await);
    assert!(!plain.contains("Secure"), "{plain}");

    // From a peer that is not a trusted proxy the header is not believed.
    let (_, store, guard) = common::stores::sqlite().await;
    let s = site_on("sqlite", store, guard, HttpConfig::default()).await;
    let resp = s
        .http
        .post(s.url("/console/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Forwarded-Proto", "https")
        .body(format!("token={}", s.admin))
        .send()
        .await
        .expect("POST");
    assert!(!cookie_of(&resp).contains("Secure"), "{}", cookie_of(&resp));

    // `secure_cookies` marks it always.
    let (_, store, guard) = common::stores::sqlite().await;
    let always = HttpConfig {
        secure_cookies: true,
        ..HttpConfig::default()
    };
    let s = site_on("sqlite", store, guard, always).await;
    let resp = s.login(&s.admin).await;
    assert!(
        cookie_of(&resp).contains("; Secure"),
        "{}",
        cookie_of(&resp)
    );
}

#[tokio::test]
async fn the_link_command_prints_a_scoped_link_and_audits_it() {
    let s = common::daemon::Setup::new()
        .with_config("\n[notify]\nlink_base = \"https://yz.example.gov.cn/\"\n");
    let run = |args: &[&str]| {
        s.cmd(args)
            .env("YANZHEN_LINK_SECRET", SECRET)
            .output()
            .expect("run")
    };
    let out = run(&["link", "feed", "dongguan", "--days", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = link
        .strip_prefix("https://yz.example.gov.cn")
        .unwrap_or_else(|| panic!("{link}"));
    let exp: i64 = path
        .split("exp=")
        .nth(1)
        .and_then(|e| e.split('&').next())
        .and_then(|e| e.parse().ok())
        .expect("exp");
    assert_eq!(
        path,
        LinkSigner::new(SECRET).feed_link("dongguan", exp),
        "a feed link"
    );
    let out = run(&["link", "unit", "nowhere"]);
    assert!(!out.status.success(), "an unknown unit");
    let store = s.store().await;
    let minted: Vec<AuditRow> = store
        .audit_after(0, i64::MAX)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.entry.action == "link.mint")
        .collect();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].entry.actor, "cli");
    assert_eq!(minted[0].entry.subject, "feed:dongguan");
}
