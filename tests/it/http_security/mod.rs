//! The HTTP server as an attacker meets it, on the real server (`api::serve` on port 0):
//! forged cross-site requests, the cookie on the JSON API, half-sent requests, a flood of
//! connections, the branch pages' rate limit, the security headers of every page, and the
//! one error shape of every rejection.

use crate::common;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yanzhen::config::HttpConfig;
use yanzhen::core::state::TaskState;

mod errors;
mod limits;

const SECRET: &str = "http-security-test";

/// The shared [`common::site::Site`] on SQLite, the admin and the reader signed in.
struct Site {
    site: common::site::Site,
    /// Console session cookies (`yz_session=ID`) of the admin and the reader.
    admin_session: String,
    reader_session: String,
}

impl std::ops::Deref for Site {
    type Target = common::site::Site;
    fn deref(&self) -> &common::site::Site {
        &self.site
    }
}

async fn site(http_config: HttpConfig) -> Site {
    let (name, store, guard) = common::stores::sqlite().await;
    let site =
        common::site::site_on(name, store, guard, http_config, SECRET, "http-security").await;
    Site {
        admin_session: common::session::sign_in(&site.base, &site.admin).await,
        reader_session: common::session::sign_in(&site.base, &site.reader).await,
        site,
    }
}

impl Site {
    async fn audit_len(&self) -> usize {
        self.store
            .audit_after(0, i64::MAX)
            .await
            .expect("audit")
            .len()
    }

    /// A console form post as a browser sends it: the sign-in cookie, a form body and the
    /// given request-origin headers.
    async fn form_post(&self, path: &str, origin_headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header(COOKIE, &self.admin_session)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!(
                "note=forged&csrf={}",
                common::session::csrf(SECRET, &self.admin_session)
            ));
        for (k, v) in origin_headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("POST")
    }
}

fn content_type(h: &HeaderMap) -> String {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `{"error": {"code": CODE, "message": "..."}}` with a non-empty message.
fn assert_error_shape(what: &str, v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

#[tokio::test]
async fn a_cross_origin_form_post_fails_while_the_consoles_own_form_works() {
    let s = site(HttpConfig::default()).await;
    let task = s.task("nomination@dongguan").await;
    let complete = format!("/console/tasks/{}/complete", task.id);
    // A page on another port of the same host is same-site, not same-origin: the very
    // attack of issue 15 (the SameSite=Strict cookie goes along).
    let other_port = format!("http://127.0.0.1:{}", s.addr.port().wrapping_add(1));
    let audit = s.audit_len().await;
    for headers in [
        vec![
            ("origin", other_port.as_str()),
            ("sec-fetch-site", "same-site"),
        ],
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        // A browser without Sec-Fetch-* still sends Origin on a cross-origin POST.
        vec![("origin", other_port.as_str())],
        // Sandboxed frames and cross-origin redirects send an opaque origin.
        vec![("origin", "null")],
    ] {
        let resp = s.form_post(&complete, &headers).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            content_type(resp.headers()).starts_with("text/html"),
            "{headers:?}"
        );
        let page = resp.text().await.expect("body");
        assert!(page.contains("已拒绝来自其他网站的请求"), "{page}");
    }
    assert_eq!(
        s.state_of(task.id).await,
        TaskState::Open,
        "nothing was completed"
    );
    assert_eq!(s.audit_len().await, audit, "nothing was audited as done");

    // The console's own form: same origin, as a browser marks it.
    let resp = s
        .form_post(
            &complete,
            &[("origin", &s.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.state_of(task.id).await, TaskState::Done);

    // The branch page's button, forged and genuine.
    let other = s.task("nomination@xiguan").await;
    let link = s.signer().task_link("xiguan", other.id, s.expires());
    let forged = s
        .http
        .post(s.url(&link))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(content_type(forged.headers()).starts_with("text/html"));
    assert_eq!(s.state_of(other.id).await, TaskState::Open);
    let genuine = s
        .http
        .post(s.url(&link))
        .header("origin", &s.base)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("POST");
    assert_eq!(genuine.status(), StatusCode::OK);
    assert_eq!(s.state_of(other.id).await, TaskState::Done);

    // The JSON API answers a forged change with the JSON error, even with a valid token.
    let third = s.task("deployment_meeting@dongguan").await;
    let resp = s
        .http
        .post(s.url(&format!("/api/tasks/{}/complete", third.id)))
        .bearer_auth(&s.admin)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: Value = resp.json().await.expect("json");
    assert_error_shape("forged API change", &v, "cross_site");
    assert_eq!(s.state_of(third.id).await, TaskState::Open);
    // Reads are never refused for their origin, and curl (no Origin) changes things.
    let read = s
        .http
        .get(s.url("/api/rounds"))
        .bearer_auth(&s.reader)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("GET");
    assert_eq!(read.status(), StatusCode::OK);
    let curl = s
        .http
        .post(s.url(&format!("/api/tasks/{}/complete", third.id)))
        .bearer_auth(&s.admin)
        .send()
        .await
        .expect("POST");
    assert_eq!(curl.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_changes_need_the_bearer_header_not_the_console_cookie_and_a_json_body() {
    let s = site(HttpConfig::default()).await;
    let task = s.task("nomination@dongguan").await;
    let complete = s.url(&format!("/api/tasks/{}/complete", task.id));
    // The cookie a browser attaches to any request is not enough to change anything.
    let resp = s
        .http
        .post(&complete)
        .header(COOKIE, &s.admin_session)
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.expect("json");
    assert_error_shape("cookie", &v, "unauthorized");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Authorization: Bearer")),
        "{v}"
    );
    // A body that is not declared JSON (what an HTML form can send) is refused.
    for content in ["text/plain", "application/x-www-form-urlencoded"] {
        let resp = s
            .http
            .post(&complete)
            .header("authorization", format!("bearer {}", s.admin))
            .header(CONTENT_TYPE, content)
            .body("{\"note\": \"x\"}")
            .send()
            .await
            .expect("POST");
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content}"
        );
        let v: Value = resp.json().await.expect("json");
        assert_error_shape(content, &v, "unsupported_media_type");
    }
    let resp = s
        .http
        .post(s.url("/api/rounds"))
        .bearer_auth(&s.admin)
        .header(CONTENT_TYPE, "text/plain")
        .body(json!({"workflow": "community-reserve-selection", "start": "2019-07-01"}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        s.state_of(task.id).await,
        TaskState::Open,
        "nothing changed"
    );
    assert_eq!(
        s.store.rounds().await.expect("rounds").len(),
        1,
        "nothing started"
    );

    // The scheme's name in any case; a JSON body, or none at all.
    let resp = s
        .http
        .post(&complete)
        .header("authorization", format!("BEARER {}", s.admin))
        .json(&json!({"note": "已报送"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.state_of(task.id).await, TaskState::Done);
    let other = s.task("nomination@xiguan").await;
    let resp = s
        .http
        .post(s.url(&format!("/api/tasks/{}/complete", other.id)))
        .header("authorization", format!("bearer {}", s.admin))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    // Reads still take the cookie (the console's pages are reads).
    let resp = s
        .http
        .get(s.url("/api/rounds"))
        .header(COOKIE, &s.reader_session)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
}
