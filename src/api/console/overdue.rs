//! The overdue board (`/console/overdue`): every open task past its deadline in running
//! rounds, grouped by assignee, with how far its escalation chain has climbed.

use super::auth::ConsoleUser;
use super::labels::assignee_kind_zh;
use super::ui::{LINK_DAYS, Ui};
use crate::access::Grant;
use crate::api::State;
use crate::core::state::{AssigneeKind, RoundStatus, TaskState, TimerState};
use crate::core::timefmt::provisional_mark;
use crate::engine::from_ms;
use crate::store::TimerRow;
use axum::extract::State as Shared;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use std::collections::BTreeMap;

pub(super) async fn overdue_page(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    let store = state.engine.store();
    let now_ms = ui.now().timestamp_millis();
    let rounds = match store.rounds().await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    // (kind, id) -> (name, items with their due instant for sorting)
    let mut groups: Groups<serde_json::Value> = BTreeMap::new();
    let mut total = 0usize;
    for round in rounds.iter().filter(|r| r.status == RoundStatus::Running) {
        let tasks = match store.tasks(round.id).await {
            Ok(t) => t,
            Err(e) => return ui.store_fail(e),
        };
        let title = ui.round_title(round);
        for t in tasks {
            let Some(due) = t.due_at else { continue };
            if t.state != TaskState::Open || due >= now_ms {
                continue;
            }
            let timers = match store
                .timers_with_prefix(&format!("{}/{}/escalation", round.tag, t.key))
                .await
            {
                Ok(x) => x,
                Err(e) => return ui.store_fail(e),
            };
            let ladder = Ladder::of(&timers);
            let next = ladder
                .next
                .map(|(name, at)| format!("{name} {}", ui.at(at)));
            total += 1;
            let item = json!({
                "id": t.id, "title": t.title, "round_id": round.id,
                "round": format!("{title}（{}）", round.start_date),
                "due": format!("{}{}", ui.at(due), provisional_mark(t.provisional)), "days_text": ui.overdue_text(&t).unwrap_or_default(),
                "fired": ladder.fired, "steps": ladder.steps, "reached": ladder.reached, "next": next,
            });
            groups
                .entry((t.assignee_kind, t.assignee_id.clone()))
                .or_insert_with(|| (t.assignee_name.clone(), Vec::new()))
                .1
                .push((due, item));
        }
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

/// How far a task's escalation chain has climbed, from its escalation timers (ordered by
/// due instant); cancelled rungs do not count.
#[derive(Debug, PartialEq, Eq)]
struct Ladder {
    /// Rungs in the chain.
    steps: usize,
    /// Rungs that fired.
    fired: usize,
    /// Whom the last fired rung reached.
    reached: Option<String>,
    /// Whom the next pending rung will reach (empty when its payload does not say), and when.
    next: Option<(String, i64)>,
}

impl Ladder {
    fn of(timers: &[TimerRow]) -> Ladder {
        let rungs: Vec<_> = timers
            .iter()
            .filter(|x| x.state != TimerState::Cancelled)
            .collect();
        let fired: Vec<_> = rungs
            .iter()
            .filter(|x| x.state == TimerState::Fired)
            .collect();
        Ladder {
            steps: rungs.len(),
            fired: fired.len(),
            reached: fired.last().and_then(|x| recipient_name(x)),
            next: rungs
                .iter()
                .find(|x| x.state == TimerState::Pending)
                .map(|x| (recipient_name(x).unwrap_or_default(), x.due_at)),
        }
    }
}

fn recipient_name(t: &TimerRow) -> Option<String> {
    t.payload.recipient.as_ref().map(|p| p.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::directory::Party;
    use crate::core::state::TimerKind;
    use crate::store::TimerPayload;

    fn rung(due_at: i64, state: TimerState, name: &str) -> TimerRow {
        TimerRow {
            id: due_at,
            key: format!("m1/t@a/escalation/{due_at}"),
            round_id: Some(1),
            task_id: Some(1),
            kind: TimerKind::Escalation,
            due_at,
            payload: TimerPayload {
                recipient: Some(Party {
                    kind: AssigneeKind::Role,
                    id: name.into(),
                    name: name.into(),
                }),
                ..Default::default()
            },
            state,
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            fired_at: None,
        }
    }

    #[test]
    fn the_ladder_counts_fired_rungs_names_the_last_reached_and_the_next_pending() {
        let timers = [
            rung(1, TimerState::Fired, "书记"),
            rung(2, TimerState::Cancelled, "旧角色"),
            rung(3, TimerState::Fired, "组织委员"),
            rung(4, TimerState::Pending, "街道党工委"),
            rung(5, TimerState::Pending, "区委组织部"),
        ];
        assert_eq!(
            Ladder::of(&timers),
            Ladder {
                steps: 4,
                fired: 2,
                reached: Some("组织委员".into()),
                next: Some(("街道党工委".into(), 4)),
            }
        );
    }

    #[test]
    fn a_ladder_without_timers_or_names_reports_nothing_reached() {
        assert_eq!(
            Ladder::of(&[]),
            Ladder {
                steps: 0,
                fired: 0,
                reached: None,
                next: None
            }
        );
        let mut nameless = rung(7, TimerState::Pending, "x");
        nameless.payload = TimerPayload::default();
        assert_eq!(Ladder::of(&[nameless]).next, Some((String::new(), 7)));
    }

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
