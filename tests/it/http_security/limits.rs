//! Connection limits, timeouts, rate limits and security headers.

use super::*;

/// Read from `stream` until the server closes it (or resets it); the time that took, or
/// `None` if it was still open after `limit`.
pub(super) async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
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
pub(super) async fn answered_within(
    c: &mut TcpStream,
    limit: Duration,
    until: &str,
) -> Option<String> {
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
pub(super) fn assert_security_headers(what: &str, h: &HeaderMap) {
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
