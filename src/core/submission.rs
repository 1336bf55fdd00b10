//! What a task asks a branch to hand in (`submit:` on a task): fields, files and blank
//! forms; the static checks of that declaration; the declaration resolved for one round
//! ([`Asks`], parameters filled in by the planner); and the rules a handed-in entry must
//! meet before it is accepted ([`check_entry`]), with Chinese reasons.
//!
//! Pure: bytes and values in, verdicts out. Where files are kept is `crate::files`.

use crate::core::definition::Val;
use crate::core::diagnostic::{Diagnostics, Sp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The default largest file, in megabytes, when a file slot sets no `max_mb`.
pub const DEFAULT_MAX_MB: u32 = 20;
/// The largest `max_mb` a workflow may set.
pub const LIMIT_MAX_MB: u32 = 200;
/// The most files one slot may take.
pub const LIMIT_MAX_COUNT: u32 = 20;
/// How many leading bytes of a file are enough to tell its kind by content.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// What a task asks its assignee to hand in.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Submit {
    /// Values to fill in (names, numbers, dates, choices, people).
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Files to upload.
    #[serde(default)]
    pub files: Vec<FileSlot>,
    /// Blank forms offered for download, paths under `templates/forms/`.
    #[serde(default)]
    pub forms: Vec<Sp<String>>,
}

/// One value to fill in.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Field {
    /// Unique id within the task's `submit`.
    pub id: Sp<String>,
    /// What the branch reads (Chinese), e.g. 推荐人选.
    pub label: String,
    /// The kind of value.
    #[serde(rename = "type")]
    pub kind: Sp<FieldKind>,
    /// Must be filled in (default true).
    #[serde(default = "yes")]
    pub required: bool,
    /// `people`: at least this many names; `number`: the smallest value.
    #[serde(default)]
    pub min: Option<Sp<Val<i64>>>,
    /// `people`: at most this many names; `number`: the largest value.
    #[serde(default)]
    pub max: Option<Sp<Val<i64>>>,
    /// `choice`: the allowed answers.
    #[serde(default)]
    pub choices: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The kind of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text.
    Text,
    /// A whole number.
    Number,
    /// A date, YYYY-MM-DD.
    Date,
    /// One of `choices`.
    Choice,
    /// One person of the branch's reserve pool.
    Person,
    /// A list of names, one per line (e.g. nominees).
    People,
}

impl FieldKind {
    /// Chinese name.
    pub fn zh(self) -> &'static str {
        match self {
            FieldKind::Text => "文字",
            FieldKind::Number => "数字",
            FieldKind::Date => "日期",
            FieldKind::Choice => "选项",
            FieldKind::Person => "人员",
            FieldKind::People => "人员名单",
        }
    }
}

/// One kind of file to upload.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FileSlot {
    /// Unique id within the task's `submit`.
    pub id: Sp<String>,
    /// What the branch reads (Chinese), e.g. 附件1 推荐表.
    pub label: String,
    /// Allowed kinds, checked by content.
    pub kinds: Sp<Vec<FileKind>>,
    /// The largest file in megabytes (default 20, at most 200).
    #[serde(default)]
    pub max_mb: Option<Sp<u32>>,
    /// How many files at most (default 1, at most 20).
    #[serde(default)]
    pub max_count: Option<Sp<u32>>,
    /// At least one file must be uploaded (default true).
    #[serde(default = "yes")]
    pub required: bool,
}

/// A kind of file, told by its content.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Word document (.docx).
    Docx,
    /// Excel workbook (.xlsx).
    Xlsx,
    /// PDF.
    Pdf,
    /// JPEG image.
    Jpg,
    /// PNG image.
    Png,
}

impl FileKind {
    /// The file name extension.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Docx => "docx",
            FileKind::Xlsx => "xlsx",
            FileKind::Pdf => "pdf",
            FileKind::Jpg => "jpg",
            FileKind::Png => "png",
        }
    }

    /// The media type served back.
    pub fn mime(self) -> &'static str {
        match self {
            FileKind::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileKind::Pdf => "application/pdf",
            FileKind::Jpg => "image/jpeg",
            FileKind::Png => "image/png",
        }
    }

    /// The kind a file's leading bytes show, if it is one of ours. Office files are zip
    /// containers: which one is read from the names of the entries in the prefix (`word/`,
    /// `xl/`), since `infer`'s check depends on the order of the first entries, which
    /// differs between Word, WPS and LibreOffice.
    pub fn sniff(prefix: &[u8]) -> Option<FileKind> {
        if prefix.starts_with(b"PK\x03\x04") {
            return ooxml(prefix);
        }
        if infer::archive::is_pdf(prefix) {
            return Some(FileKind::Pdf);
        }
        if infer::image::is_jpeg(prefix) {
            return Some(FileKind::Jpg);
        }
        if infer::image::is_png(prefix) {
            return Some(FileKind::Png);
        }
        None
    }

    /// The kind a file name's extension claims (`.jpeg` counts as jpg).
    pub fn from_name(name: &str) -> Option<FileKind> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "docx" => FileKind::Docx,
            "xlsx" => FileKind::Xlsx,
            "pdf" => FileKind::Pdf,
            "jpg" | "jpeg" => FileKind::Jpg,
            "png" => FileKind::Png,
            _ => return None,
        })
    }
}

/// Word or Excel, from the entry names of the zip local file headers found in `prefix`.
fn ooxml(prefix: &[u8]) -> Option<FileKind> {
    let mut found = None;
    let mut at = 0;
    while let Some(i) = prefix[at..].windows(4).position(|w| w == b"PK\x03\x04") {
        let h = at + i;
        let name_len = prefix
            .get(h + 26..h + 28)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
        let name = name_len.and_then(|n| prefix.get(h + 30..h + 30 + n));
        match name {
            // The first Office part named decides.
            Some(n) if n.starts_with(b"word/") => found = found.or(Some(FileKind::Docx)),
            Some(n) if n.starts_with(b"xl/") => found = found.or(Some(FileKind::Xlsx)),
            _ => {}
        }
        at = h + 4;
    }
    found
}

/// A task's `submit` resolved for one round: parameters filled in, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Asks {
    /// Task id.
    pub task: String,
    /// Values to fill in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<AskField>,
    /// Files to upload.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<AskFile>,
    /// Blank forms to download.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forms: Vec<String>,
}

/// A field, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AskField {
    /// Field id.
    pub id: String,
    /// Label (Chinese).
    pub label: String,
    /// Kind of value.
    pub kind: FieldKind,
    /// Must be filled in.
    pub required: bool,
    /// Smallest number of names or value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// Largest number of names or value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Allowed answers of a choice.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// A file slot, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AskFile {
    /// Slot id.
    pub id: String,
    /// Label (Chinese).
    pub label: String,
    /// Allowed kinds.
    pub kinds: Vec<FileKind>,
    /// Largest file in bytes.
    pub max_bytes: u64,
    /// How many files at most.
    pub max_count: u32,
    /// At least one file is needed.
    pub required: bool,
}

impl Asks {
    /// Resolve a declaration; `num` turns a `Val<i64>` into its value for this round (the
    /// planner's parameter lookup, which reports unknown or mistyped parameters itself).
    pub fn resolve(
        task: &str,
        s: &Submit,
        mut num: impl FnMut(&Sp<Val<i64>>) -> Option<i64>,
    ) -> Asks {
        Asks {
            task: task.to_string(),
            fields: s
                .fields
                .iter()
                .map(|f| AskField {
                    id: f.id.value.clone(),
                    label: f.label.clone(),
                    kind: f.kind.value,
                    required: f.required,
                    min: f.min.as_ref().and_then(&mut num),
                    max: f.max.as_ref().and_then(&mut num),
                    choices: f.choices.clone(),
                })
                .collect(),
            files: s
                .files
                .iter()
                .map(|f| AskFile {
                    id: f.id.value.clone(),
                    label: f.label.clone(),
                    kinds: f.kinds.value.clone(),
                    max_bytes: u64::from(f.max_mb.as_ref().map_or(DEFAULT_MAX_MB, |m| m.value))
                        * 1024
                        * 1024,
                    max_count: f.max_count.as_ref().map_or(1, |m| m.value),
                    required: f.required,
                })
                .collect(),
            forms: s.forms.iter().map(|f| f.value.clone()).collect(),
        }
    }

    /// One line per thing asked, in Chinese, for `plan` and the pages.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.fields {
            let mut s = format!("{}（{}", f.label, f.kind.zh());
            match (f.kind, f.min, f.max) {
                (FieldKind::People, Some(n), _) => s.push_str(&format!("，至少{n}人")),
                (FieldKind::Number, Some(n), _) => s.push_str(&format!("，不小于{n}")),
                _ => {}
            }
            match (f.kind, f.max) {
                (FieldKind::People, Some(n)) => s.push_str(&format!("，至多{n}人")),
                (FieldKind::Number, Some(n)) => s.push_str(&format!("，不大于{n}")),
                _ => {}
            }
            if !f.choices.is_empty() {
                s.push_str(&format!("：{}", f.choices.join("/")));
            }
            s.push_str(if f.required {
                "，必填）"
            } else {
                "，选填）"
            });
            out.push(s);
        }
        for f in &self.files {
            let kinds: Vec<&str> = f.kinds.iter().map(|k| k.ext()).collect();
            out.push(format!(
                "{}（文件：{}，每个不超过{}MB，至多{}个，{}）",
                f.label,
                kinds.join("/"),
                f.max_bytes / (1024 * 1024),
                f.max_count,
                if f.required { "必交" } else { "选交" }
            ));
        }
        for f in &self.forms {
            out.push(format!("空白表格：{}", form_name(f)));
        }
        out
    }

    /// The file slot with this id.
    pub fn file(&self, id: &str) -> Option<&AskFile> {
        self.files.iter().find(|f| f.id == id)
    }
}

/// The file name of a form path.
pub fn form_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Static checks of one task's `submit` declaration (ids, limits, choices, form paths).
/// Parameter references are checked by the planner when it resolves them.
pub fn check_declaration(s: &Submit, d: &mut Diagnostics) {
    let mut seen: HashSet<&str> = HashSet::new();
    let ids = s
        .fields
        .iter()
        .map(|f| &f.id)
        .chain(s.files.iter().map(|f| &f.id));
    for id in ids {
        if !seen.insert(id.value.as_str()) {
            d.error(
                "submit-duplicate-id",
                id.loc,
                format!("`{}` is used twice in this task's `submit`", id.value),
                Some("give every field and file slot its own id".into()),
            );
        }
    }
    for f in &s.fields {
        let kind = f.kind.value;
        if kind == FieldKind::Choice && f.choices.is_empty() {
            d.error(
                "submit-choice-empty",
                f.kind.loc,
                format!("field `{}` is a choice without `choices`", f.id.value),
                Some("list the allowed answers, e.g. `choices: [同意, 不同意]`".into()),
            );
        }
        if kind != FieldKind::Choice && !f.choices.is_empty() {
            d.error(
                "submit-choices-unused",
                f.id.loc,
                format!(
                    "field `{}` has `choices` but is of type `{}`",
                    f.id.value,
                    serde_kind(kind)
                ),
                Some("set `type: choice`, or remove `choices`".into()),
            );
        }
        for (name, v) in [("min", &f.min), ("max", &f.max)] {
            let Some(v) = v else { continue };
            if !matches!(kind, FieldKind::People | FieldKind::Number) {
                d.error(
                    "submit-min-unused",
                    v.loc,
                    format!(
                        "`{name}` applies to `people` and `number` fields, not to `{}`",
                        serde_kind(kind)
                    ),
                    Some(format!("remove `{name}` from field `{}`", f.id.value)),
                );
            } else if kind == FieldKind::People
                && let Val::Lit(n) = v.value
                && n < 0
            {
                d.error(
                    "submit-min-negative",
                    v.loc,
                    format!("`{name}: {n}` cannot be a number of people"),
                    Some("write 0 or more".into()),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (&f.min, &f.max)
            && let (Val::Lit(a), Val::Lit(b)) = (&lo.value, &hi.value)
            && a > b
        {
            d.error(
                "submit-min-above-max",
                lo.loc,
                format!("field `{}`: `min: {a}` is above `max: {b}`", f.id.value),
                Some("make `min` at most `max`".into()),
            );
        }
    }
    for f in &s.files {
        if f.kinds.value.is_empty() {
            d.error(
                "submit-kinds-empty",
                f.kinds.loc,
                format!("file slot `{}` allows no kind of file", f.id.value),
                Some("list the kinds, e.g. `kinds: [docx, pdf]`".into()),
            );
        }
        if let Some(m) = &f.max_mb
            && !(1..=LIMIT_MAX_MB).contains(&m.value)
        {
            d.error(
                "submit-max-mb",
                m.loc,
                format!("`max_mb: {}` is out of range", m.value),
                Some(format!("write 1 to {LIMIT_MAX_MB} (megabytes)")),
            );
        }
        if let Some(m) = &f.max_count
            && !(1..=LIMIT_MAX_COUNT).contains(&m.value)
        {
            d.error(
                "submit-max-count",
                m.loc,
                format!("`max_count: {}` is out of range", m.value),
                Some(format!("write 1 to {LIMIT_MAX_COUNT}")),
            );
        }
    }
    for f in &s.forms {
        let p = f.value.as_str();
        let ok = p.starts_with("templates/forms/")
            && !p.contains("..")
            && !p.contains('\\')
            && FileKind::from_name(p).is_some();
        if !ok {
            d.error(
                "submit-form-path",
                f.loc,
                format!("blank form `{p}` is not a file under `templates/forms/`"),
                Some(
                    "write a path like `templates/forms/附件1-推荐表.docx` (docx, xlsx, pdf, jpg or png)"
                        .into(),
                ),
            );
        }
    }
}

fn serde_kind(k: FieldKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One file already received and stored, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenFile {
    /// The slot it was uploaded for.
    pub slot: String,
    /// Its kind, told by content.
    pub kind: FileKind,
    /// Its size in bytes.
    pub size: u64,
}

/// What a branch handed in: field values by id (a `people` field's names are lines), and
/// the files received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Field values by field id, as typed.
    pub fields: BTreeMap<String, String>,
    /// Files received.
    pub files: Vec<GivenFile>,
}

/// The names in a `people` field: one per line (also split on ，、,;；), blanks dropped,
/// repeats counted once.
pub fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in text.split(['\n', '，', '、', ',', ';', '；']) {
        let n = n.trim();
        if !n.is_empty() && !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    }
    out
}

/// Every reason an entry cannot be accepted, in Chinese; empty when it can. `pool` holds
/// the names of the branch's reserve pool, for `person` fields.
pub fn check_entry(asks: &Asks, entry: &Entry, pool: &[String]) -> Vec<String> {
    let mut why = Vec::new();
    for f in &asks.fields {
        let raw = entry.fields.get(&f.id).map(|s| s.trim()).unwrap_or("");
        if raw.is_empty() {
            if f.required {
                why.push(format!("请填写「{}」。", f.label));
            }
            continue;
        }
        match f.kind {
            FieldKind::Text => {}
            FieldKind::Number => match raw.parse::<i64>() {
                Err(_) => why.push(format!("「{}」应填写整数，“{raw}”不是整数。", f.label)),
                Ok(n) => {
                    if let Some(lo) = f.min
                        && n < lo
                    {
                        why.push(format!("「{}」不能小于 {lo}。", f.label));
                    }
                    if let Some(hi) = f.max
                        && n > hi
                    {
                        why.push(format!("「{}」不能大于 {hi}。", f.label));
                    }
                }
            },
            FieldKind::Date => {
                if chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_err() {
                    why.push(format!(
                        "「{}」应填写日期，格式如 2019-07-12，“{raw}”不是日期。",
                        f.label
                    ));
                }
            }
            FieldKind::Choice => {
                if !f.choices.iter().any(|c| c == raw) {
                    why.push(format!(
                        "「{}」只能选择：{}。",
                        f.label,
                        f.choices.join("、")
                    ));
                }
            }
            FieldKind::Person => {
                if !pool.iter().any(|p| p == raw) {
                    why.push(format!(
                        "「{}」应从本单位后备人才库中选择，库中没有“{raw}”。",
                        f.label
                    ));
                }
            }
            FieldKind::People => {
                let n = names(raw).len() as i64;
                if let Some(lo) = f.min
                    && n < lo
                {
                    why.push(format!(
                        "「{}」至少需要 {lo} 人，目前只填了 {n} 人。",
                        f.label
                    ));
                }
                if let Some(hi) = f.max
                    && n > hi
                {
                    why.push(format!("「{}」至多 {hi} 人，目前填了 {n} 人。", f.label));
                }
            }
        }
    }
    for f in &asks.files {
        let given: Vec<&GivenFile> = entry.files.iter().filter(|g| g.slot == f.id).collect();
        if given.is_empty() && f.required {
            why.push(format!("请上传「{}」。", f.label));
        }
        if given.len() > f.max_count as usize {
            why.push(format!(
                "「{}」至多上传 {} 个文件，收到 {} 个。",
                f.label,
                f.max_count,
                given.len()
            ));
        }
        for g in given {
            if !f.kinds.contains(&g.kind) {
                why.push(format!(
                    "「{}」只接受 {} 文件。",
                    f.label,
                    kinds_zh(&f.kinds)
                ));
            }
            if g.size > f.max_bytes {
                why.push(format!(
                    "「{}」每个文件不能超过 {}MB。",
                    f.label,
                    f.max_bytes / (1024 * 1024)
                ));
            }
        }
    }
    why
}

/// The kinds as the branch reads them, e.g. `docx、pdf`.
pub fn kinds_zh(kinds: &[FileKind]) -> String {
    kinds.iter().map(|k| k.ext()).collect::<Vec<_>>().join("、")
}

/// A file name safe to store and to send back: the last path segment, control characters
/// and the characters Windows or headers refuse replaced, at most 120 characters, the
/// extension forced to the kind told by content. Never empty.
pub fn sanitise_name(raw: &str, kind: FileKind) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let stem = match last.rsplit_once('.') {
        Some((s, _)) => s,
        None => last,
    };
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_control() || "<>:\"/\\|?*;%".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim().trim_start_matches('.').trim();
    let clean: String = clean.chars().take(120).collect();
    let stem = if clean.is_empty() { "文件" } else { &clean };
    format!("{stem}.{}", kind.ext())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks() -> Asks {
        Asks {
            task: "nomination".into(),
            fields: vec![
                AskField {
                    id: "candidates".into(),
                    label: "推荐人选".into(),
                    kind: FieldKind::People,
                    required: true,
                    min: Some(2),
                    max: None,
                    choices: vec![],
                },
                AskField {
                    id: "opinion".into(),
                    label: "意见".into(),
                    kind: FieldKind::Choice,
                    required: false,
                    min: None,
                    max: None,
                    choices: vec!["同意".into(), "不同意".into()],
                },
            ],
            files: vec![AskFile {
                id: "form1".into(),
                label: "附件1 推荐表".into(),
                kinds: vec![FileKind::Docx, FileKind::Pdf],
                max_bytes: 1024,
                max_count: 1,
                required: true,
            }],
            forms: vec![],
        }
    }

    fn entry(candidates: &str, files: Vec<GivenFile>) -> Entry {
        Entry {
            fields: [("candidates".to_string(), candidates.to_string())].into(),
            files,
        }
    }

    fn docx(size: u64) -> GivenFile {
        GivenFile {
            slot: "form1".into(),
            kind: FileKind::Docx,
            size,
        }
    }

    #[test]
    fn a_complete_entry_has_no_reasons() {
        assert!(check_entry(&asks(), &entry("张三\n李四", vec![docx(10)]), &[]).is_empty());
    }

    #[test]
    fn too_few_nominees_are_refused_with_the_count() {
        let why = check_entry(&asks(), &entry("张三\n张三\n", vec![docx(10)]), &[]);
        assert_eq!(why, vec!["「推荐人选」至少需要 2 人，目前只填了 1 人。"]);
    }

    #[test]
    fn a_missing_required_file_and_a_wrong_kind_are_refused() {
        let why = check_entry(&asks(), &entry("甲、乙", vec![]), &[]);
        assert_eq!(why, vec!["请上传「附件1 推荐表」。"]);
        let png = GivenFile {
            kind: FileKind::Png,
            ..docx(10)
        };
        let why = check_entry(&asks(), &entry("甲、乙", vec![png]), &[]);
        assert_eq!(why, vec!["「附件1 推荐表」只接受 docx、pdf 文件。"]);
    }

    #[test]
    fn a_choice_outside_its_list_is_refused() {
        let mut e = entry("甲,乙", vec![docx(1)]);
        e.fields.insert("opinion".into(), "弃权".into());
        let why = check_entry(&asks(), &e, &[]);
        assert_eq!(why, vec!["「意见」只能选择：同意、不同意。"]);
    }

    #[test]
    fn content_decides_the_kind_not_the_name() {
        assert_eq!(FileKind::sniff(b"%PDF-1.7\n..."), Some(FileKind::Pdf));
        assert_eq!(
            FileKind::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(FileKind::Png)
        );
        // An executable named .pdf is no kind of ours.
        assert_eq!(FileKind::sniff(b"MZ\x90\0\x03\0\0\0"), None);
        // A plain zip is not a Word document.
        assert_eq!(FileKind::sniff(b"PK\x03\x04\x14\0\0\0\0\0"), None);
    }

    #[test]
    fn the_shipped_blank_forms_are_word_documents_by_content() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/forms");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("templates/forms") {
            let p = e.expect("entry").path();
            let bytes = std::fs::read(&p).expect("read");
            assert_eq!(
                FileKind::sniff(&bytes),
                Some(FileKind::Docx),
                "{}",
                p.display()
            );
            n += 1;
        }
        assert!(n >= 5, "the seed rounds' forms are shipped");
    }

    #[test]
    fn a_workbook_is_told_from_a_document_by_its_parts() {
        let mut wb = rust_xlsxwriter::Workbook::new();
        wb.add_worksheet()
            .write_string(0, 0, "名册")
            .expect("write");
        let bytes = wb.save_to_buffer().expect("xlsx");
        assert_eq!(FileKind::sniff(&bytes), Some(FileKind::Xlsx));
    }

    #[test]
    fn names_are_sanitised_and_take_the_kind_by_content() {
        assert_eq!(
            sanitise_name("../../etc/推荐表\u{0}.exe", FileKind::Pdf),
            "推荐表_.pdf"
        );
        assert_eq!(sanitise_name("C:\\a\\b.docx", FileKind::Docx), "b.docx");
        assert_eq!(sanitise_name("...", FileKind::Png), "文件.png");
        assert_eq!(sanitise_name("a\"b;c.pdf", FileKind::Pdf), "a_b_c.pdf");
    }
}
