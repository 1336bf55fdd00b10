//! How instants are written for people: Chinese dates with the weekday.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike};

const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];

/// "2019年7月12日（星期五）"
pub fn zh_date(d: NaiveDate) -> String {
    format!(
        "{}年{}月{}日（星期{}）",
        d.year(),
        d.month(),
        d.day(),
        WEEKDAYS[d.weekday().num_days_from_monday() as usize]
    )
}

/// Written after an instant counted over a year without a holiday file (a provisional
/// calendar year): it may still move when the State Council notice is added.
pub const PROVISIONAL_MARK: &str = "（暂按预计日历）";

/// [`PROVISIONAL_MARK`] when `provisional`, else nothing.
pub fn provisional_mark(provisional: bool) -> &'static str {
    if provisional { PROVISIONAL_MARK } else { "" }
}

/// "2019年7月12日（星期五）18:00"
pub fn zh_datetime<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    format!(
        "{}{:02}:{:02}",
        zh_date(t.date_naive()),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    #[test]
    fn chinese_datetime_has_weekday_and_time() {
        let t = Shanghai.with_ymd_and_hms(2019, 7, 12, 18, 0, 0).unwrap();
        assert_eq!(zh_datetime(&t), "2019年7月12日（星期五）18:00");
        assert_eq!(
            zh_date(NaiveDate::from_ymd_opt(2024, 2, 18).unwrap()),
            "2024年2月18日（星期日）"
        );
    }
}
