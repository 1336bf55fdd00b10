//! Typed YAML loading that reports *every* structural problem with its position.
//!
//! serde stops at the first hard error, so unknown keys are not rejected by serde
//! (`deny_unknown_fields` would stop at the first one); they are collected with
//! `serde_ignored` and located afterwards in a span tree of the same text. The JSON
//! schema of the target type supplies the allowed keys for "did you mean" hints.

use crate::diagnostic::{Diagnostics, Loc, did_you_mean, suggest};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;

/// A YAML node with positions, used only to locate keys named by a path.
#[derive(Debug)]
enum Node {
    Map(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Node>)>),
    Seq(Vec<serde_saphyr::Spanned<Node>>),
    Scalar,
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = vec![];
                while let Some(x) = a.next_element()? {
                    v.push(x)
                }
                Ok(Node::Seq(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = vec![];
                while let Some(k) = a.next_key::<serde_saphyr::Spanned<String>>()? {
                    let val = a.next_value()?;
                    v.push((k, val))
                }
                Ok(Node::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The marker serde-saphyr uses internally for `Spanned`; paths through it are not user keys.
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

/// Turns a serde_ignored path into user-visible segments, or None for internal paths.
fn segments(path: &serde_ignored::Path) -> Option<Vec<Seg>> {
    // (segment, came right after an Option/newtype wrapper)
    fn walk(p: &serde_ignored::Path, out: &mut Vec<(Option<Seg>, bool)>) {
        use serde_ignored::Path as P;
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push((Some(Seg::Index(*index)), false));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push((Some(Seg::Key(key.clone())), false));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out);
                out.push((None, true));
            }
        }
    }
    let mut raw = Vec::new();
    walk(path, &mut raw);
    let mut out = Vec::new();
    let mut after_wrapper = false;
    for (seg, is_wrapper) in raw {
        match seg {
            None => after_wrapper = is_wrapper,
            Some(Seg::Key(k)) if k == SPANNED_MARKER => return None,
            // `Spanned<T>` exposes its content under a `value` key right after the wrapper.
            Some(Seg::Key(k)) if k == "value" && after_wrapper => after_wrapper = false,
            Some(s) => {
                after_wrapper = false;
                out.push(s)
            }
        }
    }
    Some(out)
}

/// Location of the key at the end of `path` (or of the closest ancestor found).
fn locate(root: &serde_saphyr::Spanned<Node>, path: &[Seg]) -> Loc {
    let mut node = root;
    let mut loc = Loc::from_saphyr(&root.referenced);
    for seg in path {
        match (&node.value, seg) {
            (Node::Map(entries), Seg::Key(k)) => {
                match entries.iter().find(|(key, _)| &key.value == k) {
                    Some((key, v)) => {
                        loc = Loc::from_saphyr(&key.referenced);
                        node = v;
                    }
                    None => return loc,
                }
            }
            (Node::Seq(items), Seg::Index(i)) => match items.get(*i) {
                Some(v) => {
                    loc = Loc::from_saphyr(&v.referenced);
                    node = v;
                }
                None => return loc,
            },
            _ => return loc,
        }
    }
    loc
}

/// Allowed keys of the object the schema describes at `path` (empty when unknown).
fn keys_at(schema: &Value, path: &[Seg]) -> Vec<String> {
    fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
        let mut v = v;
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/$defs/")
                    .and_then(|n| root.get("$defs")?.get(n))
                {
                    Some(t) => v = t,
                    None => return v,
                },
                None => return v,
            }
        }
        v
    }
    // Every schema alternative reachable at this node (anyOf/oneOf/allOf flattened).
    fn alternatives<'a>(root: &'a Value, v: &'a Value, out: &mut Vec<&'a Value>) {
        let v = resolve(root, v);
        let mut any = false;
        for k in ["anyOf", "oneOf", "allOf"] {
            if let Some(list) = v.get(k).and_then(Value::as_array) {
                any = true;
                for x in list {
                    alternatives(root, x, out);
                }
            }
        }
        if !any || v.get("properties").is_some() {
            out.push(v);
        }
    }
    let mut current = vec![schema];
    for seg in path {
        let mut next = Vec::new();
        for node in current {
            let mut alts = Vec::new();
            alternatives(schema, node, &mut alts);
            for a in alts {
                match seg {
                    Seg::Key(k) => {
                        if let Some(p) = a.get("properties").and_then(|p| p.get(k)) {
                            next.push(p);
                        } else if let Some(p) =
                            a.get("additionalProperties").filter(|p| p.is_object())
                        {
                            next.push(p);
                        }
                    }
                    Seg::Index(_) => {
                        if let Some(p) = a.get("items") {
                            next.push(p);
                        }
                    }
                }
            }
        }
        current = next;
    }
    let mut keys = Vec::new();
    for node in current {
        let mut alts = Vec::new();
        alternatives(schema, node, &mut alts);
        for a in alts {
            if let Some(props) = a.get("properties").and_then(Value::as_object) {
                for k in props.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
    }
    keys
}

fn path_text(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Strip serde-saphyr's " at line L, column C" suffix; we print positions ourselves.
fn bare_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Parse `text` as a `T`, recording every problem in `diags`. Returns None when the
/// document could not be turned into a `T` at all; unknown keys are reported but do not
/// prevent the value from being returned (the caller checks `diags.has_errors()`).
pub fn parse<T: DeserializeOwned + schemars::JsonSchema>(
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    let tree: serde_saphyr::Spanned<Node> = match serde_saphyr::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let loc = e
                .location()
                .map(|l| Loc::from_saphyr(&l))
                .unwrap_or_default();
            let msg = bare_message(&e);
            let hint = if msg.contains("duplicate mapping key") {
                Some(
                    "each key may appear once in a mapping; remove or rename one of them"
                        .to_string(),
                )
            } else {
                Some(
                    "fix the YAML syntax at this position (check indentation, quotes and brackets)"
                        .to_string(),
                )
            };
            let code = if msg.contains("duplicate mapping key") {
                "duplicate-key"
            } else {
                "yaml-syntax"
            };
            diags.error(code, loc, msg, hint);
            return None;
        }
    };
    if matches!(tree.value, Node::Scalar) {
        diags.error(
            "invalid-value",
            Loc::from_saphyr(&tree.referenced),
            "the document is empty or not a mapping",
            Some("a workflow file starts with `id:`, `title:` and `stages:`; see docs/workflow-format.md".into()),
        );
        return None;
    }
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let mut ignored: Vec<Vec<Seg>> = Vec::new();
    let result: Result<T, _> = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_ignored::deserialize(de, |p| {
            if let Some(segs) = segments(&p) {
                ignored.push(segs)
            }
        })
    });
    for path in &ignored {
        let Some(Seg::Key(key)) = path.last() else {
            continue;
        };
        let parent = &path[..path.len() - 1];
        let allowed = keys_at(&schema, parent);
        let where_ = if parent.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{}`", path_text(parent))
        };
        diags.error(
            "unknown-key",
            locate(&tree, path),
            format!("unknown key `{key}` {where_}"),
            Some(suggest(key, allowed.iter().map(String::as_str))),
        );
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = e
                .location()
                .map(|l| Loc::from_saphyr(&l))
                .unwrap_or_default();
            let msg = bare_message(&e);
            let (code, hint) = classify(&msg);
            diags.error(code, loc, msg, hint);
            None
        }
    }
}

/// Pick a code and a hint for a serde error message.
fn classify(msg: &str) -> (&'static str, Option<String>) {
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
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
        return ("unknown-value", Some(hint));
    }
    if msg.starts_with("missing field") {
        return (
            "missing-key",
            Some(
                "add the key; docs/workflow-format.md lists the required keys of each section"
                    .into(),
            ),
        );
    }
    (
        "invalid-value",
        Some("the value has the wrong type or format here; see docs/workflow-format.md".into()),
    )
}

#[cfg(test)]
mod tests {
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
        id: crate::diagnostic::Sp<String>,
        items: Vec<crate::diagnostic::Sp<Inner>>,
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
            shown[1]
                .starts_with("error[unknown-key]: t.yaml:6:5: unknown key `colour` in `items[1]`")
        );
        assert!(
            shown[2].starts_with(
                "error[unknown-key]: t.yaml:7:1: unknown key `extra` at the top level"
            )
        );
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
}
