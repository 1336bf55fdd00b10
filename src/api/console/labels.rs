//! The console's Chinese labels and short texts: plain functions of data (the clock's
//! reading and the time zone are passed in), so each wording is tested without a server.

use crate::core::directory::UnitKind;
use crate::core::state::{AssigneeKind, RoundStatus, TaskState, TimerKind};
use crate::engine::{days_between, from_ms};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A task state as the console shows it.
pub(super) fn state_zh(state: TaskState) -> &'static str {
    state.zh()
}

/// A task action (`complete`, `waive`, `reopen`) as a verb: "不能{action}".
pub(super) fn action_zh(action: &str) -> &'static str {
    match action {
        "complete" => "标记完成",
        "waive" => "免除",
        "reopen" => "重新打开",
        _ => "执行此操作",
    }
}

/// A round status as the console shows it.
pub(super) fn round_status_zh(status: RoundStatus) -> &'static str {
    status.zh()
}

/// A timer kind as the round page's "next" list shows it.
pub(super) fn timer_kind_zh(kind: TimerKind) -> &'static str {
    kind.zh()
}

/// Whose tasks a group of the overdue board holds: an assignee kind (`unit` or `role`)
/// and, for a unit, its kind in the directory (None when it is no longer listed).
pub(super) fn assignee_kind_zh(kind: AssigneeKind, unit: Option<UnitKind>) -> &'static str {
    match unit {
        Some(UnitKind::Branch) => "村/社区党组织",
        Some(UnitKind::Department) => "审查部门",
        None if kind == AssigneeKind::Unit => "单位",
        None => "街道角色",
    }
}

/// The notice on a task's page after an action redirected there (`?done=`).
pub(super) fn done_flash(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("complete") => Some("已标记完成。"),
        Some("waive") => Some("已免除。"),
        Some("reopen") => Some("已重新打开，提醒和催办按新的截止时间重新安排。"),
        Some("resend") => Some("已重新发送：消息已放入发件队列，按发送频率限制送出。"),
        Some("accept") => Some("已通过，任务完成。"),
        Some("return") => Some("已退回，已通知承办单位；提醒和催办按新的截止时间重新安排。"),
        _ => None,
    }
}

/// Percent done, rounded down; 0 for an empty stage.
pub(super) fn pct(done: usize, total: usize) -> u64 {
    (done * 100).checked_div(total).unwrap_or(0) as u64
}

/// "逾期 3 天" (calendar days in `tz`) for an open task whose deadline `due` (epoch ms) is
/// before `now`, "今日已逾期" when that was earlier today, else None.
pub(super) fn overdue_text(
    state: TaskState,
    due: i64,
    now: DateTime<Utc>,
    tz: Tz,
) -> Option<String> {
    if state != TaskState::Open || due >= now.timestamp_millis() {
        return None;
    }
    let days = -days_between(now, from_ms(due), tz);
    Some(if days <= 0 {
        "今日已逾期".to_string()
    } else {
        format!("逾期 {days} 天")
    })
}

/// "今天截止" or "还有 3 天" (calendar days in `tz`) until a deadline `due` (epoch ms) that
/// is not yet past; None once it is.
pub(super) fn time_left(due: i64, now: DateTime<Utc>, tz: Tz) -> Option<String> {
    if due < now.timestamp_millis() {
        return None;
    }
    Some(match days_between(now, from_ms(due), tz) {
        0 => "今天截止".to_string(),
        n => format!("还有 {n} 天"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Asia::Shanghai;

    /// A Beijing wall-clock time.
    fn bj(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(2019, 7, d, h, m, 0)
            .single()
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn ms(t: DateTime<Utc>) -> i64 {
        t.timestamp_millis()
    }

    #[test]
    fn every_task_state_has_its_own_label() {
        let states = [
            TaskState::Open,
            TaskState::Waiting,
            TaskState::Submitted,
            TaskState::Done,
            TaskState::Waived,
            TaskState::Cancelled,
        ];
        let labels: Vec<&str> = states.iter().map(|s| state_zh(*s)).collect();
        assert_eq!(
            labels,
            ["待办", "等待前序", "已提交", "已完成", "已免除", "已取消"]
        );
    }

    #[test]
    fn actions_round_statuses_and_timer_kinds_read_in_chinese() {
        assert_eq!(action_zh("complete"), "标记完成");
        assert_eq!(action_zh("waive"), "免除");
        assert_eq!(action_zh("reopen"), "重新打开");
        assert_eq!(action_zh("delete"), "执行此操作");
        assert_eq!(round_status_zh(RoundStatus::Running), "进行中");
        assert_eq!(round_status_zh(RoundStatus::Finished), "已结束");
        assert_eq!(round_status_zh(RoundStatus::Cancelled), "已取消");
        assert_eq!(timer_kind_zh(TimerKind::Escalation), "逐级上报");
        assert_eq!(timer_kind_zh(TimerKind::CalendarNotice), "节假日文件提醒");
    }

    #[test]
    fn an_overdue_group_names_branches_departments_and_roles() {
        assert_eq!(
            assignee_kind_zh(AssigneeKind::Unit, Some(UnitKind::Branch)),
            "村/社区党组织"
        );
        assert_eq!(
            assignee_kind_zh(AssigneeKind::Unit, Some(UnitKind::Department)),
            "审查部门"
        );
        assert_eq!(assignee_kind_zh(AssigneeKind::Unit, None), "单位");
        assert_eq!(assignee_kind_zh(AssigneeKind::Role, None), "街道角色");
    }

    #[test]
    fn only_known_actions_flash_a_notice_on_the_task_page() {
        assert_eq!(done_flash(Some("complete")), Some("已标记完成。"));
        assert_eq!(done_flash(Some("waive")), Some("已免除。"));
        assert!(done_flash(Some("reopen")).is_some_and(|f| f.starts_with("已重新打开")));
        assert_eq!(done_flash(Some("<script>")), None);
        assert_eq!(done_flash(None), None);
    }

    #[test]
    fn percent_done_rounds_down_and_an_empty_stage_is_zero() {
        assert_eq!(pct(1, 3), 33);
        assert_eq!(pct(2, 3), 66);
        assert_eq!(pct(3, 3), 100);
        assert_eq!(pct(0, 0), 0);
    }

    #[test]
    fn overdue_counts_calendar_days_in_the_office_time_zone() {
        let due = ms(bj(10, 18, 0));
        // 02:00 Beijing on the 13th is still the 12th in UTC: three days in Beijing.
        assert_eq!(
            overdue_text(TaskState::Open, due, bj(13, 2, 0), Shanghai).as_deref(),
            Some("逾期 3 天")
        );
        assert_eq!(
            overdue_text(TaskState::Open, due, bj(10, 18, 1), Shanghai).as_deref(),
            Some("今日已逾期")
        );
        assert_eq!(
            overdue_text(TaskState::Open, due, bj(10, 18, 0), Shanghai),
            None,
            "due exactly now is not yet overdue"
        );
        for settled in [TaskState::Done, TaskState::Waived, TaskState::Waiting] {
            assert_eq!(overdue_text(settled, due, bj(20, 9, 0), Shanghai), None);
        }
    }

    #[test]
    fn time_left_says_today_or_the_days_to_go_and_nothing_once_past() {
        let due = ms(bj(12, 18, 0));
        assert_eq!(
            time_left(due, bj(12, 8, 0), Shanghai).as_deref(),
            Some("今天截止")
        );
        assert_eq!(
            time_left(due, bj(9, 23, 30), Shanghai).as_deref(),
            Some("还有 3 天")
        );
        // 00:30 Beijing on the 10th is still the 9th in UTC: two days to go, not three.
        assert_eq!(
            time_left(due, bj(10, 0, 30), Shanghai).as_deref(),
            Some("还有 2 天")
        );
        assert_eq!(time_left(due, bj(12, 18, 1), Shanghai), None);
    }
}
