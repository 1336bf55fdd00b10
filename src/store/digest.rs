//! Which outbox rows go out together: digests of a recipient's reminders or escalations of
//! one clock hour, and how long the first row of a digest waits for companions
//! (docs/decisions.md §22). Pure; the claim SQL (`store::sql`) spells the same lists.

use super::Millis;
use crate::core::state::MessageKind;

/// Outbox kinds that are merged into one message per recipient and clock hour, by class:
/// a recipient's reminders (reminder, due today, overdue) form one digest, its escalations
/// another. The claim SQL and the partial indexes of `0007_outbox_digests_and_budget.sql`
/// spell the same list.
pub const DIGEST_CLASSES: [(&str, &[MessageKind]); 2] = [
    (
        "remind",
        &[
            MessageKind::Reminder,
            MessageKind::DueToday,
            MessageKind::Overdue,
        ],
    ),
    ("escalate", &[MessageKind::Escalation]),
];

/// The digest class of an outbox kind, if it is merged at all.
pub fn digest_class(kind: MessageKind) -> Option<&'static str> {
    DIGEST_CLASSES
        .iter()
        .find(|(_, kinds)| kinds.contains(&kind))
        .map(|(class, _)| *class)
}

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// How a reminder or escalation waits for companions before it is sent (docs/decisions.md
/// §22): the first row of a recipient's digest waits `window_ms`, but never past the end of
/// its clock hour; every row of that recipient, class and hour due by then goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestHold {
    /// How long the first row of a digest waits for companions; 0 merges only rows that
    /// are due together.
    pub window_ms: i64,
    /// The time zone's UTC offset modulo one hour: local clock hours start this long after
    /// UTC hour boundaries (0 for whole-hour zones such as Asia/Shanghai).
    pub hour_shift_ms: i64,
}

impl DigestHold {
    /// A hold of `window_ms` in a time zone whose UTC offset is `offset_ms` now.
    pub fn new(window_ms: i64, offset_ms: i64) -> DigestHold {
        DigestHold {
            window_ms: window_ms.clamp(0, HOUR_MS),
            hour_shift_ms: offset_ms.rem_euclid(HOUR_MS),
        }
    }

    /// Start of the local clock hour that contains `t`.
    pub fn hour_start(&self, t: Millis) -> Millis {
        (t + self.hour_shift_ms).div_euclid(HOUR_MS) * HOUR_MS - self.hour_shift_ms
    }

    /// When a digest whose first row became due at `t` is sent: after the window, or at the
    /// end of `t`'s hour if that comes first.
    pub fn release(&self, t: Millis) -> Millis {
        (t.saturating_add(self.window_ms)).min(self.hour_start(t) + HOUR_MS)
    }

    /// The latest due instant of a first row whose digest may go at `now`: a row due at
    /// `t` is released iff `t <= ripe(now)` (its window has passed, or its hour has ended).
    pub fn ripe(&self, now: Millis) -> Millis {
        (now - self.window_ms).max(self.hour_start(now) - 1)
    }
}

/// How rows go out together: the key of one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MessageKey {
    /// Rows whose Message-ID is already fixed (a retry, a crash-repeat).
    Fixed(String),
    /// A recipient's digest of one class and clock hour.
    Digest {
        /// `email`, `webhook`, `log`.
        channel: String,
        /// Where it goes.
        address: String,
        /// See [`DIGEST_CLASSES`].
        class: &'static str,
        /// Start of the clock hour.
        hour: Millis,
    },
    /// A row that goes alone.
    Row(i64),
}

impl MessageKey {
    /// The message a row belongs to. A row whose kind is not known (`None`) goes alone;
    /// the claim then reports it.
    pub(crate) fn of(
        id: i64,
        kind: Option<MessageKind>,
        channel: &str,
        address: &str,
        not_before: Millis,
        message_id: Option<&str>,
        hold: &DigestHold,
    ) -> MessageKey {
        if let Some(m) = message_id {
            return MessageKey::Fixed(m.to_string());
        }
        match kind.and_then(digest_class) {
            Some(class) => MessageKey::Digest {
                channel: channel.to_string(),
                address: address.to_string(),
                class,
                hour: hold.hour_start(not_before),
            },
            None => MessageKey::Row(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DIGEST_CLASSES, DigestHold, digest_class};
    use crate::core::state::MessageKind;

    #[test]
    fn a_digest_is_released_after_its_window_or_at_the_end_of_its_hour() {
        let h = DigestHold::new(15 * 60_000, 8 * 3_600_000); // Asia/Shanghai
        let at = |hh: i64, mm: i64| hh * 3_600_000 + mm * 60_000;
        assert_eq!(h.release(at(10, 0)), at(10, 15));
        assert_eq!(h.release(at(10, 50)), at(11, 0), "never past its hour");
        assert_eq!(h.ripe(at(10, 15)), at(10, 0));
        assert_eq!(
            h.ripe(at(11, 0)),
            at(11, 0) - 1,
            "the whole last hour is released"
        );
        for t in [at(10, 0), at(10, 7), at(10, 50), at(10, 59)] {
            let r = h.release(t);
            assert!(
                t <= h.ripe(r) && t > h.ripe(r - 1),
                "{t}: ripe exactly at {r}"
            );
        }
    }

    #[test]
    fn clock_hours_follow_a_half_hour_time_zone() {
        let h = DigestHold::new(0, 5 * 3_600_000 + 30 * 60_000); // Asia/Kolkata
        assert_eq!(h.hour_start(3 * 3_600_000), 2 * 3_600_000 + 30 * 60_000);
    }

    #[test]
    fn reminders_and_escalations_are_digested_separately_and_nothing_else_is() {
        assert_eq!(digest_class(MessageKind::DueToday), Some("remind"));
        assert_eq!(digest_class(MessageKind::Escalation), Some("escalate"));
        assert_eq!(digest_class(MessageKind::Kickoff), None);
        assert_eq!(digest_class(MessageKind::DeadLetter), None);
    }

    #[test]
    fn the_claim_sql_lists_the_digest_kinds() {
        let remind: Vec<String> = DIGEST_CLASSES[0]
            .1
            .iter()
            .map(|k| format!("'{k}'"))
            .collect();
        let all: Vec<String> = DIGEST_CLASSES
            .iter()
            .flat_map(|(_, kinds)| kinds.iter().map(|k| format!("'{k}'")))
            .collect();
        assert!(
            crate::store::sql::OUTBOX_CLAIM_REMIND
                .contains(&format!("kind IN ({})", remind.join(", "))),
            "{}",
            crate::store::sql::OUTBOX_CLAIM_REMIND
        );
        assert!(crate::store::sql::OUTBOX_CLAIM_ESCALATE.contains("kind IN ('escalation')"));
        let held = format!("kind IN ({}) AND message_id IS NULL", all.join(", "));
        assert_eq!(crate::store::sql::outbox_held!(), held);
    }
}
