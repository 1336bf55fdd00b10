//! Reading around bad values: the edits that take an entry out of the text while keeping
//! every other position, and the state of the repair loop, which records the [`Gaps`].

use super::spans::{Attach, Flat, Kind};
use super::{Gaps, Region};
use crate::core::diagnostic::Loc;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// An edit that takes an entry out of the text while keeping every other position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Patch {
    /// Rename a key to underscores (an unknown key, ignored; its value goes with it).
    Rename { line: u64, column: u64, len: u64 },
    /// Blank a block-list item: from its dash to the end of `line`, and lines up to `last`.
    Blank { line: u64, column: u64, last: u64 },
    /// Add `key: value` after the end of the text: a stand-in for a required top-level key
    /// whose value was taken out, so that the rest of the document can still be checked.
    Append { key: String, value: &'static str },
}

pub(super) fn apply(text: &str, patches: &[Patch]) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i as u64 + 1;
        let mut chars: Vec<char> = line.chars().collect();
        let body = chars
            .iter()
            .rposition(|c| *c != '\n' && *c != '\r')
            .map_or(0, |p| p + 1);
        for p in patches {
            match *p {
                Patch::Rename { line, column, len } if line == n => {
                    let from = column.saturating_sub(1) as usize;
                    for c in chars.iter_mut().skip(from).take(len as usize) {
                        *c = '_';
                    }
                }
                Patch::Blank { line, column, last } if (line..=last).contains(&n) => {
                    let from = if n == line {
                        column.saturating_sub(1) as usize
                    } else {
                        0
                    };
                    for c in chars.iter_mut().take(body).skip(from) {
                        *c = ' ';
                    }
                }
                _ => {}
            }
        }
        out.extend(chars);
    }
    for p in patches {
        if let Patch::Append { key, value } = p {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{key}: {value}\n"));
        }
    }
    out
}

/// A value of the type the schema gives for top-level `key` that reads as the type and means
/// nothing (for an [`Patch::Append`] stand-in), None for types without one.
pub(super) fn stand_in(schema: &Value, key: &str) -> Option<&'static str> {
    let mut v = schema.get("properties")?.get(key)?;
    for _ in 0..8 {
        match v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            Some(name) => v = schema.get("$defs")?.get(name)?,
            None => break,
        }
    }
    let format = v.get("format").and_then(Value::as_str);
    match (v.get("type").and_then(Value::as_str), format) {
        (Some("string"), Some("date")) => Some("1970-01-01"),
        (Some("string"), None) => Some("\"\""),
        (Some("array"), _) => Some("[]"),
        (Some("integer"), _) => Some("0"),
        (Some("boolean"), _) => Some("false"),
        _ => None,
    }
}

/// Indentation (leading spaces) of a line, None for blank and comment-only lines.
fn indent(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    if trimmed.trim().is_empty() || trimmed.starts_with('#') {
        None
    } else {
        Some(line.len() - trimmed.len())
    }
}

/// The state of the repair loop: what was left out so far.
pub(super) struct Repair<'a> {
    pub(super) text: &'a str,
    pub(super) lines: Vec<&'a str>,
    pub(super) flat: Vec<Flat>,
    pub(super) patches: Vec<Patch>,
    pub(super) removed: BTreeSet<usize>,
    /// Keys renamed away, per mapping.
    pub(super) renamed: BTreeMap<usize, BTreeSet<String>>,
    pub(super) renamed_locs: BTreeSet<Loc>,
    pub(super) gaps: Gaps,
}

impl Repair<'_> {
    /// `[start, end)` of a node's subtree.
    pub(super) fn extent(&self, i: usize) -> (Loc, Option<Loc>) {
        let end = self.flat.get(self.flat[i].last + 1).map(|f| f.loc);
        // A mapping's keys come before its first value: start at the first key.
        let start = match self.flat[i].keys.first() {
            Some((_, k)) if *k < self.flat[i].loc => *k,
            _ => self.flat[i].loc,
        };
        (start, end)
    }

    /// Direct children of node `i`.
    fn children(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut j = i + 1;
        while j <= self.flat[i].last {
            out.push(j);
            j = self.flat[j].last + 1;
        }
        out
    }

    fn is_removed(&self, i: usize) -> bool {
        let mut at = Some(i);
        while let Some(x) = at {
            if self.removed.contains(&x) {
                return true;
            }
            at = self.flat[x].parent;
        }
        false
    }

    /// The mapping one of whose keys is at `loc`.
    pub(super) fn map_with_key_at(&self, loc: Loc) -> Option<usize> {
        self.flat
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keys.iter().any(|(_, k)| *k == loc))
            .map(|(i, _)| i)
            .next_back()
    }

    /// The deepest node starting at `loc`, else the deepest node whose extent holds it.
    pub(super) fn node_at(&self, loc: Loc) -> Option<usize> {
        if let Some(i) = (0..self.flat.len())
            .rev()
            .find(|&i| self.flat[i].loc == loc)
        {
            return Some(i);
        }
        (0..self.flat.len()).rev().find(|&i| {
            let (a, b) = self.extent(i);
            loc >= a && b.is_none_or(|b| loc < b)
        })
    }

    /// Collect the `id:` values inside a subtree.
    fn collect_ids(&mut self, i: usize) {
        for j in i..=self.flat[i].last {
            if let (Some(p), Attach::Value { key, .. }) =
                (self.flat[j].parent, &self.flat[j].attach)
                && key == "id"
                && self.flat[p].kind == Kind::Map
                && let Some(t) = &self.flat[j].text
            {
                self.gaps.ids.insert(t.clone());
            }
        }
    }

    /// Take node `i` out of the text: rename its key, or blank its list item; when neither
    /// is possible (the root, a flow list, the last item), take its parent out. False when
    /// nothing can be taken out any more.
    pub(super) fn remove(&mut self, i: usize) -> bool {
        let mut i = i;
        loop {
            if self.is_removed(i) {
                match self.flat[i].parent {
                    Some(p) => {
                        i = p;
                        continue;
                    }
                    None => return false,
                }
            }
            let Some(parent) = self.flat[i].parent else {
                return false;
            };
            match self.flat[i].attach.clone() {
                Attach::Root => return false,
                Attach::Value {
                    key,
                    key_loc,
                    key_len,
                } => {
                    self.patches.push(Patch::Rename {
                        line: key_loc.line,
                        column: key_loc.column,
                        len: key_len.max(1),
                    });
                    self.renamed.entry(parent).or_default().insert(key);
                    self.renamed_locs.insert(key_loc);
                }
                Attach::Item => {
                    let others = self.flat[parent]
                        .items
                        .iter()
                        .any(|&j| j != i && !self.removed.contains(&j));
                    match self.dash(i) {
                        Some((line, column)) if others => {
                            let last = self.item_end(line, column);
                            self.patches.push(Patch::Blank { line, column, last });
                        }
                        _ => {
                            i = parent;
                            continue;
                        }
                    }
                }
            }
            self.removed.insert(i);
            self.collect_ids(i);
            let region = match self.flat[i].attach {
                // A top-level key: only the entry itself (the whole document would hide
                // everything else).
                Attach::Value { key_loc, .. } if parent == 0 => Region {
                    span: (key_loc, self.extent(i).1),
                    holes: Vec::new(),
                },
                // The mapping lacks a key: its own values may be reported for it, but not
                // what is nested in its other mappings and lists.
                Attach::Value { .. } => Region {
                    span: self.extent(parent),
                    holes: self
                        .children(parent)
                        .into_iter()
                        .filter(|&c| c != i && self.flat[c].kind != Kind::Scalar)
                        .map(|c| self.extent(c))
                        .collect(),
                },
                _ => Region {
                    span: self.extent(i),
                    holes: Vec::new(),
                },
            };
            self.gaps.regions.push(region);
            return true;
        }
    }

    /// Line and column of the `-` that introduces list item `i` (block lists only).
    fn dash(&self, i: usize) -> Option<(u64, u64)> {
        let loc = self.flat[i].loc;
        let line = self.lines.get(loc.line.checked_sub(1)? as usize)?;
        let before: Vec<char> = line
            .chars()
            .take(loc.column.saturating_sub(1) as usize)
            .collect();
        let end = before.iter().rposition(|c| *c != ' ')?;
        (before[end] == '-').then_some((loc.line, end as u64 + 1))
    }

    /// The last line of the block-list item whose dash is at `line`:`column`.
    fn item_end(&self, line: u64, column: u64) -> u64 {
        let mut last = line;
        for (n, l) in self.lines.iter().enumerate().skip(line as usize) {
            match indent(l) {
                Some(ind) if (ind as u64) < column => break,
                _ => last = n as u64 + 1,
            }
        }
        last
    }
}
