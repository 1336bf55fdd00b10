//! Recurring programmes: when the next round of a scheduled workflow starts.
//!
//! Architecture Invariant: pure; the instant to search after is passed in.

use crate::core::calendar::{Calendar, CalendarError};
use crate::core::definition::{DayOfMonth, Schedule, TimeOfDay, Yearly};
use crate::core::diagnostic::{Loc, Severity, Sp};
use crate::core::plan::Problem;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// Why a next kickoff could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// Parser message.
        reason: String,
    },
    /// The rule needs working days of a year the calendar lacks.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    /// Neither `yearly` nor `cron`, or both.
    #[error("a schedule needs exactly one of `yearly` and `cron`")]
    Shape,
}

/// Static checks of a schedule (shape, month/day ranges, cron syntax).
pub fn check(s: &Sp<Schedule>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut err = |loc: Loc, code: &'static str, message: String, hint: Option<String>| {
        out.push(Problem {
            severity: Severity::Error,
            code,
            loc,
            message,
            hint,
        })
    };
    match (&s.yearly, &s.cron) {
        (Some(_), Some(_)) | (None, None) => err(
            s.loc,
            "bad-schedule",
            "a schedule needs exactly one of `yearly` and `cron`".into(),
            Some(
                "e.g. `yearly: {month: 12, day: 1, at: \"09:00\"}` or `cron: \"0 9 1 12 *\"`"
                    .into(),
            ),
        ),
        _ => {}
    }
    if let Some(y) = &s.yearly {
        let m = y.month.value;
        if !(1..=12).contains(&m) {
            err(
                y.month.loc,
                "bad-schedule",
                format!("month {m} is not between 1 and 12"),
                None,
            );
        } else if let DayOfMonth::Day(d) = y.day.value {
            // 2024 is a leap year: a day that fails there never exists.
            if NaiveDate::from_ymd_opt(2024, m, d).is_none() {
                err(
                    y.day.loc,
                    "bad-schedule",
                    format!("month {m} never has a day {d}"),
                    Some("use `day: last` for the last day of the month".into()),
                );
            } else if m == 2 && d == 29 {
                err(
                    y.day.loc,
                    "bad-schedule",
                    "February 29 exists only in leap years".into(),
                    Some("use `day: last`".into()),
                );
            }
        }
    }
    if let Some(c) = &s.cron
        && let Err(e) = croner::Cron::from_str(&c.value)
    {
        err(
                c.loc,
                "bad-schedule",
                format!("invalid cron expression `{}`: {e}", c.value),
                Some("5 fields: minute hour day-of-month month day-of-week, e.g. \"0 9 1 12 *\" (09:00 every December 1st)".into()),
            );
    }
    if let Some(n) = &s.every_years {
        if n.value == 0 {
            err(
                n.loc,
                "bad-schedule",
                "`every_years` must be at least 1".into(),
                None,
            );
        }
        if s.yearly.is_none() {
            err(
                n.loc,
                "bad-schedule",
                "`every_years` only works with `yearly`".into(),
                None,
            );
        }
        if n.value > 1 && s.since.is_none() {
            err(
                n.loc,
                "bad-schedule",
                "`every_years` above 1 needs `since: YEAR` (a year in which it fires)".into(),
                None,
            );
        }
    }
    out
}

fn yearly_date(y: &Yearly, year: i32, cal: &Calendar) -> Result<Option<NaiveDate>, CalendarError> {
    let m = y.month.value;
    Ok(match y.day.value {
        DayOfMonth::Day(d) => NaiveDate::from_ymd_opt(year, m, d),
        DayOfMonth::FirstWorkingDay => Some(cal.first_working_day_of_month(year, m)?),
        DayOfMonth::LastWorkingDay => Some(cal.last_working_day_of_month(year, m)?),
        DayOfMonth::Last => {
            // The month is not range-checked on this path: u32::MAX must not overflow.
            let (ny, nm) = if m == 12 {
                (year.checked_add(1), 1)
            } else {
                (Some(year), m.saturating_add(1))
            };
            ny.and_then(|ny| NaiveDate::from_ymd_opt(ny, nm, 1))
                .and_then(|d| d.pred_opt())
        }
    })
}

/// Whether a kickoff of this schedule on `date` was found on the provisional calendar: a
/// working-day rule (`first_working_day`, `last_working_day`) in a year without a holiday
/// file. Such a kickoff moves if the file, once added, says otherwise.
pub fn is_provisional(s: &Schedule, cal: &Calendar, date: NaiveDate) -> bool {
    uses_working_days(s) && cal.is_provisional(date.year())
}

/// Whether the kickoff date depends on the holiday calendar at all.
pub fn uses_working_days(s: &Schedule) -> bool {
    s.yearly.as_ref().is_some_and(|y| {
        matches!(
            y.day.value,
            DayOfMonth::FirstWorkingDay | DayOfMonth::LastWorkingDay
        )
    })
}

/// The first kickoff strictly after `after`, in the workflow's time zone.
pub fn next_kickoff(
    s: &Schedule,
    tz: Tz,
    cal: &Calendar,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Tz>>, ScheduleError> {
    match (&s.yearly, &s.cron) {
        (Some(y), None) => {
            // In i64 and stepping by `every`: `every_years` and `since` come straight from
            // the file (any u32 / i32), so neither may overflow nor loop for billions of years.
            let every = i64::from(s.every_years.as_ref().map(|n| n.value).unwrap_or(1).max(1));
            let since = i64::from(s.since.unwrap_or(0));
            let local_after = after.with_timezone(&tz);
            let at = y.at.unwrap_or(TimeOfDay::hm(9, 0));
            let first = i64::from(local_after.year());
            // The first year on or after `first` that is a multiple of `every` from `since`.
            let mut year = first + (since - first).rem_euclid(every);
            while year <= first + 2 * every + 1 {
                let Ok(this) = i32::try_from(year) else {
                    break;
                };
                year += every;
                let Some(date) = yearly_date(y, this, cal)? else {
                    continue;
                };
                let Some(t) = tz.from_local_datetime(&date.and_time(at.0)).earliest() else {
                    continue;
                };
                if t.with_timezone(&Utc) > after {
                    return Ok(Some(t));
                }
            }
            Ok(None)
        }
        (None, Some(c)) => {
            let cron = croner::Cron::from_str(&c.value).map_err(|e| ScheduleError::Cron {
                expr: c.value.clone(),
                reason: e.to_string(),
            })?;
            match cron.find_next_occurrence(&after.with_timezone(&tz), false) {
                Ok(t) => Ok(Some(t)),
                Err(_) => Ok(None),
            }
        }
        _ => Err(ScheduleError::Shape),
    }
}
