//! The year files: the NateScarlet/holiday-cn layout (`config/calendar/YYYY.json`), read
//! with every problem positioned, and merged into a [`Calendar`].

use super::{Calendar, CalendarFileError, Provisional, Special, is_weekend, statutory};
use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
                    let off = statutory::statutory_days_off(year)?.into_iter().collect();
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
