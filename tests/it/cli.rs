//! The `yanzhen` binary: exit codes, positions in its error output, JSON plans, and the
//! committed JSON schema staying in step with the Rust types.

use crate::common;
use yanzhen::core::state::TaskState;

use std::process::{Command, Output};

fn yanzhen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yanzhen"))
        .args(args)
        .current_dir(common::root())
        .env("YANZHEN_LOG", "warn")
        .output()
        .expect("run yanzhen")
}

#[test]
fn validate_accepts_every_shipped_workflow_with_exit_code_0() {
    let out = yanzhen(&["validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(" 0 error(s)")
            || err.starts_with("0 error(s)")
            || err.contains("\n0 error(s)"),
        "{err}"
    );
    for id in [
        "community-reserve-selection",
        "village-reserve-selection",
        "annual-assessment",
        "health-checkup",
        "yearly-training",
        "branch-yearly-cycle",
        "head-goose-evaluation",
        "cadre-talks",
    ] {
        assert!(
            err.contains(&format!("({id})")),
            "{id} not reported ok:\n{err}"
        );
    }
}

#[test]
fn validate_reports_file_line_column_and_exits_1_on_a_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "id: bad\ntitle: 坏\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 3}\n    tasks:\n      - id: t\n        title: 任务\n        assignee: {group: branchs}\n        due: {from: stage_close}\n",
    )
    .expect("write");
    let out = yanzhen(&["validate", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:10:19: unknown directory group `branchs`"),
        "{err}"
    );
    assert!(err.contains("did you mean `branches`?"), "{err}");
}

#[test]
fn validate_json_format_lists_diagnostics_as_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "id: bad\ntitel: x\nstages: []\n").expect("write");
    let out = yanzhen(&["validate", "--format", "json", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let codes: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(codes.contains(&"unknown-key"), "{v}");
}

#[test]
fn plan_json_has_the_seed_000_nomination_deadline() {
    let out = yanzhen(&[
        "plan",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let task = v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "nomination@dongguan")
        .expect("nomination task");
    assert_eq!(task["due"]["at"], "2019-07-12T18:00:00+08:00");
    assert_eq!(v["stages"][0]["opens"]["at"], "2019-07-01T09:00:00+08:00");
}

#[test]
fn plan_table_prints_chinese_dates_with_weekday() {
    let out = yanzhen(&[
        "plan",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2019年7月12日（星期五）18:00"), "{text}");
}

#[test]
fn plan_of_an_unknown_workflow_suggests_the_closest_id() {
    let out = yanzhen(&["plan", "community-reserve-selecton"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean `community-reserve-selection`?"),
        "{err}"
    );
}

#[test]
fn plan_rejects_an_unknown_parameter() {
    let out = yanzhen(&[
        "plan",
        "village-reserve-selection",
        "--param",
        "notice_dayz=7",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no parameter `notice_dayz`") && err.contains("notice_days"),
        "{err}"
    );
}

#[test]
fn committed_json_schema_matches_the_rust_types() {
    let committed = common::read("schema/workflow.schema.json");
    let generated = yanzhen::cli::schema_json();
    assert_eq!(
        committed.trim_end(),
        generated.trim_end(),
        "schema/workflow.schema.json is stale: run `cargo run -- schema > schema/workflow.schema.json`"
    );
    let out = yanzhen(&["schema"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        generated.trim_end()
    );
}

#[test]
fn schema_rejects_unknown_keys_so_editors_flag_typos() {
    let v: serde_json::Value = serde_json::from_str(&yanzhen::cli::schema_json()).expect("json");
    assert_eq!(v["additionalProperties"], false);
    assert_eq!(v["$defs"]["Task"]["additionalProperties"], false);
}

/// A role task that waits for a task fanned out to the branches (a join), dated from its
/// completion in calendar days so the test does not depend on next year's holiday notice.
const JOIN: &str = "id: join\ntitle: 汇总测试\nstages:\n  - id: s\n    title: 阶段\n    closes: {from: round_start, days: 10}\n    tasks:\n      - id: report\n        title: 上报材料\n        assignee: {group: branches}\n        due: {from: stage_close}\n      - id: collect\n        title: 汇总材料\n        assignee: {role: organization_office}\n        after: [report]\n        due: {from: {done: report}, days: 2}\n";

/// Start `rounds` rounds of [`JOIN`] for two branches, then for each round complete both
/// branches' `report` with two `yanzhen task complete` processes started together. Returns
/// the rounds whose `collect` is still waiting, and checks it was activated at most once.
async fn concurrent_join_completions(s: common::daemon::Setup, rounds: usize) -> Vec<i64> {
    std::fs::write(s.path().join("workflows/join.yaml"), JOIN).expect("write workflow");
    for _ in 0..rounds {
        s.run(&[
            "round",
            "start",
            "join",
            "--start",
            "2025-03-03",
            "--branches",
            "dongguan,xiguan",
        ]);
    }
    let store = s.store().await;
    let mut stuck = Vec::new();
    for round in store.rounds().await.expect("rounds") {
        let tasks = store.tasks(round.id).await.expect("tasks");
        let id = |key: &str| {
            tasks
                .iter()
                .find(|t| t.key == key)
                .unwrap_or_else(|| panic!("{key} in {tasks:?}"))
                .id
                .to_string()
        };
        let (a, b) = (id("report@dongguan"), id("report@xiguan"));
        let children: Vec<std::process::Child> = [a, b]
            .iter()
            .map(|t| {
                s.cmd(&["task", "complete", t])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "round {}: {}",
                round.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let collect = store
            .task_by_key(round.id, "collect@role:organization_office")
            .await
            .expect("read")
            .expect("collect task");
        if collect.state == TaskState::Waiting {
            stuck.push(round.id);
        }
        let activations = store
            .task_history(collect.id)
            .await
            .expect("history")
            .iter()
            .filter(|h| h.from_state == TaskState::Waiting && h.to_state == TaskState::Open)
            .count();
        assert!(
            activations <= 1,
            "round {}: activated {activations} times",
            round.id
        );
    }
    stuck
}

#[tokio::test]
async fn two_processes_completing_a_join_at_once_on_sqlite_leave_no_round_waiting() {
    let stuck = concurrent_join_completions(common::daemon::Setup::new(), 200).await;
    assert!(
        stuck.is_empty(),
        "{} of 200 rounds left waiting: {stuck:?}",
        stuck.len()
    );
}

#[tokio::test]
async fn two_processes_completing_a_join_at_once_on_postgres_leave_no_round_waiting() {
    let Some((url, _guard)) = common::stores::postgres_database().await else {
        return;
    };
    let s = common::daemon::Setup::new().db_url(url);
    let stuck = concurrent_join_completions(s, 200).await;
    assert!(
        stuck.is_empty(),
        "{} of 200 rounds left waiting: {stuck:?}",
        stuck.len()
    );
}

#[tokio::test]
async fn reopen_takes_a_new_deadline_and_status_names_a_task_stuck_waiting() {
    let s = common::daemon::Setup::new();
    std::fs::write(s.path().join("workflows/join.yaml"), JOIN).expect("write workflow");
    s.run(&[
        "round",
        "start",
        "join",
        "--start",
        "2025-03-03",
        "--branches",
        "dongguan,xiguan",
    ]);
    let store = s.store().await;
    let report = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .task_by_key(1, key)
                .await
                .expect("read")
                .expect("task")
                .id
        }
    };
    let a = report("report@dongguan").await;
    s.run(&["task", "complete", &a.to_string()]);
    let out = s.run(&[
        "task",
        "reopen",
        &a.to_string(),
        "--reason",
        "材料不全",
        "--due",
        "2099-01-05",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is now open, due 2099年1月5日"), "{text}");
    let row = store.task(a).await.expect("read").expect("task");
    assert_eq!(
        row.due_at,
        Some(
            chrono::DateTime::parse_from_rfc3339("2099-01-05T18:00:00+08:00")
                .expect("instant")
                .timestamp_millis()
        ),
        "the date at the task's time of day"
    );
    let bad = s
        .cmd(&["task", "reopen", &a.to_string(), "--due", "2099-13-40"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not YYYY-MM-DD"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // Both reports done behind the engine's back: `collect` waits with nothing to wait for.
    for id in [a, report("report@xiguan").await] {
        let now = chrono::Utc::now().timestamp_millis();
        let t = store.task(id).await.expect("read").expect("task");
        store
            .transition(yanzhen::store::Transition {
                task_id: id,
                from: vec![t.state],
                to: TaskState::Done,
                at: now,
                actor: "test".into(),
                note: None,
                action: "complete".into(),
                cancel_timers: true,
                new_timers: vec![],
                activate: vec![],
                set_due: None,
                submission: None,
                audit: yanzhen::store::AuditEntry {
                    at: now,
                    actor: "test".into(),
                    action: "task.complete".into(),
                    subject: format!("task:{id}"),
                    detail_json: "{}".into(),
                },
            })
            .await
            .expect("raw completion");
    }
    let out = s.run(&["status", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("STUCK") && text.contains("collect@role:organization_office"),
        "{text}"
    );
}

fn plan_task_keys(args: &[&str]) -> Vec<String> {
    let out = yanzhen(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["key"].as_str().expect("key").to_string())
        .collect()
}

#[test]
fn plan_for_some_branches_keeps_department_and_role_tasks_unless_only_listed() {
    let base = [
        "plan",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--format",
        "json",
        "--branches",
        "dongguan",
    ];
    let keys = plan_task_keys(&base);
    for k in [
        "nomination@dongguan",
        "department_opinions@jiwei",
        "department_opinions@paichusuo",
        "department_opinions@sifasuo",
        "department_opinions@jishengban",
        "inspection@role:organization_office",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing: {keys:?}");
    }
    assert!(!keys.iter().any(|x| x.ends_with("@xiguan")), "{keys:?}");
    let mut only = base.to_vec();
    only.push("--only-listed");
    let keys = plan_task_keys(&only);
    assert!(
        !keys.iter().any(|x| x.starts_with("department_opinions@")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|x| x == "inspection@role:organization_office"),
        "role tasks never depend on the unit list: {keys:?}"
    );
}

#[test]
fn plan_refuses_unknown_branch_ids_naming_each_with_a_hint() {
    let out = yanzhen(&[
        "plan",
        "community-reserve-selection",
        "--start",
        "2019-07-01",
        "--branches",
        "dongguan,xiguang,zzz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no unit `xiguang` in the directory")
            && err.contains("did you mean `xiguan`?")
            && err.contains("no unit `zzz` in the directory"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no plan is printed");
}

#[test]
fn validate_reports_what_serve_would_refuse_in_notify_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = common::root();
    let config = dir.path().join("yanzhen.toml");
    std::fs::write(
        &config,
        format!(
            "workflows_dir = \"{}\"\ndirectory = \"{}\"\ncalendar_dir = \"{}\"\npid_file = \"data/yanzhen.pid\"\n\n[notify]\nmode = \"deliver\"\n\n[notify.rate_limits]\nemail = 0\nemial = 10\n",
            root.join("workflows").display(),
            root.join("config/directory.yaml").display(),
            root.join("config/calendar").display()
        ),
    )
    .expect("config");
    let out = yanzhen(&["--config", config.to_str().expect("utf8"), "validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("yanzhen.toml:7:1: mode = \"deliver\" needs an [notify.smtp] section"),
        "{err}"
    );
    assert!(
        err.contains("yanzhen.toml:10:1: rate_limits.email = 0 would never send anything"),
        "{err}"
    );
    assert!(
        err.contains("yanzhen.toml:11:1: unknown channel `emial` in rate_limits")
            && err.contains("email"),
        "{err}"
    );
    assert!(
        err.contains("warning[deprecated]") && err.contains("pid_file is no longer used"),
        "{err}"
    );
}
