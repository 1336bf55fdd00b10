//! Typed YAML loading that reports *every* structural problem with its position.
//!
//! serde stops at the first hard error, so unknown keys are not rejected by serde
//! (`deny_unknown_fields` would stop at the first one); they are collected with
//! `serde_ignored` and located afterwards in a span tree of the same text. The JSON
//! schema of the target type supplies the allowed keys for "did you mean" hints.

mod messages;
mod repair;
mod spans;
#[cfg(test)]
mod tests;

use crate::core::diagnostic::{Diagnostic, Diagnostics, Loc, suggest};
use messages::{error_loc, original, syntax_problem, value_problem};
use repair::{Patch, Repair, apply, stand_in};
use serde::de::DeserializeOwned;
use serde_json::Value;
use spans::{Kind, Node, Seg, flatten, keys_at, locate, path_of_key, path_text, segments};
use std::collections::{BTreeMap, BTreeSet};

/// Where parsing had to leave a bad value out, so that checks run afterwards on the partial
/// value can drop the problems that only follow from the gap.
#[derive(Debug, Clone, Default)]
pub struct Gaps {
    /// Where problems may follow from a gap: `[start, end)` (`end` None: to the end of the
    /// file) minus holes of the same form. A mapping that lost an entry is such a region,
    /// minus its other nested mappings and lists; a list item left out is one without holes.
    regions: Vec<Region>,
    /// `id:` values inside the entries left out: references to them are not "unknown".
    ids: BTreeSet<String>,
}

impl Gaps {
    /// True when nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// True when `d` may only be a consequence of a gap: it lies in a mapping or list that
    /// lost an entry, or it names an id that was left out as unknown.
    pub fn covers(&self, d: &Diagnostic) -> bool {
        let within = |(a, b): &Span, loc: Loc| loc >= *a && b.is_none_or(|b| loc < b);
        let inside = self
            .regions
            .iter()
            .any(|r| within(&r.span, d.loc) && !r.holes.iter().any(|h| within(h, d.loc)));
        let names_gap = d.code == "unknown-reference"
            && self
                .ids
                .iter()
                .any(|id| d.message.contains(&format!("`{id}`")));
        inside || names_gap
    }
}

/// `[start, end)` in a document; `end` None: to the end.
type Span = (Loc, Option<Loc>);

/// A part of the document where problems may follow from a gap.
#[derive(Debug, Clone)]
struct Region {
    span: Span,
    holes: Vec<Span>,
}

/// The most attempts at reading around bad values; each one is a full parse.
const MAX_REPAIRS: usize = 50;

/// Options for both passes: no snippets (we print positions ourselves).
fn options(duplicates: serde_saphyr::DuplicateKeyPolicy) -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.duplicate_keys = duplicates;
    o.with_snippet = false;
    o
}

fn parse_tree(text: &str) -> Result<serde_saphyr::Spanned<Node>, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(
        text,
        options(serde_saphyr::DuplicateKeyPolicy::PassThrough),
    )
}

/// Parse `text` as a `T`, recording every problem in `diags`. Returns None when the
/// document could not be turned into a complete `T`; unknown keys are reported but do not
/// prevent the value from being returned (the caller checks `diags.has_errors()`).
pub fn parse<T: DeserializeOwned + schemars::JsonSchema>(
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    let (value, gaps) = parse_partial(text, diags);
    value.filter(|_| gaps.is_empty())
}

/// Parse `text` as a `T`, reporting every problem at once: unknown and duplicate keys, and
/// every value that does not fit its type. A bad value does not stop the reading: its entry
/// (or, when the entry is required, the smallest enclosing entry that may be left out) is
/// left out and the rest is read again, so the returned value may be partial; [`Gaps`] says
/// where, so that checks run on it can drop what only follows from the gaps.
pub fn parse_partial<T: DeserializeOwned + schemars::JsonSchema>(
    text: &str,
    diags: &mut Diagnostics,
) -> (Option<T>, Gaps) {
    let tree = match parse_tree(text) {
        Ok(t) => t,
        Err(e) => {
            let (code, loc, msg, hint) = syntax_problem(&e);
            diags.error(code, loc, msg, Some(hint));
            return (None, Gaps::default());
        }
    };
    if !matches!(tree.value, Node::Map(_)) {
        diags.error(
            "invalid-value",
            Loc::from_saphyr(&tree.referenced),
            "the document is empty or not a mapping",
            Some("write the file as `key: value` lines (a workflow starts with `id:`, `title:` and `stages:`); see docs/workflow-format.md".into()),
        );
        return (None, Gaps::default());
    }
    let flat = flatten(&tree);
    // Duplicate keys: reported here, the first one is read.
    for f in &flat {
        let mut seen: BTreeMap<&str, Loc> = BTreeMap::new();
        for (k, loc) in &f.keys {
            match seen.get(k.as_str()) {
                Some(first) => diags.error(
                    "duplicate-key",
                    *loc,
                    format!(
                        "key `{k}` appears twice in this mapping (first at line {})",
                        first.line
                    ),
                    Some("each key may appear once in a mapping; remove or rename one of them (the first one is read)".into()),
                ),
                None => {
                    seen.insert(k, *loc);
                }
            }
        }
    }
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let mut repair = Repair {
        text,
        lines: text.lines().collect(),
        flat,
        patches: Vec::new(),
        removed: BTreeSet::new(),
        renamed: BTreeMap::new(),
        renamed_locs: BTreeSet::new(),
        gaps: Gaps::default(),
    };
    // Where stand-ins go: the line after the text (see `apply`).
    let newlines = text.matches('\n').count() as u64;
    let end_of_text = Loc {
        line: if text.is_empty() || text.ends_with('\n') {
            newlines + 1
        } else {
            newlines + 2
        },
        column: 1,
    };
    let mut unknown: BTreeMap<Loc, (String, String, Vec<String>)> = BTreeMap::new();
    let mut reported: BTreeSet<(Loc, String)> = BTreeSet::new();
    for _ in 0..MAX_REPAIRS {
        let patched = apply(repair.text, &repair.patches);
        let patched_tree = if repair.patches.is_empty() {
            None
        } else {
            parse_tree(&patched).ok()
        };
        let mut ignored: Vec<Vec<Seg>> = Vec::new();
        let result: Result<T, _> = serde_saphyr::with_deserializer_from_str_with_options(
            &patched,
            options(serde_saphyr::DuplicateKeyPolicy::FirstWins),
            |de| {
                serde_ignored::deserialize(de, |p| {
                    if let Some(segs) = segments(&p) {
                        ignored.push(segs)
                    }
                })
            },
        );
        for path in &ignored {
            let Some(Seg::Key(key)) = path.last() else {
                continue;
            };
            let loc = locate(patched_tree.as_ref().unwrap_or(&tree), path);
            if repair.renamed_locs.contains(&loc) || unknown.contains_key(&loc) {
                continue;
            }
            // Name the place by the original document (list items may have been blanked).
            let parent = path_of_key(&repair.flat, loc)
                .map(|p| p[..p.len().saturating_sub(1)].to_vec())
                .unwrap_or_else(|| path[..path.len() - 1].to_vec());
            let where_ = if parent.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{}`", path_text(&parent))
            };
            let allowed = keys_at(&schema, &path[..path.len() - 1]);
            unknown.insert(loc, (key.clone(), where_, allowed));
        }
        let e = match result {
            Ok(v) => {
                report_unknown(diags, &unknown);
                return (Some(v), repair.gaps);
            }
            Err(e) => e,
        };
        let loc = error_loc(&e);
        let missing = match original(&e) {
            serde_saphyr::Error::SerdeMissingField { field, .. } => Some(*field),
            _ => None,
        };
        // The entry to take out, and where to report the problem.
        let (target, at) = match missing {
            Some(field) => {
                let map = if loc >= end_of_text {
                    Some(0) // the top level, whose last key is a stand-in
                } else {
                    repair
                        .map_with_key_at(loc)
                        .or_else(|| repair.node_at(loc))
                        .filter(|&m| repair.flat[m].kind == Kind::Map)
                };
                match map {
                    Some(m) => {
                        let start = repair.extent(m).0;
                        // A key we renamed away is "missing" only because of us.
                        let ours = repair.renamed.get(&m).is_some_and(|r| r.contains(field));
                        (Some(m), (!ours).then_some(start))
                    }
                    None => (None, Some(loc)),
                }
            }
            None => {
                let node = repair.map_with_key_at(loc).or_else(|| repair.node_at(loc));
                (node, Some(loc))
            }
        };
        if let Some(at) = at {
            let (code, msg, hint) = value_problem(&e, &repair.flat);
            if reported.insert((at, msg.clone())) {
                diags.error(code, at, msg, hint);
            }
        }
        // Past the end of the text: a problem of a stand-in itself; nothing more to learn.
        if loc >= end_of_text && missing.is_none() {
            break;
        }
        let stand_in_for = match (missing, target) {
            // A required top-level key that is missing or was taken out: add a stand-in
            // (block documents only) and read on.
            (Some(field), Some(0)) if repair.flat[0].loc.column == 1 => {
                stand_in(&schema, field).map(|v| (field, v))
            }
            _ => None,
        };
        let progressed = match (stand_in_for, target) {
            (Some((field, value)), _) => {
                let patch = Patch::Append {
                    key: field.to_string(),
                    value,
                };
                let fresh = !repair.patches.contains(&patch);
                if fresh {
                    repair.patches.push(patch);
                    repair.gaps.regions.push(Region {
                        span: (end_of_text, None),
                        holes: Vec::new(),
                    });
                }
                fresh
            }
            (None, Some(t)) => repair.remove(t),
            (None, None) => false,
        };
        if !progressed {
            break;
        }
    }
    report_unknown(diags, &unknown);
    (None, repair.gaps)
}

fn report_unknown(diags: &mut Diagnostics, unknown: &BTreeMap<Loc, (String, String, Vec<String>)>) {
    for (loc, (key, where_, allowed)) in unknown {
        diags.error(
            "unknown-key",
            *loc,
            format!("unknown key `{key}` {where_}"),
            Some(suggest(key, allowed.iter().map(String::as_str))),
        );
    }
}
