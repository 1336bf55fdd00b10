//! The domain's states and kinds as types: what a task, timer, round or outbox row can be.
//!
//! The database stores them as text (`'open'`, `'stage_open'`); the store parses that text
//! when it reads a row, and a value that is not one of these is an error naming the table,
//! the row and the value (`StoreError::Corrupt`), never a default. Everything above the
//! store matches on these enums, not on strings.

use serde::{Deserialize, Serialize};

/// A value stored as one of a fixed set of words.
pub trait Stored: Copy + std::str::FromStr + Into<&'static str> + 'static {
    /// What the value is, for errors: "a task state".
    const WHAT: &'static str;

    /// The stored word.
    fn word(self) -> &'static str {
        self.into()
    }
}

/// Implements [`Stored`] and the inherent `as_str` for an enum derived with strum.
macro_rules! stored {
    ($ty:ident, $what:literal) => {
        impl Stored for $ty {
            const WHAT: &'static str = $what;
        }

        impl $ty {
            /// The word stored for this value.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

/// Where a task instance stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TaskState {
    /// Owed and not done.
    Open,
    /// Waits for another task's completion or an outside event before it is owed.
    Waiting,
    /// Handed in on the branch link, waiting for the office to accept or return it: its
    /// reminders have stopped, but it is not settled.
    Submitted,
    /// Done by its assignee.
    Done,
    /// Excused by the office.
    Waived,
    /// Withdrawn (round cancelled, branch removed).
    Cancelled,
}
stored!(TaskState, "a task state");

impl TaskState {
    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            TaskState::Open => "待办",
            TaskState::Waiting => "等待前序",
            TaskState::Submitted => "已提交",
            TaskState::Done => "已完成",
            TaskState::Waived => "已免除",
            TaskState::Cancelled => "已取消",
        }
    }

    /// Still owed: open or waiting.
    pub fn is_owed(self) -> bool {
        matches!(self, TaskState::Open | TaskState::Waiting)
    }

    /// Settled by the assignee or the office: done or waived.
    pub fn is_settled(self) -> bool {
        matches!(self, TaskState::Done | TaskState::Waived)
    }
}

/// Where a timer stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TimerState {
    /// Waiting for its instant.
    Pending,
    /// Claimed by a daemon (see the lease columns).
    Running,
    /// Done; never fires again.
    Fired,
    /// Withdrawn (task completed, round cancelled).
    Cancelled,
}
stored!(TimerState, "a timer state");

impl TimerState {
    /// Not fired or cancelled yet: pending or claimed.
    pub fn is_live(self) -> bool {
        matches!(self, TimerState::Pending | TimerState::Running)
    }
}

/// What a timer does when it fires. The planner makes the six kinds of a round's timeline;
/// the engine adds kickoffs, catch-up messages and the missing-calendar notice.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TimerKind {
    /// A stage opens.
    StageOpen,
    /// A stage closes.
    StageClose,
    /// A reminder before the deadline.
    Reminder,
    /// The deadline itself: the task becomes overdue.
    Deadline,
    /// A repeated reminder while overdue.
    Overdue,
    /// A rung of the escalation chain.
    Escalation,
    /// A scheduled workflow starts its next round.
    Kickoff,
    /// One message to an assignee of a round started late, listing what is overdue.
    CatchUp,
    /// The weekly notice that next year's holiday file is missing.
    CalendarNotice,
    /// The weekly 通报 to the branches and the committee head.
    WeeklyReport,
    /// A counting rule's check day: who is short is sent to the office and their branches.
    CountCheck,
}
stored!(TimerKind, "a timer kind");

impl TimerKind {
    /// Chinese label for tables.
    pub fn zh(self) -> &'static str {
        match self {
            TimerKind::StageOpen => "阶段开始",
            TimerKind::StageClose => "阶段结束",
            TimerKind::Reminder => "提醒",
            TimerKind::Deadline => "截止",
            TimerKind::Overdue => "逾期催办",
            TimerKind::Escalation => "逐级上报",
            TimerKind::Kickoff => "启动轮次",
            TimerKind::CatchUp => "补发提醒",
            TimerKind::CalendarNotice => "节假日文件提醒",
            TimerKind::WeeklyReport => "每周通报",
            TimerKind::CountCheck => "次数检查",
        }
    }

    /// Kinds that repeat or climb after the deadline (overdue reminders, escalation rungs).
    pub fn is_chain(self) -> bool {
        matches!(self, TimerKind::Overdue | TimerKind::Escalation)
    }
}

/// Where a round stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RoundStatus {
    /// Under way.
    Running,
    /// Every task is done, waived or cancelled.
    Finished,
    /// Withdrawn by the office.
    Cancelled,
}
stored!(RoundStatus, "a round status");

impl RoundStatus {
    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            RoundStatus::Running => "进行中",
            RoundStatus::Finished => "已结束",
            RoundStatus::Cancelled => "已取消",
        }
    }
}

/// Who a task or message is addressed to: a unit (branch or department) or a role.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AssigneeKind {
    /// A branch or department of the directory.
    Unit,
    /// A role (the organization office, a committee head).
    Role,
}
stored!(AssigneeKind, "an assignee kind");

/// Where an outbox row stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (first time or after a transient failure).
    Pending,
    /// Claimed by a sender (see the lease columns).
    Sending,
    /// Delivered.
    Sent,
    /// Allowed by the schema since the first migration but never written: a failed
    /// attempt goes back to `pending` with a retry instant.
    Failed,
    /// Given up; the office was told.
    Dead,
}
stored!(OutboxState, "an outbox state");

/// How an outbox row is delivered.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OutboxChannel {
    /// By email.
    Email,
    /// To a group robot's webhook.
    Webhook,
    /// Only written to the log (a contact without any address).
    Log,
}
stored!(OutboxChannel, "an outbox channel");

/// What a message says; also the name of its template.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MessageKind {
    /// A reminder before the deadline.
    Reminder,
    /// The deadline is today.
    DueToday,
    /// An overdue reminder.
    Overdue,
    /// An escalation rung.
    Escalation,
    /// A round started: what each assignee owes.
    Kickoff,
    /// A scheduled round could not start (to the office).
    KickoffBlocked,
    /// Next year's holiday file is missing (to the office).
    CalendarMissing,
    /// What is overdue already in a round started late.
    CatchUp,
    /// A message could not be delivered (to the office).
    DeadLetter,
    /// The weekly 通报: branches ranked by punctuality, what is overdue.
    WeeklyReport,
    /// The office returned a hand-in (【退回】, to the assignee).
    Returned,
    /// Who is short of a counting rule on its check day (to the office and the branches).
    CountShort,
}
stored!(MessageKind, "a message kind");

/// What an administrator token may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Rights {
    /// Read only.
    Read,
    /// Read and change.
    Admin,
}
stored!(Rights, "a token right");

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    /// Every value reads back from its word, and serde writes the same word.
    fn round_trips<T>()
    where
        T: Stored + VariantArray + std::fmt::Debug + PartialEq + Serialize + std::fmt::Display,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        for v in T::VARIANTS {
            let word = v.word();
            assert_eq!(word.parse::<T>().ok().as_ref(), Some(v), "{word}");
            assert_eq!(v.to_string(), word);
            assert_eq!(
                serde_json::to_value(v).ok(),
                Some(serde_json::Value::from(word))
            );
        }
        assert!("opne".parse::<T>().is_err());
        assert!("".parse::<T>().is_err());
    }

    #[test]
    fn every_state_and_kind_reads_back_from_the_word_it_is_stored_as() {
        round_trips::<TaskState>();
        round_trips::<TimerState>();
        round_trips::<TimerKind>();
        round_trips::<RoundStatus>();
        round_trips::<AssigneeKind>();
        round_trips::<OutboxState>();
        round_trips::<OutboxChannel>();
        round_trips::<MessageKind>();
        round_trips::<Rights>();
    }

    fn words<T: Stored + VariantArray>() -> Vec<&'static str> {
        T::VARIANTS.iter().map(|v| v.word()).collect()
    }

    #[test]
    fn stored_words_are_those_the_schema_checks() {
        // The CHECK constraints of migrations/*/0001_init.sql, 0003_access.sql and 0012.
        let tasks = [
            "open",
            "waiting",
            "submitted",
            "done",
            "waived",
            "cancelled",
        ];
        assert_eq!(words::<TaskState>(), tasks);
        assert_eq!(
            words::<TimerState>(),
            ["pending", "running", "fired", "cancelled"]
        );
        assert_eq!(words::<RoundStatus>(), ["running", "finished", "cancelled"]);
        let outbox = ["pending", "sending", "sent", "failed", "dead"];
        assert_eq!(words::<OutboxState>(), outbox);
        assert_eq!(words::<Rights>(), ["read", "admin"]);
    }

    #[test]
    fn message_kinds_are_template_kinds() {
        // The weekly 通报 is a ranking, not a task message: `report::weekly` renders it
        // from its own templates, and it is never re-rendered from the outbox (no digest).
        // The count check's list is plain text built in `engine::count_check` likewise.
        for k in MessageKind::VARIANTS
            .iter()
            .filter(|k| !matches!(k, MessageKind::WeeklyReport | MessageKind::CountShort))
        {
            assert!(
                crate::core::render::KINDS.contains(&k.as_str()),
                "{k} has no template"
            );
        }
    }
}
