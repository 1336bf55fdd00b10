//! The JSON API against the real HTTP server on port 0, on SQLite and Postgres: the OpenAPI
//! document matches the routes, tokens (401/403), rounds and tasks, bad input, escalations,
//! health and metrics.

use crate::common;
use yanzhen::core::state::{MessageKind, RoundStatus, TaskState};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use yanzhen::core::state::Rights;
use yanzhen::engine::Engine;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::{AuditEntry, Store};

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct Server {
    base: String,
    admin: String,
    reader: String,
    engine: Arc<Engine>,
    clock: Arc<VirtualClock>,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    _server: common::http::Served,
}

fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static H: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("recorder")
    })
    .clone()
}

async fn server(store: Arc<dyn Store>) -> Server {
    yanzhen::notify::install_tls_provider();
    let clock = Arc::new(VirtualClock::new(at(2019, 7, 1, 0, 0)));
    let app = App::build(
        common::catalog_with(&[], true),
        store.clone(),
        clock.clone(),
        AppOptions {
            link_secret: Some("test".into()),
            metrics: Some(metrics_handle()),
            config_path: common::root().join("config/yanzhen.toml"),
            ..AppOptions::new("api")
        },
    )
    .await
    .unwrap();
    let (engine, state) = (app.engine, app.http);
    let server = common::http::serve(state).await;
    Server {
        base: server.base.clone(),
        admin: common::http::token(store.as_ref(), "zzb-ma", Rights::Admin).await,
        reader: common::http::token(store.as_ref(), "viewer", Rights::Read).await,
        engine,
        clock,
        store,
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl Server {
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.post(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn start_round(&self) -> i64 {
        let (st, v) = self
            .post(
                "/api/rounds",
                Some(&self.admin),
                Some(json!({"workflow": "community-reserve-selection", "start": "2019-07-01", "branches": ["dongguan", "xiguan"]})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    }
}

#[tokio::test]
async fn every_route_in_the_openapi_document_exists_and_every_api_route_is_documented() {
    let (_, store, _g) = common::stores::sqlite().await;
    let s = server(store).await;
    let (st, doc) = s.get("/api/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_object().unwrap() {
            operations += 1;
            let concrete = path.replace(
                "{id}",
                if path.contains("workflows") {
                    "community-reserve-selection"
                } else {
                    "999"
                },
            );
            let req = match method.as_str() {
                "get" => s.http.get(format!("{}{concrete}", s.base)),
                "post" => s
                    .http
                    .post(format!("{}{concrete}", s.base))
                    .json(&json!({})),
                "patch" => s
                    .http
                    .patch(format!("{}{concrete}", s.base))
                    .json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.bearer_auth(&s.admin).send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            // The router's own 404 and 405 say `no_route` and `method_not_allowed`.
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("\"no_route\""),
                "{method} {path} is not routed"
            );
        }
    }
    assert_eq!(
        operations,
        yanzhen::api::json::endpoints().len()
            + yanzhen::api::people::endpoints().len()
            + yanzhen::api::reports::endpoints().len()
            + yanzhen::api::results::endpoints().len()
    );
    // And a path that is not documented is not served.
    let (st, v) = s.get("/api/nonexistent", Some(&s.admin)).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
}

#[tokio::test]
async fn no_token_is_401_an_unknown_token_is_401_and_a_read_token_cannot_change_anything() {
    let (_, store, _g) = common::stores::sqlite().await;
    let s = server(store).await;
    let (st, v) = s.get("/api/rounds", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert_eq!(
        s.get("/api/rounds", Some("yz_not_a_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get("/api/rounds", Some(&s.reader)).await.0,
        StatusCode::OK
    );
    let (st, v) = s
        .post(
            "/api/rounds",
            Some(&s.reader),
            Some(json!({"workflow": "community-reserve-selection", "start": "2019-07-01"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("viewer"));
    assert!(
        s.store.rounds().await.unwrap().is_empty(),
        "nothing was started"
    );
    let id = s.start_round().await;
    let task = s
        .store
        .task_by_key(id, "nomination@dongguan")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.post(
            &format!("/api/tasks/{}/complete", task.id),
            Some(&s.reader),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.store.task(task.id).await.unwrap().unwrap().state,
        TaskState::Open
    );
}

#[tokio::test]
async fn rounds_and_tasks_through_the_api_with_every_change_in_the_audit_log() {
    for (name, store, _g) in common::stores::stores().await {
        let s = server(store).await;
        let id = s.start_round().await;
        let (st, rounds) = s.get("/api/rounds", Some(&s.reader)).await;
        assert_eq!(
            (st, rounds.as_array().unwrap().len()),
            (StatusCode::OK, 1),
            "{name}"
        );
        s.clock.set(at(2019, 7, 13, 9, 0));
        let (_, overdue) = s
            .get(
                &format!("/api/tasks?round={id}&overdue=true"),
                Some(&s.reader),
            )
            .await;
        let keys: Vec<&str> = overdue
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert!(
            keys.contains(&"nomination@dongguan") && keys.contains(&"deployment_meeting@xiguan"),
            "{name}: {keys:?}"
        );
        let task_id = overdue
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "nomination@dongguan")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let (st, t) = s
            .post(
                &format!("/api/tasks/{task_id}/complete"),
                Some(&s.admin),
                Some(json!({"note": "已报送附件1"})),
            )
            .await;
        assert_eq!(
            (st, t["state"].as_str()),
            (StatusCode::OK, Some("done")),
            "{name}: {t}"
        );
        let (_, detail) = s
            .get(&format!("/api/tasks/{task_id}"), Some(&s.reader))
            .await;
        let last = detail["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(
            (last["actor"].as_str(), last["note"].as_str()),
            (Some("token:zzb-ma"), Some("已报送附件1")),
            "{name}"
        );
        let (_, round) = s.get(&format!("/api/rounds/{id}"), Some(&s.reader)).await;
        let implementation = round["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "implementation")
            .unwrap();
        assert_eq!(implementation["done"], 1, "{name}");
        let (_, log) = s.get("/api/audit?limit=1000", Some(&s.reader)).await;
        let actions: Vec<(String, String)> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["action"].as_str().unwrap().to_string(),
                    a["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            actions.contains(&("round.start".into(), "token:zzb-ma".into())),
            "{name}: {actions:?}"
        );
        assert!(
            actions.contains(&("task.complete".into(), "token:zzb-ma".into())),
            "{name}"
        );
        let (_, reopened) = s
            .post(
                &format!("/api/tasks/{task_id}/reopen"),
                Some(&s.admin),
                Some(json!({"reason": "材料不全"})),
            )
            .await;
        assert_eq!(reopened["state"], "open", "{name}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_and_changes_nothing() {
    for (name, store, _g) in common::stores::stores().await {
        let s = server(store).await;
        let malformed = s
            .http
            .post(format!("{}/api/rounds", s.base))
            .bearer_auth(&s.admin)
            .header("content-type", "application/json")
            .body("{\"workflow\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST, "{name}");
        let v: Value = malformed.json().await.unwrap();
        assert_eq!(v["error"]["code"], "bad_json", "{name}");
        let (st, v) = s
            .post(
                "/api/rounds",
                Some(&s.admin),
                Some(json!({"workflow": "no-such", "start": "2019-07-01"})),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown_workflow")),
            "{name}"
        );
        let (st, v) = s
            .post("/api/rounds", Some(&s.admin), Some(json!({"workflow": "community-reserve-selection", "start": "2019-07-01", "branches": ["donguan"]})))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("did you mean `dongguan`?"),
            "{name}: {v}"
        );
        let (st, _) = s
            .post(
                "/api/rounds",
                Some(&s.admin),
                Some(json!({"workflow": "community-reserve-selection", "start": "July"})),
            )
            .await;
        assert_eq!(
            st,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: a start that is not a date is an invalid value"
        );
        assert!(
            s.store.rounds().await.unwrap().is_empty(),
            "{name}: nothing was started"
        );

        let id = s.start_round().await;
        let t = s
            .store
            .task_by_key(id, "nomination@xiguan")
            .await
            .unwrap()
            .unwrap();
        let (st, v) = s
            .post(&format!("/api/tasks/{}/waive", t.id), Some(&s.admin), None)
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")),
            "{name}"
        );
        // Cancel the round: completing a cancelled task is a conflict.
        s.store
            .set_round_status(
                id,
                RoundStatus::Cancelled,
                AuditEntry {
                    at: 0,
                    actor: "test".into(),
                    action: "round.cancel".into(),
                    subject: "r".into(),
                    detail_json: "{}".into(),
                },
            )
            .await
            .unwrap();
        let (st, v) = s
            .post(
                &format!("/api/tasks/{}/complete", t.id),
                Some(&s.admin),
                None,
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("wrong_state")),
            "{name}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cancelled"),
            "{name}"
        );
        assert_eq!(
            s.store.task(t.id).await.unwrap().unwrap().state,
            TaskState::Cancelled,
            "{name}"
        );
        let (st, _) = s
            .post("/api/tasks/424242/complete", Some(&s.admin), None)
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{name}");
        // A value that reads but names no state is invalid (422); a round id that is not
        // a number does not read at all (400).
        let (st, v) = s.get("/api/tasks?state=finished", Some(&s.reader)).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")),
            "{name}"
        );
        let (st, v) = s.get("/api/tasks?round=abc", Some(&s.reader)).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_query")),
            "{name}"
        );
    }
}

#[tokio::test]
async fn drafts_are_validated_and_planned_without_saving_anything() {
    let (_, store, _g) = common::stores::sqlite().await;
    let s = server(store).await;
    let source =
        std::fs::read_to_string(common::workflow_path("community-reserve-selection")).unwrap();
    let (st, v) = s
        .post(
            "/api/workflows/validate",
            Some(&s.reader),
            Some(json!({"source": source.replace("assignee:", "asignee:")})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["valid"], false);
    // Each task also lacks its `assignee` (reported at the task's start, before the key).
    let first = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "unknown-key")
        .expect("unknown-key reported");
    assert!(
        first["loc"]["line"].as_u64().unwrap() > 1
            && first["hint"]
                .as_str()
                .unwrap()
                .contains("did you mean `assignee`?"),
        "{first}"
    );
    let (st, v) = s
        .post(
            "/api/workflows/plan",
            Some(&s.reader),
            Some(json!({"source": source, "start": "2019-07-01"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["plan"]["stages"][0]["opens"]["at"],
        "2019-07-01T09:00:00+08:00"
    );
    let (st, _) = s
        .post(
            "/api/workflows/plan",
            Some(&s.reader),
            Some(json!({"source": "id: x\n"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, versions) = s
        .get(
            "/api/workflows/community-reserve-selection/versions",
            Some(&s.reader),
        )
        .await;
    assert_eq!(
        (st, versions.as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
}

#[tokio::test]
async fn the_office_sees_each_open_escalation_until_the_task_is_done() {
    for (name, store, _g) in common::stores::stores().await {
        let s = server(store).await;
        let id = s.start_round().await;
        s.clock.set(at(2019, 7, 16, 18, 0)); // nomination: rungs at 7-15 (office) and 7-16 (head)
        s.engine.fire_due().await.unwrap();
        let (_, esc) = s.get("/api/escalations", Some(&s.reader)).await;
        let nom = esc
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "nomination@dongguan")
            .expect("escalated")
            .clone();
        let rungs: Vec<&str> = nom["rungs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["to"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(rungs, ["organization_office", "committee_head"], "{name}");
        let t = s
            .store
            .task_by_key(id, "nomination@dongguan")
            .await
            .unwrap()
            .unwrap();
        s.post(
            &format!("/api/tasks/{}/complete", t.id),
            Some(&s.admin),
            None,
        )
        .await;
        s.clock.set(at(2019, 7, 25, 0, 0));
        s.engine.fire_due().await.unwrap();
        let (_, esc) = s.get("/api/escalations", Some(&s.reader)).await;
        assert!(
            !esc.as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "nomination@dongguan"),
            "{name}: the climb stopped"
        );
        let outbox = s.store.outbox_after(0, 10_000).await.unwrap();
        let to_district = outbox
            .iter()
            .filter(|o| {
                o.kind == MessageKind::Escalation
                    && o.address == "zzk@qu.example.gov.cn"
                    && o.body.contains("东关社区党委：「组织推荐")
            })
            .count();
        assert_eq!(
            to_district, 0,
            "{name}: the third rung never fired for the completed task"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_prometheus_metrics() {
    let (_, store, _g) = common::stores::sqlite().await;
    let s = server(store).await;
    let health = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (st, ready) = s.get("/readyz", None).await;
    assert_eq!((st, ready["ready"].as_bool()), (StatusCode::OK, Some(true)));
    s.start_round().await;
    s.clock.set(at(2019, 7, 5, 0, 0));
    s.engine.fire_due().await.unwrap();
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "yanzhen_timers_pending",
        "yanzhen_tasks_overdue",
        "yanzhen_outbox_pending",
        "yanzhen_timers_fired_total",
        "yanzhen_timer_lateness_seconds",
    ] {
        assert!(text.contains(metric), "{metric} missing:\n{text}");
    }
}

#[tokio::test]
async fn reopening_through_the_api_takes_a_date_or_working_days_and_refuses_a_past_deadline() {
    for (name, store, _g) in common::stores::stores().await {
        let s = server(store).await;
        let id = s.start_round().await;
        let t = s
            .store
            .task_by_key(id, "nomination@dongguan")
            .await
            .unwrap()
            .unwrap();
        let complete = format!("/api/tasks/{}/complete", t.id);
        let reopen = format!("/api/tasks/{}/reopen", t.id);
        s.post(&complete, Some(&s.admin), None).await;
        let (st, v) = s
            .post(
                &reopen,
                Some(&s.admin),
                Some(json!({"reason": "材料不全", "due": "2019-07-20"})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        assert_eq!(
            v["due"], "2019-07-20T10:00:00Z",
            "{name}: the date at the task's time of day (18:00 in Shanghai)"
        );
        s.post(&complete, Some(&s.admin), None).await;
        // Monday 7-1 plus five working days is Monday 7-8.
        let (st, v) = s
            .post(&reopen, Some(&s.admin), Some(json!({"in_working_days": 5})))
            .await;
        assert_eq!(
            (st, v["due"].as_str()),
            (StatusCode::OK, Some("2019-07-08T10:00:00Z")),
            "{name}: {v}"
        );
        s.post(&complete, Some(&s.admin), None).await;
        for body in [
            json!({"due": "2019-06-01"}),
            json!({"due": "2019-07-04", "reason": "before its stage opens on 7-5"}),
            json!({"due": "2019-07-20", "in_working_days": 3}),
            json!({"due": "next week"}),
        ] {
            let (st, v) = s.post(&reopen, Some(&s.admin), Some(body.clone())).await;
            assert_eq!(
                (st, v["error"]["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")),
                "{name}: {body} → {v}"
            );
        }
        assert_eq!(
            s.store.task(t.id).await.unwrap().unwrap().state,
            TaskState::Done,
            "{name}: a refused reopen changes nothing"
        );
    }
}

#[tokio::test]
async fn a_stored_row_that_does_not_parse_is_a_500_naming_the_row_not_a_silent_default() {
    for (name, store, g) in common::stores::stores().await {
        let s = server(store).await;
        let id = s.start_round().await;
        let (_, tasks) = s
            .get(&format!("/api/tasks?round={id}"), Some(&s.reader))
            .await;
        let task = tasks.as_array().unwrap()[0]["id"].as_i64().unwrap();
        common::stores::write_raw(&g, "tasks", "state", task, "'opne'").await;
        let (st, v) = s
            .get(&format!("/api/tasks?round={id}"), Some(&s.reader))
            .await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{name}: {v}");
        assert_eq!(v["error"]["code"], "corrupt_data", "{name}: {v}");
        assert_eq!(
            v["error"]["message"],
            format!("row {task} of table `tasks` has state `opne`, which is not a task state"),
            "{name}: {v}"
        );
    }
}
