//! The provisional calendar at the edges. The year after the last holiday file is planned
//! on a provisional calendar (see [`crate::core::calendar`]); this module makes sure that is
//! never silent and never lasts longer than it must:
//!
//! - from 1 November, while next year's file is missing (and all year while the current
//!   year's is), the office role (`notify.dead_letter_role`) is told once a week where to
//!   put the file: a durable `calendar_notice` timer per week, keyed by the year and the
//!   week's instant so that several daemons write one row and fire it once, that stops
//!   when the file is there; the console shows the same text as a banner, `status` and
//!   `validate` print it;
//! - pending kickoffs whose working-day rule the current calendar answers differently are
//!   moved (audited with both instants);
//! - at start-up, running rounds that still carry provisional instants are re-projected,
//!   in case the file was added while no daemon ran.

use crate::core::calendar::Calendar;
use crate::core::state::{RoundStatus, TaskState, TimerKind, TimerState};
use crate::core::validate::workflow_tz;
use crate::engine::{Engine, EngineError, from_ms, kickoff_timer, ms};
use crate::store::{AuditEntry, NewTimer, TimerPayload, TimerRow};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::path::Path;

/// Days between two notices.
pub(crate) const NOTICE_EVERY_DAYS: u64 = 7;
/// Local hour of a notice.
const NOTICE_HOUR: u32 = 9;

/// The key prefix of one year's notices.
pub fn notice_prefix(year: i32) -> String {
    format!("calendar:{year}:")
}

/// The notice timer of `year` at `at`.
pub fn notice_timer(year: i32, at: DateTime<Utc>) -> NewTimer {
    NewTimer {
        key: format!("{}{}", notice_prefix(year), ms(at)),
        round_id: None,
        task_key: None,
        kind: TimerKind::CalendarNotice,
        due_at: ms(at),
        payload: TimerPayload {
            year: Some(year),
            ..TimerPayload::default()
        },
    }
}

/// 09:00 local on `date`.
pub(crate) fn notice_instant(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_hms_opt(NOTICE_HOUR, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The weekly instant of `year`'s series that is due at `now`: 1 November of the year
/// before at 09:00, then every 7 days; the first one when `now` is earlier.
fn due_slot(year: i32, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let first = NaiveDate::from_ymd_opt(year.checked_sub(1)?, 11, 1)?;
    let today = now.with_timezone(&tz).date_naive();
    let weeks = if today > first {
        (today - first).num_days() as u64 / NOTICE_EVERY_DAYS
    } else {
        0
    };
    let mut date = first.checked_add_days(chrono::Days::new(weeks * NOTICE_EVERY_DAYS))?;
    // Today's 09:00 still ahead: this week's notice is the one due, last week's is past.
    if weeks > 0 && notice_instant(date, tz)? > now {
        date = date.checked_sub_days(chrono::Days::new(NOTICE_EVERY_DAYS))?;
    }
    notice_instant(date, tz)
}

/// The file the office should add now, and a Chinese sentence saying where and why (the
/// console banner, the weekly message's gist, `status`); None when nothing is missing.
pub fn missing_file_notice(cal: &Calendar, dir: &Path, today: NaiveDate) -> Option<String> {
    let year = cal.wanted_year(today)?;
    Some(format!(
        "{year}年节假日安排文件尚未添加：国务院办公厅通知发布后，请按 holiday-cn 格式保存为 {}。在此之前，涉及{year}年的时间暂按预计日历推算（周末和法定节假日休息，不含调休上班日），并标注“暂按预计日历”；文件添加后自动按正式安排重新推算。",
        dir.join(format!("{year}.json")).display()
    ))
}

impl Engine {
    /// Make sure each year whose holiday file is wanted has its next weekly notice in the
    /// timer table: this year's while it is missing, next year's from 1 November (the
    /// timer is written ahead, so a daemon that runs through October needs no restart).
    pub async fn ensure_calendar_notice(&self) -> Result<(), EngineError> {
        let cat = self.catalog();
        let Some(&last) = cat.calendar.covered_years().last() else {
            return Ok(());
        };
        let tz = cat.config.tz();
        let now = self.clock().now();
        let this = now.with_timezone(&tz).year();
        for year in [this, this.saturating_add(1)] {
            if year <= last || cat.calendar.covers(year) {
                continue;
            }
            let existing = self
                .store()
                .timers_with_prefix(&notice_prefix(year))
                .await?;
            if existing.iter().any(|t| t.state.is_live()) {
                continue;
            }
            let Some(mut slot) = due_slot(year, now, tz) else {
                continue;
            };
            // This week's notice went out already: the next one.
            while existing.iter().any(|t| t.due_at == ms(slot)) {
                let next = slot
                    .with_timezone(&tz)
                    .date_naive()
                    .checked_add_days(chrono::Days::new(NOTICE_EVERY_DAYS))
                    .and_then(|d| notice_instant(d, tz));
                match next {
                    Some(n) => slot = n,
                    None => break,
                }
            }
            self.store()
                .add_timers(vec![notice_timer(year, slot)])
                .await?;
            tracing::info!(year, at = %slot, "missing-calendar notice scheduled");
        }
        Ok(())
    }

    /// Whether a pending kickoff's instant comes from a working-day rule in a year without
    /// a holiday file (computed from the current catalog; kickoffs carry no stored mark).
    pub fn kickoff_is_provisional(&self, t: &TimerRow) -> bool {
        let cat = self.catalog();
        let Some(loaded) = t
            .payload
            .workflow
            .as_ref()
            .and_then(|w| cat.workflows.get(w))
        else {
            return false;
        };
        let Some(schedule) = &loaded.workflow.schedule else {
            return false;
        };
        let tz = workflow_tz(&loaded.workflow, cat.config.tz());
        let date = from_ms(t.due_at).with_timezone(&tz).date_naive();
        crate::core::schedule::is_provisional(schedule, &cat.calendar, date)
    }

    /// Move pending kickoffs of working-day schedules to where the current calendar puts
    /// them (a holiday file was added or corrected). Each move is audited with both
    /// instants; of several daemons doing this at once, one moves each timer.
    pub async fn reproject_kickoffs(&self) -> Result<(), EngineError> {
        let cat = self.catalog();
        let now = self.clock().now();
        for (id, loaded) in &cat.workflows {
            let Some(schedule) = &loaded.workflow.schedule else {
                continue;
            };
            if !crate::core::schedule::uses_working_days(schedule) {
                continue;
            }
            let tz = workflow_tz(&loaded.workflow, cat.config.tz());
            let existing = self
                .store()
                .timers_with_prefix(&format!("kickoff:{id}:"))
                .await?;
            for p in existing.iter().filter(|t| {
                t.state == TimerState::Pending && !t.key.contains(":retry:") && t.due_at > ms(now)
            }) {
                // Count from the kickoff before this one (as when it was scheduled), so a
                // kickoff that moves earlier is not mistaken for next year's.
                let previous = existing
                    .iter()
                    .filter(|t| t.state != TimerState::Pending && t.due_at < p.due_at)
                    .map(|t| t.due_at)
                    .max();
                let after = previous.map_or(now, from_ms);
                let next =
                    match crate::core::schedule::next_kickoff(schedule, tz, &cat.calendar, after) {
                        Ok(Some(n)) => n.with_timezone(&Utc),
                        _ => continue,
                    };
                if ms(next) == p.due_at {
                    continue;
                }
                let mut timer = kickoff_timer(id, next.max(now));
                if next < now {
                    // Moved into the past: fire now, for the round of its own date.
                    timer.payload.scheduled_ms = Some(ms(next));
                }
                if existing.iter().any(|t| t.key == timer.key) {
                    timer.key = format!("{}:moved:{}", timer.key, ms(now));
                }
                let audit = AuditEntry {
                    at: ms(now),
                    actor: "daemon".into(),
                    action: "kickoff.reproject".into(),
                    subject: format!("workflow:{id}"),
                    detail_json: serde_json::json!({"reason": "calendar", "key": p.key, "old": from_ms(p.due_at), "new": next}).to_string(),
                };
                if self.store().replace_timer(p.id, timer, audit).await? {
                    tracing::info!(workflow = %id, old = %from_ms(p.due_at), new = %next, "kickoff moved by the calendar");
                }
            }
        }
        Ok(())
    }

    /// Re-project running rounds that still carry a provisional instant (a pending marked
    /// timer or an open marked task); for start-up, when a holiday file may have been added
    /// while no daemon ran. Returns how many rounds changed.
    pub async fn reproject_provisional_rounds(&self) -> Result<usize, EngineError> {
        let mut changed = 0;
        for round in self
            .store()
            .rounds()
            .await?
            .into_iter()
            .filter(|r| r.status == RoundStatus::Running)
        {
            let tasks = self.store().tasks(round.id).await?;
            let marked_task = tasks
                .iter()
                .any(|t| t.provisional && t.state == TaskState::Open);
            let marked_timer = || async {
                self.store()
                    .timers_with_prefix(&format!("{}/", round.tag))
                    .await
                    .map(|ts| {
                        ts.iter().any(|t| {
                            t.state == TimerState::Pending && crate::engine::timer_is_provisional(t)
                        })
                    })
            };
            if !marked_task && !marked_timer().await? {
                continue;
            }
            match self
                .reproject(round.id, None, &[], false, "daemon", "start")
                .await
            {
                Ok(i) if !i.changes.is_empty() => changed += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(round = round.id, error = %e, "cannot re-project a provisional round")
                }
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .expect("instant")
    }

    #[test]
    fn the_due_slot_is_1_november_then_weekly_at_nine() {
        // Before the series starts: its first notice.
        assert_eq!(
            due_slot(2027, at(2026, 6, 1, 12), Shanghai),
            Some(at(2026, 11, 1, 9))
        );
        assert_eq!(
            due_slot(2027, at(2026, 11, 1, 8), Shanghai),
            Some(at(2026, 11, 1, 9))
        );
        assert_eq!(
            due_slot(2027, at(2026, 11, 5, 12), Shanghai),
            Some(at(2026, 11, 1, 9))
        );
        // Sunday 11-08 before nine: last week's is the one due.
        assert_eq!(
            due_slot(2027, at(2026, 11, 8, 8), Shanghai),
            Some(at(2026, 11, 1, 9))
        );
        assert_eq!(
            due_slot(2027, at(2026, 11, 8, 10), Shanghai),
            Some(at(2026, 11, 8, 9))
        );
        // Into the year itself, still weekly from 1 November.
        assert_eq!(
            due_slot(2027, at(2027, 1, 4, 10), Shanghai),
            Some(at(2027, 1, 3, 9))
        );
    }

    #[test]
    fn the_missing_file_notice_names_the_file_and_the_year() {
        let cal =
            Calendar::from_sources([("2026.json", r#"{"year": 2026, "papers": [], "days": []}"#)])
                .expect("calendar");
        let dir = Path::new("config/calendar");
        assert_eq!(
            missing_file_notice(&cal, dir, NaiveDate::from_ymd_opt(2026, 10, 31).expect("d")),
            None
        );
        let text = missing_file_notice(&cal, dir, NaiveDate::from_ymd_opt(2026, 11, 1).expect("d"))
            .expect("wanted");
        assert!(text.starts_with("2027年节假日安排文件尚未添加"), "{text}");
        assert!(text.contains("config/calendar/2027.json"), "{text}");
        assert!(text.contains("暂按预计日历"), "{text}");
    }
}
