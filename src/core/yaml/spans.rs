//! The span tree: the document's shape with positions, to locate a key named by a path,
//! to name the place of a node, and to find the allowed keys there in the JSON schema.

use crate::core::diagnostic::Loc;
use serde_json::Value;
use std::fmt;

/// A YAML node with positions: the shape of the document, used to locate keys named by a
/// path and to find the entry that holds a bad value.
#[derive(Debug)]
pub(super) enum Node {
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
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// The marker serde-saphyr uses internally for `Spanned`; paths through it are not user keys.
const SPANNED_MARKER: &str = "__serde_saphyr_private_spanned";

/// Turns a serde_ignored path into user-visible segments, or None for internal paths.
pub(super) fn segments(path: &serde_ignored::Path) -> Option<Vec<Seg>> {
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
pub(super) fn locate(root: &serde_saphyr::Spanned<Node>, path: &[Seg]) -> Loc {
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
pub(super) fn keys_at(schema: &Value, path: &[Seg]) -> Vec<String> {
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

pub(super) fn path_text(path: &[Seg]) -> String {
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

/// How a node hangs off its parent.
#[derive(Debug, Clone)]
pub(super) enum Attach {
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
pub(super) struct Flat {
    pub(super) loc: Loc,
    pub(super) kind: Kind,
    /// Scalar text.
    pub(super) text: Option<String>,
    pub(super) parent: Option<usize>,
    pub(super) attach: Attach,
    /// Index of the last node of this node's subtree.
    pub(super) last: usize,
    /// Keys of a mapping with their positions.
    pub(super) keys: Vec<(String, Loc)>,
    /// Items of a list (node indices).
    pub(super) items: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Map,
    Seq,
    Scalar,
}

pub(super) fn flatten(root: &serde_saphyr::Spanned<Node>) -> Vec<Flat> {
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

/// Path segments of the node whose key is at `key_loc` (for "in `stages[0].tasks[1]`").
pub(super) fn path_of_key(flat: &[Flat], key_loc: Loc) -> Option<Vec<Seg>> {
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
