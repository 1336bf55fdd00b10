//! The reserve pool (后备干部库) on SQLite and Postgres: the JSON API (add, edit, remove,
//! list, one person with its history; every edit audited with old and new values), roster
//! import (every bad row reported at once, nothing imported; `skip_bad`; an update rather
//! than a duplicate), export → import round trip, events, the branch page showing only its
//! own people, and the CLI.

use crate::common;
use crate::common::daemon::Setup;

use chrono::TimeZone;
use chrono_tz::Asia::Shanghai;
use common::office::{Office, office, offices};
use common::session::SignedIn;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use yanzhen::access::LinkSigner;
use yanzhen::store::Store;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A roster with five bad rows (rows 3, 4, 6, 7 and 8) among good ones: a tier out of
/// range, an unknown unit and a date that is not one in the same row, a missing name, a
/// bad gender, the same person twice.
const BAD_ROSTER: &str = "姓名,性别,出生年月,所在单位,梯队,政治面貌\n\
    周晓明,男,1988.03,东关社区党委,1,党员\n\
    孙丽娜,女,1992.11,东关社区党委,5,党员\n\
    吴建华,男,1985.13,无此社区,2,群众\n\
    郑雅琴,女,1994.02,xiguan,第三梯队,党员\n\
    ,男,1990.08,南门社区党支部,2,党员\n\
    陈思雨,未知,1996/4/12,南门社区党支部,4,党员\n\
    周晓明,男,1988.03,东关社区党委,2,党员\n";

/// The office server: read with the read token, written with the administrator's.
struct Server(Office);

impl std::ops::Deref for Server {
    type Target = Office;
    fn deref(&self) -> &Office {
        &self.0
    }
}

async fn server(name: &'static str, store: Arc<dyn Store>, guard: common::stores::Guard) -> Server {
    Server(office(name, store, guard, "pool").await)
}

async fn servers() -> Vec<Server> {
    offices("pool").await.into_iter().map(Server).collect()
}

impl Server {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)), &self.reader)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http.post(format!("{}{path}", self.base)).json(&body),
            &self.admin,
        )
        .await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http.patch(format!("{}{path}", self.base)).json(&body),
            token,
        )
        .await
    }

    async fn import(&self, query: &str, content_type: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/api/people/import{query}", self.base))
                .header("content-type", content_type)
                .body(bytes),
            &self.admin,
        )
        .await
    }

    async fn export(&self) -> Vec<u8> {
        let resp = self
            .http
            .get(format!("{}/api/people/export.xlsx", self.base))
            .bearer_auth(&self.reader)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{}", self.name);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            XLSX,
            "{}",
            self.name
        );
        resp.bytes().await.unwrap().to_vec()
    }

    /// Every person (removed ones too) without ids and instants, by unit and name.
    async fn registry(&self) -> Vec<Value> {
        let (st, v) = self.get("/api/people?all=true").await;
        assert_eq!(st, StatusCode::OK, "{}: {v}", self.name);
        let mut list: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let mut p = p.clone();
                for k in ["id", "created_at", "updated_at"] {
                    p.as_object_mut().unwrap().remove(k);
                }
                p
            })
            .collect();
        list.sort_by_key(|p| (p["unit"].to_string(), p["name"].to_string()));
        list
    }
}

#[tokio::test]
async fn the_api_adds_edits_and_removes_people_and_every_edit_is_audited_with_old_and_new_values() {
    for s in servers().await {
        let n = s.name;
        let (st, p) = s
            .post(
                "/api/people",
                json!({"name": "周晓明", "unit": "东关社区党委", "tier": 2, "birth": "1988.03", "gender": "男", "post_track": "正职"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {p}");
        let id = p["id"].as_i64().unwrap();
        assert_eq!(p["unit"], "dongguan", "{n}");
        assert_eq!(p["birth"], "1988-03-01", "{n}");
        assert_eq!(p["joined_at"], "2026-01-10", "{n}: joined today by default");
        assert_eq!(
            p["term_end"], "2028-01-10",
            "{n}: a two-year term by default"
        );

        // Every refused field at once, nothing added.
        let (st, e) = s
            .post(
                "/api/people",
                json!({"name": "吴建华", "unit": "无此社区", "tier": 7, "birth": "1985.13"}),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        let fields: Vec<&str> = e["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["birth", "unit", "tier"], "{n}: {e}");
        let (st, e) = s
            .post("/api/people", json!({"name": "x", "idcard": "1"}))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{n}: an unknown field: {e}");

        // An edit by a read token is refused; by the admin it is applied and audited.
        let path = format!("/api/people/{id}");
        let (st, _) = s.patch(&path, &s.reader, json!({"tier": 1})).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{n}");
        let (st, p) = s
            .patch(
                &path,
                &s.admin,
                json!({"tier": "第一梯队", "current_post": "居委会副主任"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {p}");
        assert_eq!(
            (p["tier"].as_i64(), p["tier_name"].as_str()),
            (Some(1), Some("第一梯队"))
        );
        let (st, _) = s
            .patch("/api/people/999", &s.admin, json!({"tier": 1}))
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{n}");

        let (st, e) = s
            .post(&format!("{path}/remove"), json!({"reason": " "}))
            .await;
        assert_eq!(
            st,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: a removal needs a reason: {e}"
        );
        let (st, p) = s
            .post(
                &format!("{path}/remove"),
                json!({"reason": "考核不称职", "date": "2026-01-09"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {p}");
        assert_eq!(
            (p["status"].as_str(), p["removed_at"].as_str()),
            (Some("removed"), Some("2026-01-09"))
        );

        // Removed people leave the list unless asked for.
        let (_, list) = s.get("/api/people").await;
        assert_eq!(list.as_array().unwrap().len(), 0, "{n}");
        let (_, list) = s.get("/api/people?all=true&unit=dongguan").await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{n}");
        let (st, _) = s.get("/api/people?tier=9").await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}");

        // The person's history: who, what, old and new values.
        let (_, p) = s.get(&path).await;
        let history = p["history"].as_array().unwrap();
        let actions: Vec<&str> = history
            .iter()
            .map(|h| h["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["person.add", "person.edit", "person.remove"],
            "{n}: {p}"
        );
        assert!(history.iter().all(|h| h["actor"] == "token:zzb-ma"), "{n}");
        assert_eq!(
            history[1]["detail"]["changes"],
            json!({"tier": {"old": 2, "new": 1}, "current_post": {"old": null, "new": "居委会副主任"}}),
            "{n}"
        );
        assert_eq!(
            history[2]["detail"]["changes"]["status"],
            json!({"old": "active", "new": "removed"}),
            "{n}"
        );
        // The same rows are in the append-only audit log.
        let audit = s.store.audit_after(0, 1000).await.unwrap();
        let about: Vec<&str> = audit
            .iter()
            .filter(|a| a.entry.subject == format!("person:{id}"))
            .map(|a| a.entry.action.as_str())
            .collect();
        assert_eq!(about, actions, "{n}");
    }
}

#[tokio::test]
async fn an_import_with_five_bad_rows_reports_all_five_at_once_and_imports_nothing() {
    for s in servers().await {
        let n = s.name;
        let (st, e) = s
            .import("", "text/csv", BAD_ROSTER.as_bytes().to_vec())
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        assert_eq!(e["error"]["code"], "bad_roster", "{n}");
        let problems = &e["error"]["problems"];
        let rows: std::collections::BTreeSet<i64> = problems
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["row"].as_i64().unwrap())
            .collect();
        assert_eq!(rows.into_iter().collect::<Vec<_>>(), [3, 4, 6, 7, 8], "{n}");
        insta::assert_yaml_snapshot!("five_bad_rows", problems);
        assert_eq!(s.registry().await.len(), 0, "{n}: nothing imported");

        // With skip_bad, the good rows and the list of skipped ones.
        let (st, r) = s
            .import("?skip_bad=true", "text/csv", BAD_ROSTER.as_bytes().to_vec())
            .await;
        assert_eq!(st, StatusCode::OK, "{n}: {r}");
        assert_eq!(
            (r["added"].as_i64(), r["updated"].as_i64()),
            (Some(2), Some(0)),
            "{n}: {r}"
        );
        assert_eq!(r["skipped"], *problems, "{n}");
        assert_eq!(
            r["warnings"][0]["column"], "政治面貌",
            "{n}: unknown headings are reported"
        );
        let names: Vec<String> = s
            .registry()
            .await
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["周晓明", "郑雅琴"], "{n}");

        // Neither a workbook nor CSV.
        let (st, _) = s.import("", "application/json", b"{}".to_vec()).await;
        assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{n}");
    }
}

#[tokio::test]
async fn importing_the_same_person_again_updates_the_record_instead_of_adding_a_second() {
    for s in servers().await {
        let n = s.name;
        let roster = std::fs::read(common::root().join("examples/roster.csv")).unwrap();
        let (st, r) = s.import("", "text/csv", roster.clone()).await;
        assert_eq!(st, StatusCode::OK, "{n}: {r}");
        assert_eq!(r["added"], 8, "{n}: {r}");
        let (_, r) = s.import("?dry_run=true", "text/csv", roster.clone()).await;
        assert_eq!(
            (r["added"].as_i64(), r["unchanged"].as_i64()),
            (Some(0), Some(8)),
            "{n}: {r}"
        );
        // Same name, unit and birth: the tier and post change, nobody is added.
        let changed = "姓名,所在单位,出生年月,梯队,现任职务\n周晓明,东关社区党委,1988.03,第二梯队,居委会主任\n";
        let (_, r) = s.import("", "text/csv", changed.as_bytes().to_vec()).await;
        assert_eq!(
            (r["added"].as_i64(), r["updated"].as_i64()),
            (Some(0), Some(1)),
            "{n}: {r}"
        );
        let people = s.registry().await;
        assert_eq!(people.len(), 8, "{n}");
        let zhou = people.iter().find(|p| p["name"] == "周晓明").unwrap();
        assert_eq!(
            (zhou["tier"].as_i64(), zhou["current_post"].as_str()),
            (Some(2), Some("居委会主任")),
            "{n}"
        );
        assert_eq!(
            zhou["mentor"], "高振华",
            "{n}: a column the file lacks is kept"
        );
    }
}

#[tokio::test]
async fn export_then_import_into_a_fresh_database_gives_the_identical_registry() {
    for s in servers().await {
        let n = s.name;
        let roster = std::fs::read(common::root().join("examples/roster.csv")).unwrap();
        let (st, r) = s.import("", "text/csv", roster).await;
        assert_eq!(st, StatusCode::OK, "{n}: {r}");
        // A removal, so that the status columns travel too.
        let (_, list) = s.get("/api/people?unit=nanmen").await;
        let id = list[0]["id"].as_i64().unwrap();
        let (st, _) = s
            .post(
                &format!("/api/people/{id}/remove"),
                json!({"reason": "调任他处", "date": "2025-12-31"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{n}");
        let before = s.registry().await;
        let workbook = s.export().await;

        // The layout: the summary sheet first, then one sheet per branch with people.
        use calamine::Reader as _;
        let mut book =
            calamine::open_workbook_auto_from_rs(std::io::Cursor::new(workbook.clone())).unwrap();
        let sheets = book.sheet_names();
        assert_eq!(
            sheets,
            [
                "汇总",
                "东关社区党委",
                "西关社区党委",
                "南门社区党支部",
                "桥头村党总支"
            ],
            "{n}"
        );
        let summary = book.worksheet_range("汇总").unwrap();
        let dongguan: Vec<String> = summary
            .rows()
            .nth(1)
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            dongguan,
            ["东关社区党委", "1", "1", "0", "0", "2", "0"],
            "{n}"
        );

        let (name, store, guard) = common::stores::sqlite().await;
        let fresh = server(name, store, guard).await;
        let (st, r) = fresh.import("", XLSX, workbook).await;
        assert_eq!(st, StatusCode::OK, "{n}: {r}");
        assert_eq!(r["added"], 8, "{n}: {r}");
        assert_eq!(fresh.registry().await, before, "{n}");
    }
}

#[tokio::test]
async fn events_of_the_kinds_workflows_declare_are_recorded_and_listed_by_person_kind_and_year() {
    for s in servers().await {
        let n = s.name;
        let id = s.add_person("孙丽娜", "dongguan", 2, "1992-11-01").await;
        let events = format!("/api/people/{id}/events");
        let (st, e) = s
            .post(
                &events,
                json!({"kind": "job_change", "date": "2025-12-01", "note": "调任网格长"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {e}");
        assert_eq!(e["kind_title"], "调整岗位", "{n}");
        // By the title the workflow gives it, too.
        let (st, _) = s
            .post(
                &events,
                json!({"kind": "考察考核结束", "date": "2026-01-08"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{n}");
        let (st, e) = s
            .post(&events, json!({"kind": "birthday", "date": "2026-01-08"}))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("job_change"),
            "{n}: {e}"
        );
        let (st, _) = s
            .post(
                "/api/people/999/events",
                json!({"kind": "job_change", "date": "2026-01-08"}),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{n}");

        let (_, list) = s.get(&events).await;
        assert_eq!(list.as_array().unwrap().len(), 2, "{n}");
        let (_, list) = s.get("/api/events?year=2026").await;
        let kinds: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["assessment_done"], "{n}");
        let (_, list) = s
            .get(&format!("/api/events?person={id}&kind=job_change"))
            .await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{n}");
        let (_, p) = s.get(&format!("/api/people/{id}")).await;
        let actions: Vec<&str> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["person.add", "event.record", "event.record"],
            "{n}: events are audited"
        );
    }
}

#[tokio::test]
async fn a_branch_page_shows_its_own_people_only() {
    for s in servers().await {
        let n = s.name;
        let roster = std::fs::read(common::root().join("examples/roster.csv")).unwrap();
        let (st, _) = s.import("", "text/csv", roster).await;
        assert_eq!(st, StatusCode::OK, "{n}");
        let exp = Shanghai
            .with_ymd_and_hms(2026, 2, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let link = LinkSigner::new("pool-test").unit_link("xiguan", exp);
        let resp = s
            .http
            .get(format!("{}{link}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{n}");
        let body = resp.text().await.unwrap();
        let table = body
            .split("id=\"branch-people\"")
            .nth(1)
            .expect("the people table");
        for own in ["吴建华", "郑雅琴"] {
            assert!(table.contains(own), "{n}: {own}");
        }
        for other in ["周晓明", "孙丽娜", "冯志远", "褚国栋"] {
            assert!(!body.contains(other), "{n}: {other} is not xiguan's");
        }
        assert!(
            table.contains("第一梯队") && table.contains("2021-07-19"),
            "{n}"
        );
    }
}

/// How many tasks round `round` has, through the API.
async fn round_tasks(s: &Server, round: i64) -> usize {
    let (_, t) = s.get(&format!("/api/tasks?round={round}")).await;
    t.as_array().expect("tasks").len()
}

/// The id of the one person named `name`, through the API.
async fn person_id(s: &Server, name: &str) -> i64 {
    let (_, people) = s.get("/api/people").await;
    people
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["id"].as_i64())
        .unwrap_or_else(|| panic!("{}: no {name} in {people}", s.name))
}

#[tokio::test]
async fn a_branch_reports_an_event_of_its_own_person_and_the_round_owes_the_talk() {
    for s in servers().await {
        let n = s.name;
        let roster = std::fs::read(common::root().join("examples/roster.csv")).unwrap();
        let (st, _) = s.import("", "text/csv", roster).await;
        assert_eq!(st, StatusCode::OK, "{n}");
        let (st, round) = s
            .post(
                "/api/rounds",
                json!({"workflow": "cadre-talks", "start": "2026-01-05"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{n}: {round}");
        let round = round["id"].as_i64().expect("round id");
        let before = round_tasks(&s, round).await;
        let own = person_id(&s, "吴建华").await;
        let other = person_id(&s, "周晓明").await;

        let exp = Shanghai
            .with_ymd_and_hms(2026, 2, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let link = LinkSigner::new("pool-test").unit_link("xiguan", exp);
        let body = s
            .http
            .get(format!("{}{link}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let form = body
            .split("id=\"branch-event\"")
            .nth(1)
            .and_then(|f| f.split("</form>").next())
            .unwrap_or_else(|| panic!("{n}: no event form: {body}"));
        assert!(
            form.contains(&format!("<option value=\"{own}\">吴建华</option>")),
            "{n}: {form}"
        );
        assert!(
            !form.contains("周晓明"),
            "{n}: only the branch's own people"
        );
        assert!(form.contains("生病住院"), "{n}: a kind branches report");
        assert!(
            !form.contains("调整岗位"),
            "{n}: a kind only the office records"
        );

        let (page, query) = link.split_once('?').expect("signed query");
        let post = |q: &str, fields: &[(&str, String)]| {
            let url = format!("{}{page}/events?{q}", s.base);
            let fields: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let http = s.http.clone();
            async move {
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let resp = common::session::post_form(&http, &url, None, &pairs).await;
                (resp.status(), resp.text().await.expect("body"))
            }
        };
        let event = |person: i64, kind: &str, date: &str| {
            vec![
                ("person", person.to_string()),
                ("kind", kind.to_string()),
                ("date", date.to_string()),
                ("note", "住院一周".to_string()),
            ]
        };
        // Refused, and nothing recorded: another branch's person, a kind for the office,
        // a date after today (the office's clock says 2026-01-10), a link for another page.
        for (fields, q, want) in [
            (
                event(other, "hospital_stay", "2026-01-08"),
                query.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                event(own, "job_change", "2026-01-08"),
                query.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                event(own, "hospital_stay", "2026-01-11"),
                query.to_string(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                event(own, "hospital_stay", "2026-01-08"),
                query.replace("sig=", "sig=00"),
                StatusCode::FORBIDDEN,
            ),
        ] {
            let (st, text) = post(&q, &fields).await;
            assert_eq!(st, want, "{n}: {fields:?}: {text}");
        }
        for id in [own, other] {
            let (_, list) = s.get(&format!("/api/events?person={id}")).await;
            assert_eq!(list, json!([]), "{n}: nothing recorded for {id}");
        }

        let (st, text) = post(query, &event(own, "hospital_stay", "2026-01-08")).await;
        assert_eq!(st, StatusCode::OK, "{n}: {text}");
        assert!(
            text.contains("已报告：吴建华　生病住院（2026-01-08）"),
            "{n}: {text}"
        );
        let (_, list) = s.get(&format!("/api/events?person={own}")).await;
        let list = list.as_array().expect("events");
        assert_eq!(list.len(), 1, "{n}");
        assert_eq!(list[0]["kind"], "hospital_stay", "{n}");
        assert_eq!(list[0]["date"], "2026-01-08", "{n}");
        assert_eq!(
            round_tasks(&s, round).await,
            before + 1,
            "{n}: the round owes one talk for it"
        );
        let audit = s
            .store
            .audit_after(0, 10_000)
            .await
            .expect("audit")
            .into_iter()
            .find(|a| a.entry.action == "event.record")
            .expect("the event's audit entry");
        assert_eq!(audit.entry.actor, "link:xiguan", "{n}");
    }
}

#[tokio::test]
async fn the_console_lists_the_pool_by_branch_and_an_admin_edits_a_person_through_the_form() {
    for s in servers().await {
        let n = s.name;
        let roster = std::fs::read(common::root().join("examples/roster.csv")).unwrap();
        s.import("", "text/csv", roster).await;
        // Signed in as a browser is: a session cookie, and the session's CSRF token in forms.
        let reader = SignedIn::new(&s.base, &s.reader, "pool-test").await;
        let admin = SignedIn::new(&s.base, &s.admin, "pool-test").await;
        let body = reader
            .page(&s.http, &s.url("/console/people?unit=xiguan"))
            .await;
        assert!(
            body.contains("吴建华") && !body.contains("周晓明"),
            "{n}: filtered by unit"
        );
        assert!(
            body.contains("/api/people/export.xlsx"),
            "{n}: the download button"
        );
        let (_, list) = s.get("/api/people?unit=xiguan&tier=1").await;
        let id = list[0]["id"].as_i64().unwrap();
        let resp = admin
            .post_form(
                &s.http,
                &s.url(&format!("/console/people/{id}/edit")),
                &[
                    ("name", "吴建华"),
                    ("unit", "xiguan"),
                    ("tier", "2"),
                    ("birth", "1985.06"),
                    ("current_post", "主任"),
                ],
            )
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "{n}: {}",
            resp.text().await.unwrap()
        );
        let body = reader
            .page(&s.http, &s.url(&format!("/console/people/{id}")))
            .await;
        assert!(
            body.contains("第一梯队 → 第二梯队") || body.contains("1 → 2"),
            "{n}: {body}"
        );
        assert!(
            body.contains("zzb-ma（令牌）"),
            "{n}: the editor is shown by name"
        );
        assert!(!body.contains("token:zzb-ma"), "{n}: no internal key");
        // A remove or event form with a bad value: the person's page again, with the reason.
        for (form, pairs, says) in [
            (
                "remove",
                [("reason", "调离"), ("date", "2026-13-01")],
                "「2026-13-01」不是日期。",
            ),
            (
                "events",
                [("kind", "birthday"), ("date", "2026-01-08")],
                "job_change",
            ),
        ] {
            let resp = admin
                .post_form(
                    &s.http,
                    &s.url(&format!("/console/people/{id}/{form}")),
                    &pairs,
                )
                .await;
            assert_eq!(
                resp.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{n}: {form}"
            );
            let body = resp.text().await.unwrap();
            assert!(body.contains(says), "{n}: {form}: {body}");
        }

        // The add form: a read token is refused; a bad value shows the form again with
        // the reason; a good one adds the person.
        let add = s.url("/console/people");
        let form = |birth| {
            [
                ("name", "新人"),
                ("unit", "nanmen"),
                ("tier", "4"),
                ("birth", birth),
            ]
        };
        let resp = reader.post_form(&s.http, &add, &form("1999.09")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{n}");
        let resp = admin.post_form(&s.http, &add, &form("1999.19")).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert!(
            resp.text().await.unwrap().contains("「1999.19」不是日期"),
            "{n}"
        );
        let resp = admin.post_form(&s.http, &add, &form("1999.09")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{n}");
        let (_, list) = s.get("/api/people?unit=nanmen&tier=4").await;
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"新人"), "{n}: {names:?}");
    }
}

fn yanzhen(setup: &Setup, args: &[&str]) -> std::process::Output {
    setup
        .cmd(args)
        .env("YANZHEN_LOG", "warn")
        .output()
        .expect("run")
}

#[tokio::test]
async fn the_cli_adds_edits_removes_imports_and_exports_on_sqlite_and_postgres() {
    // Every shipped workflow, so that cadre-talks declares the event kinds.
    for (n, s, _guard) in common::daemon::setups(true).await {
        let dir = s.path().to_path_buf();
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, BAD_ROSTER).unwrap();
        let bad = bad.to_str().unwrap();
        let out = yanzhen(&s, &["pool", "import", bad]);
        assert_eq!(out.status.code(), Some(1), "{n}");
        let err = String::from_utf8_lossy(&out.stderr);
        for row in ["第 3 行", "第 4 行", "第 6 行", "第 7 行", "第 8 行"] {
            assert!(err.contains(row), "{n}: {row}: {err}");
        }
        assert!(err.contains("nothing was imported"), "{n}: {err}");
        let out = s.run(&["pool", "import", bad, "--skip-bad", "--dry-run"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("(dry run: nothing changed) 2 added"),
            "{n}"
        );
        let out = s.run(&["pool", "list", "--format", "json"]);
        assert_eq!(
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
            json!([]),
            "{n}"
        );
        let out = s.run(&["pool", "import", bad, "--skip-bad"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("2 added") && text.contains("5 bad row(s) skipped"),
            "{n}: {text}"
        );

        let out = s.run(&[
            "pool",
            "add",
            "--name",
            "冯志远",
            "--unit",
            "nanmen",
            "--tier",
            "2",
            "--birth",
            "1990年8月",
        ]);
        let id = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        s.run(&[
            "pool",
            "edit",
            &id,
            "--mentor",
            "何立平",
            "--term-end",
            "2027-12-31",
        ]);
        let out = yanzhen(&s, &["pool", "edit", &id, "--tier", "9"]);
        assert_eq!(out.status.code(), Some(1), "{n}");
        s.run(&[
            "pool",
            "remove",
            &id,
            "--reason",
            "调任",
            "--date",
            "2026-01-05",
        ]);
        s.run(&[
            "event",
            "record",
            "周晓明",
            "job_change",
            "--date",
            "2026-01-06",
        ]);
        let out = s.run(&["event", "list", "--person", "周晓明", "--format", "json"]);
        let events: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(events[0]["kind"], "job_change", "{n}");

        let out = s.run(&[
            "pool",
            "list",
            "--all",
            "--unit",
            "南门社区党支部",
            "--format",
            "json",
        ]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (
                list[0]["mentor"].as_str(),
                list[0]["term_end"].as_str(),
                list[0]["status"].as_str()
            ),
            (Some("何立平"), Some("2027-12-31"), Some("removed")),
            "{n}"
        );
        let out = s.run(&["pool", "show", &id]);
        let shown = String::from_utf8_lossy(&out.stdout);
        for action in ["person.add", "person.edit", "person.remove"] {
            assert!(shown.contains(action), "{n}: {shown}");
        }

        let xlsx = dir.join("out.xlsx");
        s.run(&["pool", "export", xlsx.to_str().unwrap()]);
        let out = s.run(&["pool", "import", xlsx.to_str().unwrap()]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("0 added, 0 updated, 3 unchanged"),
            "{n}"
        );
    }
}

#[tokio::test]
async fn a_stored_person_whose_date_or_tier_does_not_parse_is_reported_not_defaulted() {
    for (n, store, guard) in common::stores::stores().await {
        let s = server(n, store.clone(), guard).await;
        let id = s.add_person("孙丽娜", "dongguan", 2, "1992.11").await;
        common::stores::write_raw(&s.guard, "people", "birth", id, "'1992-13-01'").await;
        let err = store
            .person(id)
            .await
            .expect_err("a birth that is not a date");
        assert!(err.is_corrupt(), "{n}: {err}");
        assert_eq!(
            err.to_string(),
            format!(
                "row {id} of table `people` has birth `1992-13-01`, which is not a date (YYYY-MM-DD)"
            ),
            "{n}"
        );
        common::stores::write_raw(&s.guard, "people", "birth", id, "'1992-11-01'").await;
        common::stores::write_raw(&s.guard, "people", "tier", id, "9").await;
        let err = store.people(&Default::default()).await.expect_err("tier 9");
        assert!(err.to_string().contains("has tier `9`"), "{n}: {err}");
        let (st, e) = s.get(&format!("/api/people/{id}")).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("corrupt_data")),
            "{n}"
        );
    }
}

/// The pool rules fixture: 40 people for the 13 sample branches (and one department), with
/// violations planted in six branches. Rows: (branch, 正副职, birth). A young birth (1995) is
/// 31 on the check date 2026-06-01, an old one (1970) 56; 1991-06-01 turns 35 that day and
/// still counts as 35周岁以下. The third 东关 row is taken out of the pool after the import.
fn check_roster() -> String {
    const Y: &str = "1995.01";
    const O: &str = "1970.01";
    let mut rows: Vec<(&str, &str, &str)> = vec![
        // 东关: 3 rows, 1 removed → 2 in the pool: count_min.
        ("dongguan", "正职", Y),
        ("dongguan", "正职", O),
        ("dongguan", "副职", Y),
        // 西关: 8: count_max (young 5 of 8).
        ("xiguan", "正职", Y),
        ("xiguan", "正职", Y),
        ("xiguan", "副职", Y),
        ("xiguan", "副职", Y),
        ("xiguan", "副职", Y),
        ("xiguan", "副职", O),
        ("xiguan", "副职", O),
        ("xiguan", "副职", O),
        // 南门: one 正职 candidate for one secretary: ratio.
        ("nanmen", "正职", Y),
        ("nanmen", "副职", Y),
        ("nanmen", "副职", O),
        // 北门: 1 young of 3 (33%): young_share.
        ("beimen", "正职", Y),
        ("beimen", "正职", O),
        ("beimen", "副职", O),
        // 府前: 2 young of 3, one of them 35 on the day: fine.
        ("fuqian", "正职", O),
        ("fuqian", "正职", "1991-06-01"),
        ("fuqian", "副职", Y),
        // 刘家: 1 person: count_min and ratio. 王庄: nobody: count_min and ratio.
        ("liujia", "正职", Y),
    ];
    for b in ["qiaotou", "hexi", "shanxia", "xinhe", "yangliu", "dongshan"] {
        rows.extend([(b, "正职", Y), (b, "正职", Y), (b, "副职", O)]);
    }
    // A department's reserve is not checked.
    rows.push(("jiwei", "副职", O));
    assert_eq!(rows.len(), 40);
    let surnames = ["赵", "钱", "孙", "李", "周", "吴", "郑", "王", "冯", "陈"];
    let given = ["一鸣", "二强", "三丽", "四海"];
    let mut csv = String::from("姓名,出生年月,所在单位,梯队,正副职\n");
    for (i, (unit, track, birth)) in rows.iter().enumerate() {
        let name = format!("{}{}", surnames[i % 10], given[i / 10]);
        csv.push_str(&format!("{name},{birth},{unit},3,{track}\n"));
    }
    csv
}

/// The findings a check of [`check_roster`] must report: (branch, rule code).
const PLANTED: [(&str, &str); 8] = [
    ("dongguan", "count_min"),
    ("xiguan", "count_max"),
    ("nanmen", "ratio"),
    ("beimen", "young_share"),
    ("liujia", "count_min"),
    ("liujia", "ratio"),
    ("wangzhuang", "count_min"),
    ("wangzhuang", "ratio"),
];

fn findings(report: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in report["branches"].as_array().expect("branches") {
        for f in b["findings"].as_array().expect("findings") {
            out.push((
                b["unit"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn planted() -> Vec<(String, String)> {
    PLANTED
        .iter()
        .map(|(u, c)| (u.to_string(), c.to_string()))
        .collect()
}

#[tokio::test]
async fn pool_check_reports_exactly_the_planted_violations_with_exit_status_1_on_sqlite_and_postgres()
 {
    for (n, s, _guard) in common::daemon::setups(false).await {
        // An empty pool breaks the count and ratio rules in all 13 branches.
        let out = yanzhen(&s, &["pool", "check", "--format", "json"]);
        assert_eq!(out.status.code(), Some(1), "{n}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["violations"], 26, "{n}");

        let file = s.path().join("roster.csv");
        std::fs::write(&file, check_roster()).unwrap();
        s.run(&["pool", "import", file.to_str().unwrap()]);
        let out = s.run(&["pool", "list", "--unit", "dongguan", "--format", "json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let removed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["post_track"] == "deputy")
            .expect("东关's 副职")["id"]
            .to_string();
        s.run(&["pool", "remove", &removed, "--reason", "调任"]);

        let out = yanzhen(
            &s,
            &["pool", "check", "--date", "2026-06-01", "--format", "json"],
        );
        assert_eq!(out.status.code(), Some(1), "{n}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(findings(&report), planted(), "{n}: {report:#}");
        assert_eq!(report["violations"], 8, "{n}");
        assert_eq!(report["branches"].as_array().unwrap().len(), 13, "{n}");
        let fuqian = &report["branches"][4];
        assert_eq!(
            (&fuqian["unit"], &fuqian["young"]),
            (&json!("fuqian"), &json!(2))
        );

        let out = yanzhen(&s, &["pool", "check", "--date", "2026-06-01"]);
        assert_eq!(out.status.code(), Some(1), "{n}");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in [
            "东关社区党委：不符合",
            "后备干部人数应为3至7名（文件002）：现有2名",
            "后备干部人数应为3至7名（文件002）：现有8名",
            "书记后备干部应按书记1:2的比例配备（文件004）：书记1名，应有正职后备干部2名，现有1名",
            "35周岁以下的后备干部应达到40%以上（文件000）：现有3名，35周岁以下1名（33%）",
            "共13个支部，6个不符合，8处问题。",
        ] {
            assert!(text.contains(line), "{n}: {line}\n{text}");
        }

        // A year later 府前's 1991-06-01 is 36, and 府前 falls short of the young share.
        let out = yanzhen(
            &s,
            &["pool", "check", "--date", "2027-06-01", "--format", "json"],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            findings(&report).contains(&("fuqian".into(), "young_share".into())),
            "{n}"
        );
    }
}

#[tokio::test]
async fn pool_check_passes_with_exit_status_0_when_the_rules_are_switched_off() {
    let s = Setup::new();
    let config = s.path().join("yanzhen.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[pool.rules.count]\nenabled = false\n[pool.rules.ratio]\nenabled = false\n");
    std::fs::write(&config, text).unwrap();
    let out = yanzhen(&s, &["pool", "check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("共13个支部，0个不符合，0处问题。"));
}

#[tokio::test]
async fn the_api_checks_the_pool_rules_for_a_reader_on_sqlite_and_postgres() {
    for s in servers().await {
        let (status, _) = s.import("", "text/csv", check_roster().into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{}", s.name);
        let (status, report) = s.get("/api/people/check?date=2026-06-01").await;
        assert_eq!(status, StatusCode::OK, "{}", s.name);
        // The third 东关 row is still in the pool here: 东关 is fine.
        let mut want = planted();
        want.remove(0);
        assert_eq!(findings(&report), want, "{}", s.name);
        let (status, _) = s.get("/api/people/check?date=tomorrow").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", s.name);
        let (_, doc) = s.get("/api/openapi.json").await;
        assert!(
            doc["paths"]["/api/people/check"]["get"].is_object(),
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn the_api_adds_a_person_to_a_running_round_and_lists_who_is_short_of_talks() {
    for s in servers().await {
        let (status, round) = s
            .post(
                "/api/rounds",
                json!({"workflow": "health-checkup", "start": "2026-03-02"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {round}", s.name);
        let round = round["id"].as_i64().expect("round id");
        let id = s.add_person("孙悦", "xiguan", 2, "1991.04").await;
        let (status, impact) = s
            .post(
                &format!("/api/rounds/{round}/people"),
                json!({"person": "孙悦"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}: {impact}", s.name);
        let key = format!("reserve_checkup@xiguan/p{id}");
        assert!(
            impact["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .any(|c| c["key"] == key.as_str() && c["change"] == "appears"),
            "{}: {impact}",
            s.name
        );
        let (status, tasks) = s.get(&format!("/api/tasks?round={round}")).await;
        assert_eq!(status, StatusCode::OK, "{}", s.name);
        let task = tasks
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["key"] == key.as_str())
            .unwrap_or_else(|| panic!("{}: no {key} in {tasks}", s.name))
            .clone();
        assert_eq!(task["person"]["name"], "孙悦", "{}", s.name);
        let (status, _) = s
            .post(
                &format!("/api/rounds/{round}/people"),
                json!({"person": 99999}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", s.name);

        let (status, counts) = s.get("/api/people/counts?year=2026").await;
        assert_eq!(status, StatusCode::OK, "{}: {counts}", s.name);
        let talks = counts["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["id"] == "talks_per_year")
            .expect("the shipped talk count")
            .clone();
        assert_eq!(talks["short"][0]["person"]["id"], id, "{}", s.name);
        assert_eq!(talks["short"][0]["count"], 0, "{}", s.name);

        // The console's 次数检查 page says the same to a reader, in Chinese.
        let cookie = common::session::sign_in(&s.base, &s.reader).await;
        let page = s
            .http
            .get(format!("{}/console/people/counts?year=2026", s.base))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("GET counts page");
        let status = page.status();
        let html = page.text().await.expect("page");
        assert_eq!(status, StatusCode::OK, "{}: {html}", s.name);
        let rule = html
            .split("<section class=\"count-rule\" data-rule=\"talks_per_year\">")
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_else(|| panic!("{}: no talk rule on the page: {html}", s.name));
        assert!(rule.contains("1 人未达到要求"), "{}: {rule}", s.name);
        assert!(
            rule.contains(&format!(
                "<tr data-person=\"{id}\"><td><a href=\"/console/people/{id}\">孙悦</a></td>"
            )),
            "{}: {rule}",
            s.name
        );
        assert!(rule.contains("<td>0</td><td>2</td>"), "{}: {rule}", s.name);
    }
}

/// A roster of `n` people of 东关, row `bad` (a data row's number as the file shows it,
/// the heading being row 1) with a tier out of range.
fn long_roster(n: usize, bad: Option<u32>) -> String {
    let mut s = String::from("姓名,所在单位,梯队,出生年月\n");
    for i in 0..n {
        let tier = if bad == Some(i as u32 + 2) { "9" } else { "2" };
        s.push_str(&format!(
            "人员{i:05},dongguan,{tier},1990.{:02}\n",
            1 + i % 12
        ));
    }
    s
}

#[tokio::test]
async fn an_import_written_slice_by_slice_with_a_bad_2500th_row_imports_nothing() {
    for (name, store, _guard) in common::stores::stores().await {
        let cat = common::catalog_with(&[], false);
        let clock = Arc::new(yanzhen::runtime::clock::VirtualClock::new(
            chrono::Utc::now(),
        ));
        let e = yanzhen::engine::Engine::new(store.clone(), cat, clock, "t");
        let pool = yanzhen::pool::Pool::new(&e);
        let all = yanzhen::store::PeopleFilter {
            include_removed: true,
            ..Default::default()
        };
        // Rows 2–2,001 are written in two slices of 1,000 before row 2,501 is read.
        let csv = long_roster(2600, Some(2501));
        let err = pool
            .import(csv.as_bytes(), false, false, "test")
            .await
            .expect_err("a bad row refuses the file");
        let yanzhen::pool::PoolError::BadRoster(problems) = err else {
            panic!("{name}: {err}");
        };
        let places: Vec<String> = problems.iter().map(|p| p.place()).collect();
        assert_eq!(places, ["第 2501 行「梯队」列"], "{name}");
        assert!(
            store.people(&all).await.expect("people").is_empty(),
            "{name}: nothing imported"
        );

        // With skip_bad: every other row, in one transaction, and the bad row reported.
        let r = pool
            .import(csv.as_bytes(), true, false, "test")
            .await
            .expect("import");
        assert_eq!((r.added, r.skipped.len()), (2599, 1), "{name}");
        assert_eq!(
            store.people(&all).await.expect("people").len(),
            2599,
            "{name}"
        );

        // Again: every row matches a person, nothing changes; the bad row is added now.
        let csv = long_roster(2600, None);
        let r = pool
            .import(csv.as_bytes(), false, false, "test")
            .await
            .expect("import");
        assert_eq!((r.added, r.updated, r.unchanged), (1, 0, 2599), "{name}");
        assert_eq!(
            store.people(&all).await.expect("people").len(),
            2600,
            "{name}"
        );
    }
}
