use super::statutory::{STATUTORY_RULE_FROM, STATUTORY_RULE_UNTIL, statutory_days_off};
use super::*;
use proptest::prelude::*;
use std::path::Path;
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
        (
            "2019.json",
            include_str!("../../../config/calendar/2019.json"),
        ),
        (
            "2020.json",
            include_str!("../../../config/calendar/2020.json"),
        ),
        (
            "2021.json",
            include_str!("../../../config/calendar/2021.json"),
        ),
        (
            "2022.json",
            include_str!("../../../config/calendar/2022.json"),
        ),
        (
            "2023.json",
            include_str!("../../../config/calendar/2023.json"),
        ),
        (
            "2024.json",
            include_str!("../../../config/calendar/2024.json"),
        ),
        (
            "2025.json",
            include_str!("../../../config/calendar/2025.json"),
        ),
        (
            "2026.json",
            include_str!("../../../config/calendar/2026.json"),
        ),
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
            2025 => include_str!("../../../config/calendar/2024.json"),
            _ => include_str!("../../../config/calendar/2025.json"),
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
