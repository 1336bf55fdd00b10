//! The `yanzhen` binary: exit codes, positions in its error output, JSON plans, and the
//! committed JSON schema staying in step with the Rust types.

mod common;

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
