//! Uniform errors, OpenAPI error classes, and the daemon's HTTP config.

use super::limits::{answered_within, assert_security_headers, closed_within};
use super::*;

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
        checked, 13,
        "rounds/{{id}} and its people (post), tasks/{{id}} and its three actions (a workflow \
         id is a string); people/{{id}} (get, patch), its removal and its events (get, post); \
         tasks/{{id}}/ratings (get, post)"
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
