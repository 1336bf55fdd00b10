//! Counting rules (`counts:` in a workflow, issue #16 item 4): who in the pool has had
//! fewer than `min_per_year` of the counted tasks and events in a year. Pure: the rule, the
//! people, what happened to whom and when, and the year in; the people short out.

use crate::core::definition::CountRule;
use crate::core::plan::PersonRef;
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use std::collections::HashMap;

/// A person with fewer than the rule asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Short {
    /// The person.
    pub person: PersonRef,
    /// How many were counted.
    pub count: u32,
}

/// One rule checked over one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountReport {
    /// The workflow declaring the rule.
    pub workflow: String,
    /// The rule's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The year counted.
    pub year: i32,
    /// The last day counted (the rule's `check_on` in that year, default 31 December).
    pub until: NaiveDate,
    /// How many each person is owed.
    pub required: u32,
    /// How many people were checked.
    pub people: usize,
    /// Those short, in the order of `people`.
    pub short: Vec<Short>,
}

impl CountReport {
    /// One line per person short, in Chinese.
    pub fn lines(&self, unit_name: impl Fn(&str) -> String) -> Vec<String> {
        self.short
            .iter()
            .map(|s| {
                format!(
                    "{}（{}）：{}年{}共{}次，应不少于{}次",
                    s.person.name,
                    unit_name(&s.person.unit),
                    self.year,
                    self.title,
                    s.count,
                    self.required
                )
            })
            .collect()
    }
}

/// The last day a rule counts in `year`.
pub fn until(rule: &CountRule, year: i32) -> NaiveDate {
    rule.check_on
        .as_ref()
        .and_then(|d| d.value.in_year(year))
        .or_else(|| NaiveDate::from_ymd_opt(year, 12, 31))
        .unwrap_or(NaiveDate::MIN)
}

/// Check `rule` over `year`: `happened` is (person id, day) of every counted task done and
/// every counted event recorded; only days from 1 January to [`until`] count.
pub fn check(
    workflow: &str,
    rule: &CountRule,
    people: &[PersonRef],
    happened: &[(i64, NaiveDate)],
    year: i32,
) -> CountReport {
    let last = until(rule, year);
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for (person, day) in happened {
        if day.year() == year && *day <= last {
            *counts.entry(*person).or_default() += 1;
        }
    }
    let required = rule.min_per_year.value;
    let short = people
        .iter()
        .filter_map(|p| {
            let count = counts.get(&p.id).copied().unwrap_or(0);
            (count < required).then(|| Short {
                person: p.clone(),
                count,
            })
        })
        .collect();
    CountReport {
        workflow: workflow.to_string(),
        id: rule.id.value.clone(),
        title: rule.title.clone(),
        year,
        until: last,
        required,
        people: people.len(),
        short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::definition::MonthDay;
    use crate::core::diagnostic::Sp;

    fn rule(min: u32, check_on: Option<MonthDay>) -> CountRule {
        CountRule {
            id: Sp::bare("talks".into()),
            title: "谈心谈话".into(),
            tasks: vec![],
            events: vec![],
            min_per_year: Sp::bare(min),
            check_on: check_on.map(Sp::bare),
        }
    }

    fn person(id: i64) -> PersonRef {
        PersonRef {
            id,
            name: format!("人{id}"),
            unit: "u".into(),
            tier: 1,
        }
    }

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap_or(NaiveDate::MIN)
    }

    #[test]
    fn people_with_fewer_than_the_minimum_up_to_the_check_day_are_short() {
        let r = rule(2, Some(MonthDay { month: 12, day: 20 }));
        let happened = [
            (1, day(3, 2)),
            (2, day(3, 2)),
            (2, day(9, 9)),
            (3, day(5, 1)),
            (3, day(12, 21)), // after the check day
            (
                4,
                NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or(NaiveDate::MIN),
            ),
            (4, day(1, 1)),
        ];
        let people: Vec<PersonRef> = (1..=4).map(person).collect();
        let report = check("wf", &r, &people, &happened, 2026);
        let short: Vec<(i64, u32)> = report
            .short
            .iter()
            .map(|s| (s.person.id, s.count))
            .collect();
        assert_eq!(short, vec![(1, 1), (3, 1), (4, 1)]);
        assert_eq!(report.until, day(12, 20));
    }

    #[test]
    fn without_a_check_day_the_whole_year_counts() {
        let r = rule(1, None);
        let report = check("wf", &r, &[person(1)], &[(1, day(12, 31))], 2026);
        assert!(report.short.is_empty());
    }
}
