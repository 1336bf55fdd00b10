//! Named cases from the State Council holiday notices for 2024 and 2025 (and the 2026
//! edges), checked against the shipped `config/calendar/*.json` files.
//!
//! Every expected value was worked out by hand from the notice and cross-checked
//! against the JSON data; the comments show the walk.

use chrono::NaiveDate;
use std::path::Path;
use std::sync::LazyLock;
use yanzhen::core::calendar::{Calendar, CalendarError, DayKind, Roll};

static CAL: LazyLock<Calendar> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/calendar");
    match Calendar::load_dir(&dir) {
        Ok(cal) => cal,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("config/calendar does not load:\n{}", lines.join("\n"))
        }
    }
});

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// Every date in `from..=to`.
fn days(from: &str, to: &str) -> Vec<NaiveDate> {
    d(from).iter_days().take_while(|x| *x <= d(to)).collect()
}

fn assert_off(date: &str, festival: &str) {
    assert_eq!(
        CAL.day_kind(d(date)),
        Ok(DayKind::Holiday {
            name: festival.to_string()
        }),
        "{date}"
    );
    assert_eq!(CAL.is_working_day(d(date)), Ok(false), "{date}");
}

fn assert_make_up(date: &str, festival: &str) {
    assert_eq!(
        CAL.day_kind(d(date)),
        Ok(DayKind::MakeUpWorkday {
            name: festival.to_string()
        }),
        "{date}"
    );
    assert_eq!(CAL.is_working_day(d(date)), Ok(true), "{date}");
}

fn assert_all_off(from: &str, to: &str) {
    for day in days(from, to) {
        assert_eq!(CAL.is_working_day(day), Ok(false), "{day}");
    }
}

// ---- coverage ----

#[test]
fn shipped_calendar_covers_exactly_2019_to_2026() {
    assert_eq!(CAL.covered_years(), (2019..=2026).collect::<Vec<_>>());
}

// ---- 2024 notice (https://www.gov.cn/zhengce/content/202310/content_6911527.htm) ----

#[test]
fn new_year_2024_january_1_monday_is_a_holiday() {
    assert_off("2024-01-01", "元旦");
}

#[test]
fn spring_festival_2024_make_up_sundays_feb_4_and_feb_18_are_working_days() {
    assert_make_up("2024-02-04", "春节");
    assert_make_up("2024-02-18", "春节");
}

#[test]
fn spring_festival_2024_feb_10_to_17_are_all_off() {
    assert_all_off("2024-02-10", "2024-02-17");
    assert_off("2024-02-12", "春节");
}

#[test]
fn spring_festival_eve_2024_feb_9_friday_is_a_working_day() {
    // The notice only *encourages* employers to give 除夕 (Fri 02-09) off; legally it is worked.
    assert_eq!(CAL.day_kind(d("2024-02-09")), Ok(DayKind::Workday));
}

#[test]
fn make_up_weekends_of_2024_after_spring_festival_are_working_days() {
    assert_make_up("2024-04-07", "清明节"); // Sun
    assert_make_up("2024-04-28", "劳动节"); // Sun
    assert_make_up("2024-05-11", "劳动节"); // Sat
    assert_make_up("2024-09-14", "中秋节"); // Sat
    assert_make_up("2024-09-29", "国庆节"); // Sun
    assert_make_up("2024-10-12", "国庆节"); // Sat
}

#[test]
fn qingming_labour_day_and_mid_autumn_2024_breaks_are_off() {
    assert_all_off("2024-04-04", "2024-04-06");
    assert_all_off("2024-05-01", "2024-05-05");
    assert_all_off("2024-09-15", "2024-09-17");
}

#[test]
fn dragon_boat_2024_june_10_monday_is_a_holiday() {
    assert_off("2024-06-10", "端午节");
}

#[test]
fn national_day_2024_october_1_to_7_are_all_off() {
    assert_all_off("2024-10-01", "2024-10-07");
    assert_off("2024-10-07", "国庆节");
}

#[test]
fn plain_saturday_in_2024_is_a_weekend_not_a_holiday() {
    assert_eq!(CAL.day_kind(d("2024-03-09")), Ok(DayKind::Weekend));
}

// ---- 2025 notice (https://www.gov.cn/zhengce/content/202411/content_6986382.htm) ----

#[test]
fn spring_festival_2025_make_up_days_jan_26_sunday_and_feb_8_saturday_are_working() {
    assert_make_up("2025-01-26", "春节");
    assert_make_up("2025-02-08", "春节");
}

#[test]
fn spring_festival_2025_jan_28_to_feb_4_are_all_off() {
    assert_all_off("2025-01-28", "2025-02-04");
}

#[test]
fn labour_day_2025_make_up_sunday_april_27_is_working_and_may_1_to_5_are_off() {
    assert_make_up("2025-04-27", "劳动节");
    assert_all_off("2025-05-01", "2025-05-05");
}

#[test]
fn dragon_boat_2025_may_31_to_june_2_are_off() {
    assert_all_off("2025-05-31", "2025-06-02");
    assert_off("2025-06-02", "端午节");
}

#[test]
fn national_day_2025_make_up_days_sept_28_and_oct_11_are_working_and_oct_1_to_8_are_off() {
    assert_make_up("2025-09-28", "国庆节"); // Sun
    assert_make_up("2025-10-11", "国庆节"); // Sat
    assert_all_off("2025-10-01", "2025-10-08");
}

// ---- arithmetic across the long breaks ----

#[test]
fn one_working_day_after_spring_festival_eve_2024_is_make_up_sunday_feb_18() {
    // Fri 02-09 (worked) -> 02-10..02-17 off -> Sun 02-18 make-up day.
    assert_eq!(
        CAL.add_working_days(d("2024-02-09"), 1),
        Ok(d("2024-02-18"))
    );
}

#[test]
fn one_working_day_after_jan_27_2025_skips_the_spring_festival_break() {
    // Mon 01-27 -> 01-28..02-04 off -> Wed 02-05.
    assert_eq!(
        CAL.add_working_days(d("2025-01-27"), 1),
        Ok(d("2025-02-05"))
    );
}

#[test]
fn one_working_day_after_sept_30_2025_skips_the_eight_day_national_day_break() {
    // Tue 09-30 -> 10-01..10-08 off -> Thu 10-09.
    assert_eq!(
        CAL.add_working_days(d("2025-09-30"), 1),
        Ok(d("2025-10-09"))
    );
}

#[test]
fn two_working_days_after_sept_30_2024_is_october_9() {
    // Mon 09-30 -> 10-01..10-07 off -> Tue 10-08 (1st) -> Wed 10-09 (2nd).
    assert_eq!(
        CAL.add_working_days(d("2024-09-30"), 2),
        Ok(d("2024-10-09"))
    );
}

#[test]
fn one_working_day_before_oct_8_2024_is_sept_30() {
    // Tue 10-08 <- 10-07..10-01 off <- Mon 09-30.
    assert_eq!(
        CAL.add_working_days(d("2024-10-08"), -1),
        Ok(d("2024-09-30"))
    );
}

#[test]
fn zero_working_days_from_a_national_day_holiday_rolls_to_the_first_day_back() {
    assert_eq!(
        CAL.add_working_days(d("2024-10-03"), 0),
        Ok(d("2024-10-08"))
    );
    assert_eq!(
        CAL.add_working_days(d("2024-09-30"), 0),
        Ok(d("2024-09-30"))
    );
}

#[test]
fn rolling_national_day_2024_forward_backward_and_keep() {
    assert_eq!(
        CAL.roll(d("2024-10-01"), Roll::Forward),
        Ok(d("2024-10-08"))
    );
    assert_eq!(
        CAL.roll(d("2024-10-01"), Roll::Backward),
        Ok(d("2024-09-30"))
    );
    assert_eq!(CAL.roll(d("2024-10-01"), Roll::Keep), Ok(d("2024-10-01")));
}

#[test]
fn last_working_day_of_december_2024_is_new_years_eve() {
    // Tue 2024-12-31 is an ordinary weekday; the 2025 notice gives only 01-01 off.
    assert_eq!(CAL.last_working_day_of_month(2024, 12), Ok(d("2024-12-31")));
}

#[test]
fn first_working_day_of_october_2025_is_october_9() {
    assert_eq!(
        CAL.first_working_day_of_month(2025, 10),
        Ok(d("2025-10-09"))
    );
}

#[test]
fn first_working_day_of_january_2026_is_make_up_sunday_january_4() {
    // 01-01..01-03 off, Sun 01-04 is the 元旦 make-up day.
    assert_eq!(CAL.first_working_day_of_month(2026, 1), Ok(d("2026-01-04")));
}

#[test]
fn last_working_day_of_february_2026_is_make_up_saturday_february_28() {
    assert_eq!(CAL.last_working_day_of_month(2026, 2), Ok(d("2026-02-28")));
}

#[test]
fn october_2024_has_19_working_days() {
    // 23 weekdays (Tue 10-01 .. Thu 10-31) - 5 weekday holidays (01,02,03,04,07)
    // + 1 make-up Saturday (10-12) = 19.
    assert_eq!(
        CAL.working_days_between(d("2024-10-01"), d("2024-11-01")),
        Ok(19)
    );
}

#[test]
fn working_days_remaining_from_sept_30_2025_to_oct_10_is_two() {
    // [09-30, 10-10): Tue 09-30 and Thu 10-09; 10-01..10-08 off.
    assert_eq!(
        CAL.working_days_between(d("2025-09-30"), d("2025-10-10")),
        Ok(2)
    );
}

// ---- the edges of the data ----

#[test]
fn adding_working_days_past_2026_is_provisional_in_2027_and_an_error_in_2028() {
    // Wed 2026-12-30 -> Thu 12-31 (1st) -> Fri 2027-01-01 New Year's Day on the provisional
    // calendar -> Mon 01-04 (2nd) .. Thu 01-07 (5th).
    assert_eq!(
        CAL.add_working_days_dated(d("2026-12-30"), 5),
        Ok(yanzhen::core::calendar::Dated {
            date: d("2027-01-07"),
            provisional: true
        })
    );
    // 2028 is more than one year past the last file: never guessed.
    let err = CAL.add_working_days(d("2027-12-30"), 5);
    assert_eq!(
        err,
        Err(CalendarError::YearNotCovered {
            year: 2028,
            covered: (2019..=2026).collect()
        })
    );
    let message = err.map_err(|e| e.to_string()).expect_err("error");
    assert_eq!(
        message,
        "no holiday data for 2028 (calendar covers 2019–2026); add config/calendar/2028.json from the State Council notice"
    );
}

#[test]
fn december_2018_entries_in_the_2019_file_do_not_make_2018_covered() {
    // 2019.json lists 2018-12-29..31 (元旦 2019), but no 2018.json exists.
    assert!(matches!(
        CAL.day_kind(d("2018-12-29")),
        Err(CalendarError::YearNotCovered { year: 2018, .. })
    ));
}

#[test]
fn new_years_eve_2022_from_the_2023_file_is_a_holiday() {
    // 2023.json lists Sat 2022-12-31 as 元旦; 2022 is covered by 2022.json.
    assert_off("2022-12-31", "元旦");
}

#[test]
fn roll_keep_on_an_uncovered_year_does_not_error() {
    assert_eq!(CAL.roll(d("2027-02-06"), Roll::Keep), Ok(d("2027-02-06")));
}
