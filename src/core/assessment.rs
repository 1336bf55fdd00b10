//! Assessment results (考核等次): a task's `ratings:` block and the rules the engine applies
//! when a branch submits its ratings — the scale, the quota on one rating, which ratings
//! fail, who goes on the 优先使用 list, and when consecutive failing years owe a 调整 task.
//!
//! Pure: the workflow's block, the round's parameter values, the branch's people and the
//! earlier years' results come in; a judgement (or a refusal with its Chinese message) and
//! the follow-ups go out. The store and the engine act on them (`crate::assessment`).

use crate::core::definition::{Anchor, Assignee, Val, Workflow};
use crate::core::diagnostic::{Diagnostics, Sp, suggest};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The scale when a workflow gives none (seed 004: 好、较好、一般、差).
pub const DEFAULT_SCALE: [&str; 4] = ["好", "较好", "一般", "差"];

/// A task's `ratings:` block: the task collects one rating for each in-pool person of its
/// branch (a clerk fills one form with every name), kept as that person's result for the
/// round's year.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Ratings {
    /// The ratings, best first; default 好, 较好, 一般, 差.
    #[serde(default)]
    pub scale: Option<Sp<Vec<String>>>,
    /// Ratings that count as failing (不称职, 不合格); default: the last of the scale.
    #[serde(default)]
    pub failing: Option<Vec<Sp<String>>>,
    /// A cap on how many may get one rating (seed 004: 好 at most 15%).
    #[serde(default)]
    pub quota: Option<Sp<Quota>>,
    /// Consecutive failing years that owe a 调整 task (seed 002: 连续两年考核不合格…予以调整).
    #[serde(default)]
    pub adjust: Option<Sp<Adjust>>,
    /// Who goes on the year's 优先使用 list.
    #[serde(default)]
    pub priority: Option<Sp<Priority>>,
}

/// At most `max_percent` of the people rated in one submission may get `rating`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Quota {
    /// The capped rating, e.g. 好.
    pub rating: Sp<String>,
    /// The cap, in percent of the people rated (0–100), or a `"${param}"`.
    pub max_percent: Sp<Val<i64>>,
    /// How a fractional cap becomes a count (default down: 10 people × 15% → 1).
    #[serde(default)]
    pub rounding: Rounding,
    /// What the percentage is of: the people rated in the submission (the only choice).
    #[serde(default)]
    pub of: QuotaBase,
    /// The document the rule comes from, cited in the refusal (Chinese).
    #[serde(default)]
    pub basis: Option<String>,
}

/// How a fractional quota becomes a whole number of people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Down (不超过: 1.5 → 1).
    #[default]
    Down,
    /// Up (1.5 → 2).
    Up,
    /// To the nearest, halves up (1.5 → 2, 1.4 → 1).
    Nearest,
}

impl Rounding {
    fn apply(self, people: u64, percent: u64) -> u64 {
        let scaled = people * percent;
        match self {
            Rounding::Down => scaled / 100,
            Rounding::Up => scaled.div_ceil(100),
            Rounding::Nearest => (scaled + 50) / 100,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Rounding::Down => "向下取整",
            Rounding::Up => "向上取整",
            Rounding::Nearest => "四舍五入",
        }
    }
}

/// The base of a quota's percentage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuotaBase {
    /// The people rated in the submission (a branch's in-pool people).
    #[default]
    Rated,
}

/// Consecutive failing years owe a 调整 task: the engine records `event` about the person,
/// and the workflow's task due `{from: {event: …}}` is created for it once.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Adjust {
    /// How many consecutive years (ending with the round's year) must fail (seed 002: 2).
    pub consecutive_failing_years: Sp<u32>,
    /// The event, declared under `events:`, that the 调整 task is due from.
    pub event: Sp<String>,
}

/// The ratings that put a person on the year's 优先使用 list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Priority {
    /// Default: the best rating of the scale (with a quota on it, the top N%).
    #[serde(default)]
    pub ratings: Vec<Sp<String>>,
}

/// A `ratings:` block with parameters resolved: what the engine enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Best first.
    pub scale: Vec<String>,
    /// Failing ratings.
    pub failing: BTreeSet<String>,
    /// The quota, with its percentage.
    pub quota: Option<QuotaRule>,
    /// Years and event of the 调整 rule.
    pub adjust: Option<(u32, String)>,
    /// Ratings of the 优先使用 list.
    pub priority: BTreeSet<String>,
}

/// A quota with its percentage resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    /// The capped rating.
    pub rating: String,
    /// Percent of the rated.
    pub max_percent: u64,
    /// Rounding of the cap.
    pub rounding: Rounding,
    /// The cited document.
    pub basis: String,
}

impl QuotaRule {
    /// How many of `rated` people may get the capped rating.
    pub fn max_of(&self, rated: usize) -> u64 {
        self.rounding.apply(rated as u64, self.max_percent)
    }

    /// The rule in Chinese, e.g. 评为“好”的不得超过已评人数的15%（向下取整）.
    pub fn text(&self) -> String {
        format!(
            "评为“{}”的不得超过已评人数的{}%（{}）",
            self.rating,
            self.max_percent,
            self.rounding.label()
        )
    }
}

impl Rules {
    /// Resolve a block; `param` gives a parameter's integer value for the round (its
    /// override or default). A quota whose parameter has no value is left out.
    pub fn of(r: &Ratings, workflow: &str, param: &dyn Fn(&str) -> Option<i64>) -> Rules {
        let scale: Vec<String> = match &r.scale {
            Some(s) => s.value.clone(),
            None => DEFAULT_SCALE.iter().map(|s| s.to_string()).collect(),
        };
        let failing = match &r.failing {
            Some(f) => f.iter().map(|s| s.value.clone()).collect(),
            None => scale.last().cloned().into_iter().collect(),
        };
        let quota = r.quota.as_ref().and_then(|q| {
            let pct = match &q.max_percent.value {
                Val::Lit(v) => Some(*v),
                Val::Param(p) => param(p),
            }?;
            Some(QuotaRule {
                rating: q.rating.value.clone(),
                max_percent: u64::try_from(pct.clamp(0, 100)).unwrap_or(0),
                rounding: q.rounding,
                basis: q
                    .basis
                    .clone()
                    .unwrap_or_else(|| format!("工作流“{workflow}”的考核等次比例规定")),
            })
        });
        let priority = match &r.priority {
            Some(p) if !p.ratings.is_empty() => p.ratings.iter().map(|s| s.value.clone()).collect(),
            Some(_) => scale.first().cloned().into_iter().collect(),
            None => BTreeSet::new(),
        };
        Rules {
            adjust: r
                .adjust
                .as_ref()
                .map(|a| (a.consecutive_failing_years.value, a.event.value.clone())),
            scale,
            failing,
            quota,
            priority,
        }
    }

    /// Whether `rating` fails.
    pub fn fails(&self, rating: &str) -> bool {
        self.failing.contains(rating)
    }

    /// Whether `rating` puts a person on the 优先使用 list.
    pub fn prioritised(&self, rating: &str) -> bool {
        self.priority.contains(rating)
    }

    /// Check a branch's submission against its in-pool people (`id → name`): every person
    /// rated once, from the scale, within the quota. All problems but the quota are listed
    /// together; the quota is judged on a submission that is otherwise complete. `others`
    /// names people of other branches, so that a refusal can name them too.
    pub fn judge(
        &self,
        people: &BTreeMap<i64, String>,
        others: &BTreeMap<i64, String>,
        given: &[(i64, String)],
    ) -> Result<(), Refusal> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (id, rating) in given {
            let who = people
                .get(id)
                .or_else(|| others.get(id))
                .map_or_else(|| format!("编号为{id}的人员"), Clone::clone);
            if !people.contains_key(id) {
                problems.push(format!("{who}不是本支部在库的后备干部"));
            } else if !seen.insert(*id) {
                problems.push(format!("{who}评定了不止一次"));
            }
            if !self.scale.contains(rating) {
                problems.push(format!(
                    "{who}的等次“{rating}”不在考核等次（{}）之中",
                    self.scale.join("、")
                ));
            }
        }
        let missing: Vec<&str> = people
            .iter()
            .filter(|(id, _)| !seen.contains(id))
            .map(|(_, n)| n.as_str())
            .collect();
        if !missing.is_empty() {
            problems.push(format!("尚未评定：{}", missing.join("、")));
        }
        if !problems.is_empty() {
            return Err(Refusal::Invalid(problems));
        }
        if let Some(q) = &self.quota {
            let count = given.iter().filter(|(_, r)| *r == q.rating).count() as u64;
            let max = q.max_of(given.len());
            if count > max {
                return Err(Refusal::Quota {
                    rule: q.text(),
                    rating: q.rating.clone(),
                    rated: given.len(),
                    max,
                    given: count,
                    basis: q.basis.clone(),
                });
            }
        }
        Ok(())
    }

    /// Whether a person rated `rating` in `year`, with earlier results `history`
    /// (year → rating), completes the 调整 rule's run of failing years.
    pub fn owes_adjustment(
        &self,
        year: i32,
        rating: &str,
        history: &BTreeMap<i32, String>,
    ) -> bool {
        let Some((n, _)) = &self.adjust else {
            return false;
        };
        let n = i32::try_from(*n).unwrap_or(i32::MAX).max(1);
        self.fails(rating)
            && (1..n).all(|back| history.get(&(year - back)).is_some_and(|r| self.fails(r)))
    }
}

/// Why a submission is refused; the message is Chinese, for the clerk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Names not of the branch, ratings not on the scale, people left out or rated twice.
    #[error("考核等次未录入：{}。", .0.join("；"))]
    Invalid(Vec<String>),
    /// Too many of the capped rating.
    #[error(
        "{rule}：本次已评{rated}人，最多{max}人为“{rating}”，提交了{given}人。依据：{basis}。未保存任何结果，请调整后重新提交。"
    )]
    Quota {
        /// The rule in Chinese.
        rule: String,
        /// The capped rating.
        rating: String,
        /// People rated in the submission.
        rated: usize,
        /// How many may get the rating.
        max: u64,
        /// How many got it.
        given: u64,
        /// The cited document.
        basis: String,
    },
}

impl Refusal {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "ratings_invalid",
            Refusal::Quota { .. } => "quota_exceeded",
        }
    }
}

/// The task of a workflow that collects ratings, with its block.
pub fn ratings_task<'a>(wf: &'a Workflow, task: &str) -> Option<&'a Ratings> {
    wf.task(task)
        .and_then(|(_, t)| t.ratings.as_ref())
        .map(|r| &r.value)
}

/// Check every `ratings:` block of a workflow: the scale, that every rating named is on it,
/// the quota's percentage, the 调整 rule's years and event, and that the task is per branch.
pub fn check(wf: &Workflow, d: &mut Diagnostics) {
    let mut first: Option<&Sp<String>> = None;
    for (_, t) in wf.tasks() {
        let Some(r) = &t.ratings else { continue };
        if let Some(f) = first {
            d.error(
                "ratings-twice",
                t.id.loc,
                format!(
                    "task `{}` collects ratings, but task `{}` (line {}) already does",
                    t.id.value, f.value, f.loc.line
                ),
                Some(
                    "a workflow keeps one result per person and year: collect ratings in one task"
                        .into(),
                ),
            );
        } else {
            first = Some(&t.id);
        }
        if let Assignee::Role(role) = &t.assignee.value {
            d.error(
                "ratings-not-per-branch",
                t.assignee.loc,
                format!("task `{}` collects ratings but is assigned to role `{role}`", t.id.value),
                Some("ratings are collected per branch: assign the task to a group, e.g. `{group: branches}`".into()),
            );
        }
        check_block(wf, &r.value, d);
    }
}

fn check_block(wf: &Workflow, r: &Ratings, d: &mut Diagnostics) {
    let scale: Vec<String> = match &r.scale {
        Some(s) => {
            if s.value.is_empty() {
                d.error(
                    "ratings-scale-empty",
                    s.loc,
                    "the rating scale is empty",
                    Some("list the ratings best first, e.g. `[好, 较好, 一般, 差]`, or leave `scale` out".into()),
                );
            }
            let mut seen = BTreeSet::new();
            for x in &s.value {
                if x.trim().is_empty() || !seen.insert(x.as_str()) {
                    d.error(
                        "ratings-scale-item",
                        s.loc,
                        format!("the rating `{x}` is empty or listed twice in the scale"),
                        Some("give each rating once, best first".into()),
                    );
                }
            }
            s.value.clone()
        }
        None => DEFAULT_SCALE.iter().map(|s| s.to_string()).collect(),
    };
    let on_scale = |what: &str, x: &Sp<String>, d: &mut Diagnostics| {
        if !scale.contains(&x.value) {
            d.error(
                "ratings-unknown-rating",
                x.loc,
                format!(
                    "{what} `{}` is not on the rating scale ({})",
                    x.value,
                    scale.join(", ")
                ),
                Some(suggest(&x.value, scale.iter().map(String::as_str))),
            );
        }
    };
    for f in r.failing.iter().flatten() {
        on_scale("failing rating", f, d);
    }
    if let Some(p) = &r.priority {
        for x in &p.ratings {
            on_scale("priority rating", x, d);
        }
    }
    if let Some(q) = &r.quota {
        on_scale("quota rating", &q.rating, d);
        match &q.max_percent.value {
            Val::Lit(v) if !(0..=100).contains(v) => d.error(
                "ratings-quota-percent",
                q.max_percent.loc,
                format!("`max_percent: {v}` is not a percentage"),
                Some("give a whole number from 0 to 100, e.g. `max_percent: 15`".into()),
            ),
            Val::Param(p)
                if !wf.parameters.iter().any(|x| {
                    x.id.value == *p && x.kind == crate::core::definition::ParamType::Integer
                }) =>
            {
                d.error(
                    "ratings-quota-param",
                    q.max_percent.loc,
                    format!("`max_percent` refers to `${{{p}}}`, which is not an integer parameter of this workflow"),
                    Some("declare it under `parameters:` with `type: integer`, or write the number".into()),
                )
            }
            _ => {}
        }
    }
    if let Some(a) = &r.adjust {
        if a.consecutive_failing_years.value == 0 {
            d.error(
                "ratings-adjust-years",
                a.consecutive_failing_years.loc,
                "`consecutive_failing_years: 0` never follows from a rating",
                Some("give 1 or more, e.g. `consecutive_failing_years: 2` (seed 002)".into()),
            );
        }
        let ev = &a.event;
        if !wf.events.iter().any(|e| e.id.value == ev.value) {
            d.error(
                "ratings-adjust-event",
                ev.loc,
                format!("event `{}` is not declared under `events:`", ev.value),
                Some(suggest(&ev.value, wf.events.iter().map(|e| e.id.value.as_str()))),
            );
        } else if !wf.tasks().any(|(_, t)| {
            matches!(t.due.value.from.as_ref().map(|a| &a.value), Some(Anchor::Event(e)) if *e == ev.value)
        }) {
            d.error(
                "ratings-adjust-no-task",
                ev.loc,
                format!("no task is due from event `{}`, so no 调整 task would be created", ev.value),
                Some(format!(
                    "add a task, e.g. assigned to the office's role, with `due: {{from: {{event: {}}}, working_days: 10}}`",
                    ev.value
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pct: u64, rounding: Rounding) -> Rules {
        Rules {
            scale: DEFAULT_SCALE.iter().map(|s| s.to_string()).collect(),
            failing: BTreeSet::from(["差".to_string()]),
            quota: Some(QuotaRule {
                rating: "好".into(),
                max_percent: pct,
                rounding,
                basis: "某街道头雁工程行动方案".into(),
            }),
            adjust: Some((2, "adjustment_due".into())),
            priority: BTreeSet::from(["好".to_string()]),
        }
    }

    fn people(n: i64) -> BTreeMap<i64, String> {
        (1..=n).map(|i| (i, format!("人员{i}"))).collect()
    }

    fn given(n: i64, good: i64) -> Vec<(i64, String)> {
        (1..=n)
            .map(|i| (i, if i <= good { "好" } else { "较好" }.to_string()))
            .collect()
    }

    #[test]
    fn fifteen_percent_of_ten_rounded_down_allows_one() {
        let r = rules(15, Rounding::Down);
        assert_eq!(
            r.judge(&people(10), &BTreeMap::new(), &given(10, 1)),
            Ok(())
        );
        let refused = r
            .judge(&people(10), &BTreeMap::new(), &given(10, 2))
            .unwrap_err();
        assert_eq!(refused.code(), "quota_exceeded");
        insta::assert_snapshot!(refused.to_string());
    }

    #[test]
    fn rounding_up_and_nearest_change_the_cap() {
        assert_eq!(rules(15, Rounding::Up).quota.unwrap().max_of(10), 2);
        assert_eq!(rules(15, Rounding::Nearest).quota.unwrap().max_of(10), 2);
        assert_eq!(rules(15, Rounding::Nearest).quota.unwrap().max_of(3), 0);
        assert_eq!(rules(15, Rounding::Down).quota.unwrap().max_of(6), 0);
    }

    #[test]
    fn a_submission_must_rate_each_person_of_the_branch_once_on_the_scale() {
        let r = rules(50, Rounding::Down);
        let bad = vec![
            (1, "优秀".to_string()),
            (1, "好".to_string()),
            (9, "较好".to_string()),
        ];
        let refused = r.judge(&people(3), &BTreeMap::new(), &bad).unwrap_err();
        assert_eq!(refused.code(), "ratings_invalid");
        insta::assert_snapshot!(refused.to_string());
    }

    #[test]
    fn two_failing_years_in_a_row_owe_an_adjustment_and_a_gap_does_not() {
        let r = rules(15, Rounding::Down);
        let last = BTreeMap::from([(2024, "差".to_string())]);
        assert!(r.owes_adjustment(2025, "差", &last));
        assert!(!r.owes_adjustment(2025, "一般", &last));
        let gap = BTreeMap::from([(2023, "差".to_string()), (2024, "一般".to_string())]);
        assert!(!r.owes_adjustment(2025, "差", &gap));
        assert!(!r.owes_adjustment(2025, "差", &BTreeMap::new()));
    }
}
