//! The iCalendar feed: structure, folding, escaping, times, alarms, done items.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use yanzhen::notify::ics::{DONE_PREFIX, FeedEvent, PRODID, feed};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid test date")
}

/// 2019-07-01 10:00 in Beijing.
fn now() -> DateTime<Utc> {
    utc(2019, 7, 1, 2, 0)
}

fn open_event() -> FeedEvent {
    FeedEvent {
        uid: "t-1.dongguan@yanzhen".into(),
        summary: "截止：组织推荐".into(),
        description: "请提交推荐名单（一式两份）\n联系人：组织办".into(),
        // 2019-07-12 18:00 in Beijing.
        due: utc(2019, 7, 12, 10, 0),
        url: Some("https://yanzhen.example.gov.cn/tasks/t-1?unit=dongguan".into()),
        done: false,
    }
}

fn done_event() -> FeedEvent {
    FeedEvent {
        uid: "t-0.dongguan@yanzhen".into(),
        summary: "截止：动员部署".into(),
        description: "召开支部委员会".into(),
        due: utc(2019, 7, 5, 10, 0),
        url: None,
        done: true,
    }
}

/// RFC 5545 §3.1 unfolding: a CRLF followed by one space or tab is removed.
fn unfold(text: &str) -> String {
    text.replace("\r\n ", "").replace("\r\n\t", "")
}

/// A content line: name, parameters (`KEY=VALUE`), raw value.
#[derive(Debug, Clone)]
struct Line {
    name: String,
    params: Vec<String>,
    value: String,
}

/// One component: its name, its properties and its sub-components.
#[derive(Debug, Clone, Default)]
struct Comp {
    name: String,
    props: Vec<Line>,
    children: Vec<Comp>,
}

impl Comp {
    fn all(&self, name: &str) -> Vec<&Line> {
        self.props.iter().filter(|l| l.name == name).collect()
    }
    fn one(&self, name: &str) -> &Line {
        let v = self.all(name);
        assert_eq!(v.len(), 1, "{} must have exactly one {name}", self.name);
        v[0]
    }
    fn value(&self, name: &str) -> &str {
        &self.one(name).value
    }
    fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
    fn children(&self, name: &str) -> Vec<&Comp> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
}

fn parse_line(line: &str) -> Line {
    // The name and parameters end at the first colon outside double quotes.
    let mut in_quotes = false;
    let mut split = None;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let i = split.unwrap_or_else(|| panic!("no colon in content line {line:?}"));
    let (head, value) = (&line[..i], &line[i + 1..]);
    let mut parts = head.split(';');
    let name = parts.next().unwrap_or_default().to_string();
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'),
        "bad property name in {line:?}"
    );
    Line {
        name,
        params: parts.map(str::to_string).collect(),
        value: value.to_string(),
    }
}

/// Parses a whole feed, checking BEGIN/END nesting, and returns the VCALENDAR.
fn parse(text: &str) -> Comp {
    assert!(text.ends_with("\r\n"), "the feed must end with CRLF");
    let unfolded = unfold(text);
    let mut stack: Vec<Comp> = Vec::new();
    let mut root = None;
    for raw in unfolded.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(root.is_none(), "content after END:VCALENDAR: {raw:?}");
        let line = parse_line(raw);
        match line.name.as_str() {
            "BEGIN" => stack.push(Comp {
                name: line.value.clone(),
                ..Comp::default()
            }),
            "END" => {
                let comp = stack.pop().expect("END without BEGIN");
                assert_eq!(comp.name, line.value, "END does not match BEGIN");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(comp),
                    None => root = Some(comp),
                }
            }
            _ => stack
                .last_mut()
                .unwrap_or_else(|| panic!("property outside any component: {raw:?}"))
                .props
                .push(line),
        }
    }
    assert!(stack.is_empty(), "unclosed components: {stack:?}");
    let root = root.expect("no VCALENDAR");
    assert_eq!(root.name, "VCALENDAR");
    root
}

/// Reverses RFC 5545 TEXT escaping.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("dangling backslash in {s:?}"),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_utc(s: &str) -> DateTime<Utc> {
    assert!(s.ends_with('Z'), "{s} is not UTC");
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .and_utc()
}

/// A dur-value such as `-PT23H30M` or `-P1D`.
fn parse_duration(s: &str) -> Duration {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let rest = rest.strip_prefix('P').expect("duration starts with P");
    let mut total = Duration::zero();
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' => {}
            unit => {
                let n: i64 = num.parse().expect("number in duration");
                num.clear();
                total += match unit {
                    'W' => Duration::weeks(n),
                    'D' => Duration::days(n),
                    'H' => Duration::hours(n),
                    'M' => Duration::minutes(n),
                    'S' => Duration::seconds(n),
                    _ => panic!("unit {unit} in {s}"),
                };
            }
        }
    }
    if neg { -total } else { total }
}

fn events(cal: &Comp) -> Vec<&Comp> {
    cal.children("VEVENT")
}

#[test]
fn feed_parses_with_nested_begin_end_and_calendar_properties() {
    let text = feed("东关村党支部", &[open_event(), done_event()], now());
    let cal = parse(&text);
    assert_eq!(cal.value("VERSION"), "2.0");
    assert_eq!(cal.value("PRODID"), PRODID);
    assert_eq!(cal.value("PRODID"), "-//yanzhen//CN");
    assert_eq!(cal.value("METHOD"), "PUBLISH");
    assert_eq!(cal.value("X-WR-CALNAME"), "东关村党支部");
    assert_eq!(cal.value("X-WR-TIMEZONE"), "Asia/Shanghai");
    assert_eq!(cal.children.len(), 2);
    let evs = events(&cal);
    assert_eq!(evs.len(), 2);
    for ev in &evs {
        for p in [
            "UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "STATUS", "TRANSP",
        ] {
            ev.one(p);
        }
        for child in &ev.children {
            assert_eq!(child.name, "VALARM");
        }
    }
    assert_eq!(evs[0].value("UID"), "t-1.dongguan@yanzhen");
    assert_eq!(unescape(evs[0].value("SUMMARY")), "截止：组织推荐");
    assert_eq!(
        unescape(evs[0].value("DESCRIPTION")),
        "请提交推荐名单（一式两份）\n联系人：组织办"
    );
    assert_eq!(
        evs[0].value("URL"),
        "https://yanzhen.example.gov.cn/tasks/t-1?unit=dongguan"
    );
    assert!(!evs[1].has("URL"), "no URL when there is none");
}

#[test]
fn empty_feed_is_a_valid_calendar() {
    let cal = parse(&feed("空", &[], now()));
    assert!(cal.children.is_empty());
    assert_eq!(cal.value("VERSION"), "2.0");
}

#[test]
fn every_line_is_at_most_75_octets_and_ends_with_crlf() {
    let mut long = open_event();
    long.summary = format!(
        "截止：{}",
        "全面推进村（社区）后备干部队伍建设工作".repeat(6)
    );
    long.description = "材料清单：1,2,3;4\n".repeat(20);
    let text = feed(
        &"东关村党支部后备干部培养工作截止日期日历".repeat(3),
        &[long, done_event()],
        now(),
    );
    let bytes = text.as_bytes();
    assert!(bytes.ends_with(b"\r\n"));
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    assert_eq!(
        lines.last().map(|l| l.len()),
        Some(0),
        "ends with a line break"
    );
    for line in &lines[..lines.len() - 1] {
        let content = line
            .strip_suffix(b"\r")
            .unwrap_or_else(|| panic!("LF without CR in {:?}", String::from_utf8_lossy(line)));
        assert!(!content.contains(&b'\r'), "bare CR");
        assert!(
            content.len() <= 75,
            "{} octets: {:?}",
            content.len(),
            String::from_utf8_lossy(content)
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with(b" ")),
        "long lines must have been folded"
    );
}

#[test]
fn a_line_whose_last_piece_is_exactly_75_octets_still_folds_within_75() {
    // "SUMMARY:" + 142 letters = 150 octets: 75 on the first line leaves 75, which the
    // icalendar crate's own folding writes as " " + 75 = 76 octets.
    let mut ev = open_event();
    ev.summary = "a".repeat(142);
    let text = feed("东关村党支部", &[ev], now());
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
    let cal = parse(&text);
    assert_eq!(events(&cal)[0].value("SUMMARY"), "a".repeat(142));
}

#[test]
fn long_chinese_summary_folds_without_splitting_utf8_and_unfolds_to_the_original() {
    // Three-byte Chinese characters, full-width punctuation and a four-byte emoji, placed
    // so that the 75-octet limit falls inside characters.
    let summary = format!(
        "截止：{}🎯{}",
        "村（社区）“两委”后备干部人选推荐、考察、公示、备案".repeat(5),
        "a".repeat(7)
    );
    let mut ev = open_event();
    ev.summary = summary.clone();
    let text = feed("东关村党支部", &[ev], now());
    for line in text.as_bytes().split(|&b| b == b'\n') {
        assert!(
            std::str::from_utf8(line).is_ok(),
            "a physical line is not valid UTF-8 on its own: {line:?}"
        );
    }
    let folded: Vec<&str> = text
        .split("\r\n")
        .skip_while(|l| !l.starts_with("SUMMARY:"))
        .take_while(|l| l.starts_with("SUMMARY:") || l.starts_with(' '))
        .collect();
    assert!(
        folded.len() >= 5,
        "the summary spans several lines: {folded:?}"
    );
    let cal = parse(&text);
    assert_eq!(unescape(events(&cal)[0].value("SUMMARY")), summary);
}

#[test]
fn commas_semicolons_backslashes_and_newlines_in_text_are_escaped() {
    let mut ev = open_event();
    ev.summary = "截止：推荐,考察;公示".into();
    ev.description = "第一步,提交名单;第二步\n盖章\r\n第三步\\备案\r完".into();
    let text = feed("东关村,西关村;南关村", &[ev], now());
    let unfolded = unfold(&text);
    assert!(unfolded.contains("\r\nSUMMARY:截止：推荐\\,考察\\;公示\r\n"));
    assert!(
        unfolded.contains(
            "\r\nDESCRIPTION:第一步\\,提交名单\\;第二步\\n盖章\\n第三步\\\\备案\\n完\r\n"
        )
    );
    assert!(unfolded.contains("\r\nX-WR-CALNAME:东关村\\,西关村\\;南关村\r\n"));
    let cal = parse(&text);
    assert_eq!(unescape(cal.value("X-WR-CALNAME")), "东关村,西关村;南关村");
    let ev = events(&cal)[0];
    assert_eq!(unescape(ev.value("SUMMARY")), "截止：推荐,考察;公示");
    // CR LF and lone CR are written as escaped newlines, never as raw line breaks.
    assert_eq!(
        unescape(ev.value("DESCRIPTION")),
        "第一步,提交名单;第二步\n盖章\n第三步\\备案\n完"
    );
}

#[test]
fn times_are_utc_with_z_start_30_minutes_before_the_deadline() {
    let text = feed("东关村党支部", &[open_event()], now());
    let cal = parse(&text);
    let ev = events(&cal)[0];
    for p in ["DTSTAMP", "DTSTART", "DTEND"] {
        let l = ev.one(p);
        assert!(l.params.is_empty(), "{p} has no TZID: {:?}", l.params);
        assert!(l.value.ends_with('Z'), "{p} is UTC: {}", l.value);
    }
    assert_eq!(ev.value("DTSTAMP"), "20190701T020000Z");
    assert_eq!(ev.value("DTSTART"), "20190712T093000Z");
    assert_eq!(ev.value("DTEND"), "20190712T100000Z");
    assert_eq!(parse_utc(ev.value("DTEND")), open_event().due);
    assert_eq!(
        parse_utc(ev.value("DTEND")) - parse_utc(ev.value("DTSTART")),
        Duration::minutes(30)
    );
}

#[test]
fn alarm_is_a_display_alarm_one_day_before_the_deadline() {
    let cal = parse(&feed("东关村党支部", &[open_event()], now()));
    let ev = events(&cal)[0];
    let alarms = ev.children("VALARM");
    assert_eq!(alarms.len(), 1);
    let alarm = alarms[0];
    assert_eq!(alarm.value("ACTION"), "DISPLAY");
    assert!(
        !alarm.value("DESCRIPTION").is_empty(),
        "DISPLAY needs a DESCRIPTION"
    );
    let trigger = alarm.one("TRIGGER");
    // Relative to DTSTART: no RELATED parameter, or RELATED=START.
    let related_end = trigger.params.iter().any(|p| p == "RELATED=END");
    let anchor = if related_end {
        parse_utc(ev.value("DTEND"))
    } else {
        assert!(
            trigger.params.iter().all(|p| p == "RELATED=START"),
            "{:?}",
            trigger.params
        );
        parse_utc(ev.value("DTSTART"))
    };
    let fires = anchor + parse_duration(&trigger.value);
    assert_eq!(fires, open_event().due - Duration::days(1));
    assert_eq!(fires, utc(2019, 7, 11, 10, 0));
}

#[test]
fn done_events_stay_confirmed_are_transparent_prefixed_and_have_no_alarm() {
    let cal = parse(&feed("东关村党支部", &[open_event(), done_event()], now()));
    let evs = events(&cal);
    let (open, done) = (evs[0], evs[1]);

    assert_eq!(open.value("STATUS"), "CONFIRMED");
    assert_eq!(open.value("TRANSP"), "OPAQUE");
    assert!(!unescape(open.value("SUMMARY")).starts_with(DONE_PREFIX));
    assert_eq!(open.children("VALARM").len(), 1);

    // VEVENT STATUS may only be TENTATIVE, CONFIRMED or CANCELLED (RFC 5545 §3.8.1.11):
    // COMPLETED is a VTODO status, and CANCELLED would say the deadline was withdrawn.
    assert_eq!(done.value("STATUS"), "CONFIRMED");
    assert_eq!(done.value("TRANSP"), "TRANSPARENT");
    assert_eq!(unescape(done.value("SUMMARY")), "[已完成]截止：动员部署");
    assert!(done.children.is_empty(), "a done item needs no alarm");
}

#[test]
fn feed_is_reproducible_for_a_fixed_now() {
    let a = feed("东关村党支部", &[open_event(), done_event()], now());
    let b = feed("东关村党支部", &[open_event(), done_event()], now());
    assert_eq!(a, b, "no wall-clock DTSTAMP or random UID may creep in");
}

#[test]
fn small_feed_snapshot() {
    let text = feed(
        "东关村党支部 · 后备干部工作",
        &[open_event(), done_event()],
        now(),
    );
    // CRLF is checked above; the snapshot shows LF for readability.
    insta::assert_snapshot!(text.replace("\r\n", "\n"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any summary and description: lines stay within 75 octets, each physical line is
    /// valid UTF-8, and unfolding and unescaping give back the (newline-normalized) text.
    #[test]
    fn any_text_folds_within_75_octets_and_round_trips(
        summary in "[\\PC\\n,;\\\\ 中文截止🎯]{0,120}",
        description in "[\\PC\\n\\r,;\\\\ 村社区]{0,200}",
    ) {
        let mut ev = open_event();
        ev.summary = summary.clone();
        ev.description = description.clone();
        let text = feed("东关村党支部", &[ev], now());
        for line in text.as_bytes().split(|&b| b == b'\n') {
            prop_assert!(std::str::from_utf8(line).is_ok());
            prop_assert!(line.len() <= 76, "{} octets with CR", line.len());
        }
        let cal = parse(&text);
        let ev = events(&cal)[0];
        let norm = |s: &str| -> String {
            s.replace("\r\n", "\n")
                .replace('\r', "\n")
                .chars()
                .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
                .collect()
        };
        prop_assert_eq!(unescape(ev.value("SUMMARY")), norm(&summary));
        let desc = norm(&description);
        if desc.is_empty() {
            prop_assert!(!ev.has("DESCRIPTION"));
        } else {
            prop_assert_eq!(unescape(ev.value("DESCRIPTION")), desc);
        }
    }
}
