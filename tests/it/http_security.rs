//! The HTTP server as an attacker meets it, on the real server (`api::serve` on port 0):
//! forged cross-site requests, the cookie on the JSON API, half-sent requests, a flood of
//! connections, the branch pages' rate limit, the security headers of every page, and the
//! one error shape of every rejection.

use crate::common;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yanzhen::access::{LinkSigner, new_token, token_hash};
use yanzhen::config::HttpConfig;
use yanzhen::core::state::{Rights, TaskState};
use yanzhen::engine::StartRound;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::{Clock, VirtualClock};
use yanzhen::store::{AuditEntry, Store, TaskRow, TokenRow};

const SECRET: &str = "http-security-test";

/// A server with one running round (community reserve selection for dongguan and xiguan),
/// an admin and a read-only token.
struct Site {
    base: String,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    store: Arc<dyn Store>,
    clock: Arc<VirtualClock>,
    admin: String,
    reader: String,
    /// Console session cookies (`yz_session=ID`) of the admin and the reader.
    admin_session: String,
    reader_session: String,
    round: i64,
    _stop: tokio::sync::oneshot::Sender<()>,
    _guard: common::stores::Guard,
}

async fn site(http_config: HttpConfig) -> Site {
    yanzhen::notify::install_tls_provider();
    let (_, store, guard) = common::stores::sqlite().await;
    let mut catalog = common::catalog_with(&[], true);
    catalog.config.http = http_config;
    let start = chrono::NaiveDate::from_ymd_opt(2019, 7, 1).expect("date");
    let clock = Arc::new(VirtualClock::new(
        start.and_hms_opt(1, 0, 0).expect("time").and_utc(),
    ));
    let app = App::build(
        catalog,
        store.clone(),
        clock.clone(),
        AppOptions {
            link_secret: Some(SECRET.into()),
            ..AppOptions::new("http-security")
        },
    )
    .await
    .expect("app");
    let engine = app.engine.clone();
    let round = engine
        .start_round(StartRound {
            workflow: "community-reserve-selection".into(),
            start,
            params: BTreeMap::new(),
            units: Some(vec!["dongguan".into(), "xiguan".into()]),
            actor: "test".into(),
        })
        .await
        .expect("round");
    let mut tokens = Vec::new();
    for (name, rights) in [("zzb-admin", Rights::Admin), ("viewer", Rights::Read)] {
        let t = new_token();
        store
            .create_token(
                TokenRow {
                    name: name.into(),
                    hash: token_hash(&t),
                    rights,
                    created_at: 0,
                    revoked_at: None,
                    expires_at: None,
                    last_used_at: None,
                },
                AuditEntry {
                    at: 0,
                    actor: "test".into(),
                    action: "token.create".into(),
                    subject: format!("token:{name}"),
                    detail_json: "{}".into(),
                },
            )
            .await
            .expect("token");
        tokens.push(t);
    }
    let state = app.http.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(yanzhen::api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let reader = tokens.pop().expect("reader");
    let admin = tokens.pop().expect("admin");
    Site {
        admin_session: common::session::sign_in(&base, &admin).await,
        reader_session: common::session::sign_in(&base, &reader).await,
        base,
        addr,
        http,
        store,
        clock,
        reader,
        admin,
        round,
        _stop: stop,
        _guard: guard,
    }
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn task(&self, key: &str) -> TaskRow {
        self.store
            .task_by_key(self.round, key)
            .await
            .expect("task")
            .unwrap_or_else(|| panic!("no task {key}"))
    }

    async fn state_of(&self, id: i64) -> TaskState {
        self.store
            .task(id)
            .await
            .expect("task")
            .expect("exists")
            .state
    }

    async fn audit_len(&self) -> usize {
        self.store
            .audit_after(0, i64::MAX)
            .await
            .expect("audit")
            .len()
    }

    fn signer(&self) -> LinkSigner {
        LinkSigner::new(SECRET)
    }

    fn expires(&self) -> i64 {
        self.clock.now().timestamp() + 86_400
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

/// Read from `stream` until the server closes it (or resets it); the time that took, or
/// `None` if it was still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slow_half_sent_requests_are_closed_after_the_header_read_timeout() {
    let s = site(HttpConfig {
        header_read_timeout_seconds: 1,
        // All 200 from this one address are let in, so that each waits for the timeout.
        max_connections_per_address: 1000,
        ..HttpConfig::default()
    })
    .await;
    let mut half_sent = Vec::new();
    for i in 0..200 {
        let mut c = TcpStream::connect(s.addr).await.expect("connect");
        // A request line and part of the headers, never the blank line that ends them.
        let partial = if i % 2 == 0 {
            "GET /healthz HTTP/1.1\r\nHost: x\r\n".to_string()
        } else {
            "POST /api/rounds HTTP/1.1\r\nHost: x\r\nContent-Ty".to_string()
        };
        c.write_all(partial.as_bytes()).await.expect("write");
        half_sent.push(c);
    }
    // A slow client that trickles a byte every 300 ms is no better off.
    let mut trickle = TcpStream::connect(s.addr).await.expect("connect");
    let trickled = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    });
    let started = Instant::now();
    for (i, c) in half_sent.iter_mut().enumerate() {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        assert!(
            closed_within(c, left).await.is_some(),
            "half-sent request {i} still open after {:?}",
            started.elapsed()
        );
    }
    let all_closed = started.elapsed();
    assert!(
        all_closed < Duration::from_secs(4),
        "the server took {all_closed:?} to close 200 half-sent requests (timeout 1 s)"
    );
    assert!(
        trickled.await.expect("trickle"),
        "a trickling client was cut off before it finished its headers"
    );

    // A kept-alive connection that then sits idle is closed after the same timeout.
    let mut idle = TcpStream::connect(s.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let after = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(
        after.is_some_and(|d| d < Duration::from_secs(3)),
        "an idle kept-alive connection stayed open: {after:?}"
    );

    // And the server still answers.
    let resp = s.http.get(s.url("/healthz")).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// What the server sent on `c` within `limit` (until it closed the connection or `until`
/// appeared in it), or `None` if it sent nothing.
async fn answered_within(c: &mut TcpStream, limit: Duration, until: &str) -> Option<String> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Some(left) = limit.checked_sub(started.elapsed()) {
        match tokio::time::timeout(left, c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got).contains(until) {
                    break;
                }
            }
            _ => break,
        }
    }
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).to_string())
}

#[tokio::test]
async fn a_connection_over_the_cap_waits_in_the_queue_until_one_closes() {
    let s = site(HttpConfig {
        max_connections: 2,
        header_read_timeout_seconds: 30,
        ..HttpConfig::default()
    })
    .await;
    let mut first = TcpStream::connect(s.addr).await.expect("connect");
    first
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let mut second = TcpStream::connect(s.addr).await.expect("connect");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    // Both slots are taken: the third connection is not accepted (the kernel queues it),
    // so its complete request is not answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(s.addr).await.expect("connect (queued)");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(
        answered_within(&mut third, Duration::from_millis(800), "\r\n\r\n").await,
        None,
        "a third connection was served beside the two that fill the cap of 2"
    );
    // One of the two goes away: the queued connection is served.
    drop(first);
    let answer = answered_within(&mut third, Duration::from_secs(5), "\r\n\r\n").await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "the queued connection was not served once a slot freed: {answer:?}"
    );
    drop(second);
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let s = site(HttpConfig {
        max_connections_per_address: 3,
        ..HttpConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(s.addr).await.expect("connect");
        c.write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .expect("write");
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fourth from the same address is closed at once, unanswered.
    let mut fourth = TcpStream::connect(s.addr).await.expect("connect");
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let closed = closed_within(&mut fourth, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "a fourth connection from one address stayed open"
    );
    // Another address (127.0.0.2 is loopback too) is served meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut other = socket.connect(s.addr).await.expect("connect");
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = answered_within(&mut other, Duration::from_secs(2), "\r\n\r\n").await;
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
        "{answer:?}"
    );
    // Once one of the three goes, the address may connect again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = s.http.get(s.url("/healthz")).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_branch_pages_answer_429_with_retry_after_once_an_address_spends_its_burst() {
    let s = site(HttpConfig {
        branch_requests_per_minute: 1,
        branch_burst: 3,
        ..HttpConfig::default()
    })
    .await;
    let page = s.signer().unit_link("dongguan", s.expires());
    for i in 0..3 {
        let resp = s.http.get(s.url(&page)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "request {i} of the burst");
    }
    let resp = s.http.get(s.url(&page)).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=61).contains(&retry), "Retry-After: {retry}");
    assert!(content_type(resp.headers()).starts_with("text/html"));
    assert!(resp.headers().contains_key("content-security-policy"));
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("请求过于频繁") && body.contains(&format!("{retry} 秒")),
        "{body}"
    );
    // Marking done through a task link counts against the same address.
    let task = s.task("nomination@dongguan").await;
    let link = s.signer().task_link("dongguan", task.id, s.expires());
    let resp = s.http.post(s.url(&link)).send().await.expect("POST");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.state_of(task.id).await, TaskState::Open);
    // The console and the API are not behind the branch pages' limit.
    for _ in 0..10 {
        let resp = s
            .http
            .get(s.url("/console/login"))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

/// What every response must carry.
fn assert_security_headers(what: &str, h: &HeaderMap) {
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            h.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
}

/// The parts of a page the policy would block: inline scripts, style attributes and
/// elements, event handler attributes.
fn assert_nothing_inline(what: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..lower[i..].find('>').map_or(lower.len(), |e| i + e)];
        assert!(tag.contains(" src="), "{what}: inline script {tag}");
    }
    assert!(!lower.contains("<style"), "{what}: a <style> element");
    assert!(!lower.contains(" style="), "{what}: a style attribute");
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onchange=",
        " oninput=",
        " onerror=",
    ] {
        assert!(
            !lower.contains(handler),
            "{what}: an event handler {handler}"
        );
    }
}

#[tokio::test]
async fn security_headers_are_present_on_every_html_response_and_no_page_needs_inline_code() {
    let s = site(HttpConfig::default()).await;
    let task = s.task("nomination@dongguan").await;
    let signer = s.signer();
    let unit = signer.unit_link("dongguan", s.expires());
    let link = signer.task_link("dongguan", task.id, s.expires());
    let pages: Vec<(String, bool, StatusCode)> = vec![
        ("/console/login".into(), false, StatusCode::OK),
        ("/console".into(), true, StatusCode::OK),
        (format!("/console/rounds/{}", s.round), true, StatusCode::OK),
        (format!("/console/tasks/{}", task.id), true, StatusCode::OK),
        ("/console/overdue".into(), true, StatusCode::OK),
        ("/console/workflows".into(), true, StatusCode::OK),
        (
            "/console/workflows/community-reserve-selection/edit".into(),
            true,
            StatusCode::OK,
        ),
        (unit.clone(), false, StatusCode::OK),
        (link.clone(), false, StatusCode::OK),
        (link.replace("sig=", "sig=00"), false, StatusCode::FORBIDDEN),
        ("/console/rounds/9999".into(), true, StatusCode::NOT_FOUND),
        ("/console/rounds/abc".into(), true, StatusCode::BAD_REQUEST),
        ("/console/no-such-page".into(), true, StatusCode::NOT_FOUND),
        ("/b/dongguan/t/1/x".into(), false, StatusCode::NOT_FOUND),
    ];
    for (path, signed_in, status) in pages {
        let mut req = s.http.get(s.url(&path));
        if signed_in {
            req = req.header(COOKIE, &s.admin_session);
        }
        let resp = req.send().await.expect("GET");
        assert_eq!(resp.status(), status, "{path}");
        assert!(
            content_type(resp.headers()).starts_with("text/html"),
            "{path}"
        );
        assert_security_headers(&path, resp.headers());
        let html = resp.text().await.expect("body");
        assert_nothing_inline(&path, &html);
        assert!(
            html.contains("/assets/console.css?v="),
            "{path}: the stylesheet"
        );
    }
    // The refusal of a forged change and the result of a real one.
    let resp = s
        .form_post(
            &format!("/console/tasks/{}/complete", task.id),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_security_headers("forged change", resp.headers());
    let resp = s.http.post(s.url(&link)).send().await.expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers("marked done", resp.headers());
    assert_nothing_inline("marked done", &resp.text().await.expect("body"));
    // The assets, the JSON API, the feed and a redirect carry them too.
    for (path, kind) in [
        ("/assets/console.css", "text/css"),
        ("/assets/console.js", "text/javascript"),
        ("/api/openapi.json", "application/json"),
        ("/healthz", "text/plain"),
    ] {
        let resp = s.http.get(s.url(path)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(content_type(resp.headers()).starts_with(kind), "{path}");
        assert_security_headers(path, resp.headers());
    }
    let feed = unit.replacen('?', "/feed.ics?", 1);
    let resp = s.http.get(s.url(&feed)).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers("feed", resp.headers());
    let resp = s.http.get(s.url("/console")).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_security_headers("redirect to sign in", resp.headers());
}

#[tokio::test]
async fn every_malformed_path_id_returns_the_json_error_shape_listed_in_the_openapi_document() {
    let s = site(HttpConfig::default()).await;
    let doc: Value = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("ops") {
            let integer_id = op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .any(|p| p["in"] == "path" && p["schema"]["type"] == "integer");
            if !integer_id {
                continue;
            }
            assert!(
                op["responses"]["400"].is_object() && op["responses"]["404"].is_object(),
                "{method} {path}: 400 and 404 documented"
            );
            for bad in ["abc", "1.5", "99999999999999999999", "%20", "1e3"] {
                let url = s.url(&path.replace("{id}", bad));
                let req = match method.as_str() {
                    "get" => s.http.get(&url),
                    "patch" => s.http.patch(&url).json(&json!({"note": "x"})),
                    _ => s.http.post(&url).json(&json!({"reason": "x"})),
                };
                let resp = req.bearer_auth(&s.admin).send().await.expect("send");
                let what = format!("{method} {path} with id {bad}");
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
                assert!(
                    content_type(resp.headers()).starts_with("application/json"),
                    "{what}"
                );
                let v: Value = resp.json().await.expect("json");
                assert_error_shape(&what, &v, "bad_path");
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked, 10,
        "rounds/{{id}}, tasks/{{id}} and its three actions (a workflow id is a string); \
         people/{{id}} (get, patch), its removal and its events (get, post)"
    );
    // An unknown id that is well formed is a 404 in the same shape.
    let resp = s
        .http
        .get(s.url("/api/tasks/424242"))
        .bearer_auth(&s.reader)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_error_shape("unknown id", &resp.json().await.expect("json"), "not_found");
}

#[tokio::test]
async fn every_rejection_has_one_status_per_class_in_the_error_shape_of_its_audience() {
    let s = site(HttpConfig {
        max_body_bytes: 1024,
        ..HttpConfig::default()
    })
    .await;
    let task = s.task("nomination@dongguan").await;
    let get = |path: &str| s.http.get(s.url(path)).bearer_auth(&s.reader).send();
    // JSON API: malformed queries, unknown routes and methods, too large bodies.
    for (path, status, code) in [
        (
            "/api/tasks?overdue=maybe",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            "/api/tasks?round=1&round=x",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            "/api/tasks?colour=red",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        ("/api/audit?limit=ten", StatusCode::BAD_REQUEST, "bad_query"),
        (
            "/api/audit?limit=5000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "/api/tasks?state=finished",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        ("/api/nowhere", StatusCode::NOT_FOUND, "no_route"),
        ("/nowhere", StatusCode::NOT_FOUND, "no_route"),
    ] {
        let resp = get(path).await.expect("GET");
        assert_eq!(resp.status(), status, "{path}");
        assert_error_shape(path, &resp.json().await.expect("json"), code);
    }
    let resp = s
        .http
        .delete(s.url("/api/rounds"))
        .bearer_auth(&s.admin)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().contains_key("allow"));
    assert_error_shape(
        "DELETE /api/rounds",
        &resp.json().await.expect("json"),
        "method_not_allowed",
    );
    let big = json!({"note": "很".repeat(2000)});
    let resp = s
        .http
        .post(s.url(&format!("/api/tasks/{}/complete", task.id)))
        .bearer_auth(&s.admin)
        .json(&big)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape("too large", &resp.json().await.expect("json"), "too_large");
    // Bodies: not JSON, a field of the wrong type, missing or unknown (400); a value refused (422).
    let post = |body: &'static str| {
        s.http
            .post(s.url("/api/rounds"))
            .bearer_auth(&s.admin)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    for (body, status, code) in [
        ("{\"workflow\": ", StatusCode::BAD_REQUEST, "bad_json"),
        (
            "{\"workflow\": 7, \"start\": \"2019-07-01\"}",
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "{\"start\": \"2019-07-01\"}",
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "{\"workflow\": \"community-reserve-selection\", \"start\": \"2019-07-01\", \"colour\": 1}",
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "{\"workflow\": \"community-reserve-selection\", \"start\": \"July\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "{\"workflow\": \"community-reserve-selection\", \"start\": \"2019-07-01\", \"branches\": [\"donguan\"]}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_unit",
        ),
    ] {
        let resp = post(body).await.expect("POST");
        assert_eq!(resp.status(), status, "{body}");
        assert_error_shape(body, &resp.json().await.expect("json"), code);
    }
    assert_eq!(
        s.store.rounds().await.expect("rounds").len(),
        1,
        "nothing started"
    );

    // The console answers the same classes with its HTML error page.
    let cookie = s.admin_session.clone();
    let csrf = common::session::csrf(SECRET, &cookie);
    let resp = s
        .http
        .post(s.url(&format!("/console/tasks/{}/complete", task.id)))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&note={}", "x".repeat(4000)))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(content_type(resp.headers()).starts_with("text/html"));
    assert!(resp.text().await.expect("body").contains("内容过大"));
    // The reopen form without its reason: the form does not fit (axum's plain 422 before).
    let resp = s
        .http
        .post(s.url(&format!("/console/tasks/{}/reopen", task.id)))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&due=2019-07-20"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(content_type(resp.headers()).starts_with("text/html"));
    assert!(resp.text().await.expect("body").contains("内容无效"));
    let resp = s
        .http
        .post(s.url(&format!("/console/tasks/{}/complete", task.id)))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "text/plain")
        .body("note=x")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(content_type(resp.headers()).starts_with("text/html"));
    assert_eq!(
        s.state_of(task.id).await,
        TaskState::Open,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_gets_408_in_the_json_error_shape() {
    let s = site(HttpConfig {
        request_timeout_seconds: 1,
        ..HttpConfig::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.expect("connect");
    let head = format!(
        "POST /api/rounds HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"workflow\":",
        s.addr, s.admin
    );
    c.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let answer = answered_within(&mut c, Duration::from_secs(5), "\"timeout\"").await;
    let answer = answer.unwrap_or_else(|| panic!("no answer after {:?}", started.elapsed()));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn round_params_accept_numbers_as_well_as_strings() {
    let s = site(HttpConfig::default()).await;
    for (start, params) in [
        ("2019-09-02", json!({"min_candidates": 3})),
        ("2019-09-09", json!({"min_candidates": "4"})),
    ] {
        let resp = s
            .http
            .post(s.url("/api/rounds"))
            .bearer_auth(&s.admin)
            .json(&json!({"workflow": "community-reserve-selection", "start": start, "branches": ["dongguan"], "params": params}))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::CREATED, "{params}");
        let v: Value = resp.json().await.expect("json");
        let want = params["min_candidates"]
            .to_string()
            .trim_matches('"')
            .to_string();
        assert_eq!(v["params"]["min_candidates"], json!(want), "{v}");
    }
    // A draft's plan takes them too.
    let source = std::fs::read_to_string(common::workflow_path("community-reserve-selection"))
        .expect("read");
    let resp = s
        .http
        .post(s.url("/api/workflows/plan"))
        .bearer_auth(&s.reader)
        .json(&json!({"source": source, "start": "2019-07-01", "params": {"min_candidates": 5}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::OK);
    // Anything else is a body that does not fit.
    for params in [
        json!({"min_candidates": [3]}),
        json!({"min_candidates": null}),
        json!({"min_candidates": true}),
    ] {
        let resp = s
            .http
            .post(s.url("/api/rounds"))
            .bearer_auth(&s.admin)
            .json(&json!({"workflow": "community-reserve-selection", "start": "2019-09-02", "params": params}))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{params}");
        let v: Value = resp.json().await.expect("json");
        assert_error_shape("params", &v, "bad_json");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("min_candidates"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_lists_each_operations_error_classes() {
    let s = site(HttpConfig::default()).await;
    let doc: Value = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let statuses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        statuses("/api/tasks/{id}/complete", "post"),
        ["200", "400", "401", "403", "404", "409", "413", "415"]
    );
    assert_eq!(
        statuses("/api/tasks/{id}/reopen", "post"),
        [
            "200", "400", "401", "403", "404", "409", "413", "415", "422"
        ]
    );
    assert_eq!(
        statuses("/api/tasks/{id}", "get"),
        ["200", "400", "401", "404"]
    );
    assert_eq!(
        statuses("/api/tasks", "get"),
        ["200", "400", "401", "404", "422"]
    );
    assert_eq!(
        statuses("/api/rounds", "post"),
        ["201", "400", "401", "403", "404", "413", "415", "422"]
    );
    assert_eq!(
        statuses("/api/workflows/plan", "post"),
        ["200", "400", "401", "403", "413", "415", "422"]
    );
    // Each class is described once, with the error shape.
    let responses = doc["components"]["responses"]
        .as_object()
        .expect("responses");
    for name in [
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "Conflict",
        "TooLarge",
        "UnsupportedMediaType",
        "Invalid",
    ] {
        assert_eq!(
            responses[name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{name}"
        );
    }
    assert_eq!(
        doc["paths"]["/api/tasks/{id}/complete"]["post"]["responses"]["409"]["$ref"],
        "#/components/responses/Conflict"
    );
}

/// The `addr=` of a daemon's "http listening" log line.
async fn daemon_addr(daemon: &common::daemon::Daemon) -> String {
    assert!(
        daemon
            .log_shows("http listening", Duration::from_secs(20))
            .await,
        "no http listener: {}",
        daemon.log()
    );
    daemon
        .log()
        .lines()
        .find(|l| l.contains("http listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("addr")
        .to_string()
}

#[tokio::test]
async fn the_daemon_serves_within_the_http_limits_of_its_config_from_the_start() {
    // The `[http]` table is the config's last; these keys land in it.
    let setup = common::daemon::Setup::new()
        .with_config("header_read_timeout_seconds = 1\nbranch_burst = 2\n");
    let daemon = setup.serve();
    let addr = daemon_addr(&daemon).await;
    // While the daemon starts and once it is ready, the same connection limits hold.
    let mut half = TcpStream::connect(&addr).await.expect("connect");
    half.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert!(
        closed_within(&mut half, Duration::from_secs(4))
            .await
            .is_some(),
        "the daemon kept a half-sent request open"
    );
    assert!(
        daemon
            .log_shows("yanzhen serving", Duration::from_secs(30))
            .await,
        "{}",
        daemon.log()
    );
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_security_headers("daemon /healthz", resp.headers());
    // The branch pages' burst of 2 from the config: the third request from this address
    // is refused, even for a link that is not valid.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = http
            .get(format!("http://{addr}/b/dongguan?exp=1&sig=00"))
            .send()
            .await
            .expect("GET");
        statuses.push(resp.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let (ok, log) = daemon.stop();
    assert!(ok, "{log}");
}

#[test]
fn a_zero_http_limit_is_a_config_error_with_its_position() {
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("yanzhen.toml");
    let text = "[http]\nbind = \"127.0.0.1:8080\"\nmax_connections = 0\n";
    assert!(yanzhen::config::Config::parse(text, &mut d).is_none());
    let e = d.items().first().expect("a diagnostic").clone();
    assert_eq!((e.code, e.loc.line), ("invalid-value", 3), "{e:?}");
    assert!(e.message.contains("max_connections"), "{e:?}");
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("yanzhen.toml");
    let text = "[http]\ntrusted_proxies = [\"10.0.0.1\", \"proxy.local\"]\n";
    assert!(
        yanzhen::config::Config::parse(text, &mut d).is_none(),
        "an address that is not one"
    );
}
