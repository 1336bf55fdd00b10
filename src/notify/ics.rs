//! A branch's deadlines as an iCalendar (RFC 5545) feed, for subscribing from a phone or
//! desktop calendar.
//!
//! Each deadline is a `VEVENT` from 30 minutes before the deadline to the deadline (UTC),
//! with a display alarm one day before the deadline. The text is built with the
//! `icalendar` crate, which escapes TEXT values; lines are then folded here:
//! the crate's own folding lets a continuation line reach 76 octets when the last piece of a
//! long line is exactly 75 octets, so its output is unfolded and folded again.
//!
//! **Done items.** RFC 5545 §3.8.1.11 allows a `VEVENT` only `TENTATIVE`, `CONFIRMED` and
//! `CANCELLED`; `COMPLETED` belongs to `VTODO`, which most subscribed calendars (Google,
//! Outlook) do not show at all. `CANCELLED` would say the deadline was withdrawn, and many
//! clients hide or strike out such events. So a done item stays `STATUS:CONFIRMED` (the
//! deadline did happen) and is marked the way every client shows: its summary starts with
//! `[已完成]`, it is `TRANSP:TRANSPARENT` (it no longer takes time; open items are
//! `OPAQUE`) and it has no alarm.

use crate::core::state::{AssigneeKind, RoundStatus, TaskState};
use crate::engine::{Engine, EngineError, from_ms};
use chrono::{DateTime, Duration, Utc};
use icalendar::{Alarm, Calendar, Component, EventLike, EventStatus, Property, Trigger};

/// The calendar's PRODID.
pub const PRODID: &str = "-//yanzhen//CN";
/// Minutes before the deadline that the event starts.
const SLOT_MINUTES: i64 = 30;
/// Minutes before the deadline that the alarm fires (one day).
const ALARM_MINUTES: i64 = 24 * 60;
/// The summary prefix of a done item.
pub const DONE_PREFIX: &str = "[已完成]";

/// One deadline in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// Globally unique, stable id (the same for every version of the feed).
    pub uid: String,
    /// Title, e.g. `截止：组织推荐`.
    pub summary: String,
    /// What to do (may contain newlines, commas, semicolons).
    pub description: String,
    /// The deadline.
    pub due: DateTime<Utc>,
    /// Link to the task on the console.
    pub url: Option<String>,
    /// Whether the task is done.
    pub done: bool,
}

/// The whole VCALENDAR text (CRLF line endings, lines folded at 75 octets without splitting
/// UTF-8 characters, text escaped).
pub fn feed(calendar_name: &str, events: &[FeedEvent], now: DateTime<Utc>) -> String {
    let mut cal = Calendar::empty();
    cal.append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", "PUBLISH"))
        .append_property(Property::new("X-WR-CALNAME", clean_text(calendar_name)))
        .append_property(Property::new("X-WR-TIMEZONE", "Asia/Shanghai"));
    for e in events {
        cal.push(event(e, now));
    }
    // Undo the crate's folding (values are escaped and CR-free, so every CRLF + space in
    // its output is a fold) and fold again correctly.
    let unfolded = cal.to_string().replace("\r\n ", "");
    let mut out = String::with_capacity(unfolded.len() + unfolded.len() / 24);
    for line in unfolded.split_terminator("\r\n") {
        fold(line, &mut out);
    }
    out
}

/// Appends one content line folded per RFC 5545 §3.1: at most 75 octets per physical line,
/// the leading space of a continuation line included, never inside a UTF-8 character; ends
/// with CRLF.
fn fold(line: &str, out: &mut String) {
    const LIMIT: usize = 75;
    let mut room = LIMIT;
    let mut start = 0;
    let mut used = 0;
    for (i, c) in line.char_indices() {
        let n = c.len_utf8();
        if used + n > room {
            out.push_str(&line[start..i]);
            out.push_str("\r\n ");
            start = i;
            used = 0;
            room = LIMIT - 1;
        }
        used += n;
    }
    out.push_str(&line[start..]);
    out.push_str("\r\n");
}

fn event(e: &FeedEvent, now: DateTime<Utc>) -> icalendar::Event {
    let uid = clean_text(&e.uid);
    let summary = if e.done {
        format!("{DONE_PREFIX}{}", clean_text(&e.summary))
    } else {
        clean_text(&e.summary)
    };
    let mut ev = icalendar::Event::new();
    ev.uid(&uid)
        .timestamp(now)
        .starts(e.due - Duration::minutes(SLOT_MINUTES))
        .ends(e.due)
        .summary(&summary)
        .status(EventStatus::Confirmed)
        .add_property("TRANSP", if e.done { "TRANSPARENT" } else { "OPAQUE" });
    let description = clean_text(&e.description);
    if !description.is_empty() {
        ev.description(&description);
    }
    if let Some(url) = &e.url {
        let url = clean_uri(url);
        if !url.is_empty() {
            ev.url(&url);
        }
    }
    if !e.done {
        // One day before the deadline, written relative to DTSTART (the default, which every
        // client supports; `RELATED=END` is not honoured everywhere).
        let mut alarm = Alarm::display(
            &summary,
            Trigger::Duration(Duration::minutes(-(ALARM_MINUTES - SLOT_MINUTES)), None),
        );
        // TRIGGER is rewritten as `-PT23H30M` (chrono would print `-PT84600S`). The crate
        // writes a DTSTAMP (the wall clock) and a random UID into every component
        // that lacks them, VALARM included; fixed values keep the feed reproducible. UID in
        // VALARM is RFC 9074's; DTSTAMP is an IANA property any component may carry.
        alarm
            .add_property("TRIGGER", duration_value(-(ALARM_MINUTES - SLOT_MINUTES)))
            .uid(&format!("{uid}-alarm"))
            .timestamp(now);
        ev.alarm(alarm);
    }
    ev.done()
}

/// An RFC 5545 dur-value of whole minutes, e.g. `-PT23H30M`, `-P1D`.
fn duration_value(minutes: i64) -> String {
    let sign = if minutes < 0 { "-" } else { "" };
    let m = minutes.unsigned_abs();
    let (days, hours, mins) = (m / 1440, m / 60 % 24, m % 60);
    let mut s = format!("{sign}P");
    if days > 0 {
        s.push_str(&format!("{days}D"));
    }
    if hours > 0 || mins > 0 || days == 0 {
        s.push('T');
        if hours > 0 {
            s.push_str(&format!("{hours}H"));
        }
        if mins > 0 || hours == 0 {
            s.push_str(&format!("{mins}M"));
        }
    }
    s
}

/// TEXT as the crate can escape it: CR LF and CR become LF (escaped as `\n`), other control
/// characters (forbidden in TEXT) are dropped, tabs kept.
fn clean_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// A URI is written unescaped, so it must not contain control characters or spaces.
fn clean_uri(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect()
}

/// A unit's deadlines in running rounds as an iCalendar feed (done and waived tasks
/// stay in the feed, marked done, so a subscribed calendar shows the whole round).
pub async fn unit_feed(engine: &Engine, unit_id: &str) -> Result<String, EngineError> {
    let cat = engine.catalog();
    let unit = cat
        .directory
        .unit(unit_id)
        .ok_or_else(|| EngineError::NotFound(format!("unit {unit_id}")))?;
    let mut events = Vec::new();
    for round in engine
        .store()
        .rounds()
        .await?
        .into_iter()
        .filter(|r| r.status != RoundStatus::Cancelled)
    {
        let wf_title = engine
            .workflow_of(round.version_id)
            .await
            .map(|w| w.title.clone())
            .unwrap_or_default();
        for t in engine.store().tasks(round.id).await? {
            let (Some(due), true) = (
                t.due_at,
                t.assignee_kind == AssigneeKind::Unit && t.assignee_id == unit_id,
            ) else {
                continue;
            };
            if t.state == TaskState::Cancelled {
                continue;
            }
            events.push(FeedEvent {
                uid: format!("{}/{}@yanzhen", round.tag, t.key),
                summary: format!(
                    "{}截止：{}",
                    if t.provisional { "（预计）" } else { "" },
                    t.title
                ),
                description: format!(
                    "{}（{}）{}",
                    wf_title,
                    round.start_date,
                    if t.provisional {
                        "\n截止时间暂按预计日历推算：该年节假日安排尚未发布，按周末和法定节假日计算，正式安排发布后可能调整。"
                    } else {
                        ""
                    }
                ),
                due: from_ms(due),
                // A feed is read-only (calendar subscriptions end up on third-party
                // servers): it carries no "mark done" link.
                url: None,
                done: t.state.is_settled(),
            });
        }
    }
    events.sort_by_key(|e| e.due);
    Ok(feed(
        &format!("{} 工作截止日", unit.name),
        &events,
        engine.clock().now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::{duration_value, fold};

    #[test]
    fn folding() {
        let mut out = String::new();
        fold(&"a".repeat(75), &mut out);
        assert_eq!(out, format!("{}\r\n", "a".repeat(75)));
        out.clear();
        // 75 + 74 + 1: the crate would write 75 and then " " + 75 = 76 octets.
        fold(&"a".repeat(150), &mut out);
        assert_eq!(
            out,
            format!("{}\r\n {}\r\n a\r\n", "a".repeat(75), "a".repeat(74))
        );
        out.clear();
        // 25 three-byte characters = 75 octets; the 26th starts a continuation line.
        fold(&"截".repeat(26), &mut out);
        assert_eq!(out, format!("{}\r\n 截\r\n", "截".repeat(25)));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_value(-(24 * 60 - 30)), "-PT23H30M");
        assert_eq!(duration_value(-24 * 60), "-P1D");
        assert_eq!(duration_value(-(24 * 60 + 30)), "-P1DT30M");
        assert_eq!(duration_value(0), "PT0M");
        assert_eq!(duration_value(120), "PT2H");
    }
}
