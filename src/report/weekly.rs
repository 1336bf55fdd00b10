//! The weekly 通报 (#18 item 6), its pure part: from the tasks of the running rounds and
//! the instant of sending, rank the branches by punctuality and list what is overdue, and
//! write that as an HTML mail (with a bar chart made of table cells, which every mail
//! client renders: no SVG, no images, no CSS classes), a plain text and a markdown card for
//! the WeCom and DingTalk robots.
//!
//! Punctuality counts the tasks that were due by now: done by their deadline (准时), done
//! after it (逾期完成) and still open past it (逾期未完成); waived and cancelled tasks and
//! tasks not yet due do not count. The rate is 准时 over all three; a branch with nothing
//! due yet is listed last without a rate.
//!
//! The programme that sends it is `engine::weekly` (`[weekly_report]` in the config).

use super::TaskLine;
use crate::core::state::{AssigneeKind, TaskState};
use crate::engine::{days_between, from_ms};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// One branch's line in the ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rank {
    /// Branch name.
    pub branch: String,
    /// Done by the deadline.
    pub on_time: usize,
    /// Done after the deadline.
    pub late: usize,
    /// Open past the deadline.
    pub overdue: usize,
    /// Percent on time (rounded down), None when nothing was due.
    pub pct: Option<u64>,
}

impl Rank {
    /// Tasks due by now.
    pub fn due(&self) -> usize {
        self.on_time + self.late + self.overdue
    }
}

/// One overdue task in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Late {
    /// Assignee name.
    pub branch: String,
    /// Task title.
    pub task: String,
    /// Workflow title of its round.
    pub workflow: String,
    /// Calendar days past the deadline.
    pub days: i64,
}

/// The week's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The office's name.
    pub office: String,
    /// The day it speaks of (local).
    pub date: String,
    /// Branches, best first.
    pub ranking: Vec<Rank>,
    /// Overdue tasks, longest overdue first.
    pub overdue: Vec<Late>,
}

/// The summary of `lines` (the running rounds' tasks) at `now`.
pub fn summary(office: &str, lines: &[TaskLine], now: DateTime<Utc>, tz: Tz) -> Summary {
    let now_ms = now.timestamp_millis();
    let mut by_branch: BTreeMap<&str, Rank> = BTreeMap::new();
    let mut overdue = Vec::new();
    for t in lines {
        if t.assignee_kind != AssigneeKind::Unit {
            continue;
        }
        let rank = by_branch.entry(&t.assignee).or_insert_with(|| Rank {
            branch: t.assignee.clone(),
            on_time: 0,
            late: 0,
            overdue: 0,
            pct: None,
        });
        let Some(due) = t.due_at else { continue };
        match (t.state, t.completed_at) {
            (TaskState::Done, Some(done)) if due <= now_ms || done <= due => {
                if done <= due {
                    rank.on_time += 1;
                } else {
                    rank.late += 1;
                }
            }
            (TaskState::Open, _) if due < now_ms => {
                rank.overdue += 1;
                overdue.push(Late {
                    branch: t.assignee.clone(),
                    task: t.title.clone(),
                    workflow: t.workflow.clone(),
                    days: (-days_between(now, from_ms(due), tz)).max(0),
                });
            }
            _ => {}
        }
    }
    let mut ranking: Vec<Rank> = by_branch
        .into_values()
        .map(|mut r| {
            r.pct = (r.on_time as u64 * 100).checked_div(r.due() as u64);
            r
        })
        .collect();
    // Best rate first; among equals, fewer overdue, then by name (stable for a 通报).
    ranking.sort_by(|a, b| {
        let key = |r: &Rank| (r.pct.is_none(), std::cmp::Reverse(r.pct), r.overdue);
        key(a).cmp(&key(b)).then_with(|| a.branch.cmp(&b.branch))
    });
    overdue.sort_by(|a, b| b.days.cmp(&a.days).then_with(|| a.branch.cmp(&b.branch)));
    Summary {
        office: office.to_string(),
        date: now.with_timezone(&tz).format("%Y年%-m月%-d日").to_string(),
        ranking,
        overdue,
    }
}

const HTML: &str = r##"<div style="font-family:sans-serif;color:#222">
<h2 style="color:#8f1d1d">{{ s.office }}工作进度通报（{{ s.date }}）</h2>
<p>按时完成率排名（截至本周，已到期任务中按时完成的比例）：</p>
<table cellpadding="4" cellspacing="0" border="0" style="border-collapse:collapse">
<tr><th align="left">名次</th><th align="left">党组织</th><th align="left" width="220">按时完成率</th><th align="right">准时</th><th align="right">逾期完成</th><th align="right">逾期未完成</th></tr>
{% for r in s.ranking %}<tr>
<td>{{ loop.index }}</td><td>{{ r.branch }}</td>
<td>{% if r.pct is not none %}<table cellpadding="0" cellspacing="0" border="0" width="200"><tr><td width="{{ r.pct * 2 or 1 }}" height="12" bgcolor="#8f1d1d" style="background:#8f1d1d"></td><td width="{{ 200 - r.pct * 2 }}" bgcolor="#eeeeee" style="background:#eeeeee"></td></tr></table>{{ r.pct }}%{% else %}暂无到期任务{% endif %}</td>
<td align="right">{{ r.on_time }}</td><td align="right">{{ r.late }}</td><td align="right">{{ r.overdue }}</td>
</tr>{% endfor %}
</table>
{% if s.overdue %}<h3>逾期未完成事项（{{ s.overdue | length }} 项）</h3>
<ul>{% for l in s.overdue %}<li>{{ l.branch }}：{{ l.task }}（{{ l.workflow }}），已逾期 {{ l.days }} 天</li>{% endfor %}</ul>
{% else %}<p>本周没有逾期未完成事项。</p>{% endif %}
</div>"##;

const TEXT: &str = r#"按时完成率排名（已到期任务中按时完成的比例）：
{% for r in s.ranking %}{{ loop.index }}. {{ r.branch }}：{% if r.pct is not none %}{{ r.pct }}%（准时 {{ r.on_time }}，逾期完成 {{ r.late }}，逾期未完成 {{ r.overdue }}）{% else %}暂无到期任务{% endif %}
{% endfor %}
{% if s.overdue %}逾期未完成事项（{{ s.overdue | length }} 项）：
{% for l in s.overdue %}- {{ l.branch }}：{{ l.task }}（{{ l.workflow }}），已逾期 {{ l.days }} 天
{% endfor %}{% else %}本周没有逾期未完成事项。
{% endif %}"#;

/// A template failed (a bug: the templates are fixed).
#[derive(Debug, thiserror::Error)]
#[error("weekly summary template: {0}")]
pub struct RenderError(#[from] minijinja::Error);

fn render(source: &str, name: &str, s: &Summary) -> Result<String, RenderError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // The name decides escaping: `.html` escapes what the branches' names carry.
    env.add_template(name, source)?;
    Ok(env
        .get_template(name)?
        .render(minijinja::context! { s => minijinja::Value::from(minijinja::value::Serde(s)) })?)
}

impl Summary {
    /// The mail's subject.
    pub fn subject(&self) -> String {
        format!("{}工作进度通报（{}）", self.office, self.date)
    }

    /// The HTML mail: the ranking as a table with a bar per branch, then the overdue list.
    pub fn html(&self) -> Result<String, RenderError> {
        render(HTML, "weekly.html", self)
    }

    /// The plain text (mail's text part), whose lines also read as markdown: the robots'
    /// card is made from it, under the subject as its heading.
    pub fn text(&self) -> Result<String, RenderError> {
        render(TEXT, "weekly.txt", self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Asia::Shanghai;

    fn bj(m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(2019, m, d, h, 0, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc)
    }

    fn task(
        unit: &str,
        state: TaskState,
        due: DateTime<Utc>,
        done: Option<DateTime<Utc>>,
    ) -> TaskLine {
        TaskLine {
            id: 1,
            round_id: 1,
            workflow: "后备干部选拔".into(),
            round_start: "2019-07-01".into(),
            stage: "s".into(),
            stage_title: "阶段".into(),
            title: format!("{unit}的任务"),
            assignee_kind: AssigneeKind::Unit,
            assignee_id: unit.into(),
            assignee: unit.into(),
            secretary: None,
            phone: None,
            state,
            due_at: Some(due.timestamp_millis()),
            completed_at: done.map(|d| d.timestamp_millis()),
            provisional: false,
        }
    }

    fn week() -> Vec<TaskLine> {
        let due = bj(7, 12, 18);
        vec![
            task("东关", TaskState::Done, due, Some(bj(7, 11, 9))),
            task("东关", TaskState::Done, due, Some(bj(7, 12, 9))),
            task("西关", TaskState::Done, due, Some(bj(7, 13, 9))),
            task("西关", TaskState::Open, due, None),
            task("南门<b>", TaskState::Open, bj(7, 10, 18), None),
            // Not yet due and waived: not counted.
            task("北门", TaskState::Open, bj(7, 20, 18), None),
            task("东关", TaskState::Waived, due, Some(bj(7, 13, 9))),
        ]
    }

    #[test]
    fn branches_rank_by_the_share_done_on_time_and_the_overdue_are_listed_longest_first() {
        let s = summary("清水街道", &week(), bj(7, 15, 10), Shanghai);
        let order: Vec<(&str, Option<u64>, usize)> = s
            .ranking
            .iter()
            .map(|r| (r.branch.as_str(), r.pct, r.due()))
            .collect();
        assert_eq!(
            order,
            [
                ("东关", Some(100), 2),
                ("南门<b>", Some(0), 1),
                ("西关", Some(0), 2),
                ("北门", None, 0)
            ]
        );
        let late: Vec<(&str, i64)> = s
            .overdue
            .iter()
            .map(|l| (l.branch.as_str(), l.days))
            .collect();
        assert_eq!(late, [("南门<b>", 5), ("西关", 3)]);
        assert_eq!(s.date, "2019年7月15日");
    }

    #[test]
    fn the_mail_and_the_card_read_as_a_tongbao() {
        let s = summary("清水街道", &week(), bj(7, 15, 10), Shanghai);
        let html = s.html().expect("html");
        assert!(html.contains("南门&lt;b&gt;"), "names are escaped");
        assert!(
            html.contains(r#"<td width="200" height="12""#),
            "东关's full bar"
        );
        insta::assert_snapshot!("weekly_html", html);
        insta::assert_snapshot!("weekly_text", s.text().expect("text"));
        assert_eq!(s.subject(), "清水街道工作进度通报（2019年7月15日）");
    }
}
