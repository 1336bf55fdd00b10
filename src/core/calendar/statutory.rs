//! The provisional year: the days off the national holiday regulations fix, computed with
//! `tyme4rs` (lunar dates, the Qingming solar term).

use chrono::NaiveDate;
use std::collections::BTreeSet;

/// The first year [`statutory_days_off`] knows the rule for (the 2013 revision).
pub(super) const STATUTORY_RULE_FROM: i32 = 2014;
/// The last year a provisional calendar is computed for (far beyond any real use; the
/// lunar and solar-term computations are checked well inside it).
pub(super) const STATUTORY_RULE_UNTIL: i32 = 2199;

/// The days off that the national holiday regulations (全国年节及纪念日放假办法) fix for
/// every citizen in `year`, with the festival name as holiday-cn writes it, by date; None
/// for years outside 2014–2199.
///
/// From 2025 (the 2024 revision): New Year's Day (Jan 1), Spring Festival from New Year's
/// Eve to the third day of the first lunar month (4 days), Qingming (the day of the solar
/// term), Labour Day (May 1–2), Dragon Boat (5/5 lunar), Mid-Autumn (8/15 lunar) and
/// National Day (Oct 1–3). From 2014 to 2024 (the 2013 revision) the Spring Festival was the
/// first to third day and Labour Day May 1 only; those years are here so the rule can be
/// checked against the shipped notices. Bridge days, make-up working days and the
/// weekday a holiday falling on a weekend is made up on are left to each year's notice.
pub fn statutory_days_off(year: i32) -> Option<Vec<(NaiveDate, &'static str)>> {
    use tyme4rs::tyme::lunar::LunarDay;
    use tyme4rs::tyme::solar::{SolarDay, SolarTerm};
    if !(STATUTORY_RULE_FROM..=STATUTORY_RULE_UNTIL).contains(&year) {
        return None;
    }
    let y = year as isize;
    let naive = |s: SolarDay| {
        let (Ok(m), Ok(d)) = (u32::try_from(s.get_month()), u32::try_from(s.get_day())) else {
            return None;
        };
        NaiveDate::from_ymd_opt(i32::try_from(s.get_year()).ok()?, m, d)
    };
    let lunar = |month: isize, day: usize| {
        LunarDay::new(y, month, day)
            .ok()
            .and_then(|l| naive(l.get_solar_day()))
    };
    let ymd = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d);
    let revised = year >= 2025;
    let new_year = lunar(1, 1)?;
    let mut days: Vec<(NaiveDate, &'static str)> = Vec::new();
    days.push((ymd(1, 1)?, "元旦"));
    if revised {
        days.push((new_year.pred_opt()?, "春节"));
    }
    for k in 0..3 {
        days.push((new_year.checked_add_days(chrono::Days::new(k))?, "春节"));
    }
    let qingming = SolarTerm::new(y, "清明").ok().map(|t| t.get_solar_day())?;
    days.push((naive(qingming)?, "清明节"));
    days.push((ymd(5, 1)?, "劳动节"));
    if revised {
        days.push((ymd(5, 2)?, "劳动节"));
    }
    days.push((lunar(5, 5)?, "端午节"));
    // National Day first: when Mid-Autumn falls on Oct 1–3 the day is one day off either way.
    for d in 1..=3 {
        days.push((ymd(10, d)?, "国庆节"));
    }
    days.push((lunar(8, 15)?, "中秋节"));
    let mut seen = BTreeSet::new();
    days.retain(|(d, _)| seen.insert(*d));
    days.sort();
    Some(days)
}
