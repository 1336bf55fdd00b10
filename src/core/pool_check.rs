//! The pool rules check (库况检查): the seeds' rules about how many reserves a branch keeps and
//! of what kind, as declared in the config (`[pool.rules]`), checked branch by branch.
//!
//! Pure: the people, the directory, the rules and the check date go in, findings come out;
//! ages are computed on the check date, so a report is reproducible for any day.

use super::directory::{Directory, UnitKind};
use super::pool::{Person, PersonStatus, PostTrack, Tier, TierNames};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The rules, each of which can be switched off (`enabled = false`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PoolRules {
    /// Reserves per branch within bounds.
    pub count: CountRule,
    /// Secretary reserves per branch secretary.
    pub ratio: RatioRule,
    /// Share of young reserves.
    pub young: YoungRule,
    /// Minimum reserves per tier.
    pub tiers: TierRule,
}

/// Seed 002: 每个社区3至7名; seed 000: 不少于2名 (then `min = 2`, no `max`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountRule {
    /// Checked at all.
    pub enabled: bool,
    /// Fewest reserves a branch may have.
    pub min: u32,
    /// Most reserves a branch may have (0: no upper bound).
    pub max: u32,
    /// The document cited in messages.
    pub source: String,
}

impl Default for CountRule {
    fn default() -> Self {
        CountRule {
            enabled: true,
            min: 3,
            max: 7,
            source: "文件002".into(),
        }
    }
}

/// Seed 004: 按照村（社区）党组织书记1:2的比例建立党组织书记后备干部库 — two secretary
/// reserves (正职 candidates) for each branch secretary.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatioRule {
    /// Checked at all.
    pub enabled: bool,
    /// Reserves owed per secretary.
    pub reserves_per_secretary: u32,
    /// Count only 正职 candidates (post track 正职); false: every reserve of the branch.
    pub chief_track_only: bool,
    /// Contact titles (directory) that make a contact a branch secretary; a branch that lists
    /// none has one secretary (every branch has one: seed 004's 配齐配强).
    pub secretary_titles: Vec<String>,
    /// The document cited in messages.
    pub source: String,
}

impl Default for RatioRule {
    fn default() -> Self {
        RatioRule {
            enabled: true,
            reserves_per_secretary: 2,
            chief_track_only: true,
            secretary_titles: vec!["书记".into()],
            source: "文件004".into(),
        }
    }
}

/// Seed 000: 社区后备干部35周岁以下的要达到40%以上 (以下 and 以上 include the number, as
/// in Chinese rules: aged 35 counts, 40% passes).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct YoungRule {
    /// Checked at all.
    pub enabled: bool,
    /// Oldest age (whole years on the check date) that counts as young.
    pub max_age: u32,
    /// Smallest share of young reserves, in percent.
    pub min_percent: u32,
    /// The document cited in messages.
    pub source: String,
}

impl Default for YoungRule {
    fn default() -> Self {
        YoungRule {
            enabled: true,
            max_age: 35,
            min_percent: 40,
            source: "文件000".into(),
        }
    }
}

/// Fewest reserves per tier in a branch (first to fourth tier); off by default since the
/// seeds set tier targets for the whole street (seed 001), not per branch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TierRule {
    /// Checked at all.
    pub enabled: bool,
    /// Minimum per tier, first to fourth.
    pub min: [u32; 4],
}

/// Which rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleCode {
    /// Fewer reserves than the minimum.
    CountMin,
    /// More reserves than the maximum.
    CountMax,
    /// Fewer secretary reserves than the ratio asks.
    Ratio,
    /// Too small a share of young reserves.
    YoungShare,
    /// Fewer reserves in a tier than its minimum.
    TierMin,
}

impl RuleCode {
    /// The code as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleCode::CountMin => "count_min",
            RuleCode::CountMax => "count_max",
            RuleCode::Ratio => "ratio",
            RuleCode::YoungShare => "young_share",
            RuleCode::TierMin => "tier_min",
        }
    }
}

/// One broken rule in one branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule.
    pub code: RuleCode,
    /// The number found.
    pub actual: u32,
    /// The number the rule asks for (the bound that was crossed).
    pub required: u32,
    /// The tier, for [`RuleCode::TierMin`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<u8>,
    /// What is wrong, in Chinese, citing the seed.
    pub message: String,
}

/// One branch's figures and findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchCheck {
    /// Unit id.
    pub unit: String,
    /// Unit name.
    pub name: String,
    /// Reserves in the pool (在库).
    pub reserves: u32,
    /// Of them, candidates for 正职.
    pub chief_track: u32,
    /// Of them, young (age ≤ the young rule's `max_age` on the check date).
    pub young: u32,
    /// Branch secretaries counted for the ratio.
    pub secretaries: u32,
    /// Reserves per tier, first to fourth.
    pub tiers: [u32; 4],
    /// Broken rules.
    pub findings: Vec<Finding>,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The check date (ages are computed on it).
    pub date: NaiveDate,
    /// Every branch of the directory, in its order.
    pub branches: Vec<BranchCheck>,
    /// Findings in all.
    pub violations: usize,
}

impl CheckReport {
    /// True when no rule is broken.
    pub fn ok(&self) -> bool {
        self.violations == 0
    }

    /// The report in Chinese, one block per branch, for the CLI.
    pub fn to_zh(&self) -> String {
        let mut out = format!("库况检查（{}）\n", self.date.format("%Y年%-m月%-d日"));
        for b in &self.branches {
            let mark = if b.findings.is_empty() {
                "符合"
            } else {
                "不符合"
            };
            out.push_str(&format!(
                "\n{}：{}（后备干部{}名，其中正职后备{}名、青年{}名）\n",
                b.name, mark, b.reserves, b.chief_track, b.young
            ));
            for f in &b.findings {
                out.push_str(&format!("  - {}\n", f.message));
            }
        }
        let bad = self
            .branches
            .iter()
            .filter(|b| !b.findings.is_empty())
            .count();
        out.push_str(&format!(
            "\n共{}个支部，{}个不符合，{}处问题。\n",
            self.branches.len(),
            bad,
            self.violations
        ));
        out
    }
}

fn secretaries(unit: &super::directory::Unit, titles: &[String]) -> u32 {
    let n = unit
        .contacts
        .iter()
        .filter(|c| {
            c.title
                .as_ref()
                .is_some_and(|t| titles.iter().any(|s| s == t))
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// Check every branch of the directory against the rules on `date`. Only people in the pool
/// (在库) count; people of units that are not branches are not checked.
pub fn check<'a>(
    people: impl IntoIterator<Item = &'a Person>,
    directory: &Directory,
    rules: &PoolRules,
    tiers: &TierNames,
    date: NaiveDate,
) -> CheckReport {
    let mut branches = Vec::new();
    // Grouped once: a city has 10,000 branches and 100,000 people.
    let mut by_unit: std::collections::HashMap<&str, Vec<&Person>> =
        std::collections::HashMap::new();
    for p in people
        .into_iter()
        .filter(|p| p.status == PersonStatus::Active)
    {
        by_unit.entry(p.unit.as_str()).or_default().push(p);
    }
    for unit in directory
        .units
        .iter()
        .filter(|u| u.kind == UnitKind::Branch)
    {
        let id = unit.id.value.as_str();
        let mine: Vec<&Person> = by_unit.remove(id).unwrap_or_default();
        let count = |f: &dyn Fn(&Person) -> bool| -> u32 {
            u32::try_from(mine.iter().filter(|p| f(p)).count()).unwrap_or(u32::MAX)
        };
        let reserves = count(&|_| true);
        let chief_track = count(&|p| p.post_track == Some(PostTrack::Chief));
        let max_age = i32::try_from(rules.young.max_age).unwrap_or(i32::MAX);
        let young = count(&|p| p.age_on(date) <= max_age);
        let mut per_tier = [0u32; 4];
        for t in Tier::all() {
            per_tier[usize::from(t.get() - 1)] = count(&|p| p.tier == t);
        }
        let secs = secretaries(unit, &rules.ratio.secretary_titles);
        let mut findings = Vec::new();

        let c = &rules.count;
        if c.enabled {
            let max = (c.max > 0).then_some(c.max);
            let range = match max {
                Some(max) => format!("{}至{}名", c.min, max),
                None => format!("不少于{}名", c.min),
            };
            let mut push = |code, required| {
                findings.push(Finding {
                    code,
                    actual: reserves,
                    required,
                    tier: None,
                    message: format!("后备干部人数应为{range}（{}）：现有{reserves}名", c.source),
                })
            };
            if reserves < c.min {
                push(RuleCode::CountMin, c.min);
            } else if let Some(max) = max.filter(|m| reserves > *m) {
                push(RuleCode::CountMax, max);
            }
        }

        let r = &rules.ratio;
        if r.enabled {
            let counted = if r.chief_track_only {
                chief_track
            } else {
                reserves
            };
            let required = secs.saturating_mul(r.reserves_per_secretary);
            if counted < required {
                let what = if r.chief_track_only {
                    "正职后备干部"
                } else {
                    "后备干部"
                };
                findings.push(Finding {
                    code: RuleCode::Ratio,
                    actual: counted,
                    required,
                    tier: None,
                    message: format!(
                        "书记后备干部应按书记1:{}的比例配备（{}）：书记{secs}名，应有{what}{required}名，现有{counted}名",
                        r.reserves_per_secretary, r.source
                    ),
                });
            }
        }

        let y = &rules.young;
        // An empty branch breaks the count rule; a share of nobody says nothing more.
        if y.enabled
            && reserves > 0
            && u64::from(young) * 100 < u64::from(y.min_percent) * u64::from(reserves)
        {
            let pct = u64::from(young) * 100 / u64::from(reserves);
            findings.push(Finding {
                code: RuleCode::YoungShare,
                actual: young,
                // The fewest young reserves that would reach the share: ceil(min% × reserves).
                required: u32::try_from(
                    (u64::from(y.min_percent) * u64::from(reserves)).div_ceil(100),
                )
                .unwrap_or(u32::MAX),
                tier: None,
                message: format!(
                    "{}周岁以下的后备干部应达到{}%以上（{}）：现有{reserves}名，{}周岁以下{young}名（{pct}%）",
                    y.max_age, y.min_percent, y.source, y.max_age
                ),
            });
        }

        if rules.tiers.enabled {
            for t in Tier::all() {
                let i = usize::from(t.get() - 1);
                let (have, min) = (per_tier[i], rules.tiers.min[i]);
                if have < min {
                    findings.push(Finding {
                        code: RuleCode::TierMin,
                        actual: have,
                        required: min,
                        tier: Some(t.get()),
                        message: format!("{}后备干部应不少于{min}名：现有{have}名", tiers.name(t)),
                    });
                }
            }
        }

        branches.push(BranchCheck {
            unit: id.to_string(),
            name: unit.name.clone(),
            reserves,
            chief_track,
            young,
            secretaries: secs,
            tiers: per_tier,
            findings,
        });
    }
    let violations = branches.iter().map(|b| b.findings.len()).sum();
    CheckReport {
        date,
        branches,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diagnostic::Diagnostics;

    const DIR: &str = "office: {id: o, name: 街道}\n\
        units:\n\
        \x20 - {id: a, name: 甲社区, kind: branch, contacts: [{name: 甲, title: 书记}]}\n\
        \x20 - {id: b, name: 乙社区, kind: branch, contacts: [{name: 乙一, title: 书记}, {name: 乙二, title: 书记}]}\n\
        \x20 - {id: d, name: 科室, kind: department}\n";

    fn dir() -> Directory {
        let mut d = Diagnostics::default();
        Directory::parse(DIR, &mut d).expect("directory")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn person(unit: &str, birth: NaiveDate, chief: bool, tier: u8) -> Person {
        Person {
            name: "某".into(),
            unit: unit.into(),
            tier: Tier::try_from(tier).expect("tier"),
            post_track: Some(if chief {
                PostTrack::Chief
            } else {
                PostTrack::Deputy
            }),
            current_post: None,
            gender: None,
            birth,
            education: None,
            joined_at: day(2020, 1, 1),
            term_start: None,
            term_end: None,
            mentor: None,
            status: PersonStatus::Active,
            removed_reason: None,
            removed_at: None,
            phone: None,
            email: None,
            note: None,
        }
    }

    fn codes(r: &CheckReport, unit: &str) -> Vec<RuleCode> {
        r.branches
            .iter()
            .find(|b| b.unit == unit)
            .expect("branch")
            .findings
            .iter()
            .map(|f| f.code)
            .collect()
    }

    fn run(people: &[Person], rules: &PoolRules) -> CheckReport {
        check(
            people,
            &dir(),
            rules,
            &TierNames::default(),
            day(2026, 6, 1),
        )
    }

    #[test]
    fn too_few_reserves_is_reported_with_the_seed_rule() {
        let young = day(1995, 1, 1);
        let people = vec![person("a", young, true, 1), person("a", young, true, 1)];
        let r = run(&people, &PoolRules::default());
        assert_eq!(codes(&r, "a"), vec![RuleCode::CountMin]);
        let f = &r.branches[0].findings[0];
        assert_eq!(f.message, "后备干部人数应为3至7名（文件002）：现有2名");
        assert_eq!((f.actual, f.required), (2, 3));
    }

    #[test]
    fn seed_000_bound_has_no_maximum() {
        let young = day(1995, 1, 1);
        let people: Vec<Person> = (0..9).map(|_| person("a", young, true, 1)).collect();
        let mut rules = PoolRules::default();
        assert_eq!(codes(&run(&people, &rules), "a"), vec![RuleCode::CountMax]);
        rules.count.min = 2;
        rules.count.max = 0;
        rules.count.source = "文件000".into();
        assert!(codes(&run(&people, &rules), "a").is_empty());
        let r = run(&people[..1], &rules);
        assert_eq!(
            r.branches[0].findings[0].message,
            "后备干部人数应为不少于2名（文件000）：现有1名"
        );
    }

    #[test]
    fn ratio_asks_two_chief_reserves_per_secretary() {
        let young = day(1995, 1, 1);
        // b has two secretaries: four 正职 candidates needed; three is short.
        let mut people: Vec<Person> = (0..3).map(|_| person("b", young, true, 1)).collect();
        people.push(person("b", young, false, 2));
        let r = run(&people, &PoolRules::default());
        assert_eq!(codes(&r, "b"), vec![RuleCode::Ratio]);
        let f = &r.branches[1].findings[0];
        assert_eq!((f.actual, f.required), (3, 4));
        assert!(f.message.contains("1:2") && f.message.contains("文件004"));
        people.push(person("b", young, true, 1));
        assert!(codes(&run(&people, &PoolRules::default()), "b").is_empty());
    }

    #[test]
    fn young_share_counts_age_on_the_check_date_and_includes_the_bound() {
        // 5 reserves, 2 young: exactly 40% passes; the one turning 35 on the check date
        // (2026-06-01) is still 35周岁以下.
        let old = day(1970, 1, 1);
        let mut people = vec![
            person("a", old, true, 1),
            person("a", old, true, 1),
            person("a", old, true, 1),
            person("a", day(1995, 1, 1), false, 2),
            person("a", day(1991, 6, 1), false, 2),
        ];
        let mut rules = PoolRules::default();
        rules.ratio.enabled = false;
        let r = run(&people, &rules);
        assert!(codes(&r, "a").is_empty(), "{:?}", r.branches[0].findings);
        assert_eq!(r.branches[0].young, 2);
        // Turned 36 the day before: 1 of 5 is 20%.
        people[4].birth = day(1990, 5, 31);
        let r = run(&people, &rules);
        assert_eq!(codes(&r, "a"), vec![RuleCode::YoungShare]);
        let f = &r.branches[0].findings[0];
        assert_eq!(
            f.message,
            "35周岁以下的后备干部应达到40%以上（文件000）：现有5名，35周岁以下1名（20%）"
        );
        assert_eq!((f.actual, f.required), (1, 2));
    }

    #[test]
    fn removed_people_and_departments_are_not_counted() {
        let young = day(1995, 1, 1);
        let mut people: Vec<Person> = (0..3).map(|_| person("a", young, true, 1)).collect();
        people[2].status = PersonStatus::Removed;
        people.push(person("d", young, true, 1));
        let r = run(&people, &PoolRules::default());
        assert_eq!(r.branches.len(), 2);
        assert_eq!(r.branches[0].reserves, 2);
        assert_eq!(codes(&r, "a"), vec![RuleCode::CountMin]);
    }

    #[test]
    fn switched_off_rules_report_nothing_and_tier_minimums_name_the_tier() {
        let mut rules = PoolRules::default();
        rules.count.enabled = false;
        rules.ratio.enabled = false;
        rules.young.enabled = false;
        let r = run(&[], &rules);
        assert!(r.ok());
        rules.tiers.enabled = true;
        rules.tiers.min = [1, 0, 0, 0];
        let r = run(&[], &rules);
        assert_eq!(r.violations, 2);
        assert_eq!(
            r.branches[0].findings[0].message,
            "第一梯队后备干部应不少于1名：现有0名"
        );
        assert_eq!(r.branches[0].findings[0].tier, Some(1));
    }

    #[test]
    fn rules_read_from_toml_keep_defaults_for_what_is_left_out() {
        let rules: PoolRules =
            toml::from_str("[count]\nmin = 2\n[young]\nenabled = false\n").expect("toml");
        assert_eq!(rules.count.min, 2);
        assert_eq!(rules.count.max, 7);
        assert!(!rules.young.enabled);
        assert_eq!(rules.ratio, RatioRule::default());
    }
}

#[cfg(test)]
mod shipped_config {
    use super::PoolRules;

    /// The commented `[pool.rules]` block of the shipped config, uncommented, is the defaults:
    /// what the comments say is what runs.
    #[test]
    fn the_shipped_config_comments_state_the_default_rules() {
        let text = include_str!("../../config/yanzhen.toml");
        let start = text.find("# [pool.rules.count]").expect("rules block");
        // The block ends at the first blank line (other sections follow it).
        let block: String = text[start..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        #[derive(serde::Deserialize)]
        struct Wrap {
            pool: Pool,
        }
        #[derive(serde::Deserialize)]
        struct Pool {
            rules: PoolRules,
        }
        let w: Wrap = toml::from_str(&block).expect("toml");
        assert_eq!(w.pool.rules, PoolRules::default());
    }
}
