//! What a branch received (#18 item 8): the messages sent about a task, on its page (kind,
//! channel, recipient, time, delivery state and the rendered text), and an administrator's
//! resend, which puts a copy in the outbox (so the rate limits, digests and retries apply)
//! and records `message.resend` in the audit log.

use super::auth::ConsoleUser;
use super::ui::Ui;
use crate::api::State;
use crate::core::state::{MessageKind, OutboxChannel, OutboxState};
use crate::store::{AuditEntry, NewNotification, OutboxRow};
use axum::extract::{Path, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

/// A message kind as the task page names it.
pub(super) fn kind_zh(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Reminder => "截止前提醒",
        MessageKind::DueToday => "今日截止",
        MessageKind::Overdue => "逾期催办",
        MessageKind::Escalation => "逐级上报",
        MessageKind::Kickoff => "启动通知",
        MessageKind::KickoffBlocked => "启动受阻",
        MessageKind::CalendarMissing => "缺少节假日文件",
        MessageKind::CatchUp => "补发逾期提醒",
        MessageKind::DeadLetter => "投递失败通知",
        MessageKind::WeeklyReport => "每周通报",
        MessageKind::Returned => "退回通知",
        MessageKind::CountShort => "次数不足名单",
    }
}

/// A channel as the task page names it.
pub(super) fn channel_zh(channel: OutboxChannel) -> &'static str {
    match channel {
        OutboxChannel::Email => "邮件",
        OutboxChannel::Webhook => "群机器人",
        OutboxChannel::Log => "仅记录（无联系方式）",
    }
}

/// A delivery state as the task page names it.
pub(super) fn delivery_zh(state: OutboxState) -> &'static str {
    match state {
        OutboxState::Pending => "待发送",
        OutboxState::Sending => "发送中",
        OutboxState::Sent => "已送达",
        OutboxState::Failed => "发送失败",
        OutboxState::Dead => "放弃投递",
    }
}

/// Whom a row went to: the contact's name (else the party's), and the address.
fn recipient(row: &OutboxRow) -> String {
    let who: Value = serde_json::from_str(&row.recipient_json).unwrap_or(Value::Null);
    let name = who["contact"]["name"]
        .as_str()
        .or_else(|| who["party"]["name"].as_str())
        .unwrap_or_default();
    match (name.is_empty(), row.channel) {
        (true, _) => row.address.clone(),
        (false, OutboxChannel::Log) => name.to_string(),
        (false, _) => format!("{name}（{}）", row.address),
    }
}

/// The messages about task `id`, oldest first, for its page; empty when they cannot be
/// read (logged: the page still shows the task).
pub(super) async fn for_task(ui: &Ui<'_>, id: i64) -> Vec<Value> {
    let rows = match ui.state.engine.store().outbox_for_task(id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(task = id, error = %e, "could not read the task's messages");
            return Vec::new();
        }
    };
    rows.iter()
        .map(|r| {
            json!({
                "id": r.id, "kind": kind_zh(r.kind), "channel": channel_zh(r.channel),
                "recipient": recipient(r), "created": ui.at(r.created_at),
                "sent": r.sent_at.map(|t| ui.at(t)), "state": r.state.as_str(),
                "state_zh": delivery_zh(r.state), "attempts": r.attempts, "error": r.last_error,
                "subject": r.subject, "body": r.body,
                "resent": r.key.contains("/resend/"),
            })
        })
        .collect()
}

/// The copy a resend puts in the outbox: the same text to the same address, due now, under
/// a key of its own (so it is a new message with a new Message-ID, never deduplicated
/// away as the original).
pub(crate) fn resend_copy(row: &OutboxRow, now: i64) -> NewNotification {
    NewNotification {
        key: format!("{}/resend/{now}", row.key),
        round_id: row.round_id,
        task_id: row.task_id,
        kind: row.kind,
        channel: row.channel,
        address: row.address.clone(),
        recipient_json: row.recipient_json.clone(),
        subject: row.subject.clone(),
        body: row.body.clone(),
        html: row.html.clone(),
        item_json: row.item_json.clone(),
        not_before: now,
        created_at: now,
    }
}

pub(super) async fn resend(
    Shared(state): Shared<State>,
    ConsoleUser(user): ConsoleUser,
    Path((task, message)): Path<(String, String)>,
) -> Response {
    let ui = Ui::new(&state, Some(&user));
    if let Err(r) = ui.require_admin() {
        return *r;
    }
    let (task, message) = match (ui.parse_id(&task, "任务"), ui.parse_id(&message, "消息")) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let store = state.engine.store();
    let rows = match store.outbox_for_task(task).await {
        Ok(r) => r,
        Err(e) => return ui.store_fail(e),
    };
    let Some(row) = rows.iter().find(|r| r.id == message) else {
        return ui.message(
            StatusCode::NOT_FOUND,
            "未找到",
            &format!("任务 {task} 没有编号为 {message} 的消息。"),
        );
    };
    let now = ui.now().timestamp_millis();
    let copy = resend_copy(row, now);
    let audit = AuditEntry {
        at: now,
        actor: user.actor(),
        action: "message.resend".into(),
        subject: format!("outbox:{}", row.id),
        detail_json:
            json!({"task": task, "key": copy.key, "channel": row.channel, "address": row.address})
                .to_string(),
    };
    if let Err(e) = store.enqueue(vec![copy], Some(audit)).await {
        return ui.store_fail(e);
    }
    state.engine.wake_outbox();
    Redirect::to(&format!("/console/tasks/{task}?done=resend")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_copies_the_text_and_address_under_a_new_key_due_now() {
        let row = OutboxRow {
            id: 7,
            key: "m1/nomination@xiguan/overdue/0#email:x@example.org".into(),
            round_id: Some(1),
            task_id: Some(3),
            kind: MessageKind::Overdue,
            channel: OutboxChannel::Email,
            address: "x@example.org".into(),
            recipient_json: r#"{"contact":{"name":"张三"}}"#.into(),
            subject: "逾期提醒".into(),
            body: "正文".into(),
            state: OutboxState::Dead,
            attempts: 5,
            not_before: 10,
            created_at: 10,
            sent_at: None,
            last_error: Some("550".into()),
            html: "<p>正文</p>".into(),
            item_json: "{}".into(),
            message_id: Some("<a@b>".into()),
            next_attempt_at: None,
        };
        let copy = resend_copy(&row, 99);
        assert_eq!(copy.key, format!("{}/resend/99", row.key));
        assert_eq!(
            (
                copy.address.as_str(),
                copy.subject.as_str(),
                copy.body.as_str(),
                copy.html.as_str()
            ),
            ("x@example.org", "逾期提醒", "正文", "<p>正文</p>")
        );
        assert_eq!(
            (copy.not_before, copy.created_at, copy.task_id),
            (99, 99, Some(3))
        );
        assert_eq!(recipient(&row), "张三（x@example.org）");
    }
}
