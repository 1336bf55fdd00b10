//! The China working-day calendar (工作日历): which dates are worked under the State
//! Council's annual holiday notice (国务院办公厅关于某年部分节假日安排的通知).
//!
//! Why data and not code: the schedule cannot be computed. Lunar festivals move every
//! year, the notice decides by hand which weekdays are bridged into a holiday and which
//! Saturdays or Sundays become make-up working days (调休上班), and notices have been
//! amended after publication (the 2020 Spring Festival break was extended by a second
//! notice). So each year's schedule is a file, `config/calendar/YYYY.json` in the
//! NateScarlet/holiday-cn layout, that an administrator adds when the notice is out.
//!
//! The notice for a year comes out in November of the year before, but rounds that cross
//! the year must start before that. So the year right after the last file is answered by a
//! **provisional calendar**: weekends off plus the statutory holidays that the national
//! regulations fix (全国年节及纪念日放假办法, as revised in 2024), with the lunar dates
//! and the Qingming solar term computed by `tyme4rs`; no bridge days and no make-up
//! working days, which only the notice can name. Every answer that looked at that year
//! says so ([`Dated::provisional`]), so callers can mark it. Any other year without a file
//! is [`CalendarError::YearNotCovered`], never a silent Monday-to-Friday rule. The module
//! is pure (no clock, no I/O) except for the thin loader [`Calendar::load_dir`].

mod holidaycn;
pub mod statutory;
#[cfg(test)]
mod tests;

use chrono::{Datelike, NaiveDate, Weekday};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The working-day calendar built from one or more year files.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Dates the notices name: holidays and make-up working days.
    special: BTreeMap<NaiveDate, Special>,
    /// Years for which a year file was loaded.
    years: BTreeSet<i32>,
    /// The year after the last file, answered by the statutory rule until its file is added.
    provisional: Option<Provisional>,
}

/// The provisional year: its statutory days off, by date, with the festival name.
#[derive(Debug, Clone)]
struct Provisional {
    /// The year.
    year: i32,
    /// Statutory days off (weekends are off anyway).
    off: BTreeMap<NaiveDate, &'static str>,
}

/// A date a calendar walk arrived at, and whether the walk looked at a provisional year
/// (so the date may move once that year's file is added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dated {
    /// The date.
    pub date: NaiveDate,
    /// True when a day of the provisional year was consulted on the way.
    pub provisional: bool,
}

/// One date named by a notice.
#[derive(Debug, Clone)]
struct Special {
    /// The festival the date belongs to, e.g. `春节`.
    name: String,
    /// `true` = a day off, `false` = a make-up working day.
    off: bool,
}

/// What to do with a date that falls on a non-working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roll {
    /// Leave the date as it is.
    Keep,
    /// Move to the next working day on or after the date.
    Forward,
    /// Move to the previous working day on or before the date.
    Backward,
}

/// What kind of day a date is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum DayKind {
    /// A Monday to Friday that the notice leaves alone.
    Workday,
    /// A Saturday or Sunday that the notice leaves alone.
    Weekend,
    /// A day off named by the notice (may fall on any day of the week).
    Holiday {
        /// The festival, e.g. `国庆节`.
        name: String,
    },
    /// A Saturday or Sunday that is worked (调休上班).
    MakeUpWorkday {
        /// The festival the make-up day pays for, e.g. `春节`.
        name: String,
    },
}

impl DayKind {
    /// Whether this kind of day is worked.
    pub fn is_working(&self) -> bool {
        matches!(self, DayKind::Workday | DayKind::MakeUpWorkday { .. })
    }
}

/// A calendar question that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The answer needs a date in a year for which no year file was loaded.
    #[error(
        "no holiday data for {year} ({}); add config/calendar/{year}.json from the State Council notice",
        coverage_phrase(.covered)
    )]
    YearNotCovered {
        /// The year that is missing.
        year: i32,
        /// The years the calendar does cover, ascending.
        covered: Vec<i32>,
    },
    /// A month number outside 1..=12 was asked for.
    #[error("invalid month {month} in year {year}: months are numbered 1 to 12")]
    InvalidMonth {
        /// The year asked for.
        year: i32,
        /// The month asked for.
        month: u32,
    },
}

/// One problem in one calendar file, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CalendarFileError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line (0 when the problem is not inside the text, e.g. an unreadable file).
    pub line: usize,
    /// 1-based column in characters (0 when the problem is not inside the text).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Calendar {
    /// The years with a loaded year file, ascending.
    pub fn covered_years(&self) -> Vec<i32> {
        self.years.iter().copied().collect()
    }

    /// Whether a year file for `year` was loaded.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The year answered provisionally (the one after the last file), if any.
    pub fn provisional_year(&self) -> Option<i32> {
        self.provisional.as_ref().map(|p| p.year)
    }

    /// Whether `year` is answered by the provisional calendar (no file yet).
    pub fn is_provisional(&self, year: i32) -> bool {
        self.provisional_year() == Some(year)
    }

    /// The year whose file the office should add now, as of `today`: from 1 November the
    /// next year, and the current year itself while it is still missing. None when that
    /// file is there, or when the calendar has no file at all to count from (nothing is
    /// configured, so there is nobody to remind of a routine update).
    pub fn wanted_year(&self, today: NaiveDate) -> Option<i32> {
        let last = *self.years.last()?;
        let this = today.year();
        let next = this.checked_add(1)?;
        if !self.covers(this) && this > last {
            return Some(this);
        }
        (today.month() >= 11 && !self.covers(next) && next > last).then_some(next)
    }

    /// The kind of day `date` is; errors if its year is neither covered nor provisional.
    pub fn day_kind(&self, date: NaiveDate) -> Result<DayKind, CalendarError> {
        let provisional = self.require(date.year())?;
        Ok(match self.special.get(&date) {
            Some(s) if s.off => DayKind::Holiday {
                name: s.name.clone(),
            },
            Some(s) => DayKind::MakeUpWorkday {
                name: s.name.clone(),
            },
            None => match self.statutory_off(date, provisional) {
                Some(name) => DayKind::Holiday {
                    name: name.to_string(),
                },
                None if is_weekend(date) => DayKind::Weekend,
                None => DayKind::Workday,
            },
        })
    }

    /// Whether `date` is worked; errors if its year is neither covered nor provisional.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        self.working(date).map(|(worked, _)| worked)
    }

    /// n > 0: the n-th working day strictly after `date`; n < 0: the |n|-th working day strictly before;
    /// n == 0: `date` itself if it is a working day, else the next working day.
    ///
    /// `date` itself is only looked at when n == 0. Every walk ends: it either counts
    /// down or steps into a year without data and returns [`CalendarError::YearNotCovered`].
    pub fn add_working_days(&self, date: NaiveDate, n: i64) -> Result<NaiveDate, CalendarError> {
        self.add_working_days_dated(date, n).map(|d| d.date)
    }

    /// [`add_working_days`](Self::add_working_days), saying whether the walk looked at a
    /// day of the provisional year.
    pub fn add_working_days_dated(&self, date: NaiveDate, n: i64) -> Result<Dated, CalendarError> {
        if n == 0 {
            return self.roll_dated(date, Roll::Forward);
        }
        let forward = n > 0;
        let mut left = n.unsigned_abs();
        let mut day = date;
        let mut provisional = false;
        while left > 0 {
            day = self.step(day, forward)?;
            let (worked, p) = self.working(day)?;
            provisional |= p;
            if worked {
                left -= 1;
            }
        }
        Ok(Dated {
            date: day,
            provisional,
        })
    }

    /// Keep: date unchanged (never needs data); Forward: next working day on/after; Backward: previous on/before.
    pub fn roll(&self, date: NaiveDate, roll: Roll) -> Result<NaiveDate, CalendarError> {
        self.roll_dated(date, roll).map(|d| d.date)
    }

    /// [`roll`](Self::roll), saying whether a day of the provisional year was looked at.
    pub fn roll_dated(&self, date: NaiveDate, roll: Roll) -> Result<Dated, CalendarError> {
        let forward = match roll {
            Roll::Keep => {
                return Ok(Dated {
                    date,
                    provisional: false,
                });
            }
            Roll::Forward => true,
            Roll::Backward => false,
        };
        let mut day = date;
        let mut provisional = false;
        loop {
            let (worked, p) = self.working(day)?;
            provisional |= p;
            if worked {
                return Ok(Dated {
                    date: day,
                    provisional,
                });
            }
            day = self.step(day, forward)?;
        }
    }

    /// (worked, provisional) for one date; the hot path of every walk.
    fn working(&self, date: NaiveDate) -> Result<(bool, bool), CalendarError> {
        let provisional = self.require(date.year())?;
        let off = match self.special.get(&date) {
            Some(s) => s.off,
            None => is_weekend(date) || self.statutory_off(date, provisional).is_some(),
        };
        Ok((!off, provisional))
    }

    /// The statutory festival of a date in the provisional year, if it is one.
    fn statutory_off(&self, date: NaiveDate, provisional: bool) -> Option<&'static str> {
        if !provisional {
            return None;
        }
        self.provisional
            .as_ref()
            .and_then(|p| p.off.get(&date).copied())
    }

    /// The first working day on or after the 1st of the month.
    pub fn first_working_day_of_month(
        &self,
        year: i32,
        month: u32,
    ) -> Result<NaiveDate, CalendarError> {
        let first = self.month_day(year, month, 1)?;
        self.roll(first, Roll::Forward)
    }

    /// The last working day on or before the last day of the month.
    pub fn last_working_day_of_month(
        &self,
        year: i32,
        month: u32,
    ) -> Result<NaiveDate, CalendarError> {
        let last = [31, 30, 29, 28]
            .into_iter()
            .find_map(|d| NaiveDate::from_ymd_opt(year, month, d));
        let last = match last {
            Some(day) => day,
            None => self.month_day(year, month, 1)?,
        };
        self.roll(last, Roll::Backward)
    }

    /// Working days in the half-open range [from, to) — useful for "days remaining".
    ///
    /// Negative when `to` is before `from` (minus the count of [to, from)); an empty
    /// range is 0 and needs no data.
    pub fn working_days_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<i64, CalendarError> {
        if to < from {
            return Ok(-self.working_days_between(to, from)?);
        }
        // Check every year first so the error names the first missing year even when
        // the range is long.
        if from < to {
            let last = to.pred_opt().unwrap_or(to);
            for year in from.year()..=last.year() {
                self.require(year)?;
            }
        }
        let mut count = 0;
        let mut day = from;
        while day < to {
            if self.is_working_day(day)? {
                count += 1;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(count)
    }

    /// Ok(false) if `year` has a file, Ok(true) if it is the provisional year, else the
    /// coverage error.
    fn require(&self, year: i32) -> Result<bool, CalendarError> {
        if self.covers(year) {
            Ok(false)
        } else if self.is_provisional(year) {
            Ok(true)
        } else {
            Err(CalendarError::YearNotCovered {
                year,
                covered: self.covered_years(),
            })
        }
    }

    /// The next (or previous) date; running off chrono's range is an uncovered year.
    fn step(&self, date: NaiveDate, forward: bool) -> Result<NaiveDate, CalendarError> {
        let next = if forward {
            date.succ_opt()
        } else {
            date.pred_opt()
        };
        // Year files are named YYYY.json, so no covered year is near chrono's limits.
        next.ok_or_else(|| CalendarError::YearNotCovered {
            year: if forward {
                date.year().saturating_add(1)
            } else {
                date.year().saturating_sub(1)
            },
            covered: self.covered_years(),
        })
    }

    /// Day `day` of a month, or the error for a bad month / out-of-range year.
    fn month_day(&self, year: i32, month: u32, day: u32) -> Result<NaiveDate, CalendarError> {
        if !(1..=12).contains(&month) {
            return Err(CalendarError::InvalidMonth { year, month });
        }
        match NaiveDate::from_ymd_opt(year, month, day) {
            Some(date) => Ok(date),
            // Only a year outside chrono's range gets here; no file can cover it.
            None => Err(CalendarError::YearNotCovered {
                year,
                covered: self.covered_years(),
            }),
        }
    }
}

/// "calendar covers 2019–2026", "calendar covers 2019–2021, 2023" or "calendar covers no years".
fn coverage_phrase(years: &[i32]) -> String {
    let mut ranges: Vec<(i32, i32)> = Vec::new();
    for &y in years {
        match ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(y) => *end = y,
            _ => ranges.push((y, y)),
        }
    }
    if ranges.is_empty() {
        return "calendar covers no years".to_string();
    }
    let mut out = String::from("calendar covers ");
    for (i, (start, end)) in ranges.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}–{end}");
        }
    }
    out
}

/// Saturday or Sunday.
fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}
