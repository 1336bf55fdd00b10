//! The overdue board (`/console/overdue`): every open task past its deadline in running
//! rounds, grouped by assignee, with how far its escalation chain has climbed.

use super::auth::ConsoleUser;
use super::filters::{self, States};
use super::labels::{assignee_kind_zh, overdue_text};
use super::ui::{LINK_DAYS, Ui};
use crate::access::Grant;
use crate::api::State;
use crate::core::state::AssigneeKind;
use crate::core::timefmt::provisional_mark;
use crate::engine::from_ms;
use crate::report::Find;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;

pub(super) async fn overdue_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    q: Result<Query<Find>, QueryRejection>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let find = match filters::read(&ui, q) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let items = match crate::api::find::overdue(&state, &find).await {
        Ok(x) => x,
        Err(e) => return ui.store_fail(e),
    };
    // (kind, id) -> (name, items with their due instant for sorting)
    let mut groups: Groups<serde_json::Value> = BTreeMap::new();
    let total = items.len();
    for (t, e) in items {
        let due = t.due_at.unwrap_or_default();
        let next = e
            .next
            .map(|name| format!("{name} {}", ui.at(e.next_at.unwrap_or_default())));
        let item = json!({
            "id": t.id, "title": t.title, "round_id": t.round_id,
            "round": format!("{}（{}）", t.workflow, t.round_start),
            "due": format!("{}{}", ui.at(due), provisional_mark(t.provisional)),
            "days_text": overdue_text(t.state, due, ui.now(), ui.tz()).unwrap_or_default(),
            "fired": e.fired, "steps": e.steps, "reached": e.reached, "next": next,
        });
        groups
            .entry((t.assignee_kind, t.assignee_id.clone()))
            .or_insert_with(|| (t.assignee.clone(), Vec::new()))
            .1
            .push((due, item));
    }
    let link_expires = ui.now().timestamp() + LINK_DAYS * 86_400;
    let mut out: Vec<serde_json::Value> = Vec::new();
    for (kind, id, name, items) in ordered(groups) {
        let unit = (kind == AssigneeKind::Unit)
            .then(|| ui.catalog.directory.unit(&id))
            .flatten();
        // Only administrators get the unit pages' links, each one audited.
        let page = match unit {
            Some(_) => {
                let grant = Grant::Unit { unit: id.clone() };
                ui.mint_link(&grant, link_expires).await
            }
            None => None,
        };
        out.push(json!({
            "id": id, "name": name, "kind": assignee_kind_zh(kind, unit.map(|u| u.kind)),
            "page": page, "items": items, "secretary": ui.secretary(kind, &id),
        }));
    }
    let groups = out;
    ui.page(
        StatusCode::OK,
        "overdue.html",
        json!({
            "active": "overdue", "groups": groups, "total": total, "now": ui.at_utc(ui.now()),
            "filters": filters::form(&ui, &find, "/console/overdue", States::None, "overdue").await,
            "link_expires": ui.at_utc(from_ms(link_expires * 1000)),
        }),
    )
}

/// Overdue tasks by assignee `(kind, id)`: its name and `(deadline, item)` pairs.
type Groups<T> = BTreeMap<(AssigneeKind, String), (String, Vec<(i64, T)>)>;

/// The board's order: the assignees with the most overdue tasks first (then by name), and
/// each one's tasks by deadline. Gives `(kind, id, name, items)`.
fn ordered<T>(groups: Groups<T>) -> Vec<(AssigneeKind, String, String, Vec<T>)> {
    let mut groups: Vec<_> = groups
        .into_iter()
        .map(|((kind, id), (name, mut items))| {
            items.sort_by_key(|(due, _)| *due);
            let items: Vec<T> = items.into_iter().map(|(_, v)| v).collect();
            (kind, id, name, items)
        })
        .collect();
    groups.sort_by(|a, b| b.3.len().cmp(&a.3.len()).then_with(|| a.2.cmp(&b.2)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_puts_the_assignee_with_most_overdue_first_then_by_name_and_tasks_by_deadline() {
        let mut groups: Groups<&str> = BTreeMap::new();
        let key = |id: &str| (AssigneeKind::Unit, id.to_string());
        groups.insert(key("b"), ("乙社区".into(), vec![(5, "b-late")]));
        groups.insert(
            key("a"),
            ("甲社区".into(), vec![(9, "a-later"), (2, "a-early")]),
        );
        groups.insert(key("c"), ("丙社区".into(), vec![(1, "c")]));
        let order: Vec<(String, Vec<&str>)> = ordered(groups)
            .into_iter()
            .map(|(_, _, name, items)| (name, items))
            .collect();
        assert_eq!(
            order,
            [
                ("甲社区".to_string(), vec!["a-early", "a-later"]),
                ("丙社区".to_string(), vec!["c"]),
                ("乙社区".to_string(), vec!["b-late"]),
            ]
        );
    }
}
