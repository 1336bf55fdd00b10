//! The weekly 通报's programme (#18 item 6): when `[weekly_report] enabled`, one durable
//! timer in the timer table (`weekly:MILLIS`, at the configured weekday and local hour)
//! that fires once across daemons and restarts, like a kickoff; firing it sends the
//! summary (`report::weekly`) to every branch (its contacts: the secretary first) and the
//! committee head, by mail and by their group robots, and schedules next week's. Switched
//! off, the pending timer fires without sending and schedules nothing more.

use super::fire::{Ctx, Message, Reads, to_contacts};
use super::{Engine, EngineError, audit, from_ms, ms};
use crate::config::WeeklyReportConfig;
use crate::core::directory::{Party, UnitKind};
use crate::core::render::Rendered;
use crate::core::state::{AssigneeKind, MessageKind, RoundStatus, TimerKind};
use crate::report::TaskLine;
use crate::report::weekly::summary;
use crate::store::{FireEffects, NewTimer, TimerPayload, TimerRow};
use chrono::{DateTime, Datelike, Days, TimeZone, Utc};
use chrono_tz::Tz;

/// The key prefix of the weekly timers.
pub const PREFIX: &str = "weekly:";

/// The timer of the 通报 due at `at`.
pub fn timer(at: DateTime<Utc>) -> NewTimer {
    NewTimer {
        key: format!("{PREFIX}{}", ms(at)),
        round_id: None,
        task_key: None,
        kind: TimerKind::WeeklyReport,
        due_at: ms(at),
        payload: TimerPayload::default(),
    }
}

/// The first configured weekly instant strictly after `after` (local weekday and hour;
/// out-of-range values are clamped to Monday..Sunday and 0..23).
pub fn next_instant(
    cfg: &WeeklyReportConfig,
    after: DateTime<Utc>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let weekday = cfg.weekday.clamp(1, 7);
    let hour = cfg.hour.min(23);
    let today = after.with_timezone(&tz).date_naive();
    (0..=7u64).find_map(|d| {
        let day = today.checked_add_days(Days::new(d))?;
        if day.weekday().number_from_monday() != weekday {
            return None;
        }
        let at = tz
            .from_local_datetime(&day.and_hms_opt(hour, 0, 0)?)
            .earliest()?
            .with_timezone(&Utc);
        (at > after).then_some(at)
    })
}

impl Engine {
    /// When the 通报 is enabled, make sure its next timer is in the timer table (one live
    /// `weekly:` timer at a time; several daemons may call this, the key makes one row).
    pub async fn ensure_weekly_report(&self) -> Result<(), EngineError> {
        let cat = self.catalog();
        let cfg = &cat.config.weekly_report;
        if !cfg.enabled {
            return Ok(());
        }
        let existing = self.store().timers_with_prefix(PREFIX).await?;
        if existing.iter().any(|t| t.state.is_live()) {
            return Ok(());
        }
        let Some(at) = next_instant(cfg, self.clock().now(), cat.config.tz()) else {
            return Ok(());
        };
        self.store().add_timers(vec![timer(at)]).await?;
        tracing::info!(at = %at, "weekly report scheduled");
        Ok(())
    }
}

/// Fire a weekly timer: the summary to every branch and the head role, next week's timer;
/// nothing but an audit entry when the 通报 has been switched off.
pub(crate) fn fire(cx: &Ctx, reads: &Reads, t: &TimerRow) -> FireEffects {
    let (cat, now) = (cx.catalog, cx.now);
    let cfg = &cat.config.weekly_report;
    let mut fx = FireEffects::default();
    if !cfg.enabled {
        fx.audit.push(audit(
            now,
            "daemon",
            "weekly.stopped",
            &t.key,
            serde_json::json!({"reason": "weekly_report.enabled is false"}),
        ));
        return fx;
    }
    let tz = cat.config.tz();
    let mut rounds: Vec<_> = reads
        .round_tasks
        .iter()
        .filter_map(|(id, tasks)| match reads.rounds.get(id) {
            Some(Some(r)) if r.status == RoundStatus::Running => Some((r, tasks)),
            _ => None,
        })
        .collect();
    rounds.sort_by_key(|(r, _)| r.id);
    let lines: Vec<TaskLine> = rounds
        .iter()
        .flat_map(|(r, tasks)| tasks.iter().map(|t| TaskLine::of(cat, r, t)))
        .collect();
    let s = summary(&cat.directory.office.name, &lines, now, tz);
    let mut parties: Vec<Party> = cat
        .directory
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Branch)
        .map(|u| Party {
            kind: AssigneeKind::Unit,
            id: u.id.value.clone(),
            name: u.name.clone(),
        })
        .collect();
    parties.push(cat.directory.role_party(&cfg.head_role));
    match (s.html(), s.text()) {
        (Ok(html), Ok(text)) => {
            let rendered = Rendered {
                subject: s.subject(),
                text,
                html,
            };
            for p in &parties {
                let key = format!("{}/{}", t.key, p.id);
                fx.notifications.extend(to_contacts(
                    cat,
                    &Message {
                        key: &key,
                        task: None,
                        kind: MessageKind::WeeklyReport,
                        party: p,
                        rendered: &rendered,
                        item_json: "{}",
                    },
                    now,
                ));
            }
        }
        (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "weekly report failed to render"),
    }
    fx.audit.push(audit(
        now,
        "daemon",
        "weekly.report",
        &t.key,
        serde_json::json!({"branches": s.ranking.len(), "overdue": s.overdue.len(), "recipients": parties.len()}),
    ));
    fx.timers
        .extend(next_instant(cfg, from_ms(t.due_at), tz).map(timer));
    fx
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    #[test]
    fn the_next_instant_is_the_configured_weekday_and_hour_strictly_after() {
        let cfg = WeeklyReportConfig {
            enabled: true,
            weekday: 1,
            hour: 9,
            head_role: "committee_head".into(),
        };
        let bj = |d: u32, h: u32| {
            Shanghai
                .with_ymd_and_hms(2019, 7, d, h, 0, 0)
                .single()
                .expect("time")
                .with_timezone(&Utc)
        };
        // 2019-07-15 is a Monday.
        assert_eq!(next_instant(&cfg, bj(15, 8), Shanghai), Some(bj(15, 9)));
        assert_eq!(next_instant(&cfg, bj(15, 9), Shanghai), Some(bj(22, 9)));
        assert_eq!(next_instant(&cfg, bj(17, 12), Shanghai), Some(bj(22, 9)));
    }
}
