use super::*;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Inner {
    title: String,
    days: Option<i64>,
}
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Doc {
    id: crate::core::diagnostic::Sp<String>,
    items: Vec<crate::core::diagnostic::Sp<Inner>>,
}

#[test]
fn every_unknown_key_is_reported_with_its_position_and_a_suggestion() {
    let mut d = Diagnostics::new("t.yaml");
    let text =
        "id: a\nitems:\n  - title: x\n    dayz: 3\n  - title: y\n    colour: red\nextra: 1\n";
    let v: Option<Doc> = parse(text, &mut d);
    assert!(v.is_some());
    let all = d.into_sorted();
    let shown: Vec<String> = all.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 3, "{shown:#?}");
    assert_eq!(
        shown[0],
        "error[unknown-key]: t.yaml:4:5: unknown key `dayz` in `items[0]`\n  hint: did you mean `days`? (known: `days`, `title`)"
    );
    assert!(
        shown[1].starts_with("error[unknown-key]: t.yaml:6:5: unknown key `colour` in `items[1]`")
    );
    assert!(
        shown[2]
            .starts_with("error[unknown-key]: t.yaml:7:1: unknown key `extra` at the top level")
    );
}

fn shown(text: &str) -> (bool, Vec<String>) {
    let mut d = Diagnostics::new("t.yaml");
    let v: Option<Doc> = parse(text, &mut d);
    (
        v.is_some(),
        d.into_sorted().iter().map(|d| d.to_string()).collect(),
    )
}

#[test]
fn every_bad_value_is_reported_and_items_after_a_broken_one_are_still_read() {
    // Item 0 lacks its required title (left out whole), item 1 has a bad number, item 2
    // an unknown key: all three are reported, with item 2 named by its own index.
    let text =
        "id: a\nitems:\n  - days: 1\n  - title: y\n    days: many\n  - title: z\n    colour: red\n";
    let (value, all) = shown(text);
    assert!(!value, "a partial document is not returned by `parse`");
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(
        all[0].starts_with("error[missing-key]: t.yaml:3:5: missing key `title`"),
        "{all:#?}"
    );
    assert!(
        all[1].starts_with(
            "error[invalid-value]: t.yaml:5:11: expected a whole number here, found `many`"
        ),
        "{all:#?}"
    );
    assert!(
        all[2].starts_with("error[unknown-key]: t.yaml:7:5: unknown key `colour` in `items[2]`"),
        "{all:#?}"
    );
}

#[test]
fn bad_values_in_flow_collections_are_left_out_and_the_rest_is_read() {
    let text = "id: [x]\nitems: [{title: a, days: b}, {title: c}]\nextra: 1\n";
    let (_, all) = shown(text);
    let codes: Vec<&str> = all
        .iter()
        .map(|s| s.split(']').next().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        [
            "error[invalid-value",
            "error[invalid-value",
            "error[unknown-key"
        ],
        "{all:#?}"
    );
    assert!(
        all[0].contains("t.yaml:1:5: expected a text here, found a list"),
        "{all:#?}"
    );
    assert!(
        all[1].contains("t.yaml:2:26: expected a whole number here, found `b`"),
        "{all:#?}"
    );
}

#[test]
fn gaps_cover_what_follows_from_a_left_out_value_and_nothing_else() {
    let mut d = Diagnostics::new("t.yaml");
    let text = "id: a\nitems:\n  - title: x\n    days: many\n  - title: y\n";
    let (v, gaps) = parse_partial::<Doc>(text, &mut d);
    let v = v.expect("partial value");
    assert_eq!(v.items.len(), 2);
    assert_eq!(v.items[0].days, None, "the bad value is left out");
    let at = |line, column| Diagnostic {
        severity: crate::core::diagnostic::Severity::Error,
        code: "x",
        file: "t.yaml".into(),
        loc: Loc { line, column },
        message: String::new(),
        hint: None,
    };
    assert!(gaps.covers(&at(3, 5)), "the item that lost `days`");
    assert!(!gaps.covers(&at(5, 5)), "the next item");
    assert!(!gaps.covers(&at(1, 5)), "the top level");
}

#[test]
fn syntax_error_is_reported_with_position() {
    let mut d = Diagnostics::new("t.yaml");
    let v: Option<Doc> = parse("id: a\nitems: [\n", &mut d);
    assert!(v.is_none());
    let all = d.into_sorted();
    assert_eq!(all[0].code, "yaml-syntax");
    assert_eq!(all[0].loc, Loc { line: 2, column: 8 });
}
