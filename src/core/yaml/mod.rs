//! Typed YAML loading that reports *every* structural problem with its position.
//!
//! serde stops at the first hard error, so unknown keys are not rejected by serde
//! (`deny_unknown_fields` would stop at the first one); they are collected with
//! `serde_ignored` and located afterwards in a span tree of the same text. The JSON
//! schema of the target type supplies the allowed keys for "did you mean" hints.

use crate::core::diagnostic::{Diagnostic, Diagnostics, Loc, did_you_mean, suggest};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A YAML node with positions: the shape of the document, used to locate keys named by a
/// path and to find the entry that holds a bad value.
#[derive(Debug)]
enum Node {
    Map(Vec<(serde_saphyr::Spanned<String>, serde_saphyr::Spanned<Node>)>),
    Seq(Vec<serde_saphyr::Spanned<Node>>),
    Scalar(String),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string()))
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar(String::new()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(String::new()))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar(String::new()))
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

/// How a node hangs off its parent.
#[derive(Debug, Clone)]
enum Attach {
    Root,
    /// The value of a mapping entry; the key's position and length in characters.
    Value {
        key: String,
        key_loc: Loc,
        key_len: u64,
    },
    /// An item of a list.
    Item,
}

/// One node of the document in pre-order, with what the repair loop needs.
#[derive(Debug)]
struct Flat {
    loc: Loc,
    kind: Kind,
    /// Scalar text.
    text: Option<String>,
    parent: Option<usize>,
    attach: Attach,
    /// Index of the last node of this node's subtree.
    last: usize,
    /// Keys of a mapping with their positions.
    keys: Vec<(String, Loc)>,
    /// Items of a list (node indices).
    items: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
    Scalar,
}

fn flatten(root: &serde_saphyr::Spanned<Node>) -> Vec<Flat> {
    fn walk(
        n: &serde_saphyr::Spanned<Node>,
        parent: Option<usize>,
        attach: Attach,
        out: &mut Vec<Flat>,
    ) -> usize {
        let me = out.len();
        out.push(Flat {
            loc: Loc::from_saphyr(&n.referenced),
            kind: match n.value {
                Node::Map(_) => Kind::Map,
                Node::Seq(_) => Kind::Seq,
                Node::Scalar(_) => Kind::Scalar,
            },
            text: match &n.value {
                Node::Scalar(t) => Some(t.clone()),
                _ => None,
            },
            parent,
            attach,
            last: me,
            keys: Vec::new(),
            items: Vec::new(),
        });
        match &n.value {
            Node::Map(entries) => {
                for (k, v) in entries {
                    let key_loc = Loc::from_saphyr(&k.referenced);
                    out[me].keys.push((k.value.clone(), key_loc));
                    let a = Attach::Value {
                        key: k.value.clone(),
                        key_loc,
                        key_len: k.referenced.span().len(),
                    };
                    walk(v, Some(me), a, out);
                }
            }
            Node::Seq(items) => {
                for v in items {
                    let i = walk(v, Some(me), Attach::Item, out);
                    out[me].items.push(i);
                }
            }
            Node::Scalar(_) => {}
        }
        out[me].last = out.len() - 1;
        me
    }
    let mut out = Vec::new();
    walk(root, None, Attach::Root, &mut out);
    out
}

/// An edit that takes an entry out of the text while keeping every other position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Patch {
    /// Rename a key to underscores (an unknown key, ignored; its value goes with it).
    Rename { line: u64, column: u64, len: u64 },
    /// Blank a block-list item: from its dash to the end of `line`, and lines up to `last`.
    Blank { line: u64, column: u64, last: u64 },
    /// Add `key: value` after the end of the text: a stand-in for a required top-level key
    /// whose value was taken out, so that the rest of the document can still be checked.
    Append { key: String, value: &'static str },
}

fn apply(text: &str, patches: &[Patch]) -> String {
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
fn stand_in(schema: &Value, key: &str) -> Option<&'static str> {
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
struct Repair<'a> {
    text: &'a str,
    lines: Vec<&'a str>,
    flat: Vec<Flat>,
    patches: Vec<Patch>,
    removed: BTreeSet<usize>,
    /// Keys renamed away, per mapping.
    renamed: BTreeMap<usize, BTreeSet<String>>,
    renamed_locs: BTreeSet<Loc>,
    gaps: Gaps,
}

impl Repair<'_> {
    /// `[start, end)` of a node's subtree.
    fn extent(&self, i: usize) -> (Loc, Option<Loc>) {
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
    fn map_with_key_at(&self, loc: Loc) -> Option<usize> {
        self.flat
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keys.iter().any(|(_, k)| *k == loc))
            .map(|(i, _)| i)
            .next_back()
    }

    /// The deepest node starting at `loc`, else the deepest node whose extent holds it.
    fn node_at(&self, loc: Loc) -> Option<usize> {
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
    fn remove(&mut self, i: usize) -> bool {
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

/// The original error behind alias and snippet wrappers.
fn original(e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    let mut e = e;
    loop {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            _ => return e,
        }
    }
}

fn error_loc(e: &serde_saphyr::Error) -> Loc {
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
fn syntax_problem(e: &serde_saphyr::Error) -> (&'static str, Loc, String, String) {
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
fn value_problem(e: &serde_saphyr::Error, flat: &[Flat]) -> (&'static str, String, Option<String>) {
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

/// Path segments of the node whose key is at `key_loc` (for "in `stages[0].tasks[1]`").
fn path_of_key(flat: &[Flat], key_loc: Loc) -> Option<Vec<Seg>> {
    let mut i = flat
        .iter()
        .position(|f| matches!(&f.attach, Attach::Value { key_loc: k, .. } if *k == key_loc))?;
    let mut segs = Vec::new();
    loop {
        let f = &flat[i];
        let Some(p) = f.parent else { break };
        match &f.attach {
            Attach::Value { key, .. } => segs.push(Seg::Key(key.clone())),
            Attach::Item => {
                let idx = flat[p].items.iter().position(|&j| j == i).unwrap_or(0);
                segs.push(Seg::Index(idx));
            }
            Attach::Root => {}
        }
        i = p;
    }
    segs.reverse();
    Some(segs)
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
            shown[1]
                .starts_with("error[unknown-key]: t.yaml:6:5: unknown key `colour` in `items[1]`")
        );
        assert!(
            shown[2].starts_with(
                "error[unknown-key]: t.yaml:7:1: unknown key `extra` at the top level"
            )
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
        let text = "id: a\nitems:\n  - days: 1\n  - title: y\n    days: many\n  - title: z\n    colour: red\n";
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
            all[2]
                .starts_with("error[unknown-key]: t.yaml:7:5: unknown key `colour` in `items[2]`"),
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
}
