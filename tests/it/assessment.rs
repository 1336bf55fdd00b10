//! Assessment results (考核等次, issue #16 item 5) on SQLite and Postgres: the shipped
//! `annual-assessment` workflow's `assess` task collects a rating per in-pool person of the
//! branch; a quota breach is refused (HTTP and engine) with the Chinese message and nothing
//! stored; a valid submission stores the results by year and completes the task; two failing
//! years owe exactly one 调整 task for the office naming the person, also after the task is
//! reopened and submitted again; the 优先使用 list; the branch page rates its own people only.

use crate::common;
use crate::common::session::{SignedIn, post_form};
use common::office::{Office, offices};

use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use yanzhen::access::LinkSigner;
use yanzhen::assessment::{AssessError, Assessment};
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::ResultFilter;

/// The office server, called with the administrator token.
struct Server(Office);

impl std::ops::Deref for Server {
    type Target = Office;
    fn deref(&self) -> &Office {
        &self.0
    }
}

async fn servers() -> Vec<Server> {
    offices("assess").await.into_iter().map(Server).collect()
}

/// Ten reserves of dongguan: the quota of 好 is 15% of 10, rounded down: one.
const DONGGUAN: [&str; 10] = [
    "周晓明",
    "孙丽娜",
    "吴建华",
    "郑雅琴",
    "王海涛",
    "李春燕",
    "赵志刚",
    "钱文静",
    "冯志远",
    "褚国栋",
];

impl Server {
    async fn call(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.send(r, &self.admin).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// Dongguan's ten people and one of xiguan; ids by name.
    async fn people(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (i, name) in DONGGUAN.iter().enumerate() {
            let id = self
                .add_person(name, "dongguan", 1 + i % 4, "1990.05")
                .await;
            out.push((name.to_string(), id));
        }
        let id = self.add_person("陈思雨", "xiguan", 2, "1996.04").await;
        out.push(("陈思雨".into(), id));
        out
    }

    /// Start an annual assessment for dongguan and xiguan; the id of dongguan's `assess`.
    async fn assess_task(&self, start: &str) -> (i64, i64) {
        let (st, r) = self
            .post(
                "/api/rounds",
                json!({"workflow": "annual-assessment", "start": start,
                    "branches": ["dongguan", "xiguan"], "only_listed": true}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{}: {r}", self.name);
        let round = r["id"].as_i64().unwrap();
        (round, self.task_of(round, "assess@dongguan").await)
    }

    async fn tasks(&self, round: i64) -> Vec<Value> {
        let (st, t) = self.get(&format!("/api/tasks?round={round}")).await;
        assert_eq!(st, StatusCode::OK, "{}: {t}", self.name);
        t.as_array().unwrap().clone()
    }

    async fn task_of(&self, round: i64, key: &str) -> i64 {
        self.tasks(round)
            .await
            .iter()
            .find(|t| t["key"] == key)
            .unwrap_or_else(|| panic!("{}: no task {key}", self.name))["id"]
            .as_i64()
            .unwrap()
    }

    async fn results(&self, year: i32) -> Vec<Value> {
        let (st, v) = self.get(&format!("/api/results?year={year}")).await;
        assert_eq!(st, StatusCode::OK, "{}: {v}", self.name);
        v.as_array().unwrap().clone()
    }
}

/// Dongguan's ten rated: `good` of them 好 (the first ones), `bad` 差, the rest 较好.
fn ratings(people: &[(String, i64)], good: &[&str], bad: &[&str]) -> Value {
    let list: Vec<Value> = people
        .iter()
        .filter(|(n, _)| DONGGUAN.contains(&n.as_str()))
        .map(|(n, id)| {
            let r = if good.contains(&n.as_str()) {
                "好"
            } else if bad.contains(&n.as_str()) {
                "差"
            } else {
                "较好"
            };
            json!({"person": id, "rating": r})
        })
        .collect();
    json!({ "ratings": list })
}

#[tokio::test]
async fn a_quota_breach_is_refused_over_http_and_in_the_engine_with_the_rule_cited_and_nothing_stored()
 {
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (round, task) = s.assess_task("2025-12-01").await;
        let path = format!("/api/tasks/{task}/ratings");
        let other = s.task_of(round, "file_results@dongguan").await;
        let (st, e) = s.get(&format!("/api/tasks/{other}/ratings")).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        assert_eq!(e["error"]["code"], "not_ratings", "{n}");

        let (st, form) = s.get(&path).await;
        assert_eq!(st, StatusCode::OK, "{n}: {form}");
        assert_eq!(form["quota"]["max_now"], 1, "{n}: {form}");
        assert_eq!(form["people"].as_array().unwrap().len(), 10, "{n}");

        let (st, e) = s
            .post(&path, ratings(&people, &["周晓明", "孙丽娜"], &[]))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        assert_eq!(e["error"]["code"], "quota_exceeded", "{n}");
        let message = e["error"]["message"].as_str().unwrap().to_string();
        insta::assert_snapshot!("quota_refusal_http", message);

        // The engine refuses the same submission, whoever calls it.
        let given: Vec<(i64, String)> = ratings(&people, &["周晓明", "孙丽娜"], &[])["ratings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["person"].as_i64().unwrap(),
                    r["rating"].as_str().unwrap().into(),
                )
            })
            .collect();
        let refused = Assessment::new(&s.engine)
            .submit(task, &given, "cli")
            .await
            .unwrap_err();
        assert!(matches!(refused, AssessError::Refused(_)), "{n}: {refused}");
        assert_eq!(refused.to_string(), message, "{n}");

        assert!(s.results(2025).await.is_empty(), "{n}: nothing stored");
        let all = s
            .store
            .results(&ResultFilter::default())
            .await
            .expect("results");
        assert!(all.is_empty(), "{n}");
        let (_, t) = s.get(&format!("/api/tasks/{task}")).await;
        assert_eq!(t["state"], "open", "{n}: the task stays open: {t}");

        // Someone of another branch, a rating off the scale and people left out: all named.
        let xiguan = people.iter().find(|(p, _)| p == "陈思雨").unwrap().1;
        let (st, e) = s
            .post(
                &path,
                json!({"ratings": [{"person": xiguan, "rating": "好"}, {"person": people[0].1, "rating": "优秀"}]}),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        assert_eq!(e["error"]["code"], "ratings_invalid", "{n}");
        let m = e["error"]["message"].as_str().unwrap();
        for part in [
            "陈思雨不是本支部在库的后备干部",
            "周晓明的等次“优秀”",
            "尚未评定：",
            "褚国栋",
        ] {
            assert!(m.contains(part), "{n}: {part} in {m}");
        }
        assert!(s.results(2025).await.is_empty(), "{n}: nothing stored");

        // The endpoint and its body are in the OpenAPI document.
        let (_, doc) = s.get("/api/openapi.json").await;
        let post = &doc["paths"]["/api/tasks/{id}/ratings"]["post"];
        assert!(post["requestBody"].is_object(), "{n}: {post}");
        assert!(doc["paths"]["/api/results"]["get"].is_object(), "{n}");
    }
}

#[tokio::test]
async fn a_valid_submission_stores_the_results_by_year_completes_the_task_and_lists_priority_use() {
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (_, task) = s.assess_task("2025-12-01").await;
        let (st, v) = s
            .post(
                &format!("/api/tasks/{task}/ratings"),
                ratings(&people, &["周晓明"], &["褚国栋"]),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["task"]["state"], "done", "{n}");
        assert!(
            v["adjust_tasks"].as_array().unwrap().is_empty(),
            "{n}: first failing year"
        );

        let results = s.results(2025).await;
        assert_eq!(results.len(), 10, "{n}");
        let of = |name: &str| results.iter().find(|r| r["name"] == name).unwrap().clone();
        assert_eq!(of("周晓明")["rating"], "好", "{n}");
        assert_eq!(of("褚国栋")["failing"], true, "{n}");
        assert_eq!(of("孙丽娜")["rating"], "较好", "{n}");
        assert!(
            s.results(2024).await.is_empty(),
            "{n}: kept under the round's year"
        );

        let (_, list) = s.get("/api/results/priority?year=2025").await;
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["周晓明"], "{n}: 优先使用");
        let page = s.text("/console/results?year=2025", Some(&s.admin)).await;
        let list = page
            .split("id=\"priority-list\"")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_else(|| panic!("{n}: the 优先使用 list: {page}"));
        assert!(
            list.contains("周晓明") && !list.contains("孙丽娜"),
            "{n}: {list}"
        );
        // The person's page shows the result by year.
        let page = s
            .text(&format!("/console/people/{}", people[0].1), Some(&s.admin))
            .await;
        let table = page.split("id=\"results\"").nth(1).expect("results table");
        assert!(table.contains("2025") && table.contains("好"), "{n}");

        // The rating is audited on the person.
        let id = people[0].1;
        let (_, p) = s.get(&format!("/api/people/{id}")).await;
        let rated: Vec<&Value> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == "assessment.rate")
            .collect();
        assert_eq!(rated.len(), 1, "{n}: {p}");

        // Done is done: a second submission needs the task reopened.
        let (st, e) = s
            .post(
                &format!("/api/tasks/{task}/ratings"),
                ratings(&people, &[], &[]),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "{n}: {e}");
    }
}

#[tokio::test]
async fn two_failing_years_owe_exactly_one_adjustment_task_for_the_office_naming_the_person() {
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (_, first) = s.assess_task("2024-12-02").await;
        let (st, v) = s
            .post(
                &format!("/api/tasks/{first}/ratings"),
                ratings(&people, &[], &["褚国栋", "冯志远"]),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");

        let (round, second) = s.assess_task("2025-12-01").await;
        // 冯志远 is 一般 this year: one failing year, not two.
        let mut body = ratings(&people, &[], &["褚国栋"]);
        let fz = people.iter().find(|(p, _)| p == "冯志远").unwrap().1;
        for r in body["ratings"].as_array_mut().unwrap() {
            if r["person"] == fz {
                r["rating"] = json!("一般");
            }
        }
        let (st, v) = s
            .post(&format!("/api/tasks/{second}/ratings"), body.clone())
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        let owed = v["adjust_tasks"].as_array().unwrap();
        assert_eq!(owed.len(), 1, "{n}: {v}");
        assert_eq!(owed[0]["assignee"], "organization_office", "{n}");
        assert!(
            owed[0]["title"].as_str().unwrap().contains("褚国栋"),
            "{n}: the person is named: {v}"
        );

        let adjust = |tasks: &[Value]| {
            tasks
                .iter()
                .filter(|t| {
                    t["task"] == "adjust_reserve" && t["key"].as_str().unwrap().contains("/e")
                })
                .count()
        };
        assert_eq!(adjust(&s.tasks(round).await), 1, "{n}");

        // Reopened and submitted again: the results are replaced, no second 调整 task.
        let (st, r) = s
            .post(
                &format!("/api/tasks/{second}/reopen"),
                json!({"reason": "更正"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {r}");
        let (st, v) = s.post(&format!("/api/tasks/{second}/ratings"), body).await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        assert!(v["adjust_tasks"].as_array().unwrap().is_empty(), "{n}: {v}");
        assert_eq!(adjust(&s.tasks(round).await), 1, "{n}");
        let events = s
            .store
            .events(&yanzhen::store::EventFilter {
                kind: Some("adjustment_due".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{n}: one 调整 event");
    }
}

#[tokio::test]
async fn the_branch_page_rates_its_own_people_only_and_the_console_task_page_takes_the_form() {
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (_, task) = s.assess_task("2025-12-01").await;
        let exp = Shanghai
            .with_ymd_and_hms(2026, 2, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let link = LinkSigner::new("assess-test").task_link("dongguan", task, exp);
        let page = s.text(&link, None).await;
        let form = page
            .split("id=\"ratings-form\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{n}: the ratings form on the branch page: {page}"));
        for own in DONGGUAN {
            assert!(form.contains(own), "{n}: {own}");
        }
        assert!(!page.contains("陈思雨"), "{n}: 陈思雨 is xiguan's");
        assert!(
            !page.contains("id=\"mark-done\""),
            "{n}: done through the ratings only"
        );

        // The branch posts a breach through its link: refused with the rule, nothing kept.
        let action = link.replacen('?', "/ratings?", 1);
        let fields: Vec<String> = people
            .iter()
            .filter(|(p, _)| DONGGUAN.contains(&p.as_str()))
            .map(|(_, id)| format!("p{id}"))
            .collect();
        let all_good: Vec<(&str, &str)> = fields.iter().map(|f| (f.as_str(), "好")).collect();
        let resp = post_form(&s.http, &s.url(&action), None, &all_good).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("最多1人为“好”，提交了10人"), "{n}: {text}");
        assert!(s.results(2025).await.is_empty(), "{n}");

        // The console task page: sign in, post the form with its CSRF token.
        let me = SignedIn::new(&s.base, &s.admin, "assess-test").await;
        let page = me
            .page(&s.http, &s.url(&format!("/console/tasks/{task}")))
            .await;
        assert!(page.contains("id=\"ratings-form\""), "{n}: {page}");
        let ratings: Vec<(String, &str)> = people
            .iter()
            .filter(|(p, _)| DONGGUAN.contains(&p.as_str()))
            .map(|(name, id)| {
                let r = if name == "周晓明" { "好" } else { "一般" };
                (format!("p{id}"), r)
            })
            .collect();
        let form: Vec<(&str, &str)> = ratings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let resp = me
            .post_form(
                &s.http,
                &s.url(&format!("/console/tasks/{task}/ratings")),
                &form,
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "{n}: {}",
            resp.text().await.unwrap()
        );
        assert_eq!(s.results(2025).await.len(), 10, "{n}");
    }
}

/// A workflow whose `ratings:` block breaks every rule once: each error names its line and
/// column, says what is wrong and how to fix it.
const BAD_RATINGS: &str = r#"id: t
title: 测试
example_start: 2025-03-03
parameters:
  - id: share
    type: text
    default: 十五
events:
  - id: adjust_due
    title: 应予调整
stages:
  - id: s1
    title: 阶段一
    closes: {from: round_start, days: 5}
    tasks:
      - id: a
        title: 考核
        assignee: {group: branches}
        due: {from: stage_close}
        ratings:
          scale: [优秀, 称职, 基本称职, 不称职]
          failing: [不合格]
          quota: {rating: 好, max_percent: "${share}"}
          adjust: {consecutive_failing_years: 0, event: adjust_du}
          priority: {ratings: [优秀]}
      - id: b
        title: 复核
        assignee: {role: organization_office}
        due: {from: stage_close}
        ratings:
          quota: {rating: 好, max_percent: 150}
          adjust: {consecutive_failing_years: 2, event: adjust_due}
"#;

#[test]
fn every_bad_ratings_block_is_reported_with_its_position_and_a_hint() {
    let dir = common::directory();
    let cal = common::calendar();
    let ctx = yanzhen::core::validate::Context {
        directory: &dir,
        calendar: &cal,
        default_tz: Shanghai,
        today: common::today(),
    };
    let (wf, d) = yanzhen::core::validate::validate_workflow("wf.yaml", BAD_RATINGS, ctx);
    assert!(wf.is_none());
    let all = d.into_sorted();
    let codes: Vec<&str> = all.iter().map(|d| d.code).collect();
    for code in [
        "ratings-unknown-rating",
        "ratings-quota-param",
        "ratings-adjust-years",
        "ratings-adjust-event",
        "ratings-twice",
        "ratings-not-per-branch",
        "ratings-quota-percent",
        "ratings-adjust-no-task",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let text = all
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn the_cli_lists_results_by_year_and_the_priority_list_on_sqlite_and_postgres() {
    for (n, s, _guard) in common::daemon::setups(true).await {
        for name in &DONGGUAN[..7] {
            let out = s.run(&[
                "pool", "add", "--name", name, "--unit", "dongguan", "--tier", "1", "--birth",
                "1990.05",
            ]);
            assert!(out.status.success(), "{n}");
        }
        let out = s.run(&[
            "round",
            "start",
            "annual-assessment",
            "--start",
            "2025-12-01",
        ]);
        assert!(out.status.success(), "{n}");
        let store = s.store().await;
        let now = Shanghai
            .with_ymd_and_hms(2026, 1, 10, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let app = App::build(
            common::catalog_with(&[], true),
            store.clone(),
            Arc::new(VirtualClock::new(now)),
            AppOptions::new("cli-results"),
        )
        .await
        .expect("app");
        let round = store.rounds().await.unwrap()[0].id;
        let task = store
            .task_by_key(round, "assess@dongguan")
            .await
            .unwrap()
            .expect("assess@dongguan");
        let assessment = Assessment::new(&app.engine);
        let form = assessment.form(task.id).await.expect("form");
        let given: Vec<(i64, String)> = form
            .people
            .iter()
            .map(|(id, name)| {
                let r = match name.as_str() {
                    "周晓明" => "好",
                    "孙丽娜" => "差",
                    _ => "一般",
                };
                (*id, r.to_string())
            })
            .collect();
        assessment
            .submit(task.id, &given, "cli")
            .await
            .expect("7 rated, one 好 allowed");

        let out = s.run(&["pool", "results", "--year", "2025", "--format", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 7, "{n}: {list}");
        let out = s.run(&["pool", "results", "--year", "2024", "--format", "json"]);
        assert_eq!(
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
            json!([]),
            "{n}"
        );
        let out = s.run(&["pool", "results", "--year", "2025", "--priority"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "{n}: {text}");
        assert!(
            text.contains("周晓明") && text.contains("优先使用"),
            "{n}: {text}"
        );
        let out = s.run(&["pool", "results", "--year", "2025"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines()
                .any(|l| l.contains("孙丽娜") && l.contains("不合格")),
            "{n}: {text}"
        );
    }
}

#[tokio::test]
async fn an_adjustment_event_kept_without_its_task_gets_the_task_on_the_next_submission_once() {
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (round, task) = s.assess_task("2025-12-01").await;
        let cgd = people.iter().find(|(p, _)| p == "褚国栋").unwrap().1;
        // What a submission that stopped after its transaction leaves: the result marked
        // with its 调整 event, no task for it, the ratings task still open.
        let write = yanzhen::store::RatingsWrite {
            year: 2025,
            unit: "dongguan".into(),
            workflow_id: "annual-assessment".into(),
            round_id: round,
            task_id: task,
            results: vec![yanzhen::store::NewResult {
                person_id: cgd,
                rating: "差".into(),
                failing: true,
                priority: false,
                adjust: Some("连续两年考核不合格".into()),
            }],
            adjust_event: Some(("adjustment_due".into(), common::today())),
        };
        let who = yanzhen::store::PoolWrite {
            actor: "test".into(),
            at: 0,
            action: "assessment.rate".into(),
        };
        let events = s.store.write_ratings(&write, &who).await.unwrap();
        assert_eq!(events.len(), 1, "{n}");
        assert!(
            s.store
                .write_ratings(&write, &who)
                .await
                .unwrap()
                .is_empty(),
            "{n}: once"
        );

        let (st, v) = s
            .post(
                &format!("/api/tasks/{task}/ratings"),
                ratings(&people, &[], &["褚国栋"]),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["adjust_tasks"].as_array().unwrap().len(), 1, "{n}: {v}");
        let owed = s
            .tasks(round)
            .await
            .iter()
            .filter(|t| t["task"] == "adjust_reserve" && t["key"].as_str().unwrap().contains("/e"))
            .count();
        assert_eq!(owed, 1, "{n}");
    }
}

/// A cell as the workbook and the JSON both show it (numbers without a trailing `.0`).
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        // A spreadsheet number is a float: 10.0 shows as 10.
        Value::Number(x) => x.as_f64().map_or_else(|| x.to_string(), |f| f.to_string()),
        other => other.to_string(),
    }
}

/// Every sheet of an `.xlsx` download, as text, by name in workbook order.
async fn download_sheets(s: &Server, path: &str) -> Vec<(String, Vec<Vec<String>>)> {
    use calamine::Reader as _;
    let resp = s
        .http
        .get(format!("{}{path}", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}: {path}", s.name);
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        header("content-type").contains("spreadsheetml"),
        "{}",
        s.name
    );
    assert!(
        header("content-disposition").contains("results-2025.xlsx"),
        "{}: {}",
        s.name,
        header("content-disposition")
    );
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).expect("xlsx opens");
    let mut out = Vec::new();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).expect("sheet");
        let rows = range
            .rows()
            .map(|r| r.iter().map(|d| d.to_string()).collect())
            .collect();
        out.push((name, rows));
    }
    out
}

#[tokio::test]
async fn the_results_summary_export_lists_every_stored_rating_and_each_branch_s_quota_check_as_xlsx_and_json()
 {
    use yanzhen::report::results::{PERSON_COLUMNS, RATING_COLUMNS, SUMMARY_COLUMNS};
    for s in servers().await {
        let n = s.name;
        let people = s.people().await;
        let (round, dongguan) = s.assess_task("2025-12-01").await;
        let xiguan = s.task_of(round, "assess@xiguan").await;
        let (st, v) = s
            .post(
                &format!("/api/tasks/{dongguan}/ratings"),
                ratings(&people, &["周晓明"], &["褚国栋"]),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        let csy = people.iter().find(|(p, _)| p == "陈思雨").unwrap().1;
        let (st, v) = s
            .post(
                &format!("/api/tasks/{xiguan}/ratings"),
                json!({"ratings": [{"person": csy, "rating": "一般"}]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        // A rating kept outside the rule (as if the quota had been lowered after the
        // submission): the export must report xiguan's one 好 of one as over the quota.
        let write = yanzhen::store::RatingsWrite {
            year: 2025,
            unit: "xiguan".into(),
            workflow_id: "annual-assessment".into(),
            round_id: round,
            task_id: xiguan,
            results: vec![yanzhen::store::NewResult {
                person_id: csy,
                rating: "好".into(),
                failing: false,
                priority: true,
                adjust: None,
            }],
            adjust_event: None,
        };
        let who = yanzhen::store::PoolWrite {
            actor: "test".into(),
            at: 0,
            action: "assessment.rate".into(),
        };
        s.store.write_ratings(&write, &who).await.unwrap();

        // The results page links the year's export.
        let page = s
            .http
            .get(format!("{}/console/results?year=2025", s.base))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(
            page.contains("href=\"/console/export/results.xlsx?year=2025\""),
            "{n}: {page}"
        );
        let book = download_sheets(&s, "/console/export/results.xlsx?year=2025").await;
        let names: Vec<&str> = book.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["考核结果", "支部汇总", "等次分布"], "{n}");
        for ((_, rows), cols) in book
            .iter()
            .zip([PERSON_COLUMNS, SUMMARY_COLUMNS, RATING_COLUMNS])
        {
            let heads: Vec<&str> = cols.iter().map(|c| c.heading).collect();
            assert_eq!(rows[0], heads, "{n}");
        }

        // 考核结果: one row per stored result, with its values.
        let stored = s
            .store
            .results(&ResultFilter {
                year: Some(2025),
                ..ResultFilter::default()
            })
            .await
            .unwrap();
        let person_rows = &book[0].1[1..];
        assert_eq!(person_rows.len(), stored.len(), "{n}");
        assert_eq!(stored.len(), 11, "{n}");
        let tiers = s.engine.catalog().config.pool.tiers();
        let yes = |b: i64| if b != 0 { "是" } else { "否" };
        for r in &stored {
            let row = person_rows
                .iter()
                .find(|row| row[2] == r.name)
                .unwrap_or_else(|| panic!("{n}: {} not exported", r.name));
            let unit = s
                .engine
                .catalog()
                .directory
                .unit(&r.unit)
                .unwrap()
                .name
                .clone();
            let tier = s
                .store
                .person(r.person_id)
                .await
                .unwrap()
                .unwrap()
                .person
                .tier;
            assert_eq!(
                row,
                &[
                    r.year.to_string(),
                    unit,
                    r.name.clone(),
                    tiers.name(tier).to_string(),
                    r.rating.clone(),
                    yes(r.failing).to_string(),
                    yes(r.priority).to_string(),
                ],
                "{n}"
            );
        }

        // 支部汇总: a row per branch, the quota judged by the workflow's rule.
        let summary = &book[1].1[1..];
        assert_eq!(summary.len(), 2, "{n}");
        let rules = Assessment::new(&s.engine)
            .rules_of(dongguan)
            .await
            .unwrap()
            .expect("rules");
        let quota = rules.quota.as_ref().expect("the shipped workflow caps 好");
        for (row, unit) in summary.iter().zip(["dongguan", "xiguan"]) {
            let of_unit: Vec<_> = stored.iter().filter(|r| r.unit == unit).collect();
            let good = of_unit.iter().filter(|r| r.rating == quota.rating).count();
            let max = quota.max_of(of_unit.len());
            assert_eq!(row[3], of_unit.len().to_string(), "{n}: {unit} rated");
            assert_eq!(row[5], quota.rating, "{n}");
            assert_eq!(row[6], good.to_string(), "{n}: {unit}");
            assert_eq!(row[8], quota.max_percent.to_string(), "{n}");
            assert_eq!(row[9], max.to_string(), "{n}: {unit}");
            assert_eq!(row[10], yes(i64::from(good as u64 <= max)), "{n}: {unit}");
        }
        // 15% of dongguan's ten, rounded down, is one 好, which it has; xiguan's one 好 of
        // one is over.
        assert_eq!((&*summary[0][9], &*summary[0][10]), ("1", "是"), "{n}");
        assert_eq!((&*summary[1][9], &*summary[1][10]), ("0", "否"), "{n}");
        // 等次分布: a row per branch and rating of the scale, adding up to the rated.
        let spread = &book[2].1[1..];
        assert_eq!(spread.len(), 2 * rules.scale.len(), "{n}");
        let total: usize = spread.iter().map(|r| r[4].parse::<usize>().unwrap()).sum();
        assert_eq!(total, stored.len(), "{n}");

        // The JSON carries the same sheets, keys and cells.
        let (st, v) = s.get("/api/reports/results?year=2025").await;
        assert_eq!(st, StatusCode::OK, "{n}: {v}");
        let sheets = v["sheets"].as_array().unwrap();
        assert_eq!(sheets.len(), book.len(), "{n}");
        for ((sheet, (name, rows)), cols) in
            sheets
                .iter()
                .zip(&book)
                .zip([PERSON_COLUMNS, SUMMARY_COLUMNS, RATING_COLUMNS])
        {
            assert_eq!(sheet["name"], name.as_str(), "{n}");
            let json_rows = sheet["rows"].as_array().unwrap();
            assert_eq!(json_rows.len(), rows.len() - 1, "{n}: {name}");
            for (j, x) in json_rows.iter().zip(&rows[1..]) {
                let cells: Vec<String> = cols.iter().map(|c| cell_text(&j[c.key])).collect();
                assert_eq!(&cells, x, "{n}: {name}");
            }
        }
        let (_, doc) = s.get("/api/openapi.json").await;
        assert!(
            doc["paths"]["/api/reports/results"]["get"].is_object(),
            "{n}"
        );
        assert!(
            doc["paths"]["/api/reports/results/xlsx"]["get"].is_object(),
            "{n}"
        );

        // An empty year (as a form sends it) is every year; one that is not a year is a 400.
        let (st, all) = s.get("/api/reports/results?year=").await;
        assert_eq!(st, StatusCode::OK, "{n}: {all}");
        assert_eq!(
            all["sheets"][0]["rows"].as_array().unwrap().len(),
            stored.len(),
            "{n}: only 2025 is kept"
        );
        for bad in ["year=2025x", "month=1"] {
            let (st, e) = s.get(&format!("/api/reports/results?{bad}")).await;
            assert_eq!(
                (st, e["error"]["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("bad_query")),
                "{n}: {bad}: {e}"
            );
        }
    }
}
