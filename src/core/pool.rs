//! The reserve pool (后备干部库): a person's record, its typed fields, and how a field's
//! text (a CLI flag, a form field, a JSON string, a roster cell) becomes a value.
//!
//! One table of [`Field`]s serves every edge: the CLI's `--field value`, the API's PATCH,
//! the console's form and the roster's Chinese column headings all set a field through
//! [`Person::set`], so a value is accepted or refused with the same reason everywhere.
//! Pure: "today" is passed in ([`Ctx::today`]).

use chrono::{Datelike, Months, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::directory::Directory;
use super::state::Stored;

/// Whether a person is in the pool.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PersonStatus {
    /// 在库.
    #[default]
    Active,
    /// 调整出库 (with a reason and a date).
    Removed,
}

impl Stored for PersonStatus {
    const WHAT: &'static str = "a pool status";
}

impl PersonStatus {
    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            PersonStatus::Active => "在库",
            PersonStatus::Removed => "调整出库",
        }
    }
}

/// Gender, as the roster records it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Gender {
    /// 男.
    Male,
    /// 女.
    Female,
}

impl Stored for Gender {
    const WHAT: &'static str = "a gender";
}

impl Gender {
    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
        }
    }
}

/// Which post a reserve is groomed for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    strum::EnumString,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PostTrack {
    /// 正职 (the branch secretary's post).
    Chief,
    /// 副职.
    Deputy,
}

impl Stored for PostTrack {
    const WHAT: &'static str = "a post track";
}

impl PostTrack {
    /// Chinese label.
    pub fn zh(self) -> &'static str {
        match self {
            PostTrack::Chief => "正职",
            PostTrack::Deputy => "副职",
        }
    }
}

/// A tier (梯队), 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Tier(u8);

impl Tier {
    /// The number, 1 to 4.
    pub fn get(self) -> u8 {
        self.0
    }

    /// All tiers, first to fourth.
    pub fn all() -> impl Iterator<Item = Tier> {
        (1..=4).map(Tier)
    }
}

impl TryFrom<u8> for Tier {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        if (1..=4).contains(&n) {
            Ok(Tier(n))
        } else {
            Err(format!("tier must be 1 to 4, not {n}"))
        }
    }
}

impl TryFrom<i64> for Tier {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        u8::try_from(n)
            .map_err(|_| format!("tier must be 1 to 4, not {n}"))
            .and_then(Tier::try_from)
    }
}

impl From<Tier> for u8 {
    fn from(t: Tier) -> u8 {
        t.0
    }
}

impl JsonSchema for Tier {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tier".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": 4, "description": "梯队, 1 to 4"})
    }
}

/// The office's names of the four tiers (`[pool] tier_names`), 第一梯队 … 第四梯队 by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierNames(pub [String; 4]);

impl Default for TierNames {
    fn default() -> Self {
        TierNames(["第一梯队", "第二梯队", "第三梯队", "第四梯队"].map(String::from))
    }
}

impl TierNames {
    /// The name of a tier.
    pub fn name(&self, t: Tier) -> &str {
        &self.0[usize::from(t.0 - 1)]
    }

    /// A tier from its number (`2`), its Chinese numeral (`二`, `第二`), the office's name
    /// or the usual forms (`第二梯队`, `第二级梯队`, `二梯队`).
    pub fn parse(&self, text: &str) -> Option<Tier> {
        let t = text.trim();
        if let Some(i) = self.0.iter().position(|n| n == t) {
            return Some(Tier(i as u8 + 1));
        }
        // A number cell of a spreadsheet reads as `2` or `2.0`.
        if let Ok(f) = t.parse::<f64>() {
            return (f.fract() == 0.0 && (1.0..=4.0).contains(&f)).then_some(Tier(f as u8));
        }
        let core = t
            .trim_start_matches('第')
            .trim_end_matches("梯队")
            .trim_end_matches('级')
            .trim_end_matches("梯");
        let n = match core {
            "一" | "1" => 1,
            "二" | "2" => 2,
            "三" | "3" => 3,
            "四" | "4" => 4,
            _ => return None,
        };
        Some(Tier(n))
    }
}

/// A person's record: what the office keeps about a reserve cadre. No ID-card number,
/// nothing more personal than the seeds' roster asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Person {
    /// 姓名.
    pub name: String,
    /// 所在单位: a unit id of the directory.
    pub unit: String,
    /// 梯队.
    pub tier: Tier,
    /// 正职/副职 candidate.
    pub post_track: Option<PostTrack>,
    /// 现任职务.
    pub current_post: Option<String>,
    /// 性别.
    pub gender: Option<Gender>,
    /// 出生年月 (a year and month is stored as the first of the month).
    pub birth: NaiveDate,
    /// 学历.
    pub education: Option<String>,
    /// 入库时间.
    pub joined_at: NaiveDate,
    /// 任期开始.
    pub term_start: Option<NaiveDate>,
    /// 任期结束 (two years after the start unless given).
    pub term_end: Option<NaiveDate>,
    /// 引路人 (mentor).
    pub mentor: Option<String>,
    /// 在库 or 调整出库.
    pub status: PersonStatus,
    /// Why removed (调整出库原因).
    pub removed_reason: Option<String>,
    /// When removed.
    pub removed_at: Option<NaiveDate>,
    /// 联系电话.
    pub phone: Option<String>,
    /// 电子邮箱.
    pub email: Option<String>,
    /// 备注.
    pub note: Option<String>,
}

/// One field of a [`Person`], with its key (CLI, API, form) and Chinese heading (roster).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Field {
    /// 姓名.
    Name,
    /// 性别.
    Gender,
    /// 出生年月.
    Birth,
    /// 学历.
    Education,
    /// 所在单位.
    Unit,
    /// 现任职务.
    CurrentPost,
    /// 正副职.
    PostTrack,
    /// 梯队.
    Tier,
    /// 入库时间.
    JoinedAt,
    /// 任期开始.
    TermStart,
    /// 任期结束.
    TermEnd,
    /// 引路人.
    Mentor,
    /// 联系电话.
    Phone,
    /// 电子邮箱.
    Email,
    /// 状态.
    Status,
    /// 出库原因.
    RemovedReason,
    /// 出库时间.
    RemovedAt,
    /// 备注.
    Note,
}

/// Why a value is refused, in Chinese (for the clerk) and English (for logs and scripts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Chinese.
    pub zh: String,
    /// English.
    pub en: String,
}

impl Reason {
    /// A reason in both languages.
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> Reason {
        Reason {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.zh, self.en)
    }
}

impl Field {
    /// The key used by the CLI (`--current-post`), the API and the forms (`current_post`).
    pub fn key(self) -> &'static str {
        self.into()
    }

    /// The roster's column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Field::Name => "姓名",
            Field::Gender => "性别",
            Field::Birth => "出生年月",
            Field::Education => "学历",
            Field::Unit => "所在单位",
            Field::CurrentPost => "现任职务",
            Field::PostTrack => "正副职",
            Field::Tier => "梯队",
            Field::JoinedAt => "入库时间",
            Field::TermStart => "任期开始",
            Field::TermEnd => "任期结束",
            Field::Mentor => "引路人",
            Field::Phone => "联系电话",
            Field::Email => "电子邮箱",
            Field::Status => "状态",
            Field::RemovedReason => "出库原因",
            Field::RemovedAt => "出库时间",
            Field::Note => "备注",
        }
    }

    /// Other headings the offices' sheets use for the same column.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::Birth => &["出生日期", "出生年月日"],
            Field::Education => &["文化程度", "最高学历"],
            Field::Unit => &["单位", "所在村（社区）", "所在社区", "所在村"],
            Field::CurrentPost => &["现职务", "职务", "现任职"],
            Field::PostTrack => &["后备类别", "人选类别", "正职/副职", "后备职位"],
            Field::Tier => &["所属梯队", "梯队级别"],
            Field::JoinedAt => &["入库时间", "入库日期", "纳入时间"],
            Field::Mentor => &["培养引路人", "联系领导"],
            Field::Phone => &["电话", "手机", "手机号码", "联系方式"],
            Field::Email => &["邮箱", "电子邮件"],
            Field::RemovedReason => &["调整原因"],
            Field::RemovedAt => &["调整时间", "出库日期"],
            _ => &[],
        }
    }

    /// The field a roster heading names (white space inside a heading is ignored:
    /// `姓  名` is 姓名).
    pub fn from_heading(heading: &str) -> Option<Field> {
        let h: String = heading.chars().filter(|c| !c.is_whitespace()).collect();
        <Field as strum::VariantArray>::VARIANTS
            .iter()
            .copied()
            .find(|f| f.heading() == h || f.aliases().contains(&h.as_str()))
    }

    /// Every field, in the roster's column order.
    pub fn all() -> &'static [Field] {
        <Field as strum::VariantArray>::VARIANTS
    }

    /// Fields a new person cannot do without.
    pub fn required(self) -> bool {
        matches!(self, Field::Name | Field::Unit | Field::Tier | Field::Birth)
    }
}

/// What setting a field needs besides its text.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// Units are matched by id or display name.
    pub directory: &'a Directory,
    /// The office's tier names.
    pub tiers: &'a TierNames,
    /// Today in the office's time zone (the default 入库时间).
    pub today: NaiveDate,
}

fn blank(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn bad_date(text: &str) -> Reason {
    Reason::new(
        format!("「{text}」不是日期，请写成 1990.05、1990年5月、1990-05-01 或 1990/5/1"),
        format!("`{text}` is not a date: write 1990.05, 1990年5月, 1990-05-01 or 1990/5/1"),
    )
}

/// A date as the rosters write it: `1990-05-01`, `1990/5/1`, `1990.05` (the first of the
/// month), `1990.5`, `1990-05`, `1990年5月`, `1990年5月1日`, or an Excel serial day number
/// (`32994`). A spreadsheet number cell of 1900 to 2099 with a fraction is a year and month
/// that Excel stored as a number: `1990.1` is October (`1990.10` with the zero dropped),
/// write `1990.01` for January.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(d) = parse_ymd(t) {
        return Some(d);
    }
    if let Ok(n) = t.parse::<f64>() {
        return date_from_number(n, t);
    }
    None
}

/// A number: an Excel serial, or a year.month number cell.
fn date_from_number(n: f64, text: &str) -> Option<NaiveDate> {
    if (1900.0..2100.0).contains(&n) {
        // `1990.05` → May; a number cell `1990.1` is October (see `parse_date`).
        let year = n.trunc() as i32;
        let frac_text = text.split_once('.').map(|(_, f)| f).unwrap_or("");
        let month = if frac_text.len() == 1 {
            frac_text
                .parse::<u32>()
                .ok()
                .map(|m| if m == 1 { 10 } else { m })
        } else {
            Some(((n.fract() * 100.0).round()) as u32)
        }?;
        return NaiveDate::from_ymd_opt(year, month, 1);
    }
    excel_serial(n)
}

/// An Excel serial day number (1900 date system, with its phantom 1900-02-29) as a date.
pub fn excel_serial(n: f64) -> Option<NaiveDate> {
    if !(61.0..2_958_466.0).contains(&n) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?;
    base.checked_add_days(chrono::Days::new(n.trunc() as u64))
}

fn parse_ymd(t: &str) -> Option<NaiveDate> {
    // 1990年5月1日 / 1990年5月 / 1990年05月
    if let Some((y, rest)) = t.split_once('年') {
        let y: i32 = y.trim().parse().ok()?;
        let rest = rest.trim().trim_end_matches(['日', '号']);
        let (m, d) = match rest.split_once('月') {
            Some((m, d)) => (m, d.trim()),
            None => (rest, ""),
        };
        let m: u32 = m.trim().parse().ok()?;
        let d: u32 = if d.is_empty() { 1 } else { d.parse().ok()? };
        return NaiveDate::from_ymd_opt(y, m, d);
    }
    for sep in ['-', '/', '.'] {
        let parts: Vec<&str> = t.split(sep).collect();
        if parts.len() < 2 || parts.len() > 3 || parts[0].len() != 4 {
            continue;
        }
        if sep == '.' && parts.len() == 2 {
            // `1990.05` and `1990.5`: left to the number rule, which knows `1990.1`.
            return None;
        }
        let y: i32 = parts[0].parse().ok()?;
        let m: u32 = parts[1].trim().parse().ok()?;
        let d: u32 = match parts.get(2) {
            Some(d) => d.trim().parse().ok()?,
            None => 1,
        };
        return NaiveDate::from_ymd_opt(y, m, d);
    }
    None
}

fn date_field(text: &str) -> Result<Option<NaiveDate>, Reason> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_date(text)
        .map(Some)
        .ok_or_else(|| bad_date(text.trim()))
}

/// Two years after `start`, the default term (两年一届).
pub fn default_term_end(start: NaiveDate) -> NaiveDate {
    start.checked_add_months(Months::new(24)).unwrap_or(start)
}

/// A unit id from its id or display name.
pub fn unit_id(directory: &Directory, text: &str) -> Option<String> {
    let t = text.trim();
    directory
        .units
        .iter()
        .find(|u| u.id.value == t || u.name == t)
        .map(|u| u.id.value.clone())
}

/// The year and month as rosters show a birth (`1990.05`), or the whole date when its day
/// is not the first (so that nothing is lost on a round trip).
pub fn year_month(d: NaiveDate) -> String {
    if d.day() == 1 {
        format!("{}.{:02}", d.year(), d.month())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

impl Person {
    /// A person from field texts (a form, a roster row, CLI flags): every field refused is
    /// reported, each with its reason. Unset: 入库时间 is `today`, 任期开始 the day
    /// joined, 任期结束 two years later, the status 在库.
    pub fn from_fields(
        fields: &[(Field, String)],
        ctx: Ctx<'_>,
    ) -> Result<Person, Vec<(Field, Reason)>> {
        let mut p = Person {
            name: String::new(),
            unit: String::new(),
            tier: Tier(1),
            post_track: None,
            current_post: None,
            gender: None,
            birth: ctx.today,
            education: None,
            joined_at: ctx.today,
            term_start: None,
            term_end: None,
            mentor: None,
            status: PersonStatus::Active,
            removed_reason: None,
            removed_at: None,
            phone: None,
            email: None,
            note: None,
        };
        let mut errors = Vec::new();
        for f in Field::all().iter().copied().filter(|f| f.required()) {
            let given = fields.iter().any(|(g, v)| *g == f && !v.trim().is_empty());
            if !given {
                errors.push((
                    f,
                    Reason::new(
                        format!("「{}」必须填写", f.heading()),
                        format!("{} is required", f.key()),
                    ),
                ));
            }
        }
        // In field order, so that a 任期结束 given beside 任期开始 is not overwritten by
        // the start's default.
        let mut sorted: Vec<&(Field, String)> = fields.iter().collect();
        sorted.sort_by_key(|(f, _)| *f);
        for (f, v) in sorted {
            if f.required() && v.trim().is_empty() {
                continue;
            }
            if let Err(r) = p.set(*f, v, ctx) {
                errors.push((*f, r));
            }
        }
        if p.term_start.is_none() {
            p.term_start = Some(p.joined_at);
        }
        if p.term_end.is_none() {
            p.term_end = p.term_start.map(default_term_end);
        }
        errors.extend(p.check());
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// Set one field from its text; an empty text clears an optional field. A new 任期开始
    /// moves 任期结束 to two years later (set 任期结束 after it to choose another end).
    pub fn set(&mut self, field: Field, text: &str, ctx: Ctx<'_>) -> Result<(), Reason> {
        let t = text.trim();
        let required = || {
            Reason::new(
                format!("「{}」不能为空", field.heading()),
                format!("{} cannot be empty", field.key()),
            )
        };
        match field {
            Field::Name => {
                if t.is_empty() {
                    return Err(required());
                }
                if t.chars().count() > 50 {
                    return Err(Reason::new(
                        "姓名过长（最多 50 字）",
                        "name longer than 50 characters",
                    ));
                }
                self.name = t.to_string();
            }
            Field::Unit => {
                self.unit = unit_id(ctx.directory, t).ok_or_else(|| {
                    Reason::new(
                        format!("名录中没有单位「{t}」（按单位编号或名称匹配）"),
                        format!("no unit `{t}` in the directory (matched by id or name)"),
                    )
                })?;
            }
            Field::Tier => {
                self.tier = ctx.tiers.parse(t).ok_or_else(|| {
                    Reason::new(
                        format!(
                            "「{t}」不是梯队：填 1 至 4 或「{}」等",
                            ctx.tiers.0.join("」「")
                        ),
                        format!("`{t}` is not a tier: 1 to 4 or {}", ctx.tiers.0.join(", ")),
                    )
                })?;
            }
            Field::PostTrack => {
                self.post_track = match t {
                    "" => None,
                    "正职" | "正" | "chief" | "正职后备" => Some(PostTrack::Chief),
                    "副职" | "副" | "deputy" | "副职后备" => Some(PostTrack::Deputy),
                    _ => {
                        return Err(Reason::new(
                            format!("「{t}」不是正职或副职"),
                            format!("`{t}` is not chief (正职) or deputy (副职)"),
                        ));
                    }
                };
            }
            Field::Gender => {
                self.gender = match t {
                    "" => None,
                    "男" | "male" => Some(Gender::Male),
                    "女" | "female" => Some(Gender::Female),
                    _ => {
                        return Err(Reason::new(
                            format!("「{t}」不是性别：填「男」或「女」"),
                            format!("`{t}` is not a gender: 男 (male) or 女 (female)"),
                        ));
                    }
                };
            }
            Field::Birth => self.birth = date_field(t)?.ok_or_else(required)?,
            Field::JoinedAt => self.joined_at = date_field(t)?.ok_or_else(required)?,
            Field::TermStart => {
                self.term_start = date_field(t)?;
                self.term_end = self.term_start.map(default_term_end);
            }
            Field::TermEnd => self.term_end = date_field(t)?,
            Field::RemovedAt => self.removed_at = date_field(t)?,
            Field::Status => {
                self.status = match t {
                    "" | "在库" | "active" => PersonStatus::Active,
                    "调整出库" | "出库" | "removed" => PersonStatus::Removed,
                    _ => {
                        return Err(Reason::new(
                            format!("「{t}」不是状态：填「在库」或「调整出库」"),
                            format!("`{t}` is not a status: 在库 (active) or 调整出库 (removed)"),
                        ));
                    }
                };
            }
            Field::Email => {
                let looks_like_address = t.contains('@') && !t.contains(char::is_whitespace);
                if !t.is_empty() && !looks_like_address {
                    return Err(Reason::new(
                        format!("「{t}」不是电子邮箱地址"),
                        format!("`{t}` is not an e-mail address"),
                    ));
                }
                self.email = blank(t);
            }
            Field::Phone => {
                if !t.is_empty()
                    && !t
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | ' ' | '(' | ')'))
                {
                    return Err(Reason::new(
                        format!("「{t}」不是电话号码"),
                        format!("`{t}` is not a phone number"),
                    ));
                }
                self.phone = blank(t);
            }
            Field::CurrentPost => self.current_post = blank(t),
            Field::Education => self.education = blank(t),
            Field::Mentor => self.mentor = blank(t),
            Field::RemovedReason => self.removed_reason = blank(t),
            Field::Note => self.note = blank(t),
        }
        Ok(())
    }

    /// Rules between fields: a removed person has a reason; a term ends after it starts.
    pub fn check(&self) -> Vec<(Field, Reason)> {
        let mut out = Vec::new();
        if self.status == PersonStatus::Removed && self.removed_reason.is_none() {
            out.push((
                Field::RemovedReason,
                Reason::new("调整出库须填写原因", "a removed person needs a reason"),
            ));
        }
        if let (Some(s), Some(e)) = (self.term_start, self.term_end)
            && e < s
        {
            out.push((
                Field::TermEnd,
                Reason::new("任期结束早于任期开始", "the term ends before it starts"),
            ));
        }
        out
    }

    /// A field's value as text, as the roster and the forms show it (the inverse of
    /// [`set`](Self::set)).
    pub fn text(&self, field: Field, directory: &Directory, tiers: &TierNames) -> String {
        let date = |d: Option<NaiveDate>| {
            d.map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        match field {
            Field::Name => self.name.clone(),
            Field::Unit => directory
                .unit(&self.unit)
                .map(|u| u.name.clone())
                .unwrap_or_else(|| self.unit.clone()),
            Field::Tier => tiers.name(self.tier).to_string(),
            Field::PostTrack => self
                .post_track
                .map(|p| p.zh().to_string())
                .unwrap_or_default(),
            Field::CurrentPost => opt(&self.current_post),
            Field::Gender => self.gender.map(|g| g.zh().to_string()).unwrap_or_default(),
            Field::Birth => year_month(self.birth),
            Field::Education => opt(&self.education),
            Field::JoinedAt => date(Some(self.joined_at)),
            Field::TermStart => date(self.term_start),
            Field::TermEnd => date(self.term_end),
            Field::Mentor => opt(&self.mentor),
            Field::Status => self.status.zh().to_string(),
            Field::RemovedReason => opt(&self.removed_reason),
            Field::RemovedAt => date(self.removed_at),
            Field::Phone => opt(&self.phone),
            Field::Email => opt(&self.email),
            Field::Note => opt(&self.note),
        }
    }

    /// Copy one field's value from `other`.
    pub fn copy_field(&mut self, other: &Person, field: Field) {
        match field {
            Field::Name => self.name = other.name.clone(),
            Field::Unit => self.unit = other.unit.clone(),
            Field::Tier => self.tier = other.tier,
            Field::PostTrack => self.post_track = other.post_track,
            Field::CurrentPost => self.current_post = other.current_post.clone(),
            Field::Gender => self.gender = other.gender,
            Field::Birth => self.birth = other.birth,
            Field::Education => self.education = other.education.clone(),
            Field::JoinedAt => self.joined_at = other.joined_at,
            Field::TermStart => self.term_start = other.term_start,
            Field::TermEnd => self.term_end = other.term_end,
            Field::Mentor => self.mentor = other.mentor.clone(),
            Field::Status => self.status = other.status,
            Field::RemovedReason => self.removed_reason = other.removed_reason.clone(),
            Field::RemovedAt => self.removed_at = other.removed_at,
            Field::Phone => self.phone = other.phone.clone(),
            Field::Email => self.email = other.email.clone(),
            Field::Note => self.note = other.note.clone(),
        }
    }

    /// The fields whose values differ, old and new, as JSON (the audit detail of an edit).
    pub fn changes(&self, new: &Person) -> serde_json::Map<String, serde_json::Value> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(new))
        else {
            return serde_json::Map::new();
        };
        let mut out = serde_json::Map::new();
        for (k, nv) in b {
            let ov = a.get(&k).cloned().unwrap_or(serde_json::Value::Null);
            if ov != nv {
                out.insert(k, serde_json::json!({"old": ov, "new": nv}));
            }
        }
        out
    }

    /// Age in whole years on `day`.
    pub fn age_on(&self, day: NaiveDate) -> i32 {
        let mut age = day.year() - self.birth.year();
        if (day.month(), day.day()) < (self.birth.month(), self.birth.day()) {
            age -= 1;
        }
        age
    }
}

/// The event kinds that may be recorded: every event the loaded workflows declare
/// (`events:`), by id, with its title; the first title wins when two workflows declare
/// the same id.
pub fn event_kinds<'a>(
    workflows: impl Iterator<Item = &'a super::definition::Workflow>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for w in workflows {
        for e in &w.events {
            if !out.iter().any(|(id, _)| *id == e.id.value) {
                out.push((e.id.value.clone(), e.title.clone()));
            }
        }
    }
    out
}

/// The event kinds a branch may report itself (`branch_reports: true`), (id, title), each
/// once, in the workflows' order.
pub fn branch_event_kinds<'a>(
    workflows: impl Iterator<Item = &'a super::definition::Workflow>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for w in workflows {
        for e in w.events.iter().filter(|e| e.branch_reports) {
            if !out.iter().any(|(id, _)| *id == e.id.value) {
                out.push((e.id.value.clone(), e.title.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn dates_in_every_form_the_rosters_use() {
        assert_eq!(parse_date("1990.05"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990.5"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990.10"), Some(d(1990, 10, 1)));
        assert_eq!(parse_date("1990.1"), Some(d(1990, 10, 1)));
        assert_eq!(parse_date("1990.01"), Some(d(1990, 1, 1)));
        assert_eq!(parse_date("1990年5月"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990年5月3日"), Some(d(1990, 5, 3)));
        assert_eq!(parse_date("1990-05-01"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990/5/1"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990-05"), Some(d(1990, 5, 1)));
        // Excel's serial of 1990-05-01.
        assert_eq!(parse_date("32994"), Some(d(1990, 5, 1)));
        assert_eq!(parse_date("1990.13"), None);
        assert_eq!(parse_date("五月"), None);
        assert_eq!(parse_date("1990"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn tiers_by_number_numeral_or_the_offices_name() {
        let t = TierNames::default();
        for (text, n) in [
            ("1", 1),
            ("2.0", 2),
            ("第三梯队", 3),
            ("第四级梯队", 4),
            ("二", 2),
            ("第一级", 1),
        ] {
            assert_eq!(t.parse(text).map(Tier::get), Some(n), "{text}");
        }
        assert_eq!(t.parse("5"), None);
        assert_eq!(t.parse("第五梯队"), None);
        assert!(Tier::try_from(0u8).is_err());
    }

    #[test]
    fn headings_and_their_aliases_name_fields() {
        assert_eq!(Field::from_heading("姓 名"), Some(Field::Name));
        assert_eq!(Field::from_heading("出生日期"), Some(Field::Birth));
        assert_eq!(Field::from_heading("政治面貌"), None);
        for f in Field::all() {
            assert_eq!(Field::from_heading(f.heading()), Some(*f));
            assert_eq!(f.key().parse::<Field>().ok(), Some(*f));
        }
    }

    #[test]
    fn stored_words_are_those_the_schema_checks() {
        // The CHECK constraints of migrations/*/0009_pool.sql.
        fn words<T: Stored + strum::VariantArray>() -> Vec<&'static str> {
            T::VARIANTS.iter().map(|v| v.word()).collect()
        }
        assert_eq!(words::<PersonStatus>(), ["active", "removed"]);
        assert_eq!(words::<Gender>(), ["male", "female"]);
        assert_eq!(words::<PostTrack>(), ["chief", "deputy"]);
        assert_eq!(
            "removed".parse::<PersonStatus>().ok(),
            Some(PersonStatus::Removed)
        );
    }

    #[test]
    fn term_end_defaults_to_two_years_after_the_start() {
        assert_eq!(default_term_end(d(2024, 2, 29)), d(2026, 2, 28));
        assert_eq!(default_term_end(d(2019, 7, 19)), d(2021, 7, 19));
    }
}
