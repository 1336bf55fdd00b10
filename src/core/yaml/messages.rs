//! Plain messages for serde-saphyr's errors: what stopped the reading, or which value does
//! not fit its type, in words an administrator can act on.

use super::spans::{Flat, Kind};
use crate::core::diagnostic::{Loc, did_you_mean};

/// The original error behind alias and snippet wrappers.
pub(super) fn original(e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    let mut e = e;
    loop {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            _ => return e,
        }
    }
}

pub(super) fn error_loc(e: &serde_saphyr::Error) -> Loc {
    e.location()
        .map(|l| Loc::from_saphyr(&l))
        .filter(|l| l.line > 0)
        .unwrap_or_default()
}

/// serde's and serde-saphyr's names for what was expected, in plain words.
fn plain_type(t: &str) -> String {
    let t = t.trim();
    let words = match t {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize"
        | "an integer" | "integer" | "u128" | "i128" => "a whole number",
        "f32" | "f64" | "a float" | "floating point" => "a number",
        "bool" | "a boolean" | "boolean" => "`true` or `false`",
        "a string" | "string" | "a borrowed string" | "char" | "string scalar" | "scalar"
        | "value" | "single YAML node" => "a text",
        "a sequence" | "sequence" | "seq" | "sequence start" => "a list",
        "a map" | "map" | "mapping start" | "mapping" | "empty mapping start" => "a mapping",
        "unit value" | "null" => "an empty value",
        _ if t.starts_with("struct ") || t.starts_with("a map") => "a mapping",
        _ if t.starts_with("string ") => return format!("the text {}", &t[7..]),
        _ if t.starts_with("integer ") => return format!("the number {}", &t[8..]),
        _ => return t.to_string(),
    };
    words.to_string()
}

/// What the node at `loc` is, for "found …" in messages.
fn found(flat: &[Flat], loc: Loc) -> String {
    match flat.iter().rev().find(|f| f.loc == loc) {
        Some(Flat {
            kind: Kind::Scalar,
            text: Some(t),
            ..
        }) if t.is_empty() => "an empty value".into(),
        Some(Flat {
            kind: Kind::Scalar,
            text: Some(t),
            ..
        }) => format!("`{t}`"),
        Some(Flat {
            kind: Kind::Seq, ..
        }) => "a list".into(),
        Some(Flat {
            kind: Kind::Map, ..
        }) => "a mapping".into(),
        _ => "something else".into(),
    }
}

/// chrono's date parse errors say nothing about dates; they only come from date fields.
const CHRONO_ERRORS: &[&str] = &[
    "input is out of range",
    "input contains invalid characters",
    "input is not enough for unique date and time",
    "premature end of input",
    "trailing input",
    "no possible date and time matching input",
];

/// A plain diagnostic for an error that stopped the syntax pass (the text is not YAML the
/// loader can read at all): code, position, message, hint.
pub(super) fn syntax_problem(e: &serde_saphyr::Error) -> (&'static str, Loc, String, String) {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    let loc = error_loc(e);
    let large = "a workflow, directory or scenario file has at most a few thousand lines; check that this is the right file";
    match original(e) {
        E::Budget { breach, .. } => {
            let what = match breach {
                B::Nodes { .. } | B::Events { .. } => {
                    "the file is too large to read: it has more values than any workflow needs"
                        .to_string()
                }
                B::ScalarBytes { .. } | B::CommentBytes { .. } => {
                    "the file is too large to read: its texts are longer than any workflow needs"
                        .to_string()
                }
                B::Depth { .. } => "the file nests too deeply to read".to_string(),
                B::Aliases { .. }
                | B::Anchors { .. }
                | B::AliasAnchorRatio { .. }
                | B::MergeKeys { .. } => {
                    "the file uses too many anchors and aliases (`&name`, `*name`, `<<`) to read"
                        .to_string()
                }
                _ => "the file is too large or too complex to read".to_string(),
            };
            (
                "too-large",
                loc,
                format!("{what} (reading stopped here)"),
                large.into(),
            )
        }
        E::MultipleDocuments { .. } => (
            "yaml-syntax",
            loc,
            "the file holds more than one YAML document (a second `---` line)".into(),
            "keep one document per file: remove the `---` line or split the file".into(),
        ),
        E::RecursiveReferencesRequireWeakTypes { .. } => (
            "yaml-syntax",
            loc,
            "an alias refers to the anchor it is inside of (`&a [*a]`)".into(),
            "an anchor's value may not contain an alias of itself".into(),
        ),
        E::UnknownAnchor { .. } => (
            "yaml-syntax",
            loc,
            "an alias (`*name`) refers to an anchor (`&name`) that is not defined before it".into(),
            "define the anchor before its first use, or write the value out".into(),
        ),
        E::Eof { .. } => (
            "yaml-syntax",
            loc,
            "the file ends in the middle of a value".into(),
            "check for an unclosed bracket or quote".into(),
        ),
        E::InvalidScalar { ty, .. } => (
            "invalid-value",
            loc,
            format!(
                "this value cannot be read as {} (check its tag, e.g. `!!int`)",
                plain_type(ty)
            ),
            "remove the tag or write a value of that type".into(),
        ),
        E::InvalidUtf8Input => (
            "yaml-syntax",
            Loc::default(),
            "the file is not UTF-8 text".into(),
            "save the file as UTF-8".into(),
        ),
        other => {
            let msg = bare_message(other);
            if msg.contains("recursion limit") || msg.contains("nesting limit") {
                (
                    "too-large",
                    loc,
                    "the file nests too deeply to read (reading stopped here)".into(),
                    large.into(),
                )
            } else {
                (
                    "yaml-syntax",
                    loc,
                    msg,
                    "fix the YAML syntax at this position (check indentation, quotes and brackets)"
                        .into(),
                )
            }
        }
    }
}

/// Strip serde-saphyr's " at line L, column C" suffix (and what follows it, such as an
/// alias's "defined at"): we print positions ourselves.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A plain diagnostic for a value that does not fit the type: code, message, hint.
pub(super) fn value_problem(
    e: &serde_saphyr::Error,
    flat: &[Flat],
) -> (&'static str, String, Option<String>) {
    use serde_saphyr::Error as E;
    let loc = error_loc(e);
    let generic = || {
        Some("the value has the wrong type or format here; see docs/workflow-format.md".to_string())
    };
    match original(e) {
        E::SerdeMissingField { field, .. } => (
            "missing-key",
            format!("missing key `{field}` in this mapping"),
            Some(
                "add the key; docs/workflow-format.md lists the required keys of each section"
                    .into(),
            ),
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let hint = match did_you_mean(variant, expected.iter().copied()) {
                Some(d) => format!("{d} (allowed: {})", expected.join(", ")),
                None => format!("allowed: {}", expected.join(", ")),
            };
            (
                "unknown-value",
                format!(
                    "unknown value `{variant}`, expected one of {}",
                    expected.join(", ")
                ),
                Some(hint),
            )
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => (
            "invalid-value",
            format!(
                "expected {} here, found {}",
                plain_type(expected),
                plain_type(unexpected)
            ),
            generic(),
        ),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            "invalid-value",
            format!(
                "{} is not allowed here: expected {}",
                plain_type(unexpected),
                plain_type(expected)
            ),
            generic(),
        ),
        E::InvalidScalar { ty, .. } => (
            "invalid-value",
            format!(
                "expected {} here, found {}",
                plain_type(ty),
                found(flat, loc)
            ),
            generic(),
        ),
        E::Unexpected { expected, .. } => (
            "invalid-value",
            format!(
                "expected {} here, found {}",
                plain_type(expected),
                found(flat, loc)
            ),
            generic(),
        ),
        E::NullIntoString { .. } => (
            "invalid-value",
            "expected a text here, found an empty value".into(),
            generic(),
        ),
        other => {
            let msg = bare_message(other);
            if CHRONO_ERRORS.contains(&msg.as_str()) {
                return (
                    "invalid-value",
                    format!(
                        "{} is not a date; write YYYY-MM-DD, e.g. 2019-07-12",
                        found(flat, loc)
                    ),
                    generic(),
                );
            }
            if let Some(rest) = msg.strip_prefix("unknown variant `") {
                // From our own Deserialize impls (e.g. a day of the month).
                let wrong = rest.split('`').next().unwrap_or("");
                let expected: Vec<&str> = rest
                    .split("expected one of ")
                    .nth(1)
                    .or_else(|| rest.split("expected ").nth(1))
                    .map(|s| s.split(", ").map(|x| x.trim_matches('`')).collect())
                    .unwrap_or_default();
                let hint = match did_you_mean(wrong, expected.iter().copied()) {
                    Some(d) => format!("{d} (allowed: {})", expected.join(", ")),
                    None => format!("allowed: {}", expected.join(", ")),
                };
                return ("unknown-value", msg, Some(hint));
            }
            ("invalid-value", msg, generic())
        }
    }
}
