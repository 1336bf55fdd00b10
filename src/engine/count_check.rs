//! Counting rules act on their check day (#16 item 4): for every rule of a loaded workflow,
//! one durable timer per year in the timer table (`counts:WORKFLOW:RULE:YEAR`, 09:00 local
//! on the rule's `check_on`, in the workflow's time zone). Several daemons and restarts
//! write one row (the key) and the claim fires it once. Firing it checks the rule over the
//! pool (`core::counts`, read by the shell like a kickoff's people), sends the office one
//! list of everyone short and each branch the list of its own, and schedules next year's.

use super::fire::{Ctx, Message, Reads, to_contacts};
use super::{Engine, EngineError, audit, ms};
use crate::core::counts::{CountReport, until};
use crate::core::definition::CountRule;
use crate::core::directory::Party;
use crate::core::render::Rendered;
use crate::core::state::{AssigneeKind, MessageKind, TimerKind};
use crate::core::validate::workflow_tz;
use crate::store::{FireEffects, NewTimer, TimerPayload, TimerRow};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// The key prefix of the count-check timers.
pub const PREFIX: &str = "counts:";
/// Local hour of a check.
const CHECK_HOUR: u32 = 9;

/// 09:00 local on the day `rule` is checked in `year`.
pub fn check_instant(rule: &CountRule, year: i32, tz: Tz) -> Option<DateTime<Utc>> {
    let day = until(rule, year);
    tz.from_local_datetime(&day.and_hms_opt(CHECK_HOUR, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The timer checking `rule` of `workflow` over `year`, or `None` when the day has no
/// instant.
pub fn timer(workflow: &str, rule: &CountRule, year: i32, tz: Tz) -> Option<NewTimer> {
    let at = check_instant(rule, year, tz)?;
    Some(NewTimer {
        key: format!("{PREFIX}{workflow}:{}:{year}", rule.id.value),
        round_id: None,
        task_key: None,
        kind: TimerKind::CountCheck,
        due_at: ms(at),
        payload: TimerPayload {
            workflow: Some(workflow.to_string()),
            year: Some(year),
            ..TimerPayload::default()
        },
    })
}

/// The rule id in a count-check key (`counts:WORKFLOW:RULE:YEAR`).
fn rule_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplitn(3, ':');
    let _year = parts.next()?;
    parts.next()
}

impl Engine {
    /// Make sure every counting rule of the loaded workflows has this year's check in the
    /// timer table (the key makes one row however often, and by however many daemons, this
    /// runs; a check already fired is not added again). A check day passed while no daemon
    /// ran fires late rather than never.
    pub async fn ensure_count_checks(&self) -> Result<(), EngineError> {
        let cat = self.catalog();
        let mut timers = Vec::new();
        for (id, loaded) in &cat.workflows {
            let wf = &loaded.workflow;
            let tz = workflow_tz(wf, cat.config.tz());
            let year = self.clock().now().with_timezone(&tz).year();
            timers.extend(wf.counts.iter().filter_map(|r| timer(id, r, year, tz)));
        }
        if !timers.is_empty() {
            self.store().add_timers(timers).await?;
        }
        Ok(())
    }
}

/// Fire a count check: the office gets everyone short, each branch its own people short,
/// and next year's check is scheduled; a rule no longer loaded is only audited.
pub(crate) fn fire(cx: &Ctx, reads: &Reads, t: &TimerRow) -> FireEffects {
    let (cat, now) = (cx.catalog, cx.now);
    let mut fx = FireEffects::default();
    let audit =
        |action: &str, detail: serde_json::Value| audit(now, "daemon", action, &t.key, detail);
    let (Some(wf_id), Some(year), Some(rule_id)) =
        (&t.payload.workflow, t.payload.year, rule_of(&t.key))
    else {
        fx.audit.push(audit(
            "counts.check.skipped",
            serde_json::json!({"reason": "the timer names no workflow, rule or year"}),
        ));
        return fx;
    };
    let loaded = cat.workflows.get(wf_id).and_then(|l| {
        let rule = l.workflow.counts.iter().find(|r| r.id.value == rule_id)?;
        Some((rule, workflow_tz(&l.workflow, cat.config.tz())))
    });
    let report = reads
        .counts
        .get(&year)
        .and_then(|rs| rs.iter().find(|r| &r.workflow == wf_id && r.id == rule_id));
    let (Some((rule, tz)), Some(report)) = (loaded, report) else {
        fx.audit.push(audit(
            "counts.check.stopped",
            serde_json::json!({"reason": "the workflow or its rule is no longer loaded"}),
        ));
        return fx;
    };
    let unit_name = |u: &str| {
        cat.directory
            .unit(u)
            .map_or_else(|| u.to_string(), |x| x.name.clone())
    };
    if !report.short.is_empty() {
        let office = cat
            .directory
            .role_party(&cat.config.notify.dead_letter_role);
        let mut sends = vec![(t.key.clone(), office, report.clone())];
        let mut by_unit: BTreeMap<&str, CountReport> = BTreeMap::new();
        for s in &report.short {
            by_unit
                .entry(&s.person.unit)
                .or_insert_with(|| CountReport {
                    short: Vec::new(),
                    ..report.clone()
                })
                .short
                .push(s.clone());
        }
        for (unit, part) in by_unit {
            let party = Party {
                kind: AssigneeKind::Unit,
                id: unit.to_string(),
                name: unit_name(unit),
            };
            sends.push((format!("{}/{unit}", t.key), party, part));
        }
        for (key, party, part) in &sends {
            let rendered = render(&cat.directory.office.name, party, part, &unit_name);
            fx.notifications.extend(to_contacts(
                cat,
                &Message {
                    key,
                    task: None,
                    kind: MessageKind::CountShort,
                    party,
                    rendered: &rendered,
                    // Not a task item: the outbox reads `item_json` as digest items.
                    item_json: "{}",
                },
                now,
            ));
        }
    }
    fx.audit.push(audit(
        "counts.check",
        serde_json::json!({"workflow": wf_id, "rule": rule_id, "year": year,
            "people": report.people, "short": report.short.iter().map(|s| s.person.id).collect::<Vec<_>>()}),
    ));
    fx.timers
        .extend(year.checked_add(1).and_then(|y| timer(wf_id, rule, y, tz)));
    fx
}

/// The list as a message: subject 「谈心谈话次数不足名单（2026年，2人）」, one line a person.
fn render(
    office: &str,
    to: &Party,
    r: &CountReport,
    unit_name: &dyn Fn(&str) -> String,
) -> Rendered {
    let subject = format!(
        "{}次数不足名单（{}年，{}人）",
        r.title,
        r.year,
        r.short.len()
    );
    let lines = r.lines(unit_name);
    let intro = format!(
        "{}：截至{}年{}月{}日，以下人员{}次数少于每年{}次，请抓紧安排。",
        to.name,
        r.year,
        r.until.month(),
        r.until.day(),
        r.title,
        r.required
    );
    let text = format!("{intro}\n\n{}\n\n{office}", lines.join("\n"));
    let esc = |s: &str| minijinja::HtmlEscape(s).to_string();
    let html = format!(
        "<p>{}</p><ul>{}</ul><p>{}</p>",
        esc(&intro),
        lines
            .iter()
            .map(|l| format!("<li>{}</li>", esc(l)))
            .collect::<String>(),
        esc(office)
    );
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_read_back_from_a_key_whose_workflow_has_colons_or_dashes() {
        assert_eq!(
            rule_of("counts:cadre-talks:talks_per_year:2026"),
            Some("talks_per_year")
        );
        assert_eq!(rule_of("counts:a:b:r:2026"), Some("r"));
        assert_eq!(rule_of("weekly:1"), None);
    }
}
