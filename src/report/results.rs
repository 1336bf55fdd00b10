//! 考核结果汇总表: the year's assessment results per person, and per branch's submission
//! the count of each rating and the quota check (the share of the capped rating against
//! the workflow's `ratings.quota`, judged with [`QuotaRule::max_of`] so the export rounds
//! exactly as the submission did).
//!
//! Pure: the stored results (names and tiers looked up) and each collecting task's rules
//! come in; a [`Report`] goes out.

use super::{Cell, Column, Report, Sheet, col};
use crate::core::assessment::{QuotaRule, Rules};
use std::collections::BTreeMap;

/// 考核结果: one row per person and year.
pub const PERSON_COLUMNS: &[Column] = &[
    col("year", "年度"),
    col("branch", "支部"),
    col("name", "姓名"),
    col("tier", "梯队"),
    col("rating", "考核等次"),
    col("failing", "是否不合格"),
    col("priority", "优先使用"),
];

/// 支部汇总: one row per branch's submission (branch, year and round).
pub const SUMMARY_COLUMNS: &[Column] = &[
    col("year", "年度"),
    col("branch", "支部"),
    col("round", "轮次编号"),
    col("rated", "已评人数"),
    col("ratings", "等次分布"),
    col("quota_rating", "限额等次"),
    col("quota_count", "限额等次人数"),
    col("quota_share", "限额等次占比(%)"),
    col("quota_percent", "比例上限(%)"),
    col("quota_max", "限额人数"),
    col("within_quota", "是否符合比例"),
    col("basis", "依据"),
];

/// 等次分布: one row per submission and rating of its scale.
pub const RATING_COLUMNS: &[Column] = &[
    col("year", "年度"),
    col("branch", "支部"),
    col("round", "轮次编号"),
    col("rating", "考核等次"),
    col("count", "人数"),
];

/// A stored result with what the export shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatedLine {
    /// The assessment year.
    pub year: i64,
    /// The branch's id (when rated).
    pub unit_id: String,
    /// The branch's name.
    pub unit: String,
    /// The round that collected the rating.
    pub round_id: i64,
    /// The task that collected it (its rules judge the submission).
    pub task_id: i64,
    /// The person's name.
    pub name: String,
    /// The person's tier name, when known.
    pub tier: Option<String>,
    /// The rating.
    pub rating: String,
    /// Whether it fails.
    pub failing: bool,
    /// On the 优先使用 list.
    pub priority: bool,
}

fn yes_no(b: bool) -> Cell {
    if b { "是" } else { "否" }.into()
}

/// The share in percent, to one decimal.
fn share(count: usize, of: usize) -> Cell {
    if of == 0 {
        return Cell::Empty;
    }
    let tenths = (count * 1000 + of / 2) / of;
    Cell::Num(tenths as f64 / 10.0)
}

/// The ratings of a submission in scale order (ratings kept that the scale no longer
/// lists follow, in the order met), each with its count.
fn distribution<'a>(rules: Option<&'a Rules>, lines: &[&'a RatedLine]) -> Vec<(&'a str, usize)> {
    let mut counts: Vec<(&str, usize)> = rules
        .map(|r| r.scale.iter().map(|s| (s.as_str(), 0)).collect())
        .unwrap_or_default();
    for l in lines {
        match counts.iter_mut().find(|(r, _)| *r == l.rating) {
            Some((_, n)) => *n += 1,
            None => counts.push((l.rating.as_str(), 1)),
        }
    }
    counts
}

fn quota_cells(q: &QuotaRule, counts: &[(&str, usize)], rated: usize) -> [Cell; 7] {
    let count = counts
        .iter()
        .find(|(r, _)| *r == q.rating)
        .map_or(0, |(_, n)| *n);
    let max = q.max_of(rated);
    [
        q.rating.as_str().into(),
        count.into(),
        share(count, rated),
        i64::try_from(q.max_percent).unwrap_or(i64::MAX).into(),
        i64::try_from(max).unwrap_or(i64::MAX).into(),
        yes_no(count as u64 <= max),
        q.basis.as_str().into(),
    ]
}

/// 考核结果汇总表 of the results given (in the order given), each submission judged by
/// the rules of its task in `rules` (task id → rules; a task missing there gets no quota
/// check).
pub fn results(lines: &[RatedLine], rules: &BTreeMap<i64, Rules>) -> Report {
    let people = lines
        .iter()
        .map(|l| {
            vec![
                l.year.into(),
                l.unit.as_str().into(),
                l.name.as_str().into(),
                l.tier.clone().into(),
                l.rating.as_str().into(),
                yes_no(l.failing),
                yes_no(l.priority),
            ]
        })
        .collect();
    // Submissions in first-seen order, so the summary follows the people sheet.
    let mut order: Vec<(i64, &str, i64)> = Vec::new();
    let mut groups: BTreeMap<(i64, &str, i64), Vec<&RatedLine>> = BTreeMap::new();
    for l in lines {
        let key = (l.year, l.unit_id.as_str(), l.task_id);
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(l);
    }
    let mut summary = Vec::new();
    let mut spread = Vec::new();
    for key in &order {
        let Some(group) = groups.get(key) else {
            continue;
        };
        let first = group[0];
        let rule = rules.get(&first.task_id);
        let counts = distribution(rule, group);
        let head: [Cell; 3] = [
            first.year.into(),
            first.unit.as_str().into(),
            first.round_id.into(),
        ];
        for (rating, n) in &counts {
            let mut row = head.to_vec();
            row.extend([(*rating).into(), (*n).into()]);
            spread.push(row);
        }
        let text = counts
            .iter()
            .map(|(r, n)| format!("{r}{n}人"))
            .collect::<Vec<_>>()
            .join("、");
        let mut row = head.to_vec();
        row.extend([group.len().into(), text.into()]);
        match rule.and_then(|r| r.quota.as_ref()) {
            Some(q) => row.extend(quota_cells(q, &counts, group.len())),
            None => row.extend(std::iter::repeat_n(Cell::Empty, 7)),
        }
        summary.push(row);
    }
    Report {
        name: "results",
        title: "考核结果汇总表",
        sheets: vec![
            Sheet {
                name: "考核结果",
                columns: PERSON_COLUMNS,
                rows: people,
            },
            Sheet {
                name: "支部汇总",
                columns: SUMMARY_COLUMNS,
                rows: summary,
            },
            Sheet {
                name: "等次分布",
                columns: RATING_COLUMNS,
                rows: spread,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::assessment::{QuotaRule, Rounding};

    fn rules(percent: u64, rounding: Rounding) -> Rules {
        Rules {
            scale: ["好", "较好", "一般", "差"].map(String::from).to_vec(),
            failing: ["差".to_string()].into(),
            quota: Some(QuotaRule {
                rating: "好".into(),
                max_percent: percent,
                rounding,
                basis: "文件".into(),
            }),
            adjust: None,
            priority: ["好".to_string()].into(),
        }
    }

    fn line(unit: &str, task: i64, name: &str, rating: &str) -> RatedLine {
        RatedLine {
            year: 2026,
            unit_id: unit.into(),
            unit: format!("{unit}社区"),
            round_id: 7,
            task_id: task,
            name: name.into(),
            tier: Some("第一梯队".into()),
            rating: rating.into(),
            failing: rating == "差",
            priority: rating == "好",
        }
    }

    fn summary(r: &Report) -> &Vec<Vec<Cell>> {
        &r.sheets[1].rows
    }

    #[test]
    fn every_row_is_as_long_as_its_sheet_s_columns() {
        let lines = [line("a", 1, "甲", "好"), line("a", 1, "乙", "差")];
        let r = results(&lines, &BTreeMap::from([(1, rules(15, Rounding::Down))]));
        for s in &r.sheets {
            assert!(!s.rows.is_empty(), "{}", s.name);
            assert!(
                s.rows.iter().all(|row| row.len() == s.columns.len()),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn seven_rated_at_fifteen_percent_allow_one_good_rounded_down_and_two_rounded_up() {
        let lines: Vec<RatedLine> = ["好", "较好", "较好", "一般", "一般", "一般", "差"]
            .iter()
            .enumerate()
            .map(|(i, r)| line("a", 1, &format!("人{i}"), r))
            .collect();
        let up = results(&lines, &BTreeMap::from([(1, rules(15, Rounding::Up))]));
        let down = results(&lines, &BTreeMap::from([(1, rules(15, Rounding::Down))]));
        // 7 × 15% = 1.05 people.
        assert_eq!(summary(&up)[0][9], Cell::Int(2));
        assert_eq!(summary(&down)[0][9], Cell::Int(1));
        assert_eq!(summary(&down)[0][10], Cell::from("是"));
        assert_eq!(summary(&down)[0][6], Cell::Int(1));
        assert_eq!(summary(&down)[0][7], Cell::Num(14.3));
        assert_eq!(
            summary(&down)[0][4],
            Cell::from("好1人、较好2人、一般3人、差1人")
        );
    }

    #[test]
    fn two_good_of_four_break_a_fifteen_percent_cap() {
        let lines = [
            line("a", 1, "甲", "好"),
            line("a", 1, "乙", "好"),
            line("a", 1, "丙", "一般"),
            line("a", 1, "丁", "一般"),
        ];
        let r = results(&lines, &BTreeMap::from([(1, rules(15, Rounding::Down))]));
        let row = &summary(&r)[0];
        assert_eq!(row[3], Cell::Int(4));
        assert_eq!(row[9], Cell::Int(0));
        assert_eq!(row[10], Cell::from("否"));
    }

    #[test]
    fn each_branch_s_submission_gets_its_own_summary_and_a_row_per_scale_rating() {
        let lines = [
            line("a", 1, "甲", "好"),
            line("b", 2, "乙", "差"),
            line("b", 2, "丙", "优秀"),
        ];
        let r = results(&lines, &BTreeMap::from([(1, rules(15, Rounding::Down))]));
        assert_eq!(summary(&r).len(), 2);
        // Branch b's task has no rules given: no quota, the ratings as met.
        assert_eq!(summary(&r)[1][4], Cell::from("差1人、优秀1人"));
        assert!(summary(&r)[1][5..].iter().all(|c| *c == Cell::Empty));
        assert_eq!(r.sheets[2].rows.len(), 4 + 2);
        assert_eq!(r.sheets[0].rows[1][5], Cell::from("是"));
    }
}
