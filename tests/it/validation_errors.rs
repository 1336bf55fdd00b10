//! One test per class of validation error: each asserts the code, the position and the
//! message (snapshots of the rendered diagnostics).

use crate::common;

use yanzhen::core::diagnostic::{Diagnostic, Loc, Severity};
use yanzhen::core::validate::{Context, validate_workflow};

fn check(yaml: &str) -> Vec<Diagnostic> {
    let dir = common::directory();
    let cal = common::calendar();
    let ctx = Context {
        directory: &dir,
        calendar: &cal,
        default_tz: chrono_tz::Asia::Shanghai,
        today: common::today(),
    };
    let (wf, d) = validate_workflow("wf.yaml", yaml, ctx);
    let all = d.into_sorted();
    if all.iter().any(|d| d.severity == Severity::Error) {
        assert!(wf.is_none(), "a workflow with errors must not be returned");
    }
    all
}

fn render(all: &[Diagnostic]) -> String {
    all.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn at(all: &[Diagnostic], code: &str) -> Loc {
    all.iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no `{code}` in:\n{}", render(all)))
        .loc
}

/// A small valid workflow; tests break one thing at a time.
const BASE: &str = r#"id: t
title: 测试
example_start: 2025-03-03
stages:
  - id: s1
    title: 阶段一
    closes: {from: round_start, days: 5}
    tasks:
      - id: a
        title: 任务A
        assignee: {group: branches}
        due: {from: stage_close}
"#;

#[test]
fn base_fixture_is_valid_so_each_test_isolates_one_error() {
    let all = check(BASE);
    assert!(all.is_empty(), "{}", render(&all));
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let all = check("id: t\ntitle: [unclosed\nstages: []\n");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].code, "yaml-syntax");
    insta::assert_snapshot!(render(&all));
}

#[test]
fn every_unknown_key_is_reported_at_once_with_did_you_mean() {
    let yaml = BASE
        .replace("title: 测试", "title: 测试\ndescripton: x")
        .replace(
            "        due: {from: stage_close}",
            "        deu: {from: stage_close}\n        due: {from: stage_close, dayz: 2}",
        );
    let all = check(&yaml);
    let unknown: Vec<&Diagnostic> = all.iter().filter(|d| d.code == "unknown-key").collect();
    assert_eq!(unknown.len(), 3, "{}", render(&all));
    assert_eq!(unknown[0].loc, Loc { line: 3, column: 1 });
    assert!(
        unknown[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean `description`?")
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn duplicate_mapping_key_is_a_syntax_level_error() {
    let all = check(&BASE.replace("title: 测试", "title: 测试\ntitle: 又一个"));
    assert_eq!(all[0].code, "duplicate-key");
    assert_eq!(all[0].loc.line, 3);
}

#[test]
fn misspelt_enum_value_suggests_the_right_one() {
    let all = check(&BASE.replace("{from: stage_close}", "{from: stage_clse}"));
    assert_eq!(all[0].code, "unknown-value");
    assert_eq!(
        all[0].loc,
        Loc {
            line: 12,
            column: 21
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn missing_required_key_is_reported() {
    let all = check(&BASE.replace("        title: 任务A\n", ""));
    assert_eq!(all[0].code, "missing-key");
    assert_eq!(
        all[0].loc,
        Loc { line: 9, column: 9 },
        "at the start of the task's mapping (`id: a`), not at its last key"
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn duplicate_task_ids_point_at_the_second_one() {
    let yaml = format!(
        "{BASE}      - id: a\n        title: 重复\n        assignee: {{role: organization_office}}\n        due: {{from: stage_close}}\n"
    );
    let all = check(&yaml);
    assert_eq!(
        at(&all, "duplicate-id"),
        Loc {
            line: 13,
            column: 13
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn unknown_stage_task_role_group_event_and_parameter_references_each_get_a_hint() {
    let yaml = r#"id: t
title: 测试
example_start: 2025-03-03
stages:
  - id: s1
    title: 阶段一
    closes: {from: round_start, days: "${durtion}"}
    tasks:
      - id: nominate
        title: 推荐
        assignee: {group: branchs}
        due: {from: {close_of: s2}}
      - id: inspect
        title: 考察
        assignee: {role: organisation_office}
        after: [nominte]
        due: {from: {done: nominte}}
        escalation:
          - after: {days: 1}
            to: comittee_head
      - id: talk
        title: 谈话
        assignee: {group: branches}
        due: {from: {event: job_chnge}, working_days: 5}
"#;
    let all = check(yaml);
    let refs: Vec<&Diagnostic> = all
        .iter()
        .filter(|d| d.code == "unknown-reference")
        .collect();
    assert!(refs.len() >= 7, "{}", render(&all));
    insta::assert_snapshot!(render(&all));
}

#[test]
fn unknown_template_variable_and_parameter_in_a_description() {
    let yaml = BASE.replace(
        "        title: 任务A\n",
        "        title: 任务A\n        description: \"{{ asignee.name }} 推荐 {{ params.min_candidate }} 名\"\n",
    );
    let all = check(&yaml);
    assert_eq!(
        at(&all, "unknown-reference"),
        Loc {
            line: 11,
            column: 22
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn template_syntax_error_is_caught_at_load_time() {
    let yaml = BASE.replace(
        "        title: 任务A\n",
        "        title: 任务A\n        description: \"{{ assignee.name \"\n",
    );
    let all = check(&yaml);
    assert_eq!(at(&all, "template-syntax").line, 11);
}

#[test]
fn a_date_cycle_between_stages_is_reported_with_the_path() {
    let yaml = r#"id: t
title: 测试
example_start: 2025-03-03
stages:
  - id: s1
    title: 阶段一
    opens: {from: {close_of: s2}}
    closes: {from: stage_open, days: 2}
  - id: s2
    title: 阶段二
    opens: {from: {close_of: s1}}
    duration: {days: 3}
"#;
    let all = check(yaml);
    assert_eq!(at(&all, "cycle").line, 8);
    insta::assert_snapshot!(render(&all));
}

#[test]
fn an_after_cycle_between_tasks_is_reported() {
    let yaml = BASE.replace("        due: {from: stage_close}\n", "        after: [b]\n        due: {from: stage_close}\n      - id: b\n        title: 任务B\n        assignee: {group: branches}\n        after: [a]\n        due: {from: stage_close}\n");
    let all = check(&yaml);
    assert_eq!(
        at(&all, "cycle"),
        Loc {
            line: 17,
            column: 17
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn deadline_before_its_stage_opens_is_an_error() {
    let yaml = r#"id: t
title: 测试
example_start: 2025-03-03
stages:
  - id: s1
    title: 阶段一
    opens: {from: round_start, days: 5}
    closes: {from: round_start, days: 10}
    tasks:
      - id: a
        title: 任务A
        assignee: {group: branches}
        due: {from: round_start, days: 2}
"#;
    let all = check(yaml);
    assert_eq!(
        at(&all, "deadline-before-stage"),
        Loc {
            line: 13,
            column: 14
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn reminder_after_its_deadline_is_an_error() {
    let yaml = BASE.replace(
        "        due: {from: stage_close}\n",
        "        due: {from: stage_close}\n        reminders:\n          before:\n            - days: 1\n            - days: -1\n",
    );
    let all = check(&yaml);
    assert_eq!(
        at(&all, "reminder-after-deadline"),
        Loc {
            line: 16,
            column: 15
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn bad_cron_and_impossible_yearly_date_are_schedule_errors() {
    let cron = BASE.replace(
        "example_start: 2025-03-03\n",
        "example_start: 2025-03-03\nschedule:\n  cron: \"0 9 32 12 *\"\n",
    );
    let all = check(&cron);
    assert_eq!(at(&all, "bad-schedule"), Loc { line: 5, column: 9 });
    let yearly = BASE.replace(
        "example_start: 2025-03-03\n",
        "example_start: 2025-03-03\nschedule:\n  yearly: {month: 2, day: 30}\n",
    );
    let all2 = check(&yearly);
    assert_eq!(
        at(&all2, "bad-schedule"),
        Loc {
            line: 5,
            column: 27
        }
    );
    insta::assert_snapshot!(format!("{}\n{}", render(&all), render(&all2)));
}

#[test]
fn working_days_into_a_year_without_holiday_data_is_an_error() {
    // 2027 is planned provisionally; 2028 is more than one year past the last file (2026).
    let yaml = BASE
        .replace("example_start: 2025-03-03", "example_start: 2027-12-20")
        .replace(
            "{from: round_start, days: 5}",
            "{from: round_start, working_days: 15}",
        );
    let all = check(&yaml);
    assert_eq!(at(&all, "calendar-year-missing").line, 7);
    insta::assert_snapshot!(render(&all));
}

#[test]
fn working_days_into_the_year_after_the_last_holiday_file_are_a_warning_not_an_error() {
    let yaml = BASE
        .replace("example_start: 2025-03-03", "example_start: 2026-12-20")
        .replace(
            "{from: round_start, days: 5}",
            "{from: round_start, working_days: 15}",
        );
    let all = check(&yaml);
    assert!(
        all.iter().all(|d| d.severity == Severity::Warning),
        "{}",
        render(&all)
    );
    assert_eq!(at(&all, "calendar-provisional").line, 7);
    insta::assert_snapshot!(render(&all));
}

#[test]
fn parameter_of_the_wrong_type_is_rejected_where_it_is_used() {
    let yaml = BASE
        .replace("example_start: 2025-03-03\n", "example_start: 2025-03-03\nparameters:\n  - id: d\n    type: date\n    default: 2025-03-10\n")
        .replace("{from: round_start, days: 5}", "{from: round_start, days: \"${d}\"}");
    let all = check(&yaml);
    assert_eq!(at(&all, "parameter-type").line, 11);
    insta::assert_snapshot!(render(&all));
}

#[test]
fn stage_without_an_end_is_an_error() {
    let all = check(&BASE.replace("    closes: {from: round_start, days: 5}\n", ""));
    assert_eq!(at(&all, "invalid-stage"), Loc { line: 5, column: 9 });
}

#[test]
fn directory_errors_name_the_unknown_member_and_duplicate_id() {
    let text = "office: {id: o, name: 办}\nroles:\n  - id: office\n    title: 组织办\n    contacts: [{name: 马, email: a@example.gov.cn}]\nunits:\n  - id: a\n    name: 甲\n    kind: branch\n  - id: a\n    name: 乙\n    kind: branch\ngroups:\n  - id: g\n    title: 组\n    members: [a, bb]\n";
    let mut d = yanzhen::core::diagnostic::Diagnostics::new("directory.yaml");
    yanzhen::core::directory::Directory::parse(text, &mut d);
    let all = d.into_sorted();
    assert_eq!(
        at(&all, "duplicate-id"),
        Loc {
            line: 10,
            column: 9
        }
    );
    assert_eq!(
        at(&all, "unknown-reference"),
        Loc {
            line: 16,
            column: 18
        }
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn one_bad_value_does_not_hide_the_other_errors_of_the_file() {
    let yaml = BASE
        .replace(
            "example_start: 2025-03-03\n",
            "example_start: 2025-03-03\ndefaults:\n  due_at: \"25:00\"\n",
        )
        .replace(
            "closes: {from: round_start, days: 5}",
            "closes: {from: round_start, days: 5, at: \"25:00\"}",
        )
        .replace("{group: branches}", "{group: branchez}")
        .replace(
            "        due: {from: stage_close}\n",
            "        due: {from: stage_close, at: \"26:00\"}\n        dayz: 3\n        after: [zzz]\n      - id: b\n        assignee: {group: branches}\n        due: {from: stage_clse}\n",
        );
    let all = check(&yaml);
    let found: Vec<(&str, u64)> = all.iter().map(|d| (d.code, d.loc.line)).collect();
    assert_eq!(
        found,
        [
            ("invalid-value", 5),
            ("invalid-value", 9),
            ("unknown-reference", 13),
            ("invalid-value", 14),
            ("unknown-key", 15),
            ("unknown-reference", 16),
            ("missing-key", 17),
            ("unknown-value", 19),
        ],
        "{}",
        render(&all)
    );
    insta::assert_snapshot!(render(&all));
}

#[test]
fn a_value_left_out_causes_no_follow_on_errors() {
    // Without its bad `from`, the deadline has no base and the stage no end; neither is
    // reported, only the bad values themselves.
    let yaml = BASE
        .replace(
            "closes: {from: round_start, days: 5}",
            "closes: {from: round_strat, days: 5}",
        )
        .replace("due: {from: stage_close}", "due: {from: stage_clse}");
    let all = check(&yaml);
    let found: Vec<(&str, Loc)> = all.iter().map(|d| (d.code, d.loc)).collect();
    assert_eq!(
        found,
        [
            (
                "unknown-value",
                Loc {
                    line: 7,
                    column: 20
                }
            ),
            (
                "unknown-value",
                Loc {
                    line: 12,
                    column: 21
                }
            ),
        ],
        "{}",
        render(&all)
    );
}

#[test]
fn a_duplicate_key_is_a_plain_diagnostic_and_the_rest_is_still_checked() {
    let yaml = BASE
        .replace("title: 测试", "title: 测试\ntitle: 又一个")
        .replace("{group: branches}", "{group: branchez}");
    let all = check(&yaml);
    let found: Vec<(&str, u64)> = all.iter().map(|d| (d.code, d.loc.line)).collect();
    assert_eq!(
        found,
        [("duplicate-key", 3), ("unknown-reference", 12)],
        "{}",
        render(&all)
    );
    let text = render(&all);
    assert!(
        !text.contains("DuplicateKeyPolicy") && !text.contains("Options"),
        "{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn a_huge_document_is_too_large_in_plain_words() {
    let mut yaml = String::from("id: t\ntitle: 大\nstages:\n");
    for i in 0..90_000 {
        yaml.push_str(&format!(
            "  - id: s{i}\n    title: x\n    closes: {{from: round_start, days: 1}}\n"
        ));
    }
    let all = check(&yaml);
    assert_eq!(all.len(), 1, "{}", render(&all));
    assert_eq!(all[0].code, "too-large");
    assert!(all[0].loc.line > 0);
    let text = render(&all);
    assert!(
        !text.contains("budget") && !text.contains("Nodes {"),
        "{text}"
    );
    assert!(text.contains("too large to read"), "{text}");
}

#[test]
fn a_deeply_nested_document_is_too_large_in_plain_words() {
    let yaml = format!(
        "id: t\ntitle: 深\nstages: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let all = check(&yaml);
    assert_eq!(all.len(), 1, "{}", render(&all));
    assert_eq!(all[0].code, "too-large");
    assert!(
        render(&all).contains("nests too deeply"),
        "{}",
        render(&all)
    );
}

#[test]
fn parser_internals_never_reach_the_message() {
    for (yaml, code) in [
        ("id: t\ntitle: x\nstages: []\n---\nid: u\n", "yaml-syntax"),
        ("a: &a [*a]\n", "yaml-syntax"),
        ("id: t\ntitle: x\nstages: 5\n", "invalid-value"),
        (
            "id: t\ntitle: x\nexample_start: 2025-13-45\nstages: []\n",
            "invalid-value",
        ),
        ("id: t\ntitle: !!int x\nstages: []\n", "invalid-value"),
    ] {
        let all = check(yaml);
        let text = render(&all);
        assert_eq!(all[0].code, code, "{text}");
        assert!(all[0].loc.line > 0, "{text}");
        for internal in [
            "from_str_multiple",
            "weak recursion types",
            "sequence start",
            "input is out of range",
            "invalid u64",
            "variant",
        ] {
            assert!(!text.contains(internal), "`{internal}` in:\n{text}");
        }
    }
}

#[test]
fn a_problem_without_a_position_names_the_file_without_zero_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"\xff\xfe not utf-8").unwrap();
    let cfg = yanzhen::config::Config::default();
    let (_, diags) = yanzhen::catalog::load_workflows(
        std::slice::from_ref(&bad),
        &cfg,
        &common::directory(),
        &common::calendar(),
        common::today(),
    );
    assert_eq!(diags.len(), 1);
    let text = diags[0].to_string();
    assert!(
        text.starts_with(&format!("error[io]: {}: ", bad.display())),
        "{text}"
    );
    assert!(!text.contains(":0:0"), "{text}");
}

#[test]
fn every_problem_of_a_scenario_file_is_reported_at_once_with_positions_and_hints() {
    let text = "workflow: community-reserve-selection\nstart: 2019-07-01\nuntil: 2019-07-31\nparams: {min_candidatez: 3}\nbranches: [dongguan, xiguang]\nfrobnicate: 1\ncompletions:\n  - {task: nomination, assignee: dongguan, at: \"2019-07-11 09:30\"}\n  - {task: nominaton, assignee: dongguan, at: \"2019-07-11T09:30\"}\n  - {task: nomination, assignee: nanmen, at: \"2019-07-12T09:30\"}\n  - {task: nomination, assignee: dongguan, at: \"2019-08-02T09:30\"}\n";
    let cat = common::catalog_with(&[], true);
    let (sc, d) = yanzhen::runtime::simulate::load("s.yaml", text, &cat);
    assert!(sc.is_none());
    let all = d.into_sorted();
    let found: Vec<(&str, Loc)> = all.iter().map(|d| (d.code, d.loc)).collect();
    assert_eq!(
        found,
        [
            ("unknown-parameter", Loc { line: 4, column: 9 }),
            (
                "unknown-reference",
                Loc {
                    line: 5,
                    column: 22
                }
            ),
            ("unknown-key", Loc { line: 6, column: 1 }),
            (
                "invalid-value",
                Loc {
                    line: 8,
                    column: 48
                }
            ),
            (
                "unknown-reference",
                Loc {
                    line: 9,
                    column: 12
                }
            ),
            (
                "unknown-reference",
                Loc {
                    line: 10,
                    column: 34
                }
            ),
            (
                "outside-simulation",
                Loc {
                    line: 11,
                    column: 48
                }
            ),
        ],
        "{}",
        render(&all)
    );
    insta::assert_snapshot!(render(&all));

    // A scenario that names a bad date is still checked for the rest.
    let text = "workflow: community-reserv-selection\nstart: 2019-07-01\nuntil: 2019-13-31\n";
    let (_, d) = yanzhen::runtime::simulate::load("s.yaml", text, &cat);
    let all = d.into_sorted();
    let codes: Vec<&str> = all.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["unknown-reference", "invalid-value"],
        "{}",
        render(&all)
    );
    assert!(
        all[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `community-reserve-selection`?"),
        "{}",
        render(&all)
    );
}

#[test]
fn a_bad_or_missing_top_level_value_does_not_stop_the_other_checks() {
    let yaml = BASE
        .replace("id: t\n", "id: [t]\n")
        .replace("title: 测试\n", "")
        .replace("{group: branches}", "{group: branchez}");
    let all = check(&yaml);
    let found: Vec<(&str, Loc)> = all.iter().map(|d| (d.code, d.loc)).collect();
    assert_eq!(
        found,
        [
            ("missing-key", Loc { line: 1, column: 1 }),
            ("invalid-value", Loc { line: 1, column: 5 }),
            (
                "unknown-reference",
                Loc {
                    line: 10,
                    column: 19
                }
            ),
        ],
        "{}",
        render(&all)
    );
}

#[test]
fn a_stage_left_out_for_a_misspelt_key_does_not_also_say_the_workflow_has_no_stages() {
    // `titel` for `title`: the only stage cannot be read, so the list is empty only
    // because of that gap; the misspelling and the missing title are the whole story.
    let yaml = "id: yearly-training\ntitle: 年度培训\nstages:\n  - id: s\n    titel: 培训\n    opens: {from: round_start}\n    closes: {from: round_start, days: 3}\n    tasks: []\n";
    let all = check(yaml);
    let found: Vec<(&str, u64, u64)> = all
        .iter()
        .map(|d| (d.code, d.loc.line, d.loc.column))
        .collect();
    assert_eq!(
        found,
        [("missing-key", 4, 5), ("unknown-key", 5, 5)],
        "{}",
        render(&all)
    );
}
