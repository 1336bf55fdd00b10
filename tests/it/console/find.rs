//! Finding things (#18 item 3) and the exports (item 4): the task list, the overdue board
//! and the rounds list filtered by round, stage, state and branch, with the JSON API
//! giving the same tasks; the search box; a branch's page across rounds; `.xlsx` exports
//! read back with calamine and checked against the database.

use super::{Console, at, consoles, date, sections};
use calamine::Reader as _;
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use yanzhen::core::state::TaskState;
use yanzhen::engine::StartRound;
use yanzhen::report::{BRANCH_COLUMNS, OVERDUE_COLUMNS, TASK_COLUMNS};
use yanzhen::store::TaskRow;

/// Every task of the fixture's round, straight from the store.
async fn all_tasks(c: &Console) -> Vec<TaskRow> {
    c.store.tasks(c.round).await.expect("tasks")
}

fn overdue_now(c: &Console, t: &TaskRow) -> bool {
    t.state == TaskState::Open
        && t.due_at
            .is_some_and(|d| d < c.clock.now().timestamp_millis())
}

use yanzhen::runtime::clock::Clock as _;

/// The task ids a console list shows (`data-task="ID"` rows).
fn shown_ids(html: &str) -> BTreeSet<i64> {
    html.split("data-task=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

/// The workbook at `path` (downloaded with the admin's session), sheet name to rows.
async fn workbook(c: &Console, path: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let resp = c
        .http
        .get(c.url(path))
        .header(COOKIE, c.cookie(&c.admin).await)
        .send()
        .await
        .expect("GET export");
    assert_eq!(resp.status(), StatusCode::OK, "{}: {path}", c.name);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ctype.contains("spreadsheetml"), "{}: {ctype}", c.name);
    let bytes = resp.bytes().await.expect("body").to_vec();
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).expect("xlsx opens");
    let mut out = BTreeMap::new();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).expect("sheet");
        let rows = range
            .rows()
            .map(|r| r.iter().map(|d| d.to_string()).collect())
            .collect();
        out.insert(name, rows);
    }
    out
}

fn headings(cols: &[yanzhen::report::Column]) -> Vec<String> {
    cols.iter().map(|c| c.heading.to_string()).collect()
}

/// Which tasks of the database a filter should keep.
type Keep<'a> = Box<dyn Fn(&TaskRow) -> bool + 'a>;

#[tokio::test]
async fn the_task_list_filters_by_round_stage_state_and_branch_and_the_api_gives_the_same_tasks() {
    for c in consoles().await {
        let tasks = all_tasks(&c).await;
        let cases: Vec<(String, Keep)> = vec![
            (
                "branch=xiguan".into(),
                Box::new(|t: &TaskRow| t.assignee_id == "xiguan"),
            ),
            (
                "state=overdue".into(),
                Box::new(|t: &TaskRow| overdue_now(&c, t)),
            ),
            (
                "state=done&branch=dongguan".into(),
                Box::new(|t: &TaskRow| t.state == TaskState::Done && t.assignee_id == "dongguan"),
            ),
            (
                format!("round={}&stage=implementation", c.round),
                Box::new(|t: &TaskRow| t.stage == "implementation"),
            ),
        ];
        for (query, keep) in &cases {
            let want: BTreeSet<i64> = tasks.iter().filter(|t| keep(t)).map(|t| t.id).collect();
            assert!(
                !want.is_empty(),
                "{}: the fixture has tasks for {query}",
                c.name
            );
            assert!(
                want.len() < tasks.len(),
                "{}: {query} leaves some out",
                c.name
            );
            let (status, html) = c
                .get(&format!("/console/tasks?{query}"), Some(&c.admin))
                .await;
            assert_eq!(status, StatusCode::OK, "{}: {query}", c.name);
            assert_eq!(shown_ids(&html), want, "{}: console {query}", c.name);
            // The JSON export of the same filter lists the same number of tasks.
            let json: serde_json::Value = c
                .http
                .get(c.url(&format!("/api/reports/tasks?{query}")))
                .bearer_auth(&c.reader)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("json");
            assert_eq!(
                json["sheets"][0]["rows"].as_array().map(Vec::len),
                Some(want.len()),
                "{}: api {query}",
                c.name
            );
        }
        // The task API takes the console's stage and branch filters too.
        let api: serde_json::Value = c
            .http
            .get(c.url(&format!(
                "/api/tasks?round={}&stage=implementation&branch=xiguan",
                c.round
            )))
            .bearer_auth(&c.reader)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        let ids: BTreeSet<i64> = api
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|t| t["id"].as_i64())
            .collect();
        let want: BTreeSet<i64> = tasks
            .iter()
            .filter(|t| t.stage == "implementation" && t.assignee_id == "xiguan")
            .map(|t| t.id)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(ids, want, "{}: /api/tasks stage+branch", c.name);
    }
}

#[tokio::test]
async fn a_filter_that_does_not_read_gets_a_chinese_400_page_and_the_api_a_json_error() {
    for c in consoles().await {
        let (status, html) = c.get("/console/tasks?round=abc", Some(&c.admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", c.name);
        assert!(html.contains("筛选条件有误"), "{}: {html}", c.name);
        let (status, html) = c.get("/console/tasks?state=late", Some(&c.admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", c.name);
        assert!(html.contains("没有「late」这种状态"), "{}: {html}", c.name);
        let resp = c
            .http
            .get(c.url("/api/reports/tasks?state=late"))
            .bearer_auth(&c.reader)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            resp.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            c.name
        );
        let resp = c
            .http
            .get(c.url("/api/reports/nothing"))
            .bearer_auth(&c.reader)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{}", c.name);
    }
}

#[tokio::test]
async fn the_overdue_board_filters_by_branch_and_round_and_the_round_links_to_its_overdue_list() {
    for c in consoles().await {
        let (_, round_page) = c
            .get(&format!("/console/rounds/{}", c.round), Some(&c.admin))
            .await;
        let link = format!("/console/overdue?round={}", c.round);
        assert!(
            round_page.contains(&link),
            "{}: round page links {link}",
            c.name
        );
        let (_, rounds_page) = c.get("/console", Some(&c.admin)).await;
        assert!(
            rounds_page.contains(&link),
            "{}: rounds list links {link}",
            c.name
        );

        let (_, all) = c.get(&link, Some(&c.admin)).await;
        let everyone: BTreeSet<String> = sections(&all).into_keys().collect();
        assert!(
            everyone.contains("xiguan") && everyone.contains("nanmen"),
            "{}: {everyone:?}",
            c.name
        );
        let (status, only) = c
            .get("/console/overdue?branch=xiguan", Some(&c.admin))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            sections(&only).into_keys().collect::<Vec<_>>(),
            ["xiguan"],
            "{}: only xiguan's section",
            c.name
        );
        let want: BTreeSet<i64> = all_tasks(&c)
            .await
            .iter()
            .filter(|t| t.assignee_id == "xiguan" && overdue_now(&c, t))
            .map(|t| t.id)
            .collect();
        assert_eq!(shown_ids(&only), want, "{}: xiguan's overdue tasks", c.name);
        // Another round id: nothing overdue there.
        let (_, none) = c
            .get(
                &format!("/console/overdue?round={}", c.round + 1000),
                Some(&c.admin),
            )
            .await;
        assert!(sections(&none).is_empty(), "{}", c.name);
    }
}

#[tokio::test]
async fn the_rounds_list_filters_by_status_and_branch() {
    for c in consoles().await {
        let (_, running) = c.get("/console?state=running", Some(&c.admin)).await;
        assert!(
            running.contains(&format!("data-round=\"{}\"", c.round)),
            "{}",
            c.name
        );
        let (_, finished) = c.get("/console?state=finished", Some(&c.admin)).await;
        assert!(
            !finished.contains(&format!("data-round=\"{}\"", c.round)),
            "{}",
            c.name
        );
        let (_, taking_part) = c.get("/console?branch=nanmen", Some(&c.admin)).await;
        assert!(
            taking_part.contains(&format!("data-round=\"{}\"", c.round)),
            "{}",
            c.name
        );
        // qiaotou (a village) is not in the fixture's round.
        let (_, not_in) = c.get("/console?branch=qiaotou", Some(&c.admin)).await;
        assert!(
            !not_in.contains(&format!("data-round=\"{}\"", c.round)),
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn the_search_box_finds_branches_and_people_and_a_branch_page_lists_its_tasks_across_rounds()
{
    use yanzhen::core::pool::Field;
    use yanzhen::pool::Pool;
    for c in consoles().await {
        let person = Pool::new(c.engine())
            .add(
                &[
                    (Field::Name, "王晓燕".into()),
                    (Field::Unit, "dongguan".into()),
                    (Field::Tier, "1".into()),
                    (Field::Birth, "1990.05".into()),
                ],
                "test",
            )
            .await
            .expect("add");
        let q = |s: &str| {
            format!(
                "/console/search?q={}",
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
            )
        };
        let (status, html) = c.get(&q("东关"), Some(&c.reader)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("东关社区党委") && html.contains("/console/units/dongguan"),
            "{}: {html}",
            c.name
        );
        assert!(!html.contains("西关社区党委"), "{}", c.name);
        let (_, html) = c.get(&q("晓燕"), Some(&c.reader)).await;
        assert!(
            html.contains(&format!("/console/people/{}", person.id)),
            "{}: the person is found",
            c.name
        );
        // The secretary's name finds the branch too.
        let (_, html) = c.get(&q("刘建国"), Some(&c.reader)).await;
        assert!(html.contains("东关社区党委"), "{}", c.name);

        // A second round: the branch page lists the tasks of both.
        let second = c
            .engine()
            .start_round(StartRound {
                workflow: "community-reserve-selection".into(),
                start: date(2019, 7, 15),
                params: Default::default(),
                units: Some(vec!["dongguan".into()]),
                actor: "test".into(),
            })
            .await
            .expect("second round");
        c.run_until(at(2019, 7, 15, 11, 0)).await;
        let mut want = BTreeSet::new();
        for r in [c.round, second] {
            for t in c.store.tasks(r).await.expect("tasks") {
                if t.assignee_id == "dongguan" {
                    want.insert(t.id);
                }
            }
        }
        let (status, html) = c.get("/console/units/dongguan", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            shown_ids(&html),
            want,
            "{}: every dongguan task of both rounds",
            c.name
        );
        assert!(
            html.contains(&format!("data-round=\"{second}\"")),
            "{}",
            c.name
        );
        assert!(html.contains("刘建国"), "{}: the secretary", c.name);
        let (status, _) = c.get("/console/units/nowhere", Some(&c.reader)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn exports_download_as_xlsx_with_chinese_headings_and_row_counts_of_the_database() {
    for c in consoles().await {
        let tasks: Vec<TaskRow> = all_tasks(&c)
            .await
            .into_iter()
            .filter(|t| t.state != TaskState::Cancelled)
            .collect();
        let overdue: Vec<&TaskRow> = tasks.iter().filter(|t| overdue_now(&c, t)).collect();
        assert!(!overdue.is_empty());

        let book = workbook(&c, "/console/export/overdue.xlsx").await;
        assert_eq!(book.keys().collect::<Vec<_>>(), ["逾期清单"], "{}", c.name);
        let rows = &book["逾期清单"];
        assert_eq!(rows[0], headings(OVERDUE_COLUMNS), "{}", c.name);
        assert_eq!(
            rows.len() - 1,
            overdue.len(),
            "{}: one row per overdue task",
            c.name
        );
        // The deployment meetings climbed their whole chain: the fired count is in the row.
        let fired = OVERDUE_COLUMNS
            .iter()
            .position(|c| c.key == "fired")
            .expect("col");
        let steps = OVERDUE_COLUMNS
            .iter()
            .position(|c| c.key == "steps")
            .expect("col");
        assert!(
            rows[1..]
                .iter()
                .any(|r| r[fired] == r[steps] && r[steps] != "0"),
            "{}: a task whose chain fully climbed: {rows:?}",
            c.name
        );

        let book = workbook(
            &c,
            &format!("/console/export/progress.xlsx?round={}", c.round),
        )
        .await;
        assert_eq!(
            book.keys().cloned().collect::<BTreeSet<_>>(),
            BTreeSet::from(["按支部".to_string(), "按任务".to_string()]),
            "{}",
            c.name
        );
        assert_eq!(book["按任务"][0], headings(TASK_COLUMNS));
        assert_eq!(
            book["按任务"].len() - 1,
            tasks.len(),
            "{}: one row per task",
            c.name
        );
        assert_eq!(book["按支部"][0], headings(BRANCH_COLUMNS));
        let assignees: BTreeSet<&str> = tasks.iter().map(|t| t.assignee_id.as_str()).collect();
        assert_eq!(
            book["按支部"].len() - 1,
            assignees.len(),
            "{}: one row per assignee",
            c.name
        );
        // dongguan's row counts its done tasks as the database does.
        let done = BRANCH_COLUMNS
            .iter()
            .position(|c| c.key == "done")
            .expect("col");
        let dongguan = book["按支部"]
            .iter()
            .find(|r| r[2] == "东关社区党委")
            .expect("dongguan row");
        let want_done = tasks
            .iter()
            .filter(|t| t.assignee_id == "dongguan" && t.state == TaskState::Done)
            .count();
        assert_eq!(dongguan[done], want_done.to_string(), "{}", c.name);

        let book = workbook(&c, "/console/export/tasks.xlsx?branch=nanmen&state=overdue").await;
        let want = overdue.iter().filter(|t| t.assignee_id == "nanmen").count();
        assert_eq!(book["任务清单"].len() - 1, want, "{}", c.name);

        // The API gives the same workbook and the same data as JSON.
        let resp = c
            .http
            .get(c.url("/api/reports/overdue/xlsx"))
            .bearer_auth(&c.reader)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::OK);
        let json: serde_json::Value = c
            .http
            .get(c.url("/api/reports/overdue"))
            .bearer_auth(&c.reader)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(json["sheets"][0]["name"], "逾期清单");
        assert_eq!(
            json["sheets"][0]["rows"].as_array().map(Vec::len),
            Some(overdue.len())
        );
        let (status, _) = c.get("/console/export/nothing.xlsx", Some(&c.admin)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn the_coverage_and_talk_ledger_exports_count_what_the_database_holds() {
    use yanzhen::core::pool::Field;
    use yanzhen::pool::Pool;
    for c in consoles().await {
        let units = || {
            Some(vec![
                "dongguan".to_string(),
                "xiguan".into(),
                "nanmen".into(),
            ])
        };
        let mut rounds = Vec::new();
        for wf in ["yearly-training", "health-checkup", "cadre-talks"] {
            rounds.push(
                c.engine()
                    .start_round(StartRound {
                        workflow: wf.into(),
                        start: date(2019, 7, 15),
                        params: Default::default(),
                        units: units(),
                        actor: "test".into(),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{}: start {wf}: {e}", c.name)),
            );
        }
        c.run_until(at(2019, 7, 15, 11, 0)).await;
        // dongguan does every open task of the training round.
        for t in c.store.tasks(rounds[0]).await.expect("tasks") {
            if t.assignee_id == "dongguan" && t.state == TaskState::Open {
                c.engine()
                    .complete_task(t.id, "test", None)
                    .await
                    .expect("complete");
            }
        }
        let mut pairs = BTreeSet::new();
        for r in &rounds[..2] {
            for t in c.store.tasks(*r).await.expect("tasks") {
                if t.state != TaskState::Cancelled
                    && t.assignee_kind == yanzhen::core::state::AssigneeKind::Unit
                {
                    pairs.insert((*r, t.assignee_id.clone()));
                }
            }
        }
        let book = workbook(&c, "/console/export/coverage.xlsx").await;
        let rows = &book["培训体检覆盖"];
        assert_eq!(rows[0], headings(yanzhen::report::COVERAGE_COLUMNS));
        assert_eq!(
            rows.len() - 1,
            pairs.len(),
            "{}: one row per round and branch",
            c.name
        );
        assert!(!pairs.is_empty());
        let done = yanzhen::report::COVERAGE_COLUMNS
            .iter()
            .position(|c| c.key == "done")
            .expect("col");
        let total = yanzhen::report::COVERAGE_COLUMNS
            .iter()
            .position(|c| c.key == "total")
            .expect("col");
        let dongguan_training = rows
            .iter()
            .find(|r| r[2] == rounds[0].to_string() && r[3] == "东关社区党委")
            .expect("dongguan's training row");
        let mine: Vec<TaskRow> = c
            .store
            .tasks(rounds[0])
            .await
            .expect("tasks")
            .into_iter()
            .filter(|t| t.assignee_id == "dongguan" && t.state != TaskState::Cancelled)
            .collect();
        let settled = mine.iter().filter(|t| t.state.is_settled()).count();
        assert!(settled > 0, "{}: dongguan did its training tasks", c.name);
        assert_eq!(
            (
                dongguan_training[done].clone(),
                dongguan_training[total].clone()
            ),
            (settled.to_string(), mine.len().to_string()),
            "{}: {dongguan_training:?}",
            c.name
        );

        let pool = Pool::new(c.engine());
        let person = pool
            .add(
                &[
                    (Field::Name, "赵志强".into()),
                    (Field::Unit, "dongguan".into()),
                    (Field::Tier, "1".into()),
                    (Field::Birth, "1988.03".into()),
                ],
                "test",
            )
            .await
            .expect("add");
        let event = pool
            .record_event(
                &person.id.to_string(),
                "job_change",
                date(2019, 7, 15),
                None,
                "token:clerk",
            )
            .await
            .expect("event");
        let suffix = format!("/e{}", event.event.id);
        let mut owed = 0;
        for r in [c.round, rounds[0], rounds[1], rounds[2]] {
            owed += c
                .store
                .tasks(r)
                .await
                .expect("tasks")
                .iter()
                .filter(|t| t.key.ends_with(&suffix))
                .count();
        }
        assert!(owed > 0, "{}: the job change owes a talk", c.name);
        let book = workbook(&c, "/console/export/talks.xlsx").await;
        let rows = &book["谈心谈话台账"];
        assert_eq!(rows[0], headings(yanzhen::report::TALK_COLUMNS));
        assert_eq!(
            rows.len() - 1,
            owed,
            "{}: one row per talk task the event owes",
            c.name
        );
        assert!(
            rows[1..]
                .iter()
                .all(|r| r[0] == "赵志强" && r[2] == "调整岗位"),
            "{}: {rows:?}",
            c.name
        );
    }
}
