//! The directory: branches, reviewing departments, office roles and their contacts.
//!
//! Kept in `config/directory.yaml` and edited by administrators; workflows refer to its
//! groups and roles by id.

use crate::core::diagnostic::{Diagnostics, Sp, suggest};
use crate::core::state::AssigneeKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// The whole directory of one office.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Directory {
    /// The office that runs rounds.
    pub office: Office,
    /// Office-level roles (organization office, committee head, department above).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Branches and reviewing departments.
    #[serde(default)]
    pub units: Vec<Unit>,
    /// Named sets of units that tasks fan out to.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Unit positions by id, built on the first lookup: a county directory has thousands
    /// of units and every notification looks its recipient up.
    #[serde(skip)]
    #[schemars(skip)]
    unit_index: OnceLock<HashMap<String, usize>>,
}

/// The office (街道党工委 / 镇党委).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Office {
    /// Identifier.
    pub id: String,
    /// Name (Chinese).
    pub name: String,
}

/// A role such as the organization office; escalations and role tasks go to its contacts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Role {
    /// Identifier used in workflows.
    pub id: Sp<String>,
    /// Title (Chinese), e.g. 组织办.
    pub title: String,
    /// Who receives its messages.
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// A branch (村/社区党组织) or a reviewing department (纪委, 派出所 ...).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Unit {
    /// Identifier.
    pub id: Sp<String>,
    /// Name (Chinese).
    pub name: String,
    /// Branch or department.
    pub kind: UnitKind,
    /// Who receives its messages (for a branch: its secretary first).
    #[serde(default)]
    pub contacts: Vec<Contact>,
}

/// The kind of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A village or community party branch.
    Branch,
    /// A reviewing department.
    Department,
}

/// A named set of units: all of one kind, or a list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Group {
    /// Identifier used in `assignee: {group: id}`.
    pub id: Sp<String>,
    /// Title (Chinese).
    pub title: String,
    /// Every unit of this kind is a member.
    #[serde(default)]
    pub kind: Option<UnitKind>,
    /// Or: exactly these units.
    #[serde(default)]
    pub members: Option<Vec<Sp<String>>>,
}

/// A person or mailbox that receives messages.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Contact {
    /// Name (Chinese).
    pub name: String,
    /// Position, e.g. 书记.
    #[serde(default)]
    pub title: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone, for the console only.
    #[serde(default)]
    pub phone: Option<String>,
    /// Group-robot or generic webhooks.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
}

/// A webhook channel.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Webhook {
    /// Message format.
    pub kind: WebhookKind,
    /// Where to POST.
    pub url: String,
    /// Name of the environment variable holding the signing secret (DingTalk), never the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// Webhook message formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// Plain JSON POST.
    Generic,
    /// 企业微信 group robot.
    Wecom,
    /// 钉钉 group robot.
    Dingtalk,
    /// 飞书 group robot.
    Feishu,
}

/// Someone a planned task or timer is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// A unit or a role.
    pub kind: AssigneeKind,
    /// Unit or role id.
    pub id: String,
    /// Unit name or role title.
    pub name: String,
}

impl Directory {
    /// A directory built in code (the bench's synthetic offices).
    pub fn new(office: Office, roles: Vec<Role>, units: Vec<Unit>, groups: Vec<Group>) -> Self {
        Directory {
            office,
            roles,
            units,
            groups,
            unit_index: OnceLock::new(),
        }
    }

    /// Parse and check `directory.yaml`; every problem goes into `diags`.
    /// A directory with errors is still returned (as far as it could be read), so that
    /// read-only commands can use it; callers decide by `diags.has_errors()`.
    pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<Directory> {
        let (dir, gaps) = crate::core::yaml::parse_partial::<Directory>(text, diags);
        let dir = dir?;
        let before = diags.items().len();
        dir.check(diags);
        diags.retain_from(before, |d| !gaps.covers(d));
        Some(dir)
    }

    fn check(&self, diags: &mut Diagnostics) {
        let mut seen = HashSet::new();
        for r in &self.roles {
            if !seen.insert(r.id.value.clone()) {
                diags.error(
                    "duplicate-id",
                    r.id.loc,
                    format!("role id `{}` is used twice", r.id.value),
                    Some("ids must be unique across roles, units and groups".into()),
                );
            }
            if r.contacts.is_empty() {
                diags.warning(
                    "no-contact",
                    r.id.loc,
                    format!(
                        "role `{}` has no contacts: its messages reach nobody",
                        r.id.value
                    ),
                    Some("add a contact with an email or a webhook".into()),
                );
            }
        }
        for u in &self.units {
            if !seen.insert(u.id.value.clone()) {
                diags.error(
                    "duplicate-id",
                    u.id.loc,
                    format!("unit id `{}` is used twice", u.id.value),
                    Some("ids must be unique across roles, units and groups".into()),
                );
            }
        }
        let unit_ids: Vec<&str> = self.units.iter().map(|u| u.id.value.as_str()).collect();
        for g in &self.groups {
            if !seen.insert(g.id.value.clone()) {
                diags.error(
                    "duplicate-id",
                    g.id.loc,
                    format!("group id `{}` is used twice", g.id.value),
                    Some("ids must be unique across roles, units and groups".into()),
                );
            }
            match (&g.kind, &g.members) {
                (Some(_), Some(_)) | (None, None) => diags.error(
                    "invalid-value",
                    g.id.loc,
                    format!(
                        "group `{}` must have exactly one of `kind` and `members`",
                        g.id.value
                    ),
                    Some(
                        "`kind: branch` takes every branch; `members: [a, b]` takes a list".into(),
                    ),
                ),
                _ => {}
            }
            for m in g.members.iter().flatten() {
                if !unit_ids.contains(&m.value.as_str()) {
                    diags.error(
                        "unknown-reference",
                        m.loc,
                        format!("group `{}` lists unknown unit `{}`", g.id.value, m.value),
                        Some(suggest(&m.value, unit_ids.iter().copied())),
                    );
                }
            }
        }
    }

    /// The role with this id.
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id.value == id)
    }

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id.value == id)
    }

    /// The unit with this id.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        let index = self.unit_index.get_or_init(|| {
            let mut m = HashMap::with_capacity(self.units.len());
            for (i, u) in self.units.iter().enumerate() {
                m.entry(u.id.value.clone()).or_insert(i);
            }
            m
        });
        // `units` is public and may change after the first lookup (tests add units): an
        // index entry is trusted only if it still points at that id, else scan.
        match index.get(id).and_then(|&i| self.units.get(i)) {
            Some(u) if u.id.value == id => Some(u),
            _ => self.units.iter().find(|u| u.id.value == id),
        }
    }

    /// Members of a group, in directory order.
    pub fn members(&self, group: &Group) -> Vec<&Unit> {
        match (&group.kind, &group.members) {
            (Some(kind), _) => self.units.iter().filter(|u| u.kind == *kind).collect(),
            (None, Some(ids)) => ids.iter().filter_map(|id| self.unit(&id.value)).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Ids of all roles.
    pub fn role_ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.roles.iter().map(|r| r.id.value.as_str())
    }

    /// Ids of all groups.
    pub fn group_ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.groups.iter().map(|g| g.id.value.as_str())
    }

    /// Ids in `ids` that name no unit, each with a hint (a close id, or where units are
    /// listed: a county directory has too many to list them all).
    pub fn unknown_units(&self, ids: &[String]) -> Vec<(String, String)> {
        ids.iter()
            .filter(|id| self.unit(id).is_none())
            .map(|id| {
                let close =
                    crate::core::diagnostic::did_you_mean(id, self.units.iter().map(|u| u.id.value.as_str()));
                let hint = match close {
                    Some(d) => d,
                    None => format!(
                        "no unit id is close; the {} units are listed under `units:` in the directory file",
                        self.units.len()
                    ),
                };
                (id.clone(), hint)
            })
            .collect()
    }

    /// The units a round limited to `listed` runs with: the listed ones and, unless
    /// `only_listed`, every department, so that tasks for the reviewing departments (joint
    /// review, opinions) still reach them when only some branches take part. Role tasks
    /// never depend on this list. Unknown ids are the caller's to reject
    /// ([`unknown_units`](Self::unknown_units)).
    pub fn round_units(&self, listed: &[String], only_listed: bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let departments = self
            .units
            .iter()
            .filter(|u| !only_listed && u.kind == UnitKind::Department)
            .map(|u| &u.id.value);
        for id in listed.iter().chain(departments) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    /// A role as a party.
    pub fn role_party(&self, id: &str) -> Party {
        Party {
            kind: AssigneeKind::Role,
            id: id.to_string(),
            name: self
                .role(id)
                .map(|r| r.title.clone())
                .unwrap_or_else(|| id.to_string()),
        }
    }
}

impl Unit {
    /// This unit as a party.
    pub fn party(&self) -> Party {
        Party {
            kind: AssigneeKind::Unit,
            id: self.id.value.clone(),
            name: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: &str, name: &str) -> Unit {
        Unit {
            id: Sp::bare(id.into()),
            name: name.into(),
            kind: UnitKind::Branch,
            contacts: vec![],
        }
    }

    fn office() -> Office {
        Office {
            id: "o".into(),
            name: "街道".into(),
        }
    }

    #[test]
    fn unit_lookup_finds_every_unit_and_the_first_of_a_duplicate_id() {
        let d = Directory::new(
            office(),
            vec![],
            vec![unit("a", "甲"), unit("b", "乙"), unit("a", "重复")],
            vec![],
        );
        assert_eq!(d.unit("b").map(|u| u.name.as_str()), Some("乙"));
        assert_eq!(d.unit("a").map(|u| u.name.as_str()), Some("甲"));
        assert!(d.unit("c").is_none());
    }

    #[test]
    fn round_units_keep_every_department_unless_only_the_listed_ones_are_asked_for() {
        let mut dept = unit("jiwei", "纪委");
        dept.kind = UnitKind::Department;
        let d = Directory::new(
            office(),
            vec![],
            vec![unit("a", "甲"), unit("b", "乙"), dept],
            vec![],
        );
        let listed = vec!["a".to_string()];
        assert_eq!(d.round_units(&listed, false), ["a", "jiwei"]);
        assert_eq!(d.round_units(&listed, true), ["a"]);
        let both = vec!["jiwei".to_string(), "a".to_string()];
        assert_eq!(d.round_units(&both, false), ["jiwei", "a"]);
    }

    #[test]
    fn unknown_unit_ids_are_named_with_the_closest_known_id() {
        let d = Directory::new(office(), vec![], vec![unit("dongguan", "东关")], vec![]);
        let bad = d.unknown_units(&["dongguan".into(), "dongguang".into(), "zzz".into()]);
        assert_eq!(bad.len(), 2);
        assert_eq!(
            bad[0],
            ("dongguang".into(), "did you mean `dongguan`?".into())
        );
        assert!(bad[1].1.contains("1 units are listed"), "{:?}", bad[1]);
    }

    #[test]
    fn unit_lookup_sees_units_changed_after_the_index_was_built() {
        let mut d = Directory::new(
            office(),
            vec![],
            vec![unit("a", "甲"), unit("b", "乙")],
            vec![],
        );
        assert!(d.unit("a").is_some());
        d.units.remove(0);
        d.units.push(unit("c", "丙"));
        assert!(d.unit("a").is_none(), "removed unit still found");
        assert_eq!(d.unit("b").map(|u| u.name.as_str()), Some("乙"));
        assert_eq!(d.unit("c").map(|u| u.name.as_str()), Some("丙"));
    }
}
