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

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

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

/// The first year [`statutory_days_off`] knows the rule for (the 2013 revision).
const STATUTORY_RULE_FROM: i32 = 2014;
/// The last year a provisional calendar is computed for (far beyond any real use; the
/// lunar and solar-term computations are checked well inside it).
const STATUTORY_RULE_UNTIL: i32 = 2199;

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

/// The year file layout (NateScarlet/holiday-cn).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    /// JSON schema URL that upstream holiday-cn files carry; ignored.
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    /// Document id that upstream holiday-cn files carry; ignored.
    #[serde(rename = "$id", default)]
    _id: Option<String>,
    /// The year the notice is for.
    year: i32,
    /// Links to the notices; checked for shape only.
    #[serde(rename = "papers")]
    _papers: Vec<String>,
    /// The named dates.
    days: Vec<DayEntry>,
}

/// One entry of `days`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayEntry {
    /// The festival name.
    name: String,
    /// `YYYY-MM-DD`.
    date: String,
    /// `true` = day off, `false` = make-up working day.
    #[serde(rename = "isOffDay")]
    is_off_day: bool,
}

/// Where an accepted date entry came from, for conflict messages.
struct Seen {
    /// The entry's isOffDay.
    off: bool,
    /// `file:line:column` of the entry's date.
    at: String,
}

const LAYOUT_HINT: &str = "a calendar file looks like {\"year\": 2024, \"papers\": [\"https://www.gov.cn/...\"], \"days\": [{\"name\": \"春节\", \"date\": \"2024-02-04\", \"isOffDay\": false}]}; no other keys are allowed";

impl Calendar {
    /// Parse year files given as (file name for messages, contents). Returns all problems at once.
    ///
    /// Each file name must be `YYYY.json` (any directory prefix is ignored) and agree
    /// with the file's `"year"`. A year counts as covered only if its own file is loaded;
    /// entries dated in a neighbouring year still apply to their own date.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Calendar, Vec<CalendarFileError>> {
        let mut calendar = Calendar::default();
        let mut errors = Vec::new();
        let mut year_files: BTreeMap<i32, String> = BTreeMap::new();
        let mut seen: HashMap<NaiveDate, Seen> = HashMap::new();
        for (file, text) in sources {
            calendar.load_one(file, text, &mut year_files, &mut seen, &mut errors);
        }
        if errors.is_empty() {
            calendar.provisional = calendar
                .years
                .last()
                .and_then(|y| y.checked_add(1))
                .and_then(|year| {
                    let off = statutory_days_off(year)?.into_iter().collect();
                    Some(Provisional { year, off })
                });
            Ok(calendar)
        } else {
            Err(errors)
        }
    }

    /// Thin I/O edge: read every `*.json` in `dir` (sorted) and call from_sources.
    pub fn load_dir(dir: &Path) -> Result<Calendar, Vec<CalendarFileError>> {
        let io_error = |file: &Path, e: std::io::Error| CalendarFileError {
            file: file.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
            hint: None,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| vec![io_error(dir, e)])?;
        let mut paths = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let path = entry.path();
                    let is_json = path
                        .extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| x.eq_ignore_ascii_case("json"));
                    if is_json && path.is_file() {
                        paths.push(path);
                    }
                }
                Err(e) => errors.push(io_error(dir, e)),
            }
        }
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let name = path.display().to_string();
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => files.push((name, text)),
                    Err(e) => {
                        let valid = e.utf8_error().valid_up_to();
                        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
                        let (line, column) = line_col(&prefix, prefix.len());
                        errors.push(CalendarFileError {
                            file: name,
                            line,
                            column,
                            message: "the file is not valid UTF-8".to_string(),
                            hint: Some("save the file as UTF-8 (not GBK)".to_string()),
                        });
                    }
                },
                Err(e) => errors.push(io_error(&path, e)),
            }
        }
        let parsed = Calendar::from_sources(files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        match parsed {
            Ok(calendar) if errors.is_empty() => Ok(calendar),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Parse and merge one file, pushing every problem found.
    fn load_one(
        &mut self,
        file: &str,
        text: &str,
        year_files: &mut BTreeMap<i32, String>,
        seen: &mut HashMap<NaiveDate, Seen>,
        errors: &mut Vec<CalendarFileError>,
    ) {
        // Windows editors often save UTF-8 with a byte order mark; it is invisible, so
        // positions are counted without it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc: YearFile = match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(e) => {
                errors.push(json_error(file, text, &e));
                return;
            }
        };
        let error = |(line, column): (usize, usize), message: String, hint: Option<String>| {
            CalendarFileError {
                file: file.to_string(),
                line,
                column,
                message,
                hint,
            }
        };
        let year = doc.year;
        let year_pos = key_value_offsets(text, "year")
            .first()
            .map_or((1, 1), |&o| line_col(text, o));
        let mut merge = true;
        match year_from_file_name(file) {
            None => errors.push(error(
                year_pos,
                format!("file name {file:?} is not of the form YYYY.json"),
                Some(format!(
                    "name the file after the year of its notice: {year}.json"
                )),
            )),
            Some(named) if named != year => errors.push(error(
                year_pos,
                format!("\"year\" is {year} but the file name says {named}"),
                Some(format!(
                    "rename the file to {year}.json, or fix \"year\" to {named}"
                )),
            )),
            Some(_) => {}
        }
        if let Some(first) = year_files.get(&year) {
            errors.push(error(
                year_pos,
                format!("year {year} is already loaded from {first}"),
                Some("keep exactly one file per year".to_string()),
            ));
            // Merging a second copy would only repeat its differences as date conflicts.
            merge = false;
        } else {
            year_files.insert(year, file.to_string());
        }

        let date_offsets = key_value_offsets(text, "date");
        for (i, day) in doc.days.iter().enumerate() {
            let pos = if date_offsets.len() == doc.days.len() {
                date_offsets.get(i).map_or(year_pos, |&o| line_col(text, o))
            } else {
                year_pos
            };
            let Some(date) = parse_date(&day.date) else {
                errors.push(error(
                    pos,
                    format!("{:?} is not a valid date in YYYY-MM-DD form", day.date),
                    Some("write dates with zero padding, e.g. \"2024-10-01\"".to_string()),
                ));
                continue;
            };
            if (i64::from(date.year()) - i64::from(year)).abs() > 1 {
                errors.push(error(
                    pos,
                    format!("{date} is more than one year away from the file's year {year}"),
                    Some(format!(
                        "a notice for {year} only names dates in {year} and around New Year; check the year in the date"
                    )),
                ));
                continue;
            }
            if !day.is_off_day && !is_weekend(date) {
                errors.push(error(
                    pos,
                    format!(
                        "{date} is a {}, so it cannot be a make-up workday (\"isOffDay\": false)",
                        weekday_name(date.weekday())
                    ),
                    Some("make-up workdays (调休上班) always fall on a Saturday or Sunday; Monday to Friday are worked anyway. Check the date, or set \"isOffDay\": true if it is a day off".to_string()),
                ));
                continue;
            }
            let at = format!("{file}:{}:{}", pos.0, pos.1);
            match seen.get(&date) {
                Some(prev) if prev.off != day.is_off_day => {
                    errors.push(error(
                        pos,
                        format!(
                            "{date} is listed here as {} but at {} as {}",
                            off_phrase(day.is_off_day),
                            prev.at,
                            off_phrase(prev.off)
                        ),
                        Some("a date is either a day off or a make-up workday; check the notice and keep one entry".to_string()),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(
                        date,
                        Seen {
                            off: day.is_off_day,
                            at,
                        },
                    );
                    if merge {
                        self.special.insert(
                            date,
                            Special {
                                name: day.name.clone(),
                                off: day.is_off_day,
                            },
                        );
                    }
                }
            }
        }
        if merge {
            self.years.insert(year);
        }
    }

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

/// English weekday name for messages.
fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// How an isOffDay value reads in a message.
fn off_phrase(off: bool) -> &'static str {
    if off {
        "a day off (\"isOffDay\": true)"
    } else {
        "a make-up workday (\"isOffDay\": false)"
    }
}

/// Strict `YYYY-MM-DD` (zero-padded, real date).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let year = s.get(0..4)?.parse().ok()?;
    let month = s.get(5..7)?.parse().ok()?;
    let day = s.get(8..10)?.parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The year in a file name `YYYY.json` (directories ignored), if it has that form.
fn year_from_file_name(file: &str) -> Option<i32> {
    let name = Path::new(file).file_name()?.to_str()?;
    let (stem, ext) = name.rsplit_once('.')?;
    if !ext.eq_ignore_ascii_case("json")
        || stem.len() != 4
        || !stem.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    stem.parse().ok()
}

/// A serde_json error as a file error, with the column counted in characters.
fn json_error(file: &str, text: &str, e: &serde_json::Error) -> CalendarFileError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    let hint = match e.classify() {
        serde_json::error::Category::Data => Some(LAYOUT_HINT.to_string()),
        serde_json::error::Category::Eof => {
            Some("the file ends early: look for a missing closing bracket, brace or quote".to_string())
        }
        serde_json::error::Category::Syntax => Some(
            "look for a missing comma or quote just before this point; JSON allows no trailing commas or comments".to_string(),
        ),
        serde_json::error::Category::Io => None,
    };
    CalendarFileError {
        file: file.to_string(),
        line: e.line(),
        column: char_column(text, e.line(), e.column()),
        message,
        hint,
    }
}

/// Convert serde_json's byte column on a 1-based line into a 1-based character column.
fn char_column(text: &str, line: usize, byte_column: usize) -> usize {
    let Some(line_text) = line.checked_sub(1).and_then(|i| text.split('\n').nth(i)) else {
        return byte_column;
    };
    let mut end = byte_column.min(line_text.len());
    while !line_text.is_char_boundary(end) {
        end += 1;
    }
    line_text
        .get(..end)
        .map_or(byte_column, |s| s.chars().count())
        .max(1)
}

/// 1-based line and character column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Byte offsets of the values of every object key `key`, in document order.
///
/// For a string value the offset is its first character inside the quotes. Only
/// called on text that already parsed as JSON, so a plain scan over string tokens is
/// enough: a string followed by `:` is a key.
fn key_value_offsets(text: &str, key: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        if j >= bytes.len() {
            break;
        }
        let content = text.get(start..j).unwrap_or("");
        i = j + 1;
        let colon = skip_ws(i);
        if content == key && bytes.get(colon) == Some(&b':') {
            let value = skip_ws(colon + 1);
            if value < bytes.len() {
                out.push(if bytes[value] == b'"' {
                    value + 1
                } else {
                    value
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    /// Errors from loading the given inline files.
    fn errors_of(files: &[(&str, &str)]) -> Vec<CalendarFileError> {
        match Calendar::from_sources(files.iter().copied()) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e,
        }
    }

    fn one_error(name: &str, text: &str) -> CalendarFileError {
        let mut errs = errors_of(&[(name, text)]);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        errs.remove(0)
    }

    fn cal(files: &[(&str, &str)]) -> Calendar {
        Calendar::from_sources(files.iter().copied()).expect("valid test calendar")
    }

    /// A tiny 2024 file: Spring Festival make-up Sunday, two holidays, a weekend holiday.
    const MINI_2024: &str = r#"{
  "year": 2024,
  "papers": [],
  "days": [
    {"name": "春节", "date": "2024-02-04", "isOffDay": false},
    {"name": "春节", "date": "2024-02-10", "isOffDay": true},
    {"name": "春节", "date": "2024-02-12", "isOffDay": true},
    {"name": "国庆节", "date": "2024-10-01", "isOffDay": true}
  ]
}"#;

    const EMPTY_2025: &str = r#"{"year": 2025, "papers": [], "days": []}"#;

    // ---- validation ----

    #[test]
    fn valid_minimal_file_loads_and_covers_its_year() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.covered_years(), vec![2024]);
        assert!(c.covers(2024));
        assert!(!c.covers(2023));
    }

    #[test]
    fn json_syntax_error_reports_serde_line_and_column() {
        let text = "{\n  \"year\": 2024,\n  \"papers\": [],\n  \"days\": [,]\n}";
        let e = one_error("2024.json", text);
        assert_eq!((e.line, e.column), (4, 12));
        assert_eq!(e.message, "expected value");
        assert_eq!(e.to_string(), "2024.json:4:12: expected value");
        assert!(e.hint.is_some());
    }

    #[test]
    fn truncated_file_is_an_eof_error_with_hint() {
        let e = one_error("2024.json", "{\"year\": 2024, \"papers\": [");
        assert_eq!(e.message, "EOF while parsing a list");
        assert_eq!(e.line, 1);
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("ends early")));
    }

    #[test]
    fn unknown_key_is_rejected_at_its_position() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [],\n \"holidays\": []}";
        let e = one_error("2024.json", text);
        assert!(
            e.message.starts_with("unknown field `holidays`"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (2, 11));
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("no other keys"))
        );
    }

    #[test]
    fn unknown_key_inside_a_day_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"x\", \"date\": \"2024-10-01\", \"isOffDay\": true, \"off\": 1}\n]}";
        let e = one_error("2024.json", text);
        assert!(
            e.message.starts_with("unknown field `off`"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 2);
    }

    #[test]
    fn missing_key_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"x\", \"date\": \"2024-10-01\"}\n]}";
        let e = one_error("2024.json", text);
        assert_eq!(e.message, "missing field `isOffDay`");
        assert_eq!((e.line, e.column), (2, 37));
        let e = one_error("2024.json", "{\"year\": 2024, \"days\": []}");
        assert_eq!(e.message, "missing field `papers`");
    }

    #[test]
    fn upstream_holiday_cn_schema_and_id_keys_are_accepted() {
        let text = r#"{"$schema": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/schema.json",
 "$id": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/2024.json",
 "year": 2024, "papers": [], "days": []}"#;
        assert_eq!(cal(&[("2024.json", text)]).covered_years(), vec![2024]);
    }

    #[test]
    fn wrong_value_type_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"x\", \"date\": \"2024-10-01\", \"isOffDay\": \"yes\"}\n]}";
        let e = one_error("2024.json", text);
        assert!(
            e.message
                .starts_with("invalid type: string \"yes\", expected a boolean"),
            "{}",
            e.message
        );
        assert_eq!(e.line, 2);
    }

    #[test]
    fn unpadded_date_is_rejected_at_the_date_string() {
        let text = "{\n  \"year\": 2024,\n  \"papers\": [],\n  \"days\": [\n    {\"name\": \"国庆节\", \"date\": \"2024-10-1\", \"isOffDay\": true}\n  ]\n}";
        let e = one_error("2024.json", text);
        assert_eq!(
            e.message,
            "\"2024-10-1\" is not a valid date in YYYY-MM-DD form"
        );
        // `    {"name": "国庆节", "date": "` is 29 characters (each CJK character counts once),
        // so the date's first character is column 30.
        assert_eq!((e.line, e.column), (5, 30));
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("2024-10-01")));
    }

    #[test]
    fn impossible_date_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [{\"name\": \"x\", \"date\": \"2024-02-30\", \"isOffDay\": true}]}";
        let e = one_error("2024.json", text);
        assert_eq!(
            e.message,
            "\"2024-02-30\" is not a valid date in YYYY-MM-DD form"
        );
        assert_eq!((e.line, e.column), (1, 62));
    }

    #[test]
    fn year_disagreeing_with_file_name_is_rejected_with_rename_hint() {
        let text = "{\n  \"year\": 2025,\n  \"papers\": [],\n  \"days\": []\n}";
        let e = one_error("config/calendar/2024.json", text);
        assert_eq!(e.file, "config/calendar/2024.json");
        assert_eq!(e.message, "\"year\" is 2025 but the file name says 2024");
        assert_eq!((e.line, e.column), (2, 11));
        assert_eq!(
            e.hint.as_deref(),
            Some("rename the file to 2025.json, or fix \"year\" to 2024")
        );
    }

    #[test]
    fn file_name_that_is_not_a_year_is_rejected() {
        let e = one_error("holidays.json", MINI_2024);
        assert_eq!(
            e.message,
            "file name \"holidays.json\" is not of the form YYYY.json"
        );
        assert_eq!((e.line, e.column), (2, 11));
        assert_eq!(
            e.hint.as_deref(),
            Some("name the file after the year of its notice: 2024.json")
        );
    }

    #[test]
    fn same_year_loaded_twice_is_rejected() {
        let errs = errors_of(&[("a/2024.json", MINI_2024), ("b/2024.json", MINI_2024)]);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].file, "b/2024.json");
        assert_eq!(
            errs[0].message,
            "year 2024 is already loaded from a/2024.json"
        );
        assert_eq!((errs[0].line, errs[0].column), (2, 11));
    }

    #[test]
    fn same_date_with_conflicting_is_off_day_in_one_file_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"a\", \"date\": \"2024-10-05\", \"isOffDay\": true},\n  {\"name\": \"b\", \"date\": \"2024-10-05\", \"isOffDay\": false}\n]}";
        let e = one_error("2024.json", text);
        assert_eq!(
            e.message,
            "2024-10-05 is listed here as a make-up workday (\"isOffDay\": false) but at 2024.json:2:26 as a day off (\"isOffDay\": true)"
        );
        assert_eq!((e.line, e.column), (3, 26));
    }

    #[test]
    fn same_date_with_conflicting_is_off_day_across_files_is_rejected() {
        let y2023 = "{\"year\": 2023, \"papers\": [], \"days\": [\n  {\"name\": \"元旦\", \"date\": \"2023-12-30\", \"isOffDay\": true}\n]}";
        let y2024 = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"元旦\", \"date\": \"2023-12-30\", \"isOffDay\": false}\n]}";
        let errs = errors_of(&[("2023.json", y2023), ("2024.json", y2024)]);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].file, "2024.json");
        assert!(
            errs[0].message.contains("at 2023.json:2:27"),
            "{}",
            errs[0].message
        );
        assert_eq!((errs[0].line, errs[0].column), (2, 27));
    }

    #[test]
    fn same_date_listed_twice_with_same_is_off_day_is_accepted_and_first_name_wins() {
        let text = r#"{"year": 2024, "papers": [], "days": [
  {"name": "甲", "date": "2024-10-01", "isOffDay": true},
  {"name": "乙", "date": "2024-10-01", "isOffDay": true}]}"#;
        let c = cal(&[("2024.json", text)]);
        assert_eq!(
            c.day_kind(d("2024-10-01")),
            Ok(DayKind::Holiday { name: "甲".into() })
        );
    }

    #[test]
    fn make_up_workday_on_a_weekday_is_rejected_with_hint() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"春节\", \"date\": \"2024-02-05\", \"isOffDay\": false}\n]}";
        let e = one_error("2024.json", text);
        assert_eq!(
            e.message,
            "2024-02-05 is a Monday, so it cannot be a make-up workday (\"isOffDay\": false)"
        );
        assert_eq!((e.line, e.column), (2, 27));
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("Saturday or Sunday"))
        );
    }

    #[test]
    fn holiday_on_a_weekend_is_accepted() {
        // 2024-02-10 is a Saturday listed as a day off, as real notices do.
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(
            c.day_kind(d("2024-02-10")),
            Ok(DayKind::Holiday {
                name: "春节".into()
            })
        );
    }

    #[test]
    fn date_more_than_one_year_from_the_file_year_is_rejected() {
        let text = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"x\", \"date\": \"2022-12-31\", \"isOffDay\": true},\n  {\"name\": \"y\", \"date\": \"2023-01-02\", \"isOffDay\": true}\n]}";
        let e = one_error("2024.json", text);
        assert_eq!(
            e.message,
            "2022-12-31 is more than one year away from the file's year 2024"
        );
        assert_eq!((e.line, e.column), (2, 26));
    }

    #[test]
    fn all_problems_in_all_files_are_reported_at_once() {
        let bad_2024 = "{\"year\": 2024, \"papers\": [], \"days\": [\n  {\"name\": \"a\", \"date\": \"2024-13-01\", \"isOffDay\": true},\n  {\"name\": \"b\", \"date\": \"2024-02-05\", \"isOffDay\": false}\n]}";
        let errs = errors_of(&[
            ("2023.json", "{\"year\": 2023,"),
            ("2024.json", bad_2024),
            ("2026.json", EMPTY_2025),
        ]);
        let summary: Vec<String> = errs
            .iter()
            .map(|e| format!("{}:{}:{}", e.file, e.line, e.column))
            .collect();
        assert_eq!(
            summary,
            vec![
                "2023.json:1:14",
                "2024.json:2:26",
                "2024.json:3:26",
                "2026.json:1:10"
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_ignored_and_not_counted_in_columns() {
        let text = format!(
            "\u{feff}{}",
            "{\"year\": 2025, \"papers\": [], \"days\": []}"
        );
        assert!(cal(&[("2025.json", &text)]).covers(2025));
        let e = one_error("2024.json", &text);
        assert_eq!((e.line, e.column), (1, 10));
    }

    #[test]
    fn empty_calendar_covers_nothing() {
        let c = Calendar::default();
        assert!(c.covered_years().is_empty());
        assert_eq!(
            c.is_working_day(d("2024-01-02")),
            Err(CalendarError::YearNotCovered {
                year: 2024,
                covered: vec![]
            })
        );
        assert_eq!(
            Calendar::from_sources([]).map(|c| c.covered_years()),
            Ok(vec![])
        );
    }

    // ---- coverage errors ----

    #[test]
    fn year_not_covered_message_names_the_year_and_a_contiguous_range() {
        let err = CalendarError::YearNotCovered {
            year: 2027,
            covered: (2019..=2026).collect(),
        };
        assert_eq!(
            err.to_string(),
            "no holiday data for 2027 (calendar covers 2019–2026); add config/calendar/2027.json from the State Council notice"
        );
    }

    #[test]
    fn year_not_covered_message_lists_gaps_single_years_and_empty_coverage() {
        let gap = CalendarError::YearNotCovered {
            year: 2022,
            covered: vec![2019, 2020, 2021, 2023, 2025, 2026],
        };
        assert_eq!(
            gap.to_string(),
            "no holiday data for 2022 (calendar covers 2019–2021, 2023, 2025–2026); add config/calendar/2022.json from the State Council notice"
        );
        let empty = CalendarError::YearNotCovered {
            year: 2024,
            covered: vec![],
        };
        assert_eq!(
            empty.to_string(),
            "no holiday data for 2024 (calendar covers no years); add config/calendar/2024.json from the State Council notice"
        );
    }

    #[test]
    fn neighbouring_year_entry_applies_to_its_date_but_does_not_cover_that_year() {
        let y2024 = r#"{"year": 2024, "papers": [], "days": [
  {"name": "元旦", "date": "2023-12-30", "isOffDay": false},
  {"name": "元旦", "date": "2024-01-01", "isOffDay": true}]}"#;
        let only_2024 = cal(&[("2024.json", y2024)]);
        assert!(matches!(
            only_2024.day_kind(d("2023-12-30")),
            Err(CalendarError::YearNotCovered { year: 2023, .. })
        ));
        let y2023 = r#"{"year": 2023, "papers": [], "days": []}"#;
        let both = cal(&[("2023.json", y2023), ("2024.json", y2024)]);
        assert_eq!(
            both.day_kind(d("2023-12-30")),
            Ok(DayKind::MakeUpWorkday {
                name: "元旦".into()
            })
        );
    }

    #[test]
    fn day_kind_distinguishes_all_four_kinds() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.day_kind(d("2024-02-05")), Ok(DayKind::Workday));
        assert_eq!(c.day_kind(d("2024-02-03")), Ok(DayKind::Weekend));
        assert_eq!(
            c.day_kind(d("2024-02-12")),
            Ok(DayKind::Holiday {
                name: "春节".into()
            })
        );
        assert_eq!(
            c.day_kind(d("2024-02-04")),
            Ok(DayKind::MakeUpWorkday {
                name: "春节".into()
            })
        );
        assert!(
            DayKind::MakeUpWorkday {
                name: String::new()
            }
            .is_working()
        );
        assert!(!DayKind::Weekend.is_working());
    }

    // ---- roll ----

    #[test]
    fn roll_keep_never_errors_even_without_data() {
        let empty = Calendar::default();
        assert_eq!(empty.roll(d("2030-02-03"), Roll::Keep), Ok(d("2030-02-03")));
        assert_eq!(empty.roll(NaiveDate::MAX, Roll::Keep), Ok(NaiveDate::MAX));
    }

    #[test]
    fn roll_forward_and_backward_leave_a_working_day_alone() {
        let c = cal(&[("2024.json", MINI_2024)]);
        for roll in [Roll::Forward, Roll::Backward] {
            assert_eq!(c.roll(d("2024-02-04"), roll), Ok(d("2024-02-04")));
            assert_eq!(c.roll(d("2024-02-13"), roll), Ok(d("2024-02-13")));
        }
    }

    #[test]
    fn roll_forward_and_backward_skip_a_holiday_and_weekend_run() {
        // MINI_2024: Sat 02-10 off, Sun 02-11 weekend, Mon 02-12 off.
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.roll(d("2024-02-11"), Roll::Forward), Ok(d("2024-02-13")));
        assert_eq!(c.roll(d("2024-02-11"), Roll::Backward), Ok(d("2024-02-09")));
    }

    #[test]
    fn roll_into_an_uncovered_year_errors_instead_of_guessing() {
        let c = cal(&[("2025.json", EMPTY_2025)]);
        // Sat 2025-12-27 -> Sun 28 -> Mon 12-29, all inside 2025.
        assert_eq!(c.roll(d("2025-12-27"), Roll::Forward), Ok(d("2025-12-29")));
        // Wed 2025-01-01 is an ordinary weekday in this file; 2024 is never consulted.
        assert_eq!(c.roll(d("2025-01-01"), Roll::Backward), Ok(d("2025-01-01")));
        // Sat 2025-01-04 -> Fri 01-03 backward, still inside 2025.
        assert_eq!(c.roll(d("2025-01-04"), Roll::Backward), Ok(d("2025-01-03")));
        let y2025 = r#"{"year": 2025, "papers": [], "days": [
  {"name": "x", "date": "2025-12-31", "isOffDay": true}]}"#;
        let c = cal(&[("2025.json", y2025)]);
        // Wed 12-31 is off; 2026 is provisional: Thu 2026-01-01 is New Year's Day, so Fri 01-02.
        assert_eq!(
            c.roll_dated(d("2025-12-31"), Roll::Forward),
            Ok(Dated {
                date: d("2026-01-02"),
                provisional: true
            })
        );
        // 2027 is more than one year past the last file: an error, not a guess.
        assert!(matches!(
            c.roll(d("2027-01-02"), Roll::Forward),
            Err(CalendarError::YearNotCovered { year: 2027, .. })
        ));
        // A year before the first file is never provisional.
        assert!(matches!(
            c.roll(d("2024-06-01"), Roll::Forward),
            Err(CalendarError::YearNotCovered { year: 2024, .. })
        ));
    }

    #[test]
    fn roll_serializes_as_snake_case() {
        assert_eq!(
            serde_json::to_string(&Roll::Forward).ok(),
            Some("\"forward\"".into())
        );
        let back: Roll = serde_json::from_str("\"backward\"").expect("parse");
        assert_eq!(back, Roll::Backward);
    }

    // ---- add_working_days ----

    #[test]
    fn add_zero_on_a_working_day_is_the_same_day() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.add_working_days(d("2024-02-04"), 0), Ok(d("2024-02-04")));
        assert_eq!(c.add_working_days(d("2024-02-08"), 0), Ok(d("2024-02-08")));
    }

    #[test]
    fn add_zero_on_a_non_working_day_is_the_next_working_day() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.add_working_days(d("2024-02-10"), 0), Ok(d("2024-02-13")));
    }

    #[test]
    fn add_positive_counts_strictly_after_and_skips_holidays() {
        let c = cal(&[("2024.json", MINI_2024)]);
        // Fri 02-09 -> (Sat 10 off, Sun 11, Mon 12 off) -> Tue 02-13.
        assert_eq!(c.add_working_days(d("2024-02-09"), 1), Ok(d("2024-02-13")));
        // Fri 02-02 -> Sat 03 weekend -> Sun 04 make-up workday.
        assert_eq!(c.add_working_days(d("2024-02-02"), 1), Ok(d("2024-02-04")));
        assert_eq!(c.add_working_days(d("2024-02-02"), 2), Ok(d("2024-02-05")));
    }

    #[test]
    fn add_negative_counts_strictly_before() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(c.add_working_days(d("2024-02-13"), -1), Ok(d("2024-02-09")));
        assert_eq!(c.add_working_days(d("2024-02-05"), -1), Ok(d("2024-02-04")));
        assert_eq!(c.add_working_days(d("2024-02-05"), -2), Ok(d("2024-02-02")));
        // From a non-working day: the first working day strictly before.
        assert_eq!(c.add_working_days(d("2024-02-11"), -1), Ok(d("2024-02-09")));
    }

    #[test]
    fn add_walking_off_the_covered_years_errors_and_terminates() {
        let c = cal(&[("2024.json", MINI_2024)]);
        // 2025 is provisional; 2026 is more than one year past the last file.
        assert!(matches!(
            c.add_working_days(d("2025-12-30"), 5),
            Err(CalendarError::YearNotCovered { year: 2026, .. })
        ));
        assert!(matches!(
            c.add_working_days(d("2024-06-01"), i64::MAX),
            Err(CalendarError::YearNotCovered { year: 2026, .. })
        ));
        assert!(matches!(
            c.add_working_days(d("2024-06-01"), i64::MIN),
            Err(CalendarError::YearNotCovered { year: 2023, .. })
        ));
        assert!(matches!(
            Calendar::default().add_working_days(NaiveDate::MAX, 1),
            Err(CalendarError::YearNotCovered { .. })
        ));
    }

    // ---- months and ranges ----

    #[test]
    fn first_and_last_working_day_of_month_skip_holidays_and_weekends() {
        let c = cal(&[("2024.json", MINI_2024)]);
        // 2024-10-01 Tue is off -> Wed 10-02.
        assert_eq!(c.first_working_day_of_month(2024, 10), Ok(d("2024-10-02")));
        // 2024-06-30 is a Sunday -> Fri 06-28.
        assert_eq!(c.last_working_day_of_month(2024, 6), Ok(d("2024-06-28")));
        // February 2024 has 29 days (Thu).
        assert_eq!(c.last_working_day_of_month(2024, 2), Ok(d("2024-02-29")));
    }

    #[test]
    fn month_outside_1_to_12_is_an_error_not_a_panic() {
        let c = cal(&[("2024.json", MINI_2024)]);
        assert_eq!(
            c.first_working_day_of_month(2024, 13),
            Err(CalendarError::InvalidMonth {
                year: 2024,
                month: 13
            })
        );
        assert_eq!(
            c.last_working_day_of_month(2024, 0),
            Err(CalendarError::InvalidMonth {
                year: 2024,
                month: 0
            })
        );
        assert!(matches!(
            c.first_working_day_of_month(i32::MAX, 1),
            Err(CalendarError::YearNotCovered { year: i32::MAX, .. })
        ));
    }

    #[test]
    fn working_days_between_is_half_open_and_signed() {
        let c = cal(&[("2024.json", MINI_2024)]);
        // [Fri 02-02, Tue 02-06): Fri, Sun(make-up), Mon = 3.
        assert_eq!(
            c.working_days_between(d("2024-02-02"), d("2024-02-06")),
            Ok(3)
        );
        assert_eq!(
            c.working_days_between(d("2024-02-06"), d("2024-02-02")),
            Ok(-3)
        );
        assert_eq!(
            c.working_days_between(d("2024-02-10"), d("2024-02-13")),
            Ok(0)
        );
    }

    #[test]
    fn working_days_between_an_empty_range_needs_no_data() {
        let empty = Calendar::default();
        assert_eq!(
            empty.working_days_between(d("2030-01-01"), d("2030-01-01")),
            Ok(0)
        );
    }

    #[test]
    fn working_days_between_names_the_first_uncovered_year() {
        let c = cal(&[
            ("2023.json", r#"{"year": 2023, "papers": [], "days": []}"#),
            ("2024.json", MINI_2024),
        ]);
        assert!(matches!(
            c.working_days_between(d("2022-12-30"), d("2026-06-01")),
            Err(CalendarError::YearNotCovered { year: 2022, .. })
        ));
        // 2025 is provisional; 2026 is not covered at all.
        assert!(matches!(
            c.working_days_between(d("2024-12-30"), d("2026-06-01")),
            Err(CalendarError::YearNotCovered { year: 2026, .. })
        ));
        // `to` is exclusive: [2025-12-30, 2026-01-01) needs only 2025.
        assert_eq!(
            c.working_days_between(d("2025-12-30"), d("2026-01-01")),
            Ok(2)
        );
    }

    // ---- the provisional year ----

    #[test]
    fn the_year_after_the_last_file_is_provisional_and_no_other() {
        let c = cal(&[("2024.json", MINI_2024), ("2025.json", EMPTY_2025)]);
        assert_eq!(c.provisional_year(), Some(2026));
        assert!(c.is_provisional(2026));
        assert!(!c.is_provisional(2025) && !c.is_provisional(2027));
        assert!(
            !c.covers(2026),
            "a provisional year is not covered by a file"
        );
        assert_eq!(c.covered_years(), vec![2024, 2025]);
        assert_eq!(Calendar::default().provisional_year(), None);
        // Adding the file moves the provisional year on.
        let c = cal(&[
            ("2025.json", EMPTY_2025),
            ("2026.json", r#"{"year": 2026, "papers": [], "days": []}"#),
        ]);
        assert_eq!(c.provisional_year(), Some(2027));
    }

    #[test]
    fn statutory_days_off_of_2027_follow_the_2024_revision() {
        let got: Vec<(String, &str)> = statutory_days_off(2027)
            .expect("2027 is in range")
            .into_iter()
            .map(|(d, n)| (d.to_string(), n))
            .collect();
        let want: Vec<(String, &str)> = [
            ("2027-01-01", "元旦"),
            // Lunar new year 2027 is Sat 02-06; New Year's Eve is Fri 02-05.
            ("2027-02-05", "春节"),
            ("2027-02-06", "春节"),
            ("2027-02-07", "春节"),
            ("2027-02-08", "春节"),
            ("2027-04-05", "清明节"),
            ("2027-05-01", "劳动节"),
            ("2027-05-02", "劳动节"),
            ("2027-06-09", "端午节"),
            ("2027-09-15", "中秋节"),
            ("2027-10-01", "国庆节"),
            ("2027-10-02", "国庆节"),
            ("2027-10-03", "国庆节"),
        ]
        .into_iter()
        .map(|(d, n)| (d.to_string(), n))
        .collect();
        assert_eq!(got, want);
        assert_eq!(statutory_days_off(2013), None);
        assert_eq!(statutory_days_off(2200), None);
        assert_eq!(statutory_days_off(i32::MAX), None);
    }

    #[test]
    fn statutory_days_off_compute_for_every_supported_year_without_panicking() {
        // The provisional year is whatever follows the last file: every year in range must
        // give New Year's Day, a Spring Festival in January or February and 11+ days.
        for year in STATUTORY_RULE_FROM..=STATUTORY_RULE_UNTIL {
            let days = statutory_days_off(year).unwrap_or_else(|| panic!("{year}"));
            assert!(days.len() >= 10, "{year}: {days:?}");
            assert!(
                days.iter().all(|(d, _)| d.year() == year),
                "{year}: {days:?}"
            );
            let spring = days.iter().find(|(_, n)| *n == "春节").expect("spring");
            assert!(spring.0.month() <= 2, "{year}: {spring:?}");
        }
    }

    #[test]
    fn the_provisional_year_has_weekends_and_statutory_holidays_but_no_make_up_days() {
        let c = cal(&[("2026.json", r#"{"year": 2026, "papers": [], "days": []}"#)]);
        // Fri 2027-02-05 (New Year's Eve) to Mon 02-08 are off; Tue 02-09 is worked.
        assert_eq!(
            c.day_kind(d("2027-02-05")),
            Ok(DayKind::Holiday {
                name: "春节".into()
            })
        );
        assert_eq!(c.is_working_day(d("2027-02-08")), Ok(false));
        assert_eq!(c.is_working_day(d("2027-02-09")), Ok(true));
        // No Saturday is ever a make-up working day.
        assert_eq!(c.day_kind(d("2027-02-20")), Ok(DayKind::Weekend));
        // Thu 2026-12-31 + 1 working day: Fri 01-01 is New Year's Day, so Mon 01-04.
        assert_eq!(
            c.add_working_days_dated(d("2026-12-31"), 1),
            Ok(Dated {
                date: d("2027-01-04"),
                provisional: true
            })
        );
    }

    #[test]
    fn a_walk_is_provisional_only_if_it_looked_at_the_provisional_year() {
        let c = cal(&[("2026.json", r#"{"year": 2026, "papers": [], "days": []}"#)]);
        // Inside 2026.
        assert_eq!(
            c.add_working_days_dated(d("2026-12-01"), 10),
            Ok(Dated {
                date: d("2026-12-15"),
                provisional: false
            })
        );
        // From a 2027 date backwards into 2026: the start itself is not looked at.
        assert_eq!(
            c.add_working_days_dated(d("2027-01-01"), -1),
            Ok(Dated {
                date: d("2026-12-31"),
                provisional: false
            })
        );
        // But stepping over a 2027 day on the way is.
        assert_eq!(
            c.add_working_days_dated(d("2027-01-04"), -1),
            Ok(Dated {
                date: d("2026-12-31"),
                provisional: true
            })
        );
        // Keep never looks; a rolled working day in 2027 was looked at.
        assert!(
            !c.roll_dated(d("2027-03-06"), Roll::Keep)
                .expect("keep")
                .provisional
        );
        assert!(
            c.roll_dated(d("2027-03-05"), Roll::Forward)
                .expect("roll")
                .provisional
        );
    }

    #[test]
    fn an_entry_of_the_last_file_dated_in_the_provisional_year_wins_over_the_rule() {
        // A notice for 2026 that already names Sat 2027-01-02 as a make-up working day.
        let y2026 = r#"{"year": 2026, "papers": [], "days": [
  {"name": "元旦", "date": "2027-01-02", "isOffDay": false}]}"#;
        let c = cal(&[("2026.json", y2026)]);
        assert_eq!(c.is_working_day(d("2027-01-02")), Ok(true));
        assert_eq!(c.is_working_day(d("2027-01-01")), Ok(false));
    }

    #[test]
    fn the_wanted_year_is_next_year_from_november_and_a_missing_current_year() {
        let c = cal(&[("2025.json", EMPTY_2025)]);
        assert_eq!(c.wanted_year(d("2025-10-31")), None);
        assert_eq!(c.wanted_year(d("2025-11-01")), Some(2026));
        assert_eq!(c.wanted_year(d("2025-12-31")), Some(2026));
        assert_eq!(c.wanted_year(d("2026-03-01")), Some(2026));
        let c = cal(&[
            ("2025.json", EMPTY_2025),
            ("2026.json", r#"{"year": 2026, "papers": [], "days": []}"#),
        ]);
        assert_eq!(c.wanted_year(d("2025-11-15")), None);
        assert_eq!(c.wanted_year(d("2026-11-15")), Some(2027));
        // Years before the first file are history, not a routine update.
        assert_eq!(c.wanted_year(d("2019-11-15")), None);
        assert_eq!(Calendar::default().wanted_year(d("2026-11-15")), None);
    }

    // ---- load_dir ----

    #[test]
    fn load_dir_reads_sorted_json_files_only_and_reports_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("2025.json"), EMPTY_2025).expect("write");
        std::fs::write(dir.path().join("2024.json"), MINI_2024).expect("write");
        std::fs::write(dir.path().join("README.md"), "not json").expect("write");
        let c = Calendar::load_dir(dir.path()).expect("load");
        assert_eq!(c.covered_years(), vec![2024, 2025]);

        std::fs::write(dir.path().join("2026.json"), EMPTY_2025).expect("write");
        std::fs::write(dir.path().join("2027.json"), b"{\"year\":\n\xff}").expect("write");
        let errs = Calendar::load_dir(dir.path()).expect_err("bad files");
        let files: Vec<String> = errs
            .iter()
            .map(|e| {
                let name = Path::new(&e.file)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("");
                let prefix = format!("{}/", dir.path().display());
                format!(
                    "{name}:{}:{}: {}",
                    e.line,
                    e.column,
                    e.message.replace(&prefix, "")
                )
            })
            .collect();
        assert_eq!(
            files,
            vec![
                "2027.json:2:1: the file is not valid UTF-8",
                "2026.json:1:10: \"year\" is 2025 but the file name says 2026",
                "2026.json:1:10: year 2025 is already loaded from 2025.json",
            ]
        );
    }

    #[test]
    fn load_dir_on_a_missing_directory_is_an_error() {
        let errs = Calendar::load_dir(Path::new("/nonexistent/calendar")).expect_err("missing");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].file, "/nonexistent/calendar");
        assert_eq!((errs[0].line, errs[0].column), (0, 0));
        assert!(errs[0].message.starts_with("cannot read"));
    }

    // ---- the real data ----

    static REAL: LazyLock<Calendar> = LazyLock::new(|| {
        Calendar::from_sources([
            ("2019.json", include_str!("../../config/calendar/2019.json")),
            ("2020.json", include_str!("../../config/calendar/2020.json")),
            ("2021.json", include_str!("../../config/calendar/2021.json")),
            ("2022.json", include_str!("../../config/calendar/2022.json")),
            ("2023.json", include_str!("../../config/calendar/2023.json")),
            ("2024.json", include_str!("../../config/calendar/2024.json")),
            ("2025.json", include_str!("../../config/calendar/2025.json")),
            ("2026.json", include_str!("../../config/calendar/2026.json")),
        ])
        .expect("the shipped calendar files are valid")
    });

    #[test]
    fn shipped_files_cover_2019_to_2026() {
        assert_eq!(REAL.covered_years(), (2019..=2026).collect::<Vec<_>>());
    }

    #[test]
    fn every_statutory_day_off_is_a_day_off_in_the_shipped_notices() {
        // The rule must never invent a working day's absence the notice did not grant; the
        // notices add bridge days and make-up days on top, which the rule leaves out.
        for year in 2019..=2026 {
            let days = statutory_days_off(year).expect("in range");
            // 11 days (13 from 2025), one fewer when Mid-Autumn falls on National Day (2020).
            assert!(days.len() >= 10, "{year}: {days:?}");
            for (date, name) in days {
                assert_eq!(
                    REAL.is_working_day(date),
                    Ok(false),
                    "{year}: {date} ({name}) is statutory but worked in the notice"
                );
            }
        }
    }

    #[test]
    fn the_provisional_rule_differs_from_a_notice_only_by_bridge_and_make_up_days() {
        // Rebuild 2025 and 2026 provisionally (drop their files) and compare day by day:
        // every difference is a bridge day (off in the notice, worked provisionally) or a
        // make-up day (worked in the notice, a weekend provisionally).
        for year in [2025, 2026] {
            let prev = format!("{}.json", year - 1);
            let prev_text = match year {
                2025 => include_str!("../../config/calendar/2024.json"),
                _ => include_str!("../../config/calendar/2025.json"),
            };
            let provisional = cal(&[(prev.as_str(), prev_text)]);
            assert!(provisional.is_provisional(year));
            let mut day = NaiveDate::from_ymd_opt(year, 1, 1).expect("date");
            while day.year() == year {
                let official = REAL.day_kind(day).expect("covered");
                let guess = provisional.day_kind(day).expect("provisional");
                if official.is_working() != guess.is_working() {
                    match (&official, &guess) {
                        (DayKind::Holiday { .. }, DayKind::Workday) => {}
                        (DayKind::MakeUpWorkday { .. }, DayKind::Weekend) => {}
                        _ => panic!("{day}: notice {official:?}, provisional {guess:?}"),
                    }
                }
                day = day.succ_opt().expect("date");
            }
        }
    }

    /// A date in [2020-01-01, 2025-12-31], far enough from the edges of the data that
    /// ±200 working days stay inside 2019..=2026.
    fn mid_date() -> impl Strategy<Value = NaiveDate> {
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("start");
        let span = (NaiveDate::from_ymd_opt(2025, 12, 31).expect("end") - start).num_days();
        (0..=span).prop_map(move |k| start + chrono::Duration::days(k))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn adding_one_or_more_working_days_lands_on_a_working_day(date in mid_date(), n in 1i64..=200) {
            let end = REAL.add_working_days(date, n).expect("covered");
            prop_assert!(end > date);
            prop_assert_eq!(REAL.is_working_day(end), Ok(true));
            let back = REAL.add_working_days(date, -n).expect("covered");
            prop_assert!(back < date);
            prop_assert_eq!(REAL.is_working_day(back), Ok(true));
        }

        #[test]
        fn adding_working_days_is_monotonic_in_n(date in mid_date(), n in -200i64..200) {
            let a = REAL.add_working_days(date, n).expect("covered");
            let b = REAL.add_working_days(date, n + 1).expect("covered");
            // From a day off, "0 working days" already rolls to the next working day, which is
            // also where "1 working day" lands; every other step moves strictly forward.
            if n == 0 && !REAL.is_working_day(date).expect("covered") {
                prop_assert_eq!(a, b);
            } else {
                prop_assert!(a < b, "add({date}, {n}) = {a} but add({date}, {}) = {b}", n + 1);
            }
        }

        #[test]
        fn adding_n_then_minus_n_returns_to_a_working_day(date in mid_date(), n in 1i64..=200) {
            let there = REAL.add_working_days(date, n).expect("covered");
            let back = REAL.add_working_days(there, -n).expect("covered");
            let there_neg = REAL.add_working_days(date, -n).expect("covered");
            let back_neg = REAL.add_working_days(there_neg, n).expect("covered");
            if REAL.is_working_day(date).expect("covered") {
                prop_assert_eq!(back, date);
                prop_assert_eq!(back_neg, date);
            } else {
                // From a day off the round trip lands on the nearest working day on the
                // side the walk started from.
                prop_assert_eq!(back, REAL.roll(date, Roll::Backward).expect("covered"));
                prop_assert_eq!(back_neg, REAL.roll(date, Roll::Forward).expect("covered"));
            }
        }

        #[test]
        fn working_days_between_counts_the_days_that_add_skipped(date in mid_date(), n in -200i64..=200) {
            let end = REAL.add_working_days(date, n).expect("covered");
            let between = REAL.working_days_between(date, end).expect("covered");
            let start_counts = i64::from(REAL.is_working_day(date).expect("covered"));
            // [date, end) holds `date` itself (if worked) and the n-1 working days before
            // the n-th; going backwards it is minus the n days in [end, date).
            let expected = if n >= 1 { n - 1 + start_counts } else { n };
            prop_assert_eq!(between, expected);
        }

        #[test]
        fn working_days_between_is_additive(a in mid_date(), b in mid_date(), c in mid_date()) {
            let ab = REAL.working_days_between(a, b).expect("covered");
            let bc = REAL.working_days_between(b, c).expect("covered");
            let ac = REAL.working_days_between(a, c).expect("covered");
            prop_assert_eq!(ab + bc, ac);
        }

        #[test]
        fn rolling_lands_on_the_nearest_working_day_in_that_direction(date in mid_date()) {
            let fwd = REAL.roll(date, Roll::Forward).expect("covered");
            let bwd = REAL.roll(date, Roll::Backward).expect("covered");
            prop_assert!(bwd <= date && date <= fwd);
            prop_assert_eq!(REAL.is_working_day(fwd), Ok(true));
            prop_assert_eq!(REAL.is_working_day(bwd), Ok(true));
            prop_assert_eq!(REAL.working_days_between(date, fwd), Ok(0));
            // [bwd, date] holds exactly one working day: bwd itself.
            prop_assert_eq!(REAL.working_days_between(bwd, date.succ_opt().expect("in range")), Ok(1));
            // No real run of days off is longer than the 10-day 2020 Spring Festival break.
            prop_assert!((fwd - bwd).num_days() <= 12);
        }
    }
}
