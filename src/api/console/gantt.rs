//! The SVG timeline of a round's page: geometry only, a plain function of the round's
//! stages and tasks, the clock's reading, the time zone and the holiday calendar.
//! `templates/console/round.html` draws the SVG from it.

use crate::core::calendar::Calendar;
use crate::core::state::TaskState;
use crate::core::timefmt::{provisional_mark, zh_date, zh_datetime};
use crate::engine::{StageProgress, from_ms, local_date};
use crate::store::TaskRow;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// Left margin for the stage names.
const LABEL_W: f64 = 180.0;
/// Height of the date axis above the first row.
const AXIS_H: f64 = 46.0;
/// Height of one stage row (the bar, its deadline diamonds and their printed dates).
const ROW_H: f64 = 44.0;
/// Width of the time axis: with the label margin the chart fits a 1,000 px container
/// without sideways scrolling (the stylesheet scales it down further, e.g. for print).
const SPAN_W: f64 = 760.0;
/// Stage label font size; labels longer than the margin are shortened with "…".
const LABEL_PX: f64 = 13.0;
/// Least distance between two printed deadline dates of a row, so they never overlap.
const DATE_GAP: f64 = 30.0;
/// Height of a stage bar.
const BAR_H: f64 = 16.0;
/// Half the width of a deadline diamond.
const DIAMOND: f64 = 6.5;

/// A server-drawn Gantt chart of a round: geometry only; `round.html` draws the SVG.
#[derive(Debug, Serialize)]
pub(super) struct Gantt {
    width: f64,
    height: f64,
    tick_y1: f64,
    tick_y2: f64,
    label_y: f64,
    rest_h: f64,
    range: String,
    ticks: Vec<Tick>,
    rest: Vec<Span>,
    rows: Vec<GanttRow>,
    now: Option<NowLine>,
    /// Some instant or shaded day rests on the provisional calendar (the legend says so).
    provisional: bool,
}

#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    label_x: f64,
    label: Option<String>,
    major: bool,
}

/// A non-working day's column.
#[derive(Debug, Serialize)]
struct Span {
    x: f64,
    w: f64,
    tip: String,
}

#[derive(Debug, Serialize)]
struct GanttRow {
    id: String,
    /// The stage title, shortened to fit the label margin.
    label: String,
    /// The whole title (tooltip, and the details table under the chart).
    title: String,
    /// The window in words, for the details table (readable in print, without hovering).
    window: Option<String>,
    line_y: f64,
    text_y: f64,
    bar: Option<Bar>,
    diamonds: Vec<Diamond>,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    done_w: f64,
    tip: String,
}

#[derive(Debug, Serialize)]
struct Diamond {
    points: String,
    cls: &'static str,
    /// The deadline rests on the provisional calendar (drawn dashed).
    provisional: bool,
    tip: String,
    /// The deadline's date printed under the diamond (`7/4`), None where it would overlap
    /// the previous one.
    date: Option<String>,
    date_x: f64,
    date_y: f64,
}

#[derive(Debug, Serialize)]
struct NowLine {
    x: f64,
    label_x: f64,
    label_y: f64,
    label: String,
    /// `end` when the label is drawn to the left of the line (near the right edge).
    anchor: &'static str,
    /// Now is outside the chart's range: the line sits on the nearer edge.
    outside: bool,
}

/// The display width of `text` at the label size: CJK and other wide characters take a
/// full em, ASCII about half.
fn text_px(text: &str) -> f64 {
    text.chars()
        .map(|c| if c.is_ascii() { 0.55 } else { 1.0 })
        .sum::<f64>()
        * LABEL_PX
}

/// `text` shortened with "…" to fit `max_px` at the label size.
fn fit_label(text: &str, max_px: f64) -> String {
    if text_px(text) <= max_px {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        let next = format!("{out}{c}…");
        if text_px(&next) > max_px {
            break;
        }
        out.push(c);
    }
    format!("{out}…")
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Lay out a round's Gantt chart: one bar per stage from its opening to its closing, a
/// diamond per distinct deadline of the stage's tasks, day ticks, non-working days shaded
/// (from the holiday calendar, where it covers the year), and a "now" line. None when the
/// round has no dated instant at all.
pub(super) fn gantt(
    stages: &[StageProgress],
    tasks: &[TaskRow],
    now: DateTime<Utc>,
    tz: Tz,
    calendar: &Calendar,
) -> Option<Gantt> {
    let live: Vec<&TaskRow> = tasks
        .iter()
        .filter(|t| t.state != TaskState::Cancelled)
        .collect();
    let instants: Vec<DateTime<Utc>> = stages
        .iter()
        .flat_map(|s| [s.opens, s.closes])
        .flatten()
        .chain(live.iter().filter_map(|t| t.due_at.map(from_ms)))
        .collect();
    let first = local_date(*instants.iter().min()?, tz);
    let last = local_date(*instants.iter().max()?, tz);
    let end = last.succ_opt()?;
    let days = (end - first).num_days().max(1);
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let start_utc = midnight(first)?;
    let end_utc = midnight(end)?;
    let ppd = (SPAN_W / days as f64).clamp(3.0, 44.0);
    let x = |t: DateTime<Utc>| r1(LABEL_W + (t - start_utc).num_seconds() as f64 / 86_400.0 * ppd);
    let width = r1(LABEL_W + days as f64 * ppd + 24.0);
    let body_h = stages.len() as f64 * ROW_H;
    let height = r1(AXIS_H + body_h + 22.0);
    let label_every = match days {
        ..=31 => 1,
        32..=62 => 2,
        63..=120 => 7,
        _ => 0,
    };
    let mut ticks = Vec::new();
    let mut rest = Vec::new();
    for i in 0..=days {
        let Some(d) = first.checked_add_days(chrono::Days::new(i as u64)) else {
            break;
        };
        let Some(at) = midnight(d) else { continue };
        let major = d.day() == 1;
        let labelled = if label_every == 0 {
            major
        } else {
            i % label_every == 0
        };
        if label_every == 0 && !major && i != 0 {
            continue;
        }
        let px = x(at);
        if i < days && days <= 120 && calendar.is_working_day(d) == Ok(false) {
            rest.push(Span {
                x: px,
                w: r1(ppd),
                tip: if calendar.is_provisional(d.year()) {
                    format!("{}（休息日，暂按预计日历）", zh_date(d))
                } else {
                    format!("{}（休息日）", zh_date(d))
                },
            });
        }
        ticks.push(Tick {
            x: px,
            label_x: r1(px + 2.0),
            label: (labelled && i < days).then(|| format!("{}/{}", d.month(), d.day())),
            major,
        });
    }
    let now_ms = now.timestamp_millis();
    let rows = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let top = AXIS_H + i as f64 * ROW_H;
            let cy = top + ROW_H / 2.0;
            let bar_window = match (s.opens, s.closes) {
                (Some(o), Some(c)) => Some(format!(
                    "{}{} — {}{}",
                    zh_datetime(&o.with_timezone(&tz)),
                    provisional_mark(s.opens_provisional),
                    zh_datetime(&c.with_timezone(&tz)),
                    provisional_mark(s.closes_provisional)
                )),
                _ => None,
            };
            let bar = match (s.opens, s.closes) {
                (Some(o), Some(c)) => {
                    let (x1, x2) = (x(o), x(c));
                    let w = r1((x2 - x1).max(2.0));
                    Some(Bar {
                        x: x1,
                        y: r1(cy - BAR_H / 2.0),
                        w,
                        h: BAR_H,
                        done_w: if s.total == 0 {
                            0.0
                        } else {
                            r1(w * s.done as f64 / s.total as f64)
                        },
                        tip: format!(
                            "{}：{}{} — {}{}，完成 {}/{}",
                            s.title,
                            zh_datetime(&o.with_timezone(&tz)),
                            provisional_mark(s.opens_provisional),
                            zh_datetime(&c.with_timezone(&tz)),
                            provisional_mark(s.closes_provisional),
                            s.done,
                            s.total
                        ),
                    })
                }
                _ => None,
            };
            let mut by_due: BTreeMap<i64, Vec<&TaskRow>> = BTreeMap::new();
            for t in live.iter().filter(|t| t.stage == s.id) {
                if let Some(d) = t.due_at {
                    by_due.entry(d).or_default().push(t);
                }
            }
            let mut last_date_x = f64::NEG_INFINITY;
            let diamonds = by_due
                .into_iter()
                .map(|(due, ts)| {
                    let dx = x(from_ms(due));
                    let local = from_ms(due).with_timezone(&tz);
                    let date = (dx - last_date_x >= DATE_GAP).then(|| {
                        last_date_x = dx;
                        format!("{}/{}", local.month(), local.day())
                    });
                    let late = ts
                        .iter()
                        .any(|t| t.state == TaskState::Open && due < now_ms);
                    let all_done = ts
                        .iter()
                        .all(|t| t.state == TaskState::Done || t.state == TaskState::Waived);
                    let mut titles: Vec<&str> = ts.iter().map(|t| t.title.as_str()).collect();
                    titles.dedup();
                    let done = ts
                        .iter()
                        .filter(|t| t.state == TaskState::Done || t.state == TaskState::Waived)
                        .count();
                    let provisional = ts.iter().any(|t| t.provisional);
                    Diamond {
                        date,
                        date_x: dx,
                        date_y: r1(cy + DIAMOND + 13.0),
                        provisional,
                        points: format!(
                            "{},{} {},{} {},{} {},{}",
                            dx,
                            r1(cy - DIAMOND - 1.0),
                            r1(dx + DIAMOND),
                            r1(cy),
                            dx,
                            r1(cy + DIAMOND + 1.0),
                            r1(dx - DIAMOND),
                            r1(cy)
                        ),
                        cls: if late {
                            "late"
                        } else if all_done {
                            "done"
                        } else {
                            "pending"
                        },
                        tip: format!(
                            "截止 {}{}：{}（{} 项，已完成 {}）",
                            zh_datetime(&from_ms(due).with_timezone(&tz)),
                            provisional_mark(provisional),
                            titles.join("、"),
                            ts.len(),
                            done
                        ),
                    }
                })
                .collect();
            GanttRow {
                id: s.id.clone(),
                label: fit_label(&s.title, LABEL_W - 16.0),
                title: s.title.clone(),
                window: bar_window,
                line_y: r1(top + ROW_H),
                text_y: r1(cy + 4.5),
                bar,
                diamonds,
            }
        })
        .collect();
    // Now is always marked: on the nearer edge, with an arrow, when the round lies wholly
    // in the past or the future.
    let now_line = {
        let clamped = now.clamp(start_utc, end_utc);
        let outside = clamped != now;
        let nx = x(clamped);
        let local = now.with_timezone(&tz);
        let when = format!(
            "现在 {}月{}日 {}",
            local.month(),
            local.day(),
            local.format("%H:%M")
        );
        let label = if now > end_utc {
            format!("{when} →")
        } else if now < start_utc {
            format!("← {when}")
        } else {
            when
        };
        let right_half = nx > LABEL_W + (days as f64 * ppd) / 2.0;
        Some(NowLine {
            x: nx,
            label_x: if right_half {
                r1(nx - 3.0)
            } else {
                r1(nx + 3.0)
            },
            label_y: r1(AXIS_H + body_h + 14.0),
            label,
            anchor: if right_half { "end" } else { "start" },
            outside,
        })
    };
    Some(Gantt {
        width,
        height,
        tick_y1: r1(AXIS_H - 6.0),
        tick_y2: r1(AXIS_H + body_h),
        label_y: r1(AXIS_H - 12.0),
        rest_h: r1(body_h + 6.0),
        range: format!("{} 至 {}", zh_date(first), zh_date(last)),
        ticks,
        rest,
        provisional: calendar
            .provisional_year()
            .is_some_and(|y| first.year() <= y && y <= last.year()),
        rows,
        now: now_line,
    })
}

/// The Gantt chart of a trial plan (the editor's preview): each stage's window, each task
/// instance's deadline as still to do; no progress yet.
pub(super) fn plan_gantt(
    plan: &crate::core::plan::Plan,
    now: DateTime<Utc>,
    tz: Tz,
    calendar: &Calendar,
) -> Option<Gantt> {
    let utc = |m: &crate::core::plan::Moment| m.at.map(|t| t.with_timezone(&Utc));
    let stages: Vec<StageProgress> = plan
        .stages
        .iter()
        .map(|s| StageProgress {
            id: s.id.clone(),
            title: s.title.clone(),
            opens: utc(&s.opens),
            closes: utc(&s.closes),
            opens_provisional: s.opens.provisional,
            closes_provisional: s.closes.provisional,
            total: plan.tasks.iter().filter(|t| t.stage == s.id).count(),
            done: 0,
            overdue: 0,
        })
        .collect();
    let tasks: Vec<TaskRow> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| TaskRow {
            id: i as i64,
            round_id: 0,
            key: t.key.clone(),
            task: t.task.clone(),
            stage: t.stage.clone(),
            title: t.title.clone(),
            assignee_kind: t.assignee.kind,
            assignee_id: t.assignee.id.clone(),
            assignee_name: t.assignee.name.clone(),
            due_at: utc(&t.due).map(|d| d.timestamp_millis()),
            // Waiting, not open: a preview has nothing overdue, whatever today is.
            state: TaskState::Waiting,
            completed_at: None,
            updated_at: 0,
            provisional: t.due.provisional,
            person: t.person.clone(),
        })
        .collect();
    gantt(&stages, &tasks, now, tz, calendar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::{AssigneeKind, TaskState};
    use chrono_tz::Asia::Shanghai;

    /// A Beijing wall-clock time in July 2019 (the 1st is a Monday).
    fn bj(d: u32, h: u32) -> DateTime<Utc> {
        Shanghai
            .with_ymd_and_hms(2019, 7, d, h, 0, 0)
            .single()
            .expect("valid time")
            .with_timezone(&Utc)
    }

    fn stage(
        id: &str,
        opens: Option<DateTime<Utc>>,
        closes: Option<DateTime<Utc>>,
    ) -> StageProgress {
        StageProgress {
            id: id.into(),
            title: format!("{id} 阶段"),
            opens,
            closes,
            opens_provisional: false,
            closes_provisional: false,
            total: 0,
            done: 0,
            overdue: 0,
        }
    }

    fn task(id: i64, stage: &str, due: DateTime<Utc>, state: TaskState) -> TaskRow {
        TaskRow {
            id,
            round_id: 1,
            key: format!("t{id}"),
            task: format!("t{id}"),
            stage: stage.into(),
            title: format!("任务{id}"),
            assignee_kind: AssigneeKind::Unit,
            assignee_id: "a".into(),
            assignee_name: "甲社区".into(),
            due_at: Some(due.timestamp_millis()),
            state,
            completed_at: None,
            updated_at: 0,
            provisional: false,
            person: None,
        }
    }

    fn calendar(years: &[i32]) -> Calendar {
        let files: Vec<(String, String)> = years
            .iter()
            .map(|y| {
                (
                    format!("{y}.json"),
                    format!(r#"{{"year": {y}, "papers": [], "days": []}}"#),
                )
            })
            .collect();
        Calendar::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .expect("valid calendar")
    }

    /// One stage from Monday 1 July to Monday 8 July 2019 (Beijing midnight): eight days
    /// on the axis at the widest 44 px a day.
    fn week() -> Vec<StageProgress> {
        let mut s = stage("nomination", Some(bj(1, 0)), Some(bj(8, 0)));
        s.total = 2;
        s.done = 1;
        vec![s]
    }

    #[test]
    fn a_round_without_any_dated_instant_has_no_chart() {
        let stages = [stage("nomination", None, None)];
        assert!(gantt(&stages, &[], bj(1, 9), Shanghai, &calendar(&[2019])).is_none());
    }

    #[test]
    fn a_stage_bar_runs_from_local_midnight_of_its_opening_and_its_done_part_is_proportional() {
        let g = gantt(&week(), &[], bj(3, 9), Shanghai, &calendar(&[2019])).expect("chart");
        assert_eq!(g.width, LABEL_W + 8.0 * 44.0 + 24.0);
        assert_eq!(g.height, AXIS_H + ROW_H + 22.0);
        assert_eq!(g.rows.len(), 1);
        let bar = g.rows[0].bar.as_ref().expect("bar");
        // Opening at Beijing midnight sits on the axis origin, not 8 hours (14.7 px) off it.
        assert_eq!(bar.x, LABEL_W);
        assert_eq!(bar.w, 7.0 * 44.0);
        assert_eq!(bar.done_w, 7.0 * 44.0 / 2.0);
        assert_eq!(bar.y, AXIS_H + ROW_H / 2.0 - BAR_H / 2.0);
        assert!(
            bar.tip
                .starts_with("nomination 阶段：2019年7月1日（星期一）00:00")
        );
        assert!(bar.tip.ends_with("完成 1/2"), "{}", bar.tip);
        assert_eq!(g.range, "2019年7月1日（星期一） 至 2019年7月8日（星期一）");
    }

    #[test]
    fn a_stage_without_a_window_has_a_row_but_no_bar() {
        let mut stages = week();
        stages.push(stage("review", None, None));
        let tasks = [task(1, "review", bj(5, 18), TaskState::Open)];
        let g = gantt(&stages, &tasks, bj(3, 9), Shanghai, &calendar(&[2019])).expect("chart");
        assert_eq!(g.rows.len(), 2);
        assert!(g.rows[1].bar.is_none());
        assert_eq!(g.rows[1].diamonds.len(), 1);
        assert_eq!(g.rows[1].line_y, AXIS_H + 2.0 * ROW_H);
    }

    #[test]
    fn deadlines_are_one_diamond_each_classed_late_done_or_pending_and_cancelled_tasks_are_left_out()
     {
        let tasks = [
            task(1, "nomination", bj(2, 18), TaskState::Done),
            task(2, "nomination", bj(2, 18), TaskState::Waived),
            task(3, "nomination", bj(3, 18), TaskState::Open),
            task(4, "nomination", bj(3, 18), TaskState::Done),
            task(5, "nomination", bj(5, 18), TaskState::Open),
            task(6, "nomination", bj(6, 18), TaskState::Cancelled),
        ];
        let now = bj(4, 9);
        let g = gantt(&week(), &tasks, now, Shanghai, &calendar(&[2019])).expect("chart");
        let d = &g.rows[0].diamonds;
        let classes: Vec<&str> = d.iter().map(|d| d.cls).collect();
        assert_eq!(classes, ["done", "late", "pending"]);
        // 18:00 on 2 July is 1.75 days from the origin; the diamond is centred on its row.
        let x = LABEL_W + 1.75 * 44.0;
        let cy = AXIS_H + ROW_H / 2.0;
        assert_eq!(
            d[0].points,
            format!(
                "{x},{} {},{cy} {x},{} {},{cy}",
                cy - DIAMOND - 1.0,
                x + DIAMOND,
                cy + DIAMOND + 1.0,
                x - DIAMOND
            )
        );
        assert!(
            d[1].tip.ends_with("：任务3、任务4（2 项，已完成 1）"),
            "{}",
            d[1].tip
        );
        assert!(!d[2].provisional);
    }

    #[test]
    fn a_short_round_labels_every_day_and_shades_the_weekend_of_a_covered_year() {
        let g = gantt(&week(), &[], bj(3, 9), Shanghai, &calendar(&[2019])).expect("chart");
        assert_eq!(g.ticks.len(), 9, "one tick per midnight, the end included");
        let labels: Vec<Option<&str>> = g.ticks.iter().map(|t| t.label.as_deref()).collect();
        assert_eq!(labels.first(), Some(&Some("7/1")));
        assert_eq!(labels.get(7), Some(&Some("7/8")));
        assert_eq!(labels.last(), Some(&None), "the closing tick has no label");
        let rest: Vec<(f64, &str)> = g.rest.iter().map(|s| (s.x, s.tip.as_str())).collect();
        assert_eq!(
            rest,
            [
                (LABEL_W + 5.0 * 44.0, "2019年7月6日（星期六）（休息日）"),
                (LABEL_W + 6.0 * 44.0, "2019年7月7日（星期日）（休息日）"),
            ]
        );
        assert!(!g.provisional);
    }

    #[test]
    fn days_of_a_year_without_calendar_data_are_not_shaded() {
        let g = gantt(&week(), &[], bj(3, 9), Shanghai, &calendar(&[2030])).expect("chart");
        assert!(g.rest.is_empty());
    }

    #[test]
    fn a_round_in_the_provisional_year_says_so_in_the_legend_and_the_shading() {
        let g = gantt(&week(), &[], bj(3, 9), Shanghai, &calendar(&[2018])).expect("chart");
        assert!(g.provisional);
        assert!(
            g.rest
                .iter()
                .all(|s| s.tip.ends_with("（休息日，暂按预计日历）")),
            "{:?}",
            g.rest
        );
        assert_eq!(g.rest.len(), 2);
    }

    #[test]
    fn long_rounds_label_fewer_days_and_only_month_starts_beyond_four_months() {
        let labelled = |days: u64| {
            let closes = bj(1, 0) + chrono::Duration::days(days as i64 - 1);
            let stages = [stage("s", Some(bj(1, 0)), Some(closes))];
            let g = gantt(&stages, &[], bj(1, 9), Shanghai, &calendar(&[2019])).expect("chart");
            g.ticks
                .iter()
                .filter_map(|t| t.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(labelled(31).len(), 31);
        let two_monthly = labelled(62);
        assert_eq!(two_monthly.len(), 31);
        assert_eq!(&two_monthly[..2], ["7/1", "7/3"]);
        let weekly = labelled(120);
        assert_eq!(&weekly[..3], ["7/1", "7/8", "7/15"]);
        // Past 120 days only the first of each month has a tick (and the origin, unlabelled
        // unless it is a first), and no day is shaded.
        let stages = [stage(
            "s",
            Some(bj(1, 0)),
            Some(bj(1, 0) + chrono::Duration::days(150)),
        )];
        let g = gantt(&stages, &[], bj(1, 9), Shanghai, &calendar(&[2019])).expect("chart");
        let labels: Vec<String> = g.ticks.iter().filter_map(|t| t.label.clone()).collect();
        assert_eq!(labels, ["7/1", "8/1", "9/1", "10/1", "11/1"]);
        assert!(g.ticks.iter().all(|t| t.major));
        assert!(g.rest.is_empty());
        // 151 days squeezed into the chart's span.
        assert_eq!(g.width, LABEL_W + SPAN_W + 24.0);
    }

    #[test]
    fn the_now_line_is_drawn_inside_the_range_and_on_the_nearer_edge_outside_it() {
        let g = gantt(&week(), &[], bj(4, 12), Shanghai, &calendar(&[2019])).expect("chart");
        let now = g.now.expect("now line");
        assert_eq!(now.x, LABEL_W + 3.5 * 44.0);
        assert_eq!(now.label, "现在 7月4日 12:00");
        assert_eq!(now.label_y, AXIS_H + ROW_H + 14.0);
        let before = gantt(
            &week(),
            &[],
            bj(1, 0) - chrono::Duration::hours(1),
            Shanghai,
            &calendar(&[2019]),
        );
        let before = before
            .expect("chart")
            .now
            .expect("now marked before the start");
        assert!(before.outside);
        assert_eq!(before.x, LABEL_W);
        assert!(
            before.label.starts_with("← 现在 6月30日"),
            "{}",
            before.label
        );
        let after = gantt(&week(), &[], bj(26, 9), Shanghai, &calendar(&[2019]));
        let after = after.expect("chart").now.expect("now marked past the end");
        assert!(after.outside && after.anchor == "end");
        assert_eq!(after.x, LABEL_W + 8.0 * 44.0);
        assert_eq!(after.label, "现在 7月26日 09:00 →");
    }

    #[test]
    fn a_long_stage_title_is_shortened_to_the_label_margin_and_kept_whole_for_the_details() {
        let mut s = week();
        s[0].title = "村（社区）党组织书记后备人选的民主推荐与组织考察阶段".into();
        let g = gantt(&s, &[], bj(3, 9), Shanghai, &calendar(&[2019])).expect("chart");
        let row = &g.rows[0];
        assert!(row.label.ends_with('…'), "{}", row.label);
        assert!(text_px(&row.label) <= LABEL_W - 16.0, "{}", row.label);
        assert_eq!(row.title, s[0].title);
        assert!(
            row.window
                .as_deref()
                .is_some_and(|w| w.contains("2019年7月1日"))
        );
        assert_eq!(fit_label("部署", 100.0), "部署");
    }

    #[test]
    fn deadline_dates_are_printed_under_the_diamonds_without_overlapping() {
        // 151 days: about 5 px a day, so deadlines a day apart would collide.
        let mut s = week();
        s[0].closes = Some(bj(1, 0) + chrono::Duration::days(150));
        let tasks = [
            task(1, "nomination", bj(2, 18), TaskState::Open),
            task(2, "nomination", bj(3, 18), TaskState::Open),
            task(3, "nomination", bj(20, 18), TaskState::Open),
        ];
        let g = gantt(&s, &tasks, bj(1, 9), Shanghai, &calendar(&[2019])).expect("chart");
        let d = &g.rows[0].diamonds;
        let dates: Vec<Option<&str>> = d.iter().map(|d| d.date.as_deref()).collect();
        assert_eq!(dates, [Some("7/2"), None, Some("7/20")]);
        assert!(d[2].date_x - d[0].date_x >= DATE_GAP);
    }
}
